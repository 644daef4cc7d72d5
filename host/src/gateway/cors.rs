//! Cross-origin resource sharing: preflights are answered here without running the guest, and
//! actual responses get the `Access-Control-*` headers for allowed origins.

use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use wasmtime_wasi_http::WasiBody;

use super::policy::{
    Admitted, Configure, Policy, RoutePolicyKind, Screening, Table, Verdict, decided,
};
use crate::manifest::ManifestError;
use crate::reply::text;

/// `cors = { allow_origins, allow_methods, allow_headers, expose_headers, allow_credentials,
/// max_age }`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["cors"],
    configure,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cors {
    /// Allowed origins (`*` for any, not with credentials).
    allow_origins: Vec<String>,
    /// Allowed methods for preflights.
    #[serde(default)]
    allow_methods: Vec<String>,
    /// Allowed request headers for preflights.
    #[serde(default)]
    allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    expose_headers: Vec<String>,
    /// Whether cookies and credentials may be sent.
    #[serde(default)]
    allow_credentials: bool,
    /// How long a browser may cache a preflight, in seconds.
    max_age: Option<u64>,
}

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["cors"];
    let cors: Cors = config.read(at)?;
    if cors.allow_origins.is_empty() {
        return Err(config
            .error(at, "no origin is allowed in `allow_origins`")
            .fix("list the origins, e.g. [\"https://app.example.com\"]"));
    }
    if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
        return Err(config
            .error(
                at,
                "browsers refuse `*` in `allow_origins` together with `allow_credentials = true`",
            )
            .fix("list the origins explicitly"));
    }
    Ok(Box::new(CorsPolicy::new(cors)))
}

/// The origin a request came from, when the route allows it: every answer echoes it.
#[derive(Clone)]
struct AllowedOrigin(HeaderValue);

/// What the gateway does with a request's `Origin`.
enum CorsDecision {
    /// Not a cross-origin request, or an origin that is not allowed (the browser then blocks
    /// the response itself): nothing to add.
    Plain,
    /// An allowed origin: echo it on the response.
    Allowed(HeaderValue),
    /// A preflight, answered by the gateway with this status and headers.
    Preflight(StatusCode, HeaderMap),
}

/// The CORS policy of one route, with its header values built once.
struct CorsPolicy {
    config: Cors,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

impl CorsPolicy {
    /// Prepares `config`.
    fn new(config: Cors) -> Self {
        let joined = |list: &[String]| {
            (!list.is_empty())
                .then(|| HeaderValue::from_str(&list.join(", ")).ok())
                .flatten()
        };
        Self {
            allow_methods: joined(&config.allow_methods),
            allow_headers: joined(&config.allow_headers),
            expose_headers: joined(&config.expose_headers),
            max_age: config.max_age.map(HeaderValue::from),
            config,
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.config
            .allow_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    /// Decides for the request `parts`.
    fn decide(&self, parts: &Parts) -> CorsDecision {
        let Some(origin) = parts.headers.get(header::ORIGIN) else {
            return CorsDecision::Plain;
        };
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        let preflight = parts.method == Method::OPTIONS
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            return if allowed {
                CorsDecision::Allowed(origin.clone())
            } else {
                CorsDecision::Plain
            };
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        if !allowed {
            return CorsDecision::Preflight(StatusCode::FORBIDDEN, headers);
        }
        self.allow(&mut headers, origin.clone());
        if let Some(methods) = &self.allow_methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        // Without a list, only the CORS-safelisted request headers may be sent.
        if let Some(allowed) = &self.allow_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
        }
        if let Some(age) = &self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        CorsDecision::Preflight(StatusCode::NO_CONTENT, headers)
    }

    /// Adds the headers an allowed `origin` gets on every response.
    fn allow(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if self.config.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

impl Policy for CorsPolicy {
    fn summary(&self) -> String {
        "cors".into()
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        decided(match self.decide(screening.parts) {
            CorsDecision::Plain => Ok(()),
            CorsDecision::Allowed(origin) => {
                screening.admitted.notes.insert(AllowedOrigin(origin));
                Ok(())
            }
            CorsDecision::Preflight(status, headers) => {
                screening.record.outcome = Some("preflight");
                let mut response = text(status, "");
                *response.headers_mut() = headers;
                Err(response)
            }
        })
    }

    fn decorate(&self, admitted: &Admitted, response: &mut Response<WasiBody>) {
        if let Some(AllowedOrigin(origin)) = admitted.notes.get::<AllowedOrigin>() {
            self.allow(response.headers_mut(), origin.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(credentials: bool) -> CorsPolicy {
        CorsPolicy::new(Cors {
            allow_origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["content-type".into()],
            expose_headers: vec!["x-total".into()],
            allow_credentials: credentials,
            max_age: Some(600),
        })
    }

    fn request(method: Method, origin: Option<&str>, preflight: bool) -> Parts {
        let mut builder = http::Request::builder().method(method).uri("/a");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        if preflight {
            builder = builder.header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT");
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn preflights_are_answered_for_allowed_origins_only() {
        let cors = policy(true);
        let allowed = request(Method::OPTIONS, Some("https://APP.example.com"), true);
        let CorsDecision::Preflight(status, headers) = cors.decide(&allowed) else {
            panic!("a preflight was not answered");
        };
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let refused = request(Method::OPTIONS, Some("https://evil.example"), true);
        let CorsDecision::Preflight(status, headers) = cors.decide(&refused) else {
            panic!("a refused preflight reached the guest");
        };
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn actual_requests_echo_allowed_origins_and_ignore_others() {
        let cors = policy(false);
        let get = request(Method::GET, Some("https://app.example.com"), false);
        let CorsDecision::Allowed(origin) = cors.decide(&get) else {
            panic!("an allowed origin was not echoed");
        };
        let mut headers = HeaderMap::new();
        cors.allow(&mut headers, origin);
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        let other = request(Method::GET, Some("https://evil.example"), false);
        assert!(matches!(cors.decide(&other), CorsDecision::Plain));
        let same_origin = request(Method::GET, None, false);
        assert!(matches!(cors.decide(&same_origin), CorsDecision::Plain));
    }
}
