//! The request path, top to bottom: route -> gateway policies -> instantiate and invoke ->
//! respond. Every failure is answered with a status and a short body, and logged with the
//! component it concerns; the server keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use futures::future::BoxFuture;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

use crate::reply::full;
use crate::reply::text;

use super::admin;
use super::headers::{self, RouteHeaders};
use super::sites::MappedBase;
use super::static_files::FileServer;
use crate::allowed_hosts::Destination;
use crate::data::replica::bookmark::Bookmark;
use crate::engine::{ComponentPool, InvokeError};
use crate::gateway::access_log::{REQUEST_ID, Record, RequestLine};
use crate::gateway::traces::Traces;
use crate::gateway::{Admitted, Gateway, Identity, RouteGuard};
use crate::manifest::StaticResponse;
use crate::outbound_http::InProcess;
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
        /// The component's cap on requests served at once
        /// (`max_concurrent_requests`), shared by its routes.
        concurrency: Option<Arc<tokio::sync::Semaphore>>,
    },
    /// A `static_response` from the manifest.
    Static(StaticResponse),
    /// A static-files component: its files, served by the host.
    Files {
        /// The component id.
        id: Arc<str>,
        /// Its mounted directories.
        files: Arc<FileServer>,
    },
}

/// A component route's target, borrowed for one request.
struct Component<'a> {
    id: &'a str,
    pool: &'a ComponentPool,
    concurrency: Option<&'a Arc<tokio::sync::Semaphore>>,
}

/// Who is on the other end of a connection.
pub struct Peer {
    /// The client's address.
    pub address: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The subject of the client certificate that mutual TLS verified.
    pub certified_subject: Option<Arc<str>>,
}

/// A public route: where it leads and what guards it.
pub struct Endpoint {
    /// Where the route leads.
    pub target: Target,
    /// The gateway's policies for the route; `None` serves it exactly as Spin would.
    pub guard: Option<Arc<RouteGuard>>,
}

/// Everything needed to answer requests for one app.
pub struct AppService {
    /// The app's name, for `/.well-known/spin/info`.
    pub name: String,
    /// The app's version, for `/.well-known/spin/info`.
    pub version: Option<String>,
    /// Public routes.
    pub router: Router<Endpoint>,
    /// The API gateway in front of the routes.
    pub gateway: Gateway,
    /// Whether requests are counted for the admin listener's `/metrics`.
    pub metrics: bool,
    /// The OTLP trace exporter, when one is configured.
    pub traces: Option<Arc<Traces>>,
    /// The largest request body accepted, in bytes.
    pub max_request_body: u64,
    /// Every component with a trigger (private ones included), by id, as in-process calls to
    /// `<component>.spin.internal` reach it.
    pub chained: BTreeMap<String, Target>,
}

/// The route in-process calls to `<component>.spin.internal` are matched as, like Spin's.
pub static CHAINING_ROUTE: LazyLock<(RoutePattern, RouteHeaders)> = LazyLock::new(|| {
    let pattern = RoutePattern::parse("/", "/...").expect("`/...` is a valid route");
    let headers = RouteHeaders::new(&pattern);
    (pattern, headers)
});

/// The peer of in-process calls: the app itself.
static IN_PROCESS: Peer = Peer {
    address: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
    scheme: "http",
    certified_subject: None,
};

const HEALTH_PATH: &str = "/.well-known/spin/health";
const INFO_PATH: &str = "/.well-known/spin/info";

