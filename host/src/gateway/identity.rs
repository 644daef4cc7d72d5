//! The verified caller, and how the guest learns it: request headers under a reserved prefix
//! that only the gateway sets (incoming copies are removed before any policy runs).

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;

/// Request headers starting with this carry the verified identity to the guest.
pub const IDENTITY_PREFIX: &str = "ledge-auth-";

/// Who a request comes from, as an authorizer established it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The authorizer's name.
    pub authorizer: String,
    /// The caller: a token's `sub`, an API key's id, an HMAC key id, a certificate subject.
    pub subject: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// More facts for the guest (`claims`, `plan`, ...), each sent as `ledge-auth-<name>`.
    pub details: Vec<(String, String)>,
}

impl Identity {
    /// A client that mutual TLS verified, named by its certificate's subject.
    pub fn certified(subject: &str) -> Self {
        Self {
            authorizer: "mtls".into(),
            subject: subject.to_string(),
            scopes: Vec::new(),
            details: Vec::new(),
        }
    }

    /// Sets the `ledge-auth-*` headers on the request.
    pub fn attach(&self, parts: &mut Parts) {
        let facts = [
            ("authorizer".to_string(), self.authorizer.clone()),
            ("subject".to_string(), self.subject.clone()),
            ("scopes".to_string(), self.scopes.join(" ")),
        ];
        for (name, value) in facts.into_iter().chain(self.details.iter().cloned()) {
            let name = HeaderName::from_bytes(format!("{IDENTITY_PREFIX}{name}").as_bytes())
                .expect("identity header names are valid");
            if let Ok(value) = HeaderValue::from_str(&value) {
                parts.headers.insert(name, value);
            }
        }
    }
}

/// Removes incoming identity headers (which only the gateway may set).
pub fn strip(parts: &mut Parts) {
    let forged: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        parts.headers.remove(name);
    }
}
