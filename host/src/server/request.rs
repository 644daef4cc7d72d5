//! The request path, top to bottom: route -> (gateway policies, later) -> instantiate and
//! invoke -> respond. Every failure is answered with a status and a short body, and logged
//! with the component it concerns; the server keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

use super::headers::{self, RouteHeaders};
use crate::engine::{ComponentPool, Destination, InProcess, InvokeError};
use crate::manifest::StaticResponse;
use crate::router::{RouteMatch, RoutePattern, Router};

/// Where a route leads.
pub enum Target {
    /// A component's HTTP handler.
    Component {
        /// The component id.
        id: Arc<str>,
        /// Its instances.
        pool: Arc<ComponentPool>,
        /// The `spin-*` headers fixed by the route.
        headers: RouteHeaders,
    },
    /// A `static_response` from the manifest.
    Static(StaticResponse),
}

/// Everything needed to answer requests for one app.
pub struct AppService {
    /// The app's name, for `/.well-known/spin/info`.
    pub name: String,
    /// The app's version, for `/.well-known/spin/info`.
    pub version: Option<String>,
    /// Public routes.
    pub router: Router<Target>,
    /// The largest request body accepted, in bytes.
    pub max_request_body: u64,
    /// Every component with a trigger (private ones included), by id, for in-process calls.
    pub components: BTreeMap<String, Arc<ComponentPool>>,
}

/// The route in-process calls to `<component>.spin.internal` are matched as, like Spin's.
static CHAINING_ROUTE: LazyLock<(RoutePattern, RouteHeaders)> = LazyLock::new(|| {
    let pattern = RoutePattern::parse("/", "/...").expect("`/...` is a valid route");
    let headers = RouteHeaders::new(&pattern);
    (pattern, headers)
});

/// The client address in-process requests carry.
const IN_PROCESS_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

const HEALTH_PATH: &str = "/.well-known/spin/health";
const INFO_PATH: &str = "/.well-known/spin/info";

impl AppService {
    /// Answers one request from `client`, received over `scheme` (`http` or `https`).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
        scheme: &str,
    ) -> Response<WasiBody> {
        // Accept -> route.
        let path = request.uri().path();
        if path == HEALTH_PATH {
            return text(StatusCode::OK, "OK");
        }
        if path == INFO_PATH {
            return self.info();
        }
        let Some(route) = self.router.route(path) else {
            return text(StatusCode::NOT_FOUND, "Not Found");
        };

        let (pool, id, route_headers) = match route.target {
            Target::Static(response) => return static_response(response),
            Target::Component { id, pool, headers } => (pool, id, headers),
        };

        // Request limits, before any guest runs.
        if let Some(length) = content_length(&request)
            && length > self.max_request_body
        {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "Payload Too Large: the request body is over {} bytes",
                    self.max_request_body
                ),
            );
        }

        // Instantiate -> invoke.
        let (mut parts, body) = request.into_parts();
        headers::prepare(&mut parts, &route, route_headers, client, scheme);
        let body = limit_body(body, self.max_request_body);
        invoke(id, pool, Request::from_parts(parts, body)).await
    }

    fn info(&self) -> Response<WasiBody> {
        let info = serde_json::json!({
            "app": self.name,
            "app_version": self.version,
            "host": "ledge",
            "version": env!("CARGO_PKG_VERSION"),
        });
        let mut response = text(StatusCode::OK, &info.to_string());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Runs `request` in `pool`; a guest failure becomes its status (and a log line).
async fn invoke(id: &str, pool: &ComponentPool, request: Request<WasiBody>) -> Response<WasiBody> {
    match pool.invoke(request).await {
        Ok(response) => response,
        Err(error) => failure(id, error),
    }
}

impl InProcess for AppService {
    fn call(
        self: Arc<Self>,
        destination: Destination,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, wasmtime_wasi_http::Error>> {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path().to_string();
            match destination {
                Destination::Component(id) => {
                    let Some(pool) = self.components.get(&id) else {
                        return Ok(text(
                            StatusCode::NOT_FOUND,
                            &format!("no component `{id}` in this app"),
                        ));
                    };
                    let (pattern, route_headers) = &*CHAINING_ROUTE;
                    let route = RouteMatch {
                        route: pattern,
                        target: &(),
                        captures: Vec::new(),
                        path_info: path,
                    };
                    headers::prepare(&mut parts, &route, route_headers, IN_PROCESS_CLIENT, "http");
                    Ok(invoke(&id, pool, Request::from_parts(parts, body)).await)
                }
                Destination::App | Destination::Network => {
                    let Some(route) = self.router.route(&path) else {
                        return Ok(text(StatusCode::NOT_FOUND, "Not Found"));
                    };
                    match route.target {
                        Target::Static(response) => Ok(static_response(response)),
                        Target::Component {
                            id,
                            pool,
                            headers: route_headers,
                        } => {
                            headers::prepare(
                                &mut parts,
                                &route,
                                route_headers,
                                IN_PROCESS_CLIENT,
                                "http",
                            );
                            Ok(invoke(id, pool, Request::from_parts(parts, body)).await)
                        }
                    }
                }
            }
        })
    }
}

/// Maps a guest failure to its status, and logs it with the component id.
fn failure(component: &str, error: InvokeError) -> Response<WasiBody> {
    let status = match &error {
        InvokeError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        InvokeError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::error!(component, status = status.as_u16(), "{error}");
    text(status, status.canonical_reason().unwrap_or("Error"))
}

fn content_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Caps a streamed body (one without `content-length`): reading past the limit fails in the
/// guest instead of buffering without bound. A body of known size was checked already.
fn limit_body(body: Incoming, limit: u64) -> WasiBody {
    if body.size_hint().upper().is_some_and(|size| size <= limit) {
        return body
            .map_err(wasmtime_wasi_http::Error::Hyper)
            .boxed_unsync();
    }
    Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .map_err(|error| match error.downcast::<hyper::Error>() {
            Ok(hyper_error) => wasmtime_wasi_http::Error::Hyper(*hyper_error),
            Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(None),
        })
        .boxed_unsync()
}

fn static_response(response: &StaticResponse) -> Response<WasiBody> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(full(Bytes::from(response.body.clone())))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
}

/// A short `text/plain` response.
pub fn text(status: StatusCode, message: &str) -> Response<WasiBody> {
    let mut response = Response::new(full(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
