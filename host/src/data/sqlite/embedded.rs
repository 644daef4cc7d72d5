//! The embedded SQL backend: one SQLite file per database ([`SqliteFile`]: one writer, pooled
//! readers), with guest connections that behave like SQLite connections.
//!
//! A guest connection outside a transaction runs a read-only statement on a pooled reader (on
//! the async thread while it takes under a thousand SQLite steps, see `Reader::try_quick`,
//! else again on a blocking thread), a plain `INSERT`/`REPLACE`/`UPDATE`/`DELETE` in the
//! writer's next batch (group commit: writes that arrive together share one commit, each
//! failing alone), and anything else on the writer, leasing it for that one statement. A
//! statement that leaves the writer inside a transaction (`BEGIN`, or `SAVEPOINT` outside
//! one; a read-only `BEGIN` too, to keep it simple) pins the writer to that connection until
//! `COMMIT`/`ROLLBACK`: its reads then run on the writer and see its own writes, while every
//! other connection's reads see only committed data, and their writes wait up to the busy
//! timeout ([`BUSY_TIMEOUT`] unless the runtime config's `busy_timeout_ms` says otherwise) and
//! then fail with `database is locked`, as a second SQLite connection's would. Dropping the
//! connection (the guest's drop, the instance's end, a trap or a timeout) rolls an open
//! transaction back, and so does its time limit.
//!
//! `last_insert_rowid` and `changes` belong to the guest connection, not to the SQLite
//! connection that ran the statement (the writer is shared, readers are pooled), so each
//! statement starts from the guest connection's [`LastWrite`]: `SELECT last_insert_rowid()`
//! and `SELECT changes()` see the guest's own write.
//!
//! (The file is over 600 lines with its tests: about 400 of code, kept with the tests of
//! every transaction rule above.)

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::replicated::{self, RemoteConnections};
use super::{LastWrite, QueryResult, SqlConnection, SqlDatabase, SqlError, Value};
use crate::data::replica::bookmark::Consistency;
use crate::data::replica::{self, Capture, Kind, Replica, first_keyword};
use crate::data::sqlite_file::{
    BUSY_TIMEOUT, Call, Committer, Local, Reader, SqliteFile, WriterLease, off_thread,
};

/// `type = "spin"`: an embedded SQLite file, `path = "..."` (relative to the runtime config;
/// default `<state-dir>/sqlite/<label>.db`) and `busy_timeout_ms` (default 5000).
pub const BACKEND: super::SqlBackend = super::SqlBackend {
    kind: "spin",
    open: open_backend,
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: Option<std::path::PathBuf>,
    /// How long a write waits for another connection's transaction (SQLite's busy timeout).
    busy_timeout_ms: Option<u64>,
}

fn open_backend(
    label: &str,
    table: &crate::data::runtime_config::BackendTable,
    opening: &crate::data::Opening<'_>,
    transaction_limit: Duration,
) -> Result<super::SharedDatabase> {
    let settings: Settings = table.read()?;
    let path = match settings.path {
        Some(path) => table.resolve(&path),
        None => opening.state_dir.join("sqlite").join(format!("{label}.db")),
    };
    let busy_timeout = match settings.busy_timeout_ms {
        None => BUSY_TIMEOUT,
        // SQLite counts its busy timeout in an `int` of milliseconds.
        Some(ms) if ms <= i32::MAX as u64 => Duration::from_millis(ms),
        Some(ms) => {
            return Err(table.error(format!(
                "`busy_timeout_ms = {ms}` is more than SQLite allows\n  fix: use at most {} (about 24 days)",
                i32::MAX
            )));
        }
    };
    let mut database = EmbeddedDatabase::open(&path, transaction_limit, busy_timeout)
        .map_err(|e| anyhow::anyhow!("at {}: {e:#}", path.display()))?;
    if let Some((app, replication)) = opening.replication {
        let replica = Replica::open(replication, app, Kind::Sql, label, database.file.clone())?;
        database.committer = replica.clone();
        database.remote = RemoteConnections::at(&database.file);
        database.replica = Some(replica);
    }
    let database = Arc::new(database);
    if let Some(replica) = &database.replica {
        let writer: Weak<dyn replica::Writer> = Arc::downgrade(&database) as _;
        replica.serve_with(writer);
    }
    Ok(database)
}

