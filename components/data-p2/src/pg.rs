//! Outbound PostgreSQL through spin-sdk 5's three interfaces: `pg` (`fermyon:spin/postgres@2.0.0`),
//! `pg3` (`spin:postgres@3.0.0`) and `pg4` (`spin:postgres@4.0.0`).

/// Runs `script` (one `query <SQL>` or `execute <SQL>` per line) on one connection to
/// `address` through each version's module, answering one line per statement: a query's rows
/// (`|`-separated values, `;` between rows), an execute's row count.
macro_rules! script_runner {
    ($name:ident, $module:path) => {
        pub fn $name(address: &str, script: &str) -> Result<Vec<String>, String> {
            use $module as pg;
            let db = pg::Connection::open(address).map_err(|e| format!("{e:?}"))?;
            let mut lines = Vec::new();
            for line in script.lines().filter(|line| !line.trim().is_empty()) {
                let (verb, statement) = line.split_once(' ').unwrap_or((line, ""));
                lines.push(match verb {
                    "query" => {
                        let set = db.query(statement, &[]).map_err(|e| format!("{e:?}"))?;
                        set.rows
                            .iter()
                            .map(|row| {
                                row.iter()
                                    .map(|value| format!("{value:?}"))
                                    .collect::<Vec<_>>()
                                    .join("|")
                            })
                            .collect::<Vec<_>>()
                            .join(";")
                    }
                    _ => db
                        .execute(statement, &[])
                        .map_err(|e| format!("{e:?}"))?
                        .to_string(),
                });
            }
            Ok(lines)
        }
    };
}

script_runner!(script_v2, spin_sdk::pg);
script_runner!(script_v3, spin_sdk::pg3);
script_runner!(script_v4, spin_sdk::pg4);

/// Every `pg4` type, bound as a parameter and read back: answers the column types, then
/// `round trip exact` or each value that came back different.
pub fn round_trip(address: &str) -> Result<String, String> {
    use spin_sdk::pg4::{Connection, Decode, Interval, ParameterValue as P, RangeBoundKind};
    let fail = |e: spin_sdk::pg4::PgError| format!("{e:?}");
    let db = Connection::open(address).map_err(fail)?;
    db.execute("DROP TABLE IF EXISTS kinds", &[]).map_err(fail)?;
    db.execute(
        "CREATE TABLE kinds (b BOOL, i2 INT2, i4 INT4, i8 INT8, f4 FLOAT4, f8 FLOAT8, t TEXT, \
         v VARCHAR(40), bin BYTEA, d DATE, tm TIME, ts TIMESTAMP, u UUID, j JSONB, n NUMERIC, \
         r4 INT4RANGE, r8 INT8RANGE, rn NUMRANGE, a4 INT4[], a8 INT8[], an NUMERIC[], \
         at TEXT[], iv INTERVAL, nothing TEXT)",
        &[],
    )
    .map_err(fail)?;
    let params = vec![
        true.into(),
        i16::MIN.into(),
        i32::MAX.into(),
        i64::MIN.into(),
        1.5f32.into(),
        (-2.25e300f64).into(),
        "nul-free text, emoji 🦀".to_string().into(),
        "varchar".to_string().into(),
        vec![0u8, 1, 254, 255].into(),
        P::Date((2026, 11, 30)),
        P::Time((23, 59, 58, 123_456_000)),
        P::Datetime((1999, 12, 31, 23, 59, 59, 0)),
        P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        P::Jsonb(br#"{"a":[1,2,"x"]}"#.to_vec()),
        P::Decimal("-12345.678900".into()),
        (1..10).into(),
        (-5i64..).into(),
        P::RangeDecimal((
            Some(("1.5".into(), RangeBoundKind::Exclusive)),
            Some(("2.5".into(), RangeBoundKind::Inclusive)),
        )),
        vec![1, 2, 3].into(),
        P::ArrayInt64(vec![Some(1), None, Some(i64::MAX)]),
        P::ArrayDecimal(vec![Some("0.1".into()), None]),
        vec!["a".to_string(), "b c".to_string()].into(),
        Interval {
            micros: 1_500_000,
            days: 2,
            months: -3,
        }
        .into(),
        P::DbNull,
    ];
    let placeholders: Vec<String> = (1..=params.len()).map(|n| format!("${n}")).collect();
    let inserted = db
        .execute(
            &format!("INSERT INTO kinds VALUES ({})", placeholders.join(", ")),
            &params,
        )
        .map_err(fail)?;
    let set = db.query("SELECT * FROM kinds", &[]).map_err(fail)?;
    let types: Vec<String> = set
        .columns
        .iter()
        .map(|column| format!("{:?}", column.data_type).replace("DbDataType::", ""))
        .collect();
    let mut differences = Vec::new();
    for (sent, read) in params.iter().zip(&set.rows[0]) {
        let sent = format!("{sent:?}").replace("ParameterValue::", "");
        let read = format!("{read:?}").replace("DbValue::", "");
        if sent != read {
            differences.push(format!("sent {sent}, read {read}"));
        }
    }
    // The SDK's own decoders read what came back.
    let row = &set.rows[0];
    let decoded = format!(
        "{} {} {:?}",
        String::decode(&row[6]).map_err(|e| format!("{e:?}"))?,
        i64::decode(&row[3]).map_err(|e| format!("{e:?}"))?,
        Option::<String>::decode(&row[23]).map_err(|e| format!("{e:?}"))?,
    );
    Ok(format!(
        "inserted {inserted}\n{}\n{decoded}\n{}",
        types.join(","),
        if differences.is_empty() {
            "round trip exact".to_string()
        } else {
            differences.join("\n")
        }
    ))
}
