//! Instances of one component and the way requests reach them.
//!
//! wasmtime-wasi-http's [`ProxyHandler`] does the scheduling: it starts a worker (a store and
//! an instance) when no idle one can take a request, and asks [`PoolWorker`] whether a worker
//! may take another. With the defaults every p2 request gets a fresh instance, while p3
//! instances are reused (up to 128 requests, 16 at once), as in Spin and `wasmtime serve`.
//! Per-component settings or command-line flags change that.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use arc_swap::ArcSwap;
use wasmtime::component::{Component, GuestTaskId, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre,
    ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::Runtime;
use super::guest::GuestState;
use super::guest_output::GuestLog;
use super::wagi::WagiHandler;
use crate::allowed_hosts::AllowedHosts;
use crate::data::Grants;
use crate::data::replica::bookmark::Bookmark;
use crate::manifest::Wagi;
use crate::outbound_http::{InProcessSlot, OutboundPolicy};

/// Spin's and `wasmtime serve`'s instance reuse defaults, per handler kind.
const P2_REUSE: (usize, usize) = (1, 1);
const P3_REUSE: (usize, usize) = (128, 16);

/// How long past the request timeout an overrunning instance is ended.
const EXPIRATION_GRACE: Duration = Duration::from_millis(100);

/// How long an idle reusable instance is kept before it is dropped.
const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP handler a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// `wasi:http/incoming-handler@0.2.x`.
    P2,
    /// `wasi:http/handler@0.3.x`.
    P3,
    /// `wasi:cli/run`, run once per request as a WAGI (CGI-style) command.
    Wagi,
}

impl std::fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::P2 => "wasi:http/incoming-handler@0.2 (p2)",
            Self::P3 => "wasi:http/handler@0.3 (p3)",
            Self::Wagi => "wasi:cli/run as a WAGI command",
        })
    }
}

/// Per-component settings for its instances.
#[derive(Clone)]
pub struct PoolSettings {
    /// The name of the app the component belongs to (a metrics label).
    pub app_name: String,
    /// The most linear memory one instance may grow to, in bytes.
    pub max_instance_memory: Option<usize>,
    /// Requests one instance may serve in total (default by handler kind).
    pub max_instance_reuse_count: Option<usize>,
    /// Requests one instance may serve at once (p3 only; default 16).
    pub max_instance_concurrent_reuse_count: Option<usize>,
    /// The longest a request may run; `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// WASI environment variables.
    pub environment: Vec<(String, String)>,
    /// Read-only directory mounts: (host directory, guest path).
    pub preopens: Vec<(PathBuf, String)>,
    /// Where the guest's stdout and stderr go.
    pub log: GuestLog,
    /// The stores, databases and variables the component may use.
    pub grants: Arc<Grants>,
    /// The component's `allowed_outbound_hosts`.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Where requests to `self` and `*.spin.internal` go.
    pub in_process: InProcessSlot,
    /// Run the component as a WAGI command rather than a `wasi:http` handler.
    pub wagi: Option<Wagi>,
}

/// Why a request did not get a response from the guest.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The guest ran past the request timeout.
    #[error("the guest did not respond within the request timeout")]
    Timeout,
    /// No instance could be created (memory or instance limits).
    #[error("no instance could be created: {0}")]
    Unavailable(String),
    /// The guest trapped, panicked or returned an error.
    #[error("the guest failed: {0}")]
    Failed(String),
}

/// The instances of one component.
pub struct ComponentPool {
    kind: HandlerKind,
    id: String,
    settings: PoolSettings,
    /// Replaced once, when a baseline-compiled component's optimized code is ready.
    handler: ArcSwap<Handler>,
}

/// How requests reach the component's instances.
enum Handler {
    /// A `wasi:http` handler, scheduled by wasmtime-wasi-http.
    Proxy(ProxyHandler<PoolState>),
    /// A WASI command, one run per request.
    Wagi(Box<WagiHandler>),
}

impl ComponentPool {
    /// Prepares `component` (linking its imports once) to serve requests.
    pub fn new(
        runtime: &Runtime,
        id: &str,
        component: &Component,
        settings: PoolSettings,
    ) -> Result<Self> {
        let kind = handler_kind(runtime.engine(), component, settings.wagi.is_some())?;
        let handler = Handler::new(runtime, id, component, kind, settings.clone())?;
        Ok(Self {
            kind,
            id: id.to_string(),
            settings,
            handler: ArcSwap::from_pointee(handler),
        })
    }

