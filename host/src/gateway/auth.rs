//! Authorization on a route, `auth = "<authorizer>"` with `scopes = [...]`: the authorizer it
//! names (JWT, API key, HMAC or a component) establishes an [`Identity`], the route's scopes
//! are checked, and a refusal becomes a [`Denial`] with the right status and challenge.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::StatusCode;
use http::header::{self, HeaderValue};
use http::request::Parts;
use sha2::{Digest as _, Sha256};
use wasmtime_wasi_http::WasiBody;

use super::access_log::Record;
use super::api_key::ApiKeyAuthorizer;
use super::custom::ComponentAuthorizer;
use super::hmac::HmacAuthorizer;
use super::identity::Identity;
use super::jwt::JwtAuthorizer;
use super::policy::{
    Admitted, Configure, Policy, RoutePolicyKind, Screening, Stage, Table, Verdict,
};
use super::throttle::retry_after;
use crate::data::kv::SharedStore;
use crate::engine::ComponentPool;
use crate::manifest::{AuthorizerSettings, ManifestError};
use crate::reply::text;

/// `auth = "<authorizer>"` and the `scopes` it must grant; skipping `auth` drops both.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["auth", "scopes"],
    configure,
};

/// A ready authorizer.
pub enum Authorizer {
    /// JWT bearer tokens.
    Jwt(Arc<JwtAuthorizer>),
    /// API keys with usage plans.
    ApiKey(Arc<ApiKeyAuthorizer>),
    /// HMAC-signed requests.
    Hmac(Arc<HmacAuthorizer>),
    /// A component of the app decides.
    Component(Arc<ComponentAuthorizer>),
}

/// Where the API-key authorizers count quotas.
pub enum QuotaCounts<'a> {
    /// In the host's own store under this state directory (`ledge up`).
    StateDir(&'a Path),
    /// In this store (under `ledge node`, the cluster's, shared by every node).
    Shared(SharedStore),
}

/// Loads every authorizer of the app (JWKS fetched, quota counts kept in `counts`, deciding
/// components from `pools`).
pub async fn load_all(
    settings: &BTreeMap<String, AuthorizerSettings>,
    counts: QuotaCounts<'_>,
    pools: &BTreeMap<String, Arc<ComponentPool>>,
) -> Result<BTreeMap<String, Arc<Authorizer>>> {
    let mut authorizers = BTreeMap::new();
    // The API-key authorizers' quota counts, in the host's store (opened when one needs it).
    let mut quota_counts = None;
    for (name, settings) in settings {
        let authorizer = match settings {
            AuthorizerSettings::Jwt(jwt) => {
                Authorizer::Jwt(JwtAuthorizer::load(name, jwt.clone()).await?)
            }
            AuthorizerSettings::ApiKey(keys) => {
                let store = match &quota_counts {
                    Some(store) => Arc::clone(store),
                    None => {
                        let store = match &counts {
                            QuotaCounts::StateDir(dir) => crate::data::host_store(dir, "gateway")?,
                            QuotaCounts::Shared(store) => store.clone(),
                        };
                        quota_counts.insert(store).clone()
                    }
                };
                Authorizer::ApiKey(ApiKeyAuthorizer::new(name, keys.clone(), store))
            }
            AuthorizerSettings::Hmac(hmac) => {
                Authorizer::Hmac(Arc::new(HmacAuthorizer::new(name, hmac.clone())))
            }
            AuthorizerSettings::Component(custom) => {
                let pool = pools[&custom.component].clone();
                Authorizer::Component(Arc::new(ComponentAuthorizer::new(
                    name,
                    custom.clone(),
                    pool,
                )))
            }
        };
        authorizers.insert(name.clone(), Arc::new(authorizer));
    }
    Ok(authorizers)
}

/// `auth = "<name>"` on a route, with its scopes.
struct Authorization {
    /// The authorizer's name.
    authorizer: String,
    /// Scopes the caller must all hold (`scope` or `scp` claim).
    scopes: Vec<String>,
}

/// The SHA-256 a signed request's body must have.
#[derive(Clone)]
struct BodyDigest([u8; 32]);

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let scopes = table
        .get("scopes")
        .map(|at| config.read::<Vec<String>>(at))
        .transpose()?
        .unwrap_or_default();
    let Some(at) = table.get("auth") else {
        return Err(config
            .error(&table["scopes"], "scopes need an authorizer to check them")
            .fix("add `auth = \"<authorizer>\"` to the same table"));
    };
    let authorizer: String = config.read(at)?;
    if !config.authorizers.contains_key(&authorizer) {
        return Err(config
            .error(at, format!("there is no authorizer `{authorizer}`"))
            .fix(format!(
                "define it under [application.tool.ledge.authorizers.{authorizer}], or use one of {:?}",
                config.authorizers.keys().collect::<Vec<_>>()
            )));
    }
    Ok(Box::new(Authorization { authorizer, scopes }))
}

impl Policy for Authorization {
    fn stage(&self) -> Stage {
        Stage::Identify
    }

