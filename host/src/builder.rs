//! `ledge build`: run each component's `build.command` in its `workdir`, one component at a
//! time, with a progress line per component. The first failure stops the build and shows that
//! component's output.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::manifest::App;

/// Builds the components of `app` (all of them, or those in `only`).
pub fn build(app: &App, only: &[String]) -> Result<()> {
    for id in only {
        if !app.components.contains_key(id) {
            let known: Vec<&String> = app.components.keys().collect();
            bail!(
                "there is no component `{id}` in {} (components: {known:?})",
                app.manifest_path.display()
            );
        }
    }
    let selected: Vec<_> = app
        .components
        .values()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .collect();
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} ({elapsed})")
        .expect("a valid progress template");
    for component in selected {
        let Some(build) = &component.build else {
            eprintln!("  {}: no build command, skipped", component.id);
            continue;
        };
        for command in &build.commands {
            let progress = ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(component.id.clone())
                .with_message(command.clone());
            progress.enable_steady_tick(Duration::from_millis(120));
            let output = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&build.workdir)
                .stdin(Stdio::null())
                .output();
            progress.finish_and_clear();
            let output = match output {
                Ok(output) => output,
                Err(error) => bail!(
                    "cannot run the build command of component `{}` in {}: {error}",
                    component.id,
                    build.workdir.display()
                ),
            };
            if !output.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&output.stdout));
                eprintln!("{}", String::from_utf8_lossy(&output.stderr));
                bail!(
                    "building component `{}` failed ({}): `{command}` in {}",
                    component.id,
                    output.status,
                    build.workdir.display()
                );
            }
            eprintln!("  {}: built (`{command}`)", component.id);
        }
    }
    Ok(())
}
