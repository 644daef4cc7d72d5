//! An HTTP function: `wasi:http/handler@0.3.0`, built with spin-sdk 7 for `wasm32-wasip2`.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

/// Answers every request on the component's route.
#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let path = request
        .headers()
        .get("spin-path-info")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("/")
        .to_owned();
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("Hello from {{name}}! You asked for {path}\n"))
        .unwrap()
}
