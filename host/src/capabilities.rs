//! The capabilities a guest may import beyond WASI and `wasi:http`, one line each: the data
//! tier, the outbound services, the LLM stand-in and raw sockets. The engine is handed this
//! list and never names a capability itself, so each capability depends on the engine (its
//! allowed hosts, its views of an instance's state) and never the other way round.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::engine::{AllowedHosts, Capabilities, GuestState};

/// Every capability, as the engine takes them.
pub const ALL: Capabilities = Capabilities {
    link: add_to_linker,
    grant,
};

/// Adds every capability's interfaces to `linker`.
fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    crate::data::add_to_linker(linker)?;
    crate::outbound_redis::add_to_linker(linker)?;
    crate::outbound_mqtt::add_to_linker(linker)?;
    crate::outbound_postgres::add_to_linker(linker)?;
    crate::outbound_mysql::add_to_linker(linker)?;
    crate::llm::add_to_linker(linker)?;
    Ok(())
}

/// Grants a new instance of `component` what its WASI context may reach (raw sockets, where
/// `allowed` permits).
fn grant(wasi: &mut WasiCtxBuilder, component: &Arc<str>, allowed: &Arc<AllowedHosts>) {
    crate::sockets::grant(wasi, component, allowed);
}
