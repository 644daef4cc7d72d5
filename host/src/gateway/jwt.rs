//! The JWT authorizer: bearer tokens checked against a JWKS (a file, or a URL fetched and
//! refreshed), with issuer, audience, expiry (small leeway) and an allow-list of public-key
//! algorithms. `alg: none` and HMAC tokens never verify: the accepted algorithms are all
//! asymmetric, and a key is only used with the algorithm family it belongs to.
//!
//! A signature is checked once: verified tokens are remembered for [`VERIFIED_TTL`] (their
//! expiry is still checked on every use), since a public-key verification costs more than the
//! rest of a request.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use http::header;
use http::request::Parts;

use super::auth::{Denial, bearer_challenge};
use super::identity::Identity;
use crate::manifest::{JwksSource, JwtSettings};

/// How long a verified token is remembered (a key removed from the JWKS stops verifying
/// tokens it signed at most this much later).
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Verified tokens remembered at most.
const VERIFIED_MAX: u64 = 100_000;

/// A verified token's claims.
#[derive(Debug, Clone)]
struct Claims(Map<String, Value>);

impl Claims {
    /// Checks `exp` and `nbf` against now, with `leeway` (for a token verified earlier).
    fn check_times(&self, leeway: Duration) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let at = |claim: &str| self.0.get(claim).and_then(Value::as_u64);
        if at("exp").is_some_and(|exp| exp.saturating_add(leeway.as_secs()) < now) {
            return Err("the token has expired".into());
        }
        if at("nbf").is_some_and(|nbf| nbf > now.saturating_add(leeway.as_secs())) {
            return Err("the token is not valid yet".into());
        }
        Ok(())
    }

    /// The `sub` claim.
    fn subject(&self) -> Option<&str> {
        self.0.get("sub").and_then(Value::as_str)
    }

    /// The scopes granted: the space-separated `scope` claim, or the `scp` list.
    fn scopes(&self) -> Vec<&str> {
        match (self.0.get("scope"), self.0.get("scp")) {
            (Some(Value::String(scope)), _) => scope.split_whitespace().collect(),
            (_, Some(Value::Array(list))) => list.iter().filter_map(Value::as_str).collect(),
            (_, Some(Value::String(scope))) => scope.split_whitespace().collect(),
            _ => Vec::new(),
        }
    }
}

/// One configured JWT authorizer.
pub struct JwtAuthorizer {
    name: String,
    settings: JwtSettings,
    keys: RwLock<Arc<JwkSet>>,
    last_fetch: RwLock<Instant>,
    http: reqwest::Client,
    verified: moka::sync::Cache<String, Arc<Verified>>,
}

/// A verified token: its claims (for the time checks) and the identity they make.
struct Verified {
    claims: Claims,
    identity: Identity,
}

