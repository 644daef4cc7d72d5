//! `spin:key-value/key-value@3.0.0`: spin-sdk 7's `key_value`, async, with `get-keys` as a
//! stream (already finished: see `data::streams`).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{StoreHandle, store_of};
use crate::data::bindings::spin::key_value::key_value as v3;
use crate::data::kv::KvError;
use crate::data::{Data, DataView, streams};

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
