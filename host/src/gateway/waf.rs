//! The web application firewall: client address lists (CIDR), limits on the request target,
//! header and body sizes, and a rule set that blocks SQL injection and cross-site scripting
//! payloads in the query and the body (libinjection's detectors, from `libinjectionrs`).
//! Every block names the rule that fired.

use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use http::header;
use http::request::Parts;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use crate::manifest::Waf;

/// A refusal: the status and the rule that fired.
pub type Block = (StatusCode, String);

/// Checks the address lists and the size limits.
pub fn check_request(waf: &Waf, parts: &Parts, client: SocketAddr) -> Result<(), Block> {
    let block = |status, rule: &str| Err((status, rule.to_string()));
    if !waf.admits(client.ip()) {
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

/// Reads the whole body, at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, Block> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let collected = Limited::new(body, limit).collect().await.map_err(|error| {
        match error.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body over the size limit".to_string(),
            ),
            Err(_) => (
                StatusCode::BAD_REQUEST,
                "the body could not be read".to_string(),
            ),
        }
    })?;
    Ok(collected.to_bytes())
}

/// Screens a body for injection payloads: the fields of a form or the strings of a JSON
/// document, or else the raw text.
pub fn screen_body(parts: &Parts, bytes: &[u8]) -> Result<(), Block> {
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
}
