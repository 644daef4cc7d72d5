//! `[application.tool.ledge]`: the API gateway's settings, read from the app's own manifest
//! (Spin ignores `tool` tables, so the same file still runs on Spin).
//!
//! ```toml
//! [application.tool.ledge]
//! access_log = true                      # one JSON line per request, with a request id
//!
//! [application.tool.ledge.gateway]       # defaults for every route
//! rate_limit = { per_second = 100, burst = 200, per = "client" }
//!
//! [application.tool.ledge.routes."/api/..."]   # one route, as written in its [[trigger.http]]
//! methods = ["GET", "POST"]
//! auth = "users"
//! scopes = ["tickets:read"]
//!
//! [application.tool.ledge.authorizers.users]
//! type = "jwt"
//! jwks = "keys/jwks.json"
//! ```
//!
//! The section is read from the manifest's text a second time, on its own, so every error
//! names the line it is on. A route's table overrides the defaults policy by policy; `skip`
//! drops a default the route should not have.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ManifestError;
use super::authorizers::{AuthorizerSettings, RawAuthorizer};

/// The gateway as the manifest configures it, resolved per route.
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    /// The policies guarding each route that has any, keyed by the route as written in its
    /// `[[trigger.http]]`. A route missing here behaves exactly as in Spin.
    pub routes: BTreeMap<String, RoutePolicies>,
    /// Named authorizers that routes refer to with `auth = "<name>"`.
    pub authorizers: BTreeMap<String, AuthorizerSettings>,
    /// Log one JSON line per request (and give every request an id).
    pub access_log: bool,
    /// A header whose incoming value is trusted as the request id (e.g. set by a load
    /// balancer in front); without it, ids are generated.
    pub request_id_header: Option<String>,
    /// `domains`: the hosts (and base paths) this app answers on a listener shared with other
    /// apps. Empty: the app answers every host no other app claims.
    pub domains: Vec<DomainMapping>,
}

/// One `domains` entry: `api.example.com/v1` maps that host's `/v1/...` to the app, which
/// sees the path without `/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainMapping {
    /// The host in lower case, without a port; `*.example.com` matches any one-or-more-label
    /// subdomain of `example.com`.
    pub host: String,
    /// The base path, `""` for the whole host, else `/segment[/segment...]` without a
    /// trailing `/`.
    pub base_path: String,
}

impl DomainMapping {
    /// Reads `host[/base/path]`, or says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.contains("://") {
            return Err("a domain is a host and an optional base path, without a scheme".into());
        }
        let (host, base_path) = entry.split_once('/').map_or((entry, ""), |(host, path)| {
            (host, path.trim_end_matches('/'))
        });
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.is_empty() || !name.split('.').all(valid_label) {
            return Err(format!(
                "`{host}` is not a host name (letters, digits, `-` and dots; `*.` may lead; no port)"
            ));
        }
        let valid_segment = |segment: &str| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        };
        if !base_path.is_empty() && !base_path.split('/').all(valid_segment) {
            return Err(format!("`/{base_path}` is not a base path like `/v1`"));
        }
        Ok(Self {
            host,
            base_path: if base_path.is_empty() {
                String::new()
            } else {
                format!("/{base_path}")
            },
        })
    }
}

impl std::fmt::Display for DomainMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.host, self.base_path)
    }
}

/// Everything that guards one route.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicies {
    /// Only these methods reach the route; others get 405 with `Allow`.
    pub methods: Option<Vec<http::Method>>,
    /// The authorizer and the scopes a token must carry.
    pub auth: Option<AuthPolicy>,
    /// Token-bucket throttling.
    pub rate_limit: Option<RateLimit>,
    /// Cross-origin resource sharing, preflights answered by the gateway.
    pub cors: Option<Cors>,
    /// The response cache.
    pub cache: Option<CachePolicy>,
    /// Address lists and size limits.
    pub waf: Option<Waf>,
    /// A JSON Schema that `POST`, `PUT` and `PATCH` bodies must match.
    pub request_schema: Option<serde_json::Value>,
}

/// `auth = "<authorizer>"` with the route's `scopes`.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// The authorizer's name.
    pub authorizer: String,
    /// Scopes the token must all carry (`scope` or `scp` claim).
    pub scopes: Vec<String>,
}

