//! Turns the raw manifest into an [`App`], rejecting what Spin would reject and a little more
//! (duplicate routes), each time with the line, the key and the fix.
//!
//! (The file is over 600 lines with its tests: about 470 of code, the rest tests of it.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Reader;

use super::schema::{
    RawBuild, RawCommand, RawComponent, RawComponentLedge, RawFileMount, RawManifest, RawSource,
    RawStaticFiles, RawVariable,
};
use super::{
    App, Build, Component, ComponentSettings, FileMount, Located, ManifestError, RemoteSource,
    StaticFiles, TriggerHandler, Variable,
};
use crate::router::RoutePattern;

/// The tool name under which ledge keeps its own settings (`tool.ledge`).
const LEDGE_TOOL: &str = "ledge";

/// Parses and validates manifest `source`, read from `file`. The text is parsed once; the
/// parsed document (every value with its position) is then read as Spin's schema, and
/// `[application.tool.ledge]` on its own by `super::gateway`.
pub fn parse(file: &Path, source: &str) -> Result<App, ManifestError> {
    let invalid = |e: toml::de::Error| {
        let mut error = ManifestError::file(file, e.message().to_string());
        if let Some(span) = e.span() {
            error = error.at(source, span.start);
        }
        error.fix("correct the key or value; see the spin.toml reference (manifest version 2)")
    };
    let document = DeTable::parse(source).map_err(invalid)?;
    let ledge = document
        .get_ref()
        .get("application")
        .and_then(|application| application.get_ref().get("tool"))
        .and_then(|tool| tool.get_ref().get(LEDGE_TOOL))
        .cloned();
    let raw = RawManifest::deserialize(toml::de::Deserializer::from(document)).map_err(invalid)?;
    Reader { file, source }.app(raw, ledge)
}

/// A kebab-case id derived from a file name (`my_app.wasm` -> `my-app`).
pub fn kebab_id_from_file_stem(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("app");
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('-').to_string();
    if is_kebab_id(&id) { id } else { "app".into() }
}

