//! The variables guest interfaces: `fermyon:spin/variables@2.0.0`,
//! `spin:variables/variables@3.0.0` and `wasi:config/store@0.2.0-draft-2024-09-27`.

use wasmtime::component::Accessor;

use super::VariableError;
use crate::data::bindings::fermyon::spin::variables as v2;
use crate::data::bindings::spin::variables::variables as v3;
use crate::data::bindings::wasi::config::store as config;
use crate::data::{Data, DataView};

impl From<VariableError> for v2::Error {
    fn from(error: VariableError) -> Self {
        match error {
            VariableError::InvalidName(message) => v2::Error::InvalidName(message),
            VariableError::Undefined(message) => v2::Error::Undefined(message),
        }
    }
}

impl From<VariableError> for v3::Error {
    fn from(error: VariableError) -> Self {
        match error {
            VariableError::InvalidName(message) => v3::Error::InvalidName(message),
            VariableError::Undefined(message) => v3::Error::Undefined(message),
        }
    }
}

impl v2::Host for DataView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(self.grants.variables.get(&name).map_err(Into::into))
    }
}

impl v3::Host for DataView<'_> {}

impl<T: 'static> v3::HostWithStore<T> for Data {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, v3::Error>> {
        accessor.with(|mut access| Ok(access.get().grants.variables.get(&name).map_err(Into::into)))
    }
}

impl config::Host for DataView<'_> {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self.grants.variables.get(&key).ok()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self.grants.variables.all()))
    }
}
