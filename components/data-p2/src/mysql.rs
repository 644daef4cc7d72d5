//! Outbound MySQL through spin-sdk 5's `mysql` (`fermyon:spin/mysql@2.0.0`).

use spin_sdk::mysql::{Connection, Decode, ParameterValue as P};

fn text(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

/// Runs `script` (one `query <SQL>` or `execute <SQL>` per line) on one connection to
/// `address`, answering one line per statement: a query's rows (`|`-separated values, `;`
/// between rows), `ok` for an execute.
pub fn script(address: &str, script: &str) -> Result<Vec<String>, String> {
    let db = Connection::open(address).map_err(text)?;
    let mut lines = Vec::new();
    for line in script.lines().filter(|line| !line.trim().is_empty()) {
        let (verb, statement) = line.split_once(' ').unwrap_or((line, ""));
        lines.push(if verb == "query" {
            let set = db.query(statement, &[]).map_err(text)?;
            set.rows
                .iter()
                .map(|row| row.iter().map(text).collect::<Vec<_>>().join("|"))
                .collect::<Vec<_>>()
                .join(";")
        } else {
            db.execute(statement, &[]).map_err(text)?;
            "ok".to_string()
        });
    }
    Ok(lines)
}

/// Every parameter type bound into a column of its MySQL type and read back: answers the
/// column types, a few values decoded as the SDK documents, then `round trip exact` or each
/// value that came back different.
pub fn round_trip(address: &str) -> Result<String, String> {
    let db = Connection::open(address).map_err(text)?;
    db.execute("DROP TABLE IF EXISTS kinds", &[]).map_err(text)?;
    db.execute(
        "CREATE TABLE kinds (b BOOLEAN, i1 TINYINT, i2 SMALLINT, i4 INT, i8 BIGINT, \
         u1 TINYINT UNSIGNED, u2 SMALLINT UNSIGNED, u4 INT UNSIGNED, u8 BIGINT UNSIGNED, \
         f4 FLOAT, f8 DOUBLE, t TEXT, bin VARBINARY(8), nothing VARCHAR(4))",
        &[],
    )
    .map_err(text)?;
    let params = [
        P::Boolean(true),
        P::Int8(i8::MIN),
        P::Int16(i16::MAX),
        P::Int32(i32::MIN),
        P::Int64(i64::MAX),
        P::Uint8(u8::MAX),
        P::Uint16(u16::MAX),
        P::Uint32(u32::MAX),
        P::Uint64(u64::MAX),
        P::Floating32(1.5),
        P::Floating64(-2.25e300),
        P::Str("text with emoji 🦀".into()),
        P::Binary(vec![0, 1, 254, 255]),
        P::DbNull,
    ];
    let placeholders = vec!["?"; params.len()].join(", ");
    db.execute(&format!("INSERT INTO kinds VALUES ({placeholders})"), &params)
        .map_err(text)?;
    let set = db.query("SELECT * FROM kinds", &[]).map_err(text)?;
    let types: Vec<String> = set
        .columns
        .iter()
        .map(|column| format!("{}:{:?}", column.name, column.data_type))
        .collect();
    let row = &set.rows[0];
    let mut differences = Vec::new();
    // BOOLEAN is TINYINT(1): true reads back as 1.
    for (index, sent) in params.iter().enumerate().skip(1) {
        let sent = text(sent).replace("ParameterValue::", "");
        let read = text(&row[index]).replace("DbValue::", "");
        if sent != read {
            differences.push(format!("sent {sent}, read {read}"));
        }
    }
    let decoded = format!(
        "{} {} {:?}",
        bool::decode(&row[0]).map_err(text)?,
        String::decode(&row[11]).map_err(text)?,
        Option::<String>::decode(&row[13]).map_err(text)?,
    );
    // The same row selected with a parameter goes through the binary protocol.
    let by_param = db
        .query("SELECT u8, t FROM kinds WHERE i4 = ?", &[P::Int32(i32::MIN)])
        .map_err(text)?;
    Ok(format!(
        "{}\n{decoded}\n{} {}\n{}",
        types.join(","),
        u64::decode(&by_param.rows[0][0]).map_err(text)?,
        String::decode(&by_param.rows[0][1]).map_err(text)?,
        if differences.is_empty() {
            "round trip exact".to_string()
        } else {
            differences.join("\n")
        }
    ))
}
