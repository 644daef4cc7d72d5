//! `fermyon:spin/mysql@2.0.0` with `rdbms-types` (spin-sdk 5's `mysql`): synchronous, a query
//! answers its whole row set.

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::mysql as v2;
use super::bindings::fermyon::spin::rdbms_types;
use super::{MysqlConnection, OutboundView, RowSet};

version_types!(rdbms_types);

impl From<RowSet> for rdbms_types::RowSet {
    fn from(set: RowSet) -> Self {
        Self {
            columns: set.columns.into_iter().map(Into::into).collect(),
            rows: set
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

type Outcome<T> = wasmtime::Result<Result<T, rdbms_types::Error>>;

impl rdbms_types::Host for OutboundView<'_> {}

impl v2::Host for OutboundView<'_> {}

impl v2::HostConnection for OutboundView<'_> {
    async fn open(&mut self, address: String) -> Outcome<Resource<MysqlConnection>> {
        match MysqlConnection::open(self.allowed, &address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn query(
        &mut self,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<rdbms_types::ParameterValue>,
    ) -> Outcome<rdbms_types::RowSet> {
        let connection = self.table.get(&connection)?.clone();
        let params = params.into_iter().map(Into::into).collect();
        Ok(connection
            .query(&statement, params)
            .await
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn execute(
        &mut self,
        connection: Resource<MysqlConnection>,
        statement: String,
        params: Vec<rdbms_types::ParameterValue>,
    ) -> Outcome<()> {
        let connection = self.table.get(&connection)?.clone();
        let params = params.into_iter().map(Into::into).collect();
        Ok(connection
            .execute(&statement, params)
            .await
            .map_err(Into::into))
    }

    async fn drop(&mut self, connection: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
