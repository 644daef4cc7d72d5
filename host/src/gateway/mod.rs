//! The API gateway: the policies of `[application.tool.ledge]` applied in the host before any
//! guest runs. A route without policies goes straight through, exactly as in Spin.
//!
//! For a guarded route the order is: WAF (addresses, sizes) -> CORS preflight -> methods ->
//! throttling by route or client -> authorization -> throttling by identity -> response
//! cache; then the guest; then the cache keeps the response and CORS headers are added.

// A refusal is the response itself; it is built only on the refusing path, so its size does
// not matter on the path that lets requests through.
#![allow(clippy::result_large_err)]

pub mod access_log;
mod cache;
mod cors;
mod jwt;
mod throttle;
mod waf;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

use self::access_log::{AccessLog, Record};
use self::cache::ResponseCache;
use self::cors::{CorsDecision, CorsPolicy};
use self::jwt::JwtAuthorizer;
use self::throttle::{Throttle, retry_after};
use crate::manifest::{GatewaySettings, RateKey, RoutePolicies, Waf};
use crate::server::text;

/// Request headers starting with this carry the verified identity to the guest. Clients
/// cannot set them: incoming copies are removed on every route of an app with an authorizer.
pub const IDENTITY_PREFIX: &str = "ledge-auth-";

/// The app's gateway: a guard per guarded route, and the access log.
pub struct Gateway {
    guards: BTreeMap<String, Arc<RouteGuard>>,
    /// The access log, when `access_log = true`.
    pub access_log: Option<AccessLog>,
    /// Whether identity headers must be stripped from incoming requests.
    pub strips_identity: bool,
}

impl Gateway {
    /// Builds the guards (and loads the authorizers' keys) for `settings`.
    pub async fn build(settings: &GatewaySettings) -> Result<Self> {
        let mut authorizers = BTreeMap::new();
        for (name, jwt) in &settings.authorizers {
            authorizers.insert(name.clone(), JwtAuthorizer::load(name, jwt.clone()).await?);
        }
        let guards = settings
            .routes
            .iter()
            .map(|(route, policies)| {
                let guard = RouteGuard::new(policies, &authorizers);
                (route.clone(), Arc::new(guard))
            })
            .collect();
        Ok(Self {
            guards,
            access_log: settings
                .access_log
                .then(|| AccessLog::new(settings.request_id_header.as_deref())),
            strips_identity: !authorizers.is_empty(),
        })
    }

    /// The guard of the route written `raw` in the manifest, if it has policies.
    pub fn guard(&self, raw: &str) -> Option<Arc<RouteGuard>> {
        self.guards.get(raw).cloned()
    }
}

