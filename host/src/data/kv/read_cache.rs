//! The read cache in front of an embedded key-value store: hot keys, and keys known to be
//! missing, are answered from memory instead of a SQLite read transaction (two file-lock
//! system calls and a B-tree lookup, a sixth of a fresh-instance request; see BENCHMARKS.md).
//!
//! It never serves a value older than an acknowledged write, because the store's file has one
//! writer and it is in this process (the file is locked against other processes, and one
//! store object serves every user of the file in this process):
//!
//! - every write invalidates its key after it commits, before it is acknowledged, and on the
//!   writer's thread, so a cancelled request cannot skip the invalidation;
//! - a miss is read from SQLite and kept only if no write committed while it read, checked
//!   under the same lock as the invalidation: a slow read never caches a value that a write
//!   has replaced.

use std::sync::{Arc, Mutex};

use moka::sync::Cache;

/// What a cached key holds: its value, or `None` for a key known to have none.
pub type CachedValue = Option<Arc<[u8]>>;

/// The bytes of keys and values one store keeps in memory at most.
const CAPACITY_BYTES: u64 = 32 << 20;

/// What an entry costs beyond its key and value (moka's bookkeeping, roughly).
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A bounded, write-invalidated cache of one store's keys.
pub struct ReadCache {
    entries: Cache<String, CachedValue>,
    /// How many writes have committed; a fill is kept only if this did not move while it read.
    writes: Mutex<u64>,
}

/// The outcome of a lookup.
pub enum Lookup {
    /// The key is cached.
    Hit(CachedValue),
    /// The key is not cached: read it from the store, then [`ReadCache::fill`] with this.
    Miss(FillTicket),
}

/// A miss's permission to fill the cache, valid if no write commits before the fill.
pub struct FillTicket {
    writes_seen: u64,
}

impl ReadCache {
    /// An empty cache of at most [`CAPACITY_BYTES`].
    pub fn new() -> Self {
        Self::with_capacity(CAPACITY_BYTES)
    }

    fn with_capacity(capacity_bytes: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|key: &String, value: &CachedValue| {
                    let bytes = key.len() + value.as_ref().map_or(0, |v| v.len());
                    u32::try_from(bytes + ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
                })
                .build(),
            writes: Mutex::new(0),
        }
    }

    /// Looks `key` up.
    pub fn lookup(&self, key: &str) -> Lookup {
        match self.entries.get(key) {
            Some(value) => Lookup::Hit(value),
            None => Lookup::Miss(FillTicket {
                writes_seen: *self.lock_writes(),
            }),
        }
    }

    /// Keeps what a miss read from the store, unless a write committed since its lookup.
    pub fn fill(&self, key: &str, ticket: FillTicket, value: CachedValue) {
        let writes = self.lock_writes();
        if *writes == ticket.writes_seen {
            self.entries.insert(key.to_owned(), value);
        }
    }

    /// Forgets `key`: call after a write to it has committed, before acknowledging it.
    pub fn invalidate(&self, key: &str) {
        let mut writes = self.lock_writes();
        *writes += 1;
        self.entries.invalidate(key);
    }

    /// Forgets every key: call once the store's whole contents were replaced.
    pub fn invalidate_all(&self) {
        let mut writes = self.lock_writes();
        *writes += 1;
        self.entries.invalidate_all();
    }

    fn lock_writes(&self) -> std::sync::MutexGuard<'_, u64> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(bytes: &[u8]) -> CachedValue {
        Some(bytes.into())
    }

    fn miss(cache: &ReadCache, key: &str) -> FillTicket {
        match cache.lookup(key) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(_) => panic!("{key} should not be cached"),
        }
    }

    fn hit(cache: &ReadCache, key: &str) -> CachedValue {
        match cache.lookup(key) {
            Lookup::Hit(value) => value,
            Lookup::Miss(_) => panic!("{key} should be cached"),
        }
    }

    #[test]
    fn a_filled_key_is_a_hit_until_a_write_invalidates_it() {
        let cache = ReadCache::new();
        let ticket = miss(&cache, "k");
        cache.fill("k", ticket, value(b"v1"));
        assert_eq!(hit(&cache, "k"), value(b"v1"));
        cache.invalidate("k");
        miss(&cache, "k");
    }

    #[test]
    fn a_missing_key_is_cached_as_missing() {
        let cache = ReadCache::new();
        let ticket = miss(&cache, "absent");
        cache.fill("absent", ticket, None);
        assert_eq!(hit(&cache, "absent"), None);
    }

    #[test]
    fn a_read_that_overlaps_a_write_is_not_kept() {
        let cache = ReadCache::new();
        // The read starts, a write to the key commits and is acknowledged, then the read (which
        // may have seen the old value) finishes: caching it would hide the acknowledged write.
        let ticket = miss(&cache, "k");
        cache.invalidate("k");
        cache.fill("k", ticket, value(b"old"));
        miss(&cache, "k");
    }

    #[test]
    fn a_write_to_another_key_also_voids_a_fill() {
        let cache = ReadCache::new();
        let ticket = miss(&cache, "a");
        cache.invalidate("b");
        cache.fill("a", ticket, value(b"v"));
        miss(&cache, "a");
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = ReadCache::with_capacity(64 << 10);
        let big: CachedValue = Some(vec![7; 16 << 10].into());
        for i in 0..64 {
            let key = format!("key-{i}");
            let ticket = miss(&cache, &key);
            cache.fill(&key, ticket, big.clone());
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.weighted_size() <= 64 << 10);
    }
}
