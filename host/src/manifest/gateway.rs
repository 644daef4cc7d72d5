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
//! The section is taken from the parsed manifest (`super::validate` parses the text once) and
//! read on its own here, every value keeping its position, so every error names its line. This module knows where each table is; what a policy's table holds
//! is the gateway's business (`gateway::policies`): here a route's table is laid over the
//! defaults key by key and handed on with each value's key and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::ManifestError;
use super::authorizers::{AuthorizerSettings, RawAuthorizer};
use super::error::Reader;

/// The gateway as the manifest configures it, resolved per route.
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    /// The manifest that says all this, for errors about it.
    pub file: PathBuf,
    /// The directory files named here (schemas, keys) are relative to.
    pub root_dir: PathBuf,
    /// The gateway's tables of each route that has any, keyed by the route as written in
    /// its `[[trigger.http]]`. A route missing here behaves exactly as in Spin.
    pub routes: BTreeMap<String, RouteTable>,
    /// App-wide gateway settings: the keys of `[application.tool.ledge]` other than the
    /// tables above (`trusted_proxies`, ...), read by the gateway.
    pub app: BTreeMap<String, Setting<toml::Value>>,
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

/// A gateway setting as written: its value, its key and its line, so that the policy that reads
/// its meaning can say where a problem is.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its full key, e.g. `application.tool.ledge.gateway.rate_limit`.
    pub key: String,
    /// Its 1-based line in the manifest; `None` for a value given on the command line.
    pub line: Option<usize>,
}

impl<T> Setting<T> {
    /// An error about this value in manifest `file`.
    pub fn error(&self, file: &Path, message: impl Into<String>) -> ManifestError {
        let error = ManifestError::file(file, message).key(self.key.clone());
        match self.line {
            Some(line) => error.on_line(line),
            None => error,
        }
    }
}

/// The gateway's tables for one route: the route's own table laid over
/// `[application.tool.ledge.gateway]`, key by key, and the policies the route skips.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Each key and its value, as written in the route's table or else in the defaults.
    pub entries: BTreeMap<String, Setting<toml::Value>>,
    /// The names listed in the route's `skip`.
    pub skip: Vec<Setting<String>>,
}

/// The keys of `[application.tool.ledge]` that this module reads; every other key is an
/// app-wide gateway setting (see [`GatewaySettings::app`]).
const LEDGE_KEYS: [&str; 6] = [
    "access_log",
    "request_id_header",
    "domains",
    "gateway",
    "routes",
    "authorizers",
];

#[derive(Deserialize)]
struct RawLedgeApp {
    #[serde(default)]
    access_log: bool,
    request_id_header: Option<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    gateway: Option<RawTable>,
    #[serde(default)]
    routes: BTreeMap<Spanned<String>, RawTable>,
    #[serde(default)]
    authorizers: BTreeMap<Spanned<String>, RawAuthorizer>,
}

/// A table whose keys are read by the gateway, with their lines.
type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// Reads `ledge`, the parsed `[application.tool.ledge]` table of manifest `source` (of
/// `file`, in `root_dir`), for an app whose public routes are `routes` (as written) and whose
/// triggered components are `components`.
pub fn parse(
    file: &Path,
    root_dir: &Path,
    source: &str,
    ledge: Option<Spanned<DeValue<'_>>>,
    routes: &[&str],
    components: &[&str],
) -> Result<GatewaySettings, ManifestError> {
    let Some(ledge) = ledge else {
        return Ok(GatewaySettings::default());
    };
    let invalid = |e: toml::de::Error| {
        let mut error = ManifestError::file(file, e.message().to_string())
            .key("application.tool.ledge")
            .fix("the keys ledge reads here are listed in docs/gateway.md");
        if let Some(span) = e.span() {
            error = error.at(source, span.start);
        }
        error
    };
    // Each key as written, for the app-wide settings; then the keys this module reads.
    let keys = RawTable::deserialize(ValueDeserializer::from(ledge.clone())).map_err(invalid)?;
    let raw = RawLedgeApp::deserialize(ValueDeserializer::from(ledge)).map_err(invalid)?;
    let reader = Reader { file, source };

    let mut authorizers = BTreeMap::new();
    for (name, authorizer) in raw.authorizers {
        let settings = super::authorizers::read(&reader, root_dir, components, &name, authorizer)?;
        authorizers.insert(name.into_inner(), settings);
    }

    let defaults = reader.entries(
        raw.gateway.unwrap_or_default(),
        "application.tool.ledge.gateway",
        None,
    )?;
    let mut specific = BTreeMap::new();
    for (route, table) in raw.routes {
        let key = format!("application.tool.ledge.routes.\"{}\"", route.get_ref());
        if !routes.contains(&route.get_ref().as_str()) {
            return Err(reader
                .error(&route, key, "no [[trigger.http]] has this route")
                .fix(format!(
                    "write the route exactly as in its trigger; the app's routes are {routes:?}"
                )));
        }
        let own = reader.entries(table, &key, Some(&defaults))?;
        specific.insert(route.into_inner(), own);
    }
    let mut tables = BTreeMap::new();
    for route in routes {
        let table = specific.remove(*route).unwrap_or_else(|| defaults.clone());
        if !table.entries.is_empty() || !table.skip.is_empty() {
            tables.insert(route.to_string(), table);
        }
    }
    let app = keys
        .into_iter()
        .filter(|(key, _)| !LEDGE_KEYS.contains(&key.get_ref().as_str()))
        .map(|(key, value)| {
            let located =
                reader.locate(&value, format!("application.tool.ledge.{}", key.get_ref()));
            (key.into_inner(), located)
        })
        .collect();
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
        file: file.to_owned(),
        root_dir: root_dir.to_owned(),
        routes: tables,
        app,
        authorizers,
        access_log: raw.access_log,
        request_id_header,
        domains,
    })
}