impl AppService {
    /// Answers one request from `peer`.
    pub async fn handle(&self, request: Request<Incoming>, peer: &Peer) -> Response<WasiBody> {
        let (mut parts, body) = request.into_parts();
        let body = body
            .map_err(wasmtime_wasi_http::Error::Hyper)
            .boxed_unsync();
        let client = self.gateway.arrive(&mut parts, peer.address.ip());
        let mut record = Record {
            client: Some(client),
            ..Record::default()
        };
        if !self.metrics && self.gateway.access_log.is_none() && self.traces.is_none() {
            return self.serve(parts, body, peer, &mut record).await;
        }
        let started = Instant::now();
        let logged = self.gateway.access_log.as_ref().map(|log| {
            let id = log.request_id(&mut parts);
            // The path as the client sent it, with a custom domain's base path.
            let base = parts
                .extensions
                .get::<MappedBase>()
                .map_or("", |base| &*base.0);
            let line = RequestLine {
                method: parts.method.clone(),
                path: format!("{base}{}", parts.uri.path()),
            };
            (log, id, line)
        });
        let span = self
            .traces
            .as_ref()
            .map(|traces| traces.request_span(&mut parts, &self.name, client));
        let mut response = self.serve(parts, body, peer, &mut record).await;
        let latency = started.elapsed();
        if self.metrics {
            admin::record_request(&self.name, &record, response.status(), latency);
        }
        if let Some(span) = span {
            span.end(&record, response.status());
        }
        if let Some((log, id, line)) = logged {
            response.headers_mut().insert(REQUEST_ID, id.clone());
            log.write(&id, &line, response.status().as_u16(), latency, &record);
        }
        response
    }

    /// Routes the request, applies the route's policies and runs its target, noting what
    /// happened in `record`.
    async fn serve<'a>(
        &'a self,
        mut parts: http::request::Parts,
        body: WasiBody,
        peer: &Peer,
        record: &mut Record<'a>,
    ) -> Response<WasiBody> {
        // Accept -> route.
        let path = parts.uri.path();
        if path == HEALTH_PATH {
            return text(StatusCode::OK, "OK");
        }
        if path == INFO_PATH {
            return self.info();
        }
        let Some(route) = self.router.route(path) else {
            return text(StatusCode::NOT_FOUND, "Not Found");
        };
        record.route = Some(route.route.raw());
        if let Some(subject) = &peer.certified_subject {
            Identity::certified(subject).attach(&mut parts);
            record.identity = Some(subject.to_string());
        }
        let endpoint = route.target;
        let guard = endpoint.guard.as_deref();
        self.dispatch(&endpoint.target, guard, &route, parts, body, peer, record)
            .await
    }

    /// Runs `target`, where `route` leads, for a request from `peer`: the route's `guard`
    /// first when it has one, then the target, then the guard's last word. Client requests
    /// and in-process calls alike come through here.
    #[allow(clippy::too_many_arguments)]
    async fn dispatch<'a, T>(
        &'a self,
        target: &'a Target,
        guard: Option<&RouteGuard>,
        route: &RouteMatch<'_, T>,
        mut parts: http::request::Parts,
        body: WasiBody,
        peer: &Peer,
        record: &mut Record<'a>,
    ) -> Response<WasiBody> {
        // The request a component sees (absolute URI, the route's `spin-*` headers), prepared
        // before the policies so that a custom authorizer sees it too.
        let client = record.client.unwrap_or(peer.address.ip());
        if let Target::Component {
            headers: route_headers,
            ..
        } = target
        {
            headers::prepare(
                &mut parts,
                route,
                route_headers,
                peer.address,
                client,
                peer.scheme,
            );
        }
        // Gateway policies.
        let admitted = match guard {
            None => None,
            Some(guard) => match guard.admit(&mut parts, client, record).await {
                Ok(admitted) => Some(admitted),
                Err(answer) => return answer,
            },
        };

        let outcome = match target {
            Target::Static(response) => Ok(static_response(response)),
            Target::Files { id, files } => {
                record.component = Some(id);
                Ok(files.serve(&parts, &route.path_info).await)
            }
            Target::Component {
                id,
                pool,
                concurrency,
                ..
            } => {
                record.component = Some(id);
                let component = Component {
                    id,
                    pool,
                    concurrency: concurrency.as_ref(),
                };
                let guarded = guard.zip(admitted.as_ref());
                let request = Request::from_parts(parts, body);
                self.run(component, request, guarded, record).await
            }
        };

        // Respond: a refusal raised after the guard still carries the route's CORS headers.
        match (guard, admitted) {
            (Some(guard), Some(admitted)) => match outcome {
                Ok(response) => guard.finish(admitted, response).await,
                Err(refusal) => guard.refuse(&admitted, refusal),
            },
            _ => outcome.unwrap_or_else(|refusal| refusal),
        }
    }

    /// Runs a component for an admitted request: the request limits, the component's
    /// concurrency cap and the guard's body checks first, then instantiate -> invoke. `Err` is
    /// a refusal (the guest did not run).
    async fn run<'a>(
        &self,
        component: Component<'a>,
        request: Request<WasiBody>,
        guarded: Option<(&RouteGuard, &Admitted)>,
        record: &mut Record<'a>,
    ) -> Result<Response<WasiBody>, Response<WasiBody>> {
        let (mut parts, body) = request.into_parts();
        let Component {
            id,
            pool,
            concurrency,
        } = component;
        let body_limit = guarded
            .and_then(|(_, admitted)| admitted.body_limit)
            .map_or(self.max_request_body, |limit| {
                limit.min(self.max_request_body)
            });
        // Request limits, before any guest runs.
        if let Some(length) = content_length(&parts)
            && length > body_limit
        {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Payload Too Large: the request body is over {body_limit} bytes"),
            ));
        }
        let _permit = match concurrency.map(|cap| cap.try_acquire()) {
            Some(Err(_)) => {
                record.outcome = Some("busy");
                return Err(busy(id));
            }
            Some(Ok(permit)) => Some(permit),
            None => None,
        };
        let body = match guarded {
            Some((guard, admitted)) if guard.reads_body(admitted) => full(
                guard
                    .read_body(admitted, &parts, body, body_limit, record)
                    .await?,
            ),
            _ => limit_body(body, body_limit),
        };
        // Instantiate -> invoke.
        let _in_flight = self.metrics.then(|| admin::InFlight::enter(&self.name, id));
        let _span = self
            .traces
            .as_ref()
            .and_then(|traces| traces.invoke_span(&mut parts, id));
        Ok(invoke(id, pool, Request::from_parts(parts, body)).await)
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

