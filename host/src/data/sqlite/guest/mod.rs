//! The SQLite guest interfaces over a [`SqlConnection`], one file per version:
//! `fermyon:spin/sqlite@2.0.0` (`v2`) and `spin:sqlite/sqlite@3.1.0` (`v3`: its sync functions
//! and the `*-async` ones, whose rows arrive as a stream). What they share is here. Opening a
//! label the component's `sqlite_databases` does not list is `access-denied`.

mod v2;
mod v3;

use std::sync::Arc;

use wasmtime::component::Resource;

use super::{QueryResult, SqlConnection, SqlError, Value};
use crate::data::DataView;
use crate::data::bindings::fermyon::spin::sqlite as v2_types;
use crate::data::bindings::spin::sqlite::sqlite as v3_types;

/// An open connection, as a guest resource. Dropping it (the guest's drop, or the instance's
/// end) rolls back a transaction it left open.
pub struct ConnectionHandle(Arc<dyn SqlConnection>);

impl DataView<'_> {
    /// A new connection to database `label` for the guest, or `denied` when the component
    /// is not granted it.
    fn open_connection<E>(
        &mut self,
        label: &str,
        denied: E,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, E>> {
        let Some(database) = self.grants.sqlite.get(label) else {
            return Ok(Err(denied));
        };
        let handle = ConnectionHandle(database.connect(self.consistency));
        Ok(Ok(self.table.push(handle)?))
    }

    /// The connection behind the guest's `connection`.
    fn connection(
        &self,
        connection: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Arc<dyn SqlConnection>> {
        Ok(self.table.get(connection)?.0.clone())
    }

    /// Runs a statement on `connection`, in one interface version's types.
    async fn execute_as<P, R, E>(
        &mut self,
        connection: &Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<P>,
    ) -> wasmtime::Result<Result<R, E>>
    where
        P: Into<Value>,
        R: From<QueryResult>,
        E: From<SqlError>,
    {
        let params = parameters.into_iter().map(Into::into).collect();
        let result = self
            .connection(connection)?
            .execute(statement, params)
            .await;
        Ok(result.map(Into::into).map_err(Into::into))
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
                    SqlError::Io(message) | SqlError::Unavailable(message) => {
                        $version::Error::Io(message)
                    }
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

value_conversions!(v2_types);
value_conversions!(v3_types);
