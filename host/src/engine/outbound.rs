//! Outbound HTTP from guests.
//!
//! A component gets no network unless its manifest grants it (`allowed_outbound_hosts`), like
//! Spin. Until the host checks those grants, every outbound request is refused with
//! `HttpRequestDenied`, before any socket is opened.

use http::Request;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The outbound decision for one instance.
pub struct OutboundPolicy {
    component: std::sync::Arc<str>,
}

impl OutboundPolicy {
    /// The policy for an instance of `component`.
    pub fn new(component: std::sync::Arc<str>) -> Self {
        Self { component }
    }
}

type SendResult = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
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
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendResult {
        tracing::warn!(
            component = %self.component,
            uri = %request.uri(),
            "outbound HTTP request denied: the host is not in allowed_outbound_hosts"
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
