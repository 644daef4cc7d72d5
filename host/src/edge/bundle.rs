//! Bundles: an app as one content-addressed archive (a tar of its manifest, components and
//! files, see [`App::local_files`]), named by its SHA-256. Packing is deterministic (sorted
//! paths, no times or owners), so the same app packs to the same digest and deploying it again
//! changes nothing. A node unpacks a bundle only after checking its digest, into a fresh
//! directory renamed into place, so nothing is ever served from a half-written bundle.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::manifest::App;

/// The bundle format this ledge writes and the newest it reads.
pub const FORMAT: u32 = 1;
/// The first entry of every bundle: its [`Index`].
const INDEX: &str = "ledge-bundle.json";

/// What a bundle says about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    /// The format it was written in.
    format: u32,
    /// The app's name.
    app: String,
    /// The manifest, relative to the bundle's root.
    manifest: PathBuf,
}

/// A packed app.
pub struct Bundle {
    /// The archive.
    pub bytes: Vec<u8>,
    /// Its SHA-256, in hex.
    pub digest: String,
}

/// Packs `app` with every local file it reads.
pub fn pack(app: &App) -> Result<Bundle> {
    let files = app.local_files()?;
    let manifest = app
        .manifest_path
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("{}: not a file", app.manifest_path.display()))?;
    let index = Index {
        format: FORMAT,
        app: app.name.clone(),
        manifest,
    };
    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, Path::new(INDEX), &serde_json::to_vec(&index)?)?;
    for relative in &files {
        let path = app.root_dir.join(relative);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read {} to pack it", path.display()))?;
        append(&mut archive, relative, &bytes)?;
    }
    let bytes = archive.into_inner()?;
    let digest = hex::encode(Sha256::digest(&bytes));
    Ok(Bundle { bytes, digest })
}

/// Adds one file with fixed metadata, so equal files pack to equal bytes.
fn append(archive: &mut tar::Builder<Vec<u8>>, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    archive
        .append_data(&mut header, path, bytes)
        .with_context(|| format!("cannot pack {}", path.display()))
}

/// Checks `bytes` against `digest` and unpacks them into `<bundles>/<digest>` (kept if it is
/// already there). Returns the manifest's path in it.
pub fn unpack(bytes: &[u8], digest: &str, bundles: &Path) -> Result<PathBuf> {
    check_digest(digest)?;
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != digest {
        bail!(
            "bundle {digest} is corrupted: its content hashes to {actual}; it is not served \
             (`ledge deploy` uploads it again)"
        );
    }
    let target = bundles.join(digest);
    if !target.exists() {
        let partial = bundles.join(format!("{digest}.partial"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries()? {
            let mut entry = entry?;
            // A bundle holds files and directories only: a link could point a component or
            // a mounted file anywhere on the node.
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_dir()) {
                bail!("bundle {digest}: an entry is not a plain file; it is not served");
            }
            if !entry.unpack_in(&partial)? {
                bail!("bundle {digest}: an entry points outside the bundle; it is not served");
            }
        }
        std::fs::rename(&partial, &target)
            .with_context(|| format!("cannot move the bundle into {}", target.display()))?;
    }
    manifest_in(&target, digest)
}

/// The manifest of the bundle unpacked in `dir`, after checking its format.
pub fn manifest_in(dir: &Path, digest: &str) -> Result<PathBuf> {
    check_digest(digest)?;
    let mut text = String::new();
    std::fs::File::open(dir.join(INDEX))
        .and_then(|mut file| file.read_to_string(&mut text))
        .with_context(|| format!("bundle {digest}: no {INDEX}"))?;
    let index: Index =
        serde_json::from_str(&text).with_context(|| format!("bundle {digest}: {INDEX}"))?;
    if index.format > FORMAT {
        bail!(
            "bundle {digest} of app `{}` is in format {}, newer than this ledge reads ({FORMAT}).\n  \
             fix: upgrade ledge on this node",
            index.app,
            index.format
        );
    }
    let plain = index.manifest.components().count() == 1
        && matches!(
            index.manifest.components().next(),
            Some(std::path::Component::Normal(_))
        );
    if !plain {
        bail!("bundle {digest}: its manifest is not a file at its root; it is not served");
    }
    Ok(dir.join(index.manifest))
}

/// Checks that `digest` is a SHA-256 in hex, as a bundle's name must be (it names a directory).
pub fn check_digest(digest: &str) -> Result<()> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{digest}` is not a bundle digest (64 hex digits); it is not served");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spin.toml"),
            "spin_manifest_version = 2\n[application]\nname = \"packed\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
             [component.web]\nsource = \"web.wasm\"\nfiles = [\"static/**/*\"]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("web.wasm"), b"\0asm not really").unwrap();
        std::fs::create_dir_all(dir.path().join("static/css")).unwrap();
        std::fs::write(dir.path().join("static/css/site.css"), "body {}").unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), "left out").unwrap();
        dir
    }

    #[test]
    fn a_bundle_holds_what_the_app_reads_and_unpacks_to_the_same_files() {
        let dir = app_dir();
        let app = App::load(&dir.path().join("spin.toml")).unwrap();
        let bundle = pack(&app).unwrap();
        assert_eq!(bundle.digest, pack(&app).unwrap().digest, "deterministic");
        let bundles = tempfile::tempdir().unwrap();
        let manifest = unpack(&bundle.bytes, &bundle.digest, bundles.path()).unwrap();
        let root = manifest.parent().unwrap();
        assert_eq!(manifest, root.join("spin.toml"));
        assert_eq!(
            std::fs::read(root.join("web.wasm")).unwrap(),
            b"\0asm not really"
        );
        assert!(root.join("static/css/site.css").is_file());
        assert!(!root.join("unrelated.txt").exists());
    }

    #[test]
    fn a_corrupted_bundle_is_refused_and_nothing_is_unpacked() {
        let dir = app_dir();
        let app = App::load(&dir.path().join("spin.toml")).unwrap();
        let mut bundle = pack(&app).unwrap();
        let last = bundle.bytes.len() / 2;
        bundle.bytes[last] ^= 1;
        let bundles = tempfile::tempdir().unwrap();
        let error = unpack(&bundle.bytes, &bundle.digest, bundles.path()).unwrap_err();
        assert!(error.to_string().contains("is corrupted"), "{error}");
        assert_eq!(std::fs::read_dir(bundles.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_bundle_in_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index {
            format: FORMAT + 1,
            app: "future".into(),
            manifest: "spin.toml".into(),
        };
        std::fs::write(dir.path().join(INDEX), serde_json::to_vec(&index).unwrap()).unwrap();
        let error = manifest_in(dir.path(), &"a".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(error.contains("newer than this ledge reads"), "{error}");
    }

    #[test]
    fn a_file_outside_the_app_directory_cannot_be_packed() {
        let dir = app_dir();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(
            dir.path().join("app/spin.toml"),
            "spin_manifest_version = 2\n[application]\nname = \"escapes\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
             [component.web]\nsource = \"../web.wasm\"\n",
        )
        .unwrap();
        let app = App::load(&dir.path().join("app/spin.toml")).unwrap();
        let error = pack(&app).err().unwrap().to_string();
        assert!(error.contains("outside the app directory"), "{error}");
    }
}
