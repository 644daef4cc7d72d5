//! The admin listener (`ledge up --admin-listen`): Prometheus metrics on `/metrics`, apart from
//! the app's own port so they are never public by accident.
//!
//! Metrics recorded (all with the route as written in the manifest where there is one):
//! - `ledge_requests_total{route, component, status, outcome}`: every request, with what the
//!   gateway did (`guest`, `cache-hit`, `throttled`, `blocked`, `unauthorized`, ...);
//! - `ledge_request_duration_seconds{route}`: time to the response head (a histogram);
//! - `ledge_requests_in_flight{component}`: requests a component is serving now;
//! - `ledge_instances_created_total{component}`: instances created.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::gateway::access_log::Record;

/// Latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are folded for rendering.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the metrics recorder and serves `/metrics` on `address` in the background.
/// Returns the bound address.
pub async fn serve(address: SocketAddr) -> Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .context("latency buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (admin)"))?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            let service = service_fn(move |request| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&handle, &request)) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn answer(handle: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        "/healthz" => (StatusCode::OK, "text/plain", "OK\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "Not Found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Records one finished request of the app `app`.
pub fn record_request(app: &str, record: &Record<'_>, status: StatusCode, latency: Duration) {
    let route = record.route.unwrap_or("").to_string();
    metrics::counter!(
        "ledge_requests_total",
        "app" => app.to_string(),
        "route" => route.clone(),
        "component" => record.component.unwrap_or("").to_string(),
        "status" => status.as_str().to_string(),
        "outcome" => record.outcome.unwrap_or("guest"),
    )
    .increment(1);
    metrics::histogram!("ledge_request_duration_seconds", "app" => app.to_string(), "route" => route)
        .record(latency.as_secs_f64());
}

/// Counts a request in `ledge_requests_in_flight` while it lives.
pub struct InFlight(metrics::Gauge);

impl InFlight {
    /// Counts one more request for `component` of the app `app`.
    pub fn enter(app: &str, component: &str) -> Self {
        let gauge = metrics::gauge!(
            "ledge_requests_in_flight",
            "app" => app.to_string(),
            "component" => component.to_string()
        );
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
