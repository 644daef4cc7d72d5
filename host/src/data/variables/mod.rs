//! Application variables and secrets: resolved once at start-up from the providers, then each
//! component sees its own `variables` (whose values may be `{{ name }}` templates over the app
//! variables) through `fermyon:spin/variables@2.0.0`, `spin:variables/variables@3.0.0` and
//! `wasi:config/store`.
//!
//! Providers, first match wins: `--variable` on the command line, then the runtime config's
//! `[[variables_provider]]` entries in order (`env`, `static`), then the environment
//! (`SPIN_VARIABLE_<NAME>`, `LEDGE_VARIABLE_<NAME>`) when the runtime config names no
//! provider, then the variable's `default`. Secret values never reach the log.

pub mod guest;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::manifest::{App, Variable, template};

/// Where a variable's value can come from.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Explicit values (`--variable`, or a `static` provider).
    Static(BTreeMap<String, String>),
    /// Environment variables `<prefix>_<NAME>`, and a dotenv file's entries under the same names.
    Env {
        /// The prefix, e.g. `SPIN_VARIABLE`.
        prefix: String,
        /// Entries read from a dotenv file.
        dotenv: BTreeMap<String, String>,
    },
}

impl Provider {
    /// The environment provider Spin uses by default, plus ledge's own prefix.
    pub fn default_env() -> Vec<Self> {
        ["SPIN_VARIABLE", "LEDGE_VARIABLE"]
            .into_iter()
            .map(|prefix| Provider::Env {
                prefix: prefix.into(),
                dotenv: BTreeMap::new(),
            })
            .collect()
    }

    fn lookup(&self, name: &str) -> Option<String> {
        match self {
            Provider::Static(values) => values.get(name).cloned(),
            Provider::Env { prefix, dotenv } => {
                let key = format!("{prefix}_{}", name.to_ascii_uppercase());
                std::env::var(&key)
                    .ok()
                    .or_else(|| dotenv.get(&key).cloned())
            }
        }
    }
}

/// A component's resolved variables: name -> value.
#[derive(Debug, Default)]
pub struct ComponentVariables {
    values: BTreeMap<String, String>,
}

/// Why a guest's variable lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// The name is not lower snake case starting with a letter.
    InvalidName(String),
    /// The component has no such variable.
    Undefined(String),
}

impl ComponentVariables {
    /// The value of `name`, as a guest asks for it.
    pub fn get(&self, name: &str) -> Result<String, VariableError> {
        if !crate::manifest::is_variable_name(name) {
            return Err(VariableError::InvalidName(format!(
                "`{name}` is not a valid variable name (lower snake case, starting with a letter)"
            )));
        }
        self.values.get(name).cloned().ok_or_else(|| {
            VariableError::Undefined(format!("no variable `{name}` for this component"))
        })
    }

    /// Every variable, for `wasi:config/store.get-all`.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The outcome of [`resolve`].
pub struct Resolved {
    /// App variables that have a value.
    pub app: BTreeMap<String, String>,
    /// Each component's variables, by component id.
    pub components: BTreeMap<String, Arc<ComponentVariables>>,
}

/// Resolves the app's variables and every component's, or says which required one is missing.
pub fn resolve(app: &App, providers: &[Provider]) -> Result<Resolved> {
    let mut app_values = BTreeMap::new();
    for (name, variable) in &app.variables {
        match lookup(name, variable, providers) {
            Some(value) => {
                if variable.secret {
                    tracing::debug!("variable `{name}` resolved (secret, value withheld)");
                }
                app_values.insert(name.clone(), value);
            }
            None if variable.required => bail!(
                "the app variable `{name}` is required but has no value\n  fix: set SPIN_VARIABLE_{} in the environment, pass `--variable {name}=<value>`, or give it a `default`",
                name.to_ascii_uppercase()
            ),
            None => {}
        }
    }
    let mut components = BTreeMap::new();
    for component in app.components.values() {
        let mut values = BTreeMap::new();
        for (name, raw) in &component.variables {
            let value = template::render(raw, &app_values).map_err(|missing| {
                anyhow::anyhow!(
                    "{}: `component.{}.variables.{name}` uses `{{{{ {missing} }}}}`, which is not a defined app variable with a value\n  fix: declare `[variables] {missing} = {{ default = \"...\" }}` or give it a value",
                    app.manifest_path.display(),
                    component.id
                )
            })?;
            values.insert(name.clone(), value);
        }
        components.insert(
            component.id.clone(),
            Arc::new(ComponentVariables { values }),
        );
    }
    Ok(Resolved {
        app: app_values,
        components,
    })
}

fn lookup(name: &str, variable: &Variable, providers: &[Provider]) -> Option<String> {
    providers
        .iter()
        .find_map(|provider| provider.lookup(name))
        .or_else(|| variable.default.clone())
}

/// Reads a dotenv file: `KEY=VALUE` lines, `#` comments, optional quotes around values.
pub fn read_dotenv(path: &std::path::Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the dotenv file {}: {e}", path.display()))?;
    let mut values = BTreeMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            values.insert(key.trim().to_string(), value.to_string());
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_lookup() {
        let variables = ComponentVariables {
            values: BTreeMap::from([("api_key".to_string(), "k".to_string())]),
        };
        assert_eq!(variables.get("api_key"), Ok("k".into()));
        for bad in ["invalid-name", "invalid!name", "4invalidname"] {
            assert!(
                matches!(variables.get(bad), Err(VariableError::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            variables.get("missing"),
            Err(VariableError::Undefined(_))
        ));
    }
}
