//! The Rust guest SDK for ledge: HTTP functions compiled to `wasm32-wasip2` components.
//!
//! How it is organised:
//!
//! - At the root, all of [spin-sdk 7](https://docs.rs/spin-sdk/7): [`http`], [`key_value`],
//!   [`sqlite`], [`variables`], ... and the [`http_service`] macro, so a spin-sdk function
//!   ports by changing `spin_sdk` into `ledge_sdk` (the same features, the same types).
//! - What ledge adds, a module each: [`json`] (typed bodies and `{"error": ...}` responses),
//!   [`router`] (methods and path parameters inside one component) and [`auth`] (the caller
//!   that ledge's gateway verified).
//!
//! ```
//! use ledge_sdk::http::{IntoResponse, Request, StatusCode};
//! use ledge_sdk::json::{self, ApiError, JsonResponse};
//! use ledge_sdk::router::{Params, Router};
//! use serde::Deserialize;
//!
//! async fn hello(_req: Request, params: Params) -> JsonResponse {
//!     let name = params.get("name").unwrap_or_default();
//!     json::response(StatusCode::OK, &serde_json::json!({ "hello": name }))
//! }
//!
//! #[derive(Deserialize)]
//! struct Echo {
//!     message: String,
//! }
//!
//! async fn echo(req: Request, _params: Params) -> Result<JsonResponse, ApiError> {
//!     let Echo { message } = json::body(req).await?;
//!     Ok(json::response(StatusCode::OK, &serde_json::json!({ "echo": message })))
//! }
//!
//! #[ledge_sdk::http_service]
//! async fn handle(req: Request) -> impl IntoResponse {
//!     Router::new()
//!         .get("/hello/{name}", hello)
//!         .post("/echo", echo)
//!         .handle(req)
//!         .await
//! }
//! # fn main() {}
//! ```
//!
//! # Porting from spin-sdk 7
//!
//! In `Cargo.toml`, replace `spin-sdk = { version = "7", ... }` with `ledge-sdk`, keeping
//! `default-features` and `features`. In the code, replace `spin_sdk` with `ledge_sdk`, or
//! leave it as it is and add `extern crate ledge_sdk as spin_sdk;` at the top of `lib.rs`.
//!
//! The macros ([`http_service`], [`dependencies`]) are ledge-sdk's own: spin-sdk's expand to
//! `::spin_sdk::...` paths, which do not resolve in a guest without a `spin-sdk` dependency.
//! These expand to the same code through `::ledge_sdk::...`, so the dependency must keep the
//! name `ledge-sdk` (not renamed in `Cargo.toml`). [`redis_subscriber`] refuses to compile:
//! ledge has no Redis trigger.
//!
//! # Features
//!
//! spin-sdk 7's, passed through: `http` (always on), `json`, `key-value`, `sqlite` and
//! `variables` (the default: what ledge serves), and `llm`, `mqtt`, `mysql`, `pg`,
//! `postgres4-types`, `redis`, `grpc`, `http-middleware`, `export-sdk-language`. ledge runs a
//! component that imports the interfaces it does not serve, and fails the request that calls
//! one.

#![deny(missing_docs)]

pub use spin_sdk::*;

// Named imports shadow the glob: these, not spin-sdk's macros (which expand to `::spin_sdk`
// paths), are `ledge_sdk::http_service` and the rest.
pub use ledge_sdk_macro::{dependencies, http_service, redis_subscriber};

pub mod auth;
pub mod json;
pub mod router;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
