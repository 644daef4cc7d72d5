//! A replicated database's guest connections (`ledge node`), on both sides of the cluster.
//!
//! On the writer, each write runs as one replicated transaction ([`run_on_writer`]): an
//! autocommit statement is captured and appended to the log before it commits (a batch of
//! plain autocommit writes, as one entry; see `sqlite_file::group_commit`); a guest's
//! `BEGIN` ... `COMMIT` is captured statement by statement and appended at its `COMMIT`. A
//! transaction must begin with `BEGIN` (a `SAVEPOINT` may follow inside it), so that only
//! `COMMIT`/`END` commit.
//!
//! On any other node ([`execute_elsewhere`]), a read runs on the local copy once it has applied
//! what the caller's bookmark asks for (waiting up to [`replica::CATCH_UP_WAIT`]), and
//! everything else (writes, transaction control, and every statement of a transaction) is
//! forwarded to the writer, which runs it on a connection of its own named after the guest's
//! ([`RemoteConnections`]). A transaction opened that way holds the writer until it ends, or
//! until [`REMOTE_IDLE_LIMIT`] passes without a statement (its node or request is gone), when
//! the writer rolls it back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::embedded::{
    ConnectionState, EmbeddedConnection, EmbeddedDatabase, Run, controls_transaction,
};
use super::{LastWrite, QueryResult, SqlError, Value};
use crate::data::replica::{self, Capture, Entry, FORWARD_LIMIT, LinkError, Replica};
use crate::data::sqlite_file::{SqliteFile, has_deferred_violations, off_thread};

/// How long the writer keeps another node's open transaction between two of its statements.
const REMOTE_IDLE_LIMIT: Duration = Duration::from_secs(5);

/// How long a statement another node forwards waits at the writer for another transaction
/// (at most; the busy timeout if shorter): with the wait for the sender's bookmark before it
/// ([`replica::CATCH_UP_WAIT`], see [`Replica::serve`]), it is answered before its sender
/// stops waiting ([`FORWARD_LIMIT`]), so the sender knows whether it opened a transaction
/// there.
const FORWARDED_WRITER_WAIT: Duration = Duration::from_secs(3);

/// Runs one statement on the writer connection `writer` of a replicated database; `capture`
/// holds what the connection's open transaction has done so far. Returns the position a
/// commit reached (0 when nothing committed).
pub(super) fn run_on_writer(
    replica: &Replica,
    writer: &mut Connection,
    capture: &mut Option<Capture>,
    run: &Run<'_>,
) -> rusqlite::Result<(QueryResult, u64)> {
    let keyword = replica::first_keyword(run.statement).to_ascii_uppercase();
    if writer.is_autocommit() {
        return match keyword.as_str() {
            "SAVEPOINT" => Err(replica::refused(
                "on a replicated database, begin a transaction with BEGIN (savepoints may \
                 follow inside it)",
            )),
            "BEGIN" => {
                let result = run.on(writer)?;
                if !writer.is_autocommit() {
                    *capture = Some(Capture::start(writer)?);
                }
                Ok((result, 0))
            }
            _ => replica.commit(writer, Vec::new(), |db, capture| {
                capture.statement(db, run.statement, run.params, || run.on(db))
            }),
        };
    }
    let Some(open) = capture else {
        // The transaction began but its capture could not start: nothing in it may commit.
        writer.execute_batch("ROLLBACK")?;
        return Err(replica::refused(
            "the transaction could not be recorded for replication and was rolled back",
        ));
    };
    match keyword.as_str() {
        "COMMIT" | "END" => {
            if has_deferred_violations(writer) {
                // As SQLite would: the commit fails and the transaction stays open.
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some("FOREIGN KEY constraint failed".into()),
                ));
            }
            let appended = open.finish(writer).and_then(|ops| {
                let keys = Vec::new();
                replica.append(writer, Entry { ops, keys })
            });
            let position = match appended {
                Ok(position) => position,
                Err(error) => {
                    writer.execute_batch("ROLLBACK")?;
                    return Err(replica::not_now(&format!(
                        "the transaction was rolled back: {error}"
                    )));
                }
            };
            match run.on(writer) {
                Ok(result) => {
                    replica.committed(position);
                    Ok((result, position))
                }
                Err(error) => {
                    // The log has it: this copy applies it from there, as every other does.
                    writer.execute_batch("ROLLBACK")?;
                    Err(replica::not_now(&format!(
                        "the transaction is in the replication log but did not commit on the \
                         writer ({error}); it is applied from the log"
                    )))
                }
            }
        }
        "ROLLBACK" => {
            let result = run.on(writer)?;
            if writer.is_autocommit() {
                *capture = None;
            }
            Ok((result, 0))
        }
        _ => {
            let result = open.statement(writer, run.statement, run.params, || run.on(writer))?;
            Ok((result, 0))
        }
    }
}

/// What another node asks the writer of a database.
#[derive(Debug, Serialize, Deserialize)]
enum Forwarded {
    /// Runs a statement on the writer's connection of the guest connection it names.
    Statement(Statement),
    /// The guest dropped its connection: an open transaction is rolled back.
    Close { connection: String },
}

