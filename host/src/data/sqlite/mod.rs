//! SQL databases: the backend seam ([`SqlDatabase`], [`SqlConnection`]), the embedded SQLite
//! backend (one file per database label under the state directory), and the guest interfaces on
//! top (`fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.1.0`).
//!
//! A guest's connection behaves as one SQLite connection would: its statements run in order,
//! `BEGIN` ... `COMMIT`/`ROLLBACK` across `execute` calls is one transaction, and
//! `last_insert_rowid`/`changes` are its own. A backend (embedded, replicated, or a server)
//! plugs in as one more implementation of the two traits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use rusqlite::ErrorCode;

use super::Opening;
use super::replica::Replica;
use super::replica::bookmark::Consistency;
use super::runtime_config::BackendTable;

mod embedded;
pub mod guest;
mod replicated;

pub use embedded::EmbeddedDatabase;

/// The SQL backends, by their `type` in the runtime config. One line per backend.
const BACKENDS: &[SqlBackend] = &[embedded::BACKEND];

/// A SQL backend, as [`BACKENDS`] lists it.
pub struct SqlBackend {
    /// Its `type` in the runtime config.
    pub kind: &'static str,
    /// Opens database `label` as its table says (files under the state directory unless the
    /// table says where); a transaction may hold its writer for the duration at most.
    pub open: fn(&str, &BackendTable, &Opening<'_>, Duration) -> Result<SharedDatabase>,
}

/// Opens database `label` with the backend its `table` names (`opening` says where the
/// embedded backend's files go by default, and whether they are replicated); a transaction may
/// hold the writer for `transaction_limit`.
pub fn open(
    label: &str,
    table: &BackendTable,
    opening: &Opening<'_>,
    transaction_limit: Duration,
) -> Result<SharedDatabase> {
    let Some(backend) = BACKENDS.iter().find(|backend| backend.kind == table.kind) else {
        let kinds: Vec<&str> = BACKENDS.iter().map(|backend| backend.kind).collect();
        return Err(table.error(format!(
            "`type = \"{}\"` is not a SQL backend ledge has\n  fix: use one of {kinds:?} (a local SQLite file)",
            table.kind
        )));
    };
    (backend.open)(label, table, opening, transaction_limit)
        .map_err(|e| anyhow!("cannot open the database `{label}`: {e:#}"))
}

/// How long a transaction may hold the writer when no `--request-timeout` is set (with one, a
/// transaction may last as long as the request timeout). Past it, the transaction is rolled
/// back and its connection's next statement fails with `io(...)` saying so.
pub const DEFAULT_TRANSACTION_LIMIT: Duration = Duration::from_secs(30);

/// A value as the guest interfaces carry it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// `integer(s64)`.
    Integer(i64),
    /// `real(f64)`.
    Real(f64),
    /// `text(string)`.
    Text(String),
    /// `blob(list<u8>)`.
    Blob(Vec<u8>),
    /// `null`.
    Null,
}

/// What a guest connection's writes have left so far, as SQLite's `last_insert_rowid()` and
/// `changes()` report them; a read leaves both as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastWrite {
    /// The rowid of the connection's most recent successful insert.
    pub last_insert_rowid: i64,
    /// Rows changed by the connection's most recent write.
    pub changes: u64,
}

/// The outcome of one statement.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// The guest connection's last write, including this statement.
    pub last_write: LastWrite,
}

/// Why a statement failed.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SqlError {
    /// The disk or database is full.
    #[error("the database is full")]
    DatabaseFull,
    /// SQLite's own message (syntax errors, constraint violations, ...): the same statement
    /// on the same data fails the same way.
    #[error("{0}")]
    Io(String),
    /// The database could not take the statement now (busy or locked; on a replicated
    /// database, the writer away or changed): it may succeed if made again. A guest sees it as
    /// `io`, as Spin has no other variant for it.
    #[error("{0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for SqlError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DatabaseFull,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Io(error.to_string()),
        }
    }
}

/// A SQL database backend.
pub trait SqlDatabase: Send + Sync {
    /// A new connection, as a guest's `open` makes one, reading and writing at `consistency`
    /// (which only a replicated database heeds).
    fn connect(&self, consistency: &Arc<Consistency>) -> Arc<dyn SqlConnection>;

    /// Runs several `;`-separated statements in one transaction, on this thread (start-up
    /// SQL).
    fn execute_batch_blocking(&self, sql: &str) -> Result<(), SqlError>;

    /// This node's copy of the database when it is replicated (`ledge node`).
    fn replica(&self) -> Option<Arc<Replica>>;
}

/// One connection to a database, as a guest holds it.
#[async_trait::async_trait]
pub trait SqlConnection: Send + Sync {
    /// Runs one statement with positional `params`, after the connection's earlier ones.
    async fn execute(&self, statement: String, params: Vec<Value>)
    -> Result<QueryResult, SqlError>;

    /// What the connection's writes have left so far.
    async fn last_write(&self) -> LastWrite;
}

/// A shared database.
pub type SharedDatabase = Arc<dyn SqlDatabase>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What opening `[sqlite_database.default]` of `kind` with `settings` says.
    fn open_error(kind: &str, settings: toml::Table) -> String {
        let table = BackendTable {
            kind: kind.into(),
            settings,
            section: "sqlite_database.default".into(),
            origin: Some("rc.toml:1".into()),
            base_dir: ".".into(),
        };
        let state = tempfile::tempdir().unwrap();
        open(
            "default",
            &table,
            &Opening::local(state.path()),
            DEFAULT_TRANSACTION_LIMIT,
        )
        .err()
        .unwrap()
        .to_string()
    }

    #[test]
    fn an_unsupported_type_is_refused_with_the_one_to_use() {
        let error = open_error("libsql", toml::Table::new());
        assert!(
            error.contains("`type = \"libsql\"` is not a SQL backend"),
            "{error}"
        );
        assert!(error.contains(r#"["spin"]"#), "{error}");
    }

    #[test]
    fn a_busy_timeout_beyond_what_sqlite_counts_is_refused() {
        let error = open_error("spin", toml::toml! { busy_timeout_ms = 3_000_000_000_i64 });
        assert!(error.contains("more than SQLite allows"), "{error}");
    }
}
