//! OpenTelemetry traces, end to end: a real `ledge up` exports OTLP/HTTP (protobuf, the
//! default) to a collector on loopback. The request span continues the client's trace, the
//! guest's invocation is its child, and the guest receives that child's `traceparent`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::harness::{AppDir, HEADER, client};

/// An OTLP/HTTP receiver keeping every request it got as (path, body).
struct Collector {
    url: String,
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Collector {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let sink = sink.clone();
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                let path = request.uri().path().to_string();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                sink.lock().unwrap().push((path, body));
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                            }
                        });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
        });
        Self { url, received }
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for (path, body) in self.received.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            let export = ExportTraceServiceRequest::decode(body.clone()).unwrap();
            for resource_spans in export.resource_spans {
                let resource = resource_spans.resource.unwrap_or_default();
                let service = string_attribute(&resource.attributes, "service.name");
                for scope in resource_spans.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        spans
    }
}

fn string_attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> String {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.value)
        .map(|value| match value {
            Value::StringValue(text) => text,
            Value::IntValue(number) => number.to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn requests_are_traced_over_otlp_continuing_the_clients_trace() {
    let collector = Collector::start();
    let app = AppDir::new(&format!(
        "{HEADER}\
         [[trigger.http]]\nroute = \"/echo/...\"\ncomponent = \"echo\"\n\
         [[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"{{echo}}\"\n\
         [application.tool.ledge.routes.\"/api/...\"]\nmethods = [\"POST\"]\n"
    ));
    let ledge = app.up(&["--otlp-endpoint", &collector.url]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let echoed = client()
        .get(ledge.at("/echo/x"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let refused = client().get(ledge.at("/api/x")).send().unwrap();
    assert_eq!(refused.status(), 405);
    // Shutting down flushes the batch.
    assert!(ledge.terminate().success());

    let spans = collector.spans();
    let named = |name: &str| {
        spans
            .iter()
            .find(|(_, span)| span.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
                panic!("no span `{name}` among {names:?}")
            })
    };
    let (service, request) = named("GET /echo/...");
    assert_eq!(service, "ledge");
    assert_eq!(hex(&request.trace_id), trace_id);
    assert_eq!(hex(&request.parent_span_id), client_span);
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(
        string_attribute(&request.attributes, "http.route"),
        "/echo/..."
    );
    assert_eq!(
        string_attribute(&request.attributes, "http.response.status_code"),
        "200"
    );
    assert_eq!(
        string_attribute(&request.attributes, "ledge.app"),
        "test-app"
    );

    let (_, invoke) = named("invoke echo");
    assert_eq!(invoke.trace_id, request.trace_id);
    assert_eq!(invoke.parent_span_id, request.span_id);
    // The guest was handed the invocation's span as its parent.
    let expected = format!(
        "header traceparent: 00-{trace_id}-{}-01",
        hex(&invoke.span_id)
    );
    assert!(echoed.contains(&expected), "{echoed}");

    // A refusal is traced too, with what the gateway did, and no guest span.
    let (_, refusal) = named("GET /api/...");
    assert_eq!(
        string_attribute(&refusal.attributes, "http.response.status_code"),
        "405"
    );
    assert_eq!(
        string_attribute(&refusal.attributes, "ledge.outcome"),
        "method-not-allowed"
    );
    let invocations = spans
        .iter()
        .filter(|(_, s)| s.name == "invoke echo")
        .count();
    assert_eq!(invocations, 1);
}