/// A database in a SQLite file.
pub struct EmbeddedDatabase {
    file: Arc<SqliteFile>,
    transaction_limit: Duration,
    /// This node's copy of the replicated database, under `ledge node`.
    pub(super) replica: Option<Arc<Replica>>,
    /// How batches of autocommit writes commit: through the log when it is replicated.
    committer: Arc<dyn Committer>,
    /// The connections other nodes hold here while this node is the writer (shared with every
    /// other version of the app open on the file).
    pub(super) remote: RemoteConnections,
}

impl EmbeddedDatabase {
    /// Start-up SQL writes the file directly, past the log: on a replicated database it would
    /// make this copy differ from every other, so it is refused.
    fn refuse_if_replicated(&self) -> Result<(), SqlError> {
        match &self.replica {
            Some(replica) => Err(SqlError::Io(format!(
                "{}: start-up SQL cannot run on a replicated database; create the schema from \
                 the app (CREATE TABLE IF NOT EXISTS), which replicates",
                replica.name
            ))),
            None => Ok(()),
        }
    }

    /// Opens (creating if needed) the database at `path`; a transaction may hold its writer for
    /// `transaction_limit` at most, and a write waits up to `busy_timeout` for another's.
    pub fn open(path: &Path, transaction_limit: Duration, busy_timeout: Duration) -> Result<Self> {
        Ok(Self {
            file: SqliteFile::open(path, "SQL database", override_changes, busy_timeout)?,
            transaction_limit,
            replica: None,
            committer: Arc::new(Local),
            remote: RemoteConnections::default(),
        })
    }

    /// A new connection whose reads include what `consistency` asks for.
    pub(super) fn connection(&self, consistency: &Arc<Consistency>) -> EmbeddedConnection {
        EmbeddedConnection {
            file: self.file.clone(),
            transaction_limit: self.transaction_limit,
            state: Arc::default(),
            replica: self.replica.clone(),
            committer: self.committer.clone(),
            consistency: consistency.clone(),
            remote_id: replica::unique_id(),
            writer_wait: None,
        }
    }

    /// A connection for statements another node forwards here, whose writes wait at most
    /// `writer_wait` for another transaction: less than the sender waits for the answer.
    pub(super) fn forwarded_connection(&self, writer_wait: Duration) -> EmbeddedConnection {
        let mut connection = self.connection(&Arc::default());
        connection.writer_wait = Some(writer_wait);
        connection
    }
}

impl SqlDatabase for EmbeddedDatabase {
    fn connect(&self, consistency: &Arc<Consistency>) -> Arc<dyn SqlConnection> {
        Arc::new(self.connection(consistency))
    }

    fn execute_batch_blocking(&self, sql: &str) -> Result<(), SqlError> {
        self.refuse_if_replicated()?;
        Ok(self.file.write_blocking(|db| {
            let tx = db.transaction()?;
            tx.execute_batch(sql)?;
            tx.commit()
        })?)
    }

    fn replica(&self) -> Option<Arc<Replica>> {
        self.replica.clone()
    }
}

/// A guest's connection to an [`EmbeddedDatabase`].
pub(super) struct EmbeddedConnection {
    pub(super) file: Arc<SqliteFile>,
    transaction_limit: Duration,
    /// Locked for each statement, so one connection's statements run one at a time, in order.
    pub(super) state: Arc<tokio::sync::Mutex<ConnectionState>>,
    /// This node's copy, when the database is replicated.
    pub(super) replica: Option<Arc<Replica>>,
    /// How its batched writes commit (the database's committer).
    committer: Arc<dyn Committer>,
    /// What reads must include, and what writes raise.
    pub(super) consistency: Arc<Consistency>,
    /// The connection's name at the writer, when its statements are forwarded there.
    pub(super) remote_id: String,
    /// How long a write waits for another connection's transaction, when shorter than the
    /// busy timeout (a connection another node forwards to this writer).
    writer_wait: Option<Duration>,
}

#[derive(Default)]
pub(super) struct ConnectionState {
    pub(super) last_write: LastWrite,
    /// The connection is inside a transaction that runs at the writer (on another node).
    pub(super) remote_transaction: bool,
    /// A statement forwarded to the writer got no answer: the writer may hold a transaction
    /// the connection does not know it opened.
    pub(super) lost_at_writer: bool,
    /// The transaction the connection is in, holding the writer.
    transaction: Option<OpenTransaction>,
    /// How many transactions the connection has begun (tells its transactions apart).
    transactions_begun: u64,
    /// Why the last transaction ended without the guest's word, told by the next statement.
    rolled_back: Option<String>,
}

