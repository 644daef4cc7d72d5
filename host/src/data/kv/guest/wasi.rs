//! `wasi:keyvalue@0.2.0-draft2`: `store` (buckets), `atomics` (increment, compare-and-swap)
//! and `batch`.

use wasmtime::component::Resource;

use super::{CasHandle, StoreHandle};
use crate::data::DataView;
use crate::data::bindings::wasi::keyvalue::{atomics, batch, store as wasi};
use crate::data::kv::KvError;

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
