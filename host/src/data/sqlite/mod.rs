//! SQL databases: one SQLite file per database label under the state directory, and the guest
//! interfaces on top (`fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.1.0`).
//!
//! A statement runs on a reader connection when SQLite says it is read-only, otherwise on the
//! database's single writer. Either way the guest gets the same result shape, plus the
//! `last_insert_rowid` and `changes` the statement left behind.
//!
//! Those two belong to the guest's connection, not to the SQLite connection that ran the
//! statement (the writer is shared, readers are pooled), so each statement starts from the
//! guest connection's [`LastWrite`]: `SELECT last_insert_rowid()` and `SELECT changes()` see
//! the guest's own write.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

pub mod guest;

use super::sqlite_file::SqliteFile;

/// A value as the guest interfaces carry it.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastWrite {
    /// The rowid of the connection's most recent successful insert.
    pub last_insert_rowid: i64,
    /// Rows changed by the connection's most recent write.
    pub changes: u64,
}

/// The outcome of one statement.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// The guest connection's last write, including this statement.
    pub last_write: LastWrite,
}

/// Why a statement failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    /// The disk or database is full.
    #[error("the database is full")]
    DatabaseFull,
    /// SQLite's own message (syntax errors, constraint violations, ...).
    #[error("{0}")]
    Io(String),
}

impl From<rusqlite::Error> for SqlError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DatabaseFull,
            _ => Self::Io(error.to_string()),
        }
    }
}

/// One database.
pub struct Database {
    file: Arc<SqliteFile>,
}

