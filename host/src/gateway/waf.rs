//! The web application firewall: client address lists (CIDR), limits on the request target,
//! header and body sizes, and a rule set that blocks SQL injection and cross-site scripting
//! payloads in the query and the body (libinjection's detectors, from `libinjectionrs`).
//! Every block names the rule that fired.

use std::net::IpAddr;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::StatusCode;
use http::header;
use http::request::Parts;
use serde::Deserialize;

use super::access_log::Record;
use super::policy::{
    Admitted, Configure, Policy, RoutePolicyKind, Screening, Table, Verdict, decided,
};
use crate::manifest::ManifestError;
use crate::reply::text;

/// `waf = { allow_ips, deny_ips, max_uri_bytes, max_header_bytes, max_body_bytes,
/// block_injection }`.
pub const POLICY: RoutePolicyKind = RoutePolicyKind {
    keys: &["waf"],
    configure,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WafConfig {
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

/// The WAF of one route.
#[derive(Debug, Default)]
pub struct Waf {
    /// When not empty, only these networks are served.
    allow_ips: Vec<ipnet::IpNet>,
    /// These networks are refused.
    deny_ips: Vec<ipnet::IpNet>,
    /// The longest request target (path and query) accepted.
    max_uri_bytes: Option<usize>,
    /// The most header bytes (names and values) accepted.
    max_header_bytes: Option<usize>,
    /// The largest body accepted.
    max_body_bytes: Option<u64>,
    /// Block SQL injection and cross-site scripting payloads in the query and the body.
    block_injection: bool,
}

fn configure(config: &Configure<'_>, table: &Table) -> Result<Box<dyn Policy>, ManifestError> {
    let at = &table["waf"];
    let raw: WafConfig = config.read(at)?;
    let networks = |list: &[String], field: &str| -> Result<Vec<ipnet::IpNet>, ManifestError> {
        list.iter()
            .map(|text| {
                parse_network(text).ok_or_else(|| {
                    config
                        .error(
                            at,
                            format!("`{field}`: `{text}` is not an address or CIDR network"),
                        )
                        .fix("e.g. \"10.0.0.0/8\" or \"2001:db8::1\"")
                })
            })
            .collect()
    };
    Ok(Box::new(Waf {
        allow_ips: networks(&raw.allow_ips, "allow_ips")?,
        deny_ips: networks(&raw.deny_ips, "deny_ips")?,
        max_uri_bytes: raw.max_uri_bytes,
        max_header_bytes: raw.max_header_bytes,
        max_body_bytes: raw.max_body_bytes,
        block_injection: raw.block_injection,
    }))
}

/// An address or a CIDR network (`10.0.0.0/8`, `2001:db8::1`).
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .ok()
}

/// `address` as IPv4 when it is an IPv4-mapped IPv6 address, so v4 networks match it.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl Waf {
    /// Whether `address` may be served.
    fn admits(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        (self.allow_ips.is_empty() || self.allow_ips.iter().any(|n| n.contains(&address)))
            && !self.deny_ips.iter().any(|n| n.contains(&address))
    }
}

impl Policy for Waf {
    fn summary(&self) -> String {
        "waf".into()
    }

    fn admit<'s>(&'s self, screening: &'s mut Screening<'_, '_>) -> BoxFuture<'s, Verdict> {
        if let Some(max) = self.max_body_bytes {
            let limit = &mut screening.admitted.body_limit;
            *limit = Some(limit.map_or(max, |limit| limit.min(max)));
        }
        let verdict = check_request(self, screening.parts, screening.client)
            .map_err(|block| blocked(block, screening.record));
        decided(verdict)
    }

    fn reads_body(&self, _admitted: &Admitted) -> bool {
        self.block_injection
    }

    fn screen_body(
        &self,
        parts: &Parts,
        body: &Bytes,
        _admitted: &Admitted,
        record: &mut Record<'_>,
    ) -> Verdict {
        screen_body(parts, body).map_err(|block| blocked(block, record))
    }
}

/// A refusal: the status and the rule that fired.
pub type Block = (StatusCode, String);

