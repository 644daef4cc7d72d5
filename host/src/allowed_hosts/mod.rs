//! `allowed_outbound_hosts`: which URLs a component may call.
//!
//! Entries are `scheme://host[:port]`, where scheme may be `*`, host may be `*`, start with
//! `*.`, be an IP address (`[::1]` for IPv6) or a CIDR range (`10.0.0.0/8`), and port may be `*`
//! (a missing port means the scheme's default: 80 for http, 443 for https, 6379 for redis,
//! 1883 for mqtt, 5432 for postgres, 3306 for mysql; other schemes need one). Raw sockets
//! (`wasi:sockets`) ignore the scheme and ask only for addresses: see
//! [`AllowedHosts::permits_address`] and [`AllowedHosts::names_for_port`]. `self` (or `http://self`) allows calls to the app itself, and
//! `http://<component>.spin.internal` (or `http://*.spin.internal`) calls to its components;
//! both are served in-process.
//!
//! Every outbound capability asks this module before it opens a socket: outbound HTTP through
//! its hooks (`crate::outbound_http`), raw sockets through the grant made to each instance's
//! WASI context (`crate::sockets`), and Redis, MQTT, PostgreSQL and MySQL through the
//! [`OutboundView`] an instance gives.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

mod view;

pub use view::{HasOutboundView, OutboundView};

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
    /// An IP address (a range of one) or a CIDR range.
    Range(IpNet),
}

impl HostPattern {
    /// Whether a host written as `host` (a name or an IP literal, lowercase) matches.
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Suffix(suffix) => host.ends_with(suffix.as_str()),
            Self::Exact(exact) => exact == host,
            Self::Range(range) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| range.contains(&ip.to_canonical())),
        }
    }
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
    /// Parses the (already template-rendered) entries, or gives the bad one's index and what
    /// is wrong with it.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let mut parsed = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            parsed.push(parse_entry(entry).map_err(|message| (index, message))?);
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
                && entry.host.matches(&host)
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

    /// Whether a client of an outbound service (Redis, MQTT, Postgres, MySQL) may dial
    /// `host:port` over the network for `scheme`. `self` and `*.spin.internal` are never
    /// network hosts.
    pub fn permits_network(&self, scheme: &str, host: &str, port: u16) -> bool {
        matches!(
            self.check(scheme, host, Some(port)),
            Some(Destination::Network)
        )
    }

    /// Whether a raw socket may reach `address` by an entry's IP, CIDR range or `*` host
    /// (whatever the entry's scheme). Named hosts are not consulted: see
    /// [`AllowedHosts::names_for_port`].
    pub fn permits_address(&self, address: SocketAddr) -> bool {
        let ip = address.ip().to_canonical();
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|p| p == address.port())
                && match &entry.host {
                    HostPattern::Any => true,
                    HostPattern::Range(range) => range.contains(&ip),
                    HostPattern::Suffix(_) | HostPattern::Exact(_) => false,
                }
        })
    }

    /// Whether any entry reaches the network (rather than the app itself): only then may an
    /// instance look names up or open sockets at all.
    pub fn reaches_network(&self) -> bool {
        self.entries.iter().any(|entry| match &entry.host {
            HostPattern::Exact(name) => name != "self" && !name.ends_with(SERVICE_CHAINING_SUFFIX),
            HostPattern::Suffix(suffix) => suffix != SERVICE_CHAINING_SUFFIX,
            HostPattern::Any | HostPattern::Range(_) => true,
        })
    }

    /// The host names of the entries that allow `port`: a raw socket may reach the addresses
    /// these names resolve to. In-process hosts (`self`, `*.spin.internal`) and `*.` suffixes
    /// (which name no address) are left out.
    pub fn names_for_port(&self, port: u16) -> Vec<String> {
        self.entries
            .iter()
            .filter(|entry| entry.port.is_none_or(|p| p == port))
            .filter_map(|entry| match &entry.host {
                HostPattern::Exact(name)
                    if name != "self" && !name.ends_with(SERVICE_CHAINING_SUFFIX) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect()
    }
}

/// Parses one entry.
fn parse_entry(entry: &str) -> Result<AllowedHost, String> {
    let entry = entry.trim();
    if entry == "self" {
        return Ok(AllowedHost {
            scheme: Some("http".into()),
            host: HostPattern::Exact("self".into()),
            port: None,
        });
    }
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
        format!("`{entry}` has no scheme; write it as `https://{entry}` (or `*://{entry}`)")
    })?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.trim_end_matches('/');
    let (host, port) = split_port(rest);
    let port = match port {
        Some("*") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| format!("`{entry}` has an invalid port `{port}`"))?,
        ),
        None => Some(default_port(&scheme).ok_or_else(|| {
            format!("`{entry}` has no port; add one (`{entry}:5432`), or `:*` for any port")
        })?),
    };
    Ok(AllowedHost {
        scheme: (scheme != "*").then_some(scheme),
        host: parse_host(entry, host)?,
        port,
    })
}

