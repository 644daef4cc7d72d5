//! A router inside one component: methods and paths with parameters, each to its own handler.
//!
//! Paths are matched by [`matchit`]: `/shows` is exact, `/shows/{id}` captures one segment,
//! `/files/{*rest}` captures the rest of the path; a static segment beats a parameter. The path
//! is the one below the component's route, as Spin hands it over in `spin-path-info`: a
//! component on `/api/...` sees `/api/shows/2` as `/shows/2` (without that header, as in a unit
//! test, the URI's path is used). A trailing slash is ignored when only the path without it
//! matches.
//!
//! What the router answers by itself, each with `{"error": "..."}` (see
//! [`json::ErrorBody`](crate::json::ErrorBody)):
//!
//! - 404 when no path matches;
//! - 405 with an `Allow` header when the path matches but the method does not (`HEAD` is
//!   served by the `GET` handler when it has none of its own);
//! - 400 when a parameter is not valid percent-encoded UTF-8, or [`Params::parse`] fails.
//!
//! ```
//! use ledge_sdk::http::{IntoResponse, Request, StatusCode};
//! use ledge_sdk::json::{self, ApiError, JsonResponse};
//! use ledge_sdk::router::{Params, Router};
//!
//! async fn list(_req: Request, _params: Params) -> JsonResponse {
//!     json::response(StatusCode::OK, &["Hamlet", "Medea"])
//! }
//!
//! async fn show(_req: Request, params: Params) -> Result<JsonResponse, ApiError> {
//!     // `/shows/abc` answers 400: "path parameter `id` is not valid: invalid digit found in string"
//!     let id: u32 = params.parse("id")?;
//!     Ok(json::response(StatusCode::OK, &serde_json::json!({ "id": id })))
//! }
//!
//! #[ledge_sdk::http_service]
//! async fn handle(req: Request) -> impl IntoResponse {
//!     Router::new()
//!         .get("/shows", list)
//!         .get("/shows/{id}", show)
//!         .post("/shows", async |_req: Request, _params: Params| StatusCode::CREATED)
//!         .handle(req)
//!         .await
//! }
//! # fn main() {}
//! ```
//!
//! Building the router on each request, as above, costs a few allocations: a component
//! instance serves one request (or, for p3 components, a few in turn), so there is no
//! long-lived state to keep it in.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use http::header::{ALLOW, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::wasip3::http::types;

use crate::json::ApiError;

/// The header in which Spin (and ledge) pass the part of the path below the route.
const PATH_INFO: &str = "spin-path-info";

type HandlerResult = Result<types::Response, types::ErrorCode>;
type Handler = Box<dyn Fn(Request, Params) -> Pin<Box<dyn Future<Output = HandlerResult>>>>;

/// Routes requests by method and path to async handlers.
///
/// A handler is any `async fn(Request, Params) -> impl IntoResponse` (or a closure of that
/// shape). Routes are added with [`get`](Router::get), [`post`](Router::post), ... or
/// [`route`](Router::route) for any method, then [`handle`](Router::handle) answers a request.
/// See the [module documentation](self) for a full component.
///
/// ```
/// use ledge_sdk::http::Request;
/// use ledge_sdk::router::{Params, Router};
///
/// async fn hello(_req: Request, params: Params) -> String {
///     format!("hello {}", params.get("name").unwrap_or("you"))
/// }
///
/// let router = Router::new().get("/hello/{name}", hello);
/// assert_eq!(format!("{router:?}"), r#"Router(["GET /hello/{name}"])"#);
/// ```
#[derive(Default)]
pub struct Router {
    paths: matchit::Router<usize>,
    /// Index into `endpoints` of each path pattern, as it was added.
    patterns: HashMap<String, usize>,
    endpoints: Vec<Endpoint>,
}

/// The handlers of one path pattern, by method.
struct Endpoint {
    pattern: String,
    handlers: Vec<(Method, Handler)>,
}

