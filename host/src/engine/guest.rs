//! What one guest instance owns: its WASI context, resource table, HTTP context and memory
//! limits (its stdout and stderr: [`super::guest_output`]).

use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::allowed_hosts::{HasOutboundView, OutboundView};
use crate::data::replica::bookmark::Consistency;
use crate::data::{DataView, Grants, HasDataView};
use crate::outbound_http::OutboundPolicy;

/// The data of one guest store.
pub struct GuestState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) outbound: OutboundPolicy,
    pub(super) limits: StoreLimits,
    pub(super) grants: Arc<Grants>,
    /// What this instance's data calls read at and raise: its requests' bookmarks.
    pub(super) consistency: Arc<Consistency>,
}

impl HasDataView for GuestState {
    fn data_view(&mut self) -> DataView<'_> {
        DataView {
            table: &mut self.table,
            grants: &self.grants,
            consistency: &self.consistency,
        }
    }
}

impl HasOutboundView for GuestState {
    fn outbound_view(&mut self) -> OutboundView<'_> {
        OutboundView {
            table: &mut self.table,
            allowed: self.outbound.allowed(),
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
