//! The embedded backend: one SQLite file per store under the state directory.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::{KvError, KvStore, check_sizes, parse_counter};
use crate::data::sqlite_file::SqliteFile;

/// A key-value store in a SQLite file.
pub struct SqliteStore {
    file: Arc<SqliteFile>,
}

fn backend(error: rusqlite::Error) -> KvError {
    KvError::Backend(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let file = SqliteFile::open(path)?;
        file.write_blocking(|db| {
            db.execute_batch("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID")
        })?;
        Ok(Self { file })
    }
}

#[async_trait::async_trait]
impl KvStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.file
            .read(|db| {
                db.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                    .query_row([key], |row| row.get(0))
                    .optional()
            })
            .await
            .map_err(backend)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        let (key, value) = (key.to_owned(), value.to_owned());
        self.file
            .write(move |db| {
                db.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")?
                    .execute(params![key, value])
                    .map(drop)
            })
            .await
            .map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let key = key.to_owned();
        self.file
            .write(move |db| {
                db.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute([key])
                    .map(drop)
            })
            .await
            .map_err(backend)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.file
            .read(|db| {
                db.prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
                    .exists([key])
            })
            .await
            .map_err(backend)
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
        let key = key.to_owned();
        self.file
            .write(move |db| {
                let tx = db.transaction()?;
                let current: Option<Vec<u8>> = tx
                    .query_row("SELECT value FROM kv WHERE key = ?1", [&key], |row| row.get(0))
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
            .await
            .map_err(backend)?
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_sizes(key, Some(new))?;
        let (key, current, new) = (key.to_owned(), current.map(<[u8]>::to_vec), new.to_owned());
        self.file
            .write(move |db| {
                let tx = db.transaction()?;
                let stored: Option<Vec<u8>> = tx
                    .query_row("SELECT value FROM kv WHERE key = ?1", [&key], |row| row.get(0))
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
            .map_err(backend)
    }
}
