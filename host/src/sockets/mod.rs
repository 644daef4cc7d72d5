//! `wasi:sockets` (TCP, UDP and `ip-name-lookup`, p2 and p3 alike) gated by
//! `allowed_outbound_hosts`.
//!
//! A raw socket ignores an entry's scheme: `*://127.0.0.1:7`, `redis://10.0.0.0/8:6379` and
//! `*://db.internal:5432` each grant an address and a port. An IP or CIDR entry grants its
//! addresses; a named entry grants the addresses the name resolves to, looked up once per
//! instance. A guest connects and sends (TCP connect, UDP send) only to granted addresses, and
//! receives UDP datagrams only from them; anything else is `access-denied`, before any packet
//! leaves. Binding is allowed to an ephemeral port only (connect and send bind implicitly,
//! port 0), so a guest cannot squat a host port; listening and accepting are not allowed: a
//! component serves through its trigger. A component whose entries reach no network cannot
//! look names up either.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::allowed_hosts::AllowedHosts;

/// Lets the instance built by `wasi` use sockets where `allowed` grants the address.
pub fn grant(wasi: &mut WasiCtxBuilder, component: &Arc<str>, allowed: &Arc<AllowedHosts>) {
    let grant = Arc::new(SocketGrant {
        component: component.clone(),
        allowed: allowed.clone(),
        resolved: Mutex::new(HashMap::new()),
    });
    let reaches_network = allowed.reaches_network();
    wasi.allow_tcp(reaches_network)
        .allow_udp(reaches_network)
        .allow_ip_name_lookup(reaches_network)
        .socket_addr_check(move |address, used_for| grant.clone().check(address, used_for));
}

/// The checked future wasmtime-wasi awaits.
type Check = Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// One instance's socket grant: the allowed hosts and the addresses their names resolved to.
struct SocketGrant {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    /// Each named entry's addresses, resolved on first use by this instance.
    resolved: Mutex<HashMap<String, Arc<[IpAddr]>>>,
}

impl SocketGrant {
    fn check(self: Arc<Self>, address: SocketAddr, used_for: SocketAddrUse) -> Check {
        match used_for {
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                let ephemeral = address.port() == 0;
                if !ephemeral {
                    tracing::warn!(component = %self.component, "binding {address} denied: only ephemeral ports (0) may be bound");
                }
                return Box::pin(ready(ephemeral));
            }
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                tracing::warn!(
                    component = %self.component,
                    "listening on {address} denied: a component serves through its trigger"
                );
                return Box::pin(ready(false));
            }
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {}
        }
        if self.allowed.permits_address(address) {
            return Box::pin(ready(true));
        }
        let names = self.allowed.names_for_port(address.port());
        if names.is_empty() {
            self.denied(address, used_for);
            return Box::pin(ready(false));
        }
        // wasmtime-wasi wants a `Sync` future; the lookup runs as its own task.
        let lookup = tokio::spawn(async move {
            let ip = address.ip().to_canonical();
            for name in &names {
                if self.addresses_of(name).await.contains(&ip) {
                    return true;
                }
            }
            self.denied(address, used_for);
            false
        });
        Box::pin(async move { lookup.await.unwrap_or(false) })
    }

    /// The addresses `name` resolves to, looked up once per instance (a failed lookup is
    /// tried again next time).
    async fn addresses_of(&self, name: &str) -> Arc<[IpAddr]> {
        if let Some(known) = self.resolved.lock().expect("resolved names").get(name) {
            return known.clone();
        }
        let addresses: Arc<[IpAddr]> = match tokio::net::lookup_host((name, 0)).await {
            Ok(found) => found.map(|a| a.ip().to_canonical()).collect(),
            Err(error) => {
                tracing::warn!(component = %self.component, "cannot resolve `{name}`: {error}");
                return Arc::from([]);
            }
        };
        self.resolved
            .lock()
            .expect("resolved names")
            .insert(name.to_string(), addresses.clone());
        addresses
    }

    fn denied(&self, address: SocketAddr, used_for: SocketAddrUse) {
        if matches!(used_for, SocketAddrUse::UdpReceive) {
            tracing::debug!(component = %self.component, "datagram from {address} dropped: not in allowed_outbound_hosts");
        } else {
            tracing::warn!(component = %self.component, "socket to {address} denied: not in allowed_outbound_hosts");
        }
    }
}
