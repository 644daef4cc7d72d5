//! Replicated stores and databases, as `ledge node` serves them: every node keeps a full copy
//! of each embedded key-value store and SQL database in its own SQLite file and reads from it
//! locally; one node (the writer, chosen by the cluster) commits the writes.
//!
//! The writer runs each write transaction under a [`Capture`], which turns what it did into
//! log operations: SQLite changesets for the rows it changed (values, not SQL, so
//! `datetime('now')`, `random()` and rowids come out the same everywhere) and, for schema
//! changes, the statement itself. The [`Entry`] is appended to the database's log before the
//! transaction commits, fenced on the position the writer has applied, so two writers can
//! never both commit at one position; the writer's file records the new position in the same
//! transaction. Every other node applies the log in order ([`Replica::apply`]), each entry in
//! one transaction with its position, so a crash never half-applies one and a restart resumes
//! exactly. Nodes that are not the writer forward writes to it ([`Link::forward`]) and wait
//! for its answer. So that the log need not be kept forever, the writer now and then copies
//! its file ([`Replica::snapshot`]); a copy behind the entries the log still holds starts
//! again from that copy ([`Replica::restore`]).
//!
//! This module is the data tier's half: it knows SQLite and nothing of NATS. The cluster's
//! half (`crate::edge::replication`) implements [`Link`] and [`Replication`].

pub mod bookmark;
pub mod changeset;

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::sync::watch;

use self::bookmark::Consistency;
use self::changeset::{POSITION_TABLE, Session};
use super::sqlite::Value;
use super::sqlite_file::{Committer, SqliteFile};

/// How long a read waits for this node's copy to apply what its bookmark asks for before it
/// runs at the writer instead.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(1);
/// How long a request forwarded to the writer may take.
pub const FORWARD_LIMIT: Duration = Duration::from_secs(5);

/// What a replicated file is, for its id and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `spin` key-value store.
    KeyValue,
    /// A `spin` SQL database.
    Sql,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::KeyValue => "key-value store",
            Self::Sql => "database",
        }
    }
}

/// Where replicated files get their log and writer from: the cluster, under `ledge node`.
pub trait Replication: Send + Sync {
    /// The link of the file whose copy on this node is `replica`. Called once per file per
    /// process; the link keeps `replica` weakly and stops when it is gone.
    fn link(&self, replica: &Arc<Replica>) -> Arc<dyn Link>;
}

/// The cluster's side of one replicated file.
#[async_trait::async_trait]
pub trait Link: Send + Sync {
    /// Whether this node is the file's writer now.
    fn is_writer(&self) -> bool;

    /// Appends `entry` to the log as the position after `after`; fails as fenced if the log
    /// has moved past `after` (another writer committed first).
    async fn append(&self, after: u64, entry: Bytes) -> Result<u64, LinkError>;

    /// Whether this node's copy heard from the log lately: if not, reads from it may miss
    /// writes made elsewhere.
    fn is_current(&self) -> bool;

    /// Sends `request` to the writer and returns its answer, by `deadline` at the latest. The
    /// writer answers once its copy has applied `floor` ([`Replica::serve`]).
    async fn forward(
        &self,
        request: Bytes,
        floor: u64,
        deadline: Duration,
    ) -> Result<Bytes, LinkError>;

    /// The log's last position, asked of the hub now.
    async fn log_end(&self) -> Result<u64, LinkError>;
}

/// Why the cluster could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// Another writer committed at that position first.
    #[error("another writer committed first; try again")]
    Fenced,
    /// The writer (or the hub holding the log) cannot be reached now.
    #[error("the writer cannot be reached: {0}")]
    Unreachable(String),
    /// The writer refused a request: its copy has not yet applied what the sender's bookmark
    /// asks for. The request did not run.
    #[error("the writer's copy is behind: {0}")]
    Behind(String),
}

/// The answer a writer gives to a forwarded request, in each caller's own types.
#[async_trait::async_trait]
pub trait Writer: Send + Sync {
    /// Runs a forwarded `request` as the writer and encodes the answer.
    async fn serve(&self, request: Bytes) -> Bytes;
}

/// One committed write transaction, as the log carries it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Entry {
    /// What it did, in order.
    pub ops: Vec<Op>,
    /// The key-value keys it wrote, which a copy's read cache drops once it has applied it.
    pub keys: Vec<String>,
}

