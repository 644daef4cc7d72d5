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
mod api_key;
mod auth;
mod cache;
mod cors;
mod custom;
mod hmac;
mod identity;
mod jwt;
mod throttle;
pub mod traces;
mod waf;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};
use wasmtime_wasi_http::WasiBody;

use self::access_log::{AccessLog, Record};
use self::auth::{Authorization, Authorizer, Denial};
use self::cache::ResponseCache;
use self::cors::{CorsDecision, CorsPolicy};
pub use self::identity::{IDENTITY_PREFIX, Identity, strip as strip_identity};
use self::throttle::{Throttle, retry_after};
use crate::engine::ComponentPool;
use crate::manifest::{GatewaySettings, RateKey, RoutePolicies, Waf};
use crate::server::text;

/// The app's gateway: a guard per guarded route, and the access log.
pub struct Gateway {
    guards: BTreeMap<String, Arc<RouteGuard>>,
    /// The access log, when `access_log = true`.
    pub access_log: Option<AccessLog>,
}

impl Gateway {
    /// Builds the guards for `settings` and loads the authorizers (keys, quota counts kept
    /// in `state_dir`, deciding components from `pools`).
    pub async fn build(
        settings: &GatewaySettings,
        state_dir: &Path,
        pools: &BTreeMap<String, Arc<ComponentPool>>,
    ) -> Result<Self> {
        let authorizers = auth::load_all(&settings.authorizers, state_dir, pools).await?;
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
        })
    }

    /// The guard of the route written `raw` in the manifest, if it has policies.
    pub fn guard(&self, raw: &str) -> Option<Arc<RouteGuard>> {
        self.guards.get(raw).cloned()
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
    schema: Option<jsonschema::Validator>,
}

/// What the guard decided before the guest; [`RouteGuard::finish`] uses it afterwards.
#[derive(Default)]
pub struct Admitted {
    cors_origin: Option<HeaderValue>,
    cache_key: Option<String>,
    /// A smaller body limit than the app's, from the WAF.
    pub body_limit: Option<u64>,
    /// The SHA-256 the body must have (a signed request).
    body_sha256: Option<[u8; 32]>,
}

impl RouteGuard {
    fn new(policies: &RoutePolicies, authorizers: &BTreeMap<String, Arc<Authorizer>>) -> Self {
        Self {
            summary: summarize(policies),
            methods: policies.methods.as_ref().map(|methods| {
                let allow = methods.iter().map(http::Method::as_str).collect::<Vec<_>>();
                let allow = HeaderValue::from_str(&allow.join(", "))
                    .expect("method names are valid header text");
                (methods.clone(), allow)
            }),
            auth: policies.auth.as_ref().map(|auth| Authorization {
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
            schema: policies.request_schema.as_ref().map(|schema| {
                jsonschema::validator_for(schema).expect("the manifest checked the schema")
            }),
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
            let authorized = auth.check(parts).await.map_err(|denial| {
                record.outcome = Some(denial.outcome());
                record.rule = Some(denial.reason.clone());
                denial.response()
            })?;
            authorized.identity.attach(parts);
            admitted.body_sha256 = authorized.body_sha256;
            record.identity = Some(authorized.identity.subject);
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

    /// Adds the route's CORS headers to a refusal raised after [`RouteGuard::admit`] (a body
    /// too large, a component at its cap, a body check), so a browser can read it.
    pub fn refuse(
        &self,
        admitted: &Admitted,
        mut refusal: Response<WasiBody>,
    ) -> Response<WasiBody> {
        self.decorate(&admitted.cors_origin, &mut refusal);
        refusal
    }

    /// Whether this request's body must be read and checked before the guest gets it (WAF
    /// injection rules, or the hash of a signed request).
    pub fn reads_body(&self, admitted: &Admitted) -> bool {
        admitted.body_sha256.is_some()
            || self.waf.as_ref().is_some_and(|waf| waf.block_injection)
            || self.schema.is_some()
    }

    /// Reads the body (at most `limit` bytes), checks it against the signed hash and screens
    /// it with the WAF's injection rules; `Err` is the refusal.
    pub async fn read_body(
        &self,
        admitted: &Admitted,
        parts: &Parts,
        body: Incoming,
        limit: u64,
        client: SocketAddr,
        record: &mut Record<'_>,
    ) -> Result<Bytes, Response<WasiBody>> {
        let bytes = waf::read_body(body, limit)
            .await
            .map_err(|block| blocked(block, client, record))?;
        if let Some(expected) = admitted.body_sha256
            && <[u8; 32]>::from(Sha256::digest(&bytes)) != expected
        {
            let denial = Denial::unauthorized(format!(
                "the body does not match `{}`",
                hmac::BODY_HASH_HEADER
            ));
            record.outcome = Some(denial.outcome());
            record.rule = Some(denial.reason.clone());
            return Err(denial.response());
        }
        if self.waf.as_ref().is_some_and(|waf| waf.block_injection) {
            waf::screen_body(parts, &bytes).map_err(|block| blocked(block, client, record))?;
        }
        if let Some(schema) = &self.schema
            && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH)
        {
            validate(schema, &bytes).map_err(|reason| {
                record.outcome = Some("invalid");
                record.rule = Some(reason.clone());
                text(StatusCode::BAD_REQUEST, &reason)
            })?;
        }
        Ok(bytes)
    }

    fn decorate(&self, origin: &Option<HeaderValue>, response: &mut Response<WasiBody>) {
        if let (Some(cors), Some(origin)) = (&self.cors, origin) {
            cors.decorate(response.headers_mut(), origin.clone());
        }
    }
}

/// Checks a request body against the route's JSON Schema; `Err` says what is wrong, where.
fn validate(schema: &jsonschema::Validator, body: &[u8]) -> Result<(), String> {
    let document: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("Bad Request: the body is not JSON: {e}"))?;
    match schema.iter_errors(&document).next() {
        None => Ok(()),
        Some(error) => {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            Err(format!(
                "Bad Request: the body does not match the schema at `{at}`: {error}"
            ))
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
    if policies.request_schema.is_some() {
        parts.push("schema".into());
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
