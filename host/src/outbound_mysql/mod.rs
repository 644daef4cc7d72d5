//! Outbound MySQL (and MariaDB): `fermyon:spin/mysql@2.0.0` (spin-sdk 5's `mysql`,
//! synchronous) and `spin:mysql/mysql@3.0.0` (spin-sdk 7's `mysql`, asynchronous, rows as a
//! stream), through mysql_async.
//!
//! A guest opens a `mysql://user:password@host:port/database` address whose host and port its
//! `allowed_outbound_hosts` grants with a `mysql://host:port` entry (3306 when the address names
//! no port); anything else is `connection-failed("address ... is not permitted")` before a
//! socket is opened. ledge dials exactly that address: it never switches to the server's unix
//! socket, and an address naming a `socket` is refused. TLS follows the address's
//! `require_ssl=true` (rustls, with the web's root certificates). As in Spin, every statement
//! is prepared: one statement per call, never several separated by `;`.
//!
//! The capability in one place: the client ([`MysqlConnection`]), the value model ([`Value`],
//! [`DataType`]), the view an instance gives ([`HasOutboundView`](crate::allowed_hosts::HasOutboundView)), the interface versions (`v2`,
//! `v3`) and [`add_to_linker`].
//!
//! (The file is over 600 lines with its tests: about 500 of code.)

/// The conversions between the shared model and one version's types: `$types` is the module
/// that holds its `ParameterValue`, `DbValue`, `DbDataType`, `Column` and `Error`.
macro_rules! version_types {
    ($types:ident) => {
        impl From<$crate::outbound_mysql::MysqlError> for $types::Error {
            fn from(error: $crate::outbound_mysql::MysqlError) -> Self {
                use $crate::outbound_mysql::MysqlError as E;
                match error {
                    E::ConnectionFailed(message) => Self::ConnectionFailed(message),
                    E::BadParameter(message) => Self::BadParameter(message),
                    E::QueryFailed(message) => Self::QueryFailed(message),
                    E::ValueConversionFailed(message) => Self::ValueConversionFailed(message),
                    E::Other(message) => Self::Other(message),
                }
            }
        }

        impl From<$types::ParameterValue> for mysql_async::Value {
            fn from(value: $types::ParameterValue) -> Self {
                use $types::ParameterValue as P;
                match value {
                    P::Boolean(v) => Self::Int(v.into()),
                    P::Int8(v) => Self::Int(v.into()),
                    P::Int16(v) => Self::Int(v.into()),
                    P::Int32(v) => Self::Int(v.into()),
                    P::Int64(v) => Self::Int(v),
                    P::Uint8(v) => Self::UInt(v.into()),
                    P::Uint16(v) => Self::UInt(v.into()),
                    P::Uint32(v) => Self::UInt(v.into()),
                    P::Uint64(v) => Self::UInt(v),
                    P::Floating32(v) => Self::Float(v),
                    P::Floating64(v) => Self::Double(v),
                    P::Str(v) => Self::Bytes(v.into_bytes()),
                    P::Binary(v) => Self::Bytes(v),
                    P::DbNull => Self::NULL,
                }
            }
        }

        impl From<$crate::outbound_mysql::Value> for $types::DbValue {
            fn from(value: $crate::outbound_mysql::Value) -> Self {
                use $crate::outbound_mysql::Value as V;
                match value {
                    V::Int8(v) => Self::Int8(v),
                    V::Int16(v) => Self::Int16(v),
                    V::Int32(v) => Self::Int32(v),
                    V::Int64(v) => Self::Int64(v),
                    V::Uint8(v) => Self::Uint8(v),
                    V::Uint16(v) => Self::Uint16(v),
                    V::Uint32(v) => Self::Uint32(v),
                    V::Uint64(v) => Self::Uint64(v),
                    V::Floating32(v) => Self::Floating32(v),
                    V::Floating64(v) => Self::Floating64(v),
                    V::Str(v) => Self::Str(v),
                    V::Binary(v) => Self::Binary(v),
                    V::Null => Self::DbNull,
                    V::Unsupported => Self::Unsupported,
                }
            }
        }

        impl From<$crate::outbound_mysql::Column> for $types::Column {
            fn from(column: $crate::outbound_mysql::Column) -> Self {
                use $crate::outbound_mysql::DataType as D;
                use $types::DbDataType as T;
                let data_type = match column.data_type {
                    D::Int8 => T::Int8,
                    D::Int16 => T::Int16,
                    D::Int32 => T::Int32,
                    D::Int64 => T::Int64,
                    D::Uint8 => T::Uint8,
                    D::Uint16 => T::Uint16,
                    D::Uint32 => T::Uint32,
                    D::Uint64 => T::Uint64,
                    D::Floating32 => T::Floating32,
                    D::Floating64 => T::Floating64,
                    D::Str => T::Str,
                    D::Binary => T::Binary,
                    D::Other => T::Other,
                };
                Self {
                    name: column.name,
                    data_type,
                }
            }
        }
    };
}

