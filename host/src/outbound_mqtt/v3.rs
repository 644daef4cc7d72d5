//! `spin:mqtt/mqtt@3.0.0`, the asynchronous interface of spin-sdk 7.

use std::time::Duration;

use wasmtime::component::{Accessor, Resource};

use super::bindings::spin::mqtt::mqtt as v3;
use super::{Mqtt, MqttConnection, OutboundView, version_conversions};

version_conversions!(v3);

impl v3::Host for OutboundView<'_> {}

impl v3::HostConnection for OutboundView<'_> {
    async fn drop(&mut self, connection: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl<T: 'static> v3::HostConnectionWithStore<T> for Mqtt {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<MqttConnection>, v3::Error>> {
        let allowed = accessor.with(|mut access| access.get().allowed.clone());
        let keep_alive = Duration::from_secs(keep_alive_interval_in_secs);
        match MqttConnection::open(&allowed, &address, &username, &password, keep_alive).await {
            Ok(connection) => {
                accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
            }
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        connection: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let connection = accessor
            .with(|mut access| wasmtime::error::Ok(access.get().table.get(&connection)?.clone()))?;
        Ok(connection
            .publish(&topic, payload, qos.into())
            .await
            .map_err(Into::into))
    }
}
