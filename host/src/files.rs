//! A component's `files`: what its guest sees, read-only, in its filesystem.
//!
//! A `{ source = "dir", destination = "/path" }` directory is mounted as it is. Globs and single
//! files are copied into a staging directory under the state dir, keeping their paths (globs:
//! relative to the app root; placements: at `destination`), and that directory is mounted at
//! `/`. WASI mounts directories, not files, which is why files are staged.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::manifest::{App, Component, FileMount};

/// The read-only mounts of `component`: (host directory, guest path).
pub fn mounts(
    app: &App,
    component: &Component,
    staging_root: &Path,
) -> Result<Vec<(PathBuf, String)>> {
    let mut mounts = Vec::new();
    let staging = staging_root.join(&component.id);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let excluded: Vec<glob::Pattern> = component
        .exclude_files
        .iter()
        .map(|p| {
            glob::Pattern::new(p)
                .with_context(|| format!("`{p}` in exclude_files is not a valid glob"))
        })
        .collect::<Result<_>>()?;
    let mut staged_any = false;
    for mount in &component.files {
        match mount {
            FileMount::Placement {
                source,
                destination,
            } => {
                let source = app.root_dir.join(source);
                if source.is_dir() {
                    mounts.push((source, destination.clone()));
                } else if source.is_file() {
                    stage(&source, &staging.join(destination.trim_start_matches('/')))?;
                    staged_any = true;
                } else {
                    bail!(
                        "component `{}`: the file mount {} does not exist",
                        component.id,
                        source.display()
                    );
                }
            }
            FileMount::Pattern(pattern) => {
                let full = app.root_dir.join(pattern);
                let matches = glob::glob(&full.to_string_lossy()).with_context(|| {
                    format!(
                        "component `{}`: `{pattern}` in files is not a valid glob",
                        component.id
                    )
                })?;
                for path in matches {
                    let path = path?;
                    let relative = path.strip_prefix(&app.root_dir).unwrap_or(&path);
                    if !path.is_file() || excluded.iter().any(|p| p.matches_path(relative)) {
                        continue;
                    }
                    stage(&path, &staging.join(relative))?;
                    staged_any = true;
                }
            }
        }
    }
    if staged_any {
        mounts.push((staging, "/".to_string()));
    }
    Ok(mounts)
}

fn stage(source: &Path, target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(source, target)
        .with_context(|| format!("cannot stage {} for mounting", source.display()))?;
    Ok(())
}
