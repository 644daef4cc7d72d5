//! The caller that ledge's gateway verified, as the guest receives it.
//!
//! On a route with `auth` (see `docs/gateway.md` in the ledge repository), the gateway checks
//! the caller before the component runs and passes who it is as `ledge-auth-*` request
//! headers: `ledge-auth-authorizer`, `ledge-auth-subject`, `ledge-auth-scopes` (space-separated)
//! and per authorizer more facts, such as `ledge-auth-claims` (a JWT's claims as JSON) or
//! `ledge-auth-plan` (an API key's plan). [`Identity`] reads them.
//!
//! Trust them only in an app that has an authorizer (or behind a mutual-TLS listener): that is
//! where ledge removes incoming `ledge-auth-*` headers, so a client cannot forge them. On Spin,
//! which has no gateway, no request carries an identity.
//!
//! ```
//! use ledge_sdk::auth::Identity;
//! use ledge_sdk::http::{Request, StatusCode};
//! use ledge_sdk::json::{self, ApiError, JsonResponse};
//!
//! #[ledge_sdk::http_service]
//! async fn handle(req: Request) -> Result<JsonResponse, ApiError> {
//!     let Some(caller) = Identity::from_request(&req) else {
//!         return Err(ApiError::new(StatusCode::UNAUTHORIZED, "this route needs `auth`"));
//!     };
//!     if !caller.has_scope("tickets:write") {
//!         return Err(ApiError::new(StatusCode::FORBIDDEN, "needs scope tickets:write"));
//!     }
//!     let body = serde_json::json!({ "subject": caller.subject(), "tier": caller.detail("tier") });
//!     Ok(json::response(StatusCode::OK, &body))
//! }
//! # fn main() {}
//! ```

use http::HeaderMap;

/// The prefix of the request headers that carry the identity; only the gateway sets them.
pub const HEADER_PREFIX: &str = "ledge-auth-";

/// Who a request comes from, as an authorizer of ledge's gateway established it.
///
/// ```
/// use ledge_sdk::auth::Identity;
/// use ledge_sdk::http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ledge-auth-authorizer", "users".parse().unwrap());
/// headers.insert("ledge-auth-subject", "ada".parse().unwrap());
/// headers.insert("ledge-auth-scopes", "shows:read tickets:write".parse().unwrap());
/// headers.insert("ledge-auth-tier", "gold".parse().unwrap());
///
/// let caller = Identity::from_headers(&headers).unwrap();
/// assert_eq!(caller.subject(), "ada");
/// assert!(caller.has_scope("tickets:write"));
/// assert_eq!(caller.detail("tier"), Some("gold"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    authorizer: String,
    subject: String,
    scopes: Vec<String>,
    details: Vec<(String, String)>,
}

impl Identity {
    /// The identity on a request, or `None` when the gateway verified no caller (the route
    /// has no `auth`, or the app does not run on ledge).
    pub fn from_request<B>(req: &http::Request<B>) -> Option<Self> {
        Self::from_headers(req.headers())
    }

    /// The identity in a request's headers (see [`from_request`](Identity::from_request)).
    ///
    /// Headers whose value is not UTF-8 are left out.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut authorizer = None;
        let mut subject = String::new();
        let mut scopes = Vec::new();
        let mut details = Vec::new();
        for (name, value) in headers {
            let Some(fact) = name.as_str().strip_prefix(HEADER_PREFIX) else {
                continue;
            };
            let Ok(value) = value.to_str() else {
                continue;
            };
            match fact {
                "authorizer" => authorizer = Some(value.to_string()),
                "subject" => subject = value.to_string(),
                "scopes" => scopes = value.split_whitespace().map(str::to_string).collect(),
                _ => details.push((fact.to_string(), value.to_string())),
            }
        }
        // The gateway always names the authorizer; without it there is no identity.
        Some(Self {
            authorizer: authorizer?,
            subject,
            scopes,
            details,
        })
    }

    /// The name of the authorizer that verified the caller (`mtls` for a client certificate).
    pub fn authorizer(&self) -> &str {
        &self.authorizer
    }

    /// The caller: a token's `sub`, an API key's id, an HMAC key id, a certificate subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The scopes granted to the caller.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the caller was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// Another fact the authorizer passed, by its name after `ledge-auth-`: `claims`, `plan`,
    /// or what a component authorizer answered (its `ledge-auth-tier` is `detail("tier")`).
    pub fn detail(&self, name: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// A JWT authorizer's claims (`ledge-auth-claims`), parsed; `None` for other authorizers
    /// or claims that are not JSON.
    pub fn claims(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.detail("claims")?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateway_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(Identity::from_headers(&headers), None);
        headers.insert("ledge-auth-authorizer", "users".parse().unwrap());
        headers.insert("ledge-auth-subject", "ada".parse().unwrap());
        headers.insert("ledge-auth-scopes", "a  b".parse().unwrap());
        headers.insert(
            "ledge-auth-claims",
            r#"{"sub":"ada","n":1}"#.parse().unwrap(),
        );
        headers.insert("x-other", "1".parse().unwrap());
        let id = Identity::from_headers(&headers).unwrap();
        assert_eq!(id.authorizer(), "users");
        assert_eq!(id.scopes(), ["a", "b"]);
        assert!(id.has_scope("b") && !id.has_scope("c"));
        assert_eq!(id.claims().unwrap()["n"], 1);
        assert_eq!(id.detail("plan"), None);
    }
}
