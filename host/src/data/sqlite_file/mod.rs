//! One SQLite file with a single writer and a bounded pool of readers, in WAL mode, owned by
//! this process.
//!
//! Every write to a database or key-value store goes through its one writer connection, so
//! writes are serialised in one place (where they can later be shipped to replicas) and never
//! fight over locks. Readers run concurrently beside it, as WAL allows. `synchronous = FULL`
//! makes a write durable before it is acknowledged.
//!
//! The writer is taken as a [`WriterLease`], which may be held across statements (a guest's
//! transaction) and never goes back inside a transaction: dropping a lease whose connection is
//! still in one rolls it back. A file is `flock`ed (`<file>.lock`) by the process that opened
//! it, so a second process on the same state directory is refused rather than left to write
//! beside this one; within a process, one path is one [`SqliteFile`].
//!
//! SQLite work that may take long runs on tokio's blocking threads ([`off_thread`]), and the
//! statement is interrupted when its caller stops waiting (its request ended or timed out).
//! Autocommit writes that arrive together commit as one batch ([`group_commit`]).

mod group_commit;

pub use group_commit::{Committer, Local};

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use parking_lot::{ArcMutexGuard, RawMutex};
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many reader connections one file keeps at most.
pub const MAX_READERS: usize = 4;

/// How long a caller waits for the writer (held by another transaction, or locked by another
/// process) before it gets "database is locked", as SQLite's busy timeout; a file's owner may
/// set another.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many SQLite VM steps run between two looks at the writer's deadline.
const DEADLINE_CHECK_STEPS: i32 = 1000;

/// How many SQLite VM steps a read may take on an async thread ([`Reader::try_quick`]) before
/// it is stopped, to run again off-thread: an indexed lookup takes a few dozen, a scan of a few
/// hundred rows already more (a thousand steps run in tens of microseconds).
const QUICK_READ_STEPS: i32 = 1000;

/// What runs on every new connection of a file before its first use (functions to register).
pub type ConnectionSetup = fn(&Connection) -> rusqlite::Result<()>;

/// A SQLite file: one writer, up to [`MAX_READERS`] readers.
pub struct SqliteFile {
    path: PathBuf,
    /// What the file holds ("key-value store", "SQL database"), for refusing a second use.
    kind: &'static str,
    setup: ConnectionSetup,
    writer: Arc<parking_lot::Mutex<Connection>>,
    /// How long a caller waits for the writer before it gets "database is locked".
    busy_timeout: Duration,
    /// When the statement running on the writer must stop (a transaction's limit).
    writer_deadline: Arc<parking_lot::Mutex<Option<Instant>>>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Arc<Semaphore>,
    /// The autocommit writes waiting for the next batch.
    batches: group_commit::Batches,
    /// The file's exclusive lock against other processes. Each call in flight holds the file,
    /// so the lock is released only once the last of them has finished.
    _owner: File,
}

/// The files open in this process, by canonical path.
static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteFile>>>> =
    LazyLock::new(Mutex::default);

impl SqliteFile {
    /// Opens (creating if needed) the file at `path`, which holds a `kind`, or returns the one
    /// this process already has open there; `setup` runs on each of its connections, and a
    /// caller waits up to `busy_timeout` for its writer. Fails if another process has the file
    /// open, or this one has it open as another kind.
    pub fn open(
        path: &Path,
        kind: &'static str,
        setup: ConnectionSetup,
        busy_timeout: Duration,
    ) -> Result<Arc<Self>> {
        let path = canonical_file_path(path)?;
        // Held until the file is registered, so that two opens of one path make one file.
        let mut open_files = OPEN_FILES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = open_files.get(&path).and_then(Weak::upgrade) {
            if file.kind != kind {
                bail!(
                    "{} is already open as a {}; it cannot also be a {kind}.\n  \
                     fix: give each store and database its own file in the runtime config",
                    path.display(),
                    file.kind
                );
            }
            return Ok(file);
        }
        let owner = lock_for_this_process(&path)?;
        let writer = Connection::open(&path)?;
        writer.busy_timeout(busy_timeout)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        setup(&writer)?;
        let writer_deadline = Arc::new(parking_lot::Mutex::new(None::<Instant>));
        let mut writer = writer;
        let deadline = writer_deadline.clone();
        writer.progress_handler(
            DEADLINE_CHECK_STEPS,
            Some(move || deadline.lock().is_some_and(|at| Instant::now() >= at)),
        )?;
        let file = Arc::new(Self {
            path: path.clone(),
            kind,
            setup,
            writer: Arc::new(parking_lot::Mutex::new(writer)),
            busy_timeout,
            writer_deadline,
            readers: Mutex::new(Vec::new()),
            reader_permits: Arc::new(Semaphore::new(MAX_READERS)),
            batches: group_commit::Batches::default(),
            _owner: owner,
        });
        open_files.retain(|_, file| file.strong_count() > 0);
        open_files.insert(path, Arc::downgrade(&file));
        Ok(file)
    }

