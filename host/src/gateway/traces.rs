//! OpenTelemetry traces over OTLP: one server span per request (`GET /route`) and a child span
//! around the guest's invocation, exported in batches off the request path. A client's W3C
//! `traceparent` is continued, and the guest receives its own span's `traceparent`, so the
//! calls it makes join the same trace.
//!
//! Configured like any OpenTelemetry SDK: `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`/v1/traces` is appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is),
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`; not `grpc`),
//! `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_SERVICE_NAME`.

use std::net::IpAddr;

use anyhow::{Context as _, Result, bail};
use http::StatusCode;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use super::access_log::Record;

/// The environment variable naming the traces endpoint exactly (no path appended).
const TRACES_ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// The trace exporter and the tracer the request path uses.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// The trace a request belongs to, kept in its extensions for the spans below the request's.
#[derive(Clone)]
struct RequestTrace(Context);

impl Traces {
    /// Starts exporting when an endpoint is configured: `endpoint` (the OTLP base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. `None` when
    /// neither is set.
    pub fn start(endpoint: Option<&str>) -> Result<Option<Self>> {
        let exact = std::env::var(TRACES_ENDPOINT_VARIABLE).is_ok_and(|v| !v.is_empty());
        let mut builder = SpanExporter::builder().with_http();
        match endpoint {
            // The per-signal variable wins, as the OpenTelemetry specification says.
            _ if exact => {}
            Some(base) => {
                let url = format!("{}/v1/traces", base.trim_end_matches('/'));
                builder = builder.with_endpoint(url);
            }
            None => return Ok(None),
        }
        let exporter = builder
            .with_protocol(protocol()?)
            .build()
            .context("cannot set up the OTLP trace exporter")?;
        let mut resource = Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name("ledge");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("ledge");
        Ok(Some(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        }))
    }

    /// Opens the span of a request of `app` from `client`, continuing the client's trace.
    pub fn request_span(
        &self,
        parts: &mut http::request::Parts,
        app: &str,
        client: IpAddr,
    ) -> RequestSpan {
        let parent = self.propagator.extract(&HeaderExtractor(&parts.headers));
        let span = self
            .tracer
            .span_builder(parts.method.to_string())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", parts.method.to_string()),
                KeyValue::new("url.path", parts.uri.path().to_string()),
                KeyValue::new("client.address", client.to_string()),
                KeyValue::new("ledge.app", app.to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        let context = parent.with_span(span);
        parts.extensions.insert(RequestTrace(context.clone()));
        RequestSpan {
            context,
            method: parts.method.to_string(),
        }
    }

    /// Opens the span of `component`'s invocation below the request's span, and hands the
    /// guest its `traceparent`. Dropping the span ends it.
    pub fn invoke_span(
        &self,
        parts: &mut http::request::Parts,
        component: &str,
    ) -> Option<opentelemetry_sdk::trace::Span> {
        let RequestTrace(parent) = parts.extensions.get::<RequestTrace>()?;
        let span = self
            .tracer
            .span_builder(format!("invoke {component}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("ledge.component", component.to_string())])
            .start_with_context(&self.tracer, parent);
        let context = Context::new()
            .with_remote_span_context(opentelemetry::trace::Span::span_context(&span).clone());
        self.propagator
            .inject_context(&context, &mut HeaderInjector(&mut parts.headers));
        Some(span)
    }

    /// Sends what is still buffered; called once, on shutdown.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!("could not flush the last traces: {error}");
        }
    }
}

/// The wire format from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`
/// (`http/protobuf` unless set).
fn protocol() -> Result<Protocol> {
    let chosen = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    match chosen.as_deref() {
        None | Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some("http/json") => Ok(Protocol::HttpJson),
        Some(other) => bail!(
            "OTLP protocol `{other}` is not supported.\n  \
             fix: use `http/protobuf` or `http/json` (a collector's port 4318)"
        ),
    }
}

/// A request's open span.
pub struct RequestSpan {
    context: Context,
    method: String,
}

impl RequestSpan {
    /// Ends the span with what the request came to.
    pub fn end(self, record: &Record<'_>, status: StatusCode) {
        let span = self.context.span();
        if let Some(route) = record.route {
            span.update_name(format!("{} {route}", self.method));
            span.set_attribute(KeyValue::new("http.route", route.to_string()));
        }
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if let Some(component) = record.component {
            span.set_attribute(KeyValue::new("ledge.component", component.to_string()));
        }
        if let Some(outcome) = record.outcome {
            span.set_attribute(KeyValue::new("ledge.outcome", outcome));
        }
        if let Some(rule) = &record.rule {
            span.set_attribute(KeyValue::new("ledge.rule", rule.clone()));
        }
        if let Some(identity) = &record.identity {
            span.set_attribute(KeyValue::new("enduser.id", identity.clone()));
        }
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
        span.end();
    }
}
