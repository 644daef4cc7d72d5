//! A custom authorizer for ledge's gateway, as an app would write one: a p2 component that is
//! handed the request's method, path and headers (no body) and answers 2xx to allow or
//! 401/403 to deny. On allow, its `ledge-auth-*` response headers become the caller's
//! identity (`ledge-auth-subject`, `ledge-auth-scopes`, anything else as context).
//!
//! This one allows `Authorization: Bearer token-<name>` as `<name>` with a `tier` of `gold`
//! for names starting with `vip-`, and denies everything else. It counts its decisions in the
//! `default` key-value store under `decisions`, so tests can see the gateway's decision cache.
//! `Bearer show-request` is denied with what the authorizer saw as the reason: its URL and
//! its `spin-*` headers, one per line.

wit_bindgen::generate!({ path: "wit", world: "authorizer", generate_all });

use wasi::keyvalue::{atomics, store};
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Authorizer);

/// The request's absolute URL and `spin-*` headers, one per line.
fn seen(request: &IncomingRequest) -> String {
    let scheme = match request.scheme() {
        Some(wasip2::http::types::Scheme::Https) => "https",
        _ => "http",
    };
    let mut lines = vec![format!(
        "url {scheme}://{}{}",
        request.authority().unwrap_or_default(),
        request.path_with_query().unwrap_or_default()
    )];
    for (name, value) in request.headers().entries() {
        if name.starts_with("spin-") {
            lines.push(format!("{name}: {}", String::from_utf8_lossy(&value)));
        }
    }
    lines.join("\n")
}

struct Authorizer;

impl wasip2::exports::http::incoming_handler::Guest for Authorizer {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if let Ok(bucket) = store::open("default") {
            let _ = atomics::increment(&bucket, "decisions", 1);
        }
        let token = request
            .headers()
            .get("authorization")
            .first()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        let headers = Fields::new();
        let (status, body) = match token.strip_prefix("Bearer token-") {
            _ if token == "Bearer show-request" => (403, seen(&request)),
            Some(name) if !name.is_empty() => {
                let tier = if name.starts_with("vip-") {
                    "gold"
                } else {
                    "standard"
                };
                headers
                    .append("ledge-auth-subject", name.as_bytes())
                    .expect("a valid header");
                headers
                    .append("ledge-auth-scopes", b"tickets:read")
                    .expect("a valid header");
                headers
                    .append("ledge-auth-tier", tier.as_bytes())
                    .expect("a valid header");
                (200, "allowed".to_string())
            }
            _ => (403, "this token is not welcome here".to_string()),
        };
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("a valid status");
        let outgoing = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = outgoing.write().expect("the stream is taken once");
        stream
            .blocking_write_and_flush(body.as_bytes())
            .expect("the client is reading");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("the body is complete");
    }
}
