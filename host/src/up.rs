//! `ledge up`: read the app, compile its components, bind the listener and serve.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cli::UpArgs;
use crate::manifest::{App, DomainMapping, TriggerHandler};
use crate::server::{AppService, Site, SiteTable, Sites, Target};
use crate::serving::{self, AppDirs, Host, RuntimeBuild, Seed};
use crate::{builder, sources};

/// Runs `ledge up` until a shutdown signal.
pub async fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let runtime = RuntimeBuild::begin(&args.serve);
    let several = args.from.len() > 1;
    if several && !(args.key_values.is_empty() && args.sqlite.is_empty()) {
        bail!(
            "--key-value and --sqlite seed one app, and this run serves {} apps.\n  \
             fix: seed each app in a run of its own, or with migrations in its runtime config",
            args.from.len()
        );
    }
    let mut apps = Vec::new();
    let mut gateways = Vec::new();
    for from in &args.from {
        let mut app = App::load(from)?;
        if args.build {
            builder::build(&app, &[])?;
            app = App::load(from)?;
        }
        // The gateway's policies are checked before anything starts or compiles.
        gateways.push(serving::gateway_policies(&mut app, &args.serve)?);
        apps.push(app);
    }
    if let Some(unknown) = args.serve.follow.iter().find(|id| {
        !apps
            .iter()
            .any(|app| app.components.contains_key(id.as_str()))
    }) {
        let known: Vec<&str> = apps
            .iter()
            .flat_map(|app| app.components.keys().map(String::as_str))
            .collect();
        bail!(
            "--follow {unknown}: no component has that id\n  fix: follow one of {}",
            known.join(", ")
        );
    }
    let state_dirs = state_dirs(&apps, args.state_dir.as_deref())?;
    for (app, state_dir) in apps.iter_mut().zip(&state_dirs) {
        // A remote component has a file to check only once it is fetched.
        sources::fetch_remote_sources(app, state_dir).await?;
        app.check_sources()?;
    }

    let cache_dir = serving::compile_cache_dir(&args.serve, &state_dirs[0])?;
    let host = Host::start(args.serve, runtime, cache_dir).await?;
    let seed = Seed {
        key_values: &args.key_values,
        sqlite: &args.sqlite,
        migrations: &[],
    };
    let mut sites = Vec::new();
    let mut loaded = Vec::new();
    for ((app, state_dir), gateway) in apps.iter().zip(&state_dirs).zip(gateways) {
        let dirs = AppDirs::under(state_dir);
        let app_loaded = serving::load_app(&host, app, gateway, &dirs, &seed).await?;
        sites.push(Site {
            manifest: app.manifest_path.clone(),
            domains: app.gateway.domains.clone(),
            service: app_loaded.service.clone(),
        });
        loaded.push(app_loaded);
    }
    let sites = Sites::new(sites)?;

    let server = host.bind().await?;
    let address = server.local_addr()?;
    println!("Serving {}://{address}", server.scheme());
    for (service, domains) in sites.apps() {
        let index = loaded
            .iter()
            .position(|l| Arc::ptr_eq(&l.service, &service))
            .expect("every site is one of the apps");
        let url = match domains.first() {
            Some(domain) => format!(
                "{}://{}:{}{}",
                server.scheme(),
                domain.host,
                address.port(),
                domain.base_path
            ),
            None => format!("{}://{address}", server.scheme()),
        };
        print_routes(&service, &url, &apps[index], &domains, several);
    }
    host.print_observers();
    tracing::info!("ready in {} ms", started.elapsed().as_millis());
    let served = server.serve(Arc::new(SiteTable::new(sites))).await;
    drop(loaded);
    host.shutdown().await?;
    served
}

/// Each app's state directory: `--state-dir` (one subdirectory per app when there are
/// several), else `.ledge/` next to its manifest.
fn state_dirs(apps: &[App], state_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = apps
        .iter()
        .map(|app| match state_dir {
            Some(dir) if apps.len() > 1 => dir.join(&app.name),
            Some(dir) => dir.to_path_buf(),
            None => app.root_dir.join(".ledge"),
        })
        .collect();
    for (i, dir) in dirs.iter().enumerate() {
        if let Some(other) = dirs[..i].iter().position(|d| d == dir) {
            bail!(
                "{} and {} would share the state directory {}.\n  \
                 fix: give the apps different names or keep their manifests in separate \
                 directories",
                apps[other].manifest_path.display(),
                apps[i].manifest_path.display(),
                dir.display()
            );
        }
    }
    Ok(dirs)
}

/// Prints an app's routes the way `spin up` does; with several apps, under the app's name
/// and the domains it answers.
fn print_routes(
    service: &AppService,
    base: &str,
    app: &App,
    domains: &[&DomainMapping],
    several: bool,
) {
    let names: Vec<String> = domains.iter().map(ToString::to_string).collect();
    if several {
        let answers = if names.is_empty() {
            "every other host".to_string()
        } else {
            names.join(", ")
        };
        println!("App {} on {answers}:", app.name);
    } else if !names.is_empty() {
        println!("Domains: {}", names.join(", "));
    }
    let gateway = service.gateway.summary();
    if !gateway.is_empty() {
        println!("Gateway: {gateway}");
    }
    println!("Available Routes:");
    for (route, endpoint) in service.router.routes() {
        let name = match &endpoint.target {
            Target::Component { id, .. } => id.to_string(),
            Target::Static(_) => "(static response)".to_string(),
            Target::Files { id, .. } => format!("{id} (static files)"),
        };
        let shown = route.based().strip_suffix("/...").map_or_else(
            || route.based().to_string(),
            |prefix| format!("{prefix} (wildcard)"),
        );
        let shown = if shown.starts_with(" (wildcard)") {
            format!("/{shown}")
        } else {
            shown
        };
        match &endpoint.guard {
            Some(guard) => println!("  {name}: {base}{shown}  [{}]", guard.summary()),
            None => println!("  {name}: {base}{shown}"),
        }
    }
    let private: Vec<&str> = app
        .triggers
        .iter()
        .filter(|t| t.route.is_none())
        .filter_map(|t| match &t.handler {
            TriggerHandler::Component(id) => Some(id.as_str()),
            TriggerHandler::Static(_) => None,
        })
        .collect();
    if !private.is_empty() {
        println!("  private (in-process only): {}", private.join(", "));
    }
}
