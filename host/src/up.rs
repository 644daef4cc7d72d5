//! `ledge up`: read the app, compile its components, bind the listener and serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::sync::Semaphore;

use crate::cli::UpArgs;
use crate::data::runtime_config::RuntimeConfig;
use crate::data::{DataTier, startup};
use crate::engine::{
    CompileOutcome, ComponentPool, EngineSettings, GuestLog, MessageHandler, PoolSettings, Runtime,
};
use crate::gateway::traces::Traces;
use crate::gateway::{Gateway, GatewayPolicies};
use crate::manifest::{App, DomainMapping, Setting, TriggerHandler};
use crate::outbound_http::{InProcess, InProcessSlot};
use crate::router::Router;
use crate::server::{
    AppService, CHAINING_ROUTE, ConnectionLimits, Endpoint, FileServer, MIN_REQUEST_HEAD,
    RouteHeaders, Server, Site, Sites, Target, TlsFiles,
};
use crate::trigger_redis::Subscription;
use crate::{builder, files, sources};

/// Runs `ledge up` until a shutdown signal.
pub async fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
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
        if !args.trusted_proxies.is_empty() {
            let networks = args
                .trusted_proxies
                .iter()
                .cloned()
                .map(toml::Value::String);
            let flag = Setting {
                value: toml::Value::Array(networks.collect()),
                key: "--trusted-proxy".into(),
                line: None,
            };
            app.gateway.app.insert("trusted_proxies".into(), flag);
        }
        // The gateway's policies are checked before anything starts or compiles.
        gateways.push(GatewayPolicies::configure(&app.gateway)?);
        apps.push(app);
    }
    if let Some(unknown) = args.follow.iter().find(|id| {
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

    let runtime = Runtime::new(
        EngineSettings {
            pooling: !args.disable_pooling,
            cache_dir: compile_cache_dir(&args, &state_dirs[0])?,
            request_timeout: args.request_timeout,
        },
        crate::capabilities::ALL,
    )?;
    // Metrics first, so the pools register theirs with the recorder.
    let admin = match args.admin_listen {
        Some(address) => Some(crate::server::admin::serve(address).await?),
        None => None,
    };
    let traces = Traces::start(args.otlp_endpoint.as_deref())?.map(Arc::new);
    let observers = Observers {
        metrics: admin.is_some(),
        traces: traces.clone(),
    };
    let mut sites = Vec::new();
    let mut services = Vec::new();
    for ((app, state_dir), gateway) in apps.iter().zip(&state_dirs).zip(gateways) {
        let service = load_app(app, gateway, state_dir, &runtime, &args, &observers).await?;
        services.push(service.clone());
        sites.push(Site {
            manifest: app.manifest_path.clone(),
            domains: app.gateway.domains.clone(),
            service,
        });
    }
    let sites = Arc::new(Sites::new(sites)?);

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        _ => None,
    };
    if args.max_request_head < MIN_REQUEST_HEAD as u64 {
        bail!("--max-request-head must be at least 8KiB (a request line and a few headers)");
    }
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_request_head: usize::try_from(args.max_request_head).unwrap_or(usize::MAX),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    let server = Server::bind(args.listen, tls.as_ref(), limits).await?;
    let address = server.local_addr()?;
    println!("Serving {}://{address}", server.scheme());
    for (service, domains) in sites.apps() {
        let index = services
            .iter()
            .position(|s| Arc::ptr_eq(s, &service))
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
    if let Some(admin) = admin {
        println!("Metrics on http://{admin}/metrics");
    }
    if traces.is_some() {
        println!("Exporting traces over OTLP");
    }
    tracing::info!("ready in {} ms", started.elapsed().as_millis());
    let served = server.serve(sites).await;
    if let Some(traces) = traces {
        tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    }
    served
}

/// What watches every app's requests: metrics and traces.
struct Observers {
    metrics: bool,
    traces: Option<Arc<Traces>>,
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

/// Prepares one app: its data tier, start-up data, components and gateway.
async fn load_app(
    app: &App,
    gateway: GatewayPolicies,
    state_dir: &Path,
    runtime: &Runtime,
    args: &UpArgs,
    observers: &Observers,
) -> Result<Arc<AppService>> {
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("logs"));
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let variables = crate::cli::parse_variables(&args.variables)?;
    let transaction_limit = args
        .request_timeout
        .unwrap_or(crate::data::sqlite::DEFAULT_TRANSACTION_LIMIT);
    let data = DataTier::build(
        app,
        &runtime_config,
        state_dir,
        &variables,
        transaction_limit,
    )
    .await?;
    startup::apply_key_values(&data, &args.key_values).await?;
    startup::apply_sqlite(&data, &args.sqlite, Path::new("."))?;

    let in_process: InProcessSlot = Arc::default();
    let components = ComponentContext {
        app,
        runtime,
        args,
        data: &data,
        in_process: &in_process,
        staging: state_dir.join("files"),
        log_dir: &log_dir,
    };
    let pools = components.http_pools()?;
    crate::trigger_redis::subscribe(components.redis_subscriptions()?).await?;
    let file_servers = file_servers(app, state_dir)?;
    let gateway = Gateway::build(gateway, &app.gateway, state_dir, &pools).await?;
    let concurrency: BTreeMap<&str, Arc<Semaphore>> = app
        .components
        .values()
        .filter_map(|c| {
            let cap = c.ledge.max_concurrent_requests?;
            Some((c.id.as_str(), Arc::new(Semaphore::new(cap))))
        })
        .collect();
    let mut routes = Vec::new();
    for trigger in &app.triggers {
        let Some(route) = &trigger.route else {
            continue;
        };
        let target = match &trigger.handler {
            TriggerHandler::Component(id) => match file_servers.get(id) {
                Some(files) => Target::Files {
                    id: id.as_str().into(),
                    files: files.clone(),
                },
                None => Target::Component {
                    id: id.as_str().into(),
                    pool: pools[id].clone(),
                    headers: RouteHeaders::new(route),
                    concurrency: concurrency.get(id.as_str()).cloned(),
                },
            },
            TriggerHandler::Static(response) => Target::Static(response.clone()),
        };
        let guard = gateway.guard(route.raw());
        routes.push((route.clone(), Endpoint { target, guard }));
    }
    let chained = pools
        .into_iter()
        .map(|(id, pool)| {
            let target = Target::Component {
                id: id.as_str().into(),
                pool,
                headers: CHAINING_ROUTE.1.clone(),
                concurrency: concurrency.get(id.as_str()).cloned(),
            };
            (id, target)
        })
        .collect();
    let service = Arc::new(AppService {
        name: app.name.clone(),
        version: app.version.clone(),
        router: Router::new(routes),
        gateway,
        metrics: observers.metrics,
        traces: observers.traces.clone(),
        max_request_body: args.max_request_body_size,
        chained,
    });
    // Weak: the app's instances call back into it, and must not keep it alive.
    let service_in_process: Weak<dyn InProcess> = Arc::downgrade(&service) as Weak<AppService>;
    let _ = in_process.set(service_in_process);
    Ok(service)
}

/// Where compiled components are cached: `<state-dir>/cache`, or what `--cache`'s wasmtime
/// cache configuration says; `None` with `--disable-cache` or `enabled = false`.
fn compile_cache_dir(args: &UpArgs, state_dir: &Path) -> Result<Option<PathBuf>> {
    /// The parts of wasmtime's cache configuration that apply to ledge's compile cache; its
    /// cleanup and compression settings have no counterpart and are ignored.
    #[derive(serde::Deserialize)]
    struct WasmtimeCacheFile {
        cache: WasmtimeCache,
    }
    #[derive(serde::Deserialize)]
    struct WasmtimeCache {
        #[serde(default = "enabled_by_default")]
        enabled: bool,
        directory: Option<PathBuf>,
    }
    fn enabled_by_default() -> bool {
        true
    }
    if args.disable_cache {
        return Ok(None);
    }
    let Some(file) = &args.cache else {
        return Ok(Some(state_dir.join("cache")));
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--cache {}: cannot read the file", file.display()))?;
    let config: WasmtimeCacheFile = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "--cache {}: not a wasmtime cache configuration: {}\n  fix: write it as `[cache]` with `enabled = true` and `directory = \"...\"`",
            file.display(),
            e.message()
        )
    })?;
    if !config.cache.enabled {
        return Ok(None);
    }
    Ok(Some(config.cache.directory.map_or_else(
        || state_dir.join("cache"),
        |directory| {
            // A relative directory is taken relative to the file.
            file.parent().unwrap_or(Path::new(".")).join(directory)
        },
    )))
}

