//! The application model, read from a Spin `spin.toml` (manifest version 2) or a bare `.wasm`.
//!
//! `schema` mirrors the file; `validate` checks it and builds the [`App`] the rest of ledge
//! works from; `error` says what is wrong, where, and how to fix it.

mod authorizers;
mod error;
mod gateway;
mod local_files;
mod render;
mod schema;
pub mod template;
mod triggers;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use authorizers::{
    ApiKey, ApiKeySettings, AuthorizerSettings, ComponentAuthorizerSettings, HmacSettings,
    JwksSource, JwtSettings, QuotaPeriod, UsagePlan,
};
pub use error::ManifestError;
pub use gateway::{DomainMapping, GatewaySettings, RouteTable, Setting};
pub use validate::is_variable_name;

use crate::router::RoutePattern;

/// The file name `ledge up` looks for in a directory.
pub const DEFAULT_MANIFEST_FILE: &str = "spin.toml";

/// A validated application: its components and the HTTP routes that reach them.
#[derive(Debug, Clone)]
pub struct App {
    /// The manifest this app was read from (for a bare `.wasm`, that file).
    pub manifest_path: PathBuf,
    /// The directory relative paths in the manifest are resolved against.
    pub root_dir: PathBuf,
    /// `application.name`.
    pub name: String,
    /// `application.version`.
    pub version: Option<String>,
    /// `application.description`.
    pub description: Option<String>,
    /// `application.authors`.
    pub authors: Vec<String>,
    /// `application.trigger.http.base`, normalised to start with `/` (default `/`).
    pub http_base: String,
    /// The top-level `[variables]`.
    pub variables: BTreeMap<String, Variable>,
    /// Components by id.
    pub components: BTreeMap<String, Component>,
    /// The `[[trigger.http]]` entries, in file order.
    pub triggers: Vec<HttpTrigger>,
    /// The `[[trigger.redis]]` entries, in file order.
    pub redis_triggers: Vec<RedisTrigger>,
    /// `[application.tool.ledge]`: the API gateway in front of the routes.
    pub gateway: GatewaySettings,
}

/// A `[[trigger.redis]]`: each message published on `channel` runs `component`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTrigger {
    /// The server, `redis://host:port` (`{{ variable }}` templates not yet rendered).
    pub address: String,
    /// The channel subscribed to.
    pub channel: String,
    /// The component that handles each message.
    pub component: String,
    /// The trigger's manifest line.
    pub line: usize,
}

/// A declared application variable.
#[derive(Debug, Clone, Default)]
pub struct Variable {
    /// The value used when no provider has one.
    pub default: Option<String>,
    /// Start-up fails when no provider has a value.
    pub required: bool,
    /// The value must never be logged.
    pub secret: bool,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The trigger's `id`, if it has one.
    pub id: Option<String>,
    /// The public route, or `None` for `{ private = true }` (reachable only in-process).
    pub route: Option<RoutePattern>,
    /// What answers requests on the route.
    pub handler: TriggerHandler,
}

/// What answers an HTTP trigger.
#[derive(Debug, Clone)]
pub enum TriggerHandler {
    /// The component with this id.
    Component(String),
    /// A fixed response, no component involved.
    Static(StaticResponse),
}

/// `static_response = { status_code, headers, body }`.
#[derive(Debug, Clone)]
pub struct StaticResponse {
    /// The status (default 200).
    pub status: u16,
    /// Response headers, in name order.
    pub headers: BTreeMap<String, String>,
    /// The body (default empty).
    pub body: String,
}

/// A `[component.<id>]`.
#[derive(Debug, Clone)]
pub struct Component {
    /// The component id (kebab-case).
    pub id: String,
    /// `description`.
    pub description: Option<String>,
    /// The `.wasm` file, resolved against the app's root directory. Empty for a remote source
    /// until [`crate::sources::fetch_remote_sources`] points it at the fetched copy.
    pub source: PathBuf,
    /// Where a `source = { url, digest }` component is fetched from (`None` for a local file,
    /// and for a `static_files` component, whose source is never loaded).
    pub remote: Option<RemoteSource>,
    /// The manifest line of `source`, for errors about the file.
    pub source_line: Option<usize>,
    /// `files`: what to mount, read-only, into the guest's filesystem.
    pub files: Vec<FileMount>,
    /// `exclude_files`: globs removed from `files` patterns.
    pub exclude_files: Vec<String>,
    /// `environment`: WASI environment variables.
    pub environment: BTreeMap<String, String>,
    /// `allowed_outbound_hosts`, each entry with its manifest line (templates unrendered).
    pub allowed_outbound_hosts: Vec<Located<String>>,
    /// `key_value_stores`: the store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// `sqlite_databases`: the database labels the component may open.
    pub sqlite_databases: Vec<String>,
    /// `variables`: component variables (values may hold `{{ name }}` templates).
    pub variables: BTreeMap<String, String>,
    /// `build`: how `ledge build` produces `source`.
    pub build: Option<Build>,
    /// `[component.<id>.tool.ledge]`.
    pub ledge: ComponentSettings,
    /// Set when its triggers say `executor = { type = "wagi" }`: the component is a WASI
    /// command run once per request, CGI-style, instead of a `wasi:http` handler.
    pub wagi: Option<Wagi>,
}

/// A manifest value with the line it is written on, for errors found after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Its 1-based manifest line.
    pub line: usize,
}

/// `source = { url, digest }`: a component fetched over HTTP and checked against its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// The `http://` or `https://` URL of the `.wasm`.
    pub url: String,
    /// The expected SHA-256 of the file: 64 lower-case hex digits.
    pub sha256: String,
}