/// Removes incoming identity headers (which only the gateway may set).
pub fn strip_identity(parts: &mut Parts) {
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

/// The policies of one route, ready to apply.
pub struct RouteGuard {
    summary: String,
    methods: Option<(Vec<http::Method>, HeaderValue)>,
    auth: Option<Authorization>,
    throttle: Option<(Throttle, RateKey)>,
    cors: Option<CorsPolicy>,
    cache: Option<ResponseCache>,
    waf: Option<Waf>,
}

struct Authorization {
    name: String,
    authorizer: Arc<JwtAuthorizer>,
    scopes: Vec<String>,
}

/// What the guard decided before the guest; [`RouteGuard::finish`] uses it afterwards.
#[derive(Default)]
pub struct Admitted {
    cors_origin: Option<HeaderValue>,
    cache_key: Option<String>,
    /// A smaller body limit than the app's, from the WAF.
    pub body_limit: Option<u64>,
}

impl RouteGuard {
    fn new(policies: &RoutePolicies, authorizers: &BTreeMap<String, Arc<JwtAuthorizer>>) -> Self {
        Self {
            summary: summarize(policies),
            methods: policies.methods.as_ref().map(|methods| {
                let allow = methods.iter().map(http::Method::as_str).collect::<Vec<_>>();
                let allow = HeaderValue::from_str(&allow.join(", "))
                    .expect("method names are valid header text");
                (methods.clone(), allow)
            }),
            auth: policies.auth.as_ref().map(|auth| Authorization {
                name: auth.authorizer.clone(),
                authorizer: authorizers[&auth.authorizer].clone(),
                scopes: auth.scopes.clone(),
            }),
            throttle: policies
                .rate_limit
                .as_ref()
                .map(|limit| (Throttle::new(limit), limit.per)),
            cors: policies.cors.as_ref().map(CorsPolicy::new),
            cache: policies.cache.as_ref().map(ResponseCache::new),
            waf: policies.waf.clone(),
        }
    }

    /// The policies in a few words, for the route list printed at start-up.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Applies the policies to a request from `client`. `Err` is the gateway's own answer
    /// (a refusal, a preflight or a cache hit): the guest must not run.
    pub async fn admit(
        &self,
        parts: &mut Parts,
        client: SocketAddr,
        record: &mut Record<'_>,
    ) -> Result<Admitted, Response<WasiBody>> {
        let mut admitted = Admitted::default();
        match self.check(parts, client, record, &mut admitted).await {
            Ok(()) => Ok(admitted),
            Err(mut answer) => {
                self.decorate(&admitted.cors_origin, &mut answer);
                Err(answer)
            }
        }
    }

    async fn check(
        &self,
        parts: &mut Parts,
        client: SocketAddr,
        record: &mut Record<'_>,
        admitted: &mut Admitted,
    ) -> Result<(), Response<WasiBody>> {
        if let Some(waf) = &self.waf {
            admitted.body_limit = waf.max_body_bytes;
            waf::check_request(waf, parts, client)
                .map_err(|block| blocked(block, client, record))?;
        }
        if let Some(cors) = &self.cors {
            match cors.decide(parts) {
                CorsDecision::Plain => {}
                CorsDecision::Allowed(origin) => admitted.cors_origin = Some(origin),
                CorsDecision::Preflight(status, headers) => {
                    record.outcome = Some("preflight");
                    let mut response = text(status, "");
                    *response.headers_mut() = headers;
                    return Err(response);
                }
            }
        }
        if let Some((methods, allow)) = &self.methods
            && !methods.contains(&parts.method)
        {
            record.outcome = Some("method-not-allowed");
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            response.headers_mut().insert(header::ALLOW, allow.clone());
            return Err(response);
        }
        let client_key = client.ip().to_string();
        if let Some((throttle, per)) = &self.throttle
            && *per != RateKey::Identity
        {
            admit_rate(throttle, &client_key, None, record)?;
        }
        if let Some(auth) = &self.auth {
            let identity = authorize(auth, parts, record).await?;
            record.identity = Some(identity);
        }
        if let Some((throttle, RateKey::Identity)) = &self.throttle {
            let identity = record.identity.clone();
            admit_rate(throttle, &client_key, identity.as_deref(), record)?;
        }
        if let Some(cache) = &self.cache {
            // Authorized routes are cached per identity: one caller never sees another's data.
            let identity = self
                .auth
                .as_ref()
                .map(|_| record.identity.as_deref().unwrap_or(""));
            if let Some(key) = cache.key(parts, identity) {
                if let Some(hit) = cache.lookup(&key) {
                    record.outcome = Some("cache-hit");
                    return Err(hit);
                }
                admitted.cache_key = Some(key);
            }
        }
        Ok(())
    }

    /// What the guest's `response` becomes: kept in the cache when it may be, and with the
    /// CORS headers of an allowed origin.
    pub async fn finish(
        &self,
        admitted: Admitted,
        mut response: Response<WasiBody>,
    ) -> Response<WasiBody> {
        if let (Some(cache), Some(key)) = (&self.cache, admitted.cache_key) {
            response = cache.store(key, response).await;
        }
        self.decorate(&admitted.cors_origin, &mut response);
        response
    }

    /// Whether request bodies must be read and screened before the guest gets them.
    pub fn screens_bodies(&self) -> bool {
        self.waf.as_ref().is_some_and(|waf| waf.block_injection)
    }

    /// Reads the body (at most `limit` bytes) and screens it with the WAF's injection rules;
    /// `Err` is the refusal.
    pub async fn screen_body(
        &self,
        parts: &Parts,
        body: Incoming,
        limit: u64,
        client: SocketAddr,
        record: &mut Record<'_>,
    ) -> Result<Bytes, Response<WasiBody>> {
        waf::screen_body(parts, body, limit)
            .await
            .map_err(|block| blocked(block, client, record))
    }

    fn decorate(&self, origin: &Option<HeaderValue>, response: &mut Response<WasiBody>) {
        if let (Some(cors), Some(origin)) = (&self.cors, origin) {
            cors.decorate(response.headers_mut(), origin.clone());
        }
    }
}

/// The answer to a request the WAF blocked, logged with the rule that fired.
fn blocked(
    (status, rule): waf::Block,
    client: SocketAddr,
    record: &mut Record<'_>,
) -> Response<WasiBody> {
    tracing::warn!(client = %client.ip(), rule, "blocked by the WAF");
    let response = text(
        status,
        &format!("{}: {rule}", status.canonical_reason().unwrap_or("")),
    );
    record.outcome = Some("blocked");
    record.rule = Some(rule);
    response
}

fn summarize(policies: &RoutePolicies) -> String {
    let mut parts = Vec::new();
    if let Some(methods) = &policies.methods {
        let names: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
        parts.push(names.join(","));
    }
    if let Some(auth) = &policies.auth {
        match auth.scopes.is_empty() {
            true => parts.push(format!("auth {}", auth.authorizer)),
            false => parts.push(format!(
                "auth {} ({})",
                auth.authorizer,
                auth.scopes.join(" ")
            )),
        }
    }
    if let Some(limit) = &policies.rate_limit {
        parts.push(format!("{}/s burst {}", limit.per_second, limit.burst));
    }
    if policies.cors.is_some() {
        parts.push("cors".into());
    }
    if let Some(cache) = &policies.cache {
        parts.push(format!("cache {}s", cache.ttl.as_secs()));
    }
    if policies.waf.is_some() {
        parts.push("waf".into());
    }
    parts.join("; ")
}

fn admit_rate(
    throttle: &Throttle,
    client: &str,
    identity: Option<&str>,
    record: &mut Record<'_>,
) -> Result<(), Response<WasiBody>> {
    throttle.admit(client, identity).map_err(|wait| {
        record.outcome = Some("throttled");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&retry_after(wait)).expect("digits"),
        );
        response
    })
}

