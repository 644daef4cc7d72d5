//! The SQL tier as a Spin user relies on it: async results consumed in every order spin-sdk 7
//! allows, transactions across `execute` calls through spin-sdk 5 (p2) and 7 (p3) guests, and
//! slow statements that end at the request timeout without stalling the server.

use std::time::{Duration, Instant};

use crate::harness::{AppDir, HEADER, Ledge, client, get};

/// An app with the data guest `guest` at `/data/...` (granted the default store and database)
/// and the p3 hello at `/hello`.
fn sql_app(guest: &str) -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n\
         [component.data]\nsource = \"{guest}\"\nkey_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n\
         [component.hello]\nsource = \"{{hello}}\"\n"
    ))
}

/// Runs `script` (one statement per line, on one connection) through the data guest.
fn sql(ledge: &Ledge, script: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at("/data/sql/default"))
        .body(script.to_string())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn count(ledge: &Ledge) -> String {
    let (status, body) = sql(ledge, "SELECT count(*) AS n FROM tx");
    assert_eq!(status, 200, "{body}");
    body.lines().nth(1).unwrap().to_string()
}

#[test]
fn p3_guests_consume_async_results_in_every_order() {
    let app = sql_app("{data3}");
    let ledge = app.up(&[]);
    assert_eq!(
        get(&ledge.at("/data/sql-orders/default")),
        (
            200,
            "stream-then-result 3\nresult-then-stream 3\nhalfway [Value::Integer(1)]\n\
             stream-dropped\nboth-dropped [Value::Integer(3)]"
                .into()
        )
    );
    for key in ["a", "b"] {
        let response = client()
            .put(ledge.at(&format!("/data/kv/default/{key}")))
            .body("v")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        get(&ledge.at("/data/kv-orders/default")),
        (
            200,
            "stream-then-result 2\nresult-then-stream 2\nhalfway a\nstream-dropped\nboth-dropped 2"
                .into()
        )
    );
}

/// Whether some connection holds the write lock of the SQLite file at `path`, asked as another
/// SQLite connection would ask.
fn write_locked(path: &std::path::Path) -> bool {
    let probe = rusqlite::Connection::open(path).unwrap();
    probe.busy_timeout(Duration::ZERO).unwrap();
    match probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
        Ok(()) => false,
        Err(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => true,
        Err(error) => panic!("{error}"),
    }
}

fn transactions_suite(guest: &str) {
    let app = sql_app(guest);
    // A short busy timeout, so the second transaction below is refused sooner than the
    // default 5 s.
    let config = app.dir.path().join("runtime-config.toml");
    std::fs::write(
        &config,
        "[sqlite_database.default]\ntype = \"spin\"\nbusy_timeout_ms = 1000\n",
    )
    .unwrap();
    let ledge = app.up(&["--runtime-config-file", config.to_str().unwrap()]);
    assert_eq!(sql(&ledge, "CREATE TABLE tx (s TEXT)").0, 200);

    // Commit: both writes, and `last_insert_rowid`/`changes` inside the transaction are the
    // connection's own.
    assert_eq!(
        sql(
            &ledge,
            "BEGIN\nINSERT INTO tx VALUES ('a')\nINSERT INTO tx VALUES ('b')\n\
             SELECT last_insert_rowid() AS id, changes() AS n"
        ),
        (200, "id,n\n[Value::Integer(2), Value::Integer(1)]".into()),
        "read inside the transaction; then the request ends without COMMIT"
    );
    assert_eq!(
        count(&ledge),
        "[Value::Integer(0)]",
        "dropped without COMMIT: rolled back"
    );
    assert_eq!(
        sql(
            &ledge,
            "BEGIN\nINSERT INTO tx VALUES ('a')\nINSERT INTO tx VALUES ('b')\nCOMMIT\n\
             SELECT count(*) AS n FROM tx"
        ),
        (200, "n\n[Value::Integer(2)]".into())
    );

    // Rollback, and a read inside the transaction sees its own delete.
    assert_eq!(
        sql(
            &ledge,
            "BEGIN\nDELETE FROM tx\nSELECT count(*) AS n FROM tx"
        ),
        (200, "n\n[Value::Integer(0)]".into())
    );
    assert_eq!(
        sql(
            &ledge,
            "BEGIN\nDELETE FROM tx\nROLLBACK\nSELECT count(*) AS n FROM tx"
        ),
        (200, "n\n[Value::Integer(2)]".into())
    );

    // A trap inside a transaction rolls it back and frees the writer for the next request.
    assert_eq!(
        sql(&ledge, "BEGIN\nINSERT INTO tx VALUES ('trapped')\n!trap").0,
        500
    );
    assert_eq!(
        sql(
            &ledge,
            "INSERT INTO tx VALUES ('c')\nSELECT count(*) AS n FROM tx"
        ),
        (200, "n\n[Value::Integer(3)]".into())
    );

    // Two transactions at once: the second connection's write waits for the busy timeout
    // (1 s here; the first holds the writer for 4 s) and is told the database is locked;
    // reads outside see only committed rows.
    let database = app.dir.path().join(".ledge/sqlite/default.db");
    std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            sql(
                &ledge,
                "BEGIN\nINSERT INTO tx VALUES ('first')\n!sleep 4000\nCOMMIT\n\
                 SELECT count(*) AS n FROM tx",
            )
        });
        while !write_locked(&database) {
            assert!(!first.is_finished(), "{:?}", first.join());
            std::thread::yield_now();
        }
        assert_eq!(count(&ledge), "[Value::Integer(3)]");
        let (status, body) = sql(&ledge, "BEGIN\nINSERT INTO tx VALUES ('second')\nCOMMIT");
        assert_eq!(status, 500);
        assert!(body.contains("database is locked"), "{body}");
        assert_eq!(
            first.join().unwrap(),
            (200, "n\n[Value::Integer(4)]".into())
        );
    });
}