impl ConnectionState {
    /// Whether the connection is inside a transaction on this node.
    pub(super) fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }
}

impl Drop for EmbeddedConnection {
    fn drop(&mut self) {
        if let Some(replica) = &self.replica
            && self
                .state
                .try_lock()
                .is_ok_and(|state| state.remote_transaction || state.lost_at_writer)
        {
            replicated::close_elsewhere(self, replica);
        }
    }
}

/// A transaction in progress: the writer, pinned to one connection until it ends.
struct OpenTransaction {
    /// What it has done so far, as log operations (a replicated database). Declared before
    /// the writer: a capture's session must be deleted while its connection is still held.
    capture: Option<Capture>,
    writer: WriterLease,
    deadline: Instant,
    number: u64,
}

impl EmbeddedConnection {
    fn over_limit(&self) -> String {
        format!(
            "the transaction was rolled back: it ran past its limit of {} (the request timeout, or {} without one)",
            humantime::format_duration(self.transaction_limit),
            humantime::format_duration(super::DEFAULT_TRANSACTION_LIMIT)
        )
    }

    /// Ends the transaction `number` at `deadline` if it is still open then; a statement of
    /// it still running is stopped at the same moment by the writer's deadline.
    fn watch(&self, number: u64, deadline: Instant) {
        let state: Weak<tokio::sync::Mutex<ConnectionState>> = Arc::downgrade(&self.state);
        let message = self.over_limit();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            let mut state = state.lock().await;
            if state
                .transaction
                .as_ref()
                .is_some_and(|open| open.number == number)
            {
                tracing::warn!("{message}");
                state.transaction = None;
                state.rolled_back = Some(message);
            }
        });
    }
}

#[async_trait::async_trait]
impl SqlConnection for EmbeddedConnection {
    async fn execute(
        &self,
        statement: String,
        params: Vec<Value>,
    ) -> Result<QueryResult, SqlError> {
        let mut state = self.state.lock().await;
        let (result, position) = match &self.replica {
            Some(replica) if state.transaction.is_none() && !replica.is_writer() => {
                replicated::execute_elsewhere(self, &mut state, replica, statement, params).await?
            }
            Some(replica) if state.transaction.is_none() => {
                // The writer reads its own copy either way; see `Replica::caught_up`.
                replica.caught_up(&self.consistency).await;
                self.execute_here(&mut state, statement, params).await?
            }
            _ => self.execute_here(&mut state, statement, params).await?,
        };
        if let Some(replica) = &self.replica {
            self.consistency.raise(&replica.id, position);
        }
        Ok(result)
    }

    async fn last_write(&self) -> LastWrite {
        self.state.lock().await.last_write
    }
}

