//! The HMAC authorizer: requests signed with a shared secret (like AWS SigV4, simpler).
//!
//! A client sends
//!
//! ```text
//! authorization: LEDGE-HMAC-SHA256 Credential=<key id>, SignedHeaders=<h1;h2>, Signature=<hex>
//! x-ledge-date: <unix seconds>
//! x-ledge-content-sha256: <hex SHA-256 of the body>
//! ```
//!
//! and the signature is the hex HMAC-SHA256, under the key's secret, of these lines joined with
//! `\n`: the method; the path; the query's `name=value` pairs as sent, sorted and joined with
//! `&`; `name:value` for each signed header, in `SignedHeaders` order; the date; the body hash.
//! The date must be within the replay window of now, a signature is accepted once, and the
//! body is checked against its hash before the guest gets it.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use http::request::Parts;
use sha2::Sha256;

use super::auth::Denial;
use super::identity::Identity;
use crate::manifest::HmacSettings;

/// The scheme in the `authorization` header.
pub const SCHEME: &str = "LEDGE-HMAC-SHA256";
/// The header with the signing time (unix seconds).
pub const DATE_HEADER: &str = "x-ledge-date";
/// The header with the body's SHA-256 (hex).
pub const BODY_HASH_HEADER: &str = "x-ledge-content-sha256";

/// Signatures seen at most this many times over.
const MAX_REMEMBERED: u64 = 1_000_000;

/// One configured HMAC authorizer.
pub struct HmacAuthorizer {
    name: String,
    settings: HmacSettings,
    /// Signatures accepted within the replay window.
    seen: moka::sync::Cache<String, ()>,
}

/// A verified signature: who signed, and the body hash the request must match.
pub struct Signed {
    /// The signer.
    pub identity: Identity,
    /// The SHA-256 the body must have.
    pub body_sha256: [u8; 32],
}

impl HmacAuthorizer {
    /// Prepares authorizer `name`.
    pub fn new(name: &str, settings: HmacSettings) -> Self {
        Self {
            name: name.to_string(),
            seen: moka::sync::Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(settings.window * 2)
                .build(),
            settings,
        }
    }

    /// Verifies the request's signature, date and freshness.
    pub fn authenticate(&self, parts: &Parts) -> Result<Signed, Denial> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let authorization = header("authorization")
            .and_then(|value| value.strip_prefix(SCHEME))
            .ok_or_else(|| Denial::unauthorized(format!("a {SCHEME} signature is required")))?;
        let fields = parse_fields(authorization)
            .ok_or_else(|| Denial::unauthorized("the authorization header is malformed".into()))?;
        let secret = self
            .settings
            .secrets
            .get(fields.credential)
            .ok_or_else(|| Denial::unauthorized("unknown signing key".into()))?;
        let signed_headers: Vec<&str> = fields.signed_headers.split(';').collect();
        if let Some(missing) = self
            .settings
            .signed_headers
            .iter()
            .find(|required| !signed_headers.contains(&required.as_str()))
        {
            return Err(Denial::unauthorized(format!(
                "the signature must cover the `{missing}` header"
            )));
        }
        let date = header(DATE_HEADER)
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| {
                Denial::unauthorized(format!("`{DATE_HEADER}` (unix seconds) is required"))
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now.abs_diff(date) > self.settings.window.as_secs() {
            return Err(Denial::unauthorized(
                "the signature's date is outside the replay window".into(),
            ));
        }
        let body_hash = header(BODY_HASH_HEADER)
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(|| {
                Denial::unauthorized(format!("`{BODY_HASH_HEADER}` (hex SHA-256) is required"))
            })?;
        let mut lines = vec![
            parts.method.as_str().to_string(),
            parts.uri.path().to_string(),
            canonical_query(parts.uri.query().unwrap_or("")),
        ];
        for name in &signed_headers {
            let value = header(name).unwrap_or_default();
            lines.push(format!("{name}:{value}"));
        }
        lines.push(date.to_string());
        lines.push(hex::encode(body_hash));
        let signature = hex::decode(fields.signature)
            .map_err(|_| Denial::unauthorized("the signature is not hex".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(lines.join("\n").as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| Denial::unauthorized("the signature does not verify".into()))?;
        // Accepted once: the same signed request sent again within the window is a replay.
        let entry = self.seen.entry(fields.signature.to_string()).or_insert(());
        if !entry.is_fresh() {
            return Err(Denial::unauthorized("the request was replayed".into()));
        }
        Ok(Signed {
            identity: Identity {
                authorizer: self.name.clone(),
                subject: fields.credential.to_string(),
                scopes: Vec::new(),
                details: Vec::new(),
            },
            body_sha256: body_hash,
        })
    }
}

struct Fields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Reads `Credential=..., SignedHeaders=..., Signature=...`.
fn parse_fields(text: &str) -> Option<Fields<'_>> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in text.split(',') {
        let (name, value) = field.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    Some(Fields {
        credential: credential?,
        signed_headers: signed_headers.unwrap_or(""),
        signature: signature?,
    })
}

/// The query's pairs as sent, sorted, joined with `&`.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}
