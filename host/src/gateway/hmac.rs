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
        let signature = hex::decode(fields.signature)
            .map_err(|_| Denial::unauthorized("the signature is not hex".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(string_to_sign(parts, &signed_headers, date, &body_hash).as_bytes());
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

/// What a signature covers: the method, the path, the canonical query, `name:value` for each
/// signed header in the order given, the date and the body hash, one per line.
fn string_to_sign(parts: &Parts, signed_headers: &[&str], date: u64, body_hash: &[u8]) -> String {
    let mut lines = vec![
        parts.method.as_str().to_string(),
        parts.uri.path().to_string(),
        canonical_query(parts.uri.query().unwrap_or("")),
    ];
    for name in signed_headers {
        let value = parts
            .headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map_or("", str::trim);
        lines.push(format!("{name}:{value}"));
    }
    lines.push(date.to_string());
    lines.push(hex::encode(body_hash));
    lines.join("\n")
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sha2::Digest as _;

    use super::*;

    fn request(authorization: Option<&str>, date: u64, body_hash: &str) -> Parts {
        let mut builder = http::Request::post("/orders/7?b=2&a=1&a=0")
            .header("host", "api.example")
            .header("x-tenant", " acme ")
            .header(DATE_HEADER, date.to_string())
            .header(BODY_HASH_HEADER, body_hash);
        if let Some(authorization) = authorization {
            builder = builder.header("authorization", authorization);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_canonical_string_is_the_documented_lines() {
        let hash = sha2::Sha256::digest(b"payload");
        let parts = request(None, 1_700_000_000, &hex::encode(hash));
        assert_eq!(
            string_to_sign(&parts, &["x-tenant", "host"], 1_700_000_000, &hash),
            format!(
                "POST\n/orders/7\na=0&a=1&b=2\nx-tenant:acme\nhost:api.example\n1700000000\n{}",
                hex::encode(hash)
            )
        );
    }

    #[test]
    fn a_signature_verifies_once_and_only_with_its_secret() {
        let authorizer = HmacAuthorizer::new(
            "partners",
            HmacSettings {
                secrets: BTreeMap::from([("k1".to_string(), b"secret".to_vec())]),
                signed_headers: vec!["host".into()],
                window: Duration::from_secs(60),
            },
        );
        let hash = hex::encode(sha2::Sha256::digest(b"payload"));
        let date = now();
        let canonical = format!("POST\n/orders/7\na=0&a=1&b=2\nhost:api.example\n{date}\n{hash}");
        let sign = |secret: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        let header = |signature: &str, headers: &str| {
            format!("{SCHEME} Credential=k1, SignedHeaders={headers}, Signature={signature}")
        };

        let forged = request(Some(&header(&sign(b"guess"), "host")), date, &hash);
        let denial = authorizer.authenticate(&forged).err().unwrap();
        assert!(
            denial.reason.contains("does not verify"),
            "{}",
            denial.reason
        );

        let uncovered = request(Some(&header(&sign(b"secret"), "x-tenant")), date, &hash);
        let denial = authorizer.authenticate(&uncovered).err().unwrap();
        assert!(
            denial.reason.contains("must cover the `host`"),
            "{}",
            denial.reason
        );

        let signed = request(Some(&header(&sign(b"secret"), "host")), date, &hash);
        let accepted = authorizer.authenticate(&signed).ok().unwrap();
        assert_eq!(accepted.identity.subject, "k1");
        let denial = authorizer.authenticate(&signed).err().unwrap();
        assert!(denial.reason.contains("replayed"), "{}", denial.reason);

        let stale = request(Some(&header(&sign(b"secret"), "host")), date - 120, &hash);
        let denial = authorizer.authenticate(&stale).err().unwrap();
        assert!(denial.reason.contains("replay window"), "{}", denial.reason);
    }
}