/// One step of an [`Entry`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Op {
    /// Rows changed, as a SQLite changeset.
    Changes(Vec<u8>),
    /// A schema change, as the statement that made it.
    Schema(String, Vec<Value>),
}

/// Turns one write transaction into log operations as it runs: rows through a session, schema
/// changes (`CREATE`, `ALTER`, `DROP`) as statements, each after the rows changed before it.
pub struct Capture {
    /// The session recording rows; `None` only if restarting it failed, which leaves the
    /// capture unusable (the transaction must roll back).
    session: Option<Session>,
    ops: Vec<Op>,
    /// A savepoint was opened: a schema change after it could be rolled back alone, which the
    /// operations already captured cannot follow, so it is refused.
    savepoint_opened: bool,
}

impl Capture {
    /// Starts capturing on `db`, which is inside the transaction.
    pub fn start(db: &Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            session: Some(Session::start(db)?),
            ops: Vec::new(),
            savepoint_opened: false,
        })
    }

    /// Runs one `statement` (with `params`) through `run`, capturing it. Creating a virtual
    /// table is refused: what is written to one (FTS5, R-tree) is not in any changeset.
    pub fn statement<T>(
        &mut self,
        db: &Connection,
        statement: &str,
        params: &[Value],
        run: impl FnOnce() -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        if self.session.is_none() {
            return Err(lost_track());
        }
        let keyword = first_keyword(statement).to_ascii_uppercase();
        if !matches!(keyword.as_str(), "CREATE" | "ALTER" | "DROP") {
            self.savepoint_opened |= keyword == "SAVEPOINT";
            return run();
        }
        if is_virtual_table(statement) {
            return Err(refused(
                "virtual tables (FTS5, R-tree, ...) cannot be replicated: what is written to \
                 them is not captured; on a replicated database, use ordinary tables",
            ));
        }
        if self.savepoint_opened {
            return Err(refused(
                "on a replicated database, a schema change cannot follow a SAVEPOINT in its \
                 transaction; make it before the savepoint or in a transaction of its own",
            ));
        }
        // A session must not span a schema change: the rows changed so far go first, and
        // recording starts again whether or not the statement succeeds.
        self.flush(db)?;
        let result = run();
        self.session = Some(Session::start(db)?);
        let result = result?;
        self.ops
            .push(Op::Schema(statement.to_string(), params.to_vec()));
        Ok(result)
    }

    /// The operations, once the transaction's work is done; the capture ends with it.
    pub fn finish(&mut self, db: &Connection) -> rusqlite::Result<Vec<Op>> {
        if self.session.is_none() {
            return Err(lost_track());
        }
        self.flush(db)?;
        Ok(std::mem::take(&mut self.ops))
    }

    fn flush(&mut self, db: &Connection) -> rusqlite::Result<()> {
        if let Some(session) = self.session.take() {
            let changes = session.changeset(db)?;
            if !changes.is_empty() {
                self.ops.push(Op::Changes(changes));
            }
        }
        Ok(())
    }
}

/// The first word of `statement`, past comments.
pub fn first_keyword(statement: &str) -> &str {
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

fn is_virtual_table(statement: &str) -> bool {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    words.get(1).is_some_and(|word| word == "VIRTUAL")
}

/// Why a transaction whose capture failed cannot go on.
fn lost_track() -> rusqlite::Error {
    refused("the transaction's changes could no longer be recorded for replication; roll it back")
}

/// A statement refused before it ran, as SQLite reports a misuse.
pub fn refused(message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
        Some(message.to_string()),
    )
}

/// A write the log could not take now (the writer away, or no longer the writer), as SQLite
/// reports a busy database: made again, it may succeed.
pub fn not_now(message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some(message.to_string()),
    )
}

/// A name unique across nodes and restarts: for a guest connection at the writer, or for one
/// append to a log.
pub fn unique_id() -> String {
    static PROCESS: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(0u8));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}-{}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What a copy took in, for its key-value read cache.
pub enum Applied<'a> {
    /// An entry that wrote these keys.
    Keys(&'a [String]),
    /// A snapshot: every key may have changed.
    Everything,
}

