//! `fermyon:spin/postgres@2.0.0` with `rdbms-types` (spin-sdk 5's `pg`): integers signed and
//! unsigned, text, binary; errors as text.

use super::OutboundView;
use super::bindings::fermyon::spin::postgres as v2;
use super::bindings::fermyon::spin::rdbms_types;
use super::values::{DataType, Value};

impl From<rdbms_types::ParameterValue> for Value {
    fn from(value: rdbms_types::ParameterValue) -> Self {
        use rdbms_types::ParameterValue as P;
        match value {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Uint8(v) => Self::Uint8(v),
            P::Uint16(v) => Self::Uint16(v),
            P::Uint32(v) => Self::Uint32(v),
            P::Uint64(v) => Self::Uint64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::DbNull => Self::Null,
        }
    }
}

impl From<Value> for rdbms_types::DbValue {
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
            Value::Null => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<DataType> for rdbms_types::DbDataType {
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
            _ => Self::Other,
        }
    }
}

impl rdbms_types::Host for OutboundView<'_> {}

impl v2::Host for OutboundView<'_> {}

sync_connection!(v2);

text_error_conversion!(rdbms_types);
row_set_conversion!(rdbms_types);
