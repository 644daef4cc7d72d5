//! The data tier guests reach through WIT interfaces: key-value stores, SQL databases and
//! variables, each granted per component like an execution role.
//!
//! Each capability has one backend trait or type (`kv::KvStore`, `sqlite::SqlDatabase`,
//! `variables`) and one module per guest interface version on top. [`DataTier`] is built once
//! per app from the runtime config; every instance gets a [`DataView`] of its component's
//! [`Grants`].

pub mod bindings;
pub mod kv;
pub mod replica;
pub mod runtime_config;
pub mod sqlite;
mod sqlite_file;
pub mod startup;
pub mod streams;
pub mod variables;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::manifest::App;
use kv::{SharedStore, SqliteStore};
use replica::Replication;
use replica::bookmark::Consistency;
use runtime_config::{BackendTable, RuntimeConfig, VariablesProviderConfig};
use sqlite::SharedDatabase;
use variables::{ComponentVariables, Provider};

/// The label every app has for its default store and database.
pub const DEFAULT_LABEL: &str = "default";

/// What one component may use.
#[derive(Default)]
pub struct Grants {
    /// Key-value stores by label (only the component's `key_value_stores`).
    pub kv: BTreeMap<String, SharedStore>,
    /// Databases by label (only the component's `sqlite_databases`).
    pub sqlite: BTreeMap<String, SharedDatabase>,
    /// The component's variables.
    pub variables: Arc<ComponentVariables>,
}

/// Where and how an app's stores and databases are opened.
#[derive(Clone, Copy)]
pub struct Opening<'a> {
    /// Where the embedded backends keep their files unless the runtime config says where.
    pub state_dir: &'a Path,
    /// Under `ledge node`: the app's name and the cluster its embedded stores and databases
    /// are replicated through.
    pub replication: Option<(&'a str, &'a dyn Replication)>,
}

impl<'a> Opening<'a> {
    /// Files under `state_dir`, not replicated (`ledge up`).
    pub fn local(state_dir: &'a Path) -> Self {
        Self {
            state_dir,
            replication: None,
        }
    }
}

/// The app's stores, databases and variables.
pub struct DataTier {
    /// Stores by label.
    pub kv: BTreeMap<String, SharedStore>,
    /// Databases by label.
    pub sqlite: BTreeMap<String, SharedDatabase>,
    /// App variables that have a value (for `{{ name }}` templates elsewhere in the manifest).
    pub app_variables: BTreeMap<String, String>,
    grants: BTreeMap<String, Arc<Grants>>,
}

