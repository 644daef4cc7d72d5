//! Outbound PostgreSQL through spin-sdk 7's `pg` (`spin:postgres@4.2.0`: `open-async`,
//! `connection-builder`, the streamed `query-async`).

use spin_sdk::pg::{
    Connection, Decode, Error, Interval, OpenOptions, ParameterValue as P, RangeBoundKind,
};

/// Opens `address`, through the builder when `builder` is set (as `open_with_options` does).
async fn open(address: &str, builder: bool) -> Result<Connection, Error> {
    if builder {
        Connection::open_with_options(address, OpenOptions::default()).await
    } else {
        Connection::open(address).await
    }
}

/// Runs `script` (one `query <SQL>` or `execute <SQL>` per line) on one connection, answering
/// one line per statement: a query's rows (`|`-separated values, `;` between rows) read one by
/// one, then its result; an execute's row count.
pub async fn script(address: &str, builder: bool, script: &str) -> Result<Vec<String>, Error> {
    let db = open(address, builder).await?;
    let mut lines = Vec::new();
    for line in script.lines().filter(|line| !line.trim().is_empty()) {
        let (verb, statement) = line.split_once(' ').unwrap_or((line, ""));
        if verb == "query" {
            let mut result = db.query(statement, []).await?;
            let mut rows = Vec::new();
            while let Some(row) = result.next().await {
                let values: Vec<String> = (0..result.columns().len())
                    .map(|index| format!("{:?}", row[index]))
                    .collect();
                rows.push(values.join("|"));
            }
            result.result().await?;
            lines.push(rows.join(";"));
        } else {
            lines.push(db.execute(statement, []).await?.to_string());
        }
    }
    Ok(lines)
}

/// Consumes `query-async`'s row stream and result future in every order the SDK allows.
pub async fn consumption_orders(address: &str) -> Result<String, Error> {
    let db = open(address, false).await?;
    db.execute("DROP TABLE IF EXISTS orders", []).await?;
    db.execute("CREATE TABLE orders (n INT4)", []).await?;
    db.execute("INSERT INTO orders VALUES (1), (2), (3)", [])
        .await?;
    every_consumption_order!(db)
}

/// Every 4.2 type, bound as a parameter and read back: answers the column types, then
/// `round trip exact` or each value that came back different.
pub async fn round_trip(address: &str) -> Result<String, Error> {
    let db = open(address, true).await?;
    db.execute("DROP TABLE IF EXISTS kinds", []).await?;
    db.execute(
        "CREATE TABLE kinds (b BOOL, i2 INT2, i4 INT4, i8 INT8, f4 FLOAT4, f8 FLOAT8, t TEXT, \
         v VARCHAR(40), bin BYTEA, d DATE, tm TIME, ts TIMESTAMP, u UUID, j JSONB, n NUMERIC, \
         r4 INT4RANGE, r8 INT8RANGE, rn NUMRANGE, a4 INT4[], a8 INT8[], an NUMERIC[], \
         at TEXT[], iv INTERVAL, nothing TEXT)",
        [],
    )
    .await?;
    let params: Vec<P> = vec![
        false.into(),
        i16::MAX.into(),
        i32::MIN.into(),
        i64::MAX.into(),
        (-0.5f32).into(),
        1e-300f64.into(),
        "text with emoji 🦀".to_string().into(),
        "varchar".to_string().into(),
        vec![255u8, 0, 7].into(),
        P::Date((1, 1, 1)),
        P::Time((0, 0, 0, 1_000)),
        P::Datetime((2038, 1, 19, 3, 14, 8, 500_000_000)),
        P::Uuid("00000000-0000-0000-0000-000000000001".into()),
        P::Jsonb(br#"{"k":null}"#.to_vec()),
        P::Decimal("0.000001".into()),
        (..7).into(),
        (3i64..4).into(),
        P::RangeDecimal((None, Some(("9.99".into(), RangeBoundKind::Exclusive)))),
        P::ArrayInt32(vec![None, Some(-1)]),
        vec![i64::MIN].into(),
        P::ArrayDecimal(vec![Some("-1.10".into())]),
        P::ArrayStr(vec![None, Some("x".into())]),
        Interval {
            micros: -1,
            days: 0,
            months: 12,
        }
        .into(),
        P::DbNull,
    ];
    let placeholders: Vec<String> = (1..=params.len()).map(|n| format!("${n}")).collect();
    let inserted = db
        .execute(
            format!("INSERT INTO kinds VALUES ({})", placeholders.join(", ")),
            params.clone(),
        )
        .await?;
    let result = db.query("SELECT * FROM kinds", []).await?;
    let types: Vec<String> = result
        .columns()
        .iter()
        .map(|column| format!("{:?}", column.data_type).replace("DbDataType::", ""))
        .collect();
    let rows = result.collect().await?;
    let mut differences = Vec::new();
    for (index, sent) in params.iter().enumerate() {
        let sent = format!("{sent:?}").replace("ParameterValue::", "");
        let read = format!("{:?}", rows[0][index]).replace("DbValue::", "");
        if sent != read {
            differences.push(format!("sent {sent}, read {read}"));
        }
    }
    let decoded = format!(
        "{} {} {:?}",
        String::decode(&rows[0][6])?,
        i64::decode(&rows[0][3])?,
        Option::<String>::decode(&rows[0][23])?,
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
