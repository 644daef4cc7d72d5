//! `ledge new` and `ledge add`: projects from templates embedded in the binary. A template is a
//! manifest fragment (its trigger and component) and the files the component needs; `new`
//! puts the fragment under an `[application]` table in a new directory, `add` appends it to an
//! existing `spin.toml` and puts the files in a subdirectory named after the component.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::manifest::App;

/// One file of a template: where it goes (relative to the component's directory) and its text.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

/// A template: its manifest fragment and its files.
struct Template {
    name: &'static str,
    about: &'static str,
    component: &'static str,
    files: &'static [TemplateFile],
}

/// The `[application]` table of a new project.
const APP: &str = include_str!("../templates/app.toml");

const TEMPLATES: &[Template] = &[
    Template {
        name: "http-rust",
        about: "an HTTP function in Rust (spin-sdk 7, wasi:http p3, wasm32-wasip2)",
        component: include_str!("../templates/http-rust/component.toml"),
        files: &[
            TemplateFile {
                path: "Cargo.toml",
                text: include_str!("../templates/http-rust/Cargo.toml"),
            },
            TemplateFile {
                path: "src/lib.rs",
                text: include_str!("../templates/http-rust/src/lib.rs"),
            },
            TemplateFile {
                path: ".gitignore",
                text: include_str!("../templates/http-rust/gitignore"),
            },
        ],
    },
    Template {
        name: "http-js",
        about: "an HTTP function in JavaScript with key-value (componentize-js from npm)",
        component: include_str!("../templates/http-js/component.toml"),
        files: &[
            TemplateFile {
                path: "package.json",
                text: include_str!("../templates/http-js/package.json"),
            },
            TemplateFile {
                // The lock of the repository's JavaScript guest, whose devDependencies match.
                path: "package-lock.json",
                text: include_str!("../../components/kv-js/package-lock.json"),
            },
            TemplateFile {
                path: "src/app.js",
                text: include_str!("../templates/http-js/src/app.js"),
            },
            TemplateFile {
                path: "wit/world.wit",
                text: include_str!("../templates/http-js/wit/world.wit"),
            },
            TemplateFile {
                path: "wit/deps/spin-2.0.0/spin.wit",
                text: include_str!("../wit/deps/spin-2.0.0/spin.wit"),
            },
            TemplateFile {
                path: "scripts/vendor-wasi-wit.sh",
                text: include_str!("../../components/kv-js/scripts/vendor-wasi-wit.sh"),
            },
            TemplateFile {
                path: ".gitignore",
                text: include_str!("../templates/http-js/gitignore"),
            },
        ],
    },
    Template {
        name: "http-py",
        about: "an HTTP function in Python with SQLite (componentize-py and spin-sdk from PyPI)",
        component: include_str!("../templates/http-py/component.toml"),
        files: &[
            TemplateFile {
                path: "app.py",
                text: include_str!("../templates/http-py/app.py"),
            },
            TemplateFile {
                path: "requirements.txt",
                text: include_str!("../templates/http-py/requirements.txt"),
            },
            TemplateFile {
                path: "build.sh",
                text: include_str!("../templates/http-py/build.sh"),
            },
            TemplateFile {
                path: ".gitignore",
                text: include_str!("../templates/http-py/gitignore"),
            },
        ],
    },
    Template {
        name: "http-c",
        about: "an HTTP function in C, run CGI-style (clang and wasi-libc, wasm32-wasi)",
        component: include_str!("../templates/http-c/component.toml"),
        files: &[
            TemplateFile {
                path: "main.c",
                text: include_str!("../templates/http-c/main.c"),
            },
            TemplateFile {
                path: ".gitignore",
                text: include_str!("../templates/http-c/gitignore"),
            },
        ],
    },
    Template {
        name: "static-site",
        about: "static files served by ledge, with a single-page-app fallback",
        component: include_str!("../templates/static-site/component.toml"),
        files: &[
            TemplateFile {
                path: "site/index.html",
                text: include_str!("../templates/static-site/site/index.html"),
            },
            TemplateFile {
                path: ".gitignore",
                text: include_str!("../templates/static-site/gitignore"),
            },
        ],
    },
];

/// The template names, for the command line.
pub fn names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|t| t.name)
}

/// The values a template's `{{ }}` placeholders take.
struct Values<'a> {
    template: &'a str,
    name: &'a str,
    route: String,
    /// The component's directory relative to the app root, with a trailing `/` (or empty).
    dir: String,
}

