//! `spin:postgres/postgres@4.0.0` (spin-sdk 5's `pg4`) and `@4.2.0` (spin-sdk 7's `pg`): the
//! same types, generated twice; 4.2.0 adds `connection-builder` and the `*-async` functions.

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::spin::postgres4_0_0::postgres as v4_0;
use super::bindings::spin::postgres4_2_0::postgres as v4_2;
use super::values::{BoundKind, DataType, Interval, Value};
use super::{OutboundView, PgBuilder, PgConnection, PgError, Postgres};
use crate::data::streams;

/// The conversions between the shared model and one 4.x version's types, and its
/// synchronous functions.
macro_rules! v4_interface {
    ($v:ident) => {
        impl From<PgError> for $v::Error {
            fn from(error: PgError) -> Self {
                match error {
                    PgError::ConnectionFailed(message) => Self::ConnectionFailed(message),
                    PgError::BadParameter(message) => Self::BadParameter(message),
                    PgError::QueryFailed(text, None) => {
                        Self::QueryFailed($v::QueryError::Text(text))
                    }
                    PgError::QueryFailed(_, Some(db)) => {
                        let db = *db;
                        Self::QueryFailed($v::QueryError::DbError($v::DbError {
                            as_text: db.as_text,
                            severity: db.severity,
                            code: db.code,
                            message: db.message,
                            detail: db.detail,
                            extras: db.extras,
                        }))
                    }
                    PgError::ValueConversionFailed(message) => Self::ValueConversionFailed(message),
                    PgError::Other(message) => Self::Other(message),
                }
            }
        }

        impl From<$v::RangeBoundKind> for BoundKind {
            fn from(kind: $v::RangeBoundKind) -> Self {
                match kind {
                    $v::RangeBoundKind::Inclusive => Self::Inclusive,
                    $v::RangeBoundKind::Exclusive => Self::Exclusive,
                }
            }
        }

        impl From<BoundKind> for $v::RangeBoundKind {
            fn from(kind: BoundKind) -> Self {
                match kind {
                    BoundKind::Inclusive => Self::Inclusive,
                    BoundKind::Exclusive => Self::Exclusive,
                }
            }
        }

        impl From<$v::ParameterValue> for Value {
            fn from(value: $v::ParameterValue) -> Self {
                use $v::ParameterValue as P;
                fn bound<T>(b: Option<(T, $v::RangeBoundKind)>) -> Option<(T, BoundKind)> {
                    b.map(|(v, k)| (v, k.into()))
                }
                match value {
                    P::Boolean(v) => Self::Boolean(v),
                    P::Int8(v) => Self::Int8(v),
                    P::Int16(v) => Self::Int16(v),
                    P::Int32(v) => Self::Int32(v),
                    P::Int64(v) => Self::Int64(v),
                    P::Floating32(v) => Self::Floating32(v),
                    P::Floating64(v) => Self::Floating64(v),
                    P::Str(v) => Self::Str(v),
                    P::Binary(v) => Self::Binary(v),
                    P::Date(v) => Self::Date(v),
                    P::Time(v) => Self::Time(v),
                    P::Datetime(v) => Self::Datetime(v),
                    P::Timestamp(v) => Self::Timestamp(v),
                    P::Uuid(v) => Self::Uuid(v),
                    P::Jsonb(v) => Self::Jsonb(v),
                    P::Decimal(v) => Self::Decimal(v),
                    P::RangeInt32((lower, upper)) => Self::RangeInt32((bound(lower), bound(upper))),
                    P::RangeInt64((lower, upper)) => Self::RangeInt64((bound(lower), bound(upper))),
                    P::RangeDecimal((lower, upper)) => {
                        Self::RangeDecimal((bound(lower), bound(upper)))
                    }
                    P::ArrayInt32(v) => Self::ArrayInt32(v),
                    P::ArrayInt64(v) => Self::ArrayInt64(v),
                    P::ArrayDecimal(v) => Self::ArrayDecimal(v),
                    P::ArrayStr(v) => Self::ArrayStr(v),
                    P::Interval(v) => Self::Interval(Interval {
                        micros: v.micros,
                        days: v.days,
                        months: v.months,
                    }),
                    P::DbNull => Self::Null,
                }
            }
        }

        impl From<Value> for $v::DbValue {
            fn from(value: Value) -> Self {
                fn bound<T>(b: Option<(T, BoundKind)>) -> Option<(T, $v::RangeBoundKind)> {
                    b.map(|(v, k)| (v, k.into()))
                }
                match value {
                    Value::Boolean(v) => Self::Boolean(v),
                    Value::Int8(v) => Self::Int8(v),
                    Value::Int16(v) => Self::Int16(v),
                    Value::Int32(v) => Self::Int32(v),
                    Value::Int64(v) => Self::Int64(v),
                    Value::Floating32(v) => Self::Floating32(v),
                    Value::Floating64(v) => Self::Floating64(v),
                    Value::Str(v) => Self::Str(v),
                    Value::Binary(v) => Self::Binary(v),
                    Value::Date(v) => Self::Date(v),
                    Value::Time(v) => Self::Time(v),
                    Value::Datetime(v) => Self::Datetime(v),
                    Value::Timestamp(v) => Self::Timestamp(v),
                    Value::Uuid(v) => Self::Uuid(v),
                    Value::Jsonb(v) => Self::Jsonb(v),
                    Value::Decimal(v) => Self::Decimal(v),
                    Value::RangeInt32((lower, upper)) => {
                        Self::RangeInt32((bound(lower), bound(upper)))
                    }
                    Value::RangeInt64((lower, upper)) => {
                        Self::RangeInt64((bound(lower), bound(upper)))
                    }
                    Value::RangeDecimal((lower, upper)) => {
                        Self::RangeDecimal((bound(lower), bound(upper)))
                    }
                    Value::ArrayInt32(v) => Self::ArrayInt32(v),
                    Value::ArrayInt64(v) => Self::ArrayInt64(v),
                    Value::ArrayDecimal(v) => Self::ArrayDecimal(v),
                    Value::ArrayStr(v) => Self::ArrayStr(v),
                    Value::Interval(v) => Self::Interval($v::Interval {
                        micros: v.micros,
                        days: v.days,
                        months: v.months,
                    }),
                    Value::Null => Self::DbNull,
                    Value::Unsupported(raw) => Self::Unsupported(raw),
                    // Only parameters are unsigned.
                    Value::Uint8(_) | Value::Uint16(_) | Value::Uint32(_) | Value::Uint64(_) => {
                        Self::Unsupported(Vec::new())
                    }
                }
            }
        }

        impl From<DataType> for $v::DbDataType {
            fn from(data_type: DataType) -> Self {
                match data_type {
                    DataType::Boolean => Self::Boolean,
                    DataType::Int8 => Self::Int8,
                    DataType::Int16 => Self::Int16,
                    DataType::Int32 => Self::Int32,
                    DataType::Int64 => Self::Int64,
                    DataType::Floating32 => Self::Floating32,
                    DataType::Floating64 => Self::Floating64,
                    DataType::Str => Self::Str,
                    DataType::Binary => Self::Binary,
                    DataType::Date => Self::Date,
                    DataType::Time => Self::Time,
                    DataType::Datetime => Self::Datetime,
                    DataType::Uuid => Self::Uuid,
                    DataType::Jsonb => Self::Jsonb,
                    DataType::Decimal => Self::Decimal,
                    DataType::RangeInt32 => Self::RangeInt32,
                    DataType::RangeInt64 => Self::RangeInt64,
                    DataType::RangeDecimal => Self::RangeDecimal,
                    DataType::ArrayInt32 => Self::ArrayInt32,
                    DataType::ArrayInt64 => Self::ArrayInt64,
                    DataType::ArrayDecimal => Self::ArrayDecimal,
                    DataType::ArrayStr => Self::ArrayStr,
                    DataType::Interval => Self::Interval,
                    DataType::Other(name) => Self::Other(name),
                }
            }
        }

        row_set_conversion!($v);

        impl $v::Host for OutboundView<'_> {}

        sync_connection!($v);
    };
}

