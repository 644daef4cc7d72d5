//! The Redis backend (`type = "redis"` in the runtime config), for a store shared by several
//! ledge processes.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{KvBackend, KvError, KvStore, SharedStore, check_sizes};
use crate::data::replica::bookmark::Consistency;
use crate::data::runtime_config::BackendTable;

/// `type = "redis"`, `url = "redis://host:port/db"`.
pub const BACKEND: KvBackend = KvBackend {
    kind: "redis",
    open: open_backend,
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

fn open_backend<'a>(
    _label: &'a str,
    table: &'a BackendTable,
    _opening: &'a crate::data::Opening<'a>,
) -> BoxFuture<'a, anyhow::Result<SharedStore>> {
    Box::pin(async move {
        let settings: Settings = table.read()?;
        let store = RedisStore::connect(&settings.url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", settings.url))?;
        Ok(std::sync::Arc::new(store) as SharedStore)
    })
}

/// Sets KEYS[1] to ARGV[3] when its value is still ARGV[2] (or missing, when ARGV[1] is 1),
/// atomically on the server.
const COMPARE_AND_SWAP: &str = r"
local value = redis.call('GET', KEYS[1])
if (ARGV[1] == '1' and value == false) or (ARGV[1] == '0' and value == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0
";

/// A key-value store in a Redis database.
pub struct RedisStore {
    connection: ConnectionManager,
}

fn backend(error: redis::RedisError) -> KvError {
    KvError::Backend(format!("redis: {error}"))
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, KvError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let connection = ConnectionManager::new(client).await.map_err(backend)?;
        Ok(Self { connection })
    }
}

#[async_trait::async_trait]
impl KvStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.connection.clone().get(key).await.map_err(backend)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        self.connection
            .clone()
            .set(key, value)
            .await
            .map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.connection.clone().del(key).await.map_err(backend)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.connection.clone().exists(key).await.map_err(backend)
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut connection = self.connection.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut iter: redis::AsyncIter<'_, String> = connection.scan().await.map_err(backend)?;
        while let Some(key) = iter.next_item().await {
            keys.push(key.map_err(backend)?);
        }
        keys.sort();
        Ok(keys)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check_sizes(key, None)?;
        self.connection
            .clone()
            .incr(key, delta)
            .await
            .map_err(backend)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_sizes(key, Some(new))?;
        let swapped: i64 = redis::Script::new(COMPARE_AND_SWAP)
            .key(key)
            .arg(if current.is_none() { "1" } else { "0" })
            .arg(current.unwrap_or_default())
            .arg(new)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(backend)?;
        Ok(swapped == 1)
    }
    fn bind(self: Arc<Self>, _consistency: &Arc<Consistency>) -> SharedStore {
        self
    }
}