/// Verifies the bearer token and the scopes, and hands the identity to the guest.
async fn authorize(
    auth: &Authorization,
    parts: &mut Parts,
    record: &mut Record<'_>,
) -> Result<String, Response<WasiBody>> {
    let deny =
        |record: &mut Record<'_>, status: StatusCode, error: Option<&str>, reason: String| {
            record.outcome = Some(if status == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            });
            record.rule = Some(reason.clone());
            let mut response = text(status, &reason);
            // RFC 6750: a request without a token gets a bare challenge.
            let challenge = match error {
                Some(error) => format!(
                    "Bearer error=\"{error}\", error_description=\"{}\"",
                    reason.replace('"', "'")
                ),
                None => "Bearer".to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        };
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
        return Err(deny(
            record,
            StatusCode::UNAUTHORIZED,
            None,
            "a bearer token is required".into(),
        ));
    };
    let claims = auth.authorizer.verify(token).await.map_err(|rejection| {
        deny(
            record,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            rejection.0,
        )
    })?;
    let granted = claims.scopes();
    let missing: Vec<&str> = auth
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !granted.contains(scope))
        .collect();
    if !missing.is_empty() {
        return Err(deny(
            record,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            format!("the token lacks the scope(s) {}", missing.join(" ")),
        ));
    }
    let subject = claims.subject().unwrap_or_default().to_string();
    let identity_headers = [
        ("authorizer", auth.name.clone()),
        ("subject", subject.clone()),
        ("scopes", granted.join(" ")),
        (
            "claims",
            serde_json::Value::Object(claims.0.clone()).to_string(),
        ),
    ];
    for (name, value) in identity_headers {
        let name = HeaderName::from_bytes(format!("{IDENTITY_PREFIX}{name}").as_bytes())
            .expect("a valid header name");
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, value);
        }
    }
    Ok(subject)
}