impl EmbeddedConnection {
    /// Runs one statement on this node's file, as its writer when it writes; returns the
    /// position a replicated write committed at (0 for anything else).
    pub(super) async fn execute_here(
        &self,
        state: &mut ConnectionState,
        statement: String,
        params: Vec<Value>,
    ) -> Result<(QueryResult, u64), SqlError> {
        if let Some(reason) = state.rolled_back.take() {
            return Err(SqlError::Io(reason));
        }
        let since = state.last_write;
        if state.transaction.is_none() && is_batched(&statement) {
            let committer = &self.committer;
            let (result, position) = self
                .file
                .write_batched(committer, Vec::new(), self.writer_wait, move |db| {
                    let run = Run {
                        statement: &statement,
                        params: &params,
                        since,
                    };
                    run.on(db)
                })
                .await?;
            state.last_write = result.last_write;
            return Ok((result, position));
        }
        let open = state.transaction.take();
        let mut reader = match open {
            Some(_) => None,
            None => Some(self.file.reader().await?),
        };
        if let Some(quick) = reader.as_mut() {
            let run = Run {
                statement: &statement,
                params: &params,
                since,
            };
            let read = |db: &Connection| match is_read(db, &run)? {
                true => run.on(db).map(Some),
                false => Ok(None),
            };
            match quick.try_quick(read) {
                Some(Ok(Some(result))) => {
                    state.last_write = result.last_write;
                    return Ok((result, 0));
                }
                // A write: it runs on the writer.
                Some(Ok(None)) => reader = None,
                Some(Err(error)) => return Err(error.into()),
                // Too long to run here: it runs again off-thread.
                None => {}
            }
        }
        let file = self.file.clone();
        let writer_wait = self.writer_wait;
        let (transaction_meta, writer) = match open {
            Some(open) => (
                Some((open.deadline, open.number)),
                Some((open.capture, open.writer)),
            ),
            None => (None, None),
        };
        let replica = self.replica.clone();
        let (result, writer) = off_thread(move |call| {
            let run = Run {
                statement: &statement,
                params: &params,
                since,
            };
            let replica = replica.as_deref();
            execute_blocking(&file, call, &run, writer, writer_wait, reader, replica)
        })
        .await;
        if let Ok((result, _)) = &result {
            state.last_write = result.last_write;
        }
        if transaction_meta.is_some_and(|(deadline, _)| Instant::now() >= deadline) {
            // The writer's deadline interrupted the statement, or it ended just past it.
            drop(writer);
            return Err(SqlError::Io(self.over_limit()));
        }
        let Some((capture, writer)) = writer else {
            return result;
        };
        let (deadline, number) = match transaction_meta {
            Some(meta) => meta,
            None => {
                // This statement began a transaction.
                state.transactions_begun += 1;
                let deadline = Instant::now() + self.transaction_limit;
                writer.set_deadline(deadline);
                self.watch(state.transactions_begun, deadline);
                (deadline, state.transactions_begun)
            }
        };
        state.transaction = Some(OpenTransaction {
            capture,
            writer,
            deadline,
            number,
        });
        result
    }
}

/// One guest statement to run.
pub(super) struct Run<'a> {
    pub(super) statement: &'a str,
    pub(super) params: &'a [Value],
    /// The guest connection's last write before it.
    pub(super) since: LastWrite,
}

impl Run<'_> {
    /// Runs the statement on `db`.
    pub(super) fn on(&self, db: &Connection) -> rusqlite::Result<QueryResult> {
        run(
            db,
            db.prepare_cached(self.statement)?,
            self.params,
            self.since,
        )
    }
}

/// The writer an open transaction holds, after what it has captured for a replicated database
/// (in that order, so the capture's session is deleted while the connection is still held).
type HeldWriter = (Option<Capture>, WriterLease);

/// Runs one statement of a guest connection: on `reader` if it is read-only and the
/// connection is outside a transaction, else on the writer (the connection's own `writer`
/// inside a transaction, with what it has captured for a replicated database; outside one,
/// the file's, waited for up to `writer_wait`, or the busy timeout). Gives the writer back
/// while a transaction is open.
fn execute_blocking(
    file: &SqliteFile,
    call: &Call,
    run: &Run<'_>,
    writer: Option<HeldWriter>,
    writer_wait: Option<Duration>,
    reader: Option<Reader>,
    replica: Option<&Replica>,
) -> (Result<(QueryResult, u64), SqlError>, Option<HeldWriter>) {
    if let Some(reader) = reader {
        let read = is_read(&reader, run).and_then(|read| match read {
            true => call
                .run(reader.get_interrupt_handle(), || run.on(&reader))
                .map(Some),
            false => Ok(None),
        });
        match read {
            Ok(Some(result)) => return (Ok((result, 0)), None),
            Ok(None) => {}
            Err(error) => return (Err(error.into()), None),
        }
    }
    let leased = match (writer, writer_wait) {
        (Some(pinned), _) => Ok(pinned),
        (None, None) => file.lease_writer().map(|writer| (None, writer)),
        (None, Some(wait)) => file.lease_writer_within(wait).map(|writer| (None, writer)),
    };
    let (mut capture, mut writer) = match leased {
        Ok(leased) => leased,
        Err(error) => return (Err(error.into()), None),
    };
    let result = call.run(writer.get_interrupt_handle(), || match replica {
        Some(replica) => replicated::run_on_writer(replica, &mut writer, &mut capture, run),
        None => run.on(&writer).map(|result| (result, 0)),
    });
    let in_transaction = !writer.is_autocommit();
    (
        result.map_err(Into::into),
        in_transaction.then_some((capture, writer)),
    )
}

