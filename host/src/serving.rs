//! What `ledge up` and `ledge node` share: the [`Host`] (engine, metrics, traces) built from
//! the serving flags, an app loaded into a served [`AppService`], and the bound listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::sync::Semaphore;
use wasmtime::ProfilingStrategy;

use crate::cli::{GuestProfiler, ServeArgs};
use crate::data::kv::SharedStore;
use crate::data::replica::Replication;
use crate::data::runtime_config::RuntimeConfig;
use crate::data::startup::Migration;
use crate::data::{DataTier, Opening, startup};
use crate::engine::{
    CompileOutcome, ComponentPool, EngineSettings, GuestLog, LoadedComponent, MessageHandler,
    Optimization, PoolSettings, Runtime,
};
use crate::files;
use crate::gateway::traces::Traces;
use crate::gateway::{Gateway, GatewayPolicies, QuotaCounts};
use crate::manifest::{App, Setting, TriggerHandler};
use crate::outbound_http::{InProcess, InProcessSlot};
use crate::router::Router;
use crate::server::{
    AppService, CHAINING_ROUTE, ConnectionLimits, Endpoint, FileServer, MIN_REQUEST_HEAD,
    RouteHeaders, Server, Target, TlsFiles,
};
use crate::trigger_redis::{Listening, Subscription};

/// The engine and the observers every app of one process shares, with the flags they came
/// from.
pub struct Host {
    /// Compiles and runs the components (shared with their optimizing compiles).
    pub runtime: Arc<Runtime>,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The serving flags.
    pub args: ServeArgs,
    /// Where `/metrics` is served, when it is.
    pub admin: Option<SocketAddr>,
    /// The OTLP exporter, when traces are exported.
    pub traces: Option<Arc<Traces>>,
    /// Where each app's API-key quotas are counted, given the app's name, when not in its own
    /// state directory (under `ledge node`: in the cluster, across nodes).
    pub shared_counts: Option<CountsByApp>,
    /// What the apps' embedded stores and databases are replicated through (under
    /// `ledge node`: the cluster).
    pub replication: Option<Arc<dyn Replication>>,
}

/// Gives an app's quota-count store by the app's name.
pub type CountsByApp = Box<dyn Fn(&str) -> SharedStore + Send + Sync>;

/// The engine, built on a blocking thread while the caller reads its apps: building it takes
/// milliseconds (the pooling allocator maps and guards a thousand fiber stacks), which start-up
/// need not wait for.
pub struct RuntimeBuild(tokio::task::JoinHandle<Result<Runtime>>);

impl RuntimeBuild {
    /// Starts building the engine the serving flags ask for.
    pub fn begin(args: &ServeArgs) -> Self {
        let settings = EngineSettings {
            pooling: !args.disable_pooling,
            request_timeout: args.request_timeout,
            profiler: match args.profile {
                None => ProfilingStrategy::None,
                Some(GuestProfiler::Perfmap) => ProfilingStrategy::PerfMap,
                Some(GuestProfiler::Jitdump) => ProfilingStrategy::JitDump,
            },
            baseline_above: args.baseline_compile_above,
        };
        Self(tokio::task::spawn_blocking(move || {
            Runtime::new(settings, crate::capabilities::ALL)
        }))
    }

    async fn finish(self) -> Result<Runtime> {
        self.0.await.context("building the engine failed")?
    }
}

impl Host {
    /// Starts the host on the engine `runtime` is building (compile cache in `cache_dir`): the
    /// metrics listener and the trace exporter. Metrics come first, so the pools register
    /// theirs with the recorder.
    pub async fn start(
        args: ServeArgs,
        runtime: RuntimeBuild,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let runtime = Arc::new(runtime.finish().await?);
        let admin = match args.admin_listen {
            Some(address) => Some(crate::server::admin::serve(address).await?),
            None => None,
        };
        let traces = Traces::start(args.otlp_endpoint.as_deref())?.map(Arc::new);
        Ok(Self {
            runtime,
            cache_dir,
            args,
            admin,
            traces,
            shared_counts: None,
            replication: None,
        })
    }

    /// Binds the listener the flags ask for (TLS, connection limits).
    pub async fn bind(&self) -> Result<Server> {
        let args = &self.args;
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
        Server::bind(args.listen, tls.as_ref(), limits).await
    }

    /// Prints where metrics and traces go.
    pub fn print_observers(&self) {
        if let Some(admin) = self.admin {
            println!("Metrics on http://{admin}/metrics");
        }
        if self.traces.is_some() {
            println!("Exporting traces over OTLP");
        }
    }

