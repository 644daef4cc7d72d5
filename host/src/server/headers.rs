//! The request the guest sees: an absolute URI and the `spin-*` headers, exactly as Spin sets
//! them (and no other `spin-*` header: copies sent by the client are removed, so a guest can
//! trust them).

use std::net::SocketAddr;

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::router::RouteMatch;

/// Prefix of the headers the host owns.
const SPIN_HEADER_PREFIX: &str = "spin-";

/// Rewrites `parts` in place for the guest: absolute URI, and the `spin-*` headers of `route`.
pub fn prepare<T>(
    parts: &mut http::request::Parts,
    route: &RouteMatch<'_, T>,
    client: SocketAddr,
    scheme: &str,
) {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let full_url = format!("{scheme}://{host}{path_and_query}");
    if let Ok(uri) = full_url.parse::<Uri>() {
        parts.uri = uri;
    }

    let headers = &mut parts.headers;
    remove_spin_headers(headers);
    let pattern = route.route;
    set(headers, "spin-full-url", &full_url);
    set(headers, "spin-path-info", &route.path_info);
    set(headers, "spin-matched-route", pattern.based());
    set(headers, "spin-base-path", pattern.base());
    set(headers, "spin-raw-component-route", pattern.raw());
    set(
        headers,
        "spin-component-route",
        pattern.raw_without_wildcard(),
    );
    set(headers, "spin-client-addr", &client.to_string());
    for (name, value) in &route.captures {
        let name = format!(
            "spin-path-match-{}",
            name.replace('_', "-").to_ascii_lowercase()
        );
        set(headers, &name, value);
    }
}

fn remove_spin_headers(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(SPIN_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    // Values come from the request line and the manifest; one that is not a valid header value
    // (it cannot be after hyper parsed the request) is left out rather than failing the request.
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{RoutePattern, Router};

    #[test]
    fn sets_the_spin_headers_of_the_compat_example() {
        let router = Router::new(vec![(
            RoutePattern::parse("/", "/base/:path_segment/:path_end/...").unwrap(),
            (),
        )]);
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
            "127.0.0.1:4000".parse().unwrap(),
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
        assert_eq!(h("spin-anything"), None);
        let spin_headers = parts
            .headers
            .keys()
            .filter(|n| n.as_str().starts_with("spin-"))
            .count();
        assert_eq!(spin_headers, 9);
    }
}
