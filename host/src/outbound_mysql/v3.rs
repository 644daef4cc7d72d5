//! `spin:mysql/mysql@3.0.0` (spin-sdk 7's `mysql`): every function asynchronous; a query
//! answers its columns, its rows as a stream and a future of how the statement ended.

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::spin::mysql::mysql as v3;
use super::{Mysql, MysqlConnection, OutboundView};
use crate::data::streams;

version_types!(v3);

type Outcome<T> = wasmtime::Result<Result<T, v3::Error>>;

impl v3::Host for OutboundView<'_> {}

impl v3::HostConnection for OutboundView<'_> {
    async fn drop(&mut self, connection: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// The connection behind the guest's handle.
fn connection_of<T>(
    accessor: &Accessor<T, Mysql>,
    connection: &Resource<MysqlConnection>,
) -> wasmtime::Result<MysqlConnection> {
    accessor.with(|mut access| Ok(access.get().table.get(connection)?.clone()))
}

impl<T: 'static> v3::HostConnectionWithStore<T> for Mysql {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Outcome<Resource<MysqlConnection>> {
        let allowed = accessor.with(|mut access| access.get().allowed.clone());
        match MysqlConnection::open(&allowed, &address).await {
            Ok(connection) => {
                accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
            }
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Outcome<(
        Vec<v3::Column>,
        StreamReader<Vec<v3::DbValue>>,
        FutureReader<Result<(), v3::Error>>,
    )> {
        let connection = connection_of(accessor, &connection)?;
        let params = params.into_iter().map(Into::into).collect();
        let set = match connection.query(&statement, params).await {
            Ok(set) => set,
            Err(error) => return Ok(Err(error.into())),
        };
        let columns = set.columns.into_iter().map(Into::into).collect();
        let rows = set
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Into::into).collect())
            .collect();
        let (rows, done) = streams::finished_stream(accessor, rows, Ok(()))?;
        Ok(Ok((columns, rows, done)))
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Outcome<()> {
        let connection = connection_of(accessor, &connection)?;
        let params = params.into_iter().map(Into::into).collect();
        Ok(connection
            .execute(&statement, params)
            .await
            .map_err(Into::into))
    }
}