    /// Serves new requests from `component`, the same component compiled anew (its optimized
    /// code): requests in flight, and the instances they run on, finish on the old code.
    pub fn recompiled(&self, runtime: &Runtime, component: &Component) -> Result<()> {
        let handler = Handler::new(
            runtime,
            &self.id,
            component,
            self.kind,
            self.settings.clone(),
        )?;
        self.handler.store(Arc::new(handler));
        Ok(())
    }

    /// The handler the component exports.
    pub fn kind(&self) -> HandlerKind {
        self.kind
    }

    /// Runs `request` through the component's handler; the data it reads includes what
    /// `bookmark` has seen, and its writes raise it.
    ///
    /// The request timeout is enforced here, so the client gets its 504 on time; the instance
    /// that overran is ended a moment later by its worker's expiration (a WAGI run is simply
    /// dropped).
    pub async fn invoke(
        &self,
        request: http::Request<WasiBody>,
        bookmark: Arc<Bookmark>,
    ) -> Result<http::Response<WasiBody>, InvokeError> {
        let timeout = self.settings.request_timeout;
        match &*self.handler.load_full() {
            Handler::Proxy(handler) => {
                let handled = handler.handle(bookmark, request);
                within(timeout, handled).await?.map_err(|error| {
                    if error.downcast_ref::<ExpirationError>().is_some() {
                        InvokeError::Timeout
                    } else if let Some(instantiation) =
                        error.downcast_ref::<InstantiationError<Arc<Bookmark>>>()
                    {
                        InvokeError::Unavailable(format!("{:#}", instantiation.error))
                    } else {
                        InvokeError::Failed(format!("{error:?}"))
                    }
                })
            }
            Handler::Wagi(handler) => within(timeout, handler.handle(request, bookmark)).await?,
        }
    }
}

impl Handler {
    /// Links `component` and prepares the handler of `kind` that runs it.
    fn new(
        runtime: &Runtime,
        id: &str,
        component: &Component,
        kind: HandlerKind,
        settings: PoolSettings,
    ) -> Result<Self> {
        let instance_pre = super::link::link(runtime, id, component)?;
        let stores = Stores::new(runtime, component.engine(), id, settings);
        let pre = match kind {
            HandlerKind::P2 => ProxyPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre)
                    .map_err(|e| anyhow!("{e:#}"))?,
            ),
            HandlerKind::P3 => ProxyPre::P3(
                wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre)
                    .map_err(|e| anyhow!("{e:#}"))?,
            ),
            HandlerKind::Wagi => {
                let wagi = stores
                    .settings
                    .wagi
                    .clone()
                    .expect("handler_kind answers Wagi only for WAGI settings");
                let handler = WagiHandler::new(instance_pre, wagi, stores)?;
                return Ok(Self::Wagi(Box::new(handler)));
            }
        };
        let (reuse, concurrent) = if kind == HandlerKind::P3 {
            P3_REUSE
        } else {
            P2_REUSE
        };
        let max_reuse = stores.settings.max_instance_reuse_count.unwrap_or(reuse);
        // A p2 handler call occupies its instance until it returns.
        let max_concurrent = match kind {
            HandlerKind::P3 => stores
                .settings
                .max_instance_concurrent_reuse_count
                .unwrap_or(concurrent),
            _ => 1,
        };
        let state = PoolState {
            stores,
            pre,
            max_reuse,
            max_concurrent,
        };
        Ok(Self::Proxy(ProxyHandler::new(state)))
    }
}

/// Awaits `work`, or fails with [`InvokeError::Timeout`] once `timeout` has passed.
pub(super) async fn within<T>(
    timeout: Option<Duration>,
    work: impl Future<Output = T>,
) -> Result<T, InvokeError> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, work)
            .await
            .map_err(|_elapsed| InvokeError::Timeout),
        None => Ok(work.await),
    }
}

