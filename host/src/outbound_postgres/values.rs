//! The values a guest sends and reads, in one model that covers every interface version
//! (4.x's types plus 2.0.0's unsigned parameters), and how each is written to and read from
//! PostgreSQL's binary format.
//!
//! A parameter is bound by the type PostgreSQL expects for it, so a guest's `int32` fills an
//! `INT8` column, a `str` fills any text-like or enum column, and a `timestamp` (seconds since
//! the epoch) fills a `BIGINT` or a `TIMESTAMP[TZ]`. A value that does not fit is
//! `bad-parameter`, never a silent truncation.
//!
//! (The file is over 600 lines with its tests: about 530 of code, one conversion per type.)

use std::error::Error;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_protocol::types::{self as wire, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// How a range bound includes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundKind {
    /// `[` or `]`.
    Inclusive,
    /// `(` or `)`.
    Exclusive,
}

/// One side of a range: `None` is unbounded.
pub type Bound<T> = Option<(T, BoundKind)>;

/// A range as (lower, upper). The interfaces cannot say "empty", so an empty range reads as
/// `[0, 0)`, which is empty too.
pub type Range<T> = (Bound<T>, Bound<T>);

/// An `INTERVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Microseconds.
    pub micros: i64,
    /// Days.
    pub days: i32,
    /// Months.
    pub months: i32,
}

/// A value a guest binds or reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `BOOL`.
    Boolean(bool),
    /// `"char"`.
    Int8(i8),
    /// `INT2`.
    Int16(i16),
    /// `INT4`.
    Int32(i32),
    /// `INT8`.
    Int64(i64),
    /// An unsigned parameter of `fermyon:spin/postgres@2.0.0`.
    Uint8(u8),
    /// An unsigned parameter of `fermyon:spin/postgres@2.0.0`.
    Uint16(u16),
    /// An unsigned parameter of `fermyon:spin/postgres@2.0.0`.
    Uint32(u32),
    /// An unsigned parameter of `fermyon:spin/postgres@2.0.0`.
    Uint64(u64),
    /// `FLOAT4`.
    Floating32(f32),
    /// `FLOAT8`.
    Floating64(f64),
    /// Text.
    Str(String),
    /// `BYTEA`.
    Binary(Vec<u8>),
    /// `DATE`: year, month, day.
    Date((i32, u8, u8)),
    /// `TIME`: hour, minute, second, nanosecond.
    Time((u8, u8, u8, u32)),
    /// `TIMESTAMP` (or `TIMESTAMPTZ` in UTC): year, month, day, hour, minute, second, nanosecond.
    Datetime((i32, u8, u8, u8, u8, u8, u32)),
    /// Seconds since the Unix epoch.
    Timestamp(i64),
    /// `UUID` as text.
    Uuid(String),
    /// `JSONB` (or `JSON`) as UTF-8 JSON.
    Jsonb(Vec<u8>),
    /// `NUMERIC` as base-10 text.
    Decimal(String),
    /// `INT4RANGE`.
    RangeInt32(Range<i32>),
    /// `INT8RANGE`.
    RangeInt64(Range<i64>),
    /// `NUMRANGE`, bounds as base-10 text.
    RangeDecimal(Range<String>),
    /// `INT4[]`.
    ArrayInt32(Vec<Option<i32>>),
    /// `INT8[]`.
    ArrayInt64(Vec<Option<i64>>),
    /// `NUMERIC[]`, as base-10 text.
    ArrayDecimal(Vec<Option<String>>),
    /// `TEXT[]` (or `VARCHAR[]`).
    ArrayStr(Vec<Option<String>>),
    /// `INTERVAL`.
    Interval(Interval),
    /// `NULL`.
    Null,
    /// A column of a type no interface version models, as PostgreSQL's binary encoding.
    Unsupported(Vec<u8>),
}

