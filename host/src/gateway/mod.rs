//! The API gateway: the policies of `[application.tool.ledge]` applied in the host before any
//! guest runs. A route without policies goes straight through, exactly as in Spin.
//!
//! Each policy is one module that reads its own keys, checks requests and sums itself up
//! ([`policy`] says what one is); the registries below list them in the order they run. App-wide
//! policies see every request as it arrives (the client's address); a guarded route's policies
//! run by stage, before the caller is known (WAF, CORS preflight, methods, throttling by
//! route or client), then the authorizer, then what needs the caller (throttling by
//! identity, the response cache); the guest runs; then the cache keeps the response and CORS
//! headers are added.

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
mod methods;
pub mod policy;
mod schema;
mod throttle;
pub mod traces;
mod trusted_proxies;
mod waf;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use http_body_util::{BodyExt as _, Limited};
use wasmtime_wasi_http::WasiBody;

use self::access_log::{AccessLog, Record};
use self::auth::Authorizer;
pub use self::auth::QuotaCounts;
pub use self::identity::{IDENTITY_PREFIX, Identity};
pub use self::policy::Admitted;
use self::policy::{AppPolicy, AppPolicyKind, Configure, Policy, RoutePolicyKind, Screening};
pub use self::waf::parse_network;
use crate::engine::ComponentPool;
use crate::manifest::{GatewaySettings, ManifestError};

/// The route policies, in the order they run within a stage. One line per policy.
const ROUTE_POLICIES: &[RoutePolicyKind] = &[
    waf::POLICY,
    cors::POLICY,
    methods::POLICY,
    throttle::POLICY,
    auth::POLICY,
    cache::POLICY,
    schema::POLICY,
];

/// The app-wide policies, in the order they run. One line per policy.
const APP_POLICIES: &[AppPolicyKind] = &[trusted_proxies::POLICY];

/// The gateway's policies as the manifest configures them, read and checked before anything
/// else starts, so a mistake is reported before any component compiles.
pub struct GatewayPolicies {
    app: Vec<Box<dyn AppPolicy>>,
    routes: BTreeMap<String, Vec<Box<dyn Policy>>>,
}

impl GatewayPolicies {
    /// Reads the app-wide policies and each route's from `settings`.
    pub fn configure(settings: &GatewaySettings) -> Result<Self, ManifestError> {
        let config = Configure {
            file: &settings.file,
            root_dir: &settings.root_dir,
            authorizers: &settings.authorizers,
        };
        if let Some((key, at)) = settings
            .app
            .iter()
            .find(|(key, _)| !APP_POLICIES.iter().any(|kind| kind.key == *key))
        {
            let known: Vec<&str> = APP_POLICIES.iter().map(|kind| kind.key).collect();
            return Err(config
                .error(at, format!("`{key}` is not a setting ledge reads"))
                .fix(format!(
                    "besides the `gateway`, `routes` and `authorizers` tables, ledge reads access_log, request_id_header, domains and {known:?} here (docs/gateway.md)"
                )));
        }
        let app = APP_POLICIES
            .iter()
            .filter_map(|kind| Some((kind, settings.app.get(kind.key)?)))
            .map(|(kind, at)| (kind.configure)(&config, at))
            .collect::<Result<_, _>>()?;
        let mut routes = BTreeMap::new();
        for (route, table) in &settings.routes {
            let mut entries = table.entries.clone();
            for name in &table.skip {
                let Some(kind) = ROUTE_POLICIES
                    .iter()
                    .find(|kind| kind.keys[0] == name.value)
                else {
                    let names: Vec<&str> = ROUTE_POLICIES.iter().map(|kind| kind.keys[0]).collect();
                    return Err(config
                        .error(name, format!("`{}` is not a policy", name.value))
                        .fix(format!("skip one of {names:?}")));
                };
                entries.retain(|key, _| !kind.keys.contains(&key.as_str()));
            }
            if let Some((key, at)) = entries.iter().find(|(key, _)| {
                !ROUTE_POLICIES
                    .iter()
                    .any(|kind| kind.keys.contains(&key.as_str()))
            }) {
                let names: Vec<&str> = ROUTE_POLICIES
                    .iter()
                    .flat_map(|kind| kind.keys)
                    .copied()
                    .collect();
                return Err(config
                    .error(at, format!("`{key}` is not a policy"))
                    .fix(format!(
                        "a route's table holds {names:?} and `skip` (docs/gateway.md)"
                    )));
            }
            let mut policies = Vec::new();
            for kind in ROUTE_POLICIES {
                if kind.keys.iter().any(|key| entries.contains_key(*key)) {
                    policies.push((kind.configure)(&config, &entries)?);
                }
            }
            // By stage; the sort is stable, so the registry's order holds within one.
            policies.sort_by_key(|policy| policy.stage());
            if !policies.is_empty() {
                routes.insert(route.clone(), policies);
            }
        }
        Ok(Self { app, routes })
    }
}

/// The request header that tells a guest the client's address as the gateway derived it
/// (`spin-client-addr` keeps Spin's meaning: the connection's peer). Only ledge sets it.
pub const CLIENT_ADDRESS: http::HeaderName = http::HeaderName::from_static("ledge-client-addr");

