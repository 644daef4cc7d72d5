//! Start-up data from the command line: `--key-value KEY=VALUE` (into the `default` store),
//! `--sqlite "SQL"` (run on every start, as in Spin) and `--sqlite @file.sql[:db]`
//! (migrations: applied once each, in the order given, and recorded in the database so a
//! restart does not apply them again).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::replica::bookmark::{Bookmark, Consistency};
use super::replica::first_keyword;
use super::sqlite::{SharedDatabase, SqlError, Value};
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

/// Runs the `--sqlite` arguments in order: SQL as given, and each `@file.sql[:database]` as
/// a migration.
pub async fn apply_sqlite(tier: &DataTier, arguments: &[String], base_dir: &Path) -> Result<()> {
    for argument in arguments {
        if argument.starts_with('@') {
            apply_migrations(tier, &[Migration::read(argument, base_dir)?]).await?;
            continue;
        }
        let database = tier.sqlite.get(DEFAULT_LABEL).ok_or_else(|| {
            anyhow!("--sqlite needs a component with `sqlite_databases = [\"default\"]`")
        })?;
        database
            .execute_batch_blocking(argument)
            .map_err(|e| anyhow!("--sqlite \"{argument}\": {e}"))?;
    }
    Ok(())
}

/// A schema migration: a SQL file applied once per database, recorded there by its name and
/// checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    /// The database's label (`default` unless `@file.sql:<label>`).
    pub database: String,
    /// The file's name, its key among the database's applied migrations.
    pub name: String,
    /// The file's SQL.
    pub sql: String,
}

impl Migration {
    /// Reads the migration that `--sqlite @file.sql[:database]` names, relative to `base_dir`.
    pub fn read(argument: &str, base_dir: &Path) -> Result<Self> {
        let Some(file_and_label) = argument.strip_prefix('@') else {
            bail!(
                "--sqlite \"{argument}\": a migration is a file\n  \
                 fix: put the SQL in a file and pass --sqlite @file.sql[:database]"
            );
        };
        let (file, label) = match file_and_label.rsplit_once(':') {
            Some((file, label)) if !label.contains('/') => (file, label),
            _ => (file_and_label, DEFAULT_LABEL),
        };
        let file = base_dir.join(file);
        let sql = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read the migration {}", file.display()))?;
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            database: label.to_string(),
            name,
            sql,
        })
    }

    fn checksum(&self) -> String {
        format!("{:x}", Sha256::digest(self.sql.as_bytes()))
    }

    /// What to do given the checksum recorded under this migration's name, if any: whether
    /// it still has to run.
    fn still_to_run(&self, recorded: Option<&Value>) -> Result<bool> {
        match recorded {
            None => Ok(true),
            Some(Value::Text(previous)) if *previous == self.checksum() => Ok(false),
            Some(_) => bail!(
                "the migration {} was already applied to `{}` with different contents\n  \
                 fix: add a new migration file instead of editing an applied one",
                self.name,
                self.database
            ),
        }
    }
}

fn create_migrations_table() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
    )
}

fn select_checksum() -> String {
    format!("SELECT checksum FROM {MIGRATIONS_TABLE} WHERE name = ?1")
}

fn insert_record() -> String {
    format!("INSERT INTO {MIGRATIONS_TABLE} (name, checksum) VALUES (?1, ?2)")
}

