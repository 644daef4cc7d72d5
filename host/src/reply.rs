//! Answers the host makes itself (refusals, errors, gateway answers): a short text body with a
//! status. Both the server and the gateway answer this way, so it sits beside them.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use wasmtime_wasi_http::WasiBody;

/// A short `text/plain` response.
pub fn text(status: StatusCode, message: &str) -> Response<WasiBody> {
    let mut response = Response::new(full(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A body of `bytes`, all known at once.
pub fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
