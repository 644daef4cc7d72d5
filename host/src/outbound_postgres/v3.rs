//! `spin:postgres/postgres@3.0.0` (spin-sdk 5's `pg3`): 2.0.0's shape with dates and times,
//! errors as text.

use super::OutboundView;
use super::bindings::spin::postgres3_0_0::postgres as v3;
use super::values::{DataType, Value};

impl From<v3::ParameterValue> for Value {
    fn from(value: v3::ParameterValue) -> Self {
        use v3::ParameterValue as P;
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
            P::DbNull => Self::Null,
        }
    }
}

impl From<Value> for v3::DbValue {
    fn from(value: Value) -> Self {
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
            Value::Null => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<DataType> for v3::DbDataType {
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
            _ => Self::Other,
        }
    }
}

impl v3::Host for OutboundView<'_> {}

sync_connection!(v3);

text_error_conversion!(v3);
row_set_conversion!(v3);
