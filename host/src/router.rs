//! Spin's HTTP routing rules.
//!
//! A route is a path of literal segments and `:name` segments, optionally ending in `/...`,
//! which matches that prefix and everything below it. When several routes match a path, a route
//! without `/...` wins over one with it; among wildcard routes the longest prefix wins; and at
//! equal length a literal segment beats a `:name` at the first position where they differ.
//! The app's base path (`application.trigger.http.base`) is prefixed to every route.
//!
//! No routing crate implements these rules as Spin does (trailing-slash handling, path-info of
//! `/foo` vs `/foo/`), so the matcher is kept here, small and unit-tested.

use std::cmp::Ordering;

/// One parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// The route as written in the manifest.
    raw: String,
    /// Base plus route, with a single trailing `/` removed (`/` for the root).
    based: String,
    /// The base the route was parsed under.
    base: String,
    /// The segments before any `/...`.
    segments: Vec<Segment>,
    /// Whether the route ends in `/...`.
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl RoutePattern {
    /// Parses `raw` under `base`, or says what is wrong with it.
    pub fn parse(base: &str, raw: &str) -> Result<Self, String> {
        let absolute = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let trimmed_base = base.strip_suffix('/').unwrap_or(base);
        let route = absolute
            .strip_suffix('/')
            .filter(|r| !r.is_empty())
            .unwrap_or(&absolute);
        let mut based = format!("{trimmed_base}{route}");
        if based.len() > 1 && based.ends_with('/') {
            based.pop();
        }
        if based.is_empty() {
            based.push('/');
        }
        let (prefix, wildcard) = match based.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None => (based.as_str(), false),
        };
        let mut segments = Vec::new();
        for segment in prefix.split('/').skip(1) {
            if segment.is_empty() {
                if prefix == "/" {
                    continue;
                }
                return Err(format!("the route `{raw}` has an empty segment (`//`)"));
            }
            if segment.contains("...") {
                return Err(format!(
                    "in the route `{raw}`, `...` may only be the last segment"
                ));
            }
            if let Some(name) = segment.strip_prefix(':') {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "in the route `{raw}`, `{segment}` is not a valid parameter (use `:name`)"
                    ));
                }
                segments.push(Segment::Param(name.to_string()));
            } else {
                if segment.contains(['*', '?', '#', ':']) {
                    return Err(format!(
                        "the route `{raw}` has a segment `{segment}` with a reserved character"
                    ));
                }
                segments.push(Segment::Literal(segment.to_string()));
            }
        }
        Ok(Self {
            raw: raw.to_string(),
            based,
            base: base.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Base plus route (`spin-matched-route`).
    pub fn based(&self) -> &str {
        &self.based
    }

    /// The route as written, without a trailing `/...` (`spin-component-route`).
    pub fn raw_without_wildcard(&self) -> &str {
        match self.raw.strip_suffix("/...") {
            Some("") => "",
            Some(prefix) => prefix,
            None => &self.raw,
        }
    }

    /// The app base this route lives under (`spin-base-path`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The names of the route's `:name` segments, in order.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches `path` (no query), returning the `:name` captures and the path-info.
    fn matches(&self, path: &str) -> Option<(Vec<(String, String)>, String)> {
        let mut rest = path;
        let mut captures = Vec::new();
        for segment in &self.segments {
            let after_slash = rest.strip_prefix('/')?;
            let end = after_slash.find('/').unwrap_or(after_slash.len());
            let (value, tail) = after_slash.split_at(end);
            match segment {
                Segment::Literal(literal) if literal == value => {}
                Segment::Param(name) if !value.is_empty() => {
                    captures.push((name.clone(), value.to_string()))
                }
                _ => return None,
            }
            rest = tail;
        }
        if self.wildcard {
            Some((captures, rest.to_string()))
        } else if rest.is_empty() || rest == "/" {
            Some((captures, String::new()))
        } else {
            None
        }
    }

    /// Orders two matching routes: `Greater` means `self` is the better match.
    fn precedence(&self, other: &Self) -> Ordering {
        (!self.wildcard)
            .cmp(&!other.wildcard)
            .then(self.segments.len().cmp(&other.segments.len()))
            .then_with(|| {
                for (mine, theirs) in self.segments.iter().zip(&other.segments) {
                    let rank = |s: &Segment| matches!(s, Segment::Literal(_)) as u8;
                    match rank(mine).cmp(&rank(theirs)) {
                        Ordering::Equal => continue,
                        decided => return decided,
                    }
                }
                Ordering::Equal
            })
    }
}

/// The routes of an app, each leading to a target `T` (a component or a static response).
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

/// The outcome of routing one path.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The route that won.
    pub route: &'a RoutePattern,
    /// What it leads to.
    pub target: &'a T,
    /// `:name` captures, in route order.
    pub captures: Vec<(String, String)>,
    /// The part of the path below a `/...` route (`spin-path-info`).
    pub path_info: String,
}