impl JwtAuthorizer {
    /// Loads the keys (reads the file or fetches the URL); start-up fails if they cannot be
    /// had, rather than refusing every request later.
    pub async fn load(name: &str, settings: JwtSettings) -> Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let keys = fetch(&http, &settings.jwks)
            .await
            .with_context(|| format!("authorizer `{name}`: cannot load its JWKS"))?;
        let authorizer = Arc::new(Self {
            name: name.to_string(),
            settings,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: RwLock::new(Instant::now()),
            http,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(VERIFIED_TTL)
                .build(),
        });
        let refresher = Arc::downgrade(&authorizer);
        let every = authorizer.settings.refresh;
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(authorizer) = refresher.upgrade() else {
                    return;
                };
                if let Err(error) = authorizer.refresh().await {
                    tracing::warn!("authorizer `{name}`: keeping the old keys: {error:#}");
                }
            }
        });
        Ok(authorizer)
    }

    async fn refresh(&self) -> Result<()> {
        *self.last_fetch.write().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let keys = fetch(&self.http, &self.settings.jwks).await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Verifies the request's bearer token: its subject, scopes and claims are the identity.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Identity, Denial> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token else {
            return Err(Denial {
                challenge: Some(bearer_challenge(None, "")),
                ..Denial::unauthorized("a bearer token is required".into())
            });
        };
        let invalid = |reason: String| Denial {
            challenge: Some(bearer_challenge(Some("invalid_token"), &reason)),
            ..Denial::unauthorized(reason)
        };
        let verified = match self.verified.get(token) {
            Some(verified) => {
                verified
                    .claims
                    .check_times(self.settings.leeway)
                    .map_err(invalid)?;
                verified
            }
            None => {
                let claims = self.verify(token).await.map_err(invalid)?;
                let identity = Identity {
                    authorizer: self.name.clone(),
                    subject: claims.subject().unwrap_or_default().to_string(),
                    scopes: claims.scopes().into_iter().map(str::to_string).collect(),
                    details: vec![(
                        "claims".to_string(),
                        Value::Object(claims.0.clone()).to_string(),
                    )],
                };
                let verified = Arc::new(Verified { claims, identity });
                self.verified.insert(token.to_string(), verified.clone());
                verified
            }
        };
        Ok(verified.identity.clone())
    }

    /// Verifies the bearer `token` and returns its claims.
    async fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(format!(
                "the token is signed with {:?}, which this API does not accept",
                header.alg
            ));
        }
        let keys = self.keys_for(header.kid.as_deref()).await;
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| "the token's key is not in the key set".to_string())?;
        if let Some(key_algorithm) = jwk.common.key_algorithm
            && key_algorithm.to_string() != format!("{:?}", header.alg)
        {
            return Err("the token's algorithm is not the one its key is for".into());
        }
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("the key set holds an unusable key: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| describe(&e))?;
        Ok(Claims(data.claims))
    }

    /// The key set, fetched again first when `kid` is unknown and a URL was not fetched
    /// lately (keys rotate).
    async fn keys_for(&self, kid: Option<&str>) -> Arc<JwkSet> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let known = kid.is_none_or(|kid| keys.find(kid).is_some());
        let recently = self
            .last_fetch
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            < self.settings.min_refetch;
        if known || recently || !matches!(self.settings.jwks, JwksSource::Url(_)) {
            return keys;
        }
        if let Err(error) = self.refresh().await {
            tracing::warn!("cannot refresh a JWKS: {error:#}");
        }
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn fetch(http: &reqwest::Client, source: &JwksSource) -> Result<JwkSet> {
    let text = match source {
        JwksSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?,
        JwksSource::Url(url) => {
            let response = http.get(url).send().await?;
            if !response.status().is_success() {
                return Err(anyhow!("{url} answered {}", response.status()));
            }
            response.text().await?
        }
    };
    serde_json::from_str(&text).context("not a JWK set")
}

/// A short reason for a failed verification.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        other => format!("invalid token: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: serde_json::Value) -> Claims {
        Claims(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn remembered_tokens_still_expire() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let leeway = Duration::from_secs(30);
        assert!(
            claims(serde_json::json!({"exp": now + 60}))
                .check_times(leeway)
                .is_ok()
        );
        assert!(
            claims(serde_json::json!({"exp": now - 10}))
                .check_times(leeway)
                .is_ok()
        );
        let expired = claims(serde_json::json!({"exp": now - 60}));
        assert_eq!(
            expired.check_times(leeway).unwrap_err(),
            "the token has expired"
        );
        let early = claims(serde_json::json!({"exp": now + 600, "nbf": now + 120}));
        assert!(early.check_times(leeway).is_err());
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        assert_eq!(
            claims(serde_json::json!({"scope": "a b"})).scopes(),
            ["a", "b"]
        );
        assert_eq!(claims(serde_json::json!({"scp": ["c"]})).scopes(), ["c"]);
        assert!(claims(serde_json::json!({})).scopes().is_empty());
    }
}
