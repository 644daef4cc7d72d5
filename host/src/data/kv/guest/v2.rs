//! `fermyon:spin/key-value@2.0.0`: spin-sdk 5's `key_value`.

use wasmtime::component::Resource;

use super::StoreHandle;
use crate::data::DataView;
use crate::data::bindings::fermyon::spin::key_value as v2;
use crate::data::kv::KvError;

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