impl<T> Router<T> {
    /// A router over `routes`.
    pub fn new(routes: Vec<(RoutePattern, T)>) -> Self {
        Self { routes }
    }

    /// The routes, in manifest order.
    pub fn routes(&self) -> impl Iterator<Item = &(RoutePattern, T)> {
        self.routes.iter()
    }

    /// The best route for `path` (which must not carry the query).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let mut best: Option<RouteMatch<'_, T>> = None;
        for (route, target) in &self.routes {
            let Some((captures, path_info)) = route.matches(path) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|b| route.precedence(b.route) == Ordering::Greater)
            {
                best = Some(RouteMatch {
                    route,
                    target,
                    captures,
                    path_info,
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(base: &str, routes: &[&'static str]) -> Router<&'static str> {
        Router::new(
            routes
                .iter()
                .map(|r| (RoutePattern::parse(base, r).unwrap(), *r))
                .collect(),
        )
    }

    fn target(router: &Router<&'static str>, path: &str) -> Option<&'static str> {
        router.route(path).map(|m| *m.target)
    }

    #[test]
    fn exact_routes_ignore_one_trailing_slash() {
        let r = router("/", &["/foo", "/foo/bar/"]);
        assert_eq!(target(&r, "/foo"), Some("/foo"));
        assert_eq!(target(&r, "/foo/"), Some("/foo"));
        assert_eq!(target(&r, "/foo/bar"), Some("/foo/bar/"));
        assert_eq!(target(&r, "/foo/baz"), None);
        assert_eq!(target(&r, "/"), None);
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router("/", &["/...", "/one/...", "/one/two/...", "/one"]);
        assert_eq!(target(&r, "/one"), Some("/one"));
        assert_eq!(target(&r, "/one/x"), Some("/one/..."));
        assert_eq!(target(&r, "/one/two/three"), Some("/one/two/..."));
        assert_eq!(target(&r, "/other"), Some("/..."));
        assert_eq!(target(&r, "/"), Some("/..."));
    }

    #[test]
    fn literal_beats_parameter() {
        let r = router("/", &["/users/:id", "/users/me"]);
        assert_eq!(target(&r, "/users/me"), Some("/users/me"));
        assert_eq!(target(&r, "/users/42"), Some("/users/:id"));
        assert_eq!(target(&r, "/users/"), None);
    }

    #[test]
    fn path_info_follows_spin() {
        let r = router("/", &["/foo/..."]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/foo"), "");
        assert_eq!(info("/foo/"), "/");
        assert_eq!(info("/foo/bar/"), "/bar/");
        assert_eq!(info("/foo/bar/baz"), "/bar/baz");
        assert_eq!(target(&r, "/foobar"), None);
    }

    #[test]
    fn captures_and_route_names() {
        let r = router("/", &["/base/:path_segment/:path_end/..."]);
        let m = r.route("/base/path/end/rest").unwrap();
        assert_eq!(m.path_info, "/rest");
        assert_eq!(
            m.captures,
            vec![
                ("path_segment".into(), "path".into()),
                ("path_end".into(), "end".into())
            ]
        );
        assert_eq!(
            m.route.raw_without_wildcard(),
            "/base/:path_segment/:path_end"
        );
        assert_eq!(m.route.based(), "/base/:path_segment/:path_end/...");
    }

    #[test]
    fn base_path_prefixes_every_route() {
        let r = router("/api", &["/hello", "/..."]);
        assert_eq!(target(&r, "/api/hello"), Some("/hello"));
        assert_eq!(target(&r, "/api/x"), Some("/..."));
        assert_eq!(target(&r, "/hello"), None);
        assert_eq!(r.route("/api/hello").unwrap().route.based(), "/api/hello");
    }

    #[test]
    fn bad_routes_are_explained() {
        assert!(
            RoutePattern::parse("/", "/a/.../b")
                .unwrap_err()
                .contains("last segment")
        );
        assert!(
            RoutePattern::parse("/", "/a/:")
                .unwrap_err()
                .contains("parameter")
        );
        assert!(
            RoutePattern::parse("/", "/a//b")
                .unwrap_err()
                .contains("empty")
        );
        assert!(RoutePattern::parse("/", "/a*").is_err());
        assert_eq!(RoutePattern::parse("/", "/").unwrap().based(), "/");
        assert_eq!(RoutePattern::parse("/", "hello").unwrap().based(), "/hello");
    }
}