impl DataTier {
    /// Opens every store and database a component of `app` is granted, with the backends of
    /// `config`, and resolves the variables (command-line values first). A SQL transaction
    /// may hold its database's writer for `transaction_limit` at most.
    pub async fn build(
        app: &App,
        config: &RuntimeConfig,
        opening: &Opening<'_>,
        cli_variables: &BTreeMap<String, String>,
        transaction_limit: Duration,
    ) -> Result<Self> {
        let mut kv = BTreeMap::new();
        let mut sqlite = BTreeMap::new();
        for component in app.components.values() {
            for label in &component.key_value_stores {
                if kv.contains_key(label) {
                    continue;
                }
                let section = format!("key_value_store.{label}");
                let backend = match config.key_value_store.get(label) {
                    Some(backend) => backend.clone(),
                    None if label == DEFAULT_LABEL => BackendTable::embedded(section),
                    None => {
                        return Err(anyhow!(app
                            .error_at(component.source_line, format!("component.{}.key_value_stores", component.id))
                            .with_message(format!("the store `{label}` has no backend"))
                            .fix(format!("add `[key_value_store.{label}]` with `type = \"spin\"` or `\"redis\"` to the runtime config (--runtime-config-file)"))));
                    }
                };
                kv.insert(label.clone(), kv::open(label, &backend, opening).await?);
            }
            for label in &component.sqlite_databases {
                if sqlite.contains_key(label) {
                    continue;
                }
                let section = format!("sqlite_database.{label}");
                let backend = match config.sqlite_database.get(label) {
                    Some(backend) => backend.clone(),
                    None if label == DEFAULT_LABEL => BackendTable::embedded(section),
                    None => {
                        return Err(anyhow!(app
                            .error_at(component.source_line, format!("component.{}.sqlite_databases", component.id))
                            .with_message(format!("the database `{label}` has no backend"))
                            .fix(format!("add `[sqlite_database.{label}]` with `type = \"spin\"` to the runtime config (--runtime-config-file)"))));
                    }
                };
                let database = sqlite::open(label, &backend, opening, transaction_limit)?;
                sqlite.insert(label.clone(), database);
            }
        }

        let mut providers = vec![Provider::Static(cli_variables.clone())];
        if config.variables_provider.is_empty() {
            providers.extend(Provider::default_env());
        }
        for provider in &config.variables_provider {
            providers.push(match provider {
                VariablesProviderConfig::Static { values } => Provider::Static(values.clone()),
                VariablesProviderConfig::Env {
                    prefix,
                    dotenv_path,
                } => Provider::Env {
                    prefix: prefix.clone().unwrap_or_else(|| "SPIN_VARIABLE".into()),
                    dotenv: match dotenv_path {
                        Some(path) => variables::read_dotenv(path)?,
                        None => BTreeMap::new(),
                    },
                },
                VariablesProviderConfig::Vault(_) => {
                    unreachable!("rejected when the runtime config is read")
                }
            });
        }
        let resolved = variables::resolve(app, &providers)?;

        let grants = app
            .components
            .values()
            .map(|component| {
                let grants = Grants {
                    kv: component
                        .key_value_stores
                        .iter()
                        .map(|l| (l.clone(), kv[l].clone()))
                        .collect(),
                    sqlite: component
                        .sqlite_databases
                        .iter()
                        .map(|l| (l.clone(), sqlite[l].clone()))
                        .collect(),
                    variables: resolved.components[&component.id].clone(),
                };
                (component.id.clone(), Arc::new(grants))
            })
            .collect();
        Ok(Self {
            kv,
            sqlite,
            app_variables: resolved.app,
            grants,
        })
    }

    /// What `component` may use.
    pub fn grants(&self, component: &str) -> Arc<Grants> {
        self.grants.get(component).cloned().unwrap_or_default()
    }
}

/// Opens the store the host keeps its own state `name` in (the gateway's quota counts) under
/// `state_dir`: the embedded backend, committed before each write returns, and never granted
/// to a guest.
pub fn host_store(state_dir: &Path, name: &str) -> Result<SharedStore> {
    let path = state_dir.join("host").join(format!("{name}.db"));
    let store = SqliteStore::open(&path)
        .with_context(|| format!("cannot open the host's store at {}", path.display()))?;
    Ok(store.shared())
}

/// The data part of one instance's view: its grants and the resource table it shares with
/// WASI.
pub struct DataView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// What the component may use.
    pub grants: &'a Grants,
    /// What the instance's reads must include and its writes raise (replicated data).
    pub consistency: &'a Arc<Consistency>,
}

/// The `HasData` marker for the data interfaces.
pub struct Data;

impl HasData for Data {
    type Data<'a> = DataView<'a>;
}

/// A store type whose instances can give a [`DataView`].
pub trait HasDataView: Send + 'static {
    /// The view.
    fn data_view(&mut self) -> DataView<'_>;
}

/// Adds every data interface to `linker`.
pub fn add_to_linker<T: HasDataView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{fermyon, spin, wasi};
    fermyon::spin::key_value::add_to_linker::<T, Data>(linker, T::data_view)?;
    fermyon::spin::sqlite::add_to_linker::<T, Data>(linker, T::data_view)?;
    fermyon::spin::variables::add_to_linker::<T, Data>(linker, T::data_view)?;
    spin::key_value::key_value::add_to_linker::<T, Data>(linker, T::data_view)?;
    spin::sqlite::sqlite::add_to_linker::<T, Data>(linker, T::data_view)?;
    spin::variables::variables::add_to_linker::<T, Data>(linker, T::data_view)?;
    wasi::keyvalue::store::add_to_linker::<T, Data>(linker, T::data_view)?;
    wasi::keyvalue::atomics::add_to_linker::<T, Data>(linker, T::data_view)?;
    wasi::keyvalue::batch::add_to_linker::<T, Data>(linker, T::data_view)?;
    wasi::config::store::add_to_linker::<T, Data>(linker, T::data_view)?;
    Ok(())
}