/// `executor = { type = "wagi", argv }`: how a WAGI command is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wagi {
    /// The command line, with `${SCRIPT_NAME}` and `${ARGS}` placeholders (default
    /// `${SCRIPT_NAME} ${ARGS}`).
    pub argv: String,
}

/// One `files` entry.
#[derive(Debug, Clone)]
pub enum FileMount {
    /// A glob relative to the app root; matches keep their relative path under `/`.
    Pattern(String),
    /// A file or directory placed at `destination` in the guest.
    Placement {
        /// Host path, relative to the app root.
        source: PathBuf,
        /// Absolute guest path.
        destination: String,
    },
}

/// `build = { command, workdir, watch }`.
#[derive(Debug, Clone)]
pub struct Build {
    /// Shell commands, run in order.
    pub commands: Vec<String>,
    /// Where they run: the app root, or `workdir` below it.
    pub workdir: PathBuf,
    /// Globs whose changes call for a rebuild.
    pub watch: Vec<String>,
}

/// ledge's own per-component settings, from `[component.<id>.tool.ledge]`.
#[derive(Debug, Clone, Default)]
pub struct ComponentSettings {
    /// Requests one instance may serve in total before it is dropped.
    pub max_instance_reuse_count: Option<usize>,
    /// Requests one instance may serve at the same time (p3 components only).
    pub max_instance_concurrent_reuse_count: Option<usize>,
    /// Requests the component may serve at once; more get 503 with `Retry-After` instead of
    /// queueing without bound.
    pub max_concurrent_requests: Option<usize>,
    /// `static_files`: ledge serves the component's `files` itself and never loads `source`
    /// (which may then be a remote fileserver component, as Spin apps name it).
    pub static_files: Option<StaticFiles>,
}

/// How a static-files component answers (`[component.<id>.tool.ledge] static_files`). A
/// directory is answered with its `index.html`.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// A file (relative to the files' root) served with 200 for paths that match no file: the
    /// single-page-application fallback.
    pub fallback: Option<String>,
    /// A file served with 404 for paths that match no file.
    pub not_found: Option<String>,
    /// The `Cache-Control` of every file (default `no-cache`: browsers revalidate with the
    /// `ETag`).
    pub cache_control: String,
}

impl App {
    /// Reads the app at `from`: a manifest file, a directory holding `spin.toml`, or a bare
    /// `.wasm` (served on `/...`).
    pub fn load(from: &Path) -> Result<Self, ManifestError> {
        let path = if from.is_dir() {
            from.join(DEFAULT_MANIFEST_FILE)
        } else {
            from.to_owned()
        };
        if path.extension().is_some_and(|ext| ext == "wasm") {
            return Self::from_wasm(&path);
        }
        let source = std::fs::read_to_string(&path).map_err(|e| {
            ManifestError::file(&path, format!("cannot read the manifest: {e}")).fix(
                "pass the manifest with `-f <path/to/spin.toml>`, a directory holding one, or a .wasm file",
            )
        })?;
        validate::parse(&path, &source)
    }

    /// An app of one component, `path`, answering every route.
    fn from_wasm(path: &Path) -> Result<Self, ManifestError> {
        if !path.is_file() {
            return Err(ManifestError::file(path, "the .wasm file does not exist")
                .fix("check the path given to `-f`"));
        }
        let source = std::path::absolute(path)
            .map_err(|e| ManifestError::file(path, format!("cannot resolve the path: {e}")))?;
        let id = validate::kebab_id_from_file_stem(&source);
        let root_dir = source.parent().map(Path::to_owned).unwrap_or_default();
        let component = Component {
            id: id.clone(),
            description: None,
            source: source.clone(),
            remote: None,
            source_line: None,
            files: Vec::new(),
            exclude_files: Vec::new(),
            environment: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            key_value_stores: Vec::new(),
            sqlite_databases: Vec::new(),
            variables: BTreeMap::new(),
            build: None,
            ledge: ComponentSettings::default(),
            wagi: None,
        };
        let route = RoutePattern::parse("/", "/...").expect("`/...` is a valid route");
        Ok(Self {
            manifest_path: source,
            root_dir,
            name: id.clone(),
            version: None,
            description: None,
            authors: Vec::new(),
            http_base: "/".into(),
            variables: BTreeMap::new(),
            components: BTreeMap::from([(id.clone(), component)]),
            triggers: vec![HttpTrigger {
                id: None,
                route: Some(route),
                handler: TriggerHandler::Component(id),
            }],
            redis_triggers: Vec::new(),
            gateway: GatewaySettings::default(),
        })
    }

    /// Checks that every local component's `.wasm` exists, naming the manifest line and the
    /// fix. A component given by URL is checked by its digest when it is fetched
    /// ([`crate::sources::fetch_remote_sources`]).
    pub fn check_sources(&self) -> Result<(), ManifestError> {
        for component in self.components.values() {
            // A component given by URL is checked by its digest when it is fetched.
            let local = component.remote.is_none();
            if local && component.ledge.static_files.is_none() && !component.source.is_file() {
                let fix = if component.build.is_some() {
                    "build it first: `ledge build`, or `ledge up --build`".to_string()
                } else {
                    "correct the path (it is relative to the manifest's directory)".to_string()
                };
                return Err(self
                    .error_at(
                        component.source_line,
                        format!("component.{}.source", component.id),
                    )
                    .with_message(format!(
                        "the file {} does not exist",
                        component.source.display()
                    ))
                    .fix(fix));
            }
        }
        Ok(())
    }

    /// An error about `key` on `line` of this app's manifest; set the message next.
    pub fn error_at(&self, line: Option<usize>, key: impl Into<String>) -> ManifestError {
        let mut error = ManifestError::file(&self.manifest_path, "").key(key);
        error.line = line;
        error
    }
}

impl ManifestError {
    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}