/// A column's type as the interfaces name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    /// `BOOL`.
    Boolean,
    /// `"char"`.
    Int8,
    /// `INT2`.
    Int16,
    /// `INT4`.
    Int32,
    /// `INT8`.
    Int64,
    /// `FLOAT4`.
    Floating32,
    /// `FLOAT8`.
    Floating64,
    /// Text types.
    Str,
    /// `BYTEA`.
    Binary,
    /// `DATE`.
    Date,
    /// `TIME`.
    Time,
    /// `TIMESTAMP`, `TIMESTAMPTZ`.
    Datetime,
    /// `UUID`.
    Uuid,
    /// `JSONB`, `JSON`.
    Jsonb,
    /// `NUMERIC`.
    Decimal,
    /// `INT4RANGE`.
    RangeInt32,
    /// `INT8RANGE`.
    RangeInt64,
    /// `NUMRANGE`.
    RangeDecimal,
    /// `INT4[]`.
    ArrayInt32,
    /// `INT8[]`.
    ArrayInt64,
    /// `NUMERIC[]`.
    ArrayDecimal,
    /// `TEXT[]`, `VARCHAR[]`.
    ArrayStr,
    /// `INTERVAL`.
    Interval,
    /// Anything else, by PostgreSQL's name for it.
    Other(String),
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

impl DataType {
    /// The interfaces' name for a column of type `ty`.
    pub fn of(ty: &Type) -> Self {
        match *ty {
            Type::BOOL => Self::Boolean,
            Type::CHAR => Self::Int8,
            Type::INT2 => Self::Int16,
            Type::INT4 => Self::Int32,
            Type::INT8 => Self::Int64,
            Type::FLOAT4 => Self::Floating32,
            Type::FLOAT8 => Self::Floating64,
            Type::BYTEA => Self::Binary,
            Type::DATE => Self::Date,
            Type::TIME => Self::Time,
            Type::TIMESTAMP | Type::TIMESTAMPTZ => Self::Datetime,
            Type::UUID => Self::Uuid,
            Type::JSONB | Type::JSON => Self::Jsonb,
            Type::NUMERIC => Self::Decimal,
            Type::INT4_RANGE => Self::RangeInt32,
            Type::INT8_RANGE => Self::RangeInt64,
            Type::NUM_RANGE => Self::RangeDecimal,
            Type::INT4_ARRAY => Self::ArrayInt32,
            Type::INT8_ARRAY => Self::ArrayInt64,
            Type::NUMERIC_ARRAY => Self::ArrayDecimal,
            Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => Self::ArrayStr,
            Type::INTERVAL => Self::Interval,
            _ if is_text(ty) => Self::Str,
            _ => Self::Other(ty.name().to_string()),
        }
    }
}

fn is_json(ty: &Type) -> bool {
    *ty == Type::JSON || *ty == Type::JSONB
}

fn json_to_sql(json: &[u8], ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| -> BoxError { format!("not JSON: {e}").into() })?;
    value.to_sql(ty, out)
}

fn decimal(text: &str) -> Result<Decimal, BoxError> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("`{text}` is not a decimal number").into())
}

fn date((year, month, day): (i32, u8, u8)) -> Result<NaiveDate, BoxError> {
    NaiveDate::from_ymd_opt(year, month.into(), day.into())
        .ok_or_else(|| format!("{year}-{month}-{day} is not a date").into())
}

fn time((hour, minute, second, nano): (u8, u8, u8, u32)) -> Result<NaiveTime, BoxError> {
    NaiveTime::from_hms_nano_opt(hour.into(), minute.into(), second.into(), nano)
        .ok_or_else(|| format!("{hour}:{minute}:{second}.{nano} is not a time").into())
}

fn datetime(
    (year, month, day, hour, minute, second, nano): (i32, u8, u8, u8, u8, u8, u32),
) -> Result<NaiveDateTime, BoxError> {
    Ok(date((year, month, day))?.and_time(time((hour, minute, second, nano))?))
}

