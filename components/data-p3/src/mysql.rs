//! Outbound MySQL through spin-sdk 7's `mysql` (`spin:mysql/mysql@3.0.0`: asynchronous, rows
//! as a stream).

use spin_sdk::mysql::{Connection, Decode, Error, ParameterValue as P};

/// Runs `script` (one `query <SQL>` or `execute <SQL>` per line) on one connection to
/// `address`, answering one line per statement: a query's rows (`|`-separated values, `;`
/// between rows) read one by one, then its result; `ok` for an execute.
pub async fn script(address: &str, script: &str) -> Result<Vec<String>, Error> {
    let db = Connection::open(address).await?;
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
            db.execute(statement, []).await?;
            lines.push("ok".to_string());
        }
    }
    Ok(lines)
}

/// Every parameter type bound into a column of its MySQL type and read back with a parameter
/// (the binary protocol): answers the column types, then `round trip exact` or each value
/// that came back different.
pub async fn round_trip(address: &str) -> Result<String, Error> {
    let db = Connection::open(address).await?;
    db.execute("DROP TABLE IF EXISTS kinds3", []).await?;
    db.execute(
        "CREATE TABLE kinds3 (i1 TINYINT, i2 SMALLINT, i4 INT, i8 BIGINT, \
         u1 TINYINT UNSIGNED, u2 SMALLINT UNSIGNED, u4 INT UNSIGNED, u8 BIGINT UNSIGNED, \
         f4 FLOAT, f8 DOUBLE, t VARCHAR(40), bin BLOB, nothing INT)",
        [],
    )
    .await?;
    let params = vec![
        P::Int8(i8::MAX),
        P::Int16(i16::MIN),
        P::Int32(i32::MAX),
        P::Int64(i64::MIN),
        P::Uint8(0),
        P::Uint16(1),
        P::Uint32(u32::MAX),
        P::Uint64(u64::MAX),
        P::Floating32(-0.5),
        P::Floating64(1e-300),
        P::Str("varchar 🦀".into()),
        P::Binary(vec![255, 0, 7]),
        P::DbNull,
    ];
    let placeholders = vec!["?"; params.len()].join(", ");
    db.execute(format!("INSERT INTO kinds3 VALUES ({placeholders})"), params.clone())
        .await?;
    let result = db
        .query("SELECT * FROM kinds3 WHERE i1 = ?", [P::Int8(i8::MAX)])
        .await?;
    let types: Vec<String> = result
        .columns()
        .iter()
        .map(|column| format!("{}:{:?}", column.name, column.data_type))
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
        "{} {}",
        rows[0].get::<String>("t").unwrap_or_default(),
        rows[0].get::<u64>("u8").unwrap_or_default(),
    );
    Ok(format!(
        "{}\n{decoded}\n{}",
        types.join(","),
        if differences.is_empty() {
            "round trip exact".to_string()
        } else {
            differences.join("\n")
        }
    ))
}

/// Consumes `query`'s row stream and result future in every order the SDK allows.
pub async fn consumption_orders(address: &str) -> Result<String, Error> {
    let db = Connection::open(address).await?;
    db.execute("DROP TABLE IF EXISTS orders", []).await?;
    db.execute("CREATE TABLE orders (n INT)", []).await?;
    db.execute("INSERT INTO orders VALUES (1), (2), (3)", []).await?;
    every_consumption_order!(db)
}
