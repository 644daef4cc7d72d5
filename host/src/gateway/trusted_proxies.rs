//! `trusted_proxies = ["10.0.0.0/8", ...]` in `[application.tool.ledge]` (or `ledge up
//! --trusted-proxy`): behind a load balancer every connection comes from the balancer, so the
//! client's address is read from the `Forwarded` (RFC 7239) or else `X-Forwarded-For` header,
//! but only when the connection comes from one of these networks. The chain is read from the
//! right, the connection's own address last: the first address that is not a trusted proxy is
//! the client, so an address a client forged at the left of the chain is never believed. An
//! entry that is not an address (`unknown`, an obfuscated name) ends the walk at the proxy
//! that wrote it.

use std::net::{IpAddr, SocketAddr};

use http::header::HeaderName;
use http::request::Parts;

use super::policy::{AppPolicy, AppPolicyKind, Configure};
use super::waf::{canonical, parse_network};
use crate::manifest::{ManifestError, Setting};

/// `trusted_proxies = [CIDR, ...]`.
pub const POLICY: AppPolicyKind = AppPolicyKind {
    key: "trusted_proxies",
    configure,
};

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The networks whose forwarding headers are believed.
struct TrustedProxies(Vec<ipnet::IpNet>);

fn configure(
    config: &Configure<'_>,
    at: &Setting<toml::Value>,
) -> Result<Box<dyn AppPolicy>, ManifestError> {
    let entries: Vec<String> = config.read(at)?;
    let networks = entries
        .iter()
        .map(|entry| {
            parse_network(entry).ok_or_else(|| {
                config
                    .error(at, format!("`{entry}` is not an address or CIDR network"))
                    .fix("e.g. \"10.0.0.0/8\" or \"2001:db8::1\"")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(TrustedProxies(networks)))
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }
}

impl AppPolicy for TrustedProxies {
    fn summary(&self) -> String {
        let networks: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        format!("trusted proxies {}", networks.join(" "))
    }

    fn client(&self, parts: &Parts, peer: IpAddr) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(parts);
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Some(address) = hop else {
                return client;
            };
            client = *address;
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// The addresses a request passed through, leftmost (the original client) first: from the
/// `Forwarded` headers when there are any, else from `X-Forwarded-For`. `None` stands for an
/// entry that is not an address.
fn forwarded_chain(parts: &Parts) -> Vec<Option<IpAddr>> {
    let lines = |name| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|line| line.split(','))
    };
    if parts.headers.contains_key(FORWARDED) {
        return lines(FORWARDED)
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| node_address(value.trim().trim_matches('"')))
                })?
            })
            .collect();
    }
    lines(X_FORWARDED_FOR)
        .map(|entry| node_address(entry.trim()))
        .collect()
}

/// The address of a node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> TrustedProxies {
        TrustedProxies(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ffff::/48".parse().unwrap(),
        ])
    }

    fn client(peer: &str, headers: &[(&str, &str)]) -> String {
        let mut request = http::Request::get("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let parts = request.body(()).unwrap().into_parts().0;
        proxies().client(&parts, peer.parse().unwrap()).to_string()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let forwarded = [("x-forwarded-for", "203.0.113.7")];
        assert_eq!(client("10.1.1.1", &forwarded), "203.0.113.7");
        assert_eq!(client("::ffff:10.1.1.1", &forwarded), "203.0.113.7");
        assert_eq!(client("192.0.2.50", &forwarded), "192.0.2.50");
        assert_eq!(client("10.1.1.1", &[]), "10.1.1.1");
    }

    #[test]
    fn the_rightmost_untrusted_address_wins_over_a_forged_chain() {
        let chain = [("x-forwarded-for", "198.51.100.9, 203.0.113.7, 10.2.2.2")];
        assert_eq!(client("10.1.1.1", &chain), "203.0.113.7");
        let split = [
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-for", "203.0.113.7"),
        ];
        assert_eq!(client("10.1.1.1", &split), "203.0.113.7");
        let all_trusted = [("x-forwarded-for", "10.3.3.3, 10.2.2.2")];
        assert_eq!(client("10.1.1.1", &all_trusted), "10.3.3.3");
        let garbage = [("x-forwarded-for", "203.0.113.7, bogus, 10.2.2.2")];
        assert_eq!(client("10.1.1.1", &garbage), "10.2.2.2");
    }

    #[test]
    fn forwarded_is_preferred_and_its_nodes_are_parsed() {
        let headers = [
            (
                "forwarded",
                "for=198.51.100.9;proto=https, For=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("x-forwarded-for", "192.0.2.1"),
        ];
        assert_eq!(client("10.1.1.1", &headers), "2001:db8:cafe::17");
        let hidden = [("forwarded", "for=203.0.113.7, for=_hidden")];
        assert_eq!(client("10.1.1.1", &hidden), "10.1.1.1");
        let port = [("forwarded", "for=\"203.0.113.7:9000\"")];
        assert_eq!(client("2001:db8:ffff::1", &port), "203.0.113.7");
    }
}