/// `rate_limit = { per_second, burst, per }`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// What one bucket counts.
    pub per: RateKey,
}

/// What a rate-limit bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey {
    /// One bucket for the whole route.
    Route,
    /// One bucket per client address.
    Client,
    /// One bucket per authenticated identity (the token's subject); anonymous requests share
    /// the client-address buckets.
    Identity,
}

/// `cors = { allow_origins, allow_methods, allow_headers, expose_headers, allow_credentials,
/// max_age }`.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins (`*` for any, not with credentials).
    pub allow_origins: Vec<String>,
    /// Allowed methods for preflights.
    pub allow_methods: Vec<String>,
    /// Allowed request headers for preflights.
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// Whether cookies and credentials may be sent.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight.
    pub max_age: Option<Duration>,
}

/// `cache = { ttl_seconds, vary, max_entry_bytes }`.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// How long a response stays fresh.
    pub ttl: Duration,
    /// Request headers that are part of the cache key (lower case).
    pub vary: Vec<String>,
    /// Larger responses are passed through uncached.
    pub max_entry_bytes: usize,
}

/// `waf = { allow_ips, deny_ips, max_uri_bytes, max_header_bytes, max_body_bytes,
/// block_injection }`.
#[derive(Debug, Clone, Default)]
pub struct Waf {
    /// When not empty, only these networks are served.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// These networks are refused.
    pub deny_ips: Vec<ipnet::IpNet>,
    /// The longest request target (path and query) accepted.
    pub max_uri_bytes: Option<usize>,
    /// The most header bytes (names and values) accepted.
    pub max_header_bytes: Option<usize>,
    /// The largest body accepted.
    pub max_body_bytes: Option<u64>,
    /// Block SQL injection and cross-site scripting payloads in the query and the body.
    pub block_injection: bool,
}

impl Waf {
    /// Whether `address` may be served.
    pub fn admits(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        (self.allow_ips.is_empty() || self.allow_ips.iter().any(|n| n.contains(&address)))
            && !self.deny_ips.iter().any(|n| n.contains(&address))
    }
}

/// The policy names `skip` accepts.
const POLICY_NAMES: [&str; 7] = [
    "methods",
    "auth",
    "rate_limit",
    "cors",
    "cache",
    "waf",
    "request_schema",
];

#[derive(Deserialize)]
struct Document {
    application: DocumentApplication,
}

#[derive(Deserialize)]
struct DocumentApplication {
    #[serde(default)]
    tool: DocumentTool,
}