/// What runs after a copy took something in.
pub type AppliedHook = Box<dyn Fn(Applied<'_>) + Send + Sync>;

/// One node's copy of a replicated file, with its link to the cluster.
pub struct Replica {
    /// The file's name in bookmarks and in the cluster: 16 hex digits of a digest of the app,
    /// kind and label, the same on every node.
    pub id: String,
    /// What it is, for messages ("database `default` of app `shop`").
    pub name: String,
    file: Arc<SqliteFile>,
    /// The position applied to the file.
    applied: watch::Sender<u64>,
    link: OnceLock<Arc<dyn Link>>,
    /// What may answer forwarded requests, oldest first: each open app version's store or
    /// database. The newest still open answers, so a version that fails to load and is
    /// dropped leaves the one before it answering.
    writers: Mutex<Vec<Weak<dyn Writer>>>,
    /// What runs after an entry or a snapshot is applied (the key-value read cache drops what
    /// changed).
    on_applied: Mutex<Option<AppliedHook>>,
    /// The last question of where the log ends, shared by the reads that may use its answer.
    last_log_end_question: Mutex<Option<LogEndQuestion>>,
}

/// A question to the hub of where a log ends, on its way or answered.
#[derive(Clone)]
struct LogEndQuestion {
    /// [`bookmark::asked`] before it was sent: the answer judges the bookmarks presented
    /// before this count.
    asked: u64,
    /// The log's last position, if the hub answered.
    end: Shared<BoxFuture<'static, Option<u64>>>,
}

/// The replicas open in this process, by their file's path: two versions of an app (during a
/// swap) share one copy and one link.
static OPEN_REPLICAS: LazyLock<Mutex<HashMap<PathBuf, Weak<Replica>>>> =
    LazyLock::new(Mutex::default);

impl Replica {
    /// The copy in `file` of app `app`'s `kind` named `label`, linked through `replication`,
    /// or the one this process already has for `file`.
    pub fn open(
        replication: &dyn Replication,
        app: &str,
        kind: Kind,
        label: &str,
        file: Arc<SqliteFile>,
    ) -> Result<Arc<Self>> {
        anyhow::ensure!(
            changeset::available(),
            "this build of SQLite has no session extension, so it cannot replicate"
        );
        // Held until the replica is registered, so that two opens of one file make one.
        let mut open_replicas = OPEN_REPLICAS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(replica) = open_replicas.get(file.path()).and_then(Weak::upgrade) {
            return Ok(replica);
        }
        let position = file.write_blocking(|db| {
            db.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {POSITION_TABLE} \
                 (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)"
            ))?;
            position(db)
        })?;
        let digest = sha2::Sha256::digest(format!("{app}\n{}\n{label}", kind.name()));
        let replica = Arc::new(Self {
            id: hex::encode(&digest[..8]),
            name: format!("{} `{label}` of app `{app}`", kind.name()),
            file,
            applied: watch::channel(position).0,
            link: OnceLock::new(),
            writers: Mutex::default(),
            on_applied: Mutex::new(None),
            last_log_end_question: Mutex::new(None),
        });
        let _ = replica.link.set(replication.link(&replica));
        open_replicas.retain(|_, replica| replica.strong_count() > 0);
        open_replicas.insert(replica.file.path().to_path_buf(), Arc::downgrade(&replica));
        Ok(replica)
    }

    fn link(&self) -> &dyn Link {
        self.link.get().expect("set by open").as_ref()
    }

    /// Whether this node commits the file's writes now.
    pub fn is_writer(&self) -> bool {
        self.link.get().is_some_and(|link| link.is_writer())
    }

    /// Whether this copy heard from its log lately.
    pub fn is_current(&self) -> bool {
        self.link.get().is_some_and(|link| link.is_current())
    }

    /// Answers a read from this copy at `consistency`, marking it stale if the copy is out of
    /// touch with its log.
    pub fn read_locally(&self, consistency: &Consistency) {
        if !self.is_current() {
            consistency.read_stale();
        }
    }

    /// Makes `writer` answer the requests other nodes forward here while it is open, in place
    /// of the ones before (older versions of the app).
    pub fn serve_with(&self, writer: Weak<dyn Writer>) {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        writers.retain(|writer| writer.strong_count() > 0);
        writers.push(writer);
    }

    /// Makes `hook` run after each entry or snapshot applied, in place of the one before.
    pub fn on_applied(&self, hook: AppliedHook) {
        *self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Answers a request another node forwarded, if this node's file has a writer, once this
    /// copy has applied `floor` (the sender's bookmark): a write the writer before this one
    /// committed as its term ended may still be on its way from the log. A floor past the
    /// log's end (a made-up bookmark) is no reason to wait. Refused, saying why, if the copy
    /// does not get there within [`CATCH_UP_WAIT`] (asking the log included) and the log has
    /// that position, or could not be asked.
    pub async fn serve(&self, request: Bytes, floor: u64) -> Option<Result<Bytes, String>> {
        let writer = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find_map(Weak::upgrade)?;
        // Asked first: a floor past what the writer has applied is rare, and past the log's
        // end (a made-up bookmark) it would otherwise cost every write its full wait.
        let holds = floor <= self.applied()
            // One limit for the question and the wait together (the inner one never binds).
            || tokio::time::timeout(CATCH_UP_WAIT, async {
                let arrived = bookmark::count_presented_elsewhere();
                self.log_ends_before(floor, arrived).await.is_some()
                    || self.reached(floor, CATCH_UP_WAIT).await
            })
            .await
            .unwrap_or(false);
        if !holds {
            return Some(Err(format!(
                "it has not yet applied position {floor} of the log"
            )));
        }
        Some(Ok(writer.serve(request).await))
    }

    /// The position applied to this copy.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits up to `wait` until this copy has applied `floor`; whether it has.
    pub async fn reached(&self, floor: u64, wait: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(wait, applied.wait_for(|at| *at >= floor))
            .await
            .is_ok_and(|reached| reached.is_ok())
    }

    /// Waits up to [`CATCH_UP_WAIT`] until this copy has applied what `consistency` asks of
    /// it; whether it has. If it has not, asks the log where it ends: every acknowledged
    /// write is in the log, so a position presented past its end is none the log ever had (a
    /// bookmark from before the log was made anew, or a made-up one). Such positions are
    /// lowered to the end, so reads stop waiting for them, and the copy may have that much.
    /// On the writer the wait matters too: a write the writer before it committed as its term
    /// ended may still be on its way from the log.
    pub async fn caught_up(&self, consistency: &Consistency) -> bool {
        // Taken before the floor is read: the log's end, asked for later, is past every
        // position presented before it.
        let asked = bookmark::asked();
        let floor = consistency.floor(&self.id);
        if floor <= self.applied() || self.reached(floor, CATCH_UP_WAIT).await {
            return true;
        }
        if let Some((end, asked)) = self.log_ends_before(floor, asked).await
            && consistency.log_ends_at(&self.id, end, asked)
        {
            tracing::warn!(
                "{}: a request presented a bookmark at position {floor}, past the end of the \
                 log ({end}); it now holds {end}",
                self.name
            );
        }
        consistency.floor(&self.id) <= self.applied()
    }

    /// Where the log ends, if that is before `floor`, by a question sent after `asked`
    /// bookmarks were presented (see [`Replica::log_end_after`]): no write was ever
    /// acknowledged at `floor`, so nothing there is worth waiting for. Also returns the count
    /// the question was sent at, which is not below `asked`.
    async fn log_ends_before(&self, floor: u64, asked: u64) -> Option<(u64, u64)> {
        let (end, asked) = self.log_end_after(asked).await?;
        (end < floor).then_some((end, asked))
    }

    /// Where the log ends, by a question to the hub sent after `asked` bookmarks were
    /// presented, and the count it was sent at. Reads that wait on a made-up bookmark together
    /// share one question: the last one serves every read whose bookmark was presented before
    /// it was sent (positions presented earlier were acknowledged, if ever, before it was
    /// asked), unless the hub did not answer it; a read presented since sends a new one. (A
    /// forwarded floor counts as presented when it arrives, so the writer asks anew for each.)
    async fn log_end_after(&self, asked: u64) -> Option<(u64, u64)> {
        let question = {
            let mut last = self
                .last_log_end_question
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match &*last {
                Some(question) if question.asked >= asked && question.end.peek() != Some(&None) => {
                    question.clone()
                }
                _ => {
                    let link = self.link.get()?.clone();
                    let question = LogEndQuestion {
                        asked: bookmark::asked(),
                        end: async move { link.log_end().await.ok() }.boxed().shared(),
                    };
                    *last = Some(question.clone());
                    question
                }
            }
        };
        Some((question.end.await?, question.asked))
    }

    /// Forwards `request` to the writer, to be answered once its copy has applied `floor`
    /// (the caller's bookmark of this file; 0 for none).
    pub async fn forward(
        &self,
        request: Bytes,
        floor: u64,
        deadline: Duration,
    ) -> Result<Bytes, LinkError> {
        self.link().forward(request, floor, deadline).await
    }

    /// Runs `work` as one replicated write transaction on the writer connection `db`, on this
    /// (blocking) thread: the entry it makes is appended to the log before it commits, and
    /// its position recorded with it. Returns what `work` returned and the position (the one
    /// before when it changed nothing).
    pub fn commit<T>(
        &self,
        db: &mut Connection,
        keys: Vec<String>,
        work: impl FnOnce(&Connection, &mut Capture) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<(T, u64)> {
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut capture = Capture::start(&tx)?;
        let result = work(&tx, &mut capture)?;
        let ops = capture.finish(&tx)?;
        let position = self.append(&tx, Entry { ops, keys })?;
        tx.commit()?;
        self.committed(position);
        Ok((result, position))
    }

    /// Records that the writer committed the entry at `position` here.
    pub fn committed(&self, position: u64) {
        self.applied.send_if_modified(|at| raise(at, position));
    }

    /// Appends `entry` (made inside `db`'s open transaction) to the log and records its
    /// position in that transaction, unless it changed nothing. The caller commits.
    pub fn append(&self, db: &Connection, entry: Entry) -> rusqlite::Result<u64> {
        let after = position(db)?;
        if entry.ops.is_empty() {
            return Ok(after);
        }
        let bytes = postcard::to_stdvec(&entry)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let appended = tokio::runtime::Handle::current()
            .block_on(self.link().append(after, bytes.into()))
            .map_err(|error| {
                tracing::warn!("{}: not committed: {error}", self.name);
                not_now(&error.to_string())
            })?;
        set_position(db, appended)?;
        Ok(appended)
    }

    /// Applies the log's entry at `position`, unless this copy has it already; the entry and
    /// the position commit together. Fails if the entry does not fit this copy (it diverged).
    pub async fn apply(&self, position: u64, entry: Bytes) -> Result<()> {
        if position <= self.applied() {
            return Ok(());
        }
        let entry: Entry = postcard::from_bytes(&entry)
            .map_err(|e| anyhow::anyhow!("{}: entry {position} is unreadable: {e}", self.name))?;
        let keys = entry.keys.clone();
        let applied = self
            .file
            .write(move |db| apply_entry(db, position, &entry))
            .await
            .map_err(|e| anyhow::anyhow!("{}: cannot apply entry {position}: {e}", self.name))?;
        self.took_in(Applied::Keys(&keys), applied);
        Ok(())
    }

    /// A path for a snapshot of this file, beside it (the caller removes the file).
    pub fn snapshot_path(&self) -> PathBuf {
        let mut name = self
            .file
            .path()
            .file_name()
            .unwrap_or_default()
            .to_os_string();
        name.push(format!(".snapshot-{}", unique_id()));
        self.file.path().with_file_name(name)
    }

    /// Writes a consistent copy of this file to a new file at `path` (from
    /// [`Replica::snapshot_path`]), while reads and writes go on; returns the position it
    /// holds.
    pub async fn snapshot(&self, path: PathBuf) -> Result<u64> {
        let target = path.clone();
        self.file
            .read(move |db| {
                db.execute("VACUUM INTO ?1", [target.to_string_lossy()])
                    .map(drop)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{}: cannot snapshot: {e}", self.name))?;
        let copy = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(position(&copy)?)
    }

    /// Replaces this copy's contents with the snapshot at `path` (as [`Replica::snapshot`]
    /// wrote it) in one transaction, unless the copy has applied as far already. Returns the
    /// position the copy is at.
    pub async fn restore(&self, path: PathBuf) -> Result<u64> {
        let at = self
            .file
            .write(move |db| {
                let snapshot =
                    Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                let (from, at) = (position(&snapshot)?, position(db)?);
                if from <= at {
                    return Ok(at);
                }
                rusqlite::backup::Backup::new(&snapshot, db)?.run_to_completion(
                    1024,
                    Duration::ZERO,
                    None,
                )?;
                Ok(from)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{}: cannot restore its snapshot: {e}", self.name))?;
        self.took_in(Applied::Everything, at);
        Ok(at)
    }

    /// Runs the hook for what was taken in, then moves the applied position to `position`.
    fn took_in(&self, applied: Applied<'_>, position: u64) {
        if let Some(hook) = &*self.on_applied.lock().unwrap_or_else(|p| p.into_inner()) {
            hook(applied);
        }
        self.applied.send_if_modified(|at| raise(at, position));
    }
}

/// A batch of writes on the writer commits as one replicated transaction: one entry in the log.
impl Committer for Replica {
    fn commit(
        &self,
        db: &mut Connection,
        keys: Vec<String>,
        batch: &mut dyn FnMut(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<u64> {
        Replica::commit(self, db, keys, |db, _capture| batch(db)).map(|((), position)| position)
    }
}

/// Raises `at` to `position`; whether it moved.
fn raise(at: &mut u64, position: u64) -> bool {
    let moved = position > *at;
    *at = (*at).max(position);
    moved
}

/// Applies `entry` at `position` on the writer connection `db` with triggers off (their
/// effects are in the entry already), in one transaction with the position. Returns the
/// position the copy is at afterwards.
fn apply_entry(db: &mut Connection, position: u64, entry: &Entry) -> rusqlite::Result<u64> {
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER as TRIGGERS;
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let at = self::position(&tx)?;
    if position <= at {
        return Ok(at);
    }
    if position != at + 1 {
        return Err(refused(&format!(
            "entry {position} does not follow entry {at}: the log is missing entries"
        )));
    }
    tx.set_db_config(TRIGGERS, false)?;
    let applied = (|| {
        for op in &entry.ops {
            match op {
                Op::Changes(changes) => changeset::apply(&tx, changes)?,
                Op::Schema(statement, params) => {
                    tx.execute(statement, rusqlite::params_from_iter(params.iter()))
                        .map(drop)?;
                }
            }
        }
        set_position(&tx, position)
    })();
    tx.set_db_config(TRIGGERS, true)?;
    applied?;
    tx.commit()?;
    Ok(position)
}

/// The position recorded in `db`.
fn position(db: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> = db
        .query_row(
            &format!("SELECT seq FROM {POSITION_TABLE} WHERE id = 1"),
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(seq.map_or(0, |seq| seq.try_into().unwrap_or(0)))
}

fn set_position(db: &Connection, position: u64) -> rusqlite::Result<()> {
    db.execute(
        &format!("INSERT INTO {POSITION_TABLE} (id, seq) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq"),
        [i64::try_from(position).unwrap_or(i64::MAX)],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(&format!(
            "CREATE TABLE {POSITION_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);\
             CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"
        ))
        .unwrap();
        db
    }

    /// Runs `statements` in one transaction on `db` under a capture, as a guest's
    /// `BEGIN` ... `COMMIT` runs on the writer; each statement's outcome, and the entry.
    fn captured(db: &mut Connection, statements: &[&str]) -> (Vec<bool>, Entry) {
        let tx = db.transaction().unwrap();
        let mut capture = Capture::start(&tx).unwrap();
        let outcomes = statements
            .iter()
            .map(|statement| {
                capture
                    .statement(&tx, statement, &[], || tx.execute(statement, []))
                    .is_ok()
            })
            .collect();
        let ops = capture.finish(&tx).unwrap();
        tx.commit().unwrap();
        (
            outcomes,
            Entry {
                ops,
                keys: Vec::new(),
            },
        )
    }

    fn rows(db: &Connection) -> Vec<(i64, String)> {
        let mut statement = db
            .prepare("SELECT id, name FROM items ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_failed_schema_change_leaves_the_rest_of_its_transaction_recorded() {
        let (mut writer, mut copy) = (database(), database());
        let (outcomes, entry) = captured(
            &mut writer,
            &[
                "INSERT INTO items (name) VALUES ('kettle')",
                "CREATE TABLE items (id INTEGER PRIMARY KEY)",
                "INSERT INTO items (name) VALUES ('teapot')",
            ],
        );
        assert_eq!(outcomes, [true, false, true]);
        apply_entry(&mut copy, 1, &entry).unwrap();
        assert_eq!(rows(&copy), rows(&writer));
        assert_eq!(rows(&copy).len(), 2);
    }

    #[test]
    fn a_schema_change_after_a_savepoint_or_of_a_virtual_table_is_refused() {
        let mut writer = database();
        let (outcomes, entry) = captured(
            &mut writer,
            &[
                "CREATE VIRTUAL TABLE docs USING fts5(body)",
                "SAVEPOINT before_table",
                "CREATE TABLE later (id INTEGER PRIMARY KEY)",
                "INSERT INTO items (name) VALUES ('cup')",
            ],
        );
        assert_eq!(outcomes, [false, true, false, true]);
        assert!(!entry.ops.iter().any(|op| matches!(op, Op::Schema(..))));
    }

    #[test]
    fn rows_rolled_back_to_a_savepoint_stay_out_of_the_entry() {
        // A batch of writes rolls a failed one back to its savepoint and commits the rest.
        let (mut writer, mut copy) = (database(), database());
        writer
            .execute_batch("INSERT INTO items (id, name) VALUES (1, 'old')")
            .unwrap();
        copy.execute_batch("INSERT INTO items (id, name) VALUES (1, 'old')")
            .unwrap();
        let (outcomes, entry) = captured(
            &mut writer,
            &[
                "SAVEPOINT one",
                "INSERT INTO items (id, name) VALUES (2, 'kept')",
                "RELEASE one",
                "SAVEPOINT two",
                "INSERT INTO items (id, name) VALUES (3, 'dropped')",
                "UPDATE items SET name = 'dropped' WHERE id = 1",
                "ROLLBACK TO two",
                "RELEASE two",
            ],
        );
        assert!(outcomes.iter().all(|ok| *ok));
        apply_entry(&mut copy, 1, &entry).unwrap();
        assert_eq!(rows(&copy), [(1, "old".into()), (2, "kept".into())]);
        assert_eq!(rows(&copy), rows(&writer));
    }

    /// The link of a node that holds the writer's lease, to a log that ends at `end` (`None`:
    /// the hub does not answer), counting the questions of where it ends.
    #[derive(Clone, Default)]
    struct LogEndingAt {
        end: Arc<Mutex<Option<u64>>>,
        questions: Arc<AtomicU64>,
    }

    impl LogEndingAt {
        fn new(end: Option<u64>) -> Self {
            Self {
                end: Arc::new(Mutex::new(end)),
                ..Self::default()
            }
        }

        /// The log now ends at `end` (more writes were acknowledged).
        fn grows_to(&self, end: u64) {
            *self.end.lock().unwrap() = Some(end);
        }
    }

    #[async_trait::async_trait]
    impl Link for LogEndingAt {
        fn is_writer(&self) -> bool {
            true
        }

        async fn append(&self, _: u64, _: Bytes) -> Result<u64, LinkError> {
            Err(LinkError::Unreachable("not in this test".into()))
        }

        fn is_current(&self) -> bool {
            true
        }

        async fn forward(&self, _: Bytes, _: u64, _: Duration) -> Result<Bytes, LinkError> {
            Err(LinkError::Unreachable("not in this test".into()))
        }

        async fn log_end(&self) -> Result<u64, LinkError> {
            self.questions.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let end = *self.end.lock().unwrap();
            end.ok_or_else(|| LinkError::Unreachable("the hub does not answer".into()))
        }
    }

    impl Replication for LogEndingAt {
        fn link(&self, _: &Arc<Replica>) -> Arc<dyn Link> {
            Arc::new(self.clone())
        }
    }

    /// Answers each request with the request itself.
    struct Echo;

    #[async_trait::async_trait]
    impl Writer for Echo {
        async fn serve(&self, request: Bytes) -> Bytes {
            request
        }
    }

    #[tokio::test]
    async fn the_writer_answers_a_forwarded_request_once_its_copy_has_the_senders_bookmark() {
        let dir = tempfile::tempdir().unwrap();
        let echo: Arc<dyn Writer> = Arc::new(Echo);
        let writer = |name: &str, log: LogEndingAt| {
            let path = dir.path().join(name);
            let file =
                SqliteFile::open(&path, "database", |_| Ok(()), Duration::from_secs(1)).unwrap();
            let replica = Replica::open(&log, "app", Kind::Sql, name, file).unwrap();
            replica.serve_with(Arc::downgrade(&echo));
            replica
        };
        let replica = writer("copy", LogEndingAt::new(Some(2)));
        let request = Bytes::from_static(b"SELECT 1");

        // Without a bookmark, or with one past the log's end (made up), it answers now.
        assert_eq!(
            replica.serve(request.clone(), 0).await,
            Some(Ok(request.clone()))
        );
        assert_eq!(
            replica.serve(request.clone(), 9).await,
            Some(Ok(request.clone()))
        );

        // An entry the log has and this copy has not: refused after the wait, saying why.
        let refused = replica
            .serve(request.clone(), 1)
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.contains("not yet applied position 1"), "{refused}");

        // Where the hub cannot say where the log ends, even a made-up bookmark is refused.
        let unasked = writer("unasked", LogEndingAt::new(None));
        let refused = unasked
            .serve(request.clone(), 9)
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.contains("not yet applied position 9"), "{refused}");

        // An entry on its way: answered once it is applied, not before.
        let entry = Bytes::from(postcard::to_stdvec(&Entry::default()).unwrap());
        let applying = {
            let replica = replica.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                replica.apply(1, entry).await.unwrap();
            }
        };
        let serving = async {
            let answer = replica.serve(request.clone(), 1).await;
            (answer, replica.applied())
        };
        let ((answer, applied), ()) = tokio::join!(serving, applying);
        assert_eq!(answer, Some(Ok(request)));
        assert_eq!(applied, 1);
    }

    #[tokio::test]
    async fn reads_waiting_on_made_up_bookmarks_together_share_one_question_to_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let file = SqliteFile::open(&path, "database", |_| Ok(()), Duration::from_secs(1)).unwrap();
        let log = LogEndingAt::new(Some(2));
        let replica = Replica::open(&log, "app", Kind::Sql, "copy", file).unwrap();
        let presenting = |position: u64| {
            let mut headers = http::HeaderMap::new();
            let bookmark = format!("{}-{position}", replica.id);
            headers.insert(bookmark::HEADER, bookmark.parse().unwrap());
            let bookmark = Arc::new(bookmark::Bookmark::from_headers(&headers));
            let consistency = Consistency::default();
            consistency.enter(&bookmark);
            (bookmark, consistency)
        };
        let requests: Vec<_> = (0..4).map(|n| presenting(50 + n)).collect();

        let caught_up = futures::future::join_all(
            requests
                .iter()
                .map(|(_, consistency)| replica.caught_up(consistency)),
        )
        .await;
        assert_eq!(caught_up, [false; 4], "the copy is at 0, the log ends at 2");
        assert_eq!(log.questions.load(Ordering::SeqCst), 1);
        for (bookmark, _) in &requests {
            assert_eq!(bookmark.floor(&replica.id), 2);
        }

        // A bookmark presented after the question was sent may hold a write acknowledged
        // since: the old answer does not judge it, a question of its own does.
        log.grows_to(80);
        let (later, consistency) = presenting(70);
        assert!(!replica.caught_up(&consistency).await);
        assert_eq!(log.questions.load(Ordering::SeqCst), 2);
        assert_eq!(later.floor(&replica.id), 70, "a genuine position stays");
    }

    #[test]
    fn entries_apply_once_in_order_and_a_gap_is_refused() {
        let (mut writer, mut copy) = (database(), database());
        let (_, first) = captured(&mut writer, &["INSERT INTO items (name) VALUES ('a')"]);
        let (_, second) = captured(&mut writer, &["INSERT INTO items (name) VALUES ('b')"]);
        let gap = apply_entry(&mut copy, 2, &second).unwrap_err();
        assert!(gap.to_string().contains("missing entries"), "{gap}");
        assert_eq!(apply_entry(&mut copy, 1, &first).unwrap(), 1);
        assert_eq!(apply_entry(&mut copy, 1, &first).unwrap(), 1);
        assert_eq!(apply_entry(&mut copy, 2, &second).unwrap(), 2);
        assert_eq!(rows(&copy), rows(&writer));
        assert_eq!(position(&copy).unwrap(), 2);
    }
}
