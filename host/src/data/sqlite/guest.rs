//! The SQLite guest interfaces over [`Database`]: `fermyon:spin/sqlite@2.0.0` and
//! `spin:sqlite/sqlite@3.1.0` (its sync functions and the `*-async` ones, whose rows arrive as
//! a stream). Opening a label the component's `sqlite_databases` does not list is
//! `access-denied`.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{QueryResult, SqlConnection, SqlError, Value};
use crate::data::bindings::fermyon::spin::sqlite as v2;
use crate::data::bindings::spin::sqlite::sqlite as v3;
use crate::data::{Data, DataView, streams};

/// An open connection, as a guest resource. Dropping it (the guest's drop, or the instance's
/// end) rolls back a transaction it left open.
pub struct ConnectionHandle(Arc<dyn SqlConnection>);

impl DataView<'_> {
    fn open_database(&mut self, label: &str) -> Option<ConnectionHandle> {
        self.grants
            .sqlite
            .get(label)
            .map(|database| ConnectionHandle(database.connect()))
    }

    /// The connection behind the guest's `connection`.
    fn connection(
        &self,
        connection: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Arc<dyn SqlConnection>> {
        Ok(self.table.get(connection)?.0.clone())
    }

    /// Runs a statement on `connection`.
    async fn run(
        &mut self,
        connection: &Resource<ConnectionHandle>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, SqlError>> {
        Ok(self
            .connection(connection)?
            .execute(statement, params)
            .await)
    }
}

macro_rules! value_conversions {
    ($version:ident) => {
        impl From<$version::Value> for Value {
            fn from(value: $version::Value) -> Self {
                match value {
                    $version::Value::Integer(v) => Value::Integer(v),
                    $version::Value::Real(v) => Value::Real(v),
                    $version::Value::Text(v) => Value::Text(v),
                    $version::Value::Blob(v) => Value::Blob(v),
                    $version::Value::Null => Value::Null,
                }
            }
        }

        impl From<Value> for $version::Value {
            fn from(value: Value) -> Self {
                match value {
                    Value::Integer(v) => $version::Value::Integer(v),
                    Value::Real(v) => $version::Value::Real(v),
                    Value::Text(v) => $version::Value::Text(v),
                    Value::Blob(v) => $version::Value::Blob(v),
                    Value::Null => $version::Value::Null,
                }
            }
        }

        impl From<SqlError> for $version::Error {
            fn from(error: SqlError) -> Self {
                match error {
                    SqlError::DatabaseFull => $version::Error::DatabaseFull,
                    SqlError::Io(message) => $version::Error::Io(message),
                }
            }
        }

        impl From<QueryResult> for $version::QueryResult {
            fn from(result: QueryResult) -> Self {
                $version::QueryResult {
                    columns: result.columns,
                    rows: result.rows.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<Vec<Value>> for $version::RowResult {
            fn from(values: Vec<Value>) -> Self {
                $version::RowResult {
                    values: values.into_iter().map(Into::into).collect(),
                }
            }
        }
    };
}

value_conversions!(v2);
value_conversions!(v3);

// fermyon:spin/sqlite@2.0.0

impl v2::Host for DataView<'_> {}

impl v2::HostConnection for DataView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v2::Error>> {
        match self.open_database(&database) {
            Some(handle) => Ok(Ok(self.table.push(handle)?)),
            None => Ok(Err(v2::Error::AccessDenied)),
        }
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .run(&connection, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

// spin:sqlite/sqlite@3.1.0

impl v3::Host for DataView<'_> {}

impl v3::HostConnection for DataView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        match self.open_database(&database) {
            Some(handle) => Ok(Ok(self.table.push(handle)?)),
            None => Ok(Err(v3::Error::AccessDenied)),
        }
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .run(&connection, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
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
            let mut view = access.get();
            match view.open_database(&database) {
                Some(handle) => Ok(Ok(view.table.push(handle)?)),
                None => Ok(Err(v3::Error::AccessDenied)),
            }
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