/// Runs `request` in `pool`; a guest failure becomes its status (and a log line). The
/// request's bookmark (replicated data it has seen) goes in with it, and comes back on the
/// response as far as its writes raised it.
async fn invoke(id: &str, pool: &ComponentPool, request: Request<WasiBody>) -> Response<WasiBody> {
    let bookmark = Arc::new(Bookmark::from_headers(request.headers()));
    let mut response = match pool.invoke(request, bookmark.clone()).await {
        Ok(response) => super::settle::settle(response).await,
        Err(error) => failure(id, error),
    };
    let status = response.status();
    bookmark.annotate(status, response.headers_mut());
    response
}

impl InProcess for AppService {
    fn call(
        self: Arc<Self>,
        destination: Destination,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, wasmtime_wasi_http::Error>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // In-process calls come from the app itself: the gateway is for clients.
            let mut record = Record::default();
            let response = match destination {
                Destination::Component(id) => {
                    let Some(target) = self.chained.get(&id) else {
                        return Ok(text(
                            StatusCode::NOT_FOUND,
                            &format!("no component `{id}` in this app"),
                        ));
                    };
                    let (pattern, _) = &*CHAINING_ROUTE;
                    let route = RouteMatch {
                        route: pattern,
                        target: &(),
                        captures: Vec::new(),
                        path_info: parts.uri.path().to_string(),
                    };
                    self.dispatch(target, None, &route, parts, body, &IN_PROCESS, &mut record)
                        .await
                }
                Destination::App | Destination::Network => {
                    let Some(route) = self.router.route(parts.uri.path()) else {
                        return Ok(text(StatusCode::NOT_FOUND, "Not Found"));
                    };
                    let target = &route.target.target;
                    self.dispatch(target, None, &route, parts, body, &IN_PROCESS, &mut record)
                        .await
                }
            };
            Ok(response)
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

fn content_length(parts: &http::request::Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The answer when a component already serves its `max_concurrent_requests`.
fn busy(component: &str) -> Response<WasiBody> {
    tracing::warn!(component, "at its concurrency cap: answering 503");
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable: the component is at its concurrency limit",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Caps a streamed body (one without `content-length`): reading past the limit fails in the
/// guest instead of buffering without bound. A body of known size was checked already.
fn limit_body(body: WasiBody, limit: u64) -> WasiBody {
    if body.size_hint().upper().is_some_and(|size| size <= limit) {
        return body;
    }
    Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .map_err(
            |error| match error.downcast::<wasmtime_wasi_http::Error>() {
                Ok(error) => *error,
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(None),
            },
        )
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;
    use crate::gateway::GatewayPolicies;
    use crate::manifest::{GatewaySettings, Setting};

    /// An app with a static response on `/hello/...`, guarded by `methods = ["GET"]`, and one
    /// on `/open` (unguarded).
    async fn app() -> AppService {
        let mut settings = GatewaySettings::default();
        let methods = Setting {
            value: toml::Value::Array(vec![toml::Value::String("GET".into())]),
            key: "methods".into(),
            line: None,
        };
        let mut table = crate::manifest::RouteTable::default();
        table.entries.insert("methods".into(), methods);
        settings.routes.insert("/hello/...".into(), table);
        let policies = GatewayPolicies::configure(&settings).unwrap();
        let gateway = Gateway::build(
            policies,
            &settings,
            crate::gateway::QuotaCounts::StateDir(std::path::Path::new(".")),
            &BTreeMap::new(),
        )
        .await
        .unwrap();
        let answer = |body: &str| {
            Target::Static(StaticResponse {
                status: 200,
                headers: BTreeMap::from([("x-route".into(), body.into())]),
                body: body.into(),
            })
        };
        let routes = vec![
            (
                RoutePattern::parse("/", "/hello/...").unwrap(),
                Endpoint {
                    target: answer("hello"),
                    guard: gateway.guard("/hello/..."),
                },
            ),
            (
                RoutePattern::parse("/", "/open").unwrap(),
                Endpoint {
                    target: answer("open"),
                    guard: None,
                },
            ),
        ];
        AppService {
            name: "test".into(),
            version: Some("1.2.3".into()),
            router: Router::new(routes),
            gateway,
            metrics: false,
            traces: None,
            max_request_body: 1024,
            chained: BTreeMap::new(),
        }
    }

    const PEER: Peer = Peer {
        address: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000),
        scheme: "http",
        certified_subject: None,
    };

    async fn send(app: &AppService, method: http::Method, path: &str) -> (u16, String) {
        let (parts, ()) = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
            .into_parts();
        let mut record = Record::default();
        let response = app
            .serve(parts, full(Bytes::new()), &PEER, &mut record)
            .await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn requests_are_routed_guarded_and_answered() {
        let app = app().await;
        assert_eq!(
            send(&app, http::Method::GET, HEALTH_PATH).await,
            (200, "OK\n".into())
        );
        let (status, info) = send(&app, http::Method::GET, INFO_PATH).await;
        assert_eq!(status, 200);
        assert!(info.contains(r#""app_version":"1.2.3""#), "{info}");
        assert_eq!(send(&app, http::Method::GET, "/nowhere").await.0, 404);
        assert_eq!(
            send(&app, http::Method::GET, "/hello/there").await,
            (200, "hello".into())
        );
        // The guard answers before the target; an unguarded route takes any method.
        assert_eq!(send(&app, http::Method::POST, "/hello/there").await.0, 405);
        assert_eq!(
            send(&app, http::Method::POST, "/open").await,
            (200, "open".into())
        );
    }

    #[tokio::test]
    async fn in_process_calls_skip_the_gateway() {
        let app = Arc::new(app().await);
        let request = Request::post("http://self/hello/x")
            .body(full(Bytes::new()))
            .unwrap();
        let response = app.clone().call(Destination::App, request).await.unwrap();
        assert_eq!(response.status(), 200);
        let request = Request::get("http://nobody.spin.internal/")
            .body(full(Bytes::new()))
            .unwrap();
        let response = app
            .call(Destination::Component("nobody".into()), request)
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
}
