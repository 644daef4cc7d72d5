//! Cross-origin resource sharing: preflights are answered here without running the guest, and
//! actual responses get the `Access-Control-*` headers for allowed origins.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};

use crate::manifest::Cors;

/// What the gateway does with a request's `Origin`.
pub enum CorsDecision {
    /// Not a cross-origin request, or an origin that is not allowed (the browser then blocks
    /// the response itself): nothing to add.
    Plain,
    /// An allowed origin: echo it on the response.
    Allowed(HeaderValue),
    /// A preflight, answered by the gateway with this status and headers.
    Preflight(StatusCode, HeaderMap),
}

/// The CORS policy of one route, with its header values built once.
pub struct CorsPolicy {
    config: Cors,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

impl CorsPolicy {
    /// Prepares `config`.
    pub fn new(config: &Cors) -> Self {
        let joined = |list: &[String]| {
            (!list.is_empty())
                .then(|| HeaderValue::from_str(&list.join(", ")).ok())
                .flatten()
        };
        Self {
            allow_methods: joined(&config.allow_methods),
            allow_headers: joined(&config.allow_headers),
            expose_headers: joined(&config.expose_headers),
            max_age: config.max_age.map(|age| HeaderValue::from(age.as_secs())),
            config: config.clone(),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.config
            .allow_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    /// Decides for the request `parts`.
    pub fn decide(&self, parts: &Parts) -> CorsDecision {
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
        self.decorate(&mut headers, origin.clone());
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
    pub fn decorate(&self, headers: &mut HeaderMap, origin: HeaderValue) {
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
