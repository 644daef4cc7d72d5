//! The embedded backend: one SQLite file per store under the state directory, with a read
//! cache in front (see `read_cache`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::read_cache::{Lookup, ReadCache};
use super::{KvError, KvStore, check_sizes, parse_counter};
use crate::data::sqlite_file::{BUSY_TIMEOUT, SqliteFile, canonical_file_path};

/// A key-value store in a SQLite file.
pub struct SqliteStore {
    file: Arc<SqliteFile>,
    /// Relies on the file's lock against other processes (see `SqliteFile`): a write from
    /// elsewhere would not invalidate it.
    cache: Arc<ReadCache>,
}

fn backend(error: rusqlite::Error) -> KvError {
    KvError::Backend(error.to_string())
}

/// `type = "spin"`: an embedded SQLite file, `path = "..."` (relative to the runtime config;
/// default `<state-dir>/kv/<label>.db`).
pub const BACKEND: super::KvBackend = super::KvBackend {
    kind: "spin",
    open: open_backend,
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: Option<PathBuf>,
}

fn open_backend<'a>(
    label: &'a str,
    table: &'a crate::data::runtime_config::BackendTable,
    state_dir: &'a Path,
) -> futures::future::BoxFuture<'a, Result<super::SharedStore>> {
    Box::pin(async move {
        let settings: Settings = table.read()?;
        let path = match settings.path {
            Some(path) => table.resolve(&path),
            None => state_dir.join("kv").join(format!("{label}.db")),
        };
        let store: super::SharedStore = SqliteStore::open(&path)
            .map_err(|e| anyhow::anyhow!("at {}: {e:#}", path.display()))?;
        Ok(store)
    })
}

/// The stores open in this process, by canonical file path: two apps (or labels) that name the
/// same file share one store, so its writer and read cache are the only ones.
static OPEN_STORES: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteStore>>>> =
    LazyLock::new(Mutex::default);

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, or returns the one this process already
    /// has open there. Fails if another process has the file open as a store.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        let path = canonical_file_path(path)?;
        // Held until the store is registered, so that two opens of one file make one store.
        let mut open_stores = OPEN_STORES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = open_stores.get(&path).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let file = SqliteFile::open(&path, "key-value store", |_| Ok(()), BUSY_TIMEOUT)?;
        file.write_blocking(|db| {
            db.execute_batch("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID")
        })?;
        let store = Arc::new(Self {
            file,
            cache: Arc::new(ReadCache::new()),
        });
        open_stores.retain(|_, store| store.strong_count() > 0);
        open_stores.insert(path, Arc::downgrade(&store));
        Ok(store)
    }

    /// Runs the write `work` on `key` on the writer, and invalidates the key in the read cache
    /// once it has run, on the writer's thread (so that a cancelled caller cannot skip it).
    async fn write_key<T: Send + 'static>(
        &self,
        key: &str,
        work: impl FnOnce(&mut rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, KvError> {
        let (key, cache) = (key.to_owned(), self.cache.clone());
        self.file
            .write(move |db| {
                let result = work(db, &key);
                cache.invalidate(&key);
                result
            })
            .await
            .map_err(backend)
    }

    /// The value of `key`, from the read cache or else from the file (then cached).
    async fn read_key(&self, key: &str) -> Result<Option<Arc<[u8]>>, KvError> {
        let ticket = match self.cache.lookup(key) {
            Lookup::Hit(value) => return Ok(value),
            Lookup::Miss(ticket) => ticket,
        };
        let value: Option<Arc<[u8]>> = self
            .file
            .read_inline(|db| {
                db.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                    .query_row([key], |row| row.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .await
            .map_err(backend)?
            .map(Into::into);
        self.cache.fill(key, ticket, value.clone());
        Ok(value)
    }
}

#[async_trait::async_trait]
impl KvStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.read_key(key).await?.map(|value| value.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        let value = value.to_owned();
        self.write_key(key, move |db, key| {
            db.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")?
                .execute(params![key, value])
                .map(drop)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write_key(key, |db, key| {
            db.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([key])
                .map(drop)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.read_key(key).await?.is_some())
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        self.file
            .read(|db| {
                db.prepare_cached("SELECT key FROM kv ORDER BY key")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
            .map_err(backend)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check_sizes(key, None)?;
        self.write_key(key, move |db, key| {
            let tx = db.transaction()?;
            let current: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| row.get(0))
                .optional()?;
            let next = match parse_counter(current) {
                Ok(value) => value.checked_add(delta),
                Err(error) => return Ok(Err(error)),
            };
            let Some(next) = next else {
                return Ok(Err(KvError::Backend("the increment overflows a 64-bit integer".into())));
            };
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, next.to_string().into_bytes()],
            )?;
            tx.commit()?;
            Ok(Ok(next))
        })
        .await?
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_sizes(key, Some(new))?;
        let (current, new) = (current.map(<[u8]>::to_vec), new.to_owned());
        self.write_key(key, move |db, key| {
            let tx = db.transaction()?;
            let stored: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| row.get(0))
                .optional()?;
            if stored != current {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, new],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[tokio::test]
    async fn one_store_per_file_and_a_file_owned_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv").join("default.db");
        let store = SqliteStore::open(&path).unwrap();
        // The same file spelled another way is the same store: one writer, one read cache.
        let same = SqliteStore::open(&dir.path().join("kv/../kv/default.db")).unwrap();
        assert!(Arc::ptr_eq(&store, &same));
        let alias = dir.path().join("alias.db");
        std::os::unix::fs::symlink(&path, &alias).unwrap();
        assert!(Arc::ptr_eq(&store, &SqliteStore::open(&alias).unwrap()));
        store.set("k", b"v").await.unwrap();
        assert_eq!(same.get("k").await.unwrap(), Some(b"v".to_vec()));
        drop((store, same));

        // Another process's lock is another open file description holding it.
        let other_owner = File::options()
            .write(true)
            .open(dir.path().join("kv/default.db.lock"))
            .unwrap();
        other_owner.try_lock().unwrap();
        let error = SqliteStore::open(&path).err().unwrap();
        assert!(
            format!("{error:#}").contains("default.db is in use by another process"),
            "{error:#}"
        );
        drop(other_owner);
        assert_eq!(
            SqliteStore::open(&path).unwrap().get("k").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
}