v4_interface!(v4_0);
v4_interface!(v4_2);

type Outcome<T> = wasmtime::Result<Result<T, v4_2::Error>>;

/// The connection behind the guest's handle.
fn connection_of<T>(
    accessor: &Accessor<T, Postgres>,
    connection: &Resource<PgConnection>,
) -> wasmtime::Result<PgConnection> {
    accessor.with(|mut access| Ok(access.get().table.get(connection)?.clone()))
}

/// Opens `builder`'s connection and hands it to the guest.
async fn open_with<T>(
    accessor: &Accessor<T, Postgres>,
    builder: PgBuilder,
) -> Outcome<Resource<PgConnection>> {
    let allowed = accessor.with(|mut access| access.get().allowed.clone());
    match PgConnection::open(&allowed, &builder).await {
        Ok(connection) => {
            accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
        }
        Err(error) => Ok(Err(error.into())),
    }
}

impl<T: 'static> v4_2::HostConnectionWithStore<T> for Postgres {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Outcome<Resource<PgConnection>> {
        open_with(accessor, PgBuilder::new(address)).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v4_2::ParameterValue>,
    ) -> Outcome<(
        Vec<v4_2::Column>,
        StreamReader<Vec<v4_2::DbValue>>,
        FutureReader<Result<(), v4_2::Error>>,
    )> {
        let connection = connection_of(accessor, &connection)?;
        let params = params.into_iter().map(Into::into).collect();
        let set: v4_2::RowSet = match connection.query(&statement, params).await {
            Ok(set) => set.into(),
            Err(error) => return Ok(Err(error.into())),
        };
        let (rows, done) = streams::finished_stream(accessor, set.rows, Ok(()))?;
        Ok(Ok((set.columns, rows, done)))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v4_2::ParameterValue>,
    ) -> Outcome<u64> {
        let connection = connection_of(accessor, &connection)?;
        let params = params.into_iter().map(Into::into).collect();
        Ok(connection
            .execute(&statement, params)
            .await
            .map_err(Into::into))
    }
}

impl v4_2::HostConnectionBuilder for OutboundView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgBuilder>> {
        Ok(self.table.push(PgBuilder::new(address))?)
    }

    async fn set_ca_root(
        &mut self,
        builder: Resource<PgBuilder>,
        certificate: String,
    ) -> wasmtime::Result<Result<(), v4_2::Error>> {
        Ok(self
            .table
            .get_mut(&builder)?
            .set_ca_root(certificate)
            .map_err(Into::into))
    }

    async fn build(
        &mut self,
        builder: Resource<PgBuilder>,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, v4_2::Error>> {
        let builder = self.table.get(&builder)?.clone();
        match PgConnection::open(self.allowed, &builder).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error.into())),
        }
    }

    async fn drop(&mut self, builder: Resource<PgBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl<T: 'static> v4_2::HostConnectionBuilderWithStore<T> for Postgres {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<PgBuilder>,
    ) -> Outcome<Resource<PgConnection>> {
        let builder = accessor.with(|mut access| -> wasmtime::Result<PgBuilder> {
            Ok(access.get().table.get(&builder)?.clone())
        })?;
        open_with(accessor, builder).await
    }
}
