//! Typed JSON bodies: read a request body into your own type, answer with a JSON value, and
//! fail with a status and `{"error": "<message>"}`.
//!
//! [`body`] turns a bad request into an [`ApiError`] (415 for a content type that is not JSON,
//! 400 for a body that does not parse into the type, with serde's message), and an `ApiError`
//! is itself a response, so a handler that returns `Result<_, ApiError>` can use `?` and still
//! answer every request.
//!
//! ```
//! use ledge_sdk::http::{Request, StatusCode};
//! use ledge_sdk::json::{self, ApiError, JsonResponse};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct NewNote {
//!     text: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Note {
//!     id: u32,
//!     text: String,
//! }
//!
//! #[ledge_sdk::http_service]
//! async fn handle(req: Request) -> Result<JsonResponse, ApiError> {
//!     // `{"text": 1}` or `not json` answers 400 with `{"error": "invalid JSON body: ..."}`.
//!     let new: NewNote = json::body(req).await?;
//!     if new.text.is_empty() {
//!         return Err(ApiError::bad_request("a note needs some text"));
//!     }
//!     Ok(json::response(StatusCode::CREATED, &Note { id: 1, text: new.text }))
//! }
//! # fn main() {}
//! ```

use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, IntoResponse, Request};
use spin_sdk::wasip3::http::types;

/// A response with a JSON body, as [`response`] and [`ApiError::to_response`] build it.
///
/// It is an ordinary `http::Response`, so headers can be added before it is returned:
///
/// ```
/// use ledge_sdk::http::{HeaderValue, StatusCode};
/// use ledge_sdk::json::{self, JsonResponse};
///
/// let mut response: JsonResponse = json::response(StatusCode::OK, &["a", "b"]);
/// response
///     .headers_mut()
///     .insert("cache-control", HeaderValue::from_static("max-age=60"));
/// ```
pub type JsonResponse = http::Response<FullBody<Bytes>>;

/// Reads the whole request body and deserializes it into `T`.
///
/// The request may leave out `content-type`; if it has one, it must be `application/json` or
/// end in `+json` (such as `application/merge-patch+json`), else the error is 415. An empty
/// body, a body that is not JSON or JSON of another shape than `T` is a 400 whose message says
/// what serde expected and where.
///
/// To keep using the request's headers after this, read them first (`body` takes the request
/// because it consumes the body).
///
/// ```
/// use ledge_sdk::http::Request;
/// use ledge_sdk::json::{self, ApiError};
///
/// #[derive(serde::Deserialize)]
/// struct Login {
///     user: String,
/// }
///
/// async fn login(req: Request) -> Result<String, ApiError> {
///     let agent = req.headers().get("user-agent").cloned();
///     let login: Login = json::body(req).await?;
///     Ok(format!("welcome {} ({agent:?})", login.user))
/// }
/// ```
pub async fn body<T: DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    check_content_type(req.headers())?;
    let bytes = req
        .into_body()
        .bytes()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
    from_slice(&bytes)
}

/// Deserializes a JSON body that was already read, with the same errors as [`body`] (without
/// the content type check).
///
/// ```
/// use ledge_sdk::http::StatusCode;
/// use ledge_sdk::json;
///
/// let err = json::from_slice::<Vec<u32>>(b"[1, \"two\"]").unwrap_err();
/// assert_eq!(err.status(), StatusCode::BAD_REQUEST);
/// assert!(err.message().starts_with("invalid JSON body: invalid type"));
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "expected a JSON body, got an empty one",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Serializes `value` as the body of a response with `status` and
/// `content-type: application/json`.
///
/// A value that cannot be serialized (a map with non-string keys, a failing `Serialize`
/// implementation) gives a 500 with that error in `{"error": ...}` instead.
///
/// ```
/// use ledge_sdk::http::StatusCode;
/// use ledge_sdk::json;
///
/// let response = json::response(StatusCode::OK, &serde_json::json!({ "hello": "world" }));
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> JsonResponse {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, bytes),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not serialize the response: {e}"),
        )
        .to_response(),
    }
}

