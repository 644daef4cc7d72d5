//! The request the guest sees: an absolute URI and the `spin-*` headers, exactly as Spin sets
//! them (and no other `spin-*` header: copies sent by the client are removed, so a guest can
//! trust them).
//!
//! What depends only on the route (its patterns, the names of its `:name` headers) is computed
//! once per route in [`RouteHeaders`]; a request only adds what depends on it.

use std::net::{IpAddr, SocketAddr};

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::sites::MappedBase;
use crate::gateway::CLIENT_ADDRESS;
use crate::router::{RouteMatch, RoutePattern};

/// Prefix of the headers the host owns.
const SPIN_HEADER_PREFIX: &str = "spin-";

const FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");

/// The `spin-*` header values fixed by a route.
#[derive(Debug, Clone)]
pub struct RouteHeaders {
    fixed: Vec<(HeaderName, HeaderValue)>,
    /// `spin-path-match-<name>`, in the order of the route's `:name` segments.
    captures: Vec<HeaderName>,
}

impl RouteHeaders {
    /// Computes the headers of `route`.
    pub fn new(route: &RoutePattern) -> Self {
        let value =
            |text: &str| HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static(""));
        Self {
            fixed: vec![
                (MATCHED_ROUTE, value(route.based())),
                (BASE_PATH, value(route.base())),
                (RAW_COMPONENT_ROUTE, value(route.raw())),
                (COMPONENT_ROUTE, value(route.raw_without_wildcard())),
            ],
            captures: route
                .parameter_names()
                .map(|name| {
                    let header = format!(
                        "spin-path-match-{}",
                        name.replace('_', "-").to_ascii_lowercase()
                    );
                    HeaderName::try_from(header).expect("route parameter names are header-safe")
                })
                .collect(),
        }
    }
}

/// Rewrites `parts` in place for the guest: absolute URI, the `spin-*` headers of `route`
/// (`spin-client-addr` is the connection's `peer`) and `ledge-client-addr`, the `client` the
/// gateway derived.
pub fn prepare<T>(
    parts: &mut http::request::Parts,
    route: &RouteMatch<'_, T>,
    fixed: &RouteHeaders,
    peer: SocketAddr,
    client: IpAddr,
    scheme: &str,
) {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // Under a custom domain's base path, the client's URL still has it.
    let base = parts
        .extensions
        .get::<MappedBase>()
        .map_or("", |base| &*base.0);
    let full_url = format!("{scheme}://{host}{base}{path_and_query}");
    // Reuse the parsed path; only the authority is new.
    if let Ok(authority) = Authority::try_from(host) {
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(if scheme == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        uri.authority = Some(authority);
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri).unwrap_or_default();
    }

    let headers = &mut parts.headers;
    remove_spin_headers(headers);
    for (name, value) in &fixed.fixed {
        headers.insert(name.clone(), value.clone());
    }
    if let Ok(value) = HeaderValue::try_from(full_url) {
        headers.insert(FULL_URL, value);
    }
    if let Ok(value) = HeaderValue::try_from(&route.path_info) {
        headers.insert(PATH_INFO, value);
    }
    if let Ok(value) = HeaderValue::try_from(peer.to_string()) {
        headers.insert(CLIENT_ADDR, value);
    }
    if let Ok(value) = HeaderValue::try_from(client.to_string()) {
        headers.insert(CLIENT_ADDRESS, value);
    }
    for (name, (_, value)) in fixed.captures.iter().zip(&route.captures) {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name.clone(), value);
        }
    }
}

fn remove_spin_headers(headers: &mut HeaderMap) {
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with(SPIN_HEADER_PREFIX))
    {
        return;
    }
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(SPIN_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Router;

    #[test]
    fn sets_the_spin_headers_of_the_compat_example() {
        let pattern = RoutePattern::parse("/", "/base/:path_segment/:path_end/...").unwrap();
        let fixed = RouteHeaders::new(&pattern);
        let router = Router::new(vec![(pattern, ())]);
        let route = router.route("/base/path/end/rest").unwrap();
        let (mut parts, ()) = http::Request::get("/base/path/end/rest?key=value")
            .header("host", "example.com")
            .header("spin-path-info", "forged")
            .header("spin-anything", "forged")
            .body(())
            .unwrap()
            .into_parts();
        prepare(
            &mut parts,
            &route,
            &fixed,
            "127.0.0.1:4000".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
            "http",
        );
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            parts.uri.to_string(),
            "http://example.com/base/path/end/rest?key=value"
        );
        assert_eq!(
            h("spin-full-url").unwrap(),
            "http://example.com/base/path/end/rest?key=value"
        );
        assert_eq!(h("spin-path-info").unwrap(), "/rest");
        assert_eq!(h("spin-base-path").unwrap(), "/");
        assert_eq!(
            h("spin-component-route").unwrap(),
            "/base/:path_segment/:path_end"
        );
        assert_eq!(
            h("spin-raw-component-route").unwrap(),
            "/base/:path_segment/:path_end/..."
        );
        assert_eq!(
            h("spin-matched-route").unwrap(),
            "/base/:path_segment/:path_end/..."
        );
        assert_eq!(h("spin-path-match-path-segment").unwrap(), "path");
        assert_eq!(h("spin-path-match-path-end").unwrap(), "end");
        assert_eq!(h("spin-client-addr").unwrap(), "127.0.0.1:4000");
        assert_eq!(h("ledge-client-addr").unwrap(), "203.0.113.7");
        assert_eq!(h("spin-anything"), None);
        let spin_headers = parts
            .headers
            .keys()
            .filter(|n| n.as_str().starts_with("spin-"))
            .count();
        assert_eq!(spin_headers, 9);
    }
}