/// The app's gateway: its app-wide policies, a guard per guarded route, and the access log.
pub struct Gateway {
    app: Vec<Box<dyn AppPolicy>>,
    guards: BTreeMap<String, Arc<RouteGuard>>,
    /// The access log, when `access_log = true`.
    pub access_log: Option<AccessLog>,
}

impl Gateway {
    /// Puts `policies` to work: loads the authorizers of `settings` (keys, quota counts kept
    /// in `counts`, deciding components from `pools`) and builds each route's guard.
    pub async fn build(
        policies: GatewayPolicies,
        settings: &GatewaySettings,
        counts: QuotaCounts<'_>,
        pools: &BTreeMap<String, Arc<ComponentPool>>,
    ) -> Result<Self> {
        let authorizers = Arc::new(auth::load_all(&settings.authorizers, counts, pools).await?);
        let guards = policies
            .routes
            .into_iter()
            .map(|(route, policies)| {
                let guard = RouteGuard {
                    summary: policies
                        .iter()
                        .map(|p| p.summary())
                        .collect::<Vec<_>>()
                        .join("; "),
                    policies,
                    authorizers: authorizers.clone(),
                };
                (route, Arc::new(guard))
            })
            .collect();
        Ok(Self {
            app: policies.app,
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

    /// The app-wide policies in a few words, for the start-up banner (empty without any).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.app.iter().map(|policy| policy.summary()).collect();
        parts.join("; ")
    }

    /// Takes in a request that arrived from `peer`: removes the headers only ledge may set
    /// (identity headers, in every app: one that drops its authorizer must not expose
    /// functions that trust them; the client's address, which `server::headers` sets on the
    /// guest's request) and derives the client's address.
    pub fn arrive(&self, parts: &mut Parts, peer: IpAddr) -> IpAddr {
        identity::strip(parts);
        parts.headers.remove(CLIENT_ADDRESS);
        self.app
            .iter()
            .fold(peer, |client, policy| policy.client(parts, client))
    }
}

/// The policies of one route, ready to apply.
pub struct RouteGuard {
    summary: String,
    /// In the order they run.
    policies: Vec<Box<dyn Policy>>,
    authorizers: Arc<BTreeMap<String, Arc<Authorizer>>>,
}

impl RouteGuard {
    /// The policies in a few words, for the route list printed at start-up.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Applies the policies to a request from `client`. `Err` is the gateway's own answer
    /// (a refusal, a preflight or a cache hit): the guest must not run.
    pub async fn admit(
        &self,
        parts: &mut Parts,
        client: IpAddr,
        record: &mut Record<'_>,
    ) -> Result<Admitted, http::Response<WasiBody>> {
        let mut admitted = Admitted::default();
        for policy in &self.policies {
            let mut screening = Screening {
                parts,
                client,
                record,
                admitted: &mut admitted,
                authorizers: &self.authorizers,
            };
            if let Err(answer) = policy.admit(&mut screening).await {
                return Err(self.refuse(&admitted, answer));
            }
        }
        Ok(admitted)
    }

    /// Whether this request's body must be read and checked before the guest gets it.
    pub fn reads_body(&self, admitted: &Admitted) -> bool {
        self.policies
            .iter()
            .any(|policy| policy.reads_body(admitted))
    }

    /// Reads the body (at most `limit` bytes) and has every policy that asked for it check
    /// it; `Err` is the refusal.
    pub async fn read_body(
        &self,
        admitted: &Admitted,
        parts: &Parts,
        body: WasiBody,
        limit: u64,
        record: &mut Record<'_>,
    ) -> Result<Bytes, http::Response<WasiBody>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let block = match error.downcast::<http_body_util::LengthLimitError>() {
                    Ok(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body over the size limit"),
                    Err(_) => (StatusCode::BAD_REQUEST, "the body could not be read"),
                };
                return Err(waf::blocked((block.0, block.1.to_string()), record));
            }
        };
        for policy in &self.policies {
            policy.screen_body(parts, &bytes, admitted, record)?;
        }
        Ok(bytes)
    }

    /// What the guest's `response` becomes: each policy's last word (the cache keeps it,
    /// CORS headers are added), the last policy to run first.
    pub async fn finish(
        &self,
        admitted: Admitted,
        mut response: http::Response<WasiBody>,
    ) -> http::Response<WasiBody> {
        for policy in self.policies.iter().rev() {
            response = policy.finish(&admitted, response).await;
        }
        self.decorate(&admitted, &mut response);
        response
    }

    /// Adds what every answer of the route carries (the CORS headers of an allowed origin) to
    /// `answer`, a refusal raised after [`RouteGuard::admit`] (a body too large, a component at
    /// its cap, a body check) or by it, so a browser can read it.
    pub fn refuse(
        &self,
        admitted: &Admitted,
        mut answer: http::Response<WasiBody>,
    ) -> http::Response<WasiBody> {
        self.decorate(admitted, &mut answer);
        answer
    }

    fn decorate(&self, admitted: &Admitted, response: &mut http::Response<WasiBody>) {
        for policy in &self.policies {
            policy.decorate(admitted, response);
        }
    }
}

#[cfg(test)]
mod tests;
