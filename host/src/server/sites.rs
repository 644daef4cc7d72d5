//! Custom domains: the apps sharing one listener, each chosen by the request's `Host` and base
//! path (`api.example.com/v1` -> app A), the way an API gateway maps custom domain names. The
//! base path is cut off before the app routes the request, so an app written for `/` runs
//! unchanged under `/v1`; `spin-full-url` still shows the URL the client asked for.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiBody;

use super::request::{AppService, Peer};
use crate::manifest::DomainMapping;
use crate::reply::text;

/// One app to serve, with the domains its manifest claims.
pub struct Site {
    /// The manifest it was read from, to name it in errors.
    pub manifest: PathBuf,
    /// `[application.tool.ledge] domains`; empty for the app answering every other host.
    pub domains: Vec<DomainMapping>,
    /// The app.
    pub service: Arc<AppService>,
}

/// The apps a listener serves now. `ledge node` replaces them whole when an app changes
/// version: requests in flight finish on the apps they started with, new ones get the new set.
pub struct SiteTable(arc_swap::ArcSwap<Sites>);

impl SiteTable {
    /// A table serving `sites`.
    pub fn new(sites: Sites) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(sites))
    }

    /// The apps a new request goes to.
    pub fn current(&self) -> Arc<Sites> {
        self.0.load_full()
    }

    /// Serves `sites` from the next request on.
    pub fn replace(&self, sites: Sites) {
        self.0.store(Arc::new(sites));
    }
}

/// The base path a request was mapped under, kept in its extensions so the guest's
/// `spin-full-url` can show the URL as the client sent it.
#[derive(Clone, Debug)]
pub struct MappedBase(pub Arc<str>);

/// Every app on a listener, ready to pick one per request.
pub struct Sites {
    /// Mappings, most specific first: exact hosts before wildcards, longer wildcards and
    /// longer base paths first.
    mapped: Vec<(DomainMapping, Arc<str>, Arc<AppService>)>,
    /// The app without `domains`, answering whatever no mapping claims.
    fallback: Option<Arc<AppService>>,
}

impl Sites {
    /// Checks that no two apps claim the same domain and that at most one claims none.
    pub fn new(sites: Vec<Site>) -> Result<Self> {
        let mut mapped: Vec<(DomainMapping, Arc<str>, Arc<AppService>, PathBuf)> = Vec::new();
        let mut fallback: Option<(Arc<AppService>, PathBuf)> = None;
        for site in sites {
            if site.domains.is_empty() {
                if let Some((_, first)) = &fallback {
                    bail!(
                        "{} and {} both list no `domains`, so both would answer every host.\n  \
                         fix: give one of them `domains = [\"host/base-path\"]` under \
                         [application.tool.ledge]",
                        first.display(),
                        site.manifest.display()
                    );
                }
                fallback = Some((site.service, site.manifest));
                continue;
            }
            for domain in site.domains {
                if let Some((_, _, _, first)) = mapped.iter().find(|(d, ..)| *d == domain) {
                    bail!(
                        "{} and {} both claim the domain `{domain}`.\n  \
                         fix: remove it from one of them, or give each its own base path",
                        first.display(),
                        site.manifest.display()
                    );
                }
                let base = Arc::from(domain.base_path.as_str());
                mapped.push((domain, base, site.service.clone(), site.manifest.clone()));
            }
        }
        mapped.sort_by_key(|(domain, ..)| {
            let wildcard = domain.host.starts_with("*.");
            (
                wildcard,
                std::cmp::Reverse(domain.host.len()),
                std::cmp::Reverse(domain.base_path.len()),
            )
        });
        Ok(Self {
            mapped: mapped
                .into_iter()
                .map(|(domain, base, service, _)| (domain, base, service))
                .collect(),
            fallback: fallback.map(|(service, _)| service),
        })
    }

    /// Each app with the domains it answers (none for the fallback), in mapping order.
    pub fn apps(&self) -> Vec<(Arc<AppService>, Vec<&DomainMapping>)> {
        let mut apps: Vec<(Arc<AppService>, Vec<&DomainMapping>)> = Vec::new();
        for (domain, _, service) in &self.mapped {
            match apps.iter_mut().find(|(s, _)| Arc::ptr_eq(s, service)) {
                Some((_, domains)) => domains.push(domain),
                None => apps.push((service.clone(), vec![domain])),
            }
        }
        apps.extend(self.fallback.clone().map(|service| (service, Vec::new())));
        apps
    }

    /// Answers one request with the app its host and path are mapped to.
    pub async fn handle(&self, mut request: Request<Incoming>, peer: &Peer) -> Response<WasiBody> {
        if self.mapped.is_empty()
            && let Some(app) = &self.fallback
        {
            return app.handle(request, peer).await;
        }
        let host = request_host(&request);
        let path = request.uri().path();
        let chosen = self.mapped.iter().find(|(domain, _, _)| {
            host_matches(&domain.host, &host) && under_base(path, &domain.base_path)
        });
        match chosen {
            Some((_, base, app)) => {
                if !base.is_empty() {
                    strip_base(&mut request, base);
                }
                app.handle(request, peer).await
            }
            None => match &self.fallback {
                Some(app) => app.handle(request, peer).await,
                None => text(
                    StatusCode::NOT_FOUND,
                    &format!("Not Found: no app is mapped to `{host}{path}`"),
                ),
            },
        }
    }
}

/// The host the client asked for, lower case and without a port.
fn request_host<B>(request: &Request<B>) -> String {
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("");
    let host = match authority.rsplit_once(':') {
        // `[::1]:3000` and `example.com:3000` lose the port; a bare `[::1]` keeps its colons.
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` is `pattern`, or a subdomain of it when `pattern` is `*.domain`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
        None => pattern == host,
    }
}

/// Whether `path` is `base` or below it (on a segment boundary).
fn under_base(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Cuts `base` off the request's path, remembering it for `spin-full-url`.
fn strip_base<B>(request: &mut Request<B>, base: &Arc<str>) {
    let uri = request.uri();
    let rest = &uri.path()[base.len()..];
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    request.extensions_mut().insert(MappedBase(base.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_as_subdomains_of_a_wildcard() {
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(!host_matches("api.example.com", "example.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }

    #[test]
    fn base_paths_match_on_segment_boundaries() {
        assert!(under_base("/v1", "/v1"));
        assert!(under_base("/v1/tickets", "/v1"));
        assert!(!under_base("/v10/tickets", "/v1"));
        assert!(under_base("/anything", ""));
    }

    #[test]
    fn the_host_loses_its_port_and_case() {
        let request = |host: &str| {
            Request::builder()
                .uri("/x")
                .header("host", host)
                .body(())
                .unwrap()
        };
        assert_eq!(
            request_host(&request("API.Example.com:3000")),
            "api.example.com"
        );
        assert_eq!(request_host(&request("[::1]:3000")), "[::1]");
        assert_eq!(request_host(&request("example.com.")), "example.com");
    }

    #[test]
    fn stripping_keeps_the_query_and_remembers_the_base() {
        let mut request = Request::builder().uri("/v1/tickets?a=1").body(()).unwrap();
        strip_base(&mut request, &Arc::from("/v1"));
        assert_eq!(request.uri().to_string(), "/tickets?a=1");
        assert_eq!(&*request.extensions().get::<MappedBase>().unwrap().0, "/v1");
        let mut request = Request::builder().uri("/v1").body(()).unwrap();
        strip_base(&mut request, &Arc::from("/v1"));
        assert_eq!(request.uri().path(), "/");
    }
}