impl Reader<'_> {
    /// `value`, located at its line.
    fn locate(&self, value: &Spanned<toml::Value>, key: String) -> Setting<toml::Value> {
        Setting {
            value: value.get_ref().clone(),
            key,
            line: Some(super::error::line_of(self.source, value.span().start)),
        }
    }

    /// The keys of a gateway table named `key`, laid over `defaults` when it is a route's own
    /// table (which alone may `skip` policies).
    fn entries(
        &self,
        table: RawTable,
        key: &str,
        defaults: Option<&RouteTable>,
    ) -> Result<RouteTable, ManifestError> {
        let mut merged = defaults.cloned().unwrap_or_default();
        for (name, value) in table {
            let entry_key = format!("{key}.{}", name.get_ref());
            if name.get_ref() != "skip" {
                merged
                    .entries
                    .insert(name.into_inner(), self.locate(&value, entry_key));
                continue;
            }
            if defaults.is_none() {
                return Err(self
                    .error(&name, entry_key, "only a route's own table can skip policies")
                    .fix("leave the policy out of the defaults, or skip it in the routes that should not have it"));
            }
            let names = value.get_ref().as_array().and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
            let Some(names) = names else {
                return Err(self
                    .error(&value, entry_key, "not a list of policy names")
                    .fix("e.g. skip = [\"rate_limit\"]"));
            };
            let line = Some(super::error::line_of(self.source, value.span().start));
            merged.skip = names
                .into_iter()
                .map(|value| Setting {
                    value,
                    key: entry_key.clone(),
                    line,
                })
                .collect();
        }
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"a\"\n";

    fn read(text: &str) -> Result<GatewaySettings, ManifestError> {
        let source = format!("{HEADER}{text}");
        let document = toml::de::DeTable::parse(&source).unwrap();
        let ledge = document.get_ref()["application"].get_ref().get("tool");
        let ledge = ledge.and_then(|tool| tool.get_ref().get("ledge")).cloned();
        parse(
            Path::new("spin.toml"),
            Path::new("."),
            &source,
            ledge,
            &["/api/...", "/open"],
            &["api"],
        )
    }

    #[test]
    fn route_tables_lay_over_defaults_key_by_key() {
        let settings = read(
            "[application.tool.ledge.gateway]\nmethods = [\"GET\"]\nrate_limit = { per_second = 5 }\n\
             [application.tool.ledge.routes.\"/open\"]\nskip = [\"rate_limit\"]\nmethods = [\"GET\", \"POST\"]\n",
        )
        .unwrap();
        let api = &settings.routes["/api/..."];
        assert_eq!(
            api.entries["methods"].key,
            "application.tool.ledge.gateway.methods"
        );
        assert_eq!(api.entries["methods"].line, Some(5));
        assert!(api.skip.is_empty());
        let open = &settings.routes["/open"];
        assert_eq!(open.entries["methods"].value.as_array().unwrap().len(), 2);
        assert!(open.entries.contains_key("rate_limit"));
        assert_eq!(open.skip[0].value, "rate_limit");
        assert_eq!(open.skip[0].line, Some(8));
    }

    #[test]
    fn other_keys_are_app_wide_settings() {
        let settings =
            read("[application.tool.ledge]\ntrusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        let proxies = &settings.app["trusted_proxies"];
        assert_eq!(proxies.key, "application.tool.ledge.trusted_proxies");
        assert_eq!(proxies.line, Some(5));
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

        let error = read("[application.tool.ledge.gateway]\nskip = [\"waf\"]\n").unwrap_err();
        assert_eq!(error.line, Some(5));
        assert!(error.message.contains("only a route's own table"));

        let error = read(
            "[application.tool.ledge.authorizers.users]\ntype = \"jwt\"\njwks = \"https://x\"\nalgorithms = [\"HS256\"]\n",
        )
        .unwrap_err();
        assert!(error.message.contains("never an HMAC secret"));
    }
}
