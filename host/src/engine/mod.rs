//! The wasmtime side of ledge: one [`Runtime`] (engines + linkers) for the apps, and a
//! [`ComponentPool`] per component that instantiates it and invokes its HTTP handler.
//!
//! The runtime has two compilers, each with its own engine: Cranelift, which optimizes and
//! serves everything in the end, and the baseline compiler Winch, about four times faster to
//! compile and slower to run, which serves a big component missing from the compile cache
//! while Cranelift compiles it in the background (see `compile`).
//!
//! - `compile`: `.wasm` -> compiled component, with componentizing and the compile cache;
//! - `link`: linking a component, standing in for the interfaces it imports and ledge lacks;
//! - `pool`: instances per request (or reused, when configured) and their limits;
//! - `guest`: what one instance owns (WASI context, HTTP context, output streams);
//! - `wagi`: components run as CGI-style commands, once per request;
//! - `message`: components that handle Redis trigger messages, an instance per message;

mod compile;
mod guest;
mod guest_output;
mod link;
mod message;
mod pool;
mod wagi;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Result, anyhow};
use wasmtime::component::Linker;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
    Strategy,
};
use wasmtime_wasi::WasiCtxBuilder;

use crate::allowed_hosts::AllowedHosts;

pub use compile::{CompileOutcome, LoadedComponent, Optimization, componentize, load_component};
pub use guest::GuestState;
pub use guest_output::GuestLog;
pub use message::MessageHandler;
pub use pool::{ComponentPool, HandlerKind, InvokeError, PoolSettings};

/// How often the epoch ticks when a request timeout is set: the granularity of timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings, from the command line.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Use the pooling instance allocator (the default; about twice as fast to instantiate).
    pub pooling: bool,
    /// The longest a request may run in the guest.
    pub request_timeout: Option<Duration>,
    /// How guest code is named for a native profiler, if at all.
    pub profiler: ProfilingStrategy,
    /// The size from which a component missing from the compile cache is compiled by the
    /// baseline compiler first; `u64::MAX` for never.
    pub baseline_above: u64,
}

/// The engines and linkers shared by every component of every app.
pub struct Runtime {
    /// Cranelift: what every component runs on once compiled.
    optimizing: Tier,
    /// Winch, built when first needed; `None` when it cannot be (not x86-64).
    baseline: OnceLock<Option<Tier>>,
    settings: EngineSettings,
    capabilities: Capabilities,
    epoch_ticker: Option<EpochTicker>,
}

/// One compiler's engine and the linker made for it.
struct Tier {
    engine: Engine,
    linker: Linker<GuestState>,
}

/// What the engine links beyond WASI and `wasi:http`: the host's capabilities, which the
/// caller lists (see `crate::capabilities`), so the engine links none of them by name.
#[derive(Clone, Copy)]
pub struct Capabilities {
    /// Adds their interfaces to the linker.
    pub link: fn(&mut Linker<GuestState>) -> wasmtime::Result<()>,
    /// Grants a new instance of a component what its WASI context may reach.
    pub grant: GrantFn,
}

/// Grants a new instance of `component` what its WASI context may reach, by its allowed hosts.
pub type GrantFn = fn(&mut WasiCtxBuilder, &Arc<str>, &Arc<AllowedHosts>);

impl Runtime {
    /// Builds the optimizing engine with the component model (sync and async) and links WASI
    /// p2 + p3, wasi:http p2 + p3 and the `capabilities`.
    pub fn new(settings: EngineSettings, capabilities: Capabilities) -> Result<Self> {
        let optimizing = Tier::new(&settings, capabilities, Strategy::Cranelift)?;
        let epoch_ticker = settings
            .request_timeout
            .map(|_| EpochTicker::start(optimizing.engine.clone()));
        Ok(Self {
            optimizing,
            baseline: OnceLock::new(),
            settings,
            capabilities,
            epoch_ticker,
        })
    }

    /// The optimizing engine, which every component ends up compiled for.
    pub fn engine(&self) -> &Engine {
        &self.optimizing.engine
    }

