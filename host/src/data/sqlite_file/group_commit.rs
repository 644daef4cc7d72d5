//! Group commit: autocommit writes that arrive together share one transaction, and so one
//! sync of the file (and, on a replicated file, one entry in the log).
//!
//! A caller queues its write and waits. The first caller with nobody leading starts a leader
//! on a blocking thread, which takes the writer, takes every write queued by then as one
//! batch, and runs each under a savepoint of its own: a write that fails is rolled back to its
//! savepoint and fails alone, as it would have in a transaction of its own. Once the batch has
//! committed, each write is answered; none is answered before its batch's commit returned, so
//! "acknowledged means durable" holds exactly as for a write alone (`synchronous = FULL`).
//! The leader then goes on with whatever queued meanwhile, and stops when nothing waits.
//!
//! While writers keep coming (the leader's last batch held more than one write, and the
//! leader is still running or retired less than [`GATHER_WINDOW`] ago), the leader first
//! gathers: it waits, for at most that window, until as many writes wait as its last batch
//! held. Bigger batches spread a commit's sync and thread switches over more writes. A write
//! after a pause starts at once; a lone writer right after a burst waits at most one window,
//! once, and the next batch gathers for one.
//!
//! Some failures end the whole transaction (a trigger's `RAISE(ROLLBACK)`, an interrupt, a
//! full disk): the write that caused it fails, and the writes before it run again in a new
//! transaction. A write that would leave a deferred foreign-key violation fails at once, as its
//! own commit would have. A guest's own transaction (`BEGIN`) leases the writer directly and
//! is never batched.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::{AbandonOnDrop, Call, SqliteFile, database_is_locked};

