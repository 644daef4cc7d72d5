//! `spin:redis/redis@3.0.0`, the asynchronous interface of spin-sdk 7.

use wasmtime::component::{Accessor, Resource};

use super::bindings::spin::redis::redis as v3;
use super::{OutboundView, Redis, RedisConnection, version_conversions};

version_conversions!(v3);

type Outcome<T> = wasmtime::Result<Result<T, v3::Error>>;

/// The connection behind the guest's handle.
fn connection_of<T>(
    accessor: &Accessor<T, Redis>,
    connection: &Resource<RedisConnection>,
) -> wasmtime::Result<RedisConnection> {
    accessor.with(|mut access| super::v2::connection_of(&access.get(), connection))
}

impl v3::Host for OutboundView<'_> {}

impl v3::HostConnection for OutboundView<'_> {
    async fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl<T: 'static> v3::HostConnectionWithStore<T> for Redis {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Outcome<Resource<RedisConnection>> {
        let allowed = accessor.with(|mut access| access.get().allowed.clone());
        match RedisConnection::open(&allowed, &address).await {
            Ok(connection) => {
                accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
            }
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Outcome<()> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection
            .publish(&channel, &payload)
            .await
            .map_err(Into::into))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<Option<Vec<u8>>> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.get(&key).await.map_err(Into::into))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Outcome<()> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.set(&key, &value).await.map_err(Into::into))
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<i64> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.incr(&key).await.map_err(Into::into))
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.del(&keys).await.map_err(Into::into))
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.sadd(&key, &values).await.map_err(Into::into))
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> Outcome<Vec<String>> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.smembers(&key).await.map_err(Into::into))
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Outcome<u32> {
        let connection = connection_of(accessor, &connection)?;
        Ok(connection.srem(&key, &values).await.map_err(Into::into))
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> Outcome<Vec<v3::RedisResult>> {
        let connection = connection_of(accessor, &connection)?;
        let params = arguments.into_iter().map(Into::into).collect();
        Ok(connection
            .execute(&command, params)
            .await
            .map(|replies| replies.into_iter().map(Into::into).collect())
            .map_err(Into::into))
    }
}