impl Router {
    /// A router with no routes: it answers every request with 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `method` on `path` to `handler`.
    ///
    /// ```
    /// use ledge_sdk::http::{Method, Request, StatusCode};
    /// use ledge_sdk::router::{Params, Router};
    ///
    /// async fn purge(_req: Request, _params: Params) -> StatusCode {
    ///     StatusCode::NO_CONTENT
    /// }
    ///
    /// let purge_method = Method::from_bytes(b"PURGE").unwrap();
    /// let router = Router::new().route(purge_method, "/cache/{*key}", purge);
    /// ```
    ///
    /// # Panics
    ///
    /// If `path` is not a valid pattern, conflicts with one already added (`/{a}` and `/{b}`),
    /// or already has a handler for `method`: these are mistakes in the code, which the first
    /// request shows.
    #[track_caller]
    pub fn route<H, F, R>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        let index = match self.patterns.get(path) {
            Some(&index) => index,
            None => {
                let index = self.endpoints.len();
                if let Err(e) = self.paths.insert(path, index) {
                    panic!("ledge_sdk::router: cannot route {method} {path}: {e}");
                }
                self.patterns.insert(path.to_string(), index);
                self.endpoints.push(Endpoint {
                    pattern: path.to_string(),
                    handlers: Vec::new(),
                });
                index
            }
        };
        let endpoint = &mut self.endpoints[index];
        if endpoint.handlers.iter().any(|(m, _)| *m == method) {
            panic!("ledge_sdk::router: {method} {path} is routed twice");
        }
        let handler: Handler = Box::new(move |req, params| {
            let response = handler(req, params);
            Box::pin(async move { response.await.into_response() })
        });
        endpoint.handlers.push((method, handler));
        self
    }

    /// Routes `GET` (and `HEAD`, unless it has its own handler) on `path` to `handler`.
    ///
    /// ```
    /// # use ledge_sdk::{http::Request, router::{Params, Router}};
    /// # async fn list(_: Request, _: Params) -> &'static str { "[]" }
    /// let router = Router::new().get("/shows", list);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    #[track_caller]
    pub fn get<H, F, R>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(Method::GET, path, handler)
    }

    /// Routes `POST` on `path` to `handler`.
    ///
    /// ```
    /// # use ledge_sdk::{http::{Request, StatusCode}, router::{Params, Router}};
    /// # async fn add(_: Request, _: Params) -> StatusCode { StatusCode::CREATED }
    /// let router = Router::new().post("/shows", add);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    #[track_caller]
    pub fn post<H, F, R>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(Method::POST, path, handler)
    }

    /// Routes `PUT` on `path` to `handler`.
    ///
    /// ```
    /// # use ledge_sdk::{http::{Request, StatusCode}, router::{Params, Router}};
    /// # async fn replace(_: Request, _: Params) -> StatusCode { StatusCode::NO_CONTENT }
    /// let router = Router::new().put("/shows/{id}", replace);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    #[track_caller]
    pub fn put<H, F, R>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(Method::PUT, path, handler)
    }

    /// Routes `PATCH` on `path` to `handler`.
    ///
    /// ```
    /// # use ledge_sdk::{http::{Request, StatusCode}, router::{Params, Router}};
    /// # async fn edit(_: Request, _: Params) -> StatusCode { StatusCode::NO_CONTENT }
    /// let router = Router::new().patch("/shows/{id}", edit);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    #[track_caller]
    pub fn patch<H, F, R>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(Method::PATCH, path, handler)
    }

    /// Routes `DELETE` on `path` to `handler`.
    ///
    /// ```
    /// # use ledge_sdk::{http::{Request, StatusCode}, router::{Params, Router}};
    /// # async fn remove(_: Request, _: Params) -> StatusCode { StatusCode::NO_CONTENT }
    /// let router = Router::new().delete("/shows/{id}", remove);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    #[track_caller]
    pub fn delete<H, F, R>(self, path: &str, handler: H) -> Self
    where
        H: Fn(Request, Params) -> F + 'static,
        F: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        self.route(Method::DELETE, path, handler)
    }

    /// Answers `req` with the handler of its method and path, or with 404, 405 or 400 (see the
    /// [module documentation](self)).
    ///
    /// The result is what a `#[http_service]` function may return as it is.
    ///
    /// ```
    /// use ledge_sdk::http::{IntoResponse, Request};
    /// use ledge_sdk::router::{Params, Router};
    ///
    /// #[ledge_sdk::http_service]
    /// async fn handle(req: Request) -> impl IntoResponse {
    ///     Router::new()
    ///         .get("/", async |_req: Request, _params: Params| "home")
    ///         .handle(req)
    ///         .await
    /// }
    /// # fn main() {}
    /// ```
    pub async fn handle(&self, req: Request) -> Result<types::Response, types::ErrorCode> {
        let path = route_path(req.headers(), req.uri());
        let (endpoint, params) = match self.find(&path) {
            Ok(found) => found,
            Err(err) => return err.into_response(),
        };
        let method = req.method();
        let handler = endpoint.handler(method).or_else(|| {
            (method == Method::HEAD)
                .then(|| endpoint.handler(&Method::GET))
                .flatten()
        });
        match handler {
            Some(handler) => handler(req, params).await,
            None => endpoint.method_not_allowed(method, &path).into_response(),
        }
    }

    /// The endpoint whose pattern matches `path` (or `path` without a trailing slash), with
    /// its decoded parameters.
    fn find(&self, path: &str) -> Result<(&Endpoint, Params), ApiError> {
        let matched = match self.paths.at(path) {
            Ok(matched) => matched,
            Err(_) => path
                .strip_suffix('/')
                .filter(|trimmed| !trimmed.is_empty())
                .and_then(|trimmed| self.paths.at(trimmed).ok())
                .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?,
        };
        let mut params = Vec::with_capacity(matched.params.len());
        for (name, raw) in matched.params.iter() {
            let value = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "path parameter `{name}` is not valid percent-encoded UTF-8"
                    ))
                })?;
            params.push((name.to_string(), value.into_owned()));
        }
        Ok((&self.endpoints[*matched.value], Params { pairs: params }))
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes = self.endpoints.iter().flat_map(|endpoint| {
            endpoint
                .handlers
                .iter()
                .map(move |(method, _)| format!("{method} {}", endpoint.pattern))
        });
        f.debug_tuple("Router")
            .field(&routes.collect::<Vec<_>>())
            .finish()
    }
}

