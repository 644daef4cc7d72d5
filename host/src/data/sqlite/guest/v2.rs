//! `fermyon:spin/sqlite@2.0.0`: spin-sdk 5's `sqlite`.

use wasmtime::component::Resource;

use super::ConnectionHandle;
use crate::data::DataView;
use crate::data::bindings::fermyon::spin::sqlite as v2;

impl v2::Host for DataView<'_> {}

impl v2::HostConnection for DataView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v2::Error>> {
        self.open_connection(&database, v2::Error::AccessDenied)
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        self.execute_as(&connection, statement, parameters).await
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
