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

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

/// The parsed file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Backends of key-value store labels.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KvBackendConfig>,
    /// Backends of database labels.
    #[serde(default)]
    pub sqlite_database: BTreeMap<String, SqliteBackendConfig>,
    /// Variable providers, in priority order.
    #[serde(default)]
    pub variables_provider: Vec<VariablesProviderConfig>,
}

/// `[key_value_store.<label>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum KvBackendConfig {
    /// An embedded SQLite file.
    #[serde(rename = "spin")]
    Spin {
        /// The file (default `<state-dir>/kv/<label>.db`).
        path: Option<PathBuf>,
    },
    /// A Redis server.
    #[serde(rename = "redis")]
    Redis {
        /// `redis://host:port/db`.
        url: String,
    },
}

/// `[sqlite_database.<label>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SqliteBackendConfig {
    /// An embedded SQLite file.
    #[serde(rename = "spin")]
    Spin {
        /// The file (default `<state-dir>/sqlite/<label>.db`).
        path: Option<PathBuf>,
    },
    /// A remote libSQL database: recognised so the error can say it is not supported.
    #[serde(rename = "libsql")]
    Libsql {
        /// The database URL.
        url: String,
        /// The access token.
        token: String,
    },
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
        let mut config: Self = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| format!(":{}", text[..span.start].matches('\n').count() + 1))
                .unwrap_or_default();
            anyhow::anyhow!("{}{line}: {}", path.display(), e.message())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for backend in config.key_value_store.values_mut() {
            if let KvBackendConfig::Spin { path: Some(file) } = backend {
                *file = base.join(&*file);
            }
        }
        for (label, backend) in config.sqlite_database.iter_mut() {
            match backend {
                SqliteBackendConfig::Spin { path: Some(file) } => *file = base.join(&*file),
                SqliteBackendConfig::Spin { path: None } => {}
                SqliteBackendConfig::Libsql { .. } => bail!(
                    "{}: `sqlite_database.{label}` uses libsql, which ledge does not support yet\n  fix: use `type = \"spin\"` (a local SQLite file)",
                    path.display()
                ),
            }
        }
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
        assert!(matches!(
            config.key_value_store["default"],
            KvBackendConfig::Redis { .. }
        ));
        assert!(
            matches!(&config.sqlite_database["default"], SqliteBackendConfig::Spin { path: Some(p) } if p == &dir.path().join("x.db"))
        );
        std::fs::write(
            &path,
            "[key_value_store.default]\ntype = \"spin\"\npth = \"x\"\n",
        )
        .unwrap();
        let error = RuntimeConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("rc.toml:") && error.contains("pth"),
            "{error}"
        );
    }
}