impl Values<'_> {
    fn render(&self, text: &str) -> String {
        let workdir = match self.dir.trim_end_matches('/') {
            "" => ".",
            dir => dir,
        };
        text.replace("{{template}}", self.template)
            .replace("{{name}}", self.name)
            .replace("{{crate}}", &self.name.replace('-', "_"))
            .replace("{{route}}", &self.route)
            .replace("{{dir}}", &self.dir)
            .replace("{{workdir}}", workdir)
    }
}

/// `ledge new <template> <name>`: a new app in `output` (default `./<name>`), its component
/// answering every path. Returns the app's directory.
pub fn new_app(template: &str, name: &str, output: Option<&Path>) -> Result<PathBuf> {
    let template = find(template)?;
    check_name(name)?;
    let directory = output.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if directory.exists() && directory.read_dir()?.next().is_some() {
        bail!(
            "{} exists and is not empty.\n  fix: choose another name, or `--output` an empty \
             directory",
            directory.display()
        );
    }
    let values = Values {
        template: template.name,
        name,
        route: "/...".into(),
        dir: String::new(),
    };
    write_files(template, &values, &directory)?;
    let manifest = values.render(APP) + &values.render(template.component);
    write(&directory.join("spin.toml"), &manifest)?;
    App::load(&directory).context("the new app does not load (a bug in the template)")?;
    Ok(directory)
}

/// `ledge add <template> <name>`: a component in `<app dir>/<name>/`, on the route
/// `/<name>/...`, appended to the manifest at `from`.
pub fn add_component(template: &str, name: &str, from: &Path) -> Result<()> {
    let template = find(template)?;
    check_name(name)?;
    let app = App::load(from)?;
    if app.components.contains_key(name) {
        bail!(
            "{} already has a component `{name}`.\n  fix: choose another name",
            app.manifest_path.display()
        );
    }
    let directory = app.root_dir.join(name);
    if directory.exists() {
        bail!(
            "{} exists.\n  fix: choose another name, or move that directory",
            directory.display()
        );
    }
    let values = Values {
        template: template.name,
        name,
        route: format!("/{name}/..."),
        dir: format!("{name}/"),
    };
    let manifest = std::fs::read_to_string(&app.manifest_path)
        .with_context(|| format!("cannot read {}", app.manifest_path.display()))?;
    let extended = manifest.trim_end().to_string() + "\n" + &values.render(template.component);
    write_files(template, &values, &directory)?;
    write(&app.manifest_path, &extended)?;
    if let Err(error) = App::load(&app.manifest_path) {
        // Leave the app as it was.
        write(&app.manifest_path, &manifest)?;
        let _ = std::fs::remove_dir_all(&directory);
        return Err(anyhow::Error::from(error).context("the component does not fit this app"));
    }
    Ok(())
}

/// The templates, one per line, for `--help` and errors.
pub fn list() -> String {
    TEMPLATES
        .iter()
        .map(|t| format!("  {:<12} {}", t.name, t.about))
        .collect::<Vec<_>>()
        .join("\n")
}

fn find(name: &str) -> Result<&'static Template> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("no template `{name}`; the templates are:\n{}", list()))
}

/// Component ids are kebab case, as in Spin manifests.
fn check_name(name: &str) -> Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !valid {
        bail!(
            "`{name}` is not a valid name.\n  fix: use lower-case words joined by `-`, e.g. \
             `my-api`"
        );
    }
    Ok(())
}

fn write_files(template: &Template, values: &Values<'_>, directory: &Path) -> Result<()> {
    for file in template.files {
        write(&directory.join(file.path), &values.render(file.text))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        assert!(check_name("my-api2").is_ok());
        for bad in ["My", "my_api", "-a", "a-", "2a", ""] {
            assert!(check_name(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_new_app_loads_and_an_added_component_gets_its_own_route_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let app = new_app("static-site", "front", Some(&dir.path().join("front"))).unwrap();
        add_component("http-rust", "api", &app).unwrap();
        let loaded = App::load(&app).unwrap();
        let api = &loaded.components["api"];
        assert!(
            api.source
                .ends_with("api/target/wasm32-wasip2/release/api.wasm")
        );
        assert!(app.join("api/src/lib.rs").is_file());
        assert!(app.join("site/index.html").is_file());
        let error = add_component("http-rust", "api", &app).unwrap_err();
        assert!(error.to_string().contains("already has a component `api`"));
        assert!(
            new_app("nope", "x", None)
                .unwrap_err()
                .to_string()
                .contains("http-rust")
        );
    }
}
