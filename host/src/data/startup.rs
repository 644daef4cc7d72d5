//! Start-up data from the command line: `--key-value KEY=VALUE` (into the `default` store),
//! `--sqlite "SQL"` (run on every start, as in Spin) and `--sqlite @file.sql[:db]`
//! (migrations: applied once each, in the order given, and recorded in the database so a
//! restart does not apply them again).

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use sha2::{Digest, Sha256};

use super::sqlite::Value;
use super::{DEFAULT_LABEL, DataTier};

/// The table where applied migrations are recorded.
const MIGRATIONS_TABLE: &str = "_ledge_migrations";

/// Writes the `--key-value` pairs into the `default` store.
pub async fn apply_key_values(tier: &DataTier, pairs: &[(String, String)]) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let store = tier.kv.get(DEFAULT_LABEL).ok_or_else(|| {
        anyhow!("--key-value needs a component with `key_value_stores = [\"default\"]`")
    })?;
    for (key, value) in pairs {
        store
            .set(key, value.as_bytes())
            .await
            .map_err(|e| anyhow!("--key-value {key}: {e}"))?;
    }
    Ok(())
}

/// Runs the `--sqlite` arguments in order.
pub fn apply_sqlite(tier: &DataTier, arguments: &[String], base_dir: &Path) -> Result<()> {
    for argument in arguments {
        match argument.strip_prefix('@') {
            Some(file_and_label) => {
                let (file, label) = match file_and_label.rsplit_once(':') {
                    Some((file, label)) if !label.contains('/') => (file, label),
                    _ => (file_and_label, DEFAULT_LABEL),
                };
                migrate(tier, &base_dir.join(file), label)?;
            }
            None => {
                let database = tier.sqlite.get(DEFAULT_LABEL).ok_or_else(|| {
                    anyhow!("--sqlite needs a component with `sqlite_databases = [\"default\"]`")
                })?;
                database
                    .execute_batch_blocking(argument)
                    .map_err(|e| anyhow!("--sqlite \"{argument}\": {e}"))?;
            }
        }
    }
    Ok(())
}

/// Applies the migration `file` to database `label` unless it was applied before.
fn migrate(tier: &DataTier, file: &Path, label: &str) -> Result<()> {
    let database = tier.sqlite.get(label).ok_or_else(|| {
        anyhow!(
            "--sqlite @{}:{label}: no component is granted the database `{label}`",
            file.display()
        )
    })?;
    let sql = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the migration {}", file.display()))?;
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let checksum = format!("{:x}", Sha256::digest(sql.as_bytes()));
    database
        .execute_batch_blocking(&format!(
            "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
        ))
        .map_err(|e| anyhow!("{e}"))?;
    let applied = database
        .query_blocking(
            &format!("SELECT checksum FROM {MIGRATIONS_TABLE} WHERE name = ?1"),
            &[Value::Text(name.clone())],
        )
        .map_err(|e| anyhow!("{e}"))?;
    match applied.rows.first().and_then(|row| row.first()) {
        Some(Value::Text(previous)) if *previous == checksum => {
            tracing::debug!("migration {name} already applied to `{label}`");
            return Ok(());
        }
        Some(_) => bail!(
            "the migration {} was already applied to `{label}` with different contents\n  fix: add a new migration file instead of editing an applied one",
            file.display()
        ),
        None => {}
    }
    // The migration and its record commit together. A line break ends a trailing `--` comment
    // of the file; the name and checksum are quoted as SQL string literals.
    database
        .execute_batch_blocking(&format!(
            "{sql}\n;\nINSERT INTO {MIGRATIONS_TABLE} (name, checksum) VALUES ({}, {});",
            sql_text(&name),
            sql_text(&checksum)
        ))
        .map_err(|e| anyhow!("the migration {} failed: {e}", file.display()))?;
    tracing::info!("applied migration {name} to `{label}`");
    Ok(())
}

/// `text` as a SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