/// Splits `host[:port]`, where an IPv6 host is bracketed (`[::1]:7`, `[fd00::]/8:7`).
fn split_port(rest: &str) -> (&str, Option<&str>) {
    let host_end = if rest.starts_with('[') {
        rest.find(']').map_or(rest.len(), |end| end + 1)
    } else {
        0
    };
    match rest[host_end..].rfind(':') {
        Some(colon) => (
            &rest[..host_end + colon],
            Some(&rest[host_end + colon + 1..]),
        ),
        None => (rest, None),
    }
}

/// Parses the host of `entry`: `*`, `*.suffix`, an IP address, a CIDR range or a name.
fn parse_host(entry: &str, host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err(format!("`{entry}` has no host"));
    }
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "`{entry}`: write an IPv6 address in brackets (`[::1]:7`)"
        ));
    }
    let unbracketed = host.replace(['[', ']'], "");
    if let Some((address, prefix)) = unbracketed.split_once('/') {
        if address.parse::<IpAddr>().is_err() {
            return Err(format!(
                "`{entry}` has a path; an allowed host is `scheme://host[:port]`"
            ));
        }
        return unbracketed.parse::<IpNet>().map(HostPattern::Range).map_err(|_| {
            format!(
                "`{entry}` has an invalid CIDR range `{host}`: the prefix length `/{prefix}` must be at most 32 for IPv4 and 128 for IPv6"
            )
        });
    }
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(HostPattern::Range(IpNet::from(ip.to_canonical())));
    }
    Ok(if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
    } else if host.contains('*') {
        return Err(format!(
            "`{entry}`: `*` may only be the whole host or its first label (`*.example.com`)"
        ));
    } else {
        HostPattern::Exact(host.to_ascii_lowercase())
    })
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
            ("*://127.0.0.0/33:7", "invalid CIDR range `127.0.0.0/33`"),
            ("*://[::1]/129:7", "invalid CIDR range"),
            ("*://10.0.0.5", "no port"),
            ("*://::1", "brackets"),
        ] {
            let (_, error) = AllowedHosts::parse(&[entry.to_string()]).unwrap_err();
            assert!(error.contains(says), "{entry}: {error}");
        }
    }

    #[test]
    fn ip_entries_and_cidr_ranges_match_addresses() {
        let allowed = hosts(&[
            "*://127.0.0.0/24:7",
            "*://[::1]:9",
            "http://10.1.2.3:8080",
            "*://localhost:6000",
        ]);
        let address = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(allowed.permits_address(address("127.0.0.9:7")));
        assert!(allowed.permits_address(address("[::ffff:127.0.0.9]:7")));
        assert!(!allowed.permits_address(address("127.0.1.9:7")));
        assert!(!allowed.permits_address(address("127.0.0.9:8")));
        assert!(allowed.permits_address(address("[::1]:9")));
        // The scheme does not matter to a raw socket.
        assert!(allowed.permits_address(address("10.1.2.3:8080")));
        assert!(allowed.reaches_network());
        assert!(!hosts(&["self", "http://*.spin.internal"]).reaches_network());
        assert!(
            hosts(&["HTTPS://api.example.com"])
                .check("https", "api.example.com", None)
                .is_some()
        );
        assert!(
            hosts(&["HTTPS://api.example.com"])
                .check("https", "api.example.com", Some(8443))
                .is_none()
        );
        // Names are resolved by the caller.
        assert!(!allowed.permits_address(address("127.0.0.1:6000")));
        assert_eq!(allowed.names_for_port(6000), vec!["localhost".to_string()]);
        assert!(allowed.names_for_port(6001).is_empty());
        // HTTP checks see IP hosts too.
        assert_eq!(
            allowed.check("http", "10.1.2.3", Some(8080)),
            Some(Destination::Network)
        );
        assert_eq!(
            allowed.check("http", "[::1]", Some(9)),
            Some(Destination::Network)
        );
        assert_eq!(allowed.check("http", "10.1.2.4", Some(8080)), None);
    }
}