#[derive(Deserialize, Default)]
struct DocumentTool {
    ledge: Option<RawLedgeApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedgeApp {
    #[serde(default)]
    access_log: bool,
    request_id_header: Option<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    gateway: Option<RawPolicies>,
    #[serde(default)]
    routes: BTreeMap<Spanned<String>, RawPolicies>,
    #[serde(default)]
    authorizers: BTreeMap<Spanned<String>, RawAuthorizer>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    methods: Option<Spanned<Vec<String>>>,
    auth: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<String>>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
    cors: Option<Spanned<RawCors>>,
    cache: Option<Spanned<RawCache>>,
    waf: Option<Spanned<RawWaf>>,
    request_schema: Option<Spanned<String>>,
    #[serde(default)]
    skip: Vec<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_second: u32,
    burst: Option<u32>,
    per: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCors {
    allow_origins: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    max_age: Option<u64>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl_seconds: u64,
    #[serde(default)]
    vary: Vec<String>,
    max_entry_bytes: Option<usize>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawWaf {
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    deny_ips: Vec<String>,
    max_uri_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<u64>,
    #[serde(default)]
    block_injection: bool,
}

/// The largest cached response, unless a route says otherwise.
const DEFAULT_MAX_ENTRY_BYTES: usize = 1 << 20;

/// Reads `[application.tool.ledge]` from manifest `source` (of `file`, in `root_dir`), for an
/// app whose public routes are `routes` (as written) and whose triggered components are
/// `components`.
pub fn parse(
    file: &Path,
    root_dir: &Path,
    source: &str,
    routes: &[&str],
    components: &[&str],
) -> Result<GatewaySettings, ManifestError> {
    let document: Document = toml::from_str(source).map_err(|e| {
        let mut error = ManifestError::file(file, e.message().to_string())
            .key("application.tool.ledge")
            .fix("the keys ledge reads here are listed in docs/gateway.md");
        if let Some(span) = e.span() {
            error = error.at(source, span.start);
        }
        error
    })?;
    let Some(raw) = document.application.tool.ledge else {
        return Ok(GatewaySettings::default());
    };
    let reader = Reader { file, source };

    let mut authorizers = BTreeMap::new();
    for (name, authorizer) in raw.authorizers {
        let settings = super::authorizers::read(&reader, root_dir, components, &name, authorizer)?;
        authorizers.insert(name.into_inner(), settings);
    }

    let defaults = raw.gateway.unwrap_or_default();
    let mut specific = BTreeMap::new();
    for (route, policies) in raw.routes {
        if !routes.contains(&route.get_ref().as_str()) {
            return Err(reader
                .error(
                    &route,
                    format!("application.tool.ledge.routes.\"{}\"", route.get_ref()),
                    "no [[trigger.http]] has this route",
                )
                .fix(format!(
                    "write the route exactly as in its trigger; the app's routes are {routes:?}"
                )));
        }
        specific.insert(route.into_inner(), policies);
    }

    let mut resolved = BTreeMap::new();
    for route in routes {
        let own = specific.get(*route);
        let key = match own {
            Some(_) => format!("application.tool.ledge.routes.\"{route}\""),
            None => "application.tool.ledge.gateway".to_string(),
        };
        let merged = merge(&defaults, own, &reader, &key)?;
        let policies = reader.policies(root_dir, &merged, &key, &authorizers)?;
        if policies.is_some() {
            resolved.insert(route.to_string(), policies.unwrap_or_default());
        }
    }
    let request_id_header = raw
        .request_id_header
        .map(|header| {
            http::HeaderName::from_bytes(header.get_ref().as_bytes())
                .map(|name| name.as_str().to_string())
                .map_err(|_| {
                    reader
                        .error(
                            &header,
                            "application.tool.ledge.request_id_header",
                            "not a valid header name",
                        )
                        .fix("e.g. `x-request-id`")
                })
        })
        .transpose()?;
    let mut domains: Vec<DomainMapping> = Vec::new();
    for entry in &raw.domains {
        let mapping = DomainMapping::parse(entry.get_ref()).map_err(|message| {
            reader
                .error(entry, "application.tool.ledge.domains", message)
                .fix("e.g. `api.example.com/v1` or `*.example.com`")
        })?;
        if domains.contains(&mapping) {
            return Err(reader.error(
                entry,
                "application.tool.ledge.domains",
                format!("`{mapping}` is listed twice"),
            ));
        }
        domains.push(mapping);
    }
    Ok(GatewaySettings {
        routes: resolved,
        authorizers,
        access_log: raw.access_log,
        request_id_header,
        domains,
    })
}

/// The defaults with a route's own table laid over them, policy by policy, minus what the
/// route skips.
fn merge(
    defaults: &RawPolicies,
    own: Option<&RawPolicies>,
    reader: &Reader<'_>,
    key: &str,
) -> Result<RawPolicies, ManifestError> {
    let Some(own) = own else {
        return Ok(defaults.clone());
    };
    let mut merged = RawPolicies {
        methods: own.methods.clone().or_else(|| defaults.methods.clone()),
        auth: own.auth.clone().or_else(|| defaults.auth.clone()),
        scopes: own.scopes.clone().or_else(|| defaults.scopes.clone()),
        rate_limit: own
            .rate_limit
            .clone()
            .or_else(|| defaults.rate_limit.clone()),
        cors: own.cors.clone().or_else(|| defaults.cors.clone()),
        cache: own.cache.clone().or_else(|| defaults.cache.clone()),
        waf: own.waf.clone().or_else(|| defaults.waf.clone()),
        request_schema: own
            .request_schema
            .clone()
            .or_else(|| defaults.request_schema.clone()),
        skip: Vec::new(),
    };
    for name in &own.skip {
        match name.get_ref().as_str() {
            "methods" => merged.methods = None,
            "auth" => {
                merged.auth = None;
                merged.scopes = None;
            }
            "rate_limit" => merged.rate_limit = None,
            "cors" => merged.cors = None,
            "cache" => merged.cache = None,
            "waf" => merged.waf = None,
            "request_schema" => merged.request_schema = None,
            other => {
                return Err(reader
                    .error(
                        name,
                        format!("{key}.skip"),
                        format!("`{other}` is not a policy"),
                    )
                    .fix(format!("skip one of {POLICY_NAMES:?}")));
            }
        }
    }
    Ok(merged)
}

/// Builds errors located in the manifest's text.
pub(super) struct Reader<'a> {
    pub(super) file: &'a Path,
    source: &'a str,
}

impl Reader<'_> {
    /// An error about `key`, on the line of `spanned`.
    pub(super) fn error<T>(
        &self,
        spanned: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError::spanned(self.file, self.source, spanned, key, message)
    }

    /// The checked policies of one route, or `None` when nothing guards it.
    fn policies(
        &self,
        root_dir: &Path,
        raw: &RawPolicies,
        key: &str,
        authorizers: &BTreeMap<String, AuthorizerSettings>,
    ) -> Result<Option<RoutePolicies>, ManifestError> {
        let methods = raw
            .methods
            .as_ref()
            .map(|methods| self.methods(methods, &format!("{key}.methods")))
            .transpose()?;
        let auth = match (&raw.auth, &raw.scopes) {
            (Some(name), scopes) => {
                if !authorizers.contains_key(name.get_ref()) {
                    return Err(self
                        .error(
                            name,
                            format!("{key}.auth"),
                            format!("there is no authorizer `{}`", name.get_ref()),
                        )
                        .fix(format!(
                            "define it under [application.tool.ledge.authorizers.{}], or use one of {:?}",
                            name.get_ref(),
                            authorizers.keys().collect::<Vec<_>>()
                        )));
                }
                Some(AuthPolicy {
                    authorizer: name.get_ref().clone(),
                    scopes: scopes
                        .as_ref()
                        .map(|s| s.get_ref().clone())
                        .unwrap_or_default(),
                })
            }
            (None, Some(scopes)) => {
                return Err(self
                    .error(
                        scopes,
                        format!("{key}.scopes"),
                        "scopes need an authorizer to check them",
                    )
                    .fix("add `auth = \"<authorizer>\"` to the same table"));
            }
            (None, None) => None,
        };
        let rate_limit = raw
            .rate_limit
            .as_ref()
            .map(|limit| self.rate_limit(limit, &format!("{key}.rate_limit")))
            .transpose()?;
        let cors = raw
            .cors
            .as_ref()
            .map(|cors| self.cors(cors, &format!("{key}.cors")))
            .transpose()?;
        let cache = raw.cache.as_ref().map(|cache| CachePolicy {
            ttl: Duration::from_secs(cache.get_ref().ttl_seconds),
            vary: cache
                .get_ref()
                .vary
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_entry_bytes: cache
                .get_ref()
                .max_entry_bytes
                .unwrap_or(DEFAULT_MAX_ENTRY_BYTES),
        });
        if let Some(spanned) = &raw.cache
            && spanned.get_ref().ttl_seconds == 0
        {
            return Err(self
                .error(
                    spanned,
                    format!("{key}.cache.ttl_seconds"),
                    "must be at least 1",
                )
                .fix("remove `cache` to not cache the route"));
        }
        let waf = raw
            .waf
            .as_ref()
            .map(|waf| self.waf(waf, &format!("{key}.waf")))
            .transpose()?;
        let request_schema = raw
            .request_schema
            .as_ref()
            .map(|path| self.schema(root_dir, path, &format!("{key}.request_schema")))
            .transpose()?;
        let policies = RoutePolicies {
            methods,
            auth,
            rate_limit,
            cors,
            cache,
            waf,
            request_schema,
        };
        let guarded = policies.methods.is_some()
            || policies.auth.is_some()
            || policies.rate_limit.is_some()
            || policies.cors.is_some()
            || policies.cache.is_some()
            || policies.waf.is_some()
            || policies.request_schema.is_some();
        Ok(guarded.then_some(policies))
    }

    /// Reads and checks a JSON Schema file.
    fn schema(
        &self,
        root_dir: &Path,
        path: &Spanned<String>,
        key: &str,
    ) -> Result<serde_json::Value, ManifestError> {
        let file = root_dir.join(path.get_ref());
        let text = std::fs::read_to_string(&file).map_err(|e| {
            self.error(path, key, format!("cannot read {}: {e}", file.display()))
                .fix("give the schema's path relative to the manifest")
        })?;
        let schema: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            self.error(path, key, format!("{} is not JSON: {e}", file.display()))
                .fix("the schema is a JSON document")
        })?;
        jsonschema::validator_for(&schema).map_err(|e| {
            self.error(
                path,
                key,
                format!("{} is not a valid JSON Schema: {e}", file.display()),
            )
            .fix("check it against the JSON Schema specification")
        })?;
        Ok(schema)
    }

    fn methods(
        &self,
        methods: &Spanned<Vec<String>>,
        key: &str,
    ) -> Result<Vec<http::Method>, ManifestError> {
        if methods.get_ref().is_empty() {
            return Err(self
                .error(
                    methods,
                    key,
                    "the list is empty, so nothing could reach the route",
                )
                .fix("list the methods the route serves, e.g. [\"GET\", \"POST\"]"));
        }
        methods
            .get_ref()
            .iter()
            .map(|method| {
                let upper = method.to_ascii_uppercase();
                http::Method::from_bytes(upper.as_bytes())
                    .ok()
                    .filter(|_| upper == *method)
                    .ok_or_else(|| {
                        self.error(methods, key, format!("`{method}` is not a method name"))
                            .fix("write methods in upper case, e.g. \"GET\"")
                    })
            })
            .collect()
    }

    fn rate_limit(
        &self,
        limit: &Spanned<RawRateLimit>,
        key: &str,
    ) -> Result<RateLimit, ManifestError> {
        let raw = limit.get_ref();
        if raw.per_second == 0 || raw.burst == Some(0) {
            return Err(self
                .error(limit, key, "`per_second` and `burst` must be at least 1")
                .fix("use `methods` or `waf` to refuse a route outright"));
        }
        let per = match raw.per.as_deref() {
            None | Some("client") => RateKey::Client,
            Some("route") => RateKey::Route,
            Some("identity") => RateKey::Identity,
            Some(other) => {
                return Err(self
                    .error(
                        limit,
                        format!("{key}.per"),
                        format!("unknown bucket `{other}`"),
                    )
                    .fix("use \"client\" (the default), \"route\" or \"identity\""));
            }
        };
        Ok(RateLimit {
            per_second: raw.per_second,
            burst: raw.burst.unwrap_or(raw.per_second),
            per,
        })
    }

    fn cors(&self, cors: &Spanned<RawCors>, key: &str) -> Result<Cors, ManifestError> {
        let raw = cors.get_ref();
        if raw.allow_origins.is_empty() {
            return Err(self
                .error(cors, format!("{key}.allow_origins"), "no origin is allowed")
                .fix("list the origins, e.g. [\"https://app.example.com\"]"));
        }
        if raw.allow_credentials && raw.allow_origins.iter().any(|o| o == "*") {
            return Err(self
                .error(
                    cors,
                    format!("{key}.allow_origins"),
                    "browsers refuse `*` together with `allow_credentials = true`",
                )
                .fix("list the origins explicitly"));
        }
        Ok(Cors {
            allow_origins: raw.allow_origins.clone(),
            allow_methods: raw.allow_methods.clone(),
            allow_headers: raw.allow_headers.clone(),
            expose_headers: raw.expose_headers.clone(),
            allow_credentials: raw.allow_credentials,
            max_age: raw.max_age.map(Duration::from_secs),
        })
    }

    fn waf(&self, waf: &Spanned<RawWaf>, key: &str) -> Result<Waf, ManifestError> {
        let raw = waf.get_ref();
        let networks = |list: &[String], field: &str| -> Result<Vec<ipnet::IpNet>, ManifestError> {
            list.iter()
                .map(|text| {
                    text.parse::<ipnet::IpNet>()
                        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            self.error(
                                waf,
                                format!("{key}.{field}"),
                                format!("`{text}` is not an address or CIDR network"),
                            )
                            .fix("e.g. \"10.0.0.0/8\" or \"2001:db8::1\"")
                        })
                })
                .collect()
        };
        Ok(Waf {
            allow_ips: networks(&raw.allow_ips, "allow_ips")?,
            deny_ips: networks(&raw.deny_ips, "deny_ips")?,
            max_uri_bytes: raw.max_uri_bytes,
            max_header_bytes: raw.max_header_bytes,
            max_body_bytes: raw.max_body_bytes,
            block_injection: raw.block_injection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"a\"\n";

    fn read(text: &str) -> Result<GatewaySettings, ManifestError> {
        let source = format!("{HEADER}{text}");
        parse(
            Path::new("spin.toml"),
            Path::new("."),
            &source,
            &["/api/...", "/open"],
            &["api"],
        )
    }

    #[test]
    fn route_tables_override_defaults_and_skip_them() {
        let settings = read(
            "[application.tool.ledge.gateway]\nmethods = [\"GET\"]\nrate_limit = { per_second = 5 }\n\
             [application.tool.ledge.routes.\"/open\"]\nskip = [\"rate_limit\"]\nmethods = [\"GET\", \"POST\"]\n",
        )
        .unwrap();
        let api = &settings.routes["/api/..."];
        assert_eq!(api.methods.as_ref().unwrap(), &[http::Method::GET]);
        assert_eq!(api.rate_limit.as_ref().unwrap().burst, 5);
        let open = &settings.routes["/open"];
        assert_eq!(open.methods.as_ref().unwrap().len(), 2);
        assert!(open.rate_limit.is_none());
    }

    #[test]
    fn domains_are_hosts_with_optional_base_paths() {
        let settings = read(
            "[application.tool.ledge]\ndomains = [\"API.example.com/v1/\", \"*.example.org\"]\n",
        )
        .unwrap();
        assert_eq!(settings.domains[0].host, "api.example.com");
        assert_eq!(settings.domains[0].base_path, "/v1");
        assert_eq!(settings.domains[1].to_string(), "*.example.org");
        for bad in ["https://a.com", "a.com:8080", "a.com/../x", "a..com", ""] {
            assert!(DomainMapping::parse(bad).is_err(), "{bad} was accepted");
        }
        let error =
            read("[application.tool.ledge]\ndomains = [\"a.com\", \"a.com\"]\n").unwrap_err();
        assert_eq!(error.line, Some(5));
        assert!(error.message.contains("listed twice"));
    }

    #[test]
    fn unguarded_routes_are_left_out() {
        let settings = read("[application.tool.ledge]\naccess_log = true\n").unwrap();
        assert!(settings.routes.is_empty());
        assert!(settings.access_log);
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let error =
            read("[application.tool.ledge.routes.\"/nope\"]\nmethods = [\"GET\"]\n").unwrap_err();
        assert_eq!(error.line, Some(4));
        assert!(
            error
                .to_string()
                .contains("no [[trigger.http]] has this route")
        );

        let error = read("[application.tool.ledge.gateway]\nmethods = [\"get\"]\n").unwrap_err();
        assert_eq!(error.line, Some(5));
        assert!(error.fix.unwrap().contains("upper case"));

        let error = read("[application.tool.ledge.gateway]\nauth = \"users\"\n").unwrap_err();
        assert!(error.message.contains("no authorizer `users`"));

        let error = read("[application.tool.ledge.gateway]\nrate_limt = 1\n").unwrap_err();
        assert_eq!(error.line, Some(5));
        assert!(error.message.contains("rate_limt"));

        let error = read(
            "[application.tool.ledge.authorizers.users]\ntype = \"jwt\"\njwks = \"https://x\"\nalgorithms = [\"HS256\"]\n",
        )
        .unwrap_err();
        assert!(error.message.contains("never an HMAC secret"));

        let error = read(
            "[application.tool.ledge.gateway]\ncors = { allow_origins = [\"*\"], allow_credentials = true }\n",
        )
        .unwrap_err();
        assert!(error.message.contains("browsers refuse"));
    }

    #[test]
    fn waf_addresses_match_networks_and_mapped_v4() {
        let settings = read(
            "[application.tool.ledge.gateway]\nwaf = { deny_ips = [\"10.0.0.0/8\", \"::1\"] }\n",
        )
        .unwrap();
        let waf = settings.routes["/open"].waf.as_ref().unwrap();
        assert!(!waf.admits("10.1.2.3".parse().unwrap()));
        assert!(!waf.admits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!waf.admits("::1".parse().unwrap()));
        assert!(waf.admits("127.0.0.1".parse().unwrap()));
    }
}