/// A statement another node's guest connection runs at the writer.
#[derive(Debug, Serialize, Deserialize)]
struct Statement {
    /// The guest connection's name ([`replica::unique_id`]).
    connection: String,
    statement: String,
    params: Vec<Value>,
    /// The guest connection's last write before it.
    since: LastWrite,
    /// The guest connection is inside a transaction opened at the writer.
    in_transaction: bool,
}

/// The writer's answer: the result, the position it left, and whether the connection is
/// inside a transaction afterwards.
type Answer = Result<(QueryResult, u64, bool), SqlError>;

/// Runs one statement of `connection` on a node that is not the writer: a read here once this
/// copy is fresh enough, anything else at the writer.
pub(super) async fn execute_elsewhere(
    connection: &EmbeddedConnection,
    state: &mut ConnectionState,
    replica: &Arc<Replica>,
    statement: String,
    params: Vec<Value>,
) -> Result<(QueryResult, u64), SqlError> {
    if !state.remote_transaction
        && let Some(result) =
            read_here(connection, replica, &statement, &params, state.last_write).await?
    {
        return Ok((result, 0));
    }
    let request = Forwarded::Statement(Statement {
        connection: connection.remote_id.clone(),
        statement,
        params,
        since: state.last_write,
        in_transaction: state.remote_transaction,
    });
    let (result, position, in_transaction) = forward(connection, state, replica, &request).await?;
    state.last_write = result.last_write;
    state.remote_transaction = in_transaction;
    Ok((result, position))
}

/// Runs `statement` on this copy if it is a read and the copy has applied what the
/// connection's bookmark asks for (waiting up to [`replica::CATCH_UP_WAIT`]); `None` if the
/// writer must run it (a write, or a table this copy does not have yet).
async fn read_here(
    connection: &EmbeddedConnection,
    replica: &Replica,
    statement: &str,
    params: &[Value],
    since: LastWrite,
) -> Result<Option<QueryResult>, SqlError> {
    let mut reader = connection.file.reader().await?;
    let is_read = {
        let prepared = reader.prepare_cached(statement);
        prepared.is_ok_and(|prepared| prepared.readonly()) && !controls_transaction(statement)
    };
    if !is_read {
        return Ok(None);
    }
    if connection.consistency.floor(&replica.id) > replica.applied() {
        // Not held while the copy catches up: other requests read meanwhile.
        drop(reader);
        if !replica.caught_up(&connection.consistency).await {
            return Ok(None);
        }
        reader = connection.file.reader().await?;
    }
    replica.read_locally(&connection.consistency);
    let run = Run {
        statement,
        params,
        since,
    };
    // As on a file of its own (`execute_here`): a short read runs on this thread.
    if let Some(result) = reader.try_quick(|db| run.on(db)) {
        return Ok(Some(result?));
    }
    let (statement, params) = (statement.to_string(), params.to_vec());
    let result = off_thread(move |call| {
        let run = Run {
            statement: &statement,
            params: &params,
            since,
        };
        call.run(reader.get_interrupt_handle(), || run.on(&reader))
    })
    .await?;
    Ok(Some(result))
}

/// Sends `request` to the writer (answered once it has applied what the connection's bookmark
/// asks for) and reads its answer; without one, `state` notes that the writer may have run it.
async fn forward(
    connection: &EmbeddedConnection,
    state: &mut ConnectionState,
    replica: &Replica,
    request: &Forwarded,
) -> Answer {
    let request = postcard::to_stdvec(request).map_err(|e| SqlError::Io(e.to_string()))?;
    // Inside a transaction open at the writer, the writer's copy cannot move (the transaction
    // holds it), and what the transaction reads was fixed at its BEGIN, which carried the
    // bookmark: waiting there for a bookmark raised since could only fail, even a ROLLBACK.
    let floor = if state.remote_transaction {
        0
    } else {
        connection.consistency.floor(&replica.id)
    };
    let answer = replica
        .forward(request.into(), floor, FORWARD_LIMIT)
        .await
        .map_err(|error| {
            // A refusal too: the writer cannot answer now, so a 5xx says when to retry.
            connection.consistency.writer_unreachable();
            // Refused before it ran; any other failure may have come after.
            state.lost_at_writer |= !matches!(error, LinkError::Behind(_));
            SqlError::Unavailable(format!("{}: {error}", replica.name))
        })?;
    postcard::from_bytes::<Answer>(&answer)
        .map_err(|e| SqlError::Io(format!("the writer's answer is unreadable: {e}")))?
}

/// Tells the writer that `connection` is gone, so a transaction it left open there ends now.
pub(super) fn close_elsewhere(connection: &EmbeddedConnection, replica: &Arc<Replica>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let request = Forwarded::Close {
        connection: connection.remote_id.clone(),
    };
    let Ok(request) = postcard::to_stdvec(&request) else {
        return;
    };
    let replica = replica.clone();
    runtime.spawn(async move {
        let _ = replica.forward(request.into(), 0, FORWARD_LIMIT).await;
    });
}

