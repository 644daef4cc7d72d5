//! Remote component sources: a `source = { url, digest }` is downloaded once into the state
//! directory, checked against its SHA-256 digest, and taken from there on later starts without
//! the network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use sha2::{Digest as _, Sha256};

use crate::manifest::{App, Component, RemoteSource};

/// The longest one download may take, from connecting to the last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Points the `source` of every remote component of `app` at its copy in
/// `state_dir/sources/sha256-<hex>.wasm`, downloading the copies that are missing or damaged.
/// A failed download or a digest that does not match stops start-up, naming the manifest line.
pub async fn fetch_remote_sources(app: &mut App, state_dir: &Path) -> Result<()> {
    let dir = state_dir.join("sources");
    let mut local_copies = Vec::new();
    for component in app.components.values() {
        let Some(remote) = &component.remote else {
            continue;
        };
        let path = local_copy(remote, &dir)
            .await
            .map_err(|problem| problem.explain(&*app, component, remote))?;
        local_copies.push((component.id.clone(), path));
    }
    for (id, path) in local_copies {
        app.components
            .get_mut(&id)
            .expect("the component was just read from this app")
            .source = path;
    }
    Ok(())
}

/// Why a remote source cannot be used.
#[derive(Debug)]
enum FetchError {
    /// The download failed: the connection error, or the status the server answered.
    Unreachable(String),
    /// The downloaded file's SHA-256 (lower-case hex) is not the manifest's.
    DigestMismatch(String),
    /// The file could not be written into the state directory.
    Store(PathBuf, std::io::Error),
}

impl FetchError {
    /// The start-up error: the manifest file and line of `component`'s `source`, and the fix.
    fn explain(self, app: &App, component: &Component, remote: &RemoteSource) -> anyhow::Error {
        let error = app.error_at(
            component.source_line,
            format!("component.{}.source", component.id),
        );
        let url = &remote.url;
        let error = match self {
            Self::Unreachable(why) => error
                .with_message(format!("cannot fetch {url}: {why}"))
                .fix("check the URL and the network, or download the file and set `source` to its path"),
            Self::DigestMismatch(actual) => error
                .with_message(format!(
                    "the file at {url} has digest sha256:{actual}, but the manifest says sha256:{}",
                    remote.sha256
                ))
                .fix("if it is the file you meant, correct the digest; otherwise the file changed or was tampered with"),
            Self::Store(path, io) => error
                .with_message(format!("cannot store {url} as {}: {io}", path.display()))
                .fix("make the state directory writable, or choose another with `--state-dir`"),
        };
        anyhow!(error)
    }
}

/// The verified copy of `remote` in `dir`: the one already there if its digest matches, else
/// a fresh download.
async fn local_copy(remote: &RemoteSource, dir: &Path) -> Result<PathBuf, FetchError> {
    let path = dir.join(format!("sha256-{}.wasm", remote.sha256));
    if let Ok(cached) = tokio::fs::read(&path).await
        && sha256_hex(&cached) == remote.sha256
    {
        return Ok(path);
    }
    let downloaded = download(&remote.url).await?;
    let actual = sha256_hex(&downloaded);
    if actual != remote.sha256 {
        return Err(FetchError::DigestMismatch(actual));
    }
    store(&path, &downloaded)
        .await
        .map_err(|io| FetchError::Store(path.clone(), io))?;
    tracing::info!("fetched {} into {}", remote.url, path.display());
    Ok(path)
}

/// GETs `url`, which must answer with a success status.
async fn download(url: &str) -> Result<bytes::Bytes, FetchError> {
    // The chain of causes ("tcp connect error: Connection refused"), without the URL the
    // message already names.
    let unreachable = |error: reqwest::Error| {
        FetchError::Unreachable(format!("{:#}", anyhow::Error::new(error.without_url())))
    };
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let response = client.get(url).send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Unreachable(format!(
            "the server answered {status}"
        )));
    }
    response.bytes().await.map_err(unreachable)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed into place
/// once complete, so a half-written file is never taken for the real one.
async fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .expect("the copy's path is inside the sources directory");
    tokio::fs::create_dir_all(dir).await?;
    let partial = path.with_extension(format!("wasm.{}.part", std::process::id()));
    let written = match tokio::fs::write(&partial, bytes).await {
        Ok(()) => tokio::fs::rename(&partial, path).await,
        Err(error) => Err(error),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

/// The SHA-256 of `bytes`, in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app whose component `c` comes from `url` with digest `sha256`; `source` is on line 8.
    fn remote_app(dir: &Path, url: &str, sha256: &str) -> App {
        let manifest = dir.join("spin.toml");
        std::fs::write(
            &manifest,
            format!(
                "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
                 [[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n\
                 [component.c]\nsource = {{ url = \"{url}\", digest = \"sha256:{sha256}\" }}\n"
            ),
        )
        .unwrap();
        App::load(&manifest).unwrap()
    }

    /// A loopback URL nothing listens on.
    fn unreachable_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{address}/c.wasm")
    }

    #[test]
    fn hashes_are_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_verified_copy_in_the_state_dir_is_used_without_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = b"\0asm pretend component";
        let sha256 = sha256_hex(wasm);
        let copy = dir
            .path()
            .join(format!("state/sources/sha256-{sha256}.wasm"));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, wasm).unwrap();

        let mut app = remote_app(dir.path(), &unreachable_url(), &sha256);
        fetch_remote_sources(&mut app, &dir.path().join("state"))
            .await
            .unwrap();
        assert_eq!(app.components["c"].source, copy);
        app.check_sources().unwrap();
    }

    #[tokio::test]
    async fn a_damaged_copy_is_fetched_again_and_a_failed_fetch_names_the_line_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let sha256 = sha256_hex(b"the real component");
        let copy = dir
            .path()
            .join(format!("state/sources/sha256-{sha256}.wasm"));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, b"half of it").unwrap();

        let url = unreachable_url();
        let mut app = remote_app(dir.path(), &url, &sha256);
        let error = fetch_remote_sources(&mut app, &dir.path().join("state"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("spin.toml:8")
                && error.contains("component.c.source")
                && error.contains(&format!("cannot fetch {url}: "))
                && error.contains("fix: check the URL and the network"),
            "{error}"
        );
        assert_eq!(app.components["c"].source, PathBuf::new());
    }

    #[test]
    fn a_digest_mismatch_names_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let app = remote_app(dir.path(), "https://example.com/c.wasm", &"ab".repeat(32));
        let component = &app.components["c"];
        let remote = component.remote.as_ref().unwrap();
        let error = FetchError::DigestMismatch("cd".repeat(32))
            .explain(&app, component, remote)
            .to_string();
        assert!(
            error.contains(&format!(
                "the file at https://example.com/c.wasm has digest sha256:{}, but the manifest says sha256:{}",
                "cd".repeat(32),
                "ab".repeat(32)
            )) && error.contains("fix: if it is the file you meant, correct the digest"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_stored_copy_replaces_any_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources/sha256-x.wasm");
        store(&path, b"first").await.unwrap();
        store(&path, b"second").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["sha256-x.wasm"],
            "no partial file is left behind"
        );
    }
}
