//! Static files served by the host, for a component marked `static_files` (the S3 + CDN role
//! of a single-page app): its `files` mounts answer `GET` and `HEAD` with `index.html` for
//! directories, `ETag` / `Last-Modified` and `304 Not Modified`, byte ranges, the app's
//! `Cache-Control`, an optional single-page-app fallback and custom 404 page. Resolution,
//! conditional dates and ranges come from `hyper-staticfile`; this module adds what it leaves
//! out (`If-None-Match`, the fallbacks, the 416 `Content-Range`) and keeps every answer inside
//! the mounted directories, symbolic links included.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper_staticfile::util::FileResponseBuilder;
use hyper_staticfile::{AcceptEncoding, ResolveResult, ResolvedFile, Resolver};
use wasmtime_wasi_http::WasiBody;

use crate::manifest::StaticFiles;
use crate::reply::text;

/// One mounted directory: requests under `guest_path` read files below `root`.
struct Mount {
    /// Where the files appear to the component, `/` or `/assets` (no trailing `/`).
    guest_path: String,
    /// The directory on the host, canonical (so escapes can be told apart).
    root: PathBuf,
    resolver: Resolver,
}

/// The files of one static-files component.
pub struct FileServer {
    /// Longest guest path first, so the most specific mount answers.
    mounts: Vec<Mount>,
    settings: StaticFiles,
    cache_control: HeaderValue,
}

/// What a lookup found.
enum Lookup {
    File(ResolvedFile),
    Redirect,
    Missing,
}

impl FileServer {
    /// Serves `mounts` (host directory, guest path), as `files::mounts` stages them.
    pub fn new(mounts: Vec<(PathBuf, String)>, settings: StaticFiles) -> Result<Self> {
        let mut mounts = mounts
            .into_iter()
            .map(|(directory, guest_path)| {
                let root = directory
                    .canonicalize()
                    .with_context(|| format!("cannot serve {}", directory.display()))?;
                Ok(Mount {
                    guest_path: guest_path.trim_end_matches('/').to_string(),
                    resolver: Resolver::new(root.clone()),
                    root,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.guest_path.len()));
        let cache_control = HeaderValue::from_str(&settings.cache_control)
            .context("static_files.cache_control is not a header value")?;
        Ok(Self {
            mounts,
            settings,
            cache_control,
        })
    }

    /// Answers a request for `path` (the path below the route).
    pub async fn serve(&self, parts: &http::request::Parts, path: &str) -> Response<WasiBody> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed: static files answer GET and HEAD",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match self.lookup(path).await {
            Lookup::File(file) => self.respond(parts, file, StatusCode::OK),
            Lookup::Redirect => {
                let mut location = format!("{}/", parts.uri.path());
                if let Some(query) = parts.uri.query() {
                    location = format!("{location}?{query}");
                }
                let mut response = text(StatusCode::MOVED_PERMANENTLY, "Moved Permanently");
                if let Ok(location) = HeaderValue::try_from(location) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Lookup::Missing => self.missing(parts).await,
        }
    }

    /// The answer for a path with no file: the fallback page, the custom 404 page, or 404.
    async fn missing(&self, parts: &http::request::Parts) -> Response<WasiBody> {
        if let Some(fallback) = &self.settings.fallback
            && let Lookup::File(file) = self.lookup(&format!("/{fallback}")).await
        {
            return self.respond(parts, file, StatusCode::OK);
        }
        if let Some(page) = &self.settings.not_found
            && let Lookup::File(file) = self.lookup(&format!("/{page}")).await
        {
            // Without conditions or ranges: those are about the page the client asked for.
            let plain = http::Request::builder()
                .method(parts.method.clone())
                .body(())
                .map(|request| request.into_parts().0);
            if let Ok(plain) = plain {
                return self.respond(&plain, file, StatusCode::NOT_FOUND);
            }
        }
        text(StatusCode::NOT_FOUND, "Not Found")
    }

    /// Finds `path` in the most specific mount that holds it.
    async fn lookup(&self, path: &str) -> Lookup {
        for mount in &self.mounts {
            let Some(below) = path.strip_prefix(&mount.guest_path) else {
                continue;
            };
            if !(below.is_empty() || below.starts_with('/')) {
                continue;
            }
            let below = if below.is_empty() { "/" } else { below };
            match mount
                .resolver
                .resolve_path(below, AcceptEncoding::none())
                .await
            {
                Ok(ResolveResult::Found(file)) => {
                    // A symbolic link may point anywhere: serve only what lies in the mount.
                    let inside = tokio::fs::canonicalize(mount.root.join(&file.path))
                        .await
                        .is_ok_and(|real| real.starts_with(&mount.root));
                    if inside {
                        return Lookup::File(file);
                    }
                    tracing::warn!("refused {path}: it leads out of {}", mount.root.display());
                    return Lookup::Missing;
                }
                Ok(ResolveResult::IsDirectory { .. }) => return Lookup::Redirect,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!("cannot read {path} in {}: {error}", mount.root.display());
                }
            }
        }
        Lookup::Missing
    }