/// Finds which handler the component exports: exactly one `wasi:http` handler, or
/// `wasi:cli/run` when its triggers run it as a WAGI command.
fn handler_kind(engine: &Engine, component: &Component, wagi: bool) -> Result<HandlerKind> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports_any = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
    let run = exports_any("wasi:cli/run@0.2");
    if wagi {
        return if run {
            Ok(HandlerKind::Wagi)
        } else {
            bail!(
                "its trigger runs it with `executor = {{ type = \"wagi\" }}`, but it exports no wasi:cli/run (a WASI command, e.g. a `main` built for wasm32-wasip1); it exports {exports:?}"
            )
        };
    }
    let p2 = exports_any("wasi:http/incoming-handler@0.2");
    let p3 = exports_any("wasi:http/handler@0.3");
    match (p2, p3) {
        (true, false) => Ok(HandlerKind::P2),
        (false, true) => Ok(HandlerKind::P3),
        (true, true) => bail!(
            "the component exports both wasi:http/incoming-handler@0.2 and wasi:http/handler@0.3; export one handler"
        ),
        (false, false) if run => bail!(
            "the component is a WASI command (it exports wasi:cli/run, not a wasi:http handler); to run it CGI-style once per request, add `executor = {{ type = \"wagi\" }}` to its `[[trigger.http]]`"
        ),
        (false, false) => bail!(
            "the component exports no HTTP handler (wasi:http/incoming-handler@0.2.x or wasi:http/handler@0.3.x); it exports {exports:?}"
        ),
    }
}

/// Makes the stores of one component's instances: WASI context, limits and epoch deadline.
pub(super) struct Stores {
    pub(super) id: Arc<str>,
    /// `ledge_instances_created_total` for this component (a no-op without `--admin-listen`).
    instances_created: metrics::Counter,
    pub(super) engine: Engine,
    epoch_ticks: bool,
    grant: super::GrantFn,
    pub(super) settings: PoolSettings,
}

impl Stores {
    /// The stores of component `id`'s instances, in `engine` (the one it was compiled by).
    pub(super) fn new(
        runtime: &Runtime,
        engine: &Engine,
        id: &str,
        settings: PoolSettings,
    ) -> Self {
        Self {
            id: id.into(),
            instances_created: metrics::counter!(
                "ledge_instances_created_total",
                "app" => settings.app_name.clone(),
                "component" => id.to_string()
            ),
            engine: engine.clone(),
            epoch_ticks: runtime.epoch_ticks(),
            grant: runtime.grant(),
            settings,
        }
    }

    /// A store for one new instance; `customize` adds to its WASI context (stdin, arguments).
    pub(super) fn new_store(
        &self,
        customize: impl FnOnce(&mut WasiCtxBuilder),
    ) -> Result<Store<GuestState>> {
        self.instances_created.increment(1);
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.settings.environment);
        for (host, guest) in &self.settings.preopens {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| anyhow!("cannot mount {} at {guest}: {e:#}", host.display()))?;
        }
        wasi.stdout(self.settings.log.stream("stdout"));
        wasi.stderr(self.settings.log.stream("stderr"));
        (self.grant)(&mut wasi, &self.id, &self.settings.allowed_hosts);
        customize(&mut wasi);
        let mut limits = StoreLimitsBuilder::new();
        if let Some(bytes) = self.settings.max_instance_memory {
            limits = limits.memory_size(bytes);
        }
        let state = GuestState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: OutboundPolicy::new(
                self.id.clone(),
                self.settings.allowed_hosts.clone(),
                self.settings.in_process.clone(),
            ),
            limits: limits.build(),
            grants: self.settings.grants.clone(),
            consistency: Arc::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        if self.epoch_ticks {
            // Long-running guests yield to the scheduler every tick; the worker's expiration
            // (or, for WAGI, dropping the run) then ends the instance when the request
            // timeout passes.
            store.epoch_deadline_async_yield_and_update(1);
            store.set_epoch_deadline(1);
        }
        Ok(store)
    }
}

/// What every worker of one `wasi:http` component shares.
struct PoolState {
    stores: Stores,
    pre: ProxyPre<GuestState>,
    max_reuse: usize,
    max_concurrent: usize,
}