mod bindings;
mod v2;
mod v3;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use wasmtime::component::{HasData, Linker};

use crate::allowed_hosts::{AllowedHosts, HasOutboundView, OutboundView};

/// The `HasData` marker for the MySQL interfaces.
pub struct Mysql;

impl HasData for Mysql {
    type Data<'a> = OutboundView<'a>;
}

/// Adds both MySQL interface versions to `linker`.
pub fn add_to_linker<T: HasOutboundView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::{fermyon, spin};
    fermyon::spin::mysql::add_to_linker::<T, Mysql>(linker, T::outbound_view)?;
    fermyon::spin::rdbms_types::add_to_linker::<T, Mysql>(linker, T::outbound_view)?;
    spin::mysql::mysql::add_to_linker::<T, Mysql>(linker, T::outbound_view)?;
    Ok(())
}

/// Why a MySQL call failed, in the terms both interface versions share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlError {
    /// The address is malformed, not allowed or unreachable.
    ConnectionFailed(String),
    /// A parameter does not fit the statement.
    BadParameter(String),
    /// The server refused or failed the statement.
    QueryFailed(String),
    /// A column value cannot be read as its column's type.
    ValueConversionFailed(String),
    /// Anything else.
    Other(String),
}

impl From<mysql_async::Error> for MysqlError {
    fn from(error: mysql_async::Error) -> Self {
        use mysql_async::{DriverError, Error};
        match error {
            Error::Driver(DriverError::Params(_) | DriverError::StmtParamsMismatch { .. }) => {
                Self::BadParameter(error.to_string())
            }
            Error::Driver(DriverError::ConnectionClosed) | Error::Io(_) => {
                Self::ConnectionFailed(error.to_string())
            }
            Error::Url(_) => Self::ConnectionFailed(format!("invalid address: {error}")),
            Error::Server(ref server) => Self::QueryFailed(format!(
                "{} (error {}, SQLSTATE {})",
                server.message, server.code, server.state
            )),
            Error::Driver(_) | Error::Other(_) => Self::QueryFailed(error.to_string()),
        }
    }
}

/// The type of a result column, as both interface versions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// TINYINT (and BOOLEAN, its alias).
    Int8,
    /// SMALLINT.
    Int16,
    /// MEDIUMINT, INT.
    Int32,
    /// BIGINT.
    Int64,
    /// TINYINT UNSIGNED.
    Uint8,
    /// SMALLINT UNSIGNED, YEAR (which MySQL marks unsigned).
    Uint16,
    /// MEDIUMINT UNSIGNED, INT UNSIGNED.
    Uint32,
    /// BIGINT UNSIGNED.
    Uint64,
    /// FLOAT.
    Floating32,
    /// DOUBLE.
    Floating64,
    /// Character data, and the types read as their text: DECIMAL, dates and times, JSON,
    /// ENUM, SET.
    Str,
    /// Binary strings and blobs, BIT.
    Binary,
    /// Anything else (GEOMETRY, ...): its values read as `unsupported`.
    Other,
}

/// The character set number MySQL gives binary strings.
const BINARY_CHARSET: u16 = 63;