/// The connections other nodes' guests hold at the writer, by name: kept while a transaction
/// is open in one. One set per replicated database file, shared by every version of the app
/// open on it ([`RemoteConnections::at`]).
#[derive(Default)]
pub struct RemoteConnections(Arc<Remotes>);

type Remotes = Mutex<HashMap<String, Remote>>;

/// The remote connections of each replicated database open in this process, by its file's
/// canonical path.
static REMOTES_BY_FILE: LazyLock<Mutex<HashMap<PathBuf, Weak<Remotes>>>> =
    LazyLock::new(Mutex::default);

struct Remote {
    connection: Arc<EmbeddedConnection>,
    /// Bumped by each statement; the idle timer of an older one lets it be.
    statements: u64,
}

impl RemoteConnections {
    /// The connections other nodes hold at the replicated database in `file`: one set for
    /// every version of the app open on it, so that a transaction another node opened here
    /// goes on across a swap of versions (the newest version answers its next statement).
    pub fn at(file: &SqliteFile) -> Self {
        let mut by_file = REMOTES_BY_FILE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(remotes) = by_file.get(file.path()).and_then(Weak::upgrade) {
            return Self(remotes);
        }
        let remotes = Arc::default();
        by_file.retain(|_, remotes| remotes.strong_count() > 0);
        by_file.insert(file.path().to_path_buf(), Arc::downgrade(&remotes));
        Self(remotes)
    }

    /// Runs a forwarded statement on the connection named `id`. A statement of a transaction
    /// this writer no longer holds (rolled back when idle, or begun at a writer before it)
    /// fails rather than run on its own; a `ROLLBACK` of one succeeds, as it is done.
    async fn run(&self, database: &EmbeddedDatabase, request: Statement) -> Answer {
        let Statement {
            connection: id,
            statement,
            params,
            since,
            in_transaction,
        } = request;
        // A statement in progress is no idleness: counting it keeps the idle timer of the one
        // before (which would fire while this one waits for the writer) from rolling back. A
        // new connection is listed before its first statement runs, so that a `ROLLBACK` or a
        // close its sender makes after giving up on the answer finds it.
        let listed = self.lock().get_mut(&id).map(|remote| {
            remote.statements += 1;
            remote.connection.clone()
        });
        let connection = match listed {
            Some(connection) => connection,
            None if in_transaction => {
                return if replica::first_keyword(&statement).eq_ignore_ascii_case("ROLLBACK") {
                    Ok((QueryResult::default(), 0, false))
                } else {
                    Err(SqlError::Unavailable(format!(
                        "the transaction was rolled back at the writer (idle for \
                         {REMOTE_IDLE_LIMIT:?}, or the writer changed); roll back and begin \
                         it again"
                    )))
                };
            }
            None => {
                let connection = Arc::new(database.forwarded_connection(FORWARDED_WRITER_WAIT));
                let remote = Remote {
                    connection: connection.clone(),
                    statements: 1,
                };
                self.lock().insert(id.clone(), remote);
                connection
            }
        };
        let mut state = connection.state.lock().await;
        state.last_write = since;
        let ran = connection.execute_here(&mut state, statement, params).await;
        let in_transaction = state.in_transaction();
        drop(state);
        let mut remotes = self.lock();
        // Closed meanwhile: dropping `connection` below rolls back what it left open.
        let closed = !remotes.contains_key(&id);
        if !in_transaction || closed {
            remotes.remove(&id);
        } else {
            let statements = remotes.get(&id).map_or(0, |remote| remote.statements);
            let remotes = Arc::downgrade(&self.0);
            tokio::spawn(async move {
                tokio::time::sleep(REMOTE_IDLE_LIMIT).await;
                let Some(remotes) = remotes.upgrade() else {
                    return;
                };
                let mut remotes = remotes.lock().unwrap_or_else(|p| p.into_inner());
                if remotes.get(&id).is_some_and(|r| r.statements == statements) {
                    tracing::warn!(
                        "rolling back a transaction another node left idle for {REMOTE_IDLE_LIMIT:?}"
                    );
                    remotes.remove(&id);
                }
            });
        }
        drop(remotes);
        let (result, position) = ran?;
        let position = match &database.replica {
            Some(replica) => position.max(replica.applied()),
            None => position,
        };
        Ok((result, position, in_transaction))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remote>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl replica::Writer for EmbeddedDatabase {
    async fn serve(&self, request: Bytes) -> Bytes {
        let answer: Answer = match postcard::from_bytes(&request) {
            Ok(Forwarded::Statement(request)) => self.remote.run(self, request).await,
            Ok(Forwarded::Close { connection }) => {
                self.remote.lock().remove(&connection);
                Ok((QueryResult::default(), 0, false))
            }
            Err(error) => Err(SqlError::Io(format!("an unreadable request: {error}"))),
        };
        postcard::to_stdvec(&answer).unwrap_or_default().into()
    }
}