impl PoolState {
    /// How long an instance may work on a request before it is ended: a little past the
    /// request timeout, which `ComponentPool::invoke` has already answered with a 504.
    fn instance_timeout(&self) -> Duration {
        self.stores
            .settings
            .request_timeout
            .map_or(Duration::MAX, |timeout| timeout + EXPIRATION_GRACE)
    }
}

impl HandlerState for PoolState {
    type StoreData = GuestState;
    type WorkerExpiration = Expiration;
    type WorkerState = PoolWorker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<GuestState, Expiration, PoolWorker>> {
        let mut store = self
            .stores
            .new_store(|_| {})
            .map_err(|e| wasmtime::format_err!("{e:#}"))?;
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy,
            view: GuestState::http,
            expiration: Expiration {
                idle_timeout: IDLE_INSTANCE_TIMEOUT,
                request_timeout: self.instance_timeout(),
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365))),
            },
            state: PoolWorker {
                id: self.stores.id.clone(),
                max_reuse: self.max_reuse,
                max_concurrent: self.max_concurrent,
                request_timeout: self.instance_timeout(),
            },
        })
    }
}

/// Decides when a worker (one instance) has done its time.
pub struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// The per-instance policy: how many requests it takes, and when a request expires.
pub struct PoolWorker {
    id: Arc<str>,
    max_reuse: usize,
    max_concurrent: usize,
    request_timeout: Duration,
}

impl WorkerState for PoolWorker {
    type StoreData = GuestState;
    type RequestData = Arc<Bookmark>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, GuestState>,
        bookmark: Arc<Bookmark>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        store.data().consistency.enter(&bookmark);
        let timeout = self.request_timeout;
        Box::pin(async move {
            match Instant::now().checked_add(timeout) {
                Some(_) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        })
    }

    fn drop(&self, store: Store<GuestState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::debug!(component = %self.id, "instance ended with an error: {error:?}");
        }
        drop(store);
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// A component that exports each of `exports` as an empty instance: only the names
    /// matter here.
    fn exporting(runtime: &Runtime, exports: &[&str]) -> Component {
        let mut wat = String::from("(component\n");
        for (index, name) in exports.iter().enumerate() {
            wat.push_str(&format!(
                "(instance $i{index})\n(export \"{name}\" (instance $i{index}))\n"
            ));
        }
        wat.push(')');
        Component::new(runtime.engine(), wat::parse_str(&wat).unwrap()).unwrap()
    }

    #[test]
    fn the_handler_kind_is_read_from_the_exports() {
        let runtime = Runtime::bare();
        let kind = |exports: &[&str], wagi: bool| {
            handler_kind(runtime.engine(), &exporting(&runtime, exports), wagi)
                .map_err(|e| e.to_string())
        };
        const P2: &str = "wasi:http/incoming-handler@0.2.3";
        const P3: &str = "wasi:http/handler@0.3.0";
        const RUN: &str = "wasi:cli/run@0.2.0";
        assert_eq!(kind(&[P2], false).unwrap(), HandlerKind::P2);
        assert_eq!(kind(&[P3], false).unwrap(), HandlerKind::P3);
        assert_eq!(kind(&[RUN], true).unwrap(), HandlerKind::Wagi);
        assert!(
            kind(&[P2, P3], false)
                .unwrap_err()
                .contains("export one handler")
        );
        assert!(kind(&[RUN], false).unwrap_err().contains("type = \"wagi\""));
        assert!(
            kind(&[P2], true)
                .unwrap_err()
                .contains("exports no wasi:cli/run")
        );
        assert!(
            kind(&[], false)
                .unwrap_err()
                .contains("exports no HTTP handler")
        );
    }

    #[test]
    fn an_instance_takes_requests_up_to_its_reuse_and_concurrency_limits() {
        let worker = PoolWorker {
            id: "c".into(),
            max_reuse: 3,
            max_concurrent: 2,
            request_timeout: Duration::MAX,
        };
        let accepts = |concurrent, total| worker.should_accept_request(concurrent, total);
        assert!(matches!(accepts(0, 0), ShouldAccept::Yes));
        assert!(matches!(accepts(1, 2), ShouldAccept::Yes));
        assert!(
            matches!(accepts(2, 2), ShouldAccept::No),
            "busy, but not done"
        );
        assert!(
            matches!(accepts(0, 3), ShouldAccept::Never),
            "done its time"
        );
        // The p2 default: a fresh instance per request.
        let fresh = PoolWorker {
            max_reuse: P2_REUSE.0,
            max_concurrent: 1,
            ..worker
        };
        assert!(matches!(
            fresh.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            fresh.should_accept_request(0, 1),
            ShouldAccept::Never
        ));
    }

