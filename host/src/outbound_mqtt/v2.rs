//! `fermyon:spin/mqtt@2.0.0`, the synchronous interface of spin-sdk 2.x to 6.x.

use std::time::Duration;

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::mqtt as v2;
use super::{MqttConnection, OutboundView, version_conversions};

version_conversions!(v2);

impl v2::Host for OutboundView<'_> {}

impl v2::HostConnection for OutboundView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<MqttConnection>, v2::Error>> {
        let keep_alive = Duration::from_secs(keep_alive_interval_in_secs);
        match MqttConnection::open(self.allowed, &address, &username, &password, keep_alive).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn publish(
        &mut self,
        connection: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let connection = self.table.get(&connection)?.clone();
        Ok(connection
            .publish(&topic, payload, qos.into())
            .await
            .map_err(Into::into))
    }

    async fn drop(&mut self, connection: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
