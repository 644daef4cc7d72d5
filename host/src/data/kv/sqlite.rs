//! The embedded backend: one SQLite file per store under the state directory, with a read
//! cache in front (see `read_cache`). Under `ledge node` the file is one node's copy of a
//! replicated store ([`crate::data::replica`]): reads stay local (once the copy has applied
//! what the caller's bookmark asks for), writes commit at the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use anyhow::Result;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::read_cache::{Lookup, ReadCache};
use super::{KvError, KvStore, SharedStore, check_sizes, parse_counter};
use crate::data::replica::bookmark::Consistency;
use crate::data::replica::{self, Applied, FORWARD_LIMIT, Kind, Replica, Replication};
use crate::data::sqlite_file::{BUSY_TIMEOUT, Committer, Local, SqliteFile, canonical_file_path};

/// A key-value store in a SQLite file.
pub struct SqliteStore {
    file: Arc<SqliteFile>,
    /// Relies on the file's lock against other processes (see `SqliteFile`): a write from
    /// elsewhere would not invalidate it, except the replication log's, which invalidates
    /// what it applies.
    cache: Arc<ReadCache>,
    /// The store's copy in the cluster, when it is replicated.
    replica: Option<Arc<Replica>>,
    /// How its batches of writes commit: through the log when it is replicated, and
    /// invalidating what they wrote in the read cache.
    committer: Arc<dyn Committer>,
}

/// Commits a batch of a store's writes through `inner`, then drops the keys it wrote from
/// the read cache (committed or not, on the writer's thread, before any is acknowledged).
struct Invalidating {
    cache: Arc<ReadCache>,
    inner: Arc<dyn Committer>,
}

impl Committer for Invalidating {
    fn commit(
        &self,
        db: &mut Connection,
        keys: Vec<String>,
        batch: &mut dyn FnMut(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<u64> {
        let result = self.inner.commit(db, keys.clone(), batch);
        keys.iter().for_each(|key| self.cache.invalidate(key));
        result
    }
}

fn backend(error: rusqlite::Error) -> KvError {
    KvError::Backend(error.to_string())
}

/// `type = "spin"`: an embedded SQLite file, `path = "..."` (relative to the runtime config;
/// default `<state-dir>/kv/<label>.db`); replicated under `ledge node`.
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
    opening: &'a crate::data::Opening<'a>,
) -> futures::future::BoxFuture<'a, Result<super::SharedStore>> {
    Box::pin(async move {
        let settings: Settings = table.read()?;
        let path = match settings.path {
            Some(path) => table.resolve(&path),
            None => opening.state_dir.join("kv").join(format!("{label}.db")),
        };
        let replicated = opening
            .replication
            .map(|(app, replication)| (app, label, replication));
        let store = SqliteStore::open_with(&path, replicated)
            .map_err(|e| anyhow::anyhow!("at {}: {e:#}", path.display()))?;
        Ok(store.shared())
    })
}

/// The stores open in this process, by canonical file path: two apps (or labels) that name the
/// same file share one store, so its writer and read cache are the only ones.
static OPEN_STORES: LazyLock<Mutex<HashMap<PathBuf, Weak<SqliteStore>>>> =
    LazyLock::new(Mutex::default);

/// A write, as it runs here or is forwarded to the writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Write {
    Set {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    Increment {
        key: String,
        delta: i64,
    },
    Swap {
        key: String,
        current: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

impl Write {
    fn key(&self) -> &str {
        match self {
            Self::Set { key, .. }
            | Self::Delete { key }
            | Self::Increment { key, .. }
            | Self::Swap { key, .. } => key,
        }
    }

    /// Runs the write on the writer connection `db`.
    fn run(&self, db: &Connection) -> rusqlite::Result<Result<Outcome, KvError>> {
        const UPSERT: &str = "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
        let stored = |key: &str| -> rusqlite::Result<Option<Vec<u8>>> {
            db.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()
        };
        Ok(Ok(match self {
            Self::Set { key, value } => {
                db.prepare_cached(UPSERT)?.execute(params![key, value])?;
                Outcome::Done
            }
            Self::Delete { key } => {
                db.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute([key])?;
                Outcome::Done
            }
            Self::Increment { key, delta } => {
                let next = match parse_counter(stored(key)?) {
                    Ok(value) => value.checked_add(*delta),
                    Err(error) => return Ok(Err(error)),
                };
                let Some(next) = next else {
                    return Ok(Err(KvError::Backend(
                        "the increment overflows a 64-bit integer".into(),
                    )));
                };
                db.prepare_cached(UPSERT)?
                    .execute(params![key, next.to_string().into_bytes()])?;
                Outcome::Counter(next)
            }
            Self::Swap { key, current, new } => {
                if stored(key)? != *current {
                    return Ok(Ok(Outcome::Swapped(false)));
                }
                db.prepare_cached(UPSERT)?.execute(params![key, new])?;
                Outcome::Swapped(true)
            }
        }))
    }
}

/// What a write did.
#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Done,
    Counter(i64),
    Swapped(bool),
}

/// What another node asks the writer.
#[derive(Debug, Serialize, Deserialize)]
enum Forwarded {
    /// A read its copy could not answer in time.
    Get(String),
    /// Every key, read at the writer.
    Keys,
    /// A write.
    Write(Write),
}

/// The writer's answer, with its position afterwards.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Value(Option<Vec<u8>>),
    Keys(Vec<String>),
    Wrote(Outcome),
}