/// Whether `run` only reads, so that a reader may run it (transaction control goes to the
/// writer, which keeps the transaction).
fn is_read(db: &Connection, run: &Run<'_>) -> rusqlite::Result<bool> {
    Ok(db.prepare_cached(run.statement)?.readonly() && !controls_transaction(run.statement))
}

/// Whether `statement` is a write that can commit in a batch with others: a plain `INSERT`,
/// `REPLACE`, `UPDATE` or `DELETE` (a schema change or a `PRAGMA` runs alone; so does a write
/// that begins with `WITH`, which would need parsing to tell from a read).
fn is_batched(statement: &str) -> bool {
    let keyword = first_keyword(statement);
    ["INSERT", "REPLACE", "UPDATE", "DELETE"]
        .iter()
        .any(|write| keyword.eq_ignore_ascii_case(write))
}

/// Whether `statement` begins or ends a transaction: SQLite calls those read-only, but they
/// must run on the writer.
pub(super) fn controls_transaction(statement: &str) -> bool {
    let keyword = first_keyword(statement);
    ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|control| keyword.eq_ignore_ascii_case(control))
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
    use crate::data::sqlite_file::MAX_READERS;

    fn open(dir: &tempfile::TempDir, limit: Duration) -> EmbeddedDatabase {
        EmbeddedDatabase::open(&dir.path().join("t.db"), limit, Duration::from_millis(300)).unwrap()
    }

    async fn count(connection: &Arc<dyn SqlConnection>) -> i64 {
        let result = connection
            .execute("SELECT count(*) FROM t".into(), vec![])
            .await
            .unwrap();
        match result.rows[0][0] {
            Value::Integer(count) => count,
            ref other => panic!("{other:?}"),
        }
    }

    async fn run(connection: &Arc<dyn SqlConnection>, statement: &str) -> QueryResult {
        connection.execute(statement.into(), vec![]).await.unwrap()
    }

    #[tokio::test]
    async fn values_round_trip_exactly_and_errors_keep_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_secs(30));
        db.execute_batch_blocking("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
            .unwrap();
        let connection = db.connect(&Arc::default());
        let values = vec![
            Value::Integer(i64::MIN),
            Value::Real(-0.1),
            Value::Text("nul\0 and emoji 🦀".into()),
            Value::Blob(vec![0, 255, 7]),
            Value::Null,
        ];
        let insert = connection
            .execute(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?)".into(),
                values.clone(),
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
        let read = run(&connection, "SELECT i, r, s, b, n FROM t").await;
        assert_eq!(read.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(read.rows[0], values);
        let error = connection
            .execute("SELEC oops".into(), vec![])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("syntax error"), "{error}");
        assert_eq!(count(&connection).await, 1);
    }

    #[tokio::test]
    async fn last_insert_rowid_and_changes_belong_to_the_guest_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_secs(30));
        db.execute_batch_blocking("CREATE TABLE t (s TEXT)")
            .unwrap();
        let (first, other) = (db.connect(&Arc::default()), db.connect(&Arc::default()));
        run(&first, "INSERT INTO t VALUES ('x')").await;
        run(&other, "INSERT INTO t VALUES ('x')").await;
        let asked = run(&first, "SELECT last_insert_rowid()").await;
        assert_eq!(asked.rows, [[Value::Integer(1)]]);
        assert_eq!(first.last_write().await.last_insert_rowid, 1);
        // `changes()` too: the other connection's delete of two rows is not this one's.
        assert_eq!(run(&other, "DELETE FROM t").await.last_write.changes, 2);
        let changes = "SELECT changes()";
        assert_eq!(run(&first, changes).await.rows, [[Value::Integer(1)]]);
        assert_eq!(run(&other, changes).await.rows, [[Value::Integer(2)]]);
    }

    #[tokio::test]
    async fn a_transaction_spans_statements_and_only_its_connection_sees_it_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_secs(30));
        db.execute_batch_blocking("CREATE TABLE t (s TEXT)")
            .unwrap();
        let (writer, reader) = (db.connect(&Arc::default()), db.connect(&Arc::default()));

        run(&writer, "  -- a comment first\n begin").await;
        run(&writer, "INSERT INTO t VALUES ('a')").await;
        let inside = run(&writer, "INSERT INTO t VALUES ('b')").await;
        assert_eq!(inside.last_write.last_insert_rowid, 2);
        assert_eq!(count(&writer).await, 2, "reads inside see their own writes");
        assert_eq!(count(&reader).await, 0, "reads outside see committed data");
        run(&writer, "COMMIT").await;
        assert_eq!(count(&reader).await, 2);

        run(&writer, "BEGIN IMMEDIATE").await;
        run(&writer, "DELETE FROM t").await;
        assert_eq!(
            run(&writer, "SELECT changes()").await.rows,
            [[Value::Integer(2)]]
        );
        run(&writer, "ROLLBACK").await;
        assert_eq!(count(&reader).await, 2);

        // Dropped inside a transaction: rolled back, and the writer is free at once.
        run(&writer, "BEGIN").await;
        run(&writer, "INSERT INTO t VALUES ('lost')").await;
        drop(writer);
        run(&reader, "INSERT INTO t VALUES ('c')").await;
        assert_eq!(count(&reader).await, 3);
    }

    #[tokio::test]
    async fn a_second_writer_waits_for_the_busy_timeout_then_is_told_the_database_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_secs(30));
        db.execute_batch_blocking("CREATE TABLE t (s TEXT)")
            .unwrap();
        let (first, second) = (db.connect(&Arc::default()), db.connect(&Arc::default()));
        run(&first, "BEGIN").await;
        run(&first, "SELECT count(*) FROM t").await;
        let third = db.connect(&Arc::default());
        let (write, begin) = tokio::join!(
            second.execute("INSERT INTO t VALUES ('x')".into(), vec![]),
            third.execute("BEGIN".into(), vec![]),
        );
        for refused in [write, begin] {
            assert_eq!(refused.unwrap_err().to_string(), "database is locked");
        }
        run(&first, "COMMIT").await;
        run(&second, "INSERT INTO t VALUES ('x')").await;
        assert_eq!(count(&first).await, 1);
    }

    #[tokio::test]
    async fn a_transaction_past_its_limit_is_rolled_back_and_frees_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_millis(200));
        db.execute_batch_blocking("CREATE TABLE t (s TEXT)")
            .unwrap();
        let (late, other) = (db.connect(&Arc::default()), db.connect(&Arc::default()));
        run(&late, "BEGIN").await;
        run(&late, "INSERT INTO t VALUES ('late')").await;
        // Waits for the writer until the limit ends the transaction.
        run(&other, "INSERT INTO t VALUES ('other')").await;
        let error = late
            .execute("COMMIT".into(), vec![])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("rolled back") && error.contains("200ms"),
            "{error}"
        );
        assert_eq!(count(&late).await, 1, "only the other connection's row");

        // A statement still running at the limit is stopped by it.
        run(&late, "BEGIN").await;
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";
        let error = late.execute(endless.into(), vec![]).await.unwrap_err();
        assert!(error.to_string().contains("rolled back"), "{error}");
        run(&other, "INSERT INTO t VALUES ('after')").await;
    }

    #[tokio::test]
    async fn an_abandoned_statement_is_interrupted_and_frees_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, Duration::from_secs(30));
        let connection = db.connect(&Arc::default());
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";
        for _ in 0..MAX_READERS {
            let other = db.connect(&Arc::default());
            let abandoned = tokio::time::timeout(
                Duration::from_millis(50),
                other.execute(endless.into(), vec![]),
            );
            assert!(abandoned.await.is_err(), "the endless query never ends");
        }
        // Every reader was taken by an endless query: this read runs only if they were stopped.
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            connection.execute("SELECT 42".into(), vec![]),
        );
        assert_eq!(answer.await.unwrap().unwrap().rows, [[Value::Integer(42)]]);
    }

    #[test]
    fn transaction_control_is_told_apart_from_reads() {
        for control in [
            "BEGIN",
            "begin deferred transaction",
            "  /* c */ -- d\n COMMIT",
            "END",
            "rollback to savepoint a",
            "SAVEPOINT a",
            "RELEASE a",
        ] {
            assert!(controls_transaction(control), "{control}");
        }
        for read in [
            "SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "-- BEGIN\nSELECT 1",
            "BEGINNING",
        ] {
            assert!(!controls_transaction(read), "{read}");
        }
    }
}