impl DataType {
    /// The type of `column`.
    pub fn of(column: &mysql_async::Column) -> Self {
        use ColumnType::*;
        let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        let integer = |signed, unsigned_type| if unsigned { unsigned_type } else { signed };
        match column.column_type() {
            MYSQL_TYPE_TINY => integer(Self::Int8, Self::Uint8),
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => integer(Self::Int16, Self::Uint16),
            MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => integer(Self::Int32, Self::Uint32),
            MYSQL_TYPE_LONGLONG => integer(Self::Int64, Self::Uint64),
            MYSQL_TYPE_FLOAT => Self::Floating32,
            MYSQL_TYPE_DOUBLE => Self::Floating64,
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                if column.character_set() == BINARY_CHARSET {
                    Self::Binary
                } else {
                    Self::Str
                }
            }
            MYSQL_TYPE_BIT => Self::Binary,
            MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_JSON
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
            | MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_TIME
            | MYSQL_TYPE_TIME2
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => Self::Str,
            _ => Self::Other,
        }
    }
}

/// A value read from a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// TINYINT.
    Int8(i8),
    /// SMALLINT.
    Int16(i16),
    /// INT.
    Int32(i32),
    /// BIGINT.
    Int64(i64),
    /// TINYINT UNSIGNED.
    Uint8(u8),
    /// SMALLINT UNSIGNED.
    Uint16(u16),
    /// INT UNSIGNED.
    Uint32(u32),
    /// BIGINT UNSIGNED.
    Uint64(u64),
    /// FLOAT.
    Floating32(f32),
    /// DOUBLE.
    Floating64(f64),
    /// Text.
    Str(String),
    /// Bytes.
    Binary(Vec<u8>),
    /// NULL.
    Null,
    /// A value of a type the interfaces cannot carry.
    Unsupported,
}

impl Value {
    /// Reads `value`, which came in `column` (from the text or the binary protocol: both are
    /// accepted).
    pub fn read(value: mysql_async::Value, column: &Column) -> Result<Self, MysqlError> {
        use mysql_async::Value as Raw;
        use mysql_async::from_value_opt;
        if value == Raw::NULL {
            return Ok(Self::Null);
        }
        let data_type = column.data_type;
        // The value moves into the conversion, which hands it back when it does not fit.
        let unreadable = |error: mysql_async::FromValueError| {
            MysqlError::ValueConversionFailed(format!("{:?} is not a {data_type:?}", error.0))
        };
        Ok(match data_type {
            DataType::Int8 => Self::Int8(from_value_opt(value).map_err(unreadable)?),
            DataType::Int16 => Self::Int16(from_value_opt(value).map_err(unreadable)?),
            DataType::Int32 => Self::Int32(from_value_opt(value).map_err(unreadable)?),
            DataType::Int64 => Self::Int64(from_value_opt(value).map_err(unreadable)?),
            DataType::Uint8 => Self::Uint8(from_value_opt(value).map_err(unreadable)?),
            DataType::Uint16 => Self::Uint16(from_value_opt(value).map_err(unreadable)?),
            DataType::Uint32 => Self::Uint32(from_value_opt(value).map_err(unreadable)?),
            DataType::Uint64 => Self::Uint64(from_value_opt(value).map_err(unreadable)?),
            DataType::Floating32 => Self::Floating32(from_value_opt(value).map_err(unreadable)?),
            DataType::Floating64 => Self::Floating64(from_value_opt(value).map_err(unreadable)?),
            DataType::Binary => Self::Binary(from_value_opt(value).map_err(unreadable)?),
            DataType::Str => Self::Str(match value {
                Raw::Date(..) | Raw::Time(..) => temporal_text(&value, column),
                Raw::Bytes(bytes) => String::from_utf8(bytes).map_err(|error| {
                    MysqlError::ValueConversionFailed(format!(
                        "{:?} is not UTF-8 text",
                        Raw::Bytes(error.into_bytes())
                    ))
                })?,
                other => other.as_sql(true),
            }),
            DataType::Other => Self::Unsupported,
        })
    }
}

/// A date or time as MySQL writes it for `column`: `2026-11-30` (a DATE),
/// `2026-11-30 23:59:58`, `-838:59:59`, with as many digits of fraction as the column keeps
/// (`DATETIME(3)`: `.123`).
fn temporal_text(value: &mysql_async::Value, column: &Column) -> String {
    use mysql_async::Value as Raw;
    let fraction = |micros: u32| match column.decimals {
        0 => String::new(),
        digits @ 1..=6 => format!(".{micros:06}")[..=usize::from(digits)].to_string(),
        // A computed column has no fixed precision: as much as there is.
        _ if micros == 0 => String::new(),
        _ => format!(".{micros:06}"),
    };
    match *value {
        Raw::Date(year, month, day, ..) if column.date_only => {
            format!("{year:04}-{month:02}-{day:02}")
        }
        Raw::Date(year, month, day, hour, minute, second, micros) => format!(
            "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}",
            fraction(micros)
        ),
        Raw::Time(negative, days, hours, minutes, seconds, micros) => format!(
            "{}{:02}:{minutes:02}:{seconds:02}{}",
            if negative { "-" } else { "" },
            u64::from(days) * 24 + u64::from(hours),
            fraction(micros)
        ),
        ref other => other.as_sql(true),
    }
}