type Reply = Result<(Answer, u64), KvError>;

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, or returns the one this process already
    /// has open there. Fails if another process has the file open as a store.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        Self::open_with(path, None)
    }

    /// The store as a caller outside any request uses it.
    pub fn shared(self: &Arc<Self>) -> SharedStore {
        Arc::new(Bound {
            store: self.clone(),
            consistency: None,
        })
    }

    /// Opens the store at `path`; with `replicated` (the app, the store's label and the
    /// cluster), as this node's copy of the app's replicated store.
    fn open_with(
        path: &Path,
        replicated: Option<(&str, &str, &dyn Replication)>,
    ) -> Result<Arc<Self>> {
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
        let replica = match replicated {
            Some((app, label, replication)) => Some(Replica::open(
                replication,
                app,
                Kind::KeyValue,
                label,
                file.clone(),
            )?),
            None => None,
        };
        let cache = Arc::new(ReadCache::new());
        let committer = Arc::new(Invalidating {
            cache: cache.clone(),
            inner: match &replica {
                Some(replica) => replica.clone(),
                None => Arc::new(Local),
            },
        });
        let store = Arc::new(Self {
            file,
            cache: cache.clone(),
            replica,
            committer,
        });
        if let Some(replica) = &store.replica {
            replica.on_applied(Box::new(move |applied| match applied {
                Applied::Keys(keys) => keys.iter().for_each(|key| cache.invalidate(key)),
                Applied::Everything => cache.invalidate_all(),
            }));
            let writer: Weak<dyn replica::Writer> = Arc::downgrade(&store) as _;
            replica.serve_with(writer);
        }
        open_stores.retain(|_, store| store.strong_count() > 0);
        open_stores.insert(path, Arc::downgrade(&store));
        Ok(store)
    }

    /// Runs `write` here, in the writer's next batch; the batch drops its key from the read
    /// cache (see [`Invalidating`]). Returns the position it committed at.
    async fn write_here(&self, write: Write) -> Result<(Outcome, u64), KvError> {
        let keys = vec![write.key().to_string()];
        let (outcome, position) = self
            .file
            .write_batched(&self.committer, keys, None, move |db| write.run(db))
            .await
            .map_err(backend)?;
        outcome.map(|outcome| (outcome, position))
    }

    /// Runs `write` where it commits: here, or at the writer when this node is not it.
    async fn write(
        &self,
        write: Write,
        consistency: Option<&Consistency>,
    ) -> Result<Outcome, KvError> {
        let (outcome, position) = match &self.replica {
            Some(replica) if !replica.is_writer() => {
                match self
                    .forward(replica, Forwarded::Write(write), consistency)
                    .await?
                {
                    (Answer::Wrote(outcome), position) => (outcome, position),
                    _ => return Err(another_answer()),
                }
            }
            _ => self.write_here(write).await?,
        };
        if let (Some(replica), Some(consistency)) = (&self.replica, consistency) {
            consistency.raise(&replica.id, position);
        }
        Ok(outcome)
    }

    /// Sends `request` to the writer of `replica`, answered once it has applied what
    /// `consistency` asks for, and raises `consistency` to its answer.
    async fn forward(
        &self,
        replica: &Replica,
        request: Forwarded,
        consistency: Option<&Consistency>,
    ) -> Result<(Answer, u64), KvError> {
        let request = postcard::to_stdvec(&request).map_err(|e| KvError::Backend(e.to_string()))?;
        let floor = consistency.map_or(0, |consistency| consistency.floor(&replica.id));
        let answer = match replica.forward(request.into(), floor, FORWARD_LIMIT).await {
            Ok(answer) => answer,
            Err(error) => {
                if let Some(consistency) = consistency {
                    consistency.writer_unreachable();
                }
                return Err(KvError::Backend(format!("{}: {error}", replica.name)));
            }
        };
        let reply: Reply = postcard::from_bytes(&answer)
            .map_err(|e| KvError::Backend(format!("the writer's answer is unreadable: {e}")))?;
        let (answer, position) = reply?;
        if let Some(consistency) = consistency {
            consistency.raise(&replica.id, position);
        }
        Ok((answer, position))
    }

    /// Whether a read may be answered by this copy: it is no replica, or it has applied what
    /// `consistency` asks for (waiting a little for it).
    async fn fresh_here(&self, consistency: Option<&Consistency>) -> bool {
        match (&self.replica, consistency) {
            (Some(replica), Some(consistency)) if !replica.is_writer() => {
                let fresh = replica.caught_up(consistency).await;
                if fresh {
                    replica.read_locally(consistency);
                }
                fresh
            }
            (Some(replica), Some(consistency)) => {
                // The writer reads its own copy either way; see `Replica::caught_up`.
                replica.caught_up(consistency).await;
                true
            }
            _ => true,
        }
    }

    /// The value of `key`, from the read cache or else from the file (then cached), or from
    /// the writer when this copy is behind what `consistency` asks for.
    async fn read_key(
        &self,
        key: &str,
        consistency: Option<&Consistency>,
    ) -> Result<Option<Arc<[u8]>>, KvError> {
        if let Some(replica) = &self.replica
            && !self.fresh_here(consistency).await
        {
            return match self
                .forward(replica, Forwarded::Get(key.into()), consistency)
                .await?
            {
                (Answer::Value(value), _) => Ok(value.map(Into::into)),
                _ => Err(another_answer()),
            };
        }
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

    async fn keys_at(&self, consistency: Option<&Consistency>) -> Result<Vec<String>, KvError> {
        if let Some(replica) = &self.replica
            && !self.fresh_here(consistency).await
        {
            return match self.forward(replica, Forwarded::Keys, consistency).await? {
                (Answer::Keys(keys), _) => Ok(keys),
                _ => Err(another_answer()),
            };
        }
        self.file
            .read(|db| {
                db.prepare_cached("SELECT key FROM kv ORDER BY key")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
            .map_err(backend)
    }

    async fn answer(&self, request: Forwarded) -> Reply {
        let position = || self.replica.as_ref().map_or(0, |replica| replica.applied());
        Ok(match request {
            Forwarded::Get(key) => {
                let value = self.read_key(&key, None).await?;
                (Answer::Value(value.map(|value| value.to_vec())), position())
            }
            Forwarded::Keys => (Answer::Keys(self.keys_at(None).await?), position()),
            Forwarded::Write(write) => {
                let (outcome, position) = self.write_here(write).await?;
                (Answer::Wrote(outcome), position)
            }
        })
    }
}

#[async_trait::async_trait]
impl replica::Writer for SqliteStore {
    async fn serve(&self, request: Bytes) -> Bytes {
        let reply: Reply = match postcard::from_bytes(&request) {
            Ok(request) => self.answer(request).await,
            Err(error) => Err(KvError::Backend(format!("an unreadable request: {error}"))),
        };
        postcard::to_stdvec(&reply).unwrap_or_default().into()
    }
}

/// A store as one caller sees it: outside any request, or (a replicated store) bound to an
/// instance, whose reads include what the requests it serves have seen and whose writes raise
/// their bookmarks.
struct Bound {
    store: Arc<SqliteStore>,
    consistency: Option<Arc<Consistency>>,
}

impl Bound {
    /// The consistency the caller reads and writes at (none outside a request).
    fn at(&self) -> Option<&Consistency> {
        self.consistency.as_deref()
    }

    async fn write(&self, write: Write) -> Result<Outcome, KvError> {
        self.store.write(write, self.at()).await
    }
}

#[async_trait::async_trait]
impl KvStore for Bound {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.store.read_key(key, self.at()).await?;
        Ok(value.map(|value| value.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        let write = Write::Set {
            key: key.into(),
            value: value.to_owned(),
        };
        self.write(write).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write(Write::Delete { key: key.into() })
            .await
            .map(drop)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.store.read_key(key, self.at()).await?.is_some())
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        self.store.keys_at(self.at()).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check_sizes(key, None)?;
        match self
            .write(Write::Increment {
                key: key.into(),
                delta,
            })
            .await?
        {
            Outcome::Counter(value) => Ok(value),
            _ => Err(another_answer()),
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_sizes(key, Some(new))?;
        let write = Write::Swap {
            key: key.into(),
            current: current.map(<[u8]>::to_vec),
            new: new.to_owned(),
        };
        match self.write(write).await? {
            Outcome::Swapped(swapped) => Ok(swapped),
            _ => Err(another_answer()),
        }
    }

    fn bind(self: Arc<Self>, consistency: &Arc<Consistency>) -> SharedStore {
        match (&self.store.replica, &self.consistency) {
            (Some(_), None) => Arc::new(Bound {
                store: self.store.clone(),
                consistency: Some(consistency.clone()),
            }),
            _ => self,
        }
    }
}

/// A writer's answer of the wrong kind for the call (a writer of another ledge version).
fn another_answer() -> KvError {
    KvError::Backend("the writer answered another call".into())
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
        store.shared().set("k", b"v").await.unwrap();
        assert_eq!(same.shared().get("k").await.unwrap(), Some(b"v".to_vec()));
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
            SqliteStore::open(&path)
                .unwrap()
                .shared()
                .get("k")
                .await
                .unwrap(),
            Some(b"v".to_vec())
        );
    }
}
