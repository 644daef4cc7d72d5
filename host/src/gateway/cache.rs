//! The response cache of one route: bounded in bytes (`moka`), entries fresh for the route's
//! TTL, keyed by method, path, query, the chosen request headers and (on authorized routes)
//! the caller's identity. A hit never runs the guest; `Cache-Control: no-store` or `private`
//! from the guest, and `Set-Cookie`, keep a response out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt as _, BodyStream, Full, StreamBody};
use hyper::body::Frame;
use serde::Deserialize;
use wasmtime_wasi_http::WasiBody;

use super::policy::{
    Admitted, Configure, Policy, RoutePolicyKind, Screening, Stage, Table, Verdict, decided,
};
use crate::data::replica::bookmark::Bookmark;
use crate::manifest::ManifestError;

/// `cache = { ttl_seconds, vary, max_entry_bytes }`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["cache"],
    configure,
};

/// The largest cached response, unless a route says otherwise.
const DEFAULT_MAX_ENTRY_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl_seconds: u64,
    #[serde(default)]
    vary: Vec<String>,
    max_entry_bytes: Option<usize>,
}

/// What a route caches.
#[derive(Debug, Clone)]
struct CachePolicy {
    /// How long a response stays fresh.
    ttl: Duration,
    /// Request headers that are part of the cache key (lower case).
    vary: Vec<String>,
    /// Larger responses are passed through uncached.
    max_entry_bytes: usize,
}

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["cache"];
    let raw: RawCache = config.read(at)?;
    if raw.ttl_seconds == 0 {
        return Err(config
            .error(at, "`ttl_seconds` must be at least 1")
            .fix("remove `cache` to not cache the route"));
    }
    Ok(Box::new(ResponseCache::new(CachePolicy {
        ttl: Duration::from_secs(raw.ttl_seconds),
        vary: raw.vary.iter().map(|h| h.to_ascii_lowercase()).collect(),
        max_entry_bytes: raw.max_entry_bytes.unwrap_or(DEFAULT_MAX_ENTRY_BYTES),
    })))
}

/// The key a request missed the cache under: its response is kept there.
#[derive(Clone)]
struct CacheKey(String);

/// Bytes of responses one route's cache holds at most.
const ROUTE_CACHE_BYTES: u64 = 32 << 20;

/// A stored response.
struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    stored: Instant,
}

/// One route's cache.
struct ResponseCache {
    policy: CachePolicy,
    entries: moka::sync::Cache<String, Arc<Entry>>,
}

