//! `spin:sqlite/sqlite@3.1.0`: spin-sdk 7's `sqlite`, with the `*-async` functions whose rows
//! arrive as a stream (already finished: see `data::streams`).

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::ConnectionHandle;
use crate::data::bindings::spin::sqlite::sqlite as v3;
use crate::data::{Data, DataView, streams};

impl v3::Host for DataView<'_> {}

impl v3::HostConnection for DataView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        self.open_connection(&database, v3::Error::AccessDenied)
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        self.execute_as(&connection, statement, parameters).await
    }

    async fn last_insert_rowid(
        &mut self,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        Ok(self
            .connection(&connection)?
            .last_write()
            .await
            .last_insert_rowid)
    }

    async fn changes(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        Ok(self.connection(&connection)?.last_write().await.changes)
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl<T: 'static> v3::HostConnectionWithStore<T> for Data {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        accessor.with(|mut access| {
            access
                .get()
                .open_connection(&database, v3::Error::AccessDenied)
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<v3::RowResult>,
                FutureReader<Result<(), v3::Error>>,
            ),
            v3::Error,
        >,
    > {
        let connection = accessor.with(|mut access| access.get().connection(&connection))?;
        let params = parameters.into_iter().map(Into::into).collect();
        let result = match connection.execute(statement, params).await {
            Ok(result) => result,
            Err(error) => return Ok(Err(error.into())),
        };
        let rows: Vec<v3::RowResult> = result.rows.into_iter().map(Into::into).collect();
        let (stream, done) = streams::finished_stream(accessor, rows, Ok(()))?;
        Ok(Ok((result.columns, stream, done)))
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        let connection = accessor.with(|mut access| access.get().connection(&connection))?;
        Ok(connection.last_write().await.last_insert_rowid)
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<u64> {
        let connection = accessor.with(|mut access| access.get().connection(&connection))?;
        Ok(connection.last_write().await.changes)
    }
}