    /// The baseline engine, for a component of `size` bytes missing from the compile cache,
    /// when the settings ask for it first and it can be built.
    pub(crate) fn baseline_engine(&self, size: u64) -> Option<&Engine> {
        if size < self.settings.baseline_above {
            return None;
        }
        let tier = self.baseline.get_or_init(|| {
            match Tier::new(&self.settings, self.capabilities, Strategy::Winch) {
                Ok(tier) => {
                    if let Some(ticker) = &self.epoch_ticker {
                        ticker.also(tier.engine.clone());
                    }
                    Some(tier)
                }
                Err(error) => {
                    tracing::info!("no baseline compiler, compiling optimized only: {error:#}");
                    None
                }
            }
        });
        tier.as_ref().map(|tier| &tier.engine)
    }

    /// The linker for components compiled by `engine` (one of this runtime's).
    pub(crate) fn linker(&self, engine: &Engine) -> &Linker<GuestState> {
        match self.baseline.get().and_then(Option::as_ref) {
            Some(baseline) if Engine::same(engine, &baseline.engine) => &baseline.linker,
            _ => &self.optimizing.linker,
        }
    }

    /// The engine settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Grants a new instance what its WASI context may reach.
    pub(crate) fn grant(&self) -> GrantFn {
        self.capabilities.grant
    }

    /// Whether the epoch ticks (so timeouts are enforced).
    pub fn epoch_ticks(&self) -> bool {
        self.epoch_ticker.is_some()
    }

    /// A runtime with no capabilities and no pooling, for unit tests.
    #[cfg(test)]
    pub(crate) fn bare() -> Self {
        Self::bare_with(None, u64::MAX)
    }

    /// [`Runtime::bare`] with a request timeout and a baseline-compile size.
    #[cfg(test)]
    pub(crate) fn bare_with(request_timeout: Option<Duration>, baseline_above: u64) -> Self {
        let settings = EngineSettings {
            pooling: false,
            request_timeout,
            profiler: ProfilingStrategy::None,
            baseline_above,
        };
        let capabilities = Capabilities {
            link: |_| Ok(()),
            grant: |_, _, _| {},
        };
        Self::new(settings, capabilities).expect("a bare runtime builds")
    }
}

impl Tier {
    /// The engine of `compiler` and its linker. Only the optimizing engine pools instances:
    /// the baseline one serves a component for the seconds its optimized code takes, and a
    /// second pool would reserve its address space and stacks for good.
    fn new(
        settings: &EngineSettings,
        capabilities: Capabilities,
        compiler: Strategy,
    ) -> Result<Self> {
        let mut config = Config::new();
        config
            .strategy(compiler)
            .wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(settings.request_timeout.is_some())
            .profiler(settings.profiler);
        if settings.pooling && compiler == Strategy::Cranelift {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
        }
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("{e:#}"))?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        (capabilities.link)(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        Ok(Self { engine, linker })
    }
}

/// The pooling allocator, tuned for an instance per request.
///
/// Giving a slot back used to `madvise` its memory away, and the TLB shootdowns that follow
/// (an IPI to every core) were a quarter of the CPU time with a fresh instance per request (see
/// BENCHMARKS.md). Instead, the pages a guest actually dirtied are found with `PAGEMAP_SCAN`
/// (Linux 6.7+, skipped elsewhere) and reset with `memset`, up to a resident budget per slot,
/// and what still must be decommitted is batched.
fn pooling_config() -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .async_stack_keep_resident(KEEP_RESIDENT / 8)
        .decommit_batch_size(DECOMMIT_BATCH);
    pooling
}

/// Bytes of linear memory per pooled slot reset in place rather than decommitted.
const KEEP_RESIDENT: usize = 2 << 20;

/// Slots whose memory is decommitted together (one round of TLB shootdowns for the batch).
const DECOMMIT_BATCH: usize = 16;

/// A thread that advances the engines' epochs, so long-running guests yield and time out.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    engines: Arc<Mutex<Vec<Engine>>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engines = Arc::new(Mutex::new(vec![engine]));
        let (flag, ticked) = (stop.clone(), engines.clone());
        std::thread::Builder::new()
            .name("ledge-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let engines = ticked.lock().unwrap_or_else(|p| p.into_inner());
                    engines.iter().for_each(Engine::increment_epoch);
                }
            })
            .expect("the epoch thread starts");
        Self { stop, engines }
    }

    /// Advances `engine`'s epoch too.
    fn also(&self, engine: Engine) {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        engines.push(engine);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
