//! The SQLite guest interfaces over [`Database`]: `fermyon:spin/sqlite@2.0.0` and
//! `spin:sqlite/sqlite@3.1.0` (its sync functions and the `*-async` ones, whose rows arrive as
//! a stream). Opening a label the component's `sqlite_databases` does not list is
//! `access-denied`.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::{Database, LastWrite, QueryResult, SqlError, Value};
use crate::data::bindings::fermyon::spin::sqlite as v2;
use crate::data::bindings::spin::sqlite::sqlite as v3;
use crate::data::{Data, DataView, streams};

/// An open connection, as a guest resource: the database and what its writes left.
pub struct ConnectionHandle {
    database: Arc<Database>,
    last_write: LastWrite,
}

impl DataView<'_> {
    fn open_database(&mut self, label: &str) -> Option<ConnectionHandle> {
        self.grants
            .sqlite
            .get(label)
            .map(|database| ConnectionHandle {
                database: database.clone(),
                last_write: LastWrite::default(),
            })
    }

    /// Runs a statement on `connection` and records its rowid and change count there.
    async fn run(
        &mut self,
        connection: &Resource<ConnectionHandle>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, SqlError>> {
        let handle = self.table.get(connection)?;
        let (database, since) = (handle.database.clone(), handle.last_write);
        let result = database.execute(statement, params, since).await;
        if let Ok(result) = &result {
            self.table.get_mut(connection)?.last_write = result.last_write;
        }
        Ok(result)
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
        Ok(self.table.get(&connection)?.last_write.last_insert_rowid)
    }

    async fn changes(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&connection)?.last_write.changes)
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
        let (database, since) = accessor.with(|mut access| {
            let handle = access.get().table.get(&connection)?;
            wasmtime::error::Ok((handle.database.clone(), handle.last_write))
        })?;
        let params = parameters.into_iter().map(Into::into).collect();
        let result = match database.execute(statement, params, since).await {
            Ok(result) => result,
            Err(error) => return Ok(Err(error.into())),
        };
        accessor.with(|mut access| {
            access.get().table.get_mut(&connection)?.last_write = result.last_write;
            wasmtime::error::Ok(())
        })?;
        let rows: Vec<v3::RowResult> = result.rows.into_iter().map(Into::into).collect();
        let (stream, done) = streams::items_then_done(accessor, rows)?;
        Ok(Ok((result.columns, stream, done)))
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        accessor.with(|mut access| {
            Ok(access
                .get()
                .table
                .get(&connection)?
                .last_write
                .last_insert_rowid)
        })
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<u64> {
        accessor.with(|mut access| Ok(access.get().table.get(&connection)?.last_write.changes))
    }
}