    fn summary(&self) -> String {
        match self.scopes.is_empty() {
            true => format!("auth {}", self.authorizer),
            false => format!("auth {} ({})", self.authorizer, self.scopes.join(" ")),
        }
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        Box::pin(async move {
            let authorizer = &screening.authorizers[&self.authorizer];
            let authorized = self
                .check(authorizer, screening.parts)
                .await
                .map_err(|denial| denial.refuse(screening.record))?;
            authorized.identity.attach(screening.parts);
            if let Some(digest) = authorized.body_sha256 {
                screening.admitted.notes.insert(BodyDigest(digest));
            }
            screening.record.identity = Some(authorized.identity.subject);
            Ok(())
        })
    }

    fn reads_body(&self, admitted: &Admitted) -> bool {
        admitted.notes.get::<BodyDigest>().is_some()
    }

    fn screen_body(
        &self,
        _parts: &Parts,
        body: &Bytes,
        admitted: &Admitted,
        record: &mut Record<'_>,
    ) -> Verdict {
        match admitted.notes.get::<BodyDigest>() {
            Some(BodyDigest(expected)) if <[u8; 32]>::from(Sha256::digest(body)) != *expected => {
                let denial = Denial::unauthorized(format!(
                    "the body does not match `{}`",
                    super::hmac::BODY_HASH_HEADER
                ));
                Err(denial.refuse(record))
            }
            _ => Ok(()),
        }
    }
}

/// An authorized request: who, and (for HMAC) the body hash to check.
struct Authorized {
    /// The caller.
    identity: Identity,
    /// The SHA-256 the body must have.
    body_sha256: Option<[u8; 32]>,
}

impl Authorization {
    /// Establishes who sent the request and checks the route's scopes.
    async fn check(&self, authorizer: &Authorizer, parts: &Parts) -> Result<Authorized, Denial> {
        let (identity, body_sha256, plan) = match authorizer {
            Authorizer::Jwt(jwt) => (jwt.authenticate(parts).await?, None, None),
            Authorizer::ApiKey(keys) => {
                let (identity, plan) = keys.identify(parts)?;
                (identity, None, plan)
            }
            Authorizer::Hmac(hmac) => {
                let signed = hmac.authenticate(parts)?;
                (signed.identity, Some(signed.body_sha256), None)
            }
            Authorizer::Component(custom) => (custom.authenticate(parts).await?, None, None),
        };
        let missing: Vec<&str> = self
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|scope| !identity.scopes.iter().any(|granted| granted == scope))
            .collect();
        if !missing.is_empty() {
            return Err(Denial {
                status: StatusCode::FORBIDDEN,
                reason: format!("the caller lacks the scope(s) {}", missing.join(" ")),
                challenge: matches!(authorizer, Authorizer::Jwt(_))
                    .then(|| bearer_challenge(Some("insufficient_scope"), &missing.join(" "))),
                retry_after: None,
            });
        }
        // A key pays for the request only once it is let through.
        if let (Authorizer::ApiKey(keys), Some(plan)) = (authorizer, plan.as_deref()) {
            keys.charge(&identity.subject, plan).await?;
        }
        Ok(Authorized {
            identity,
            body_sha256,
        })
    }
}

/// A refused request.
#[derive(Debug, Clone)]
pub struct Denial {
    /// 401, 403 or 429.
    pub status: StatusCode,
    /// Why, for the caller and the log.
    pub reason: String,
    /// A `WWW-Authenticate` value.
    pub challenge: Option<String>,
    /// For 429: when to come back.
    pub retry_after: Option<Duration>,
}

impl Denial {
    /// 401 with `reason`.
    pub fn unauthorized(reason: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason,
            challenge: None,
            retry_after: None,
        }
    }

    /// 429 with `reason`, to retry after `wait`.
    pub fn throttled(reason: String, wait: Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason,
            challenge: None,
            retry_after: Some(wait),
        }
    }

    /// 503 with `reason`: the gateway cannot decide just now.
    pub fn unavailable(reason: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason,
            challenge: None,
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// The gateway's answer.
    pub fn response(&self) -> http::Response<WasiBody> {
        let mut response = text(self.status, &self.reason);
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after(wait)).expect("digits"),
            );
        }
        response
    }

    /// The gateway's answer, noted in the request's `record`.
    fn refuse(&self, record: &mut Record<'_>) -> http::Response<WasiBody> {
        record.outcome = Some(self.outcome());
        record.rule = Some(self.reason.clone());
        self.response()
    }

    /// What the access log calls this outcome.
    fn outcome(&self) -> &'static str {
        match self.status {
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "unauthorized",
        }
    }
}

/// An RFC 6750 challenge: bare without an error (no token was sent).
pub fn bearer_challenge(error: Option<&str>, description: &str) -> String {
    match error {
        Some(error) => format!(
            "Bearer error=\"{error}\", error_description=\"{}\"",
            description.replace('"', "'")
        ),
        None => "Bearer".to_string(),
    }
}