impl Database {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        Ok(Self {
            file: SqliteFile::open(path, override_changes)?,
        })
    }

    /// Runs one statement with positional `params` for a guest connection whose writes so far
    /// left `since`.
    pub async fn execute(
        &self,
        statement: String,
        params: Vec<Value>,
        since: LastWrite,
    ) -> Result<QueryResult, SqlError> {
        let read_only = self
            .file
            .read(|db| {
                let prepared = db.prepare_cached(&statement)?;
                if prepared.readonly() {
                    run(db, prepared, &params, since).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await?;
        if let Some(result) = read_only {
            return Ok(result);
        }
        Ok(self
            .file
            .write(move |db| {
                let prepared = db.prepare_cached(&statement)?;
                run(db, prepared, &params, since)
            })
            .await?)
    }

    /// Runs several `;`-separated statements in one transaction (migrations, `--sqlite`).
    pub fn execute_batch_blocking(&self, sql: &str) -> Result<(), SqlError> {
        Ok(self.file.write_blocking(|db| {
            let tx = db.transaction()?;
            tx.execute_batch(sql)?;
            tx.commit()
        })?)
    }

    /// Runs `work` on the writer, on this thread (start-up bookkeeping).
    pub fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SqlError> {
        Ok(self.file.write_blocking(work)?)
    }
}

thread_local! {
    /// The `changes()` of the guest connection whose statement runs on this thread, if one does.
    static GUEST_CHANGES: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes SQL's `changes()` answer for the guest connection whose statement runs, as
/// `last_insert_rowid()` does. SQLite has no setter for it (there is one for the rowid), so the
/// built-in is overridden on each connection; outside a guest statement it is the built-in.
/// (Inside a trigger's body it answers the guest's value too, not the trigger's own count.)
fn override_changes(db: &Connection) -> rusqlite::Result<()> {
    db.create_scalar_function("changes", 0, FunctionFlags::SQLITE_UTF8, |context| {
        let changes = match GUEST_CHANGES.get() {
            Some(changes) => changes,
            // SAFETY: the connection is only read, and only while it runs this call.
            None => unsafe { context.get_connection()? }.changes(),
        };
        Ok(i64::try_from(changes).unwrap_or(i64::MAX))
    })
}

fn run(
    db: &Connection,
    statement: rusqlite::CachedStatement<'_>,
    params: &[Value],
    since: LastWrite,
) -> rusqlite::Result<QueryResult> {
    // SAFETY: `db` is a live connection and this thread has it for the whole statement.
    unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(db.handle(), since.last_insert_rowid) };
    let _guest = GuestChanges::set(since.changes);
    run_from(db, statement, params, since)
}

/// Holds [`GUEST_CHANGES`] for one guest statement and clears it when dropped, even by a panic
/// (the thread goes on to run other work).
struct GuestChanges;

impl GuestChanges {
    fn set(changes: u64) -> Self {
        GUEST_CHANGES.set(Some(changes));
        Self
    }
}

impl Drop for GuestChanges {
    fn drop(&mut self) {
        GUEST_CHANGES.set(None);
    }
}

/// Runs `statement` once the connection has been given the guest connection's `since`.
fn run_from(
    db: &Connection,
    mut statement: rusqlite::CachedStatement<'_>,
    params: &[Value],
    since: LastWrite,
) -> rusqlite::Result<QueryResult> {
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = statement.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(width);
        for index in 0..width {
            values.push(Value::from(row.get_ref(index)?));
        }
        rows.push(values);
    }
    drop(cursor);
    Ok(QueryResult {
        columns,
        rows,
        last_write: LastWrite {
            last_insert_rowid: db.last_insert_rowid(),
            changes: if statement.readonly() {
                since.changes
            } else {
                db.changes()
            },
        },
    })
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Integer(value) => ValueRef::Integer(*value),
            Value::Real(value) => ValueRef::Real(*value),
            Value::Text(value) => ValueRef::Text(value.as_bytes()),
            Value::Blob(value) => ValueRef::Blob(value),
            Value::Null => ValueRef::Null,
        }))
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Integer(value) => Value::Integer(value),
            ValueRef::Real(value) => Value::Real(value),
            ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
            ValueRef::Null => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_round_trip_exactly_and_errors_keep_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap();
        db.execute_batch_blocking("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
            .unwrap();
        let values = vec![
            Value::Integer(i64::MIN),
            Value::Real(-0.1),
            Value::Text("nul\0 and emoji 🦀".into()),
            Value::Blob(vec![0, 255, 7]),
            Value::Null,
        ];
        let insert = db
            .execute(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?)".into(),
                values.clone(),
                LastWrite::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            insert.last_write,
            LastWrite {
                last_insert_rowid: 1,
                changes: 1
            }
        );
        db.execute(
            "INSERT INTO t (i) VALUES (?)".into(),
            vec![Value::Integer(i64::MAX)],
            LastWrite::default(),
        )
        .await
        .unwrap();
        let read = db
            .execute(
                "SELECT i, r, s, b, n FROM t ORDER BY rowid".into(),
                vec![],
                LastWrite::default(),
            )
            .await
            .unwrap();
        assert_eq!(read.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(read.rows[0], values);
        assert_eq!(read.rows[1][0], Value::Integer(i64::MAX));
        let error = db
            .execute("SELEC oops".into(), vec![], LastWrite::default())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("syntax error"), "{error}");
        assert_eq!(
            db.execute(
                "SELECT count(*) FROM t".into(),
                vec![],
                LastWrite::default()
            )
            .await
            .unwrap()
            .rows[0][0],
            Value::Integer(2)
        );
    }

    #[tokio::test]
    async fn last_insert_rowid_and_changes_belong_to_the_guest_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap();
        db.execute_batch_blocking("CREATE TABLE t (s TEXT)")
            .unwrap();
        let insert = |since| db.execute("INSERT INTO t VALUES ('x')".into(), vec![], since);
        let first = insert(LastWrite::default()).await.unwrap().last_write;
        let other = insert(LastWrite::default()).await.unwrap().last_write;
        assert_eq!((first.last_insert_rowid, other.last_insert_rowid), (1, 2));
        let asked = db
            .execute("SELECT last_insert_rowid()".into(), vec![], first)
            .await
            .unwrap();
        assert_eq!(asked.rows, [[Value::Integer(1)]]);
        assert_eq!(
            asked.last_write, first,
            "a read leaves the last write as it was"
        );
        // `changes()` too: the other connection's delete of two rows is not this one's.
        let deleted = db
            .execute("DELETE FROM t".into(), vec![], other)
            .await
            .unwrap()
            .last_write;
        assert_eq!(deleted.changes, 2);
        let changes = |since| db.execute("SELECT changes()".into(), vec![], since);
        assert_eq!(changes(first).await.unwrap().rows, [[Value::Integer(1)]]);
        assert_eq!(changes(deleted).await.unwrap().rows, [[Value::Integer(2)]]);
    }
}
