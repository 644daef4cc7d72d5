//! What a gateway policy is: one module that reads its own keys of the manifest, checks
//! requests and says in a few words what it does. The registry in `gateway/mod.rs` lists them
//! in the order they run; adding a policy is adding its module and one line there.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Response;
use http::request::Parts;
use serde::de::DeserializeOwned;
use wasmtime_wasi_http::WasiBody;

use super::access_log::Record;
use super::auth::Authorizer;
use crate::manifest::{AuthorizerSettings, ManifestError, Setting};

/// A policy's decision: go on, or the gateway's own answer (a refusal, a preflight, a cache
/// hit), after which the guest does not run.
pub type Verdict = Result<(), Response<WasiBody>>;

/// When a route policy runs: by stage first, then in the registry's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Before the caller is known: addresses, sizes, preflights, methods, throttles by
    /// address or route.
    Anonymous,
    /// Establishes who the caller is.
    Identify,
    /// Once the caller is known: throttles by identity, the response cache.
    Identified,
}

/// One request on its way through a route's policies.
pub struct Screening<'r, 'a> {
    /// The request head; policies may add headers for the guest.
    pub parts: &'r mut Parts,
    /// The client's address, as the app-wide policies derived it.
    pub client: IpAddr,
    /// What the access log, the metrics and the trace will say about the request.
    pub record: &'r mut Record<'a>,
    /// What the policies decided so far, for after the guest.
    pub admitted: &'r mut Admitted,
    /// The app's authorizers, by name.
    pub authorizers: &'r BTreeMap<String, Arc<Authorizer>>,
}

/// What a route's policies decided before the guest, for the body checks and the response.
#[derive(Default)]
pub struct Admitted {
    /// A smaller body limit than the app's.
    pub body_limit: Option<u64>,
    /// Facts a policy keeps for its own later steps (an allowed origin, a cache key, the
    /// hash a signed body must have), by type.
    pub notes: http::Extensions,
}

/// A policy on a route.
pub trait Policy: Send + Sync {
    /// When it runs.
    fn stage(&self) -> Stage {
        Stage::Anonymous
    }

    /// What it does, in a few words, for the route list printed at start-up.
    fn summary(&self) -> String;

    /// Checks a request before the guest runs.
    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict>;

    /// Whether the whole body must be read for [`Policy::screen_body`] before the guest gets
    /// it.
    fn reads_body(&self, _admitted: &Admitted) -> bool {
        false
    }

    /// Checks the body that [`Policy::reads_body`] asked for.
    fn screen_body(
        &self,
        _parts: &Parts,
        _body: &Bytes,
        _admitted: &Admitted,
        _record: &mut Record<'_>,
    ) -> Verdict {
        Ok(())
    }

    /// What the guest's response becomes on its way out.
    fn finish<'s>(
        &'s self,
        _admitted: &'s Admitted,
        response: Response<WasiBody>,
    ) -> BoxFuture<'s, Response<WasiBody>> {
        Box::pin(std::future::ready(response))
    }

    /// Adds what every answer of the route carries, the gateway's own included.
    fn decorate(&self, _admitted: &Admitted, _response: &mut Response<WasiBody>) {}
}

/// An app-wide policy: it sees each request as it arrives, before it is routed.
pub trait AppPolicy: Send + Sync {
    /// What it does, in a few words, for the start-up banner.
    fn summary(&self) -> String;

    /// Derives the client's address of the request `parts` that came from `peer`.
    fn client(&self, parts: &Parts, peer: IpAddr) -> IpAddr;
}

/// A kind of route policy, as the registry lists it.
pub struct RoutePolicyKind {
    /// The keys it reads from a route's table; the first is its name, which `skip` uses.
    pub keys: &'static [&'static str],
    /// Builds it from a route's table, which holds at least one of its keys.
    pub configure: fn(&Configure<'_>, &Table) -> Configured<dyn Policy>,
}

/// A kind of app-wide policy, as the registry lists it.
pub struct AppPolicyKind {
    /// Its key in `[application.tool.ledge]`.
    pub key: &'static str,
    /// Builds it from its value.
    pub configure: fn(&Configure<'_>, &Setting<toml::Value>) -> Configured<dyn AppPolicy>,
}

/// A policy read from the manifest, or what is wrong with its settings.
pub type Configured<P> = Result<Box<P>, ManifestError>;

/// A route's gateway table: each key with its value and where it is written.
pub type Table = BTreeMap<String, Setting<toml::Value>>;

/// What a policy may consult while it reads its configuration.
pub struct Configure<'a> {
    /// The manifest, for errors.
    pub file: &'a Path,
    /// The directory files named in the manifest are relative to.
    pub root_dir: &'a Path,
    /// The app's authorizers, by name.
    pub authorizers: &'a BTreeMap<String, AuthorizerSettings>,
}

impl Configure<'_> {
    /// An error about the value `at`.
    pub fn error<T>(&self, at: &Setting<T>, message: impl Into<String>) -> ManifestError {
        at.error(self.file, message)
    }

    /// Reads the value `at` as `T`; a mistyped or unknown key is an error on its line.
    pub fn read<T: DeserializeOwned>(&self, at: &Setting<toml::Value>) -> Result<T, ManifestError> {
        T::deserialize(at.value.clone()).map_err(|e| {
            self.error(at, e.message().to_string())
                .fix("the keys ledge reads here are listed in docs/gateway.md")
        })
    }
}

/// A ready verdict, for policies that decide without waiting.
pub fn decided<'s>(verdict: Verdict) -> BoxFuture<'s, Verdict> {
    Box::pin(std::future::ready(verdict))
}