/// Applies each of `migrations` unless it was applied before, through a connection as a guest
/// holds one: the migration and its record commit in one transaction (on a replicated
/// database, at the writer, as one entry of the log). Several nodes may try at once: a try
/// that the database could not take now (busy, or the writer away) is rolled back and made
/// again (it runs once: the record decides) for up to [`MIGRATION_TRIES_FOR`]; one that
/// SQLite refuses (a syntax error, a missing table) fails at once. Returns once this node's
/// own copy has the migration, so the version that needs it can be served.
pub async fn apply_migrations(tier: &DataTier, migrations: &[Migration]) -> Result<()> {
    for migration in migrations {
        let (name, label) = (&migration.name, &migration.database);
        let database = tier.sqlite.get(label).ok_or_else(|| {
            anyhow!("the migration {name}: no component is granted the database `{label}`")
        })?;
        // What the tries see at the writer (the record, committed by this node or another)
        // raises the bookmark: this node's copy must reach it.
        let seen = Arc::new(Bookmark::default());
        let consistency = Arc::new(Consistency::default());
        consistency.enter(&seen);
        let deadline = Instant::now() + MIGRATION_TRIES_FOR;
        let applied = loop {
            match try_migration(database, &consistency, migration).await {
                Ok(applied) => break applied,
                Err(Try::Again(error)) if Instant::now() < deadline => {
                    tracing::debug!("the migration {name}: trying again after: {error:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(Try::Again(error) | Try::Never(error)) => return Err(error),
            }
        };
        if applied {
            tracing::info!("applied migration {name} to `{label}`");
        }
        wait_for_own_copy(database, &seen, migration).await?;
    }
    Ok(())
}

/// How long a node keeps trying a migration that fails (the writer busy with another node's
/// try, or away), before it refuses the version that needs it.
const MIGRATION_TRIES_FOR: Duration = Duration::from_secs(20);

/// Why one try of a migration failed.
enum Try {
    /// What may pass: the database was busy, or the writer away or changed.
    Again(anyhow::Error),
    /// What will not: SQLite refused a statement, or it was applied with other contents.
    Never(anyhow::Error),
}

/// Runs `migration` in one transaction on a new connection to `database` at `consistency`,
/// unless it was applied before; whether it ran.
async fn try_migration(
    database: &SharedDatabase,
    consistency: &Arc<Consistency>,
    migration: &Migration,
) -> Result<bool, Try> {
    let name = &migration.name;
    let connection = database.connect(consistency);
    let execute = |statement: String, params: Vec<Value>| async {
        connection
            .execute(statement, params)
            .await
            .map_err(|error| {
                let failed = anyhow!("the migration {name} failed: {error}");
                match error {
                    SqlError::Unavailable(_) => Try::Again(failed),
                    SqlError::Io(_) | SqlError::DatabaseFull => Try::Never(failed),
                }
            })
    };
    execute("BEGIN".into(), Vec::new()).await?;
    let applied = async {
        execute(create_migrations_table(), Vec::new()).await?;
        let recorded = execute(select_checksum(), vec![Value::Text(name.clone())]).await?;
        let recorded = recorded.rows.first().and_then(|row| row.first());
        if !migration.still_to_run(recorded).map_err(Try::Never)? {
            return Ok(false);
        }
        for statement in statements(&migration.sql) {
            execute(statement, Vec::new()).await?;
        }
        let record = vec![Value::Text(name.clone()), Value::Text(migration.checksum())];
        execute(insert_record(), record).await?;
        execute("COMMIT".into(), Vec::new()).await?;
        Ok(true)
    };
    let applied = applied.await;
    if !matches!(applied, Ok(true)) {
        let _ = execute("ROLLBACK".into(), Vec::new()).await;
    }
    applied
}

/// How long a node waits for its own copy to apply a migration committed at the writer.
const OWN_COPY_WAIT: Duration = Duration::from_secs(30);

/// Waits until this node's copy of `database` has applied what the migration's tries saw at
/// the writer (`seen`): the migration and its record. Only the copy's own position counts: a
/// read would be answered by the writer while the copy lacks the table it names.
async fn wait_for_own_copy(
    database: &SharedDatabase,
    seen: &Bookmark,
    migration: &Migration,
) -> Result<()> {
    let Some(replica) = database.replica() else {
        return Ok(());
    };
    if !replica
        .reached(seen.floor(&replica.id), OWN_COPY_WAIT)
        .await
    {
        bail!(
            "the migration {} is committed but this node's copy of `{}` did not apply it \
             within {OWN_COPY_WAIT:?}",
            migration.name,
            migration.database
        );
    }
    Ok(())
}

/// The statements of a SQL script, split as SQLite reads it: a `;` inside a string, a
/// comment or a trigger's body does not end a statement.
fn statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    for (end, _) in sql.match_indices(';') {
        let candidate = &sql[start..=end];
        let Ok(text) = std::ffi::CString::new(candidate) else {
            continue;
        };
        // SAFETY: `text` is a NUL-terminated string that outlives the call.
        if unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) } != 0 {
            if !first_keyword(candidate).is_empty() {
                statements.push(candidate.trim().to_string());
            }
            start = end + 1;
        }
    }
    let rest = &sql[start..];
    if !first_keyword(rest).is_empty() {
        statements.push(rest.trim().to_string());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_splits_where_sqlite_ends_a_statement() {
        let script = "-- prices; first\nCREATE TABLE t (a TEXT);\nINSERT INTO t VALUES ('x;y');\n\
                      CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z;'; END;\n\
                      /* last; */ SELECT 1\n-- the end;\n";
        assert_eq!(
            statements(script),
            [
                "-- prices; first\nCREATE TABLE t (a TEXT);",
                "INSERT INTO t VALUES ('x;y');",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'z;'; END;",
                "/* last; */ SELECT 1\n-- the end;",
            ]
        );
    }
}
