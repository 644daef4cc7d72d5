//! One SQLite file with a single writer and a bounded pool of readers, in WAL mode.
//!
//! Every write to a database or key-value store goes through its one writer connection, so
//! writes are serialised in one place (where they can later be shipped to replicas) and never
//! fight over locks. Readers run concurrently beside it, as WAL allows. `synchronous = FULL`
//! makes a write durable before it is acknowledged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

/// How many reader connections one file keeps at most.
const MAX_READERS: usize = 4;

/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What runs on every new connection of a file before its first use (functions to register).
pub type ConnectionSetup = fn(&Connection) -> rusqlite::Result<()>;

/// A SQLite file: one writer, up to [`MAX_READERS`] readers.
pub struct SqliteFile {
    path: PathBuf,
    setup: ConnectionSetup,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
}

impl SqliteFile {
    /// Opens (creating if needed) the file at `path`, with its directory; `setup` runs on each
    /// of its connections.
    pub fn open(path: &Path, setup: ConnectionSetup) -> rusqlite::Result<Arc<Self>> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let writer = Connection::open(path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        setup(&writer)?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            setup,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            reader_permits: Semaphore::new(MAX_READERS),
        }))
    }

    /// Runs `work` on the writer, off the async threads (a write waits for the disk).
    pub async fn write<T, F>(self: &Arc<Self>, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let file = self.clone();
        tokio::task::spawn_blocking(move || file.write_blocking(work))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// Runs `work` on the writer on this thread (start-up work, tests).
    pub fn write_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut writer)
    }

    /// Runs the short read `work` on a reader connection, on this thread: point reads from the
    /// page cache take microseconds, less than a hop to the blocking pool.
    pub async fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let reader = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reader = match reader {
            Some(reader) => reader,
            None => {
                let reader = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                reader.busy_timeout(BUSY_TIMEOUT)?;
                (self.setup)(&reader)?;
                reader
            }
        };
        let result = work(&reader);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reader);
        result
    }
}