/// The answer to a request the WAF blocked, logged with the rule that fired.
pub fn blocked(
    (status, rule): Block,
    record: &mut Record<'_>,
) -> http::Response<wasmtime_wasi_http::WasiBody> {
    match record.client {
        Some(client) => tracing::warn!(%client, rule, "blocked by the WAF"),
        None => tracing::warn!(rule, "blocked by the WAF"),
    }
    let response = text(
        status,
        &format!("{}: {rule}", status.canonical_reason().unwrap_or("")),
    );
    record.outcome = Some("blocked");
    record.rule = Some(rule);
    response
}

/// Checks the address lists and the size limits.
fn check_request(waf: &Waf, parts: &Parts, client: IpAddr) -> Result<(), Block> {
    let block = |status, rule: &str| Err((status, rule.to_string()));
    if !waf.admits(client) {
        return block(StatusCode::FORBIDDEN, "client address not allowed");
    }
    let target = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if waf.max_uri_bytes.is_some_and(|max| target > max) {
        return block(
            StatusCode::URI_TOO_LONG,
            "request target over max_uri_bytes",
        );
    }
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if waf.max_header_bytes.is_some_and(|max| header_bytes > max) {
        return block(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers over max_header_bytes",
        );
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let (Some(max), Some(length)) = (waf.max_body_bytes, declared)
        && length > max
    {
        return block(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_bytes");
    }
    if waf.block_injection
        && let Some(query) = parts.uri.query()
    {
        screen_pairs(query.as_bytes(), "query parameter")?;
    }
    Ok(())
}

/// Screens a body for injection payloads: the fields of a form or the strings of a JSON
/// document, or else the raw text.
fn screen_body(parts: &Parts, bytes: &[u8]) -> Result<(), Block> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        screen_pairs(bytes, "form field")
    } else if content_type.contains("json")
        && let Ok(document) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        screen_json(&document, "")
    } else {
        screen(bytes, "body")
    }
}

/// Screens the names and values of `a=b&c=d` text (percent-decoded).
fn screen_pairs(text: &[u8], what: &str) -> Result<(), Block> {
    for (name, value) in form_urlencoded::parse(text) {
        screen(name.as_bytes(), &format!("{what} name `{name}`"))?;
        screen(value.as_bytes(), &format!("{what} `{name}`"))?;
    }
    Ok(())
}

/// Screens every string (and key) of a JSON document.
fn screen_json(value: &serde_json::Value, path: &str) -> Result<(), Block> {
    match value {
        serde_json::Value::String(text) => screen(text.as_bytes(), &format!("JSON field `{path}`")),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| screen_json(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            screen(key.as_bytes(), &format!("JSON key `{path}`"))?;
            screen_json(item, &path)
        }),
        _ => Ok(()),
    }
}

/// The injection rules on one input.
fn screen(input: &[u8], place: &str) -> Result<(), Block> {
    if input.is_empty() {
        return Ok(());
    }
    let sqli = libinjectionrs::detect_sqli(input);
    if sqli.is_injection() {
        let fingerprint = sqli.fingerprint.map(|f| f.to_string()).unwrap_or_default();
        return Err((
            StatusCode::FORBIDDEN,
            format!("SQL injection in {place} (libinjection fingerprint {fingerprint})"),
        ));
    }
    if libinjectionrs::detect_xss(input).is_injection() {
        return Err((
            StatusCode::FORBIDDEN,
            format!("cross-site scripting in {place}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_payloads_are_caught_and_plain_text_is_not() {
        assert!(screen_pairs(b"id=1%27%20OR%20%271%27%3D%271", "query parameter").is_err());
        assert!(screen_pairs(b"q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "query parameter").is_err());
        assert!(screen_pairs(b"name=O%27Brien&city=New+York", "query parameter").is_ok());
        let document = serde_json::json!({"comment": {"text": "<img src=x onerror=alert(1)>"}});
        let (status, rule) = screen_json(&document, "").unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(rule.contains("comment.text"), "{rule}");
        assert!(screen(b"hello, world", "body").is_ok());
    }

    #[test]
    fn addresses_match_networks_and_mapped_v4() {
        let waf = Waf {
            deny_ips: vec!["10.0.0.0/8".parse().unwrap(), parse_network("::1").unwrap()],
            ..Waf::default()
        };
        assert!(!waf.admits("10.1.2.3".parse().unwrap()));
        assert!(!waf.admits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!waf.admits("::1".parse().unwrap()));
        assert!(waf.admits("127.0.0.1".parse().unwrap()));
        assert!(parse_network("10.0.0.0/33").is_none());
    }
}
