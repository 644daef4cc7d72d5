//! Outbound MQTT: `fermyon:spin/mqtt@2.0.0` (spin-sdk 5) and `spin:mqtt/mqtt@3.0.0` (spin-sdk
//! 7). A guest connects to a broker that its `allowed_outbound_hosts` names with an
//! `mqtt://host:port` entry and publishes there; any other address is refused with Spin's
//! `connection-failed("address <url> is not permitted")` before a socket is opened.
//!
//! The capability in one place: the client ([`MqttConnection`]), the view an instance gives
//! ([`HasOutboundView`](crate::allowed_hosts::HasOutboundView)), the two interface versions (`v2`, `v3`) and [`add_to_linker`].

mod bindings;
mod v2;
mod v3;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use wasmtime::component::{HasData, Linker};

use crate::allowed_hosts::{AllowedHosts, HasOutboundView, OutboundView};

/// The `HasData` marker for the MQTT interfaces.
pub struct Mqtt;

impl HasData for Mqtt {
    type Data<'a> = OutboundView<'a>;
}

/// Adds both MQTT interface versions to `linker`.
pub fn add_to_linker<T: HasOutboundView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::fermyon::spin::mqtt::add_to_linker::<T, Mqtt>(linker, T::outbound_view)?;
    bindings::spin::mqtt::mqtt::add_to_linker::<T, Mqtt>(linker, T::outbound_view)?;
    Ok(())
}

/// Why an MQTT call failed, in the terms both interface versions share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttError {
    /// The address is malformed.
    InvalidAddress,
    /// The broker could not be reached, or the address is not allowed.
    ConnectionFailed(String),
    /// Anything else, with its message.
    Other(String),
}

/// The conversions between the shared types here and one interface version's.
macro_rules! version_conversions {
    ($version:ident) => {
        impl From<$crate::outbound_mqtt::MqttError> for $version::Error {
            fn from(error: $crate::outbound_mqtt::MqttError) -> Self {
                use $crate::outbound_mqtt::MqttError;
                match error {
                    MqttError::InvalidAddress => Self::InvalidAddress,
                    MqttError::ConnectionFailed(message) => Self::ConnectionFailed(message),
                    MqttError::Other(message) => Self::Other(message),
                }
            }
        }

        impl From<$version::Qos> for rumqttc::QoS {
            fn from(qos: $version::Qos) -> Self {
                match qos {
                    $version::Qos::AtMostOnce => Self::AtMostOnce,
                    $version::Qos::AtLeastOnce => Self::AtLeastOnce,
                    $version::Qos::ExactlyOnce => Self::ExactlyOnce,
                }
            }
        }
    };
}
use version_conversions;

/// An open connection, as a guest resource: the client and the event loop that carries its
/// packets (driven by each call, so a publish returns once the broker has the message).
#[derive(Clone)]
pub struct MqttConnection(Arc<tokio::sync::Mutex<Session>>);

struct Session {
    client: AsyncClient,
    events: EventLoop,
}

/// How many requests a connection queues before `publish` waits.
const REQUEST_CAPACITY: usize = 16;

impl MqttConnection {
    /// Connects to `address` as `username` (none when empty), if `allowed` permits its host
    /// and port; returns once the broker has accepted the connection.
    pub async fn open(
        allowed: &AllowedHosts,
        address: &str,
        username: &str,
        password: &str,
        keep_alive: Duration,
    ) -> Result<Self, MqttError> {
        let mut options = parse_address(address)?;
        let (host, port) = options.broker_address();
        if !allowed.permits_network("mqtt", &host, port) {
            tracing::info!("outbound MQTT to {address} denied: not in allowed_outbound_hosts");
            return Err(MqttError::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        if !username.is_empty() {
            options.set_credentials(username, password);
        }
        if !keep_alive.is_zero() {
            options.set_keep_alive(keep_alive);
        }
        let (client, mut events) = AsyncClient::new(options, REQUEST_CAPACITY);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(error) => return Err(MqttError::ConnectionFailed(error.to_string())),
            }
        }
        Ok(Self(Arc::new(tokio::sync::Mutex::new(Session {
            client,
            events,
        }))))
    }

    /// Publishes `payload` on `topic`; returns once it is sent (QoS 0), acknowledged (QoS 1)
    /// or complete (QoS 2).
    pub async fn publish(&self, topic: &str, payload: Vec<u8>, qos: QoS) -> Result<(), MqttError> {
        let mut session = self.0.lock().await;
        session
            .client
            .publish(topic, qos, false, payload)
            .await
            .map_err(|error| MqttError::Other(error.to_string()))?;
        loop {
            let event = session
                .events
                .poll()
                .await
                .map_err(|error| MqttError::ConnectionFailed(error.to_string()))?;
            let done = matches!(
                (qos, event),
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                    | (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(_)))
                    | (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(_)))
            );
            if done {
                return Ok(());
            }
        }
    }
}

/// Parses `mqtt://host[:port][?client_id=...]`; a missing client id gets a fresh one, as a
/// broker needs one per connection.
fn parse_address(address: &str) -> Result<MqttOptions, MqttError> {
    if let Ok(options) = MqttOptions::parse_url(address) {
        return Ok(options);
    }
    let client_id = format!(
        "ledge-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let separator = if address.contains('?') { '&' } else { '?' };
    MqttOptions::parse_url(format!("{address}{separator}client_id={client_id}"))
        .map_err(|_| MqttError::InvalidAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_client_id_gets_one_and_a_bad_one_is_invalid() {
        let options = parse_address("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!(options.broker_address(), ("127.0.0.1".to_string(), 1884));
        assert!(options.client_id().starts_with("ledge-"));
        let named = parse_address("mqtt://broker?client_id=mine").unwrap();
        assert_eq!(named.client_id(), "mine");
        assert_eq!(named.broker_address().1, 1883);
        assert_eq!(
            parse_address("not a url").err(),
            Some(MqttError::InvalidAddress)
        );
    }
}