    /// Flushes the traces still buffered.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(traces) = self.traces.clone() {
            tokio::task::spawn_blocking(move || traces.shutdown()).await?;
        }
        Ok(())
    }
}

/// Checks and configures an app's gateway policies, with `--trusted-proxy` replacing the
/// manifest's `trusted_proxies`. Done before anything compiles, so a bad policy fails fast.
pub fn gateway_policies(app: &mut App, args: &ServeArgs) -> Result<GatewayPolicies> {
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
    Ok(GatewayPolicies::configure(&app.gateway)?)
}

/// Data written into an app's stores before it serves (`ledge up --key-value`, `--sqlite`).
#[derive(Default)]
pub struct Seed<'a> {
    /// Keys set in the `default` store.
    pub key_values: &'a [(String, String)],
    /// SQL or `@migration.sql[:database]` arguments, in order.
    pub sqlite: &'a [String],
    /// Migrations deployed with the version (`ledge deploy --sqlite`), in order.
    pub migrations: &'a [Migration],
}

/// An app ready to serve, with what it runs in the background (its Redis subscriptions),
/// which stops when this is dropped.
pub struct LoadedApp {
    /// The app's request path.
    pub service: Arc<AppService>,
    _listening: Listening,
}

/// Where one app keeps what it writes.
pub struct AppDirs {
    /// Its data, logs and gateway state.
    pub state: PathBuf,
    /// Where its `files` are copied for mounting. A node gives each version its own, so a new
    /// version never rewrites what the old one still mounts.
    pub staging: PathBuf,
}

impl AppDirs {
    /// Everything under `state`, as `ledge up` keeps it.
    pub fn under(state: &Path) -> Self {
        Self {
            state: state.to_owned(),
            staging: state.join("files"),
        }
    }
}

/// Prepares one app: its data tier, start-up data, components and gateway.
pub async fn load_app(
    host: &Host,
    app: &App,
    gateway: GatewayPolicies,
    dirs: &AppDirs,
    seed: &Seed<'_>,
) -> Result<LoadedApp> {
    let (runtime, args) = (&host.runtime, &host.args);
    let cache_dir = host.cache_dir.as_deref();
    let state_dir = dirs.state.as_path();
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
    let opening = Opening {
        state_dir,
        replication: host
            .replication
            .as_deref()
            .map(|replication| (app.name.as_str(), replication)),
    };
    let data = DataTier::build(
        app,
        &runtime_config,
        &opening,
        &variables,
        transaction_limit,
    )
    .await?;
    startup::apply_key_values(&data, seed.key_values).await?;
    startup::apply_sqlite(&data, seed.sqlite, Path::new(".")).await?;
    startup::apply_migrations(&data, seed.migrations).await?;

    let in_process: InProcessSlot = Arc::default();
    let components = ComponentContext {
        app,
        runtime,
        cache_dir,
        args,
        data: &data,
        in_process: &in_process,
        staging: dirs.staging.clone(),
        log_dir: &log_dir,
    };
    let HttpPools { pools, pending } = components.http_pools()?;
    let listening = crate::trigger_redis::subscribe(components.redis_subscriptions()?).await?;
    let file_servers = file_servers(app, &dirs.staging)?;
    let counts = match &host.shared_counts {
        Some(counts) => QuotaCounts::Shared(counts(&app.name)),
        None => QuotaCounts::StateDir(state_dir),
    };
    let gateway = Gateway::build(gateway, &app.gateway, counts, &pools).await?;
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
        metrics: host.admin.is_some(),
        traces: host.traces.clone(),
        max_request_body: args.max_request_body_size,
        chained,
    });
    // Weak: the app's instances call back into it, and must not keep it alive.
    let service_in_process: Weak<dyn InProcess> = Arc::downgrade(&service) as Weak<AppService>;
    let _ = in_process.set(service_in_process);
    optimize_in_background(runtime.clone(), pending);
    Ok(LoadedApp {
        service,
        _listening: listening,
    })
}

/// The pools of an app's HTTP components, by id, and the optimizing compiles still to do.
struct HttpPools {
    pools: BTreeMap<String, Arc<ComponentPool>>,
    pending: Vec<PendingOptimization>,
}

/// A baseline-compiled component whose optimized code is still to compile.
struct PendingOptimization {
    id: String,
    /// Gone when the app was replaced meanwhile.
    pool: Weak<ComponentPool>,
    optimization: Optimization,
}

