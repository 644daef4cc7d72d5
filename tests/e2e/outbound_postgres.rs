//! Outbound PostgreSQL against a real server the test starts: spin-sdk 5 guests through
//! `fermyon:spin/postgres@2.0.0`, `spin:postgres@3.0.0` and `@4.0.0`, spin-sdk 7 guests through
//! `@4.2.0` (`open-async`, `connection-builder`, `query-async` consumed in every order); every
//! 4.x type bound and read back; `allowed_outbound_hosts` deciding before any connection.

use crate::harness::{AppDir, ForbiddenPort, HEADER, Ledge, PostgresServer, client};

/// Posts `script` to the guest's `route` with `address` as the connection string.
fn run(ledge: &Ledge, route: &str, address: &str, script: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at(&format!("/data/{route}")))
        .header("pg-address", address)
        .body(script.to_string())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Serves `guest` allowed to reach `server` only.
fn app(guest: &str, server: &PostgresServer) -> (AppDir, Ledge) {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{guest}\"\n\
         allowed_outbound_hosts = [\"postgres://127.0.0.1:{}\"]\n",
        server.port
    ));
    let ledge = app.up(&[]);
    (app, ledge)
}

/// What every 4.x round trip reads back as column types.
const COLUMN_TYPES: &str = "Boolean,Int16,Int32,Int64,Floating32,Floating64,Str,Str,Binary,\
    Date,Time,Datetime,Uuid,Jsonb,Decimal,RangeInt32,RangeInt64,RangeDecimal,ArrayInt32,\
    ArrayInt64,ArrayDecimal,ArrayStr,Interval,Str";

/// A denied address is `connection-failed("address ... is not permitted")`, and the server
/// there never sees a connection.
fn assert_denied(ledge: &Ledge, route: &str) {
    let forbidden = ForbiddenPort::bind();
    let port = forbidden.port;
    let address = format!("postgres://postgres@127.0.0.1:{port}/postgres");
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

#[test]
fn p2_spin_sdk_5_guests_use_postgres_2_3_and_4() {
    let server = PostgresServer::start();
    let (_app, ledge) = app("{data2}", &server);
    for version in ["v2", "v3", "v4"] {
        let table = format!("notes_{version}");
        let (status, body) = run(
            &ledge,
            &format!("pg/{version}"),
            &server.address(),
            &format!(
                "execute CREATE TABLE {table} (id SERIAL PRIMARY KEY, body TEXT, stars INT4)\n\
                 execute INSERT INTO {table} (body, stars) VALUES ('first', 5), ('second', NULL)\n\
                 query SELECT body, stars FROM {table} ORDER BY id\n\
                 execute UPDATE {table} SET stars = 1"
            ),
        );
        assert_eq!(status, 200, "{version}: {body}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines,
            [
                "0",
                "2",
                "DbValue::Str(\"first\")|DbValue::Int32(5);DbValue::Str(\"second\")|DbValue::DbNull",
                "2"
            ],
            "{version}"
        );
        // The rows are in the server.
        assert_eq!(
            server.psql(&format!(
                "SELECT string_agg(body || ':' || stars, ',' ORDER BY id) FROM {table}"
            )),
            Ok("first:1,second:1".into())
        );
        // A failing statement is `query-failed`; 4.0.0 carries the server's SQLSTATE.
        let (status, body) = run(
            &ledge,
            &format!("pg/{version}"),
            &server.address(),
            "query SELECT * FROM missing_table",
        );
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("QueryFailed"), "{version}: {body}");
        assert!(body.contains("missing_table"), "{version}: {body}");
        if version == "v4" {
            assert!(body.contains("code: \"42P01\""), "{body}");
        }
    }
    let (status, body) = run(&ledge, "pg-types", &server.address(), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "inserted 1\n{COLUMN_TYPES}\nnul-free text, emoji 🦀 -9223372036854775808 None\nround trip exact"
        )
    );
    assert_denied(&ledge, "pg/v2");
    assert_denied(&ledge, "pg/v4");
}

#[test]
fn p3_spin_sdk_7_guests_use_postgres_4_2() {
    let server = PostgresServer::start();
    let (_app, ledge) = app("{data3}", &server);
    for how in ["open", "builder"] {
        let table = format!("notes_{how}");
        let (status, body) = run(
            &ledge,
            &format!("pg/{how}"),
            &server.address(),
            &format!(
                "execute CREATE TABLE {table} (id SERIAL PRIMARY KEY, body TEXT)\n\
                 execute INSERT INTO {table} (body) VALUES ('one'), ('two'), ('three')\n\
                 query SELECT id, body FROM {table} WHERE id > 1 ORDER BY id"
            ),
        );
        assert_eq!(status, 200, "{how}: {body}");
        assert_eq!(
            body,
            "0\n3\nDbValue::Int32(2)|DbValue::Str(\"two\");DbValue::Int32(3)|DbValue::Str(\"three\")",
            "{how}"
        );
    }
    let (status, body) = run(&ledge, "pg-orders", &server.address(), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "result-only\nstream-then-result 3\nresult-then-stream 3\nhalfway DbValue::Int32(1)\n\
         stream-dropped\nboth-dropped 3"
    );
    let (status, body) = run(&ledge, "pg-types", &server.address(), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            "inserted 1\n{COLUMN_TYPES}\ntext with emoji 🦀 9223372036854775807 None\nround trip exact"
        )
    );
    let (status, body) = run(
        &ledge,
        "pg/open",
        &server.address(),
        "execute INSERT INTO missing_table VALUES (1)",
    );
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("code: \"42P01\""), "{body}");
    assert_denied(&ledge, "pg/open");
    assert_denied(&ledge, "pg/builder");
}
