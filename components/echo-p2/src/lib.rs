//! A `wasi:http/incoming-handler@0.2.x` (p2) component built with spin-sdk 5.
//!
//! Echoes back what it received, one fact per line, so a client (or a test) can see exactly the
//! request the host handed to the guest: method, authority, path with query, every header
//! (sorted, `name: value`) and the body length.

use spin_sdk::http::{IncomingRequest, IntoResponse, Response};
use spin_sdk::http_component;

#[http_component]
async fn echo(req: IncomingRequest) -> anyhow::Result<impl IntoResponse> {
    let mut lines = vec![
        format!("method: {}", req.method()),
        format!("authority: {}", req.authority().unwrap_or_default()),
        format!(
            "path-with-query: {}",
            req.path_with_query().unwrap_or_default()
        ),
    ];
    let mut headers: Vec<String> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| format!("header {name}: {}", String::from_utf8_lossy(&value)))
        .collect();
    headers.sort();
    lines.extend(headers);
    let body = req.into_body().await?;
    lines.push(format!("body-length: {}", body.len()));
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(lines.join("\n") + "\n")
        .build())
}