    /// The response for `file`, honouring the request's conditions and range.
    fn respond(
        &self,
        parts: &http::request::Parts,
        file: ResolvedFile,
        status: StatusCode,
    ) -> Response<WasiBody> {
        let size = file.size;
        let built = FileResponseBuilder::new()
            .request_parts(&parts.method, &parts.headers)
            .build(file);
        let mut response = match built {
            Ok(response) => response.map(|body| {
                body.map_err(|error| {
                    tracing::warn!("a static file could not be read to the end: {error}");
                    wasmtime_wasi_http::Error::HttpResponseIncomplete
                })
                .boxed_unsync()
            }),
            Err(error) => {
                tracing::error!("cannot answer with a static file: {error}");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        if response.status() == StatusCode::OK && status != StatusCode::OK {
            *response.status_mut() = status;
        }
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            if let Ok(range) = HeaderValue::try_from(format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, range);
            }
            return response;
        }
        if response.status().is_success() && none_match(parts, response.headers()) {
            return not_modified(response);
        }
        response
    }
}

/// Whether the request's `If-None-Match` names the response's `ETag` (weak comparison).
fn none_match(parts: &http::request::Parts, headers: &http::HeaderMap) -> bool {
    let (Some(condition), Some(etag)) = (
        parts.headers.get(header::IF_NONE_MATCH),
        headers.get(header::ETAG),
    ) else {
        return false;
    };
    let (Ok(condition), Ok(etag)) = (condition.to_str(), etag.to_str()) else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let etag = opaque(etag);
    condition
        .split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == etag)
}

/// `304 Not Modified` with the validators and caching headers of `response`, and no body.
fn not_modified(response: Response<WasiBody>) -> Response<WasiBody> {
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::CONTENT_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::from_parts(parts, empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_static("W/\"64-1\""));
        assert!(none_match(
            &request(&[("if-none-match", "W/\"64-1\"")]),
            &headers
        ));
        assert!(none_match(
            &request(&[("if-none-match", "\"x\", \"64-1\"")]),
            &headers
        ));
        assert!(none_match(&request(&[("if-none-match", "*")]), &headers));
        assert!(!none_match(
            &request(&[("if-none-match", "\"65-1\"")]),
            &headers
        ));
        assert!(!none_match(&request(&[]), &headers));
    }

    #[test]
    fn the_most_specific_mount_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StaticFiles {
            fallback: None,
            not_found: None,
            cache_control: "no-cache".into(),
        };
        let server = FileServer::new(
            vec![
                (dir.path().to_path_buf(), "/".into()),
                (dir.path().to_path_buf(), "/assets/".into()),
            ],
            settings,
        )
        .unwrap();
        assert_eq!(server.mounts[0].guest_path, "/assets");
        assert_eq!(server.mounts[1].guest_path, "");
        assert_eq!(server.mounts[0].root, dir.path().canonicalize().unwrap());
    }
}