/// Spin's component ids: lower-case words of letters and digits joined by single dashes,
/// starting with a letter.
fn is_kebab_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The lower-case hex of a `sha256:<64 hex digits>` digest (either case), or `None` when
/// `digest` is not one.
fn sha256_of_digest(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Variable names: lower snake case starting with a letter.
pub fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Reader<'_> {
    fn app(
        &self,
        raw: RawManifest,
        ledge: Option<Spanned<DeValue<'_>>>,
    ) -> Result<App, ManifestError> {
        let version = &raw.spin_manifest_version;
        if version.get_ref().as_integer() != Some(2) {
            return Err(self
                .error(version, "spin_manifest_version", "ledge reads manifest version 2 only")
                .fix("set `spin_manifest_version = 2` (a version 1 manifest can be upgraded with `spin doctor`)"));
        }
        let root_dir = self
            .file
            .parent()
            .map(|dir| {
                if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                }
            })
            .unwrap_or(Path::new("."));
        let root_dir = std::path::absolute(root_dir).unwrap_or_else(|_| root_dir.to_owned());

        let http_base = match &raw
            .application
            .trigger
            .http
            .as_ref()
            .and_then(|h| h.base.as_ref())
        {
            Some(base) => {
                let value = base.get_ref();
                if !value.starts_with('/') {
                    return Err(self
                        .error(
                            base,
                            "application.trigger.http.base",
                            format!("the base `{value}` does not start with `/`"),
                        )
                        .fix(format!("write it as `/{value}`")));
                }
                value.clone()
            }
            None => "/".to_string(),
        };
        let variables = self.variables(raw.variables)?;

        let mut components = BTreeMap::new();
        for (id, component) in raw.component {
            if !is_kebab_id(id.get_ref()) {
                return Err(self
                    .error(&id, format!("component.{}", id.get_ref()), "a component id must be kebab-case (lower-case words joined by `-`, starting with a letter)")
                    .fix("rename it, e.g. `hello-world`"));
            }
            let id_line = self.line(&id);
            let id = id.into_inner();
            let component = self.component(&root_dir, &id, id_line, component)?;
            components.insert(id, component);
        }

        let triggers =
            self.http_triggers(raw.trigger.http, &http_base, &root_dir, &mut components)?;
        let routes: Vec<&str> = triggers
            .iter()
            .filter_map(|t| t.route.as_ref().map(RoutePattern::raw))
            .collect();
        let component_ids: Vec<&str> = triggers
            .iter()
            .filter_map(|t| match &t.handler {
                TriggerHandler::Component(id) => Some(id.as_str()),
                TriggerHandler::Static(_) => None,
            })
            .collect();
        let gateway = super::gateway::parse(
            self.file,
            &root_dir,
            self.source,
            ledge,
            &routes,
            &component_ids,
        )?;
        let redis_address = raw.application.trigger.redis.map(|redis| redis.address);
        let redis_triggers = raw
            .trigger
            .redis
            .iter()
            .map(|trigger| self.redis_trigger(trigger, redis_address.as_deref(), &components))
            .collect::<Result<_, _>>()?;

        Ok(App {
            manifest_path: std::path::absolute(self.file).unwrap_or_else(|_| self.file.to_owned()),
            root_dir,
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            authors: raw.application.authors,
            http_base,
            variables,
            components,
            triggers,
            redis_triggers,
            gateway,
        })
    }

    /// The top-level `[variables]`.
    fn variables(
        &self,
        raw: BTreeMap<Spanned<String>, RawVariable>,
    ) -> Result<BTreeMap<String, Variable>, ManifestError> {
        let mut variables = BTreeMap::new();
        for (name, variable) in raw {
            if !is_variable_name(name.get_ref()) {
                return Err(self
                    .error(
                        &name,
                        format!("variables.{}", name.get_ref()),
                        "a variable name must be lower snake case and start with a letter",
                    )
                    .fix("rename it, e.g. `api_key`"));
            }
            if variable.required && variable.default.is_some() {
                return Err(self
                    .error(
                        &name,
                        format!("variables.{}", name.get_ref()),
                        "a variable cannot be both `required` and have a `default`",
                    )
                    .fix("remove one of the two"));
            }
            variables.insert(
                name.into_inner(),
                Variable {
                    default: variable.default,
                    required: variable.required,
                    secret: variable.secret,
                },
            );
        }
        Ok(variables)
    }

    /// `[component.<id>.tool.ledge]`.
    fn component_settings(
        &self,
        key: &str,
        id_line: usize,
        raw: &RawComponent,
    ) -> Result<ComponentSettings, ManifestError> {
        let mut ledge = ComponentSettings::default();
        let Some(table) = raw.tool.get(LEDGE_TOOL) else {
            return Ok(ledge);
        };
        let settings: RawComponentLedge = table.clone().try_into().map_err(|e: toml::de::Error| {
            let mut error = ManifestError::file(self.file, e.message().to_string())
                .key(format!("{key}.tool.ledge"))
                .fix("the keys ledge reads here are `max_instance_reuse_count`, `max_instance_concurrent_reuse_count`, `max_concurrent_requests` and `static_files`");
            error.line = Some(id_line);
            error
        })?;
        for (name, value) in [
            (
                "max_instance_reuse_count",
                settings.max_instance_reuse_count,
            ),
            (
                "max_instance_concurrent_reuse_count",
                settings.max_instance_concurrent_reuse_count,
            ),
            ("max_concurrent_requests", settings.max_concurrent_requests),
        ] {
            if value == Some(0) {
                let mut error = ManifestError::file(self.file, "must be at least 1")
                    .key(format!("{key}.tool.ledge.{name}"))
                    .fix("use 1 for a fresh instance per request");
                error.line = Some(id_line);
                return Err(error);
            }
        }
        ledge.max_instance_reuse_count = settings.max_instance_reuse_count;
        ledge.max_instance_concurrent_reuse_count = settings.max_instance_concurrent_reuse_count;
        ledge.max_concurrent_requests = settings.max_concurrent_requests;
        ledge.static_files = settings
            .static_files
            .map(|files| self.static_files(key, id_line, files, &raw.environment))
            .transpose()?;
        Ok(ledge)
    }

    /// `static_files`: its file names must stay inside the served files. spin-fileserver's
    /// own settings (`FALLBACK_PATH`, `CUSTOM_404_PATH` in the component's `environment`) fill
    /// what the table leaves out, so an app written for it behaves the same (the file server
    /// looks those up as it looks up any request path).
    fn static_files(
        &self,
        key: &str,
        id_line: usize,
        raw: RawStaticFiles,
        environment: &BTreeMap<String, String>,
    ) -> Result<StaticFiles, ManifestError> {
        for (name, file) in [("fallback", &raw.fallback), ("not_found", &raw.not_found)] {
            if let Some(file) = file
                && (file.is_empty()
                    || Path::new(file)
                        .components()
                        .any(|part| !matches!(part, std::path::Component::Normal(_))))
            {
                let mut error = ManifestError::file(
                    self.file,
                    format!("`{file}` is not a file name inside the served files"),
                )
                .key(format!("{key}.tool.ledge.static_files.{name}"))
                .fix("name it relative to the files' root, e.g. `index.html`");
                error.line = Some(id_line);
                return Err(error);
            }
        }
        if let Some(value) = &raw.cache_control
            && http::HeaderValue::from_str(value).is_err()
        {
            let mut error = ManifestError::file(self.file, "not a valid header value")
                .key(format!("{key}.tool.ledge.static_files.cache_control"))
                .fix("e.g. `public, max-age=3600`");
            error.line = Some(id_line);
            return Err(error);
        }
        let environment = |name: &str| environment.get(name).cloned();
        Ok(StaticFiles {
            fallback: raw.fallback.or_else(|| environment("FALLBACK_PATH")),
            not_found: raw.not_found.or_else(|| environment("CUSTOM_404_PATH")),
            cache_control: raw.cache_control.unwrap_or_else(|| "no-cache".into()),
        })
    }

    pub(super) fn component(
        &self,
        root_dir: &Path,
        id: &str,
        id_line: usize,
        raw: RawComponent,
    ) -> Result<Component, ManifestError> {
        let key = format!("component.{id}");
        let source_line = self.line(&raw.source);
        let ledge = self.component_settings(&key, id_line, &raw)?;
        let (source, remote) = match raw.source.get_ref() {
            RawSource::Path(path) => (root_dir.join(path), None),
            // A fileserver component ledge replaces: it is never fetched.
            RawSource::Remote { .. } if ledge.static_files.is_some() => (PathBuf::new(), None),
            // Fetched at start-up, which then sets `source`.
            RawSource::Remote { url, digest } => (
                PathBuf::new(),
                Some(self.remote_source(&key, &raw.source, url, digest)?),
            ),
        };
        if !raw.ai_models.is_empty() {
            return Err(self
                .error(
                    &raw.source,
                    format!("{key}.ai_models"),
                    "ledge does not serve AI models",
                )
                .fix("remove `ai_models`, or serve this component with Spin"));
        }
        if !raw.dependencies.is_empty() {
            return Err(self
                .error(&raw.source, format!("{key}.dependencies"), "component dependencies are not supported yet")
                .fix("compose the component ahead of time (e.g. with `wac plug`) and point `source` at the result"));
        }
        let files = raw
            .files
            .into_iter()
            .map(|mount| match mount {
                RawFileMount::Pattern(glob) => Ok(FileMount::Pattern(glob)),
                RawFileMount::Placement {
                    source,
                    destination,
                } => {
                    if !destination.starts_with('/') {
                        return Err(ManifestError::file(
                            self.file,
                            format!("the destination `{destination}` is not absolute"),
                        )
                        .key(format!("{key}.files"))
                        .fix(format!("write it as `/{destination}`")));
                    }
                    Ok(FileMount::Placement {
                        source: source.into(),
                        destination,
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        for name in raw.variables.keys() {
            if !is_variable_name(name) {
                return Err(ManifestError::file(
                    self.file,
                    format!("`{name}` is not a valid variable name"),
                )
                .key(format!("{key}.variables"))
                .fix("variable names are lower snake case and start with a letter"));
            }
        }
        let build = raw.build.map(|build| self.build(root_dir, build));
        Ok(Component {
            id: id.to_string(),
            description: raw.description,
            source,
            remote,
            source_line: Some(source_line),
            files,
            exclude_files: raw.exclude_files,
            environment: raw.environment,
            allowed_outbound_hosts: raw
                .allowed_outbound_hosts
                .iter()
                .map(|entry| Located {
                    value: entry.get_ref().clone(),
                    line: self.line(entry),
                })
                .collect(),
            key_value_stores: raw.key_value_stores,
            sqlite_databases: raw.sqlite_databases,
            variables: raw.variables,
            build,
            ledge,
            wagi: None,
        })
    }

    /// `source = { url, digest }`: an `http(s)://` URL and a `sha256:` digest.
    fn remote_source(
        &self,
        key: &str,
        source: &Spanned<RawSource>,
        url: &str,
        digest: &str,
    ) -> Result<RemoteSource, ManifestError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(self
                .error(
                    source,
                    format!("{key}.source"),
                    format!("the url `{url}` is not an http:// or https:// URL"),
                )
                .fix(
                    "give the .wasm's `https://` URL, or download it and set `source` to its path",
                ));
        }
        let sha256 = sha256_of_digest(digest).ok_or_else(|| {
            self.error(
                source,
                format!("{key}.source"),
                format!("the digest `{digest}` is not `sha256:` followed by 64 hex digits"),
            )
            .fix("write the file's SHA-256 (`sha256sum file.wasm`) as `digest = \"sha256:<hex>\"`")
        })?;
        Ok(RemoteSource {
            url: url.to_owned(),
            sha256,
        })
    }

    fn build(&self, root_dir: &Path, raw: RawBuild) -> Build {
        Build {
            commands: match raw.command {
                RawCommand::One(command) => vec![command],
                RawCommand::Many(commands) => commands,
            },
            workdir: raw
                .workdir
                .map_or_else(|| root_dir.to_owned(), |dir| root_dir.join(dir)),
            watch: raw.watch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Wagi;

    fn parse_str(source: &str) -> Result<App, ManifestError> {
        parse(Path::new("/app/spin.toml"), source)
    }

    const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"t\"\n";

    #[test]
    fn a_tool_entry_must_be_a_table() {
        let error = parse_str(&format!("{HEADER}[application.tool]\nfoo = 1\n")).unwrap_err();
        assert_eq!(error.line, Some(5), "{error}");
        parse_str(&format!("{HEADER}[application.tool.other]\nanything = 1\n")).unwrap();
    }

    #[test]
    fn reads_components_routes_and_inline_components() {
        let app = parse_str(&format!(
            "{HEADER}[[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n\
             [[trigger.http]]\nid = \"inl\"\nroute = {{ private = true }}\ncomponent = {{ source = \"x.wasm\" }}\n\
             [component.hello]\nsource = \"hello.wasm\"\nenvironment = {{ A = \"b\" }}\n"
        ))
        .unwrap();
        assert_eq!(app.components["hello"].source, Path::new("/app/hello.wasm"));
        assert_eq!(app.components["hello"].environment["A"], "b");
        assert!(app.components.contains_key("inl-component"));
        assert!(app.triggers[1].route.is_none());
    }

    #[test]
    fn wagi_executors_mark_the_component_and_must_agree() {
        let trigger = |route: &str, executor: &str| {
            format!("[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"c\"\n{executor}")
        };
        let component = "[component.c]\nsource = \"c.wasm\"\n";
        let wagi = "executor = { type = \"wagi\", argv = \"x ${ARGS}\" }\n";
        let app = parse_str(&format!(
            "{HEADER}{}{}{component}",
            trigger("/a", wagi),
            trigger("/b", wagi)
        ))
        .unwrap();
        assert_eq!(
            app.components["c"].wagi,
            Some(Wagi {
                argv: "x ${ARGS}".into()
            })
        );

        let mixed = parse_str(&format!(
            "{HEADER}{}{}{component}",
            trigger("/a", wagi),
            trigger("/b", "")
        ))
        .unwrap_err()
        .to_string();
        assert!(
            mixed.contains("different executors (lines 7 and 9)"),
            "{mixed}"
        );

        for (executor, complaint) in [
            (
                "executor = { type = \"cgi\" }\n",
                "the executor `cgi` is not supported",
            ),
            (
                "executor = { type = \"wagi\", entrypoint = \"run\" }\n",
                "from `_start`, not `run`",
            ),
        ] {
            let error = parse_str(&format!("{HEADER}{}{component}", trigger("/a", executor)))
                .unwrap_err()
                .to_string();
            assert!(error.contains(complaint), "{error}");
        }
    }

    #[test]
    fn a_static_files_component_may_name_a_remote_fileserver() {
        let component = "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"site\"\n\
             [component.site]\nsource = { url = \"https://example.com/fs.wasm\", digest = \"sha256:00\" }\n\
             files = [{ source = \"dist\", destination = \"/\" }]\n[component.site.tool.ledge]\n";
        let app = parse_str(&format!(
            "{HEADER}{component}static_files = {{ fallback = \"index.html\" }}\n"
        ))
        .unwrap();
        let settings = app.components["site"].ledge.static_files.clone().unwrap();
        assert_eq!(settings.fallback.as_deref(), Some("index.html"));
        assert_eq!(settings.cache_control, "no-cache");
        // Never fetched, so its digest (`sha256:00`) is not checked either.
        assert_eq!(app.components["site"].remote, None);
        assert_eq!(app.components["site"].source, PathBuf::new());

        let error = parse_str(&format!(
            "{HEADER}{component}static_files = {{ not_found = \"../secret\" }}\n"
        ))
        .unwrap_err();
        assert!(error.message.contains("inside the served files"), "{error}");
        assert_eq!(error.line, Some(7));

        // Without `static_files` the component is fetched, and `sha256:00` is no digest.
        let error =
            parse_str(&format!("{HEADER}{component}max_concurrent_requests = 1\n")).unwrap_err();
        assert!(
            error
                .message
                .contains("not `sha256:` followed by 64 hex digits"),
            "{error}"
        );
        assert_eq!(error.line, Some(8));
        assert_eq!(error.key.as_deref(), Some("component.site.source"));
    }

    #[test]
    fn a_remote_source_needs_an_http_url_and_a_sha256_digest() {
        let manifest = |url: &str, digest: &str| {
            format!(
                "{HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n\
                 [component.c]\nsource = {{ url = \"{url}\", digest = \"{digest}\" }}\n"
            )
        };
        let url = "https://example.com/c.wasm";
        let hex = "ab".repeat(32);
        let upper_case = format!("sha256:{}", hex.to_ascii_uppercase());
        let app = parse_str(&manifest(url, &upper_case)).unwrap();
        let component = &app.components["c"];
        assert_eq!(
            component.remote,
            Some(RemoteSource {
                url: url.into(),
                sha256: hex.clone(),
            })
        );
        assert_eq!(component.source, PathBuf::new(), "set once fetched");

        let good = format!("sha256:{hex}");
        let sha512 = format!("sha512:{hex}");
        let not_hex = format!("sha256:{}", "zz".repeat(32));
        for (url, digest, complaint) in [
            (url, "sha256:abc", "not `sha256:` followed by 64 hex digits"),
            (url, sha512.as_str(), "not `sha256:`"),
            (url, not_hex.as_str(), "not `sha256:`"),
            (
                "ftp://example.com/c.wasm",
                good.as_str(),
                "not an http:// or https:// URL",
            ),
        ] {
            let error = parse_str(&manifest(url, digest)).unwrap_err();
            assert!(error.message.contains(complaint), "{error}");
            assert_eq!(error.line, Some(8));
            assert_eq!(error.key.as_deref(), Some("component.c.source"));
            assert!(error.fix.is_some());
        }
    }

    #[test]
    fn unknown_key_names_the_line_and_key() {
        let error = parse_str(&format!(
            "{HEADER}[component.a]\nsource = \"a.wasm\"\nsorce = 1\n"
        ))
        .unwrap_err();
        assert_eq!(error.line, Some(6));
        assert!(error.to_string().contains("sorce"), "{error}");
    }

    #[test]
    fn missing_component_is_named_with_the_fix() {
        let error = parse_str(&format!(
            "{HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n"
        ))
        .unwrap_err();
        assert_eq!(error.line, Some(6));
        assert_eq!(error.key.as_deref(), Some("trigger.http[0].component"));
        assert!(error.fix.unwrap().contains("[component.nope]"));
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let error = parse_str(&format!(
            "{HEADER}[[trigger.http]]\nroute = \"/a\"\ncomponent = \"c\"\n[[trigger.http]]\nroute = \"/a/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n"
        ))
        .unwrap_err();
        assert!(error.message.contains("line 5"), "{error}");
        assert_eq!(error.line, Some(8));
    }

    #[test]
    fn rejects_bad_ids_versions_and_ledge_keys() {
        assert!(parse_str("spin_manifest_version = 1\n[application]\nname = \"t\"\n").is_err());
        assert!(
            parse_str(&format!(
                "{HEADER}[component.Bad_Id]\nsource = \"a.wasm\"\n"
            ))
            .is_err()
        );
        let error = parse_str(&format!(
            "{HEADER}[component.a]\nsource = \"a.wasm\"\n[component.a.tool.ledge]\nbogus = 1\n"
        ))
        .unwrap_err();
        assert_eq!(error.key.as_deref(), Some("component.a.tool.ledge"));
        // Other tools' tables are theirs to define.
        assert!(parse_str(&format!("{HEADER}[component.a]\nsource = \"a.wasm\"\n[component.a.tool.other]\nanything = 1\n")).is_ok());
    }

    #[test]
    fn names() {
        assert!(is_kebab_id("hello-world2"));
        assert!(!is_kebab_id("hello--world") && !is_kebab_id("-a") && !is_kebab_id("2a"));
        assert!(
            is_variable_name("api_key")
                && !is_variable_name("4invalidname")
                && !is_variable_name("invalid!name")
        );
    }
}
