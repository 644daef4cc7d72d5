//! Outbound Redis: `fermyon:spin/redis@2.0.0` (spin-sdk 5) and `spin:redis/redis@3.0.0`
//! (spin-sdk 7). A guest connects to a Redis server that its `allowed_outbound_hosts` names
//! with a `redis://host:port` entry and runs commands there; a denied or malformed address is
//! `invalid-address` before any socket is opened, as in Spin.
//!
//! The capability in one place: the client ([`RedisConnection`]), the view an instance gives
//! ([`HasOutboundView`](crate::allowed_hosts::HasOutboundView)), the two interface versions (`v2`, `v3`) and [`add_to_linker`].

mod bindings;
mod v2;
mod v3;

/// The conversions between the shared types here and one interface version's.
macro_rules! version_conversions {
    ($version:ident) => {
        impl From<$crate::outbound_redis::RedisError> for $version::Error {
            fn from(error: $crate::outbound_redis::RedisError) -> Self {
                use $crate::outbound_redis::RedisError;
                match error {
                    RedisError::InvalidAddress => Self::InvalidAddress,
                    RedisError::TypeError => Self::TypeError,
                    RedisError::Other(message) => Self::Other(message),
                }
            }
        }

        impl From<$version::RedisParameter> for $crate::outbound_redis::Param {
            fn from(parameter: $version::RedisParameter) -> Self {
                match parameter {
                    $version::RedisParameter::Int64(value) => Self::Int64(value),
                    $version::RedisParameter::Binary(bytes) => Self::Binary(bytes),
                }
            }
        }

        impl From<$crate::outbound_redis::Reply> for $version::RedisResult {
            fn from(reply: $crate::outbound_redis::Reply) -> Self {
                use $crate::outbound_redis::Reply;
                match reply {
                    Reply::Nil => Self::Nil,
                    Reply::Status(status) => Self::Status(status),
                    Reply::Int64(value) => Self::Int64(value),
                    Reply::Binary(bytes) => Self::Binary(bytes),
                }
            }
        }
    };
}
use version_conversions;

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, FromRedisValue};
use wasmtime::component::{HasData, Linker};

use crate::allowed_hosts::{AllowedHosts, HasOutboundView, OutboundView};

/// The `HasData` marker for the Redis interfaces.
pub struct Redis;

impl HasData for Redis {
    type Data<'a> = OutboundView<'a>;
}

/// Adds both Redis interface versions to `linker`.
pub fn add_to_linker<T: HasOutboundView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::fermyon::spin::redis::add_to_linker::<T, Redis>(linker, T::outbound_view)?;
    bindings::spin::redis::redis::add_to_linker::<T, Redis>(linker, T::outbound_view)?;
    Ok(())
}

/// Why a Redis call failed, in the terms both interface versions share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisError {
    /// The address is malformed or not allowed.
    InvalidAddress,
    /// A value was not of the type the call needs.
    TypeError,
    /// Anything else, with its message.
    Other(String),
}

impl From<redis::RedisError> for RedisError {
    fn from(error: redis::RedisError) -> Self {
        let wrong_type = error.kind() == redis::ErrorKind::UnexpectedReturnType
            || error.code() == Some("WRONGTYPE")
            || error.to_string().contains("not an integer");
        if wrong_type {
            Self::TypeError
        } else {
            Self::Other(error.to_string())
        }
    }
}

/// An argument of `execute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// An integer.
    Int64(i64),
    /// Bytes.
    Binary(Vec<u8>),
}

/// A reply of `execute`, flattened as Spin does (arrays, sets and maps become their items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No value.
    Nil,
    /// A status such as `OK`.
    Status(String),
    /// An integer.
    Int64(i64),
    /// Bytes.
    Binary(Vec<u8>),
}

/// An open connection, as a guest resource.
#[derive(Clone)]
pub struct RedisConnection(MultiplexedConnection);

