//! Outbound MySQL against a real MariaDB server the test starts: spin-sdk 5 guests through
//! `fermyon:spin/mysql@2.0.0`, spin-sdk 7 guests through `spin:mysql/mysql@3.0.0` (rows as a
//! stream, consumed in every order); every parameter type bound and read back;
//! `allowed_outbound_hosts` deciding before any connection.

use crate::harness::{AppDir, ForbiddenPort, HEADER, Ledge, MariadbServer, client};

/// Posts `script` to `route` with `address` as the guest's MySQL address.
fn run(ledge: &Ledge, route: &str, address: &str, script: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at(route))
        .header("mysql-address", address)
        .body(script.to_string())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// A denied address is `connection-failed("address ... is not permitted")`, and the server
/// there never sees a connection.
fn assert_denied(ledge: &Ledge, route: &str) {
    let forbidden = ForbiddenPort::bind();
    let port = forbidden.port;
    let address = format!("mysql://ledge:secret@127.0.0.1:{port}/app");
    let (status, body) = run(ledge, route, &address, "query SELECT 1");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains(&format!(
            "ConnectionFailed(\"address {address} is not permitted\")"
        )),
        "{body}"
    );
    forbidden.assert_untouched();
}

/// The column types both guests' round trips read back, from `TINYINT` to `BIGINT UNSIGNED`,
/// `FLOAT`, `DOUBLE`, text and binary.
const NUMERIC_TYPES: &str = "i1:DbDataType::Int8,i2:DbDataType::Int16,i4:DbDataType::Int32,\
    i8:DbDataType::Int64,u1:DbDataType::Uint8,u2:DbDataType::Uint16,u4:DbDataType::Uint32,\
    u8:DbDataType::Uint64,f4:DbDataType::Floating32,f8:DbDataType::Floating64";

#[test]
fn spin_sdk_5_and_7_guests_use_mysql_2_and_3() {
    let server = MariadbServer::start();
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/p2/...\"\ncomponent = \"p2\"\n\
         [[trigger.http]]\nroute = \"/p3/...\"\ncomponent = \"p3\"\n\
         [component.p2]\nsource = \"{{data2}}\"\n\
         allowed_outbound_hosts = [\"mysql://127.0.0.1:{port}\"]\n\
         [component.p3]\nsource = \"{{data3}}\"\n\
         allowed_outbound_hosts = [\"mysql://127.0.0.1:{port}\"]\n",
        port = server.port
    ));
    let ledge = app.up(&[]);
    let address = server.address();

    for guest in ["p2", "p3"] {
        let table = format!("notes_{guest}");
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &address,
            &format!(
                "execute CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT, \
                 stars INT, at DATETIME, day DATE, price DECIMAL(8,2))\n\
                 execute INSERT INTO {table} (body, stars, at, day, price) VALUES \
                 ('first', 5, '2026-11-30 00:00:00', '2026-11-30', 12.5), \
                 ('second', NULL, NULL, NULL, NULL)\n\
                 query SELECT body, stars, at, day, price FROM {table} ORDER BY id\n\
                 execute UPDATE {table} SET stars = 1"
            ),
        );
        assert_eq!(status, 200, "{guest}: {body}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines,
            [
                "ok",
                "ok",
                "DbValue::Str(\"first\")|DbValue::Int32(5)|DbValue::Str(\"2026-11-30 00:00:00\")\
                 |DbValue::Str(\"2026-11-30\")|DbValue::Str(\"12.50\");\
                 DbValue::Str(\"second\")|DbValue::DbNull|DbValue::DbNull|DbValue::DbNull\
                 |DbValue::DbNull",
                "ok"
            ],
            "{guest}"
        );
        // The rows are in the server.
        assert_eq!(
            server.sql(&format!(
                "SELECT group_concat(body, ':', stars ORDER BY id) FROM app.{table}"
            )),
            Ok("first:1,second:1".into())
        );
        // A failing statement is `query-failed` with the server's message.
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &address,
            "query SELECT * FROM missing_table",
        );
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("QueryFailed"), "{guest}: {body}");
        assert!(
            body.contains("app.missing_table' doesn't exist"),
            "{guest}: {body}"
        );
        // Wrong credentials are `connection-failed` with the server's reason.
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &address.replace("secret", "wrong"),
            "query SELECT 1",
        );
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("ConnectionFailed"), "{guest}: {body}");
        assert!(
            body.contains("Access denied for user 'ledge'"),
            "{guest}: {body}"
        );
        assert_denied(&ledge, &format!("/{guest}/mysql"));
        // ledge dials only the address it checked: an address naming the server's unix
        // socket is refused, and one preferring it still goes over TCP (the server sees a
        // TCP client, `host:port`).
        let through_socket = format!("{address}?socket={}", server.socket().display());
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &through_socket,
            "query SELECT 1",
        );
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("is not permitted"), "{guest}: {body}");
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &format!("{address}?prefer_socket=true"),
            "query SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()",
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(':'), "{guest} connected without TCP: {body}");
        // Times keep the precision of their column.
        let (status, body) = run(
            &ledge,
            &format!("/{guest}/mysql"),
            &address,
            "query SELECT CAST('2026-11-30 01:02:03.456' AS DATETIME(3)), CAST('-01:02:03' AS TIME)",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body, "DbValue::Str(\"2026-11-30 01:02:03.456\")|DbValue::Str(\"-01:02:03\")",
            "{guest}"
        );
    }

    // Every parameter type, bound and read back.
    let (status, body) = run(&ledge, "/p2/mysql-types", &address, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "b:DbDataType::Int8,{NUMERIC_TYPES},t:DbDataType::Str,bin:DbDataType::Binary,\
             nothing:DbDataType::Str\ntrue text with emoji 🦀 None\n\
             18446744073709551615 text with emoji 🦀\nround trip exact"
        )
    );
    let (status, body) = run(&ledge, "/p3/mysql-types", &address, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "{NUMERIC_TYPES},t:DbDataType::Str,bin:DbDataType::Binary,nothing:DbDataType::Int32\n\
             varchar 🦀 18446744073709551615\nround trip exact"
        )
    );

    // spin-sdk 7: the rows stream and the result future, consumed in every order.
    let (status, body) = run(&ledge, "/p3/mysql-orders", &address, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "result-only\nstream-then-result 3\nresult-then-stream 3\nhalfway DbValue::Int32(1)\n\
         stream-dropped\nboth-dropped 3"
    );
}
