//! `fermyon:spin/redis@2.0.0`, the synchronous interface of spin-sdk 2.x to 6.x.

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::redis as v2;
use super::{OutboundView, RedisConnection, version_conversions};

version_conversions!(v2);

type Outcome<T> = wasmtime::Result<Result<T, v2::Error>>;

/// The connection behind the guest's handle (a cheap clone of a multiplexed connection).
pub(super) fn connection_of(
    view: &OutboundView<'_>,
    connection: &Resource<RedisConnection>,
) -> wasmtime::Result<RedisConnection> {
    Ok(view.table.get(connection)?.clone())
}

impl v2::Host for OutboundView<'_> {}

impl v2::HostConnection for OutboundView<'_> {
    async fn open(&mut self, address: String) -> Outcome<Resource<RedisConnection>> {
        match RedisConnection::open(self.allowed, &address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn publish(
        &mut self,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Outcome<()> {
        let connection = connection_of(self, &connection)?;
        Ok(connection
            .publish(&channel, &payload)
            .await
            .map_err(Into::into))
    }

    async fn get(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<Option<Vec<u8>>> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.get(&key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Outcome<()> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.set(&key, &value).await.map_err(Into::into))
    }

    async fn incr(&mut self, connection: Resource<RedisConnection>, key: String) -> Outcome<i64> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.incr(&key).await.map_err(Into::into))
    }

    async fn del(
        &mut self,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.del(&keys).await.map_err(Into::into))
    }

    async fn sadd(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.sadd(&key, &values).await.map_err(Into::into))
    }

    async fn smembers(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<Vec<String>> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.smembers(&key).await.map_err(Into::into))
    }

    async fn srem(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(self, &connection)?;
        Ok(connection.srem(&key, &values).await.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> Outcome<Vec<v2::RedisResult>> {
        let connection = connection_of(self, &connection)?;
        let params = arguments.into_iter().map(Into::into).collect();
        Ok(connection
            .execute(&command, params)
            .await
            .map(|replies| replies.into_iter().map(Into::into).collect())
            .map_err(Into::into))
    }

    async fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
