//! Outbound HTTP from guests (`wasi:http/outgoing-handler@0.2.x`, `wasi:http/client@0.3.0`).
//!
//! A request leaves only if the component's `allowed_outbound_hosts` allows its scheme, host and
//! port; otherwise it fails with `HttpRequestDenied` before any socket is opened, as in Spin.
//! Requests to `self` and to `<component>.spin.internal` never touch the network: they are
//! handed to the app in-process (private routes included).

use std::sync::{Arc, OnceLock, Weak};

use futures::future::BoxFuture;
use http::{Request, Response};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::{AllowedHosts, Destination};

/// Serves requests that stay inside the app.
pub trait InProcess: Send + Sync {
    /// Answers `request`, sent to the app itself or to one of its components.
    fn call(
        self: Arc<Self>,
        destination: Destination,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, Error>>;
}

/// The app's in-process handler, set once the app is assembled (components are compiled before
/// the service that routes to them exists). Weak, as the app owns the instances that call it:
/// a strong reference would keep every app ever loaded alive.
pub type InProcessSlot = Arc<OnceLock<Weak<dyn InProcess>>>;

/// The outbound decision for one instance.
pub struct OutboundPolicy {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    in_process: InProcessSlot,
}

impl OutboundPolicy {
    /// The policy for an instance of `component`.
    pub fn new(component: Arc<str>, allowed: Arc<AllowedHosts>, in_process: InProcessSlot) -> Self {
        Self {
            component,
            allowed,
            in_process,
        }
    }

    /// The component's `allowed_outbound_hosts`.
    pub fn allowed(&self) -> &Arc<AllowedHosts> {
        &self.allowed
    }
}

type SendResult = Box<
    dyn Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    /// The default rule, without the default's `Arc` allocation per header: every header of
    /// every request passes through here.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendResult {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or("self").to_string();
        let destination = self.allowed.check(&scheme, &host, uri.port_u16());
        let Some(destination) = destination else {
            tracing::warn!(
                component = %self.component,
                "outbound request to {scheme}://{host} denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        match destination {
            Destination::Network => Box::new(async move {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(http_body_util::BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            }),
            in_app => {
                let Some(in_process) = self.in_process.get().and_then(Weak::upgrade) else {
                    return Box::new(async {
                        Err(Error::InternalError(Some(
                            "the app is not being served (still starting, or replaced)".into(),
                        )))
                    });
                };
                Box::new(async move {
                    let response = in_process.call(in_app, request).await?;
                    Ok((
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                    ))
                })
            }
        }
    }
}
