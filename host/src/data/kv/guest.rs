//! The key-value guest interfaces over [`KvStore`](super::KvStore): `fermyon:spin/key-value@2.0.0`
//! (sync), `spin:key-value/key-value@3.0.0` (async, `get-keys` as a stream) and
//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch).
//!
//! Opening a label that the component's `key_value_stores` does not list is `access-denied`.

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{KvError, SharedStore};
use crate::data::bindings::fermyon::spin::key_value as v2;
use crate::data::bindings::spin::key_value::key_value as v3;
use crate::data::bindings::wasi::keyvalue::{atomics, batch, store as wasi};
use crate::data::{Data, DataView, streams};

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
            store: store.clone(),
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

// fermyon:spin/key-value@2.0.0

impl From<KvError> for v2::Error {
    fn from(error: KvError) -> Self {
        v2::Error::Other(error.to_string())
    }
}

impl v2::Host for DataView<'_> {}

impl v2::HostStore for DataView<'_> {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, v2::Error>> {
        match self.open_store(&label) {
            Some(handle) => Ok(Ok(self.table.push(handle)?)),
            None => Ok(Err(v2::Error::AccessDenied)),
        }
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        Ok(self.store(&store)?.get(&key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(self
            .store(&store)?
            .set(&key, &value)
            .await
            .map_err(Into::into))
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(self.store(&store)?.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, v2::Error>> {
        Ok(self.store(&store)?.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        Ok(self.store(&store)?.keys().await.map_err(Into::into))
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

// spin:key-value/key-value@3.0.0

impl From<KvError> for v3::Error {
    fn from(error: KvError) -> Self {
        v3::Error::Other(error.to_string())
    }
}

impl v3::Host for DataView<'_> {}

impl v3::HostStore for DataView<'_> {
    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T: 'static> v3::HostStoreWithStore<T> for Data {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, v3::Error>> {
        accessor.with(|mut access| {
            let mut view = access.get();
            match view.open_store(&label) {
                Some(handle) => Ok(Ok(view.table.push(handle)?)),
                None => Ok(Err(v3::Error::AccessDenied)),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v3::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.get(&key).await.map_err(Into::into))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.set(&key, &value).await.map_err(Into::into))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, v3::Error>> {
        let store = store_of(accessor, &store)?;
        Ok(store.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        let store = store_of(accessor, &store)?;
        match store.keys().await {
            Ok(keys) => streams::finished_stream(accessor, keys, Ok(())),
            Err(error) => streams::finished_stream(accessor, Vec::new(), Err(error.into())),
        }
    }
}

// wasi:keyvalue@0.2.0-draft2

impl From<KvError> for wasi::Error {
    fn from(error: KvError) -> Self {
        wasi::Error::Other(error.to_string())
    }
}

impl wasi::Host for DataView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, wasi::Error>> {
        match self.open_store(&identifier) {
            Some(handle) => Ok(Ok(self.table.push(handle)?)),
            None => Ok(Err(wasi::Error::AccessDenied)),
        }
    }
}

impl wasi::HostBucket for DataView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi::Error>> {
        Ok(self.store(&bucket)?.get(&key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi::Error>> {
        Ok(self
            .store(&bucket)?
            .set(&key, &value)
            .await
            .map_err(Into::into))
    }

    async fn delete(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi::Error>> {
        Ok(self.store(&bucket)?.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi::Error>> {
        Ok(self.store(&bucket)?.exists(&key).await.map_err(Into::into))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<StoreHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi::KeyResponse, wasi::Error>> {
        // The whole key set fits one page; a cursor past the start is the last key seen.
        let keys = match self.store(&bucket)?.keys().await {
            Ok(keys) => keys,
            Err(error) => return Ok(Err(error.into())),
        };
        let keys = match cursor {
            Some(after) => keys.into_iter().filter(|key| *key > after).collect(),
            None => keys,
        };
        Ok(Ok(wasi::KeyResponse { keys, cursor: None }))
    }

    async fn drop(&mut self, bucket: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for DataView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi::Error>> {
        Ok(self
            .store(&bucket)?
            .increment(&key, delta)
            .await
            .map_err(Into::into))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let handle = self.table.get(&cas)?;
        let (store, key, current) = (
            handle.store.clone(),
            handle.key.clone(),
            handle.current.clone(),
        );
        match store
            .compare_and_swap(&key, current.as_deref(), &value)
            .await
        {
            Ok(true) => {
                self.table.delete(cas)?;
                Ok(Ok(()))
            }
            Ok(false) => Ok(Err(atomics::CasError::CasFailed(cas))),
            Err(error) => Ok(Err(atomics::CasError::StoreError(error.into()))),
        }
    }
}

impl atomics::HostCas for DataView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi::Error>> {
        let store = self.store(&bucket)?;
        let current = match store.get(&key).await {
            Ok(current) => current,
            Err(error) => return Ok(Err(error.into())),
        };
        Ok(Ok(self.table.push(CasHandle {
            store,
            key,
            current,
        })?))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for DataView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi::Error>> {
        let store = self.store(&bucket)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            match store.get(&key).await {
                Ok(value) => values.push((key, value)),
                Err(error) => return Ok(Err(error.into())),
            }
        }
        Ok(Ok(values))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi::Error>> {
        let store = self.store(&bucket)?;
        for (key, value) in key_values {
            if let Err(error) = store.set(&key, &value).await {
                return Ok(Err(error.into()));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi::Error>> {
        let store = self.store(&bucket)?;
        for key in keys {
            if let Err(error) = store.delete(&key).await {
                return Ok(Err(error.into()));
            }
        }
        Ok(Ok(()))
    }
}