/// Compiles the optimized code of baseline-compiled components, one at a time on a thread
/// of its own (a process exiting meanwhile does not wait for it), and swaps each into its
/// pool when ready. The code goes to the compile cache even when its pool is gone.
fn optimize_in_background(runtime: Arc<Runtime>, pending: Vec<PendingOptimization>) {
    if pending.is_empty() {
        return;
    }
    let optimizing = move || {
        for PendingOptimization {
            id,
            pool,
            optimization,
        } in pending
        {
            let started = Instant::now();
            let swapped = optimization
                .compile(runtime.engine())
                .and_then(|component| match pool.upgrade() {
                    Some(pool) => pool.recompiled(&runtime, &component).map(|()| true),
                    None => Ok(false),
                });
            match swapped {
                Ok(true) => tracing::info!(
                    component = %id,
                    "optimized in {} ms; new requests run the optimized code",
                    started.elapsed().as_millis()
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    component = %id,
                    "stays on its baseline code, the optimizing compile failed: {error:#}"
                ),
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("ledge-optimize".into())
        .spawn(optimizing)
    {
        tracing::warn!("cannot start optimizing the baseline-compiled components: {error}");
    }
}

/// Where compiled components are cached: `<state-dir>/cache`, or what `--cache`'s wasmtime
/// cache configuration says; `None` with `--disable-cache` or `enabled = false`.
pub fn compile_cache_dir(args: &ServeArgs, state_dir: &Path) -> Result<Option<PathBuf>> {
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
    runtime: &'a Arc<Runtime>,
    cache_dir: Option<&'a Path>,
    args: &'a ServeArgs,
    data: &'a DataTier,
    in_process: &'a InProcessSlot,
    staging: PathBuf,
    log_dir: &'a Path,
}

impl ComponentContext<'_> {
    /// Compiles (or loads from the cache) component `id` and gathers its instances' settings.
    /// With `baseline`, a big component missing from the cache may come back baseline-compiled,
    /// with its optimization still to do.
    fn load(&self, id: &str, baseline: bool) -> Result<(LoadedComponent, PoolSettings)> {
        let (app, args) = (self.app, self.args);
        let component = &app.components[id];
        let compile_started = Instant::now();
        let loaded = crate::engine::load_component(
            self.runtime,
            &component.source,
            self.cache_dir,
            baseline,
        )
        .map_err(|error| self.source_error(id, error))?;
        let how = match loaded.outcome {
            CompileOutcome::CacheHit => "loaded from the compile cache",
            CompileOutcome::Compiled => "compiled",
            CompileOutcome::Baseline => "compiled by the baseline compiler (optimizing next)",
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
        Ok((loaded, settings))
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

    /// Every component an HTTP trigger uses, with its pool, and the optimizing compiles still
    /// to do for those that were baseline-compiled.
    fn http_pools(&self) -> Result<HttpPools> {
        let mut pools = BTreeMap::new();
        let mut pending = Vec::new();
        for trigger in &self.app.triggers {
            let TriggerHandler::Component(id) = &trigger.handler else {
                continue;
            };
            if pools.contains_key(id) || self.app.components[id].ledge.static_files.is_some() {
                continue;
            }
            let (loaded, settings) = self.load(id, true)?;
            let pool = ComponentPool::new(self.runtime, id, &loaded.component, settings)
                .map_err(|error| self.source_error(id, error))?;
            tracing::debug!(component = %id, "serves {}", pool.kind());
            let pool = Arc::new(pool);
            if let Some(optimization) = loaded.optimization {
                pending.push(PendingOptimization {
                    id: id.clone(),
                    pool: Arc::downgrade(&pool),
                    optimization,
                });
            }
            pools.insert(id.clone(), pool);
        }
        Ok(HttpPools { pools, pending })
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
                    let (loaded, settings) = self.load(id, false)?;
                    let handler =
                        MessageHandler::new(self.runtime, id, &loaded.component, settings)
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
fn file_servers(app: &App, staging: &Path) -> Result<BTreeMap<String, Arc<FileServer>>> {
    app.components
        .values()
        .filter_map(|component| Some((component, component.ledge.static_files.clone()?)))
        .map(|(component, settings)| {
            let mounts = files::mounts(app, component, staging)?;
            let server = FileServer::new(mounts, settings)
                .with_context(|| format!("component `{}`", component.id))?;
            Ok((component.id.clone(), Arc::new(server)))
        })
        .collect()
}