impl ResponseCache {
    /// An empty cache for `policy`.
    fn new(policy: CachePolicy) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(ROUTE_CACHE_BYTES)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                let headers: usize = entry
                    .headers
                    .iter()
                    .map(|(name, value)| name.as_str().len() + value.len())
                    .sum();
                u32::try_from(key.len() + headers + entry.body.len()).unwrap_or(u32::MAX)
            })
            .time_to_live(policy.ttl)
            .build();
        Self { policy, entries }
    }

    /// The cache key of a request, or `None` when the request is not cacheable (not a GET or
    /// HEAD, or it carries a bookmark: it must see writes newer than any cached answer).
    fn key(&self, parts: &Parts, identity: Option<&str>) -> Option<String> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return None;
        }
        if Bookmark::presented(&parts.headers) {
            return None;
        }
        let mut key = format!(
            "{} {}",
            parts.method,
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
        );
        for name in &self.policy.vary {
            key.push('\n');
            key.push_str(name);
            key.push(':');
            for value in parts.headers.get_all(name.as_str()) {
                key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                key.push(',');
            }
        }
        if let Some(identity) = identity {
            key.push_str("\nidentity:");
            key.push_str(identity);
        }
        Some(key)
    }

    /// The stored response for `key`, with its `Age`.
    fn lookup(&self, key: &str) -> Option<Response<WasiBody>> {
        let entry = self.entries.get(key)?;
        let mut response = Response::new(
            Full::new(entry.body.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        response.headers_mut().insert(
            header::AGE,
            HeaderValue::from(entry.stored.elapsed().as_secs()),
        );
        Some(response)
    }

    /// Passes `response` on, keeping a copy under `key` when it may be cached.
    async fn store(&self, key: String, response: Response<WasiBody>) -> Response<WasiBody> {
        if !cacheable(&response) {
            return response;
        }
        let (parts, mut body) = response.into_parts();
        let mut collected = BytesMut::new();
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if collected.len() + data.len() <= self.policy.max_entry_bytes => {
                        collected.extend_from_slice(&data);
                    }
                    // Too large to keep, or trailers: pass on what was read and the rest.
                    Ok(data) => return resume(parts, collected.freeze(), Frame::data(data), body),
                    Err(trailers) => return resume(parts, collected.freeze(), trailers, body),
                },
                Some(Err(error)) => {
                    let read = Full::new(collected.freeze()).map_err(|never| match never {});
                    let failed = futures::stream::once(async move { Err(error) });
                    let body = StreamBody::new(BodyStream::new(read).chain(failed));
                    return Response::from_parts(parts, body.boxed_unsync());
                }
            }
        }
        let body = collected.freeze();
        self.entries.insert(
            key,
            Arc::new(Entry {
                status: parts.status,
                headers: parts.headers.clone(),
                body: body.clone(),
                stored: Instant::now(),
            }),
        );
        Response::from_parts(
            parts,
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl Policy for ResponseCache {
    /// Runs once the caller is known: a caller's responses are kept apart from everyone
    /// else's, so one never sees another's data.
    fn stage(&self) -> Stage {
        Stage::Identified
    }

    fn summary(&self) -> String {
        format!("cache {}s", self.policy.ttl.as_secs())
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        let identity = screening.record.identity.as_deref();
        let Some(key) = self.key(screening.parts, identity) else {
            return decided(Ok(()));
        };
        if let Some(hit) = self.lookup(&key) {
            screening.record.outcome = Some("cache-hit");
            return decided(Err(hit));
        }
        screening.admitted.notes.insert(CacheKey(key));
        decided(Ok(()))
    }

    fn finish<'s>(
        &'s self,
        admitted: &'s Admitted,
        response: Response<WasiBody>,
    ) -> BoxFuture<'s, Response<WasiBody>> {
        match admitted.notes.get::<CacheKey>() {
            Some(CacheKey(key)) => Box::pin(self.store(key.clone(), response)),
            None => Box::pin(std::future::ready(response)),
        }
    }
}

/// Whether the guest allows this response to be kept.
fn cacheable(response: &Response<WasiBody>) -> bool {
    let headers = response.headers();
    let forbidden = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|directive| {
            let directive = directive.trim();
            directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("private")
                || directive.eq_ignore_ascii_case("no-cache")
        });
    response.status() == StatusCode::OK && !forbidden && !headers.contains_key(header::SET_COOKIE)
}

/// A body made of what was read already, then `next`, then the rest of `body`.
fn resume(
    parts: http::response::Parts,
    read: Bytes,
    next: Frame<Bytes>,
    body: WasiBody,
) -> Response<WasiBody> {
    let head = futures::stream::iter([Ok(Frame::data(read)), Ok(next)]);
    let body = StreamBody::new(head.chain(BodyStream::new(body)));
    Response::from_parts(parts, body.boxed_unsync())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str, accept: &str) -> Parts {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("accept", accept)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    #[test]
    fn keys_separate_queries_vary_headers_and_callers() {
        let cache = ResponseCache::new(CachePolicy {
            ttl: Duration::from_secs(60),
            vary: vec!["accept".into()],
            max_entry_bytes: 1024,
        });
        let json = cache.key(&parts(Method::GET, "/a?x=1", "application/json"), None);
        let html = cache.key(&parts(Method::GET, "/a?x=1", "text/html"), None);
        let other = cache.key(&parts(Method::GET, "/a?x=2", "application/json"), None);
        let alice = cache.key(
            &parts(Method::GET, "/a?x=1", "application/json"),
            Some("alice"),
        );
        let keys = [&json, &html, &other, &alice];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(cache.key(&parts(Method::POST, "/a", "x"), None).is_none());
    }

    #[test]
    fn the_guest_can_keep_a_response_out() {
        let response = |cache_control: Option<&str>| {
            let mut builder = Response::builder().status(200);
            if let Some(value) = cache_control {
                builder = builder.header(header::CACHE_CONTROL, value);
            }
            builder
                .body(
                    Full::new(Bytes::new())
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .unwrap()
        };
        assert!(cacheable(&response(None)));
        assert!(cacheable(&response(Some("public, max-age=60"))));
        assert!(!cacheable(&response(Some("max-age=0, no-store"))));
        assert!(!cacheable(&response(Some("Private"))));
    }
}
