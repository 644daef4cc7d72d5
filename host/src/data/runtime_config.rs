//! `runtime-config.toml` (`--runtime-config-file`): which backend serves each key-value store
//! and database label, and where variables come from. Spin's format; unknown keys are errors.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                 # a SQLite file (path optional, relative to this file)
//! [key_value_store.shared]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! [sqlite_database.default]
//! type = "spin"
//! path = "data/app.db"
//! [[variables_provider]]
//! type = "static"
//! values = { api_host = "example.com" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

/// The parsed file.
#[derive(Debug, Default)]
pub struct RuntimeConfig {
    /// Backends of key-value store labels.
    pub key_value_store: BTreeMap<String, BackendTable>,
    /// Backends of database labels.
    pub sqlite_database: BTreeMap<String, BackendTable>,
    /// Variable providers, in priority order.
    pub variables_provider: Vec<VariablesProviderConfig>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    variables_provider: Vec<VariablesProviderConfig>,
}

/// A `[key_value_store.<label>]` or `[sqlite_database.<label>]` table: which backend (`type`)
/// and the rest of the table, which that backend reads (see `kv::BACKENDS` and
/// `sqlite::BACKENDS`).
#[derive(Debug, Clone)]
pub struct BackendTable {
    /// `type`.
    pub kind: String,
    /// The other keys.
    pub settings: toml::Table,
    /// The table's name, e.g. `key_value_store.default`.
    pub section: String,
    /// Where it is written (`rc.toml:3`), for errors; `None` for a default.
    pub origin: Option<String>,
    /// The directory relative paths in it are resolved against.
    pub base_dir: PathBuf,
}

impl BackendTable {
    /// The embedded backend with no settings: what the `default` label has unless configured.
    pub fn embedded(section: String) -> Self {
        Self {
            kind: "spin".into(),
            settings: toml::Table::new(),
            section,
            origin: None,
            base_dir: PathBuf::from("."),
        }
    }

    /// Reads the settings as the backend's `T`; a wrong or unknown key names the table.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(toml::Value::Table(self.settings.clone()))
            .map_err(|e| self.error(e.message()))
    }

    /// An error about this table.
    pub fn error(&self, message: impl std::fmt::Display) -> anyhow::Error {
        match &self.origin {
            Some(origin) => anyhow!("{origin}: `{}`: {message}", self.section),
            None => anyhow!("`{}`: {message}", self.section),
        }
    }

    /// `path` as written in the table, resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// `[[variables_provider]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum VariablesProviderConfig {
    /// Environment variables `<prefix>_<NAME>`.
    #[serde(rename = "env")]
    Env {
        /// Default `SPIN_VARIABLE`.
        prefix: Option<String>,
        /// A dotenv file read at start-up.
        dotenv_path: Option<PathBuf>,
    },
    /// Fixed values.
    #[serde(rename = "static")]
    Static {
        /// name -> value.
        values: BTreeMap<String, String>,
    },
    /// HashiCorp Vault: recognised so the error can say it is not supported.
    #[serde(rename = "vault")]
    Vault(toml::Table),
}

impl RuntimeConfig {
    /// Reads `path`, resolving relative paths in it against its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the runtime config {}", path.display()))?;
        let line = |offset: usize| text[..offset].matches('\n').count() + 1;
        let raw: RawRuntimeConfig = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|span| format!(":{}", line(span.start)))
                .unwrap_or_default();
            anyhow!("{}{at}: {}", path.display(), e.message())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let backends = |tables: BTreeMap<String, Spanned<toml::Table>>, kind: &str| {
            tables
                .into_iter()
                .map(|(label, table)| {
                    let origin = format!("{}:{}", path.display(), line(table.span().start));
                    let section = format!("{kind}.{label}");
                    let mut settings = table.into_inner();
                    let Some(toml::Value::String(backend)) = settings.remove("type") else {
                        bail!("{origin}: `{section}` needs `type = \"...\"` (e.g. \"spin\")");
                    };
                    let table = BackendTable {
                        kind: backend,
                        settings,
                        section,
                        origin: Some(origin),
                        base_dir: base.to_owned(),
                    };
                    Ok((label, table))
                })
                .collect::<Result<BTreeMap<_, _>>>()
        };
        let mut config = Self {
            key_value_store: backends(raw.key_value_store, "key_value_store")?,
            sqlite_database: backends(raw.sqlite_database, "sqlite_database")?,
            variables_provider: raw.variables_provider,
        };
        for provider in &mut config.variables_provider {
            match provider {
                VariablesProviderConfig::Env {
                    dotenv_path: Some(file),
                    ..
                } => *file = base.join(&*file),
                VariablesProviderConfig::Vault(_) => bail!(
                    "{}: the `vault` variables provider is not supported by ledge\n  fix: use `env` or `static` providers",
                    path.display()
                ),
                _ => {}
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spin_runtime_config_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rc.toml");
        std::fs::write(
            &path,
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [sqlite_database.default]\ntype = \"spin\"\npath = \"x.db\"\n\
             [[variables_provider]]\ntype = \"static\"\nvalues = { a = \"b\" }\n",
        )
        .unwrap();
        let config = RuntimeConfig::load(&path).unwrap();
        let store = &config.key_value_store["default"];
        assert_eq!(store.kind, "redis");
        assert_eq!(
            store.settings["url"].as_str(),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(
            store.origin.as_deref(),
            Some(&*format!("{}:1", path.display()))
        );
        let database = &config.sqlite_database["default"];
        assert_eq!(database.kind, "spin");
        assert_eq!(database.resolve(Path::new("x.db")), dir.path().join("x.db"));

        std::fs::write(&path, "[key_value_store.default]\npath = \"x\"\n").unwrap();
        let error = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("rc.toml:1") && error.contains("type"),
            "{error}"
        );
        std::fs::write(&path, "[key_value_stor.default]\ntype = \"spin\"\n").unwrap();
        let error = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("rc.toml:1") && error.contains("key_value_stor"),
            "{error}"
        );
    }
}