fn since_epoch(seconds: i64) -> Result<DateTime<Utc>, BoxError> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| format!("{seconds} s since the epoch is out of range").into())
}

/// Writes a range whose bounds `write` encodes.
fn range_to_sql<T>(
    (lower, upper): &Range<T>,
    write: impl Fn(&T, &mut BytesMut) -> Result<IsNull, BoxError>,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    let side = |bound: &Bound<T>, out: &mut BytesMut| {
        let mut written = |value: &T| {
            write(value, out).map(|null| match null {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            })
        };
        match bound {
            None => Ok(RangeBound::Unbounded),
            Some((value, BoundKind::Inclusive)) => written(value).map(RangeBound::Inclusive),
            Some((value, BoundKind::Exclusive)) => written(value).map(RangeBound::Exclusive),
        }
    };
    wire::range_to_sql(|out| side(lower, out), |out| side(upper, out), out)?;
    Ok(IsNull::No)
}

fn range_from_sql<T>(
    raw: &[u8],
    mut read: impl FnMut(&[u8]) -> Result<T, BoxError>,
    empty: T,
    empty_end: T,
) -> Result<Range<T>, BoxError> {
    let mut side = |bound: RangeBound<Option<&[u8]>>| -> Result<Bound<T>, BoxError> {
        Ok(match bound {
            RangeBound::Unbounded | RangeBound::Inclusive(None) | RangeBound::Exclusive(None) => {
                None
            }
            RangeBound::Inclusive(Some(raw)) => Some((read(raw)?, BoundKind::Inclusive)),
            RangeBound::Exclusive(Some(raw)) => Some((read(raw)?, BoundKind::Exclusive)),
        })
    };
    match wire::range_from_sql(raw)? {
        wire::Range::Empty => Ok((
            Some((empty, BoundKind::Inclusive)),
            Some((empty_end, BoundKind::Exclusive)),
        )),
        wire::Range::Nonempty(lower, upper) => Ok((side(lower)?, side(upper)?)),
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError {
            format!("cannot bind {} to a parameter of type {ty}", self.name()).into()
        };
        let integer = |value: i128, out: &mut BytesMut| -> Result<IsNull, BoxError> {
            let fits = |range: std::ops::RangeInclusive<i128>| {
                if range.contains(&value) {
                    Ok(())
                } else {
                    Err(format!("{value} does not fit a parameter of type {ty}"))
                }
            };
            match *ty {
                Type::CHAR => {
                    fits(i8::MIN.into()..=i8::MAX.into()).map(|()| (value as i8).to_sql(ty, out))?
                }
                Type::INT2 => fits(i16::MIN.into()..=i16::MAX.into())
                    .map(|()| (value as i16).to_sql(ty, out))?,
                Type::INT4 => fits(i32::MIN.into()..=i32::MAX.into())
                    .map(|()| (value as i32).to_sql(ty, out))?,
                Type::INT8 => fits(i64::MIN.into()..=i64::MAX.into())
                    .map(|()| (value as i64).to_sql(ty, out))?,
                Type::FLOAT8 if (value as f64) as i128 == value => (value as f64).to_sql(ty, out),
                Type::FLOAT8 => {
                    Err(format!("{value} is not exact as a parameter of type {ty}").into())
                }
                Type::NUMERIC => Decimal::from_i128_with_scale(value, 0).to_sql(ty, out),
                _ => Err(format!("cannot bind an integer to a parameter of type {ty}").into()),
            }
        };
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Boolean(value) if *ty == Type::BOOL => value.to_sql(ty, out),
            Self::Int8(value) => integer((*value).into(), out),
            Self::Int16(value) => integer((*value).into(), out),
            Self::Int32(value) => integer((*value).into(), out),
            Self::Int64(value) => integer((*value).into(), out),
            Self::Uint8(value) => integer((*value).into(), out),
            Self::Uint16(value) => integer((*value).into(), out),
            Self::Uint32(value) => integer((*value).into(), out),
            Self::Uint64(value) => integer((*value).into(), out),
            Self::Floating32(value) if *ty == Type::FLOAT4 => value.to_sql(ty, out),
            Self::Floating32(value) if *ty == Type::FLOAT8 => f64::from(*value).to_sql(ty, out),
            Self::Floating64(value) if *ty == Type::FLOAT8 => value.to_sql(ty, out),
            Self::Floating64(value) if *ty == Type::NUMERIC => Decimal::try_from(*value)
                .map_err(|e| -> BoxError { e.to_string().into() })?
                .to_sql(ty, out),
            Self::Str(text) if is_text(ty) => {
                out.put_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            Self::Str(text) | Self::Uuid(text) if *ty == Type::UUID => uuid::Uuid::parse_str(text)
                .map_err(|e| -> BoxError { format!("`{text}` is not a UUID: {e}").into() })?
                .to_sql(ty, out),
            Self::Str(text) | Self::Decimal(text) if *ty == Type::NUMERIC => {
                decimal(text)?.to_sql(ty, out)
            }
            Self::Jsonb(json) if is_json(ty) => json_to_sql(json, ty, out),
            Self::Str(text) if is_json(ty) => json_to_sql(text.as_bytes(), ty, out),
            Self::Binary(bytes) if *ty == Type::BYTEA => bytes.as_slice().to_sql(ty, out),
            Self::Date(parts) if *ty == Type::DATE => date(*parts)?.to_sql(ty, out),
            Self::Time(parts) if *ty == Type::TIME => time(*parts)?.to_sql(ty, out),
            Self::Datetime(parts) if *ty == Type::TIMESTAMP => datetime(*parts)?.to_sql(ty, out),
            Self::Datetime(parts) if *ty == Type::TIMESTAMPTZ => {
                datetime(*parts)?.and_utc().to_sql(ty, out)
            }
            Self::Timestamp(seconds) if *ty == Type::TIMESTAMPTZ => {
                since_epoch(*seconds)?.to_sql(ty, out)
            }
            Self::Timestamp(seconds) if *ty == Type::TIMESTAMP => {
                since_epoch(*seconds)?.naive_utc().to_sql(ty, out)
            }
            Self::Timestamp(seconds) => integer((*seconds).into(), out),
            Self::RangeInt32(range) if *ty == Type::INT4_RANGE => {
                range_to_sql(range, |v, out| v.to_sql(&Type::INT4, out), out)
            }
            Self::RangeInt64(range) if *ty == Type::INT8_RANGE => {
                range_to_sql(range, |v, out| v.to_sql(&Type::INT8, out), out)
            }
            Self::RangeDecimal(range) if *ty == Type::NUM_RANGE => {
                range_to_sql(range, |v, out| decimal(v)?.to_sql(&Type::NUMERIC, out), out)
            }
            Self::ArrayInt32(items) if *ty == Type::INT4_ARRAY => items.to_sql(ty, out),
            Self::ArrayInt64(items) if *ty == Type::INT8_ARRAY => items.to_sql(ty, out),
            Self::ArrayDecimal(items) if *ty == Type::NUMERIC_ARRAY => items
                .iter()
                .map(|item| item.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?
                .to_sql(ty, out),
            Self::ArrayStr(items) if *ty == Type::TEXT_ARRAY || *ty == Type::VARCHAR_ARRAY => {
                items.to_sql(ty, out)
            }
            Self::Interval(interval) if *ty == Type::INTERVAL => {
                out.put_i64(interval.micros);
                out.put_i32(interval.days);
                out.put_i32(interval.months);
                Ok(IsNull::No)
            }
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, where a mismatch is explained.
        true
    }

    to_sql_checked!();
}

impl Value {
    /// The interfaces' name of this value's case, for errors.
    fn name(&self) -> &'static str {
        match self {
            Self::Boolean(_) => "a boolean",
            Self::Int8(_) | Self::Int16(_) | Self::Int32(_) | Self::Int64(_) => "an integer",
            Self::Uint8(_) | Self::Uint16(_) | Self::Uint32(_) | Self::Uint64(_) => "an integer",
            Self::Floating32(_) | Self::Floating64(_) => "a float",
            Self::Str(_) => "a string",
            Self::Binary(_) => "binary",
            Self::Date(_) => "a date",
            Self::Time(_) => "a time",
            Self::Datetime(_) => "a datetime",
            Self::Timestamp(_) => "a timestamp",
            Self::Uuid(_) => "a uuid",
            Self::Jsonb(_) => "jsonb",
            Self::Decimal(_) => "a decimal",
            Self::RangeInt32(_) | Self::RangeInt64(_) | Self::RangeDecimal(_) => "a range",
            Self::ArrayInt32(_) | Self::ArrayInt64(_) => "an array",
            Self::ArrayDecimal(_) | Self::ArrayStr(_) => "an array",
            Self::Interval(_) => "an interval",
            Self::Null => "null",
            Self::Unsupported(_) => "an unsupported value",
        }
    }
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match DataType::of(ty) {
            DataType::Boolean => Self::Boolean(bool::from_sql(ty, raw)?),
            DataType::Int8 => Self::Int8(i8::from_sql(ty, raw)?),
            DataType::Int16 => Self::Int16(i16::from_sql(ty, raw)?),
            DataType::Int32 => Self::Int32(i32::from_sql(ty, raw)?),
            DataType::Int64 => Self::Int64(i64::from_sql(ty, raw)?),
            DataType::Floating32 => Self::Floating32(f32::from_sql(ty, raw)?),
            DataType::Floating64 => Self::Floating64(f64::from_sql(ty, raw)?),
            DataType::Str => Self::Str(String::from_utf8(raw.to_vec())?),
            DataType::Binary => Self::Binary(raw.to_vec()),
            DataType::Date => {
                let date = NaiveDate::from_sql(ty, raw)?;
                Self::Date((date.year(), date.month() as u8, date.day() as u8))
            }
            DataType::Time => {
                let time = NaiveTime::from_sql(ty, raw)?;
                Self::Time((
                    time.hour() as u8,
                    time.minute() as u8,
                    time.second() as u8,
                    time.nanosecond(),
                ))
            }
            DataType::Datetime => {
                let at = if *ty == Type::TIMESTAMPTZ {
                    DateTime::<Utc>::from_sql(ty, raw)?.naive_utc()
                } else {
                    NaiveDateTime::from_sql(ty, raw)?
                };
                Self::Datetime((
                    at.year(),
                    at.month() as u8,
                    at.day() as u8,
                    at.hour() as u8,
                    at.minute() as u8,
                    at.second() as u8,
                    at.nanosecond(),
                ))
            }
            DataType::Uuid => Self::Uuid(uuid::Uuid::from_sql(ty, raw)?.to_string()),
            DataType::Jsonb => {
                Self::Jsonb(serde_json::to_vec(&serde_json::Value::from_sql(ty, raw)?)?)
            }
            DataType::Decimal => Self::Decimal(Decimal::from_sql(ty, raw)?.to_string()),
            DataType::RangeInt32 => Self::RangeInt32(range_from_sql(
                raw,
                |b| i32::from_sql(&Type::INT4, b),
                0,
                0,
            )?),
            DataType::RangeInt64 => Self::RangeInt64(range_from_sql(
                raw,
                |b| i64::from_sql(&Type::INT8, b),
                0,
                0,
            )?),
            DataType::RangeDecimal => Self::RangeDecimal(range_from_sql(
                raw,
                |b| Ok(Decimal::from_sql(&Type::NUMERIC, b)?.to_string()),
                "0".into(),
                "0".into(),
            )?),
            DataType::ArrayInt32 => Self::ArrayInt32(Vec::from_sql(ty, raw)?),
            DataType::ArrayInt64 => Self::ArrayInt64(Vec::from_sql(ty, raw)?),
            DataType::ArrayDecimal => Self::ArrayDecimal(
                Vec::<Option<Decimal>>::from_sql(ty, raw)?
                    .into_iter()
                    .map(|item| item.map(|d| d.to_string()))
                    .collect(),
            ),
            DataType::ArrayStr => Self::ArrayStr(Vec::from_sql(ty, raw)?),
            DataType::Interval => {
                let mut bytes = raw;
                if bytes.len() != 16 {
                    return Err("an interval is 16 bytes".into());
                }
                let mut take = |n: usize| {
                    let (head, tail) = bytes.split_at(n);
                    bytes = tail;
                    head.to_vec()
                };
                let micros = i64::from_be_bytes(take(8).try_into().expect("8 bytes"));
                let days = i32::from_be_bytes(take(4).try_into().expect("4 bytes"));
                let months = i32::from_be_bytes(take(4).try_into().expect("4 bytes"));
                Self::Interval(Interval {
                    micros,
                    days,
                    months,
                })
            }
            DataType::Other(_) => Self::Unsupported(raw.to_vec()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Self::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value, ty: Type) -> Value {
        let mut out = BytesMut::new();
        assert!(matches!(value.to_sql(&ty, &mut out).unwrap(), IsNull::No));
        Value::from_sql(&ty, &out).unwrap()
    }

    #[test]
    fn values_survive_the_binary_format() {
        for (value, ty) in [
            (Value::Int32(-7), Type::INT4),
            (Value::Str("héllo".into()), Type::TEXT),
            (Value::Date((2026, 11, 30)), Type::DATE),
            (Value::Time((23, 59, 58, 123_456_000)), Type::TIME),
            (
                Value::Datetime((1999, 12, 31, 23, 59, 59, 0)),
                Type::TIMESTAMPTZ,
            ),
            (
                Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
                Type::UUID,
            ),
            (Value::Decimal("-12345.678901".into()), Type::NUMERIC),
            (
                Value::RangeInt32((Some((1, BoundKind::Inclusive)), None)),
                Type::INT4_RANGE,
            ),
            (
                Value::RangeDecimal((
                    Some(("1.5".into(), BoundKind::Exclusive)),
                    Some(("2.5".into(), BoundKind::Inclusive)),
                )),
                Type::NUM_RANGE,
            ),
            (
                Value::ArrayInt64(vec![Some(1), None, Some(3)]),
                Type::INT8_ARRAY,
            ),
            (
                Value::ArrayStr(vec![Some("a".into()), None]),
                Type::TEXT_ARRAY,
            ),
            (
                Value::Interval(Interval {
                    micros: 1_500_000,
                    days: 2,
                    months: -3,
                }),
                Type::INTERVAL,
            ),
        ] {
            assert_eq!(round_trip(value.clone(), ty), value);
        }
    }

    #[test]
    fn integers_fill_wider_columns_and_refuse_narrower_ones() {
        assert_eq!(round_trip(Value::Int16(7), Type::INT8), Value::Int64(7));
        assert_eq!(round_trip(Value::Uint32(7), Type::INT8), Value::Int64(7));
        let mut out = BytesMut::new();
        let error = Value::Uint64(u64::MAX)
            .to_sql(&Type::INT8, &mut out)
            .err()
            .unwrap();
        assert!(error.to_string().contains("does not fit"), "{error}");
        let error = Value::Boolean(true)
            .to_sql(&Type::INT4, &mut out)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("cannot bind a boolean"),
            "{error}"
        );
    }

    #[test]
    fn a_timestamp_is_seconds_since_the_epoch() {
        assert_eq!(
            round_trip(Value::Timestamp(86_400), Type::TIMESTAMP),
            Value::Datetime((1970, 1, 2, 0, 0, 0, 0))
        );
        assert_eq!(
            round_trip(Value::Timestamp(86_400), Type::INT8),
            Value::Int64(86_400)
        );
    }
}