impl RedisConnection {
    /// Connects to `address` if `allowed` permits its host and port.
    pub async fn open(allowed: &AllowedHosts, address: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
        let (scheme, host, port) = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) => ("redis", host.clone(), *port),
            ConnectionAddr::TcpTls { host, port, .. } => ("rediss", host.clone(), *port),
            _ => return Err(RedisError::InvalidAddress),
        };
        if !allowed.permits_network(scheme, &host, port) {
            tracing::info!("outbound Redis to {address} denied: not in allowed_outbound_hosts");
            return Err(RedisError::InvalidAddress);
        }
        let connection = client.get_multiplexed_async_connection().await?;
        Ok(Self(connection))
    }

    async fn query<T: FromRedisValue>(&self, command: redis::Cmd) -> Result<T, RedisError> {
        Ok(command.query_async(&mut self.0.clone()).await?)
    }

    /// PUBLISH `payload` on `channel`.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), RedisError> {
        let receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(payload).to_owned())
            .await?;
        tracing::debug!("published on {channel} to {receivers} subscribers");
        Ok(())
    }

    /// GET `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        self.query(redis::cmd("GET").arg(key).to_owned()).await
    }

    /// SET `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), RedisError> {
        self.query(redis::cmd("SET").arg(key).arg(value).to_owned())
            .await
    }

    /// INCR `key`.
    pub async fn incr(&self, key: &str) -> Result<i64, RedisError> {
        self.query(redis::cmd("INCR").arg(key).to_owned()).await
    }

    /// DEL `keys`.
    pub async fn del(&self, keys: &[String]) -> Result<u32, RedisError> {
        self.query(redis::cmd("DEL").arg(keys).to_owned()).await
    }

    /// SADD `values` to `key`.
    pub async fn sadd(&self, key: &str, values: &[String]) -> Result<u32, RedisError> {
        self.query(redis::cmd("SADD").arg(key).arg(values).to_owned())
            .await
    }

    /// SMEMBERS of `key`.
    pub async fn smembers(&self, key: &str) -> Result<Vec<String>, RedisError> {
        self.query(redis::cmd("SMEMBERS").arg(key).to_owned()).await
    }

    /// SREM `values` from `key`.
    pub async fn srem(&self, key: &str, values: &[String]) -> Result<u32, RedisError> {
        self.query(redis::cmd("SREM").arg(key).arg(values).to_owned())
            .await
    }

    /// Any `command` with `params`.
    pub async fn execute(
        &self,
        command: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Reply>, RedisError> {
        let mut cmd = redis::cmd(command);
        for param in params {
            match param {
                Param::Int64(value) => cmd.arg(value),
                Param::Binary(bytes) => cmd.arg(bytes),
            };
        }
        let value: redis::Value = self.query(cmd).await?;
        let mut replies = Vec::new();
        flatten(value, &mut replies)?;
        Ok(replies)
    }
}

/// Appends `value` to `replies` as Spin's `redis-result`s.
fn flatten(value: redis::Value, replies: &mut Vec<Reply>) -> Result<(), RedisError> {
    use redis::Value;
    match value {
        Value::Nil => replies.push(Reply::Nil),
        Value::Int(value) => replies.push(Reply::Int64(value)),
        Value::BulkString(bytes) => replies.push(Reply::Binary(bytes)),
        Value::SimpleString(status) => replies.push(Reply::Status(status)),
        Value::Okay => replies.push(Reply::Status("OK".into())),
        Value::Boolean(value) => replies.push(Reply::Int64(value.into())),
        Value::Double(value) => replies.push(Reply::Binary(value.to_string().into_bytes())),
        Value::VerbatimString { text, .. } => replies.push(Reply::Binary(text.into_bytes())),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            for item in items {
                flatten(item, replies)?;
            }
        }
        Value::Map(pairs) => {
            for (key, value) in pairs {
                flatten(key, replies)?;
                flatten(value, replies)?;
            }
        }
        Value::Attribute { data, .. } => flatten(*data, replies)?,
        Value::ServerError(error) => return Err(RedisError::from(redis::RedisError::from(error))),
        other => replies.push(Reply::Binary(format!("{other:?}").into_bytes())),
    }
    Ok(())
}
