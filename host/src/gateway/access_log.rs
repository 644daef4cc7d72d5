//! Request ids and the access log: one JSON line per request on standard output, with what
//! the gateway decided.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use http::header::HeaderName;
use http::request::Parts;

/// The response header (and, for the guest, request header) carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Issues request ids and writes the log.
pub struct AccessLog {
    trusted_header: Option<HeaderName>,
    prefix: String,
    next: AtomicU64,
}

/// The method and path of a request, kept for its log line.
pub struct RequestLine {
    /// The method.
    pub method: http::Method,
    /// The path, without the query.
    pub path: String,
}

/// What happened to one request, filled in along the request path.
#[derive(Debug, Default)]
pub struct Record<'a> {
    /// The client's address, as the gateway derived it.
    pub client: Option<std::net::IpAddr>,
    /// The matched route, as written in the manifest.
    pub route: Option<&'a str>,
    /// The component that ran (or would have).
    pub component: Option<&'a str>,
    /// The authenticated identity.
    pub identity: Option<String>,
    /// What the gateway did: `guest`, `cache-hit`, `throttled`, `unauthorized`, ...
    pub outcome: Option<&'static str>,
    /// The WAF or authorization rule that refused the request.
    pub rule: Option<String>,
}

impl AccessLog {
    /// A log that trusts `trusted_header` for incoming ids (if set).
    pub fn new(trusted_header: Option<&str>) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            trusted_header: trusted_header.and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            prefix: format!(
                "{:x}{:05x}",
                started.as_secs(),
                std::process::id() & 0xfffff
            ),
            next: AtomicU64::new(1),
        }
    }

    /// The id of the request: the trusted header's value, or a new one (unique per process
    /// start). It is set on the request, so the guest sees it as `x-request-id`.
    pub fn request_id(&self, parts: &mut Parts) -> HeaderValue {
        let trusted = self
            .trusted_header
            .as_ref()
            .and_then(|name| parts.headers.get(name))
            .filter(|value| !value.is_empty() && value.len() <= 128)
            .cloned();
        let id = trusted.unwrap_or_else(|| {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
                .expect("hex digits are a valid header value")
        });
        parts.headers.insert(REQUEST_ID, id.clone());
        id
    }

    /// Writes the line for one finished request.
    pub fn write(
        &self,
        id: &HeaderValue,
        request: &RequestLine,
        status: u16,
        latency: Duration,
        record: &Record<'_>,
    ) {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let line = serde_json::json!({
            "time": time,
            "id": id.to_str().unwrap_or_default(),
            "method": request.method.as_str(),
            "path": request.path,
            "client": record.client.map(|client| client.to_string()),
            "route": record.route,
            "component": record.component,
            "status": status,
            "latency_ms": (latency.as_secs_f64() * 1e3 * 1e3).round() / 1e3,
            "identity": record.identity,
            "outcome": record.outcome.unwrap_or("guest"),
            "rule": record.rule,
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}