/// The body of every error this crate answers with: `{"error": "<message>"}`.
///
/// Clients (and tests) can deserialize error responses with it.
///
/// ```
/// let body: ledge_sdk::json::ErrorBody =
///     serde_json::from_str(r#"{"error": "no route for GET /nope"}"#).unwrap();
/// assert_eq!(body.error, "no route for GET /nope");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

/// An error that answers a request: a status and a message, sent as [`ErrorBody`].
///
/// It implements [`IntoResponse`], and converts into [`spin_sdk::http::Error`], so a handler
/// returning `Result<impl IntoResponse, ApiError>` answers `Err` with this status and body
/// rather than a bare 500.
///
/// ```
/// use ledge_sdk::http::StatusCode;
/// use ledge_sdk::json::ApiError;
///
/// let err = ApiError::new(StatusCode::CONFLICT, "seat A1 is taken");
/// assert_eq!(err.to_string(), "409 Conflict: seat A1 is taken");
/// assert_eq!(err.to_response().status(), StatusCode::CONFLICT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answered with `status` and `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A 500 Internal Server Error, for failures that are not the caller's (a store that
    /// cannot be opened, a query that fails).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent as `error`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: this status, `content-type: application/json`, `{"error": message}`.
    pub fn to_response(&self) -> JsonResponse {
        let body = ErrorBody {
            error: self.message.clone(),
        };
        // A struct of one string always serializes.
        with_body(self.status, serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Result<types::Response, types::ErrorCode> {
        self.to_response().into_response()
    }
}

impl From<ApiError> for spin_sdk::http::Error {
    fn from(err: ApiError) -> Self {
        // `Error::Response` is how spin-sdk lets an `Err` be answered as a response.
        match err.to_response().into_response() {
            Ok(response) => spin_sdk::http::Error::Response(response),
            Err(code) => spin_sdk::http::Error::ErrorCode(code),
        }
    }
}

/// A request without `content-type` is taken as JSON (scripts often leave it out); one that
/// names another type is refused, so that a form post is never parsed by accident.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "expected content-type application/json, got {}",
            String::from_utf8_lossy(value.as_bytes())
        ),
    ))
}

fn with_body(status: StatusCode, bytes: Vec<u8>) -> JsonResponse {
    let mut response = http::Response::new(FullBody::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(value: &'static str) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
        check_content_type(&headers)
    }

    #[test]
    fn accepts_json_content_types_or_none() {
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        assert!(content_type("application/json").is_ok());
        assert!(content_type("Application/JSON; charset=utf-8").is_ok());
        assert!(content_type("application/merge-patch+json").is_ok());
        let err = content_type("text/plain").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            err.message(),
            "expected content-type application/json, got text/plain"
        );
    }

    #[test]
    fn explains_bodies_that_do_not_parse() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Echo {
            message: String,
        }
        let message = |body: &[u8]| from_slice::<Echo>(body).unwrap_err().message().to_string();
        assert_eq!(message(b" \n"), "expected a JSON body, got an empty one");
        assert_eq!(
            message(b"{\"msg\": 1}"),
            "invalid JSON body: missing field `message` at line 1 column 10"
        );
        assert!(message(b"nope").starts_with("invalid JSON body: expected ident"));
        assert_eq!(
            from_slice::<Echo>(b"{\"message\": \"hi\"}")
                .unwrap()
                .message,
            "hi"
        );
    }

    #[test]
    fn answers_errors_as_json() {
        let response = ApiError::not_found("no show 9").to_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body_bytes(response.into_body()),
            br#"{"error":"no show 9"}"#
        );
    }

    #[test]
    fn answers_unserializable_values_with_500() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let response = response(StatusCode::OK, &map);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: ErrorBody = serde_json::from_slice(&body_bytes(response.into_body())).unwrap();
        assert!(body.error.starts_with("could not serialize the response"));
    }

    /// The bytes of a `Full` body, which is ready at once.
    fn body_bytes(body: FullBody<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let collected = body.collect();
        let mut collected = std::pin::pin!(collected);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match collected.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Ok(c)) => c.to_bytes().to_vec(),
            _ => unreachable!("a full body is ready at once"),
        }
    }
}