/// What loading a component needs from the app and the command line.
struct ComponentContext<'a> {
    app: &'a App,
    runtime: &'a Runtime,
    args: &'a UpArgs,
    data: &'a DataTier,
    in_process: &'a InProcessSlot,
    staging: PathBuf,
    log_dir: &'a Path,
}

impl ComponentContext<'_> {
    /// Compiles (or loads from the cache) component `id` and gathers its instances' settings.
    fn load(&self, id: &str) -> Result<(wasmtime::component::Component, PoolSettings)> {
        let (app, args) = (self.app, self.args);
        let component = &app.components[id];
        let compile_started = Instant::now();
        let (compiled, outcome) = crate::engine::load_component(
            self.runtime.engine(),
            &component.source,
            self.runtime.settings().cache_dir.as_deref(),
        )
        .map_err(|error| self.source_error(id, error))?;
        let how = match outcome {
            CompileOutcome::CacheHit => "loaded from the compile cache",
            CompileOutcome::Compiled => "compiled",
        };
        tracing::info!(component = %id, "{how} in {} ms", compile_started.elapsed().as_millis());

        let allowed_hosts = app.allowed_hosts(component, &self.data.app_variables)?;
        let mut environment: BTreeMap<String, String> = component.environment.clone();
        environment.extend(args.env.iter().cloned());
        let settings = PoolSettings {
            app_name: app.name.clone(),
            max_instance_memory: args
                .max_instance_memory
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX)),
            max_instance_reuse_count: component
                .ledge
                .max_instance_reuse_count
                .or(args.max_instance_reuse_count.map(|n| n as usize)),
            max_instance_concurrent_reuse_count: component
                .ledge
                .max_instance_concurrent_reuse_count
                .or(args.max_instance_concurrent_reuse_count.map(|n| n as usize)),
            request_timeout: args.request_timeout,
            environment: environment.into_iter().collect(),
            preopens: files::mounts(app, component, &self.staging)?,
            log: GuestLog::open(
                id,
                Some(self.log_dir),
                args.follow.is_empty() || args.follow.iter().any(|f| f == id),
            )
            .with_context(|| format!("cannot open the log directory {}", self.log_dir.display()))?,
            grants: self.data.grants(id),
            allowed_hosts: Arc::new(allowed_hosts),
            in_process: self.in_process.clone(),
            wagi: component.wagi.clone(),
        };
        Ok((compiled, settings))
    }

    /// An error about component `id`'s `.wasm`, at its `source` line.
    fn source_error(&self, id: &str, error: anyhow::Error) -> anyhow::Error {
        let component = &self.app.components[id];
        anyhow!(self
            .app
            .error_at(component.source_line, format!("component.{id}.source"))
            .with_message(format!("{}: {error:#}", component.source.display()))
            .fix("rebuild the component for wasm32-wasip2 (a wasi:http component) or check the path"))
    }

    /// Every component an HTTP trigger uses, with its pool.
    fn http_pools(&self) -> Result<BTreeMap<String, Arc<ComponentPool>>> {
        let mut pools = BTreeMap::new();
        for trigger in &self.app.triggers {
            let TriggerHandler::Component(id) = &trigger.handler else {
                continue;
            };
            if pools.contains_key(id) || self.app.components[id].ledge.static_files.is_some() {
                continue;
            }
            let (compiled, settings) = self.load(id)?;
            let pool = ComponentPool::new(self.runtime, id, &compiled, settings)
                .map_err(|error| self.source_error(id, error))?;
            tracing::debug!(component = %id, "serves {}", pool.kind());
            pools.insert(id.clone(), Arc::new(pool));
        }
        Ok(pools)
    }

    /// The app's Redis trigger subscriptions, their components loaded.
    fn redis_subscriptions(&self) -> Result<Vec<Subscription>> {
        let mut handlers: BTreeMap<&str, Arc<MessageHandler>> = BTreeMap::new();
        let mut subscriptions = Vec::new();
        for trigger in &self.app.redis_triggers {
            let id = trigger.component.as_str();
            let handler = match handlers.get(id) {
                Some(handler) => handler.clone(),
                None => {
                    let (compiled, settings) = self.load(id)?;
                    let handler = MessageHandler::new(self.runtime, id, &compiled, settings)
                        .map_err(|error| self.source_error(id, error))?;
                    handlers.entry(id).or_insert(Arc::new(handler)).clone()
                }
            };
            let address = self.app.redis_address(trigger, &self.data.app_variables)?;
            subscriptions.push(Subscription {
                address,
                channel: trigger.channel.clone(),
                component: id.to_string(),
                handler,
            });
        }
        Ok(subscriptions)
    }
}

/// The host-side file servers of the app's `static_files` components, by id.
fn file_servers(app: &App, state_dir: &Path) -> Result<BTreeMap<String, Arc<FileServer>>> {
    let staging = state_dir.join("files");
    app.components
        .values()
        .filter_map(|component| Some((component, component.ledge.static_files.clone()?)))
        .map(|(component, settings)| {
            let mounts = files::mounts(app, component, &staging)?;
            let server = FileServer::new(mounts, settings)
                .with_context(|| format!("component `{}`", component.id))?;
            Ok((component.id.clone(), Arc::new(server)))
        })
        .collect()
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