/// A result column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether it is a DATE (whose values read without a time of day).
    pub date_only: bool,
    /// The digits of fraction its times keep (31: not fixed).
    pub decimals: u8,
}

impl Column {
    /// The name and type of `column`.
    pub fn of(column: &mysql_async::Column) -> Self {
        Self {
            name: column.name_str().into_owned(),
            data_type: DataType::of(column),
            date_only: matches!(
                column.column_type(),
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE
            ),
            decimals: column.decimals(),
        }
    }
}

/// A query's columns and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSet {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<Value>>,
}

/// How long connecting may take before it is `connection-failed`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing a dropped connection may take.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// An open connection, as a guest resource. A guest may use one connection from several
/// tasks; its statements take turns.
#[derive(Clone)]
pub struct MysqlConnection(Arc<tokio::sync::Mutex<OpenConnection>>);

/// A client connection that, when dropped, tells the server it is leaving (within
/// [`DISCONNECT_TIMEOUT`]) instead of first reading whatever an interrupted statement still had
/// to send, as mysql_async's own drop would.
struct OpenConnection(Option<mysql_async::Conn>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let (Some(connection), Ok(runtime)) =
            (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(tokio::time::timeout(
                DISCONNECT_TIMEOUT,
                connection.disconnect(),
            ));
        }
    }
}

