//! `allowed_outbound_hosts`: which URLs a component may call.
//!
//! Entries are `scheme://host[:port]`, where scheme may be `*`, host may be `*` or start with
//! `*.`, and port may be `*` (a missing port means the scheme's default: 80 for http, 443 for
//! https). `self` (or `http://self`) allows calls to the app itself, and
//! `http://<component>.spin.internal` (or `http://*.spin.internal`) calls to its components;
//! both are served in-process.

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

/// Where an outbound request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The app itself (`self`): routed by the app's router.
    App,
    /// Another component of the app, by id (`<id>.spin.internal`).
    Component(String),
    /// The network.
    Network,
}

/// The reserved host suffix for in-process calls to another component.
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

impl AllowedHosts {
    /// Parses the (already template-rendered) entries, or names the bad one.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry == "self" {
                parsed.push(AllowedHost {
                    scheme: Some("http".into()),
                    host: HostPattern::Exact("self".into()),
                    port: None,
                });
                continue;
            }
            let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
                format!("`{entry}` has no scheme; write it as `https://{entry}` (or `*://{entry}`)")
            })?;
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                return Err(format!(
                    "`{entry}` has a path; an allowed host is `scheme://host[:port]`"
                ));
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, "*")) => (host, None),
                Some((host, port)) => (
                    host,
                    Some(
                        port.parse::<u16>()
                            .map_err(|_| format!("`{entry}` has an invalid port `{port}`"))?,
                    ),
                ),
                None => (rest, default_port(scheme)),
            };
            if host.is_empty() {
                return Err(format!("`{entry}` has no host"));
            }
            let host = if host == "*" {
                HostPattern::Any
            } else if let Some(suffix) = host.strip_prefix("*.") {
                HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
            } else if host.contains('*') {
                return Err(format!(
                    "`{entry}`: `*` may only be the whole host or its first label (`*.example.com`)"
                ));
            } else {
                HostPattern::Exact(host.to_ascii_lowercase())
            };
            parsed.push(AllowedHost {
                scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
                host,
                port,
            });
        }
        Ok(Self { entries: parsed })
    }

    /// Whether a request to `scheme://host:port` is allowed, and where it goes.
    pub fn check(&self, scheme: &str, host: &str, port: Option<u16>) -> Option<Destination> {
        let host = host.to_ascii_lowercase();
        let port = port.or_else(|| default_port(scheme));
        let allowed = self.entries.iter().any(|entry| {
            entry.scheme.as_deref().is_none_or(|s| s == scheme)
                && entry.port.is_none_or(|p| Some(p) == port)
                && match &entry.host {
                    HostPattern::Any => true,
                    HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
                    HostPattern::Exact(exact) => *exact == host,
                }
        });
        if !allowed {
            return None;
        }
        Some(if host == "self" {
            Destination::App
        } else if let Some(component) = host.strip_suffix(SERVICE_CHAINING_SUFFIX) {
            Destination::Component(component.to_string())
        } else {
            Destination::Network
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" | "rediss" => Some(6379),
        "mqtt" => Some(1883),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_schemes_hosts_and_ports() {
        let allowed = hosts(&[
            "https://api.example.com",
            "http://localhost:8080",
            "*://*.internal.net:*",
        ]);
        assert_eq!(
            allowed.check("https", "api.example.com", None),
            Some(Destination::Network)
        );
        assert_eq!(
            allowed.check("https", "API.example.com", Some(443)),
            Some(Destination::Network)
        );
        assert_eq!(allowed.check("http", "api.example.com", None), None);
        assert_eq!(allowed.check("https", "api.example.com", Some(8443)), None);
        assert_eq!(
            allowed.check("http", "localhost", Some(8080)),
            Some(Destination::Network)
        );
        assert_eq!(allowed.check("http", "localhost", None), None);
        assert_eq!(
            allowed.check("http", "db.internal.net", Some(5432)),
            Some(Destination::Network)
        );
        assert_eq!(allowed.check("http", "internal.net", Some(5432)), None);
        assert!(
            AllowedHosts::default()
                .check("https", "example.com", None)
                .is_none()
        );
    }

    #[test]
    fn self_and_service_chaining_stay_in_process() {
        let allowed = hosts(&["self", "http://*.spin.internal"]);
        assert_eq!(allowed.check("http", "self", None), Some(Destination::App));
        assert_eq!(
            allowed.check("http", "billing.spin.internal", None),
            Some(Destination::Component("billing".into()))
        );
        assert_eq!(allowed.check("http", "example.com", None), None);
    }

    #[test]
    fn bad_entries_are_explained() {
        for (entry, says) in [
            ("example.com", "no scheme"),
            ("https://a.com/x", "path"),
            ("https://a*b.com", "first label"),
            ("https://a.com:99999", "port"),
        ] {
            let error = AllowedHosts::parse(&[entry.to_string()]).unwrap_err();
            assert!(error.contains(says), "{entry}: {error}");
        }
    }
}