    #[tokio::test]
    async fn an_instance_expires_by_its_idle_or_its_request_deadline() {
        let mut expiration = Expiration {
            idle_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3600),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        };
        let mut cx = Context::from_waker(Waker::noop());
        let two_seconds_ago = Instant::now() - Duration::from_secs(2);
        let mut poll = |status| Pin::new(&mut expiration).poll(&mut cx, status, two_seconds_ago);
        assert!(poll(WorkerStatus::Idle).is_ready(), "idle past its timeout");
        assert!(
            poll(WorkerStatus::Requests).is_pending(),
            "busy within its timeout"
        );
        assert!(poll(WorkerStatus::PostReturn).is_pending());

        // A request past its deadline ends the instance, however recently it was idle.
        let mut overrun = Expiration {
            idle_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(1),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        };
        let mut poll = |status| Pin::new(&mut overrun).poll(&mut cx, status, two_seconds_ago);
        assert!(
            poll(WorkerStatus::Requests).is_ready(),
            "past the request deadline"
        );
        assert!(
            poll(WorkerStatus::Idle).is_pending(),
            "idle within its timeout"
        );
    }

    #[tokio::test]
    async fn a_call_past_the_timeout_is_a_timeout() {
        let slow = tokio::time::sleep(Duration::from_secs(60));
        let result = within(Some(Duration::from_millis(10)), slow).await;
        assert!(matches!(result, Err(InvokeError::Timeout)));
        assert_eq!(within(None, async { 7 }).await.unwrap(), 7);
    }

    /// Code from the baseline compiler runs under the same rules as optimized code: the
    /// epoch ticks its engine too, so a guest that never returns yields and is timed out,
    /// and its stores have the same memory limit.
    #[cfg(target_arch = "x86_64")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn baseline_code_keeps_the_request_deadline_and_the_memory_limit() {
        let runtime = Runtime::bare_with(Some(Duration::from_millis(100)), 0);
        let engine = runtime
            .baseline_engine(0)
            .expect("x86-64 has a baseline compiler");
        assert!(!Engine::same(engine, runtime.engine()));
        let component = Component::new(
            engine,
            wat::parse_str(
                r#"(component
                  (core module $m
                    (memory 1)
                    (func (export "spin") (loop $forever (br $forever)))
                    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
                  (core instance $i (instantiate $m))
                  (func (export "spin") (canon lift (core func $i "spin")))
                  (func (export "grow") (param "pages" u32) (result s32)
                    (canon lift (core func $i "grow"))))"#,
            )
            .unwrap(),
        )
        .unwrap();
        let settings = PoolSettings {
            app_name: "test".into(),
            max_instance_memory: Some(4 << 16),
            max_instance_reuse_count: None,
            max_instance_concurrent_reuse_count: None,
            request_timeout: Some(Duration::from_millis(100)),
            environment: Vec::new(),
            preopens: Vec::new(),
            log: GuestLog::open("test", None, false).unwrap(),
            grants: Arc::default(),
            allowed_hosts: Arc::default(),
            in_process: Arc::default(),
            wagi: None,
        };
        let stores = Stores::new(&runtime, engine, "test", settings);
        let mut store = stores.new_store(|_| {}).unwrap();
        let instance = runtime
            .linker(engine)
            .instantiate_async(&mut store, &component)
            .await
            .unwrap();

        let grow = instance
            .get_typed_func::<(u32,), (i32,)>(&mut store, "grow")
            .unwrap();
        assert_eq!(grow.call_async(&mut store, (2,)).await.unwrap(), (1,));
        assert_eq!(
            grow.call_async(&mut store, (2,)).await.unwrap(),
            (-1,),
            "past the 4-page limit"
        );

        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        let timeout = Some(Duration::from_millis(100));
        let spun = within(timeout, spin.call_async(&mut store, ())).await;
        assert!(
            matches!(spun, Err(InvokeError::Timeout)),
            "it yields and times out"
        );
    }
}
