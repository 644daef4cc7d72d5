//! The HTTP front: accept connections (plain or TLS), serve HTTP/1.1 and HTTP/2 on them, and
//! hand each request to the app its host and path are mapped to ([`Sites`]). Stops gracefully on SIGINT/SIGTERM.

pub mod admin;
mod connection_clock;
mod connections;
mod headers;
mod request;
mod settle;
mod sites;
mod static_files;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use connection_clock::{ClockedBody, ClockedIo, ConnectionClock};

pub use connections::{ConnectionLimits, MIN_REQUEST_HEAD};
pub use headers::RouteHeaders;
pub use request::{AppService, CHAINING_ROUTE, Endpoint, Peer, Target};
pub use sites::{Site, SiteTable, Sites};
pub use static_files::FileServer;
pub use tls::TlsFiles;

/// How long in-flight requests may take to finish once a shutdown signal arrives.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
}

impl Server {
    /// Binds `address`; with `tls`, connections are served over TLS. Every connection is
    /// served under `limits`.
    pub async fn bind(
        address: SocketAddr,
        tls: Option<&TlsFiles>,
        limits: ConnectionLimits,
    ) -> Result<Self> {
        let tls = tls.map(tls::acceptor).transpose()?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            tls,
            limits,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The URL scheme served.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves `service` until SIGINT or SIGTERM, then lets in-flight requests finish (for at
    /// most [`SHUTDOWN_GRACE`]).
    pub async fn serve(self, service: Arc<SiteTable>) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let http1 = self.limits.http1();
        let builder = self.limits.auto();
        let mut slots = connections::ConnectionSlots::new(self.limits.max_connections);
        let scheme = self.scheme();
        let mut shutdown = std::pin::pin!(shutdown_signal());
        loop {
            let slot = tokio::select! {
                slot = slots.next() => slot,
                () = &mut shutdown => break,
            };
            let (stream, client) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let clock = self.limits.clock();
            match &self.tls {
                None => {
                    // Plain TCP is HTTP/1.1, as with Spin: no protocol sniffing per connection.
                    let peer = Peer {
                        address: client,
                        scheme,
                        certified_subject: None,
                    };
                    let connection = http1.serve_connection(
                        TokioIo::new(ClockedIo::new(stream, clock.clone(), false)),
                        handler(service.clone(), peer, clock.clone()),
                    );
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        serve_until_a_clock_runs_out(connection, &clock, client).await;
                        drop(slot);
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    let service = service.clone();
                    let handshake_timeout = self.limits.header_read_timeout;
                    tokio::spawn(async move {
                        let _slot = slot;
                        let handshake =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                        let stream = match handshake.await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!("TLS handshake with {client} failed: {error}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake with {client} timed out");
                                return;
                            }
                        };
                        let peer = Peer {
                            address: client,
                            scheme,
                            certified_subject: tls::client_subject(stream.get_ref().1)
                                .map(Arc::from),
                        };
                        let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let connection = builder
                            .serve_connection(
                                TokioIo::new(ClockedIo::new(stream, clock.clone(), http2)),
                                handler(service.clone(), peer, clock.clone()),
                            )
                            .into_owned();
                        let connection = watcher.watch(connection);
                        serve_until_a_clock_runs_out(connection, &clock, client).await;
                    });
                }
            }
        }
        drop(self.listener);
        tracing::info!("shutting down: finishing in-flight requests");
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "some requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway"
            );
        }
        Ok(())
    }
}

/// A response body as the connection writes it.
type ConnectionBody = ClockedBody<wasmtime_wasi_http::WasiBody>;

/// The hyper service answering one connection's requests, each started and ended on the
/// connection's `clock`.
fn handler(
    service: Arc<SiteTable>,
    peer: Peer,
    clock: Arc<ConnectionClock>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<ConnectionBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<ConnectionBody>, std::convert::Infallible>>
             + Send,
> + Clone {
    let peer = Arc::new(peer);
    service_fn(move |request| {
        let end = clock.request_started();
        let service = service.clone();
        let peer = peer.clone();
        async move {
            let response = service.current().handle(request, &peer).await;
            Ok::<_, std::convert::Infallible>(response.map(|body| ClockedBody::new(body, end)))
        }
    })
}

/// Serves `connection` (from `client`) until it ends or one of its `clock`s runs out, which
/// closes it.
async fn serve_until_a_clock_runs_out<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    clock: &ConnectionClock,
    client: SocketAddr,
) {
    tokio::select! {
        served = connection => if let Err(error) = served {
            tracing::debug!("connection from {client} ended: {error}");
        },
        which = clock.run_out() => {
            tracing::debug!("connection from {client} closed: its {which} timeout passed");
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM can be handled");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