impl Endpoint {
    fn handler(&self, method: &Method) -> Option<&Handler> {
        self.handlers
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, handler)| handler)
    }

    /// The methods this path answers, as the `Allow` header lists them.
    fn allowed(&self) -> Vec<&str> {
        let mut methods = Vec::new();
        for (method, _) in &self.handlers {
            methods.push(method.as_str());
            if *method == Method::GET && self.handler(&Method::HEAD).is_none() {
                methods.push(Method::HEAD.as_str());
            }
        }
        methods
    }

    fn method_not_allowed(&self, method: &Method, path: &str) -> crate::json::JsonResponse {
        let allowed = self.allowed().join(", ");
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; use {allowed}"),
        )
        .to_response();
        if let Ok(value) = HeaderValue::from_str(&allowed) {
            response.headers_mut().insert(ALLOW, value);
        }
        response
    }
}

/// The path to route on: `spin-path-info` when the host sent it, else the URI's path.
fn route_path(headers: &HeaderMap, uri: &Uri) -> String {
    let Some(info) = headers.get(PATH_INFO) else {
        return uri.path().to_string();
    };
    // ledge and Spin send `""` for the route's own path (`/api` on `/api/...`) and never a
    // query, but an odd value should still route rather than fail.
    let info = String::from_utf8_lossy(info.as_bytes());
    let info = info.split('?').next().unwrap_or_default();
    if info.starts_with('/') {
        info.to_string()
    } else {
        format!("/{info}")
    }
}