    /// The file's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the writer, waiting up to the busy timeout for the caller that holds it. Blocks
    /// the thread: call it inside [`off_thread`] or at start-up.
    pub fn lease_writer(&self) -> rusqlite::Result<WriterLease> {
        self.lease_writer_within(self.busy_timeout)
    }

    /// Takes the writer, waiting up to `wait` (at most the busy timeout) for the caller that
    /// holds it. Blocks the thread, as [`SqliteFile::lease_writer`].
    pub fn lease_writer_within(&self, wait: Duration) -> rusqlite::Result<WriterLease> {
        let connection = self
            .writer
            .try_lock_arc_for(wait.min(self.busy_timeout))
            .ok_or_else(database_is_locked)?;
        Ok(WriterLease {
            connection,
            deadline: self.writer_deadline.clone(),
        })
    }

    /// Runs the write `work` on the writer, off the async threads (a write waits for the disk
    /// and perhaps for a transaction); interrupted if the caller stops waiting.
    pub async fn write<T, F>(self: &Arc<Self>, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let file = self.clone();
        off_thread(move |call| {
            let mut writer = file.lease_writer()?;
            call.run(writer.get_interrupt_handle(), || work(&mut writer))
        })
        .await
    }

    /// Runs `work` on the writer on this thread (start-up work, tests).
    pub fn write_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        work(&mut *self.lease_writer()?)
    }

    /// A reader connection, once one of the [`MAX_READERS`] is free.
    pub async fn reader(self: &Arc<Self>) -> rusqlite::Result<Reader> {
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                connection.busy_timeout(self.busy_timeout)?;
                (self.setup)(&connection)?;
                connection
            }
        };
        Ok(Reader {
            connection: Some(connection),
            spoiled: false,
            file: self.clone(),
            _permit: permit,
        })
    }

    /// Runs the read `work` on a reader connection, off the async threads; interrupted if the
    /// caller stops waiting.
    pub async fn read<T, F>(self: &Arc<Self>, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = self.reader().await?;
        off_thread(move |call| call.run(reader.get_interrupt_handle(), || work(&reader))).await
    }

    /// Runs the short read `work` on a reader connection, on this thread: point reads from the
    /// page cache (key-value gets) take microseconds, less than a hop to the blocking pool.
    /// Anything that may run long uses [`SqliteFile::reader`] inside [`off_thread`].
    pub async fn read_inline<T>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        work(&*self.reader().await?)
    }
}

/// The writer, held by one caller. Dropped while its connection is inside a transaction, it
/// rolls the transaction back first, so the next holder always starts outside one.
pub struct WriterLease {
    connection: ArcMutexGuard<RawMutex, Connection>,
    deadline: Arc<parking_lot::Mutex<Option<Instant>>>,
}

impl WriterLease {
    /// Makes statements on the writer fail as interrupted once `at` has passed (until the
    /// lease ends).
    pub fn set_deadline(&self, at: Instant) {
        *self.deadline.lock() = Some(at);
    }
}

