//! Counts every node shares: the gateway's API-key quota counts, kept in the cluster's
//! [`COUNTS`] KV bucket so that a quota holds across all nodes, not per node (rate limits and the
//! response cache stay per node). Increments are compare-and-set on the entry's revision, so
//! concurrent calls on different nodes never lose a count. A node that cannot reach the bucket
//! cannot count: the gateway then refuses the call with 503 rather than let it through
//! uncounted.

use std::sync::Arc;

use super::cluster::latest_values;
use arc_swap::ArcSwapOption;
use async_nats::jetstream::kv;

use crate::data::kv::{KvError, KvStore, SharedStore, check_sizes, parse_counter};
use crate::data::replica::bookmark::Consistency;

/// The KV bucket of shared counts.
pub const COUNTS: &str = "ledge-counts";

/// The shared counts bucket, once the node has reached the cluster.
#[derive(Default)]
pub struct SharedCounts {
    bucket: ArcSwapOption<kv::Store>,
}

impl SharedCounts {
    /// Counts in `bucket` from now on.
    pub fn connect(&self, bucket: kv::Store) {
        self.bucket.store(Some(Arc::new(bucket)));
    }

    /// App `app`'s counts: a store whose keys live under the app's name.
    pub fn for_app(self: &Arc<Self>, app: &str) -> SharedStore {
        Arc::new(AppCounts {
            shared: self.clone(),
            prefix: format!("{}.", encode_key(app)),
        })
    }

    fn bucket(&self) -> Result<Arc<kv::Store>, KvError> {
        self.bucket
            .load_full()
            .ok_or_else(|| KvError::Backend("the cluster has not been reached yet".into()))
    }
}

/// One app's view of the shared counts.
struct AppCounts {
    shared: Arc<SharedCounts>,
    /// `<encoded app name>.`
    prefix: String,
}

impl AppCounts {
    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, encode_key(key))
    }
}

fn backend(error: impl std::fmt::Display) -> KvError {
    KvError::Backend(format!("the cluster's counts: {error}"))
}

#[async_trait::async_trait]
impl KvStore for AppCounts {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let bucket = self.shared.bucket()?;
        let value = bucket.get(self.key(key)).await.map_err(backend)?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        let bucket = self.shared.bucket()?;
        bucket
            .put(self.key(key), value.to_vec().into())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let bucket = self.shared.bucket()?;
        bucket.delete(self.key(key)).await.map_err(backend)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get(key).await?.is_some())
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        let bucket = self.shared.bucket()?;
        let values = latest_values(&bucket)
            .await
            .map_err(|e| backend(format!("{e:#}")))?;
        let mut keys: Vec<String> = values
            .keys()
            .filter_map(|key| key.strip_prefix(&self.prefix))
            .filter_map(decode_key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let bucket = self.shared.bucket()?;
        let key = self.key(key);
        loop {
            let entry = bucket.entry(&key).await.map_err(backend)?;
            let (current, revision) = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => (
                    parse_counter(Some(entry.value.to_vec()))?,
                    Some(entry.revision),
                ),
                Some(entry) => (0, Some(entry.revision)),
                None => (0, None),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| KvError::Backend("the counter would overflow".into()))?;
            if write_if_unchanged(&bucket, &key, revision, next.to_string().into_bytes()).await? {
                return Ok(next);
            }
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        current: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_sizes(key, Some(new))?;
        let bucket = self.shared.bucket()?;
        let key = self.key(key);
        let entry = bucket.entry(&key).await.map_err(backend)?;
        let (stored, revision) = match &entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                (Some(entry.value.as_ref()), Some(entry.revision))
            }
            Some(entry) => (None, Some(entry.revision)),
            None => (None, None),
        };
        if stored != current {
            return Ok(false);
        }
        write_if_unchanged(&bucket, &key, revision, new.to_vec()).await
    }
    fn bind(self: Arc<Self>, _consistency: &Arc<Consistency>) -> SharedStore {
        self
    }
}

/// Writes `value` if the entry is still at `revision` (`None`: still absent); returns whether
/// it did.
async fn write_if_unchanged(
    bucket: &kv::Store,
    key: &str,
    revision: Option<u64>,
    value: Vec<u8>,
) -> Result<bool, KvError> {
    match revision {
        Some(revision) => match bucket.update(key, value.into(), revision).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(error) => Err(backend(error)),
        },
        None => match bucket.create(key, value.into()).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(backend(error)),
        },
    }
}

/// A key as NATS KV takes it (`[-/_=.a-zA-Z0-9]`): letters, digits, `-`, `_` and `/` stay,
/// every other byte becomes `=XX` (its hex). `.` is encoded too: it separates the app's prefix.
fn encode_key(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'/') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("={byte:02X}"));
        }
    }
    encoded
}

/// The key [`encode_key`] encoded, if it is one.
fn decode_key(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_key_encodes_to_nats_key_characters_and_back() {
        for key in [
            "quota/partners/2026-12-01/acme",
            "user:42 ünïcode.=",
            "",
            "a/b-c_d",
        ] {
            let encoded = encode_key(key);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/_=".contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
        }
        assert_eq!(decode_key("=Z1"), None);
    }
}