/// The parameters captured from the path, percent-decoded: `{id}` in `/shows/{id}` gives `id`.
///
/// ```
/// use ledge_sdk::http::Request;
/// use ledge_sdk::json::ApiError;
/// use ledge_sdk::router::Params;
///
/// async fn seat(_req: Request, params: Params) -> Result<String, ApiError> {
///     let row: u32 = params.parse("row")?;
///     let name = params.get("name").unwrap_or_default();
///     Ok(format!("{name}: row {row}"))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The value of parameter `name`, if the route has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parameter `name` parsed as `T`: a 400 [`ApiError`] if it does not parse, a 500 if the
    /// route has no such parameter (a mistake in the code, not in the request).
    pub fn parse<T>(&self, name: &str) -> Result<T, ApiError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let value = self.get(name).ok_or_else(|| {
            ApiError::internal(format!("the route has no path parameter `{name}`"))
        })?;
        value.parse().map_err(|e| {
            ApiError::bad_request(format!("path parameter `{name}` is not valid: {e}"))
        })
    }

    /// The parameters as `(name, value)`, in the order of the route.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the route has no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok(_req: Request, _params: Params) -> StatusCode {
        StatusCode::OK
    }

    fn router() -> Router {
        Router::new()
            .get("/shows", ok)
            .post("/shows", ok)
            .get("/shows/{id}", ok)
            .delete("/shows/{id}", ok)
            .get("/shows/featured", ok)
            .get("/files/{*rest}", ok)
    }

    fn found(router: &Router, path: &str) -> Result<(String, Vec<(String, String)>), ApiError> {
        let (endpoint, params) = router.find(path)?;
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok((endpoint.pattern.clone(), params))
    }

    #[test]
    fn matches_static_before_parameters() {
        let r = router();
        assert_eq!(found(&r, "/shows").unwrap().0, "/shows");
        assert_eq!(found(&r, "/shows/featured").unwrap().0, "/shows/featured");
        let (pattern, params) = found(&r, "/shows/7").unwrap();
        assert_eq!(pattern, "/shows/{id}");
        assert_eq!(params, [("id".to_string(), "7".to_string())]);
        let (_, params) = found(&r, "/files/a/b.css").unwrap();
        assert_eq!(params, [("rest".to_string(), "a/b.css".to_string())]);
    }

    #[test]
    fn ignores_a_trailing_slash_only_when_needed() {
        let r = router();
        assert_eq!(found(&r, "/shows/").unwrap().0, "/shows");
        assert_eq!(found(&r, "/shows/7/").unwrap().0, "/shows/{id}");
        let missing = found(&r, "/").unwrap_err();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.message(), "no route for /");
    }

    #[test]
    fn decodes_parameters_and_refuses_bad_encoding() {
        let r = router();
        let (_, params) = found(&r, "/shows/J%C3%BCrgen%20X").unwrap();
        assert_eq!(params[0].1, "Jürgen X");
        // `%2F` stays inside the segment: it is decoded only after matching.
        let (pattern, params) = found(&r, "/shows/a%2Fb").unwrap();
        assert_eq!(
            (pattern.as_str(), params[0].1.as_str()),
            ("/shows/{id}", "a/b")
        );
        let err = found(&r, "/shows/%FF").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn lists_allowed_methods_with_head_for_get() {
        let r = router();
        let (endpoint, _) = r.find("/shows/1").unwrap();
        assert_eq!(endpoint.allowed(), ["GET", "HEAD", "DELETE"]);
        let response = endpoint.method_not_allowed(&Method::PUT, "/shows/1");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD, DELETE");
        let own_head = Router::new().get("/", ok).route(Method::HEAD, "/", ok);
        let (endpoint, _) = own_head.find("/").unwrap();
        assert_eq!(endpoint.allowed(), ["GET", "HEAD"]);
    }

    #[test]
    #[should_panic(expected = "GET /shows is routed twice")]
    fn refuses_a_route_twice() {
        let _ = Router::new().get("/shows", ok).get("/shows", ok);
    }

    #[test]
    #[should_panic(expected = "cannot route GET /{b}")]
    fn refuses_conflicting_patterns() {
        let _ = Router::new().get("/{a}", ok).get("/{b}", ok);
    }

    #[test]
    fn routes_on_path_info_when_present() {
        let uri: Uri = "http://h/sdk/hello/ada?x=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(route_path(&headers, &uri), "/sdk/hello/ada");
        headers.insert(PATH_INFO, HeaderValue::from_static("/hello/ada"));
        assert_eq!(route_path(&headers, &uri), "/hello/ada");
        headers.insert(PATH_INFO, HeaderValue::from_static(""));
        assert_eq!(route_path(&headers, &uri), "/");
    }

    #[test]
    fn parses_parameters() {
        let params = Params {
            pairs: vec![("id".into(), "12".into()), ("name".into(), "x".into())],
        };
        assert_eq!(params.parse::<u32>("id").unwrap(), 12);
        let err = params.parse::<u32>("name").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.message(),
            "path parameter `name` is not valid: invalid digit found in string"
        );
        let err = params.parse::<u32>("nope").unwrap_err();
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
