//! A `wasi:http/handler@0.3.0` (p3) component built with spin-sdk 7.
//!
//! Answers with a greeting that names the route it was reached by, from the `spin-*` headers
//! the host adds to every request.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn hello(req: Request) -> impl IntoResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = format!(
        "Hello from a p3 component (spin-sdk 7)!\nroute: {}\npath-info: {}\n",
        header("spin-component-route"),
        header("spin-path-info"),
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .unwrap()
}
