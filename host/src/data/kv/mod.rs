//! Key-value stores: one small backend trait, its backends (an embedded SQLite file per store
//! with a read cache, or Redis), and the guest interfaces on top (`fermyon:spin/key-value@2.0.0`,
//! `spin:key-value/key-value@3.0.0`, `wasi:keyvalue@0.2.0-draft2`).

pub mod guest;
mod read_cache;
mod redis;
mod sqlite;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use futures::future::BoxFuture;

pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;
use super::Opening;
use super::replica::bookmark::Consistency;
use super::runtime_config::BackendTable;

/// The key-value backends, by their `type` in the runtime config. One line per backend.
const BACKENDS: &[KvBackend] = &[sqlite::BACKEND, redis::BACKEND];

/// A key-value backend, as [`BACKENDS`] lists it.
pub struct KvBackend {
    /// Its `type` in the runtime config.
    pub kind: &'static str,
    /// Opens store `label` as its table says, keeping files under the state directory unless
    /// the table says where.
    pub open: for<'a> fn(
        &'a str,
        &'a BackendTable,
        &'a Opening<'a>,
    ) -> BoxFuture<'a, Result<SharedStore>>,
}

/// Opens store `label` with the backend its `table` names (`opening` says where the embedded
/// backend's files go by default, and whether they are replicated).
pub async fn open(label: &str, table: &BackendTable, opening: &Opening<'_>) -> Result<SharedStore> {
    let Some(backend) = BACKENDS.iter().find(|backend| backend.kind == table.kind) else {
        let kinds: Vec<&str> = BACKENDS.iter().map(|backend| backend.kind).collect();
        return Err(table.error(format!(
            "`type = \"{}\"` is not a key-value backend ledge has\n  fix: use one of {kinds:?}",
            table.kind
        )));
    };
    (backend.open)(label, table, opening)
        .await
        .map_err(|e| anyhow!("cannot open the key-value store `{label}`: {e:#}"))
}

/// The longest key a store guarantees to accept, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value a store guarantees to accept, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// What can go wrong inside a store.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum KvError {
    /// The key or value is over the guaranteed size; it was not stored (never truncated).
    #[error("{0}")]
    TooLarge(String),
    /// The backend failed.
    #[error("{0}")]
    Backend(String),
}

/// A key-value store backend. Every write goes through the backend's single writer.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// The value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key` to `value`.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Removes `key` (removing a missing key is not an error).
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Whether `key` has a value.
    async fn exists(&self, key: &str) -> Result<bool, KvError>;
    /// Every key, in byte order.
    async fn keys(&self) -> Result<Vec<String>, KvError>;
    /// Adds `delta` to the integer at `key` (missing counts as 0) and returns the new value.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Sets `key` to `new` if its value is still `current`; returns whether it did.
    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError>;

    /// The store as an instance uses it, reading and writing at `consistency` (a replicated
    /// store); a store that is not replicated is itself.
    fn bind(self: Arc<Self>, consistency: &Arc<Consistency>) -> SharedStore;
}

/// A shared store.
pub type SharedStore = Arc<dyn KvStore>;

/// Checks the sizes every store guarantees, so an oversize write is refused the same way on
/// every backend.
pub fn check_sizes(key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::TooLarge(format!(
            "the key is {} bytes; keys may be at most {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    if let Some(value) = value
        && value.len() > MAX_VALUE_BYTES
    {
        return Err(KvError::TooLarge(format!(
            "the value is {} bytes; values may be at most {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Parses a stored counter: the decimal text of an i64 (what `increment` writes).
pub fn parse_counter(value: Option<Vec<u8>>) -> Result<i64, KvError> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                KvError::Backend("the value is not an integer, so it cannot be incremented".into())
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(kind: &str, settings: &str) -> BackendTable {
        BackendTable {
            kind: kind.into(),
            settings: settings.parse().unwrap(),
            section: "key_value_store.cache".into(),
            origin: Some("rc.toml:3".into()),
            base_dir: ".".into(),
        }
    }

    #[tokio::test]
    async fn an_unknown_type_or_key_names_the_table_and_the_way_out() {
        let state = tempfile::tempdir().unwrap();
        let error = open(
            "cache",
            &table("memcached", ""),
            &Opening::local(state.path()),
        )
        .await
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.starts_with("rc.toml:3: `key_value_store.cache`"),
            "{error}"
        );
        assert!(error.contains(r#"["spin", "redis"]"#), "{error}");
        let error = open(
            "cache",
            &table("spin", "pth = \"x.db\""),
            &Opening::local(state.path()),
        )
        .await
        .err()
        .unwrap();
        assert!(format!("{error:#}").contains("pth"), "{error:#}");
        let store = open("cache", &table("spin", ""), &Opening::local(state.path()))
            .await
            .unwrap();
        store.set("k", b"v").await.unwrap();
        assert!(state.path().join("kv/cache.db").exists());
    }
}
