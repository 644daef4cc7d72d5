//! The key-value guest interfaces over [`KvStore`](super::KvStore), one file per interface:
//! `fermyon:spin/key-value@2.0.0` (`v2`, sync), `spin:key-value/key-value@3.0.0` (`v3`, async,
//! `get-keys` as a stream) and `wasi:keyvalue@0.2.0-draft2` (`wasi`: store, atomics, batch).
//! The handles they share are here.
//!
//! Opening a label that the component's `key_value_stores` does not list is `access-denied`.

mod v2;
mod v3;
mod wasi;

use wasmtime::component::{Accessor, Resource};

use super::SharedStore;
use crate::data::{Data, DataView};

/// An open store, as a guest resource.
pub struct StoreHandle {
    store: SharedStore,
}

/// A compare-and-swap handle: the value seen when it was made.
pub struct CasHandle {
    store: SharedStore,
    key: String,
    current: Option<Vec<u8>>,
}

impl DataView<'_> {
    fn open_store(&mut self, label: &str) -> Option<StoreHandle> {
        self.grants.kv.get(label).map(|store| StoreHandle {
            store: store.clone().bind(self.consistency),
        })
    }

    fn store(&self, handle: &Resource<StoreHandle>) -> wasmtime::Result<SharedStore> {
        Ok(self.table.get(handle)?.store.clone())
    }
}

fn store_of<T: 'static>(
    accessor: &Accessor<T, Data>,
    handle: &Resource<StoreHandle>,
) -> wasmtime::Result<SharedStore> {
    accessor.with(|mut access| access.get().store(handle))
}