#[test]
fn p2_transactions_span_execute_calls_as_on_one_sqlite_connection() {
    transactions_suite("{data2}");
}

#[test]
fn p3_transactions_span_execute_calls_as_on_one_sqlite_connection() {
    transactions_suite("{data3}");
}

/// A query that never ends on its own.
const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT count(*) FROM c";

#[test]
fn slow_queries_and_transactions_end_at_the_request_timeout_and_the_server_serves_on() {
    // spin-sdk 5 (p2): a fresh instance per request, each ended at its own timeout.
    let app = sql_app("{data2}");
    let ledge = app.up(&["--request-timeout", "1s"]);
    assert_eq!(sql(&ledge, "CREATE TABLE tx (s TEXT)").0, 200);
    let started = Instant::now();
    std::thread::scope(|scope| {
        // As many endless reads as there are reader connections, so a later read runs only if
        // they were all stopped.
        let queries: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| sql(&ledge, ENDLESS)))
            .collect();
        let hellos = client();
        for _ in 0..100 {
            let response = hellos.get(ledge.at("/hello")).send().unwrap();
            assert_eq!(response.status(), 200);
        }
        for query in queries {
            assert_eq!(query.join().unwrap().0, 504);
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the queries ended at the timeout, long before they would have on their own"
    );
    assert_eq!(
        sql(&ledge, "SELECT 42 AS answer"),
        (200, "answer\n[Value::Integer(42)]".into())
    );

    // A transaction left open past the request timeout is rolled back with its instance, and
    // frees the writer.
    assert_eq!(
        sql(
            &ledge,
            "BEGIN\nINSERT INTO tx VALUES ('late')\n!sleep 60000"
        )
        .0,
        504
    );
    assert_eq!(
        sql(
            &ledge,
            "INSERT INTO tx VALUES ('next')\nSELECT count(*) AS n FROM tx"
        ),
        (200, "n\n[Value::Integer(1)]".into())
    );
}

#[test]
fn spin_sdk_5_sqlite3_guests_link_to_the_sync_spin_sqlite_3_0_0() {
    let app = sql_app("{data2}");
    let ledge = app.up(&[]);
    let script = |body: &str| {
        let response = client()
            .post(ledge.at("/data/sql3/default"))
            .body(body.to_string())
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(
        script("CREATE TABLE t (s TEXT)\nINSERT INTO t VALUES ('a')\nINSERT INTO t VALUES ('b')"),
        (200, "\nrowid=2 changes=1".into())
    );
    assert_eq!(
        script("SELECT s FROM t ORDER BY s"),
        (
            200,
            "s\n[Value::Text(\"a\")]\n[Value::Text(\"b\")]\nrowid=0 changes=0".into()
        )
    );
}
