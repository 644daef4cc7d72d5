//! A small JSON API on ledge-sdk's router (p3, `wasm32-wasip2`), served on `/sdk/...`:
//!
//! - `GET /sdk/hello/{name}`: `{"hello": "<name>"}`;
//! - `POST /sdk/echo` with `{"message": "..."}`: `{"echo": "..."}`, or 400 with
//!   `{"error": "..."}` for a body that is not that JSON (415 for another content type);
//! - `GET /sdk/whoami`: the caller ledge's gateway verified, or 401 on a route without `auth`.
//!
//! Any other method on those paths answers 405 with `Allow`, any other path 404: the router
//! does that, not this code.

use ledge_sdk::auth::Identity;
use ledge_sdk::http::{IntoResponse, Request, StatusCode};
use ledge_sdk::json::{self, ApiError, JsonResponse};
use ledge_sdk::router::{Params, Router};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct EchoRequest {
    message: String,
}

#[derive(Serialize)]
struct EchoResponse {
    echo: String,
}

async fn hello(_req: Request, params: Params) -> JsonResponse {
    let name = params.get("name").unwrap_or_default();
    json::response(StatusCode::OK, &serde_json::json!({ "hello": name }))
}

async fn echo(req: Request, _params: Params) -> Result<JsonResponse, ApiError> {
    let EchoRequest { message } = json::body(req).await?;
    Ok(json::response(
        StatusCode::OK,
        &EchoResponse { echo: message },
    ))
}

async fn whoami(req: Request, _params: Params) -> Result<JsonResponse, ApiError> {
    let caller = Identity::from_request(&req).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no verified caller: this route has no auth",
        )
    })?;
    let body = serde_json::json!({
        "authorizer": caller.authorizer(),
        "subject": caller.subject(),
        "scopes": caller.scopes(),
    });
    Ok(json::response(StatusCode::OK, &body))
}

#[ledge_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    Router::new()
        .get("/hello/{name}", hello)
        .post("/echo", echo)
        .get("/whoami", whoami)
        .handle(req)
        .await
}
