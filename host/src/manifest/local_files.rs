//! Every local file an app reads, so that the app can travel as a bundle: the manifest, each
//! component's `.wasm`, its `files`, and the files `[application.tool.ledge]` names (API-key
//! and HMAC key files, JWKS files, request schemas). Components fetched by URL are not local:
//! the manifest keeps their URL and digest, and whoever serves the bundle fetches them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{App, FileMount, ManifestError};

impl App {
    /// The local files this app reads, as paths relative to its root directory. A file outside
    /// that directory cannot travel with the app, which is an error naming it.
    pub fn local_files(&self) -> Result<BTreeSet<PathBuf>, ManifestError> {
        let mut found = Found {
            root: &self.root_dir,
            files: BTreeSet::new(),
        };
        found.file(&self.manifest_path, "the manifest")?;
        for component in self.components.values() {
            let what = format!("component `{}`", component.id);
            if component.remote.is_none() && component.source.is_file() {
                found.file(&component.source, &what)?;
            }
            for mount in &component.files {
                match mount {
                    FileMount::Placement { source, .. } => {
                        found.tree(&self.root_dir.join(source), &what)?;
                    }
                    FileMount::Pattern(pattern) => {
                        let full = self.root_dir.join(pattern);
                        let matches = glob::glob(&full.to_string_lossy()).map_err(|e| {
                            ManifestError::file(
                                &self.manifest_path,
                                format!("{what}: `{pattern}`: {e}"),
                            )
                        })?;
                        for path in matches.flatten() {
                            found.tree(&path, &what)?;
                        }
                    }
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(&self.manifest_path)
            && let Ok(manifest) = text.parse::<toml::Table>()
            && let Some(ledge) = manifest
                .get("application")
                .and_then(|a| a.get("tool"))
                .and_then(|t| t.get("ledge"))
        {
            found.named_in(ledge)?;
        }
        Ok(found.files)
    }
}

/// The files found so far, relative to `root`.
struct Found<'a> {
    root: &'a Path,
    files: BTreeSet<PathBuf>,
}

impl Found<'_> {
    /// Adds one file, which must lie under the root.
    fn file(&mut self, path: &Path, what: &str) -> Result<(), ManifestError> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let relative = absolute
            .strip_prefix(self.root)
            .ok()
            .filter(|relative| {
                relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            })
            .ok_or_else(|| {
                ManifestError::file(
                    path,
                    format!(
                        "{what} reads this file, which is outside the app directory {}, so it \
                         cannot travel with the app",
                        self.root.display()
                    ),
                )
                .fix("move it under the app directory and point the manifest at the new path")
            })?;
        self.files.insert(relative.to_owned());
        Ok(())
    }

    /// Adds a file, or every file under a directory.
    fn tree(&mut self, path: &Path, what: &str) -> Result<(), ManifestError> {
        if path.is_file() {
            return self.file(path, what);
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            self.tree(&entry.path(), what)?;
        }
        Ok(())
    }

    /// Adds each string in the `[application.tool.ledge]` table that names a file under the
    /// root: the keys that take a path are the policies' own, so any such string may be one.
    fn named_in(&mut self, value: &toml::Value) -> Result<(), ManifestError> {
        match value {
            toml::Value::String(text) => {
                let path = self.root.join(text);
                if !text.is_empty() && path.is_file() {
                    self.file(&path, "[application.tool.ledge]")?;
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    self.named_in(item)?;
                }
            }
            toml::Value::Table(table) => {
                for item in table.values() {
                    self.named_in(item)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