/// How a batch commits: in a plain transaction of the file, or as one replicated transaction
/// (its entry in the log first). Writes are batched together only when they share one.
pub trait Committer: Send + Sync {
    /// Runs `batch` inside one write transaction on `db` and commits it; `keys` are the
    /// key-value keys its writes change. Returns the position the commit reached (0 when
    /// the file is not replicated).
    fn commit(
        &self,
        db: &mut Connection,
        keys: Vec<String>,
        batch: &mut dyn FnMut(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<u64>;
}

/// Commits a batch in a plain transaction of the file.
pub struct Local;

impl Committer for Local {
    fn commit(
        &self,
        db: &mut Connection,
        _keys: Vec<String>,
        batch: &mut dyn FnMut(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<u64> {
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        batch(&tx)?;
        tx.commit()?;
        Ok(0)
    }
}

/// The longest a leader waits for more writes before it starts a batch (about what one
/// commit's sync takes on a local disk, so a batch waits at most about one commit longer),
/// and how soon after a leader retired a new one still gathers.
const GATHER_WINDOW: Duration = Duration::from_millis(1);

/// The writes waiting for a file's next batch.
#[derive(Default)]
pub(super) struct Batches {
    waiting: Mutex<Waiting>,
    /// Signalled when a gathering leader has the writes it waits for.
    gathered: Condvar,
}

#[derive(Default)]
struct Waiting {
    writes: Vec<Box<dyn Pending>>,
    /// A leader is running, and will take what is queued.
    leading: bool,
    /// How many writes the last batch took: what the leader gathers for before the next one.
    last_batch: usize,
    /// When the last leader retired, if none runs.
    retired_at: Option<Instant>,
    /// The leader is waiting in [`Batches::gather`].
    gathering: bool,
}

impl Batches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write`; true if no leader is running, so the caller must start one.
    fn push(&self, write: Box<dyn Pending>) -> bool {
        let mut waiting = self.lock();
        waiting.writes.push(write);
        if waiting.gathering && waiting.writes.len() == waiting.last_batch {
            self.gathered.notify_one();
        }
        if std::mem::replace(&mut waiting.leading, true) {
            return false;
        }
        // Writers that come back within a window after their answers keep the last batch's
        // size; after a pause, a write starts a batch of its own at once.
        if waiting
            .retired_at
            .take()
            .is_some_and(|retired| retired.elapsed() > GATHER_WINDOW)
        {
            waiting.last_batch = 0;
        }
        true
    }

    /// When the longest-waiting write must have started; `None`, and the leader retired,
    /// when nothing waits (under the queue's lock, so a write queued meanwhile starts a new
    /// leader).
    fn next_start_by_or_retire(&self) -> Option<Instant> {
        let mut waiting = self.lock();
        let start_by = waiting.writes.iter().map(|write| write.start_by()).min();
        waiting.leading = start_by.is_some();
        if start_by.is_none() {
            waiting.retired_at = Some(Instant::now());
        }
        start_by
    }

    /// Waits until as many writes wait as the last batch took, or until `until`; whether
    /// they did.
    fn gather(&self, until: Instant) -> bool {
        let mut waiting = self.lock();
        waiting.gathering = true;
        while waiting.writes.len() < waiting.last_batch {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                waiting.gathering = false;
                return false;
            }
            waiting = self
                .gathered
                .wait_timeout(waiting, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        waiting.gathering = false;
        true
    }

    fn take(&self) -> Vec<Box<dyn Pending>> {
        let mut waiting = self.lock();
        waiting.last_batch = waiting.writes.len();
        std::mem::take(&mut waiting.writes)
    }

    /// The writes that waited their time for the writer, which fail as SQLite's busy timeout
    /// would.
    fn take_overdue(&self, now: Instant) -> Vec<Answer> {
        let mut waiting = self.lock();
        let (overdue, waiting_on): (Vec<_>, Vec<_>) = std::mem::take(&mut waiting.writes)
            .into_iter()
            .partition(|write| write.start_by() <= now);
        waiting.writes = waiting_on;
        overdue
            .into_iter()
            .map(|write| (write, Err(database_is_locked())))
            .collect()
    }
}

/// A write and what to tell its caller: the position its batch committed at, or why it failed.
type Answer = (Box<dyn Pending>, rusqlite::Result<u64>);

impl SqliteFile {
    /// Runs the autocommit write `work` in the file's next batch, committed by `committer`
    /// (`keys`: the key-value keys it changes). It waits for the writer up to `wait` (at most
    /// the busy timeout; the busy timeout when `None`); it may run more than once (only the
    /// run that commits counts), and is interrupted if the caller stops waiting. Returns what
    /// it returned and the position its batch committed at, once the batch has committed.
    pub async fn write_batched<T, F>(
        self: &Arc<Self>,
        committer: &Arc<dyn Committer>,
        keys: Vec<String>,
        wait: Option<Duration>,
        work: F,
    ) -> rusqlite::Result<(T, u64)>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Arc::new(Call::default());
        let _abandon = AbandonOnDrop(call.clone());
        let wait = wait.map_or(self.busy_timeout, |wait| wait.min(self.busy_timeout));
        let write = Box::new(Write {
            work,
            done: None,
            reply,
            call,
            start_by: Instant::now() + wait,
            keys,
            committer: committer.clone(),
        });
        if self.batches.push(write) {
            let file = Arc::downgrade(self);
            tokio::task::spawn_blocking(move || lead(&file));
        }
        answer.await.unwrap_or_else(|_| {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the write's batch was abandoned by a failure in the host".into()),
            ))
        })
    }
}

/// Runs batches on this (blocking) thread until nothing waits. Each batch's writes are
/// answered once the writer and the file are let go, so that a caller that drops the file
/// after its answer closes it (and releases its lock against other processes).
fn lead(file: &Weak<SqliteFile>) {
    loop {
        let answers = {
            let Some(file) = file.upgrade() else {
                return;
            };
            let Some(start_by) = file.batches.next_start_by_or_retire() else {
                return;
            };
            file.batches
                .gather(start_by.min(Instant::now() + GATHER_WINDOW));
            let wait = start_by.saturating_duration_since(Instant::now());
            match file.lease_writer_within(wait) {
                Ok(mut writer) => run_batches(&mut writer, file.batches.take()),
                Err(_) => file.batches.take_overdue(Instant::now()),
            }
        };
        for (write, outcome) in answers {
            match outcome {
                Ok(position) => write.succeed(position),
                Err(error) => write.fail(error),
            }
        }
    }
}

/// Runs `writes` on `db`, in as many batches as they have committers (writes of another
/// version of the app commit apart).
fn run_batches(db: &mut Connection, mut writes: Vec<Box<dyn Pending>>) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(writes.len());
    while !writes.is_empty() {
        let committer = writes[0].committer().clone();
        let split = writes
            .iter()
            .position(|write| !Arc::ptr_eq(write.committer(), &committer))
            .unwrap_or(writes.len());
        let rest = writes.split_off(split);
        // A panic fails its batch's writes (their answers are dropped), not the leader, and
        // what it left open is rolled back.
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_batch(db, &committer, writes, &mut answers)
        }));
        if ran.is_err() && !db.is_autocommit() {
            let _ = db.execute_batch("ROLLBACK");
        }
        writes = rest;
    }
    answers
}

/// Runs `writes` as one transaction on `db` through `committer`, adding each one's answer
/// to `answers`.
fn run_batch(
    db: &mut Connection,
    committer: &Arc<dyn Committer>,
    mut writes: Vec<Box<dyn Pending>>,
    answers: &mut Vec<Answer>,
) {
    while !writes.is_empty() {
        let keys = writes
            .iter()
            .flat_map(|write| write.keys().iter().cloned())
            .collect();
        let mut failures: Vec<Option<rusqlite::Error>> = Vec::new();
        let mut ended_by = None;
        let committed = committer.commit(db, keys, &mut |db| {
            failures.clear();
            for (index, write) in writes.iter_mut().enumerate() {
                // Prepared once per connection: these two run for every write of every batch.
                db.prepare_cached("SAVEPOINT batched_write")?.execute([])?;
                let failure = match write.run(db) {
                    Ok(()) if super::has_deferred_violations(db) => Some(foreign_key_failed()),
                    Ok(()) => None,
                    Err(error) => Some(error),
                };
                if db.is_autocommit() {
                    ended_by = Some((index, failure.unwrap_or_else(transaction_ended)));
                    return Err(transaction_ended());
                }
                match failure {
                    None => {
                        db.prepare_cached("RELEASE batched_write")?.execute([])?;
                    }
                    Some(_) => {
                        db.execute_batch("ROLLBACK TO batched_write; RELEASE batched_write")?
                    }
                }
                failures.push(failure);
            }
            Ok(())
        });
        if let Some((index, error)) = ended_by {
            // The write at `index` ended the transaction: it fails, the others run again.
            answers.push((writes.remove(index), Err(error)));
            writes.iter_mut().for_each(|write| write.forget());
            continue;
        }
        failures.resize_with(writes.len(), || None);
        for (write, failure) in writes.drain(..).zip(failures) {
            let outcome = match (&committed, failure) {
                (_, Some(error)) => Err(error),
                (Ok(position), None) => Ok(*position),
                (Err(error), None) => Err(copy_error(error)),
            };
            answers.push((write, outcome));
        }
    }
}

/// A queued write, whatever it returns.
trait Pending: Send {
    /// Runs the write on `db`, keeping what it returned.
    fn run(&mut self, db: &Connection) -> rusqlite::Result<()>;
    /// Forgets what the last run returned: its transaction was rolled back.
    fn forget(&mut self);
    /// Answers the caller: committed at `position`.
    fn succeed(self: Box<Self>, position: u64);
    /// Answers the caller: failed with `error`, nothing of it committed.
    fn fail(self: Box<Self>, error: rusqlite::Error);
    /// When the write fails as "database is locked" if it has not started.
    fn start_by(&self) -> Instant;
    fn committer(&self) -> &Arc<dyn Committer>;
    fn keys(&self) -> &[String];
}

struct Write<T, F> {
    work: F,
    done: Option<T>,
    reply: oneshot::Sender<rusqlite::Result<(T, u64)>>,
    call: Arc<Call>,
    start_by: Instant,
    keys: Vec<String>,
    committer: Arc<dyn Committer>,
}

impl<T, F> Pending for Write<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, db: &Connection) -> rusqlite::Result<()> {
        let work = &mut self.work;
        self.done = Some(self.call.run(db.get_interrupt_handle(), || work(db))?);
        Ok(())
    }

    fn forget(&mut self) {
        self.done = None;
    }

    fn succeed(self: Box<Self>, position: u64) {
        let done = self.done.expect("a write that succeeded has run");
        let _ = self.reply.send(Ok((done, position)));
    }

    fn fail(self: Box<Self>, error: rusqlite::Error) {
        let _ = self.reply.send(Err(error));
    }

    fn start_by(&self) -> Instant {
        self.start_by
    }

    fn committer(&self) -> &Arc<dyn Committer> {
        &self.committer
    }

    fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// The error every write of a batch gets when the batch itself failed.
fn copy_error(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// SQLite's error for a commit that deferred foreign-key violations refuse.
fn foreign_key_failed() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
        Some("FOREIGN KEY constraint failed".into()),
    )
}

/// What a write gets when the transaction ended under it without an error of its own.
fn transaction_ended() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("the transaction was rolled back".into()),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\
        CREATE TABLE parents (id INTEGER PRIMARY KEY);\
        CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER \
            REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED);\
        CREATE TRIGGER no_forbidden BEFORE INSERT ON items WHEN NEW.name = 'forbidden' \
            BEGIN SELECT RAISE(ROLLBACK, 'forbidden'); END;\
        PRAGMA foreign_keys = ON;";

    /// A file with the test schema, and how many transactions have committed on its writer.
    fn file(dir: &tempfile::TempDir) -> (Arc<SqliteFile>, Arc<AtomicUsize>) {
        let file = SqliteFile::open(
            &dir.path().join("batched.db"),
            "SQL database",
            |_| Ok(()),
            Duration::from_secs(5),
        )
        .unwrap();
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        file.write_blocking(|db| {
            db.execute_batch(SCHEMA)?;
            db.commit_hook(Some(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                false
            }))
        })
        .unwrap();
        (file, commits)
    }

    fn insert(
        file: &Arc<SqliteFile>,
        statement: &'static str,
    ) -> tokio::task::JoinHandle<rusqlite::Result<(usize, u64)>> {
        let (file, committer): (_, Arc<dyn Committer>) = (file.clone(), Arc::new(Local));
        tokio::spawn(async move {
            file.write_batched(&committer, Vec::new(), None, move |db| {
                db.execute(statement, [])
            })
            .await
        })
    }

    /// Queues `statements` while the writer is held elsewhere, then lets them run: they are
    /// one batch. Returns each outcome.
    async fn one_batch(
        file: &Arc<SqliteFile>,
        statements: &[&'static str],
    ) -> Vec<rusqlite::Result<(usize, u64)>> {
        let held = file.lease_writer().unwrap();
        let committer: Arc<dyn Committer> = Arc::new(Local);
        let mut writes = Vec::new();
        for (queued, &statement) in statements.iter().enumerate() {
            let (queuing, committer) = (file.clone(), committer.clone());
            writes.push(tokio::spawn(async move {
                queuing
                    .write_batched(&committer, Vec::new(), None, move |db| {
                        db.execute(statement, [])
                    })
                    .await
            }));
            // One at a time, so that the queue holds them in this order (tasks on two
            // workers could otherwise queue in either order).
            while file.batches.lock().writes.len() <= queued {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        let mut outcomes = Vec::new();
        for write in writes {
            outcomes.push(write.await.unwrap());
        }
        outcomes
    }

    fn names(file: &SqliteFile) -> Vec<String> {
        file.write_blocking(|db| {
            db.prepare("SELECT name FROM items ORDER BY id")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .unwrap()
    }

    /// A queued write that changes nothing; nobody waits for its answer.
    fn idle_write() -> Box<dyn Pending> {
        let (reply, _) = oneshot::channel::<rusqlite::Result<((), u64)>>();
        Box::new(Write {
            work: |_: &Connection| Ok(()),
            done: None,
            reply,
            call: Arc::new(Call::default()),
            start_by: Instant::now() + Duration::from_secs(60),
            keys: Vec::new(),
            committer: Arc::new(Local),
        })
    }

    #[test]
    fn a_leader_gathers_as_many_writes_as_its_last_batch_took() {
        let batches = Arc::new(Batches::default());
        assert!(
            batches.push(idle_write()),
            "the first write starts a leader"
        );
        for _ in 0..2 {
            assert!(!batches.push(idle_write()));
        }
        assert_eq!(batches.take().len(), 3);
        // While the leader commits, one of its writers comes back; the others follow later.
        assert!(!batches.push(idle_write()));
        assert!(batches.next_start_by_or_retire().is_some());
        let late = batches.clone();
        let pushing = std::thread::spawn(move || {
            for _ in 0..2 {
                std::thread::sleep(Duration::from_millis(5));
                late.push(idle_write());
            }
        });
        // Far longer than the writes take to come, so that only their count ends the wait.
        assert!(batches.gather(Instant::now() + Duration::from_secs(60)));
        assert_eq!(batches.take().len(), 3);
        pushing.join().unwrap();
        // Writers that do not come back: the wait ends at its time, with what came.
        assert!(!batches.push(idle_write()));
        assert!(!batches.gather(Instant::now() + Duration::from_millis(20)));
        assert_eq!(batches.take().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_gathers_for_one_window_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let (file, commits) = file(&dir);
        // As if a batch of a hundred had just run: the next leader gathers for a hundred.
        {
            let mut waiting = file.batches.lock();
            waiting.last_batch = 100;
            waiting.retired_at = None;
        }
        // Its wait ends after one window, long before the writes' own time (the busy
        // timeout, 5 s) would end it.
        let alone = insert(&file, "INSERT INTO items (name) VALUES ('alone')");
        let written = tokio::time::timeout(Duration::from_secs(4), alone).await;
        assert!(matches!(written, Ok(Ok(Ok((1, 0))))), "{written:?}");
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_write_after_a_pause_or_alone_is_not_held_back() {
        let batches = Batches::default();
        batches.push(idle_write());
        batches.push(idle_write());
        assert_eq!(batches.take().len(), 2);
        assert!(batches.next_start_by_or_retire().is_none());
        batches.lock().retired_at = Some(Instant::now() - 2 * GATHER_WINDOW);
        assert!(batches.push(idle_write()));
        // The pause reset what the leader gathers for: one write is enough.
        assert_eq!(batches.lock().last_batch, 0);
        assert!(batches.gather(Instant::now() + Duration::from_secs(60)));
        assert_eq!(batches.take().len(), 1);
        // A batch of one gathers for one.
        assert!(batches.next_start_by_or_retire().is_none());
        batches.lock().retired_at = None;
        assert!(batches.push(idle_write()));
        assert_eq!(batches.lock().last_batch, 1);
        assert!(batches.gather(Instant::now() + Duration::from_secs(60)));
        assert_eq!(batches.take().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_wait_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (file, commits) = file(&dir);
        let statements: Vec<&'static str> = (0..40)
            .map(|n| &*format!("INSERT INTO items (name) VALUES ('item {n}')").leak())
            .collect();
        let outcomes = one_batch(&file, &statements).await;
        assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok((1, 0)))));
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        assert_eq!(names(&file).len(), 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_fails_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (file, commits) = file(&dir);
        let outcomes = one_batch(
            &file,
            &[
                "INSERT INTO items (name) VALUES ('kettle')",
                "INSERT INTO items (name) VALUES ('kettle')",
                "INSERT INTO children (parent) VALUES (7)",
                "INSERT INTO items (name) VALUES ('teapot')",
            ],
        )
        .await;
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().err().map(ToString::to_string))
            .collect();
        assert!(outcomes[0].is_ok() && outcomes[3].is_ok(), "{outcomes:?}");
        assert!(
            failures[0].contains("UNIQUE constraint failed"),
            "{failures:?}"
        );
        assert!(
            failures[1].contains("FOREIGN KEY constraint failed"),
            "{failures:?}"
        );
        assert_eq!(names(&file), ["kettle", "teapot"]);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        let children: i64 = file
            .write_blocking(|db| db.query_row("SELECT count(*) FROM children", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(children, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_ends_the_transaction_fails_alone_and_the_others_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let (file, commits) = file(&dir);
        let outcomes = one_batch(
            &file,
            &[
                "INSERT INTO items (name) VALUES ('first')",
                "INSERT INTO items (name) VALUES ('forbidden')",
                "INSERT INTO items (name) VALUES ('last')",
            ],
        )
        .await;
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        let refused = outcomes[1].as_ref().unwrap_err().to_string();
        assert!(refused.contains("forbidden"), "{refused}");
        assert_eq!(names(&file), ["first", "last"]);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_write_is_acknowledged_when_its_batch_does_not_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = file(&dir);
        // The commit hook turns every commit into a rollback, as a failed sync would fail it.
        file.write_blocking(|db| db.commit_hook(Some(|| true)))
            .unwrap();
        let outcomes = one_batch(
            &file,
            &[
                "INSERT INTO items (name) VALUES ('a')",
                "INSERT INTO items (name) VALUES ('b')",
            ],
        )
        .await;
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
        file.write_blocking(|db| db.commit_hook(None::<fn() -> bool>))
            .unwrap();
        assert!(names(&file).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waits_past_its_time_for_the_writer_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = file(&dir);
        let held = file.lease_writer().unwrap();
        let committer: Arc<dyn Committer> = Arc::new(Local);
        let wait = Some(Duration::from_millis(50));
        let refused = file
            .write_batched(&committer, Vec::new(), wait, |db| {
                db.execute("INSERT INTO items (name) VALUES ('late')", [])
            })
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("database is locked"),
            "{refused}"
        );
        drop(held);
        // The leader retired; the next write starts another.
        insert(&file, "INSERT INTO items (name) VALUES ('next')")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(names(&file), ["next"]);
    }
}
