//! What an outbound service (Redis, MQTT, PostgreSQL, MySQL) sees of an instance: its resource
//! table, where the service's connections live, and the component's `allowed_outbound_hosts`,
//! which decide every address before a socket is opened.

use std::sync::Arc;

use wasmtime::component::ResourceTable;

use super::AllowedHosts;

/// The outbound services' part of one instance's state.
pub struct OutboundView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The component's `allowed_outbound_hosts`.
    pub allowed: &'a Arc<AllowedHosts>,
}

/// A store type whose instances can give an [`OutboundView`].
pub trait HasOutboundView: Send + 'static {
    /// The view.
    fn outbound_view(&mut self) -> OutboundView<'_>;
}
