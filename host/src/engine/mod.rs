//! The wasmtime side of ledge: one [`Runtime`] (engine + linker) for the app, and a
//! [`ComponentPool`] per component that instantiates it and invokes its HTTP handler.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use wasmtime::component::Linker;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};
use wasmtime_wasi::WasiCtxBuilder;

use crate::allowed_hosts::AllowedHosts;

pub use compile::{CompileOutcome, componentize, load_component};
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
}

/// The engine and linker shared by every component of the app.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    settings: EngineSettings,
    grant: GrantFn,
    epoch_ticker: Option<EpochTicker>,
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
    /// Builds the engine with the component model (sync and async) and links WASI p2 + p3,
    /// wasi:http p2 + p3 and the `capabilities`.
    pub fn new(settings: EngineSettings, capabilities: Capabilities) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(settings.request_timeout.is_some())
            .profiler(settings.profiler);
        if settings.pooling {
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
        let epoch_ticker = settings
            .request_timeout
            .map(|_| EpochTicker::start(engine.clone()));
        Ok(Self {
            engine,
            linker,
            settings,
            grant: capabilities.grant,
            epoch_ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Grants a new instance what its WASI context may reach.
    pub(crate) fn grant(&self) -> GrantFn {
        self.grant
    }

    /// Whether the epoch ticks (so timeouts are enforced).
    pub fn epoch_ticks(&self) -> bool {
        self.epoch_ticker.is_some()
    }

    /// A runtime with no capabilities and no pooling, for unit tests.
    #[cfg(test)]
    pub(crate) fn bare() -> Self {
        let settings = EngineSettings {
            pooling: false,
            request_timeout: None,
            profiler: ProfilingStrategy::None,
        };
        let capabilities = Capabilities {
            link: |_| Ok(()),
            grant: |_, _, _| {},
        };
        Self::new(settings, capabilities).expect("a bare runtime builds")
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

/// A thread that advances the engine's epoch, so long-running guests yield and time out.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("ledge-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("the epoch thread starts");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