impl Deref for WriterLease {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl DerefMut for WriterLease {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        *self.deadline.lock() = None;
        if !self.connection.is_autocommit()
            && let Err(error) = self.connection.execute_batch("ROLLBACK")
        {
            tracing::error!("cannot roll back an abandoned transaction: {error}");
        }
    }
}

/// A pooled reader connection; it goes back to the pool when dropped.
pub struct Reader {
    connection: Option<Connection>,
    /// Its settings could not be restored after a quick read: closed, not pooled, when dropped.
    spoiled: bool,
    file: Arc<SqliteFile>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until dropped")
    }
}

impl Reader {
    /// Runs the read-only `work` here, on the calling thread, if it finishes within
    /// [`QUICK_READ_STEPS`] steps of SQLite's virtual machine without waiting for a lock: a
    /// point read then costs less than the hop to a blocking thread would, and no read holds
    /// an async thread longer than that. `None` when it was stopped, having changed nothing:
    /// run it again through [`off_thread`].
    pub fn try_quick<T>(
        &mut self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<rusqlite::Result<T>> {
        let busy_timeout = self.file.busy_timeout;
        let connection = self.connection.as_mut().expect("present until dropped");
        let limited = connection
            .busy_timeout(Duration::ZERO)
            .and_then(|()| connection.progress_handler(QUICK_READ_STEPS, Some(|| true)));
        let result = limited.and_then(|()| work(connection));
        let restored = connection
            .progress_handler(0, None::<fn() -> bool>)
            .and_then(|()| connection.busy_timeout(busy_timeout));
        if let Err(error) = restored {
            // Left as it is, the connection would stop every later read: it is not reused.
            self.spoiled = true;
            return Some(Err(error));
        }
        match result {
            Err(rusqlite::Error::SqliteFailure(code, _))
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::OperationInterrupted | rusqlite::ErrorCode::DatabaseBusy
                ) =>
            {
                None
            }
            result => Some(result),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        // Only transaction-control statements could leave a reader inside a transaction, and
        // they run on the writer; should one slip through, the reader is closed, not reused.
        if self.spoiled {
            tracing::warn!("a reader's settings could not be restored; closing it");
        } else if connection.is_autocommit() {
            self.file
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(connection);
        } else {
            tracing::warn!("a reader was left inside a transaction; closing it");
        }
    }
}

/// One call running on a blocking thread, which its caller may abandon.
#[derive(Default)]
pub struct Call(Mutex<CallState>);

#[derive(Default)]
struct CallState {
    abandoned: bool,
    running: Option<InterruptHandle>,
}

impl Call {
    /// Runs `work` on the connection that `interrupt` belongs to, interruptible by
    /// [`Call::abandon`] meanwhile; fails as interrupted without running it if the caller has
    /// already gone.
    pub fn run<T>(
        &self,
        interrupt: InterruptHandle,
        work: impl FnOnce() -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        {
            let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if state.abandoned {
                return Err(interrupted());
            }
            state.running = Some(interrupt);
        }
        let result = work();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).running = None;
        result
    }

    /// The caller stopped waiting: interrupts the statement running, and any not yet started.
    fn abandon(&self) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.abandoned = true;
        if let Some(running) = state.running.take() {
            running.interrupt();
        }
    }
}

/// Abandons its call when dropped: when the caller's future is dropped before the result.
struct AbandonOnDrop(Arc<Call>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Runs blocking SQLite `work` on tokio's blocking threads, so a slow statement never stalls
/// an async worker. If the returned future is dropped (its request ended), the statement that
/// `work` runs through its [`Call`] is interrupted.
pub async fn off_thread<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&Call) -> T + Send + 'static,
{
    let call = Arc::new(Call::default());
    let _abandon = AbandonOnDrop(call.clone());
    tokio::task::spawn_blocking(move || work(&call))
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}

