//! The capabilities a guest may import beyond WASI and `wasi:http`, one line each: the data
//! tier, the outbound services, the LLM stand-in and raw sockets. The engine is handed this
//! list and links no capability by name. What a capability keeps per instance is its own type,
//! held by the instance's `GuestState`: the data grants (`data::Grants`) and the outbound HTTP
//! hooks (`outbound_http::OutboundPolicy`); the outbound services keep their connections in
//! the instance's resource table, which they reach through `allowed_hosts::OutboundView`.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::allowed_hosts::AllowedHosts;
use crate::engine::{Capabilities, GuestState};

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