impl MysqlConnection {
    /// Connects to `address` if `allowed` grants its host and port.
    pub async fn open(allowed: &AllowedHosts, address: &str) -> Result<Self, MysqlError> {
        let opts = mysql_async::Opts::from_url(address)
            .map_err(|e| MysqlError::ConnectionFailed(format!("invalid address: {e}")))?;
        let (host, port) = (opts.ip_or_hostname().to_string(), opts.tcp_port());
        if opts.socket().is_some() || !allowed.permits_network("mysql", &host, port) {
            tracing::info!("outbound MySQL to {host}:{port} denied: not in allowed_outbound_hosts");
            return Err(MysqlError::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        // Exactly the address just checked (an IPv6 literal without its URL brackets), never
        // the server's unix socket.
        let dialled = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .ip_or_hostname(dialled)
            .prefer_socket(false);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts))
            .await
            .map_err(|_| {
                MysqlError::ConnectionFailed(format!(
                    "{host}:{port} did not answer within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| MysqlError::ConnectionFailed(e.to_string()))?;
        Ok(Self(Arc::new(tokio::sync::Mutex::new(OpenConnection(
            Some(connection),
        )))))
    }

    /// Runs `statement` and returns the columns and rows of its first result set.
    pub async fn query(
        &self,
        statement: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<RowSet, MysqlError> {
        let mut held = self.0.lock().await;
        let connection = held.0.as_mut().expect("open until dropped");
        read_first_set(connection.exec_iter(statement, params).await?).await
    }

    /// Runs `statement`, which returns no rows.
    pub async fn execute(
        &self,
        statement: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<(), MysqlError> {
        let mut held = self.0.lock().await;
        let connection = held.0.as_mut().expect("open until dropped");
        Ok(connection.exec_drop(statement, params).await?)
    }
}

/// The columns and rows of `result`'s first result set (the others are read and dropped).
async fn read_first_set(
    mut result: mysql_async::QueryResult<'_, '_, mysql_async::BinaryProtocol>,
) -> Result<RowSet, MysqlError> {
    let columns: Vec<Column> = result
        .columns()
        .map(|columns| columns.iter().map(Column::of).collect())
        .unwrap_or_default();
    let raw_rows: Vec<mysql_async::Row> = result.collect().await?;
    result.drop_result().await?;
    let rows = raw_rows
        .into_iter()
        .map(|row| {
            row.unwrap()
                .into_iter()
                .zip(&columns)
                .map(|(value, column)| Value::read(value, column))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RowSet { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value as Raw;

    fn column(data_type: DataType) -> Column {
        Column {
            name: "c".into(),
            data_type,
            date_only: false,
            decimals: 0,
        }
    }

    #[test]
    fn values_are_read_by_their_column_type_from_either_protocol() {
        // Text protocol: every value arrives as its text.
        assert_eq!(
            Value::read(Raw::Bytes(b"-7".to_vec()), &column(DataType::Int8)),
            Ok(Value::Int8(-7))
        );
        assert_eq!(
            Value::read(
                Raw::Bytes(b"18446744073709551615".to_vec()),
                &column(DataType::Uint64)
            ),
            Ok(Value::Uint64(u64::MAX))
        );
        assert_eq!(
            Value::read(Raw::Bytes(b"2.5".to_vec()), &column(DataType::Floating64)),
            Ok(Value::Floating64(2.5))
        );
        // Binary protocol: typed values.
        assert_eq!(
            Value::read(Raw::Int(-3), &column(DataType::Int16)),
            Ok(Value::Int16(-3))
        );
        assert_eq!(
            Value::read(Raw::UInt(200), &column(DataType::Uint8)),
            Ok(Value::Uint8(200))
        );
        assert_eq!(
            Value::read(Raw::Float(1.5), &column(DataType::Floating32)),
            Ok(Value::Floating32(1.5))
        );
        assert_eq!(
            Value::read(Raw::NULL, &column(DataType::Int32)),
            Ok(Value::Null)
        );
        assert_eq!(
            Value::read(Raw::Bytes(vec![0, 255]), &column(DataType::Binary)),
            Ok(Value::Binary(vec![0, 255]))
        );
        assert_eq!(
            Value::read(Raw::Bytes(vec![1]), &column(DataType::Other)),
            Ok(Value::Unsupported)
        );
    }

    #[test]
    fn a_value_that_does_not_fit_its_column_type_is_a_conversion_error() {
        assert!(matches!(
            Value::read(Raw::Int(300), &column(DataType::Int8)),
            Err(MysqlError::ValueConversionFailed(_))
        ));
        assert!(matches!(
            Value::read(Raw::Bytes(vec![0xff, 0xfe]), &column(DataType::Str)),
            Err(MysqlError::ValueConversionFailed(_))
        ));
    }

    #[test]
    fn dates_and_times_read_as_mysql_writes_them() {
        let read = |value| Value::read(value, &column(DataType::Str)).unwrap();
        let date = Column {
            date_only: true,
            ..column(DataType::Str)
        };
        assert_eq!(
            Value::read(Raw::Date(2026, 11, 30, 0, 0, 0, 0), &date),
            Ok(Value::Str("2026-11-30".into()))
        );
        assert_eq!(
            read(Raw::Date(2026, 11, 30, 0, 0, 0, 0)),
            Value::Str("2026-11-30 00:00:00".into())
        );
        assert_eq!(
            read(Raw::Date(2026, 11, 30, 23, 59, 58, 0)),
            Value::Str("2026-11-30 23:59:58".into())
        );
        let millis = Column {
            decimals: 3,
            ..column(DataType::Str)
        };
        assert_eq!(
            Value::read(Raw::Date(2026, 11, 30, 23, 59, 58, 123_456), &millis),
            Ok(Value::Str("2026-11-30 23:59:58.123".into()))
        );
        assert_eq!(
            Value::read(Raw::Time(false, 0, 1, 2, 3, 0), &millis),
            Ok(Value::Str("01:02:03.000".into()))
        );
        let computed = Column {
            decimals: 31,
            ..column(DataType::Str)
        };
        assert_eq!(
            Value::read(Raw::Date(2026, 11, 30, 1, 2, 3, 450_000), &computed),
            Ok(Value::Str("2026-11-30 01:02:03.450000".into()))
        );
        assert_eq!(
            read(Raw::Time(true, 34, 22, 59, 59, 0)),
            Value::Str("-838:59:59".into())
        );
        assert_eq!(
            read(Raw::Bytes(b"12.50".to_vec())),
            Value::Str("12.50".into())
        );
    }
}