/// Whether `db`'s open transaction has deferred foreign-key violations, which would make its
/// `COMMIT` fail.
pub fn has_deferred_violations(db: &Connection) -> bool {
    let (mut current, mut highest) = (0, 0);
    // SAFETY: `db` is a live connection and both counters outlive the call.
    let status = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            db.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
            &mut current,
            &mut highest,
            0,
        )
    };
    status == rusqlite::ffi::SQLITE_OK && current > 0
}

/// SQLite's own error for a lock it waited on in vain.
fn database_is_locked() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("database is locked".into()),
    )
}

/// SQLite's own error for an interrupted statement.
fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("interrupted".into()),
    )
}

/// Takes `<path>.lock` for this process, or fails naming the file and the fix.
fn lock_for_this_process(path: &Path) -> Result<File> {
    let owner_path = {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    };
    let owner = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&owner_path)
        .with_context(|| format!("cannot create {}", owner_path.display()))?;
    match owner.try_lock() {
        Ok(()) => Ok(owner),
        Err(TryLockError::WouldBlock) => bail!(
            "{} is in use by another process (is another `ledge up` serving this app?).\n  \
             fix: stop the other process, or give this one its own --state-dir",
            path.display()
        ),
        Err(TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", owner_path.display()))
        }
    }
}

/// The path of the file `path` names with every link resolved, creating its directory: one
/// file is one key in [`OPEN_FILES`] however it is named.
pub fn canonical_file_path(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let file = dir.join(name);
    Ok(file.canonicalize().unwrap_or(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new SQL database file in `dir`.
    fn test_file(dir: &tempfile::TempDir) -> Arc<SqliteFile> {
        SqliteFile::open(
            &dir.path().join("test.db"),
            "SQL database",
            |_| Ok(()),
            BUSY_TIMEOUT,
        )
        .unwrap()
    }

    /// How many rows a read of `statement` on `reader` counts, quickly or not at all.
    fn count_quickly(reader: &mut Reader, statement: &str) -> Option<i64> {
        reader
            .try_quick(|db| db.query_row(statement, [], |row| row.get(0)))
            .map(Result::unwrap)
    }

    #[tokio::test]
    async fn a_point_read_runs_here_and_a_long_one_is_stopped_for_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let file = test_file(&dir);
        file.write_blocking(|db| {
            db.execute_batch(
                "CREATE TABLE items (id INTEGER PRIMARY KEY);
                 INSERT INTO items WITH RECURSIVE n(v) AS
                   (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 5000) SELECT v FROM n;",
            )
        })
        .unwrap();
        let mut reader = file.reader().await.unwrap();
        let point = "SELECT count(*) FROM items WHERE id = 42";
        let scan = "SELECT count(*) FROM items WHERE id % 7 = 0";
        assert_eq!(count_quickly(&mut reader, point), Some(1));
        assert_eq!(count_quickly(&mut reader, scan), None);
        // The stopped read changed nothing: the same connection runs it in full, unlimited.
        let full: i64 = reader.query_row(scan, [], |row| row.get(0)).unwrap();
        assert_eq!(full, 714);
        assert_eq!(count_quickly(&mut reader, point), Some(1));
    }

    #[tokio::test]
    async fn a_quick_read_that_finds_the_file_busy_is_handed_back_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let file = test_file(&dir);
        let busy_timeout = |db: &Connection| -> i64 {
            db.query_row("PRAGMA busy_timeout", [], |row| row.get(0))
                .unwrap()
        };
        let mut reader = file.reader().await.unwrap();
        // Here, a read does not wait for a lock: SQLite's "busy" comes back at once, and the
        // read is handed back to run where it may wait.
        let handed_back = reader.try_quick(|db| {
            assert_eq!(busy_timeout(db), 0);
            Err::<(), _>(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ))
        });
        assert!(handed_back.is_none());
        // The reader waits for locks again, as long as the file's busy timeout.
        assert_eq!(busy_timeout(&reader), BUSY_TIMEOUT.as_millis() as i64);
        // Any other failure is the read's own, and is kept.
        let failed = reader.try_quick(|db| db.execute("SELECT * FROM nowhere", []));
        assert!(matches!(failed, Some(Err(_))), "{failed:?}");
    }
}
