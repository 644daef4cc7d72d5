//! The data tier end to end: key-value, SQLite and variables through spin-sdk 5 (p2, sync
//! interfaces) and spin-sdk 7 (p3, async interfaces) guests, with and without grants.

use crate::harness::{AppDir, HEADER, Ledge, RedisServer, client, get};

/// An app with a granted component at `/granted/...` and an ungranted one at `/denied/...`.
fn data_app(guest: &str) -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[variables]\ngreeting = {{ default = \"hello\" }}\nsecret_key = {{ required = true, secret = true }}\n\
         [[trigger.http]]\nroute = \"/granted/...\"\ncomponent = \"granted\"\n\
         [[trigger.http]]\nroute = \"/denied/...\"\ncomponent = \"denied\"\n\
         [component.granted]\nsource = \"{guest}\"\nkey_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n\
         [component.granted.variables]\nmessage = \"{{{{ greeting }}}} there\"\nkey = \"{{{{ secret_key }}}}\"\n\
         [component.denied]\nsource = \"{guest}\"\n"
    ))
}

fn up(app: &AppDir, extra: &[&str]) -> Ledge {
    let mut args = vec!["--variable", "secret_key=s3cret"];
    args.extend_from_slice(extra);
    app.up(&args)
}

fn put(url: &str, body: impl Into<reqwest::blocking::Body>) -> (u16, String) {
    let response = client().put(url).body(body).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn post(url: &str, body: &str) -> (u16, String) {
    let response = client().post(url).body(body.to_string()).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn key_value_suite(ledge: &Ledge) {
    assert_eq!(
        put(&ledge.at("/granted/kv/default/greeting"), "hi"),
        (200, "ok".into())
    );
    assert_eq!(
        get(&ledge.at("/granted/kv/default/greeting")),
        (200, "hi".into())
    );
    assert_eq!(
        put(&ledge.at("/granted/kv/default/other"), "x"),
        (200, "ok".into())
    );
    assert_eq!(
        get(&ledge.at("/granted/kv/default")),
        (200, "greeting\nother".into())
    );
    assert_eq!(
        client()
            .delete(ledge.at("/granted/kv/default/other"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(&ledge.at("/granted/kv/default/other")),
        (404, "no such key".into())
    );
    // A value of exactly 1 MiB is kept; one byte more is refused, never truncated.
    assert_eq!(
        put(&ledge.at("/granted/kv/default/big"), vec![b'a'; 1 << 20]).0,
        200
    );
    let (status, body) = put(
        &ledge.at("/granted/kv/default/big"),
        vec![b'b'; (1 << 20) + 1],
    );
    assert_eq!(status, 500);
    assert!(body.contains("at most 1048576 bytes"), "{body}");
    assert_eq!(get(&ledge.at("/granted/kv/default/big")).1.len(), 1 << 20);
    // Not granted, or not a store the component lists: access denied.
    let (status, body) = get(&ledge.at("/denied/kv/default/greeting"));
    assert_eq!(status, 500);
    assert!(body.contains("AccessDenied"), "{body}");
    assert!(
        get(&ledge.at("/granted/kv/other-store/k"))
            .1
            .contains("AccessDenied")
    );
}

fn sqlite_suite(ledge: &Ledge) {
    assert_eq!(
        get(&ledge.at("/granted/sql-roundtrip/default")),
        (200, "round trip exact".into())
    );
    let (status, body) = post(&ledge.at("/granted/sql/default"), "SELEC nothing");
    assert_eq!(status, 500);
    assert!(
        body.contains("Io(") && body.contains("syntax error"),
        "{body}"
    );
    // The connection is still usable after an error.
    assert_eq!(
        post(&ledge.at("/granted/sql/default"), "SELECT 40 + 2 AS answer"),
        (200, "answer\n[Value::Integer(42)]".into())
    );
    // `last_insert_rowid()` and `changes()` asked as their own statement see the connection's
    // own write, though the read runs on another SQLite connection than the write.
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "CREATE TABLE IF NOT EXISTS ids (s TEXT)\nINSERT INTO ids VALUES ('a')\n\
             INSERT INTO ids VALUES ('b')\nSELECT last_insert_rowid() AS id"
        ),
        (200, "id\n[Value::Integer(2)]".into())
    );
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "UPDATE ids SET s = 'c'\nSELECT changes() AS changed"
        ),
        (200, "changed\n[Value::Integer(2)]".into())
    );
    let (status, body) = post(&ledge.at("/denied/sql/default"), "SELECT 1");
    assert_eq!(status, 500);
    assert!(body.contains("AccessDenied"), "{body}");
}

fn variables_suite(ledge: &Ledge) {
    assert_eq!(
        get(&ledge.at("/granted/var/message")),
        (200, "hello there".into())
    );
    assert_eq!(get(&ledge.at("/granted/var/key")), (200, "s3cret".into()));
    for bad in ["invalid-name", "invalid!name", "4invalidname"] {
        let (status, body) = get(&ledge.at(&format!("/granted/var/{bad}")));
        assert_eq!(status, 500);
        assert!(body.contains("InvalidName"), "{bad}: {body}");
    }
    assert!(
        get(&ledge.at("/granted/var/missing"))
            .1
            .contains("Undefined")
    );
    assert!(
        get(&ledge.at("/denied/var/message"))
            .1
            .contains("Undefined")
    );
    assert!(
        !ledge.stderr().contains("s3cret"),
        "secrets never reach the log"
    );
}

#[test]
fn p2_spin_sdk_5_guests_use_key_value_sqlite_and_variables() {
    let app = data_app("{data2}");
    let ledge = up(&app, &[]);
    key_value_suite(&ledge);
    sqlite_suite(&ledge);
    variables_suite(&ledge);
}

#[test]
fn p3_spin_sdk_7_guests_use_key_value_sqlite_and_variables() {
    let app = data_app("{data3}");
    let ledge = up(&app, &[]);
    key_value_suite(&ledge);
    sqlite_suite(&ledge);
    variables_suite(&ledge);
}

#[test]
fn a_missing_required_variable_stops_start_up() {
    let app = data_app("{data2}");
    let manifest = app.manifest();
    let (status, _, stderr) = crate::harness::run_ledge(&[
        "up",
        "-f",
        manifest.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("`secret_key` is required") && stderr.contains("SPIN_VARIABLE_SECRET_KEY"),
        "{stderr}"
    );
}

#[test]
fn acknowledged_sqlite_writes_survive_kill_9() {
    let app = data_app("{data2}");
    let ledge = up(
        &app,
        &["--sqlite", "CREATE TABLE IF NOT EXISTS acks (n INTEGER)"],
    );
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let ledge = &ledge;
            scope.spawn(move || {
                for i in 0..125 {
                    let n = worker * 1000 + i;
                    let (status, body) = post(
                        &ledge.at("/granted/sql/default"),
                        &format!("INSERT INTO acks VALUES ({n})"),
                    );
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    ledge.kill();
    let ledge = up(&app, &[]);
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "SELECT count(*) AS n, count(DISTINCT n) AS d FROM acks"
        ),
        (
            200,
            "n,d\n[Value::Integer(1000), Value::Integer(1000)]".into()
        )
    );
}

#[test]
fn concurrent_writes_commit_together_and_a_failing_one_fails_alone() {
    let app = data_app("{data2}");
    let ledge = up(
        &app,
        &[
            "--sqlite",
            "CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\
             INSERT OR IGNORE INTO names (name) VALUES ('taken')",
        ],
    );
    // 8 clients write at once, so their plain INSERTs share commits; every fifth one breaks
    // the UNIQUE constraint. Each guest connection asks for its own `last_insert_rowid()`.
    let written: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let ledge = &ledge;
                scope.spawn(move || {
                    let mut written = 0;
                    for i in 0..60 {
                        let name = match i % 5 {
                            0 => "taken".to_string(),
                            _ => format!("w{worker}-{i}"),
                        };
                        let (status, body) = post(
                            &ledge.at("/granted/sql/default"),
                            &format!(
                                "INSERT INTO names (name) VALUES ('{name}')\n\
                                 SELECT name FROM names WHERE id = last_insert_rowid()"
                            ),
                        );
                        if name == "taken" {
                            assert_eq!(status, 500, "{body}");
                            assert!(body.contains("UNIQUE constraint failed"), "{body}");
                        } else {
                            // The row id is this connection's own insert, batched or not.
                            let own = format!("name\n[Value::Text(\"{name}\")]");
                            assert_eq!((status, body), (200, own));
                            written += 1;
                        }
                    }
                    written
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(written, 8 * 48);
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "SELECT count(*) AS n FROM names"
        ),
        (200, format!("n\n[Value::Integer({})]", written + 1))
    );
}

#[test]
fn start_up_data_and_migrations_apply_once() {
    let app = data_app("{data2}");
    let migration = app.dir.path().join("001_shows.sql");
    std::fs::write(
        &migration,
        "CREATE TABLE shows (name TEXT); INSERT INTO shows VALUES ('opening night');",
    )
    .unwrap();
    let migrate = format!("@{}", migration.display());
    let ledge = up(&app, &["--sqlite", &migrate, "--key-value", "seeded=yes"]);
    assert_eq!(
        get(&ledge.at("/granted/kv/default/seeded")),
        (200, "yes".into())
    );
    assert_eq!(
        post(&ledge.at("/granted/sql/default"), "SELECT name FROM shows"),
        (200, "name\n[Value::Text(\"opening night\")]".into())
    );
    drop(ledge);
    // A restart does not apply the migration again (the INSERT would duplicate the row).
    let ledge = up(&app, &["--sqlite", &migrate]);
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "SELECT count(*) AS n FROM shows"
        ),
        (200, "n\n[Value::Integer(1)]".into())
    );
    drop(ledge);

    // A migration SQLite refuses stops the start naming it and SQLite's reason, and leaves
    // nothing of it behind; so does one edited after it ran.
    let broken = app.dir.path().join("002_broken.sql");
    std::fs::write(
        &broken,
        "CREATE TABLE seats (n INTEGER);\nINSERT INTO nowhere VALUES (1);\n",
    )
    .unwrap();
    let stderr = app.up_fails_with(&[
        "--variable",
        "secret_key=s3cret",
        "--sqlite",
        &migrate,
        "--sqlite",
        &format!("@{}", broken.display()),
    ]);
    assert!(
        stderr.contains("the migration 002_broken.sql failed: no such table: nowhere"),
        "{stderr}"
    );
    std::fs::write(&migration, "CREATE TABLE shows (name TEXT, seats INTEGER);").unwrap();
    let stderr = app.up_fails_with(&["--variable", "secret_key=s3cret", "--sqlite", &migrate]);
    assert!(
        stderr.contains("001_shows.sql was already applied to `default` with different contents"),
        "{stderr}"
    );
    let ledge = up(&app, &[]);
    assert_eq!(
        post(
            &ledge.at("/granted/sql/default"),
            "SELECT name FROM sqlite_master WHERE name = 'seats'"
        ),
        (200, "name".into())
    );
}

/// A one-shot HTTP server on loopback that answers `pong` and counts its connections.
fn pong_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    (address, connections)
}

#[test]
fn outbound_http_follows_allowed_outbound_hosts_p2() {
    outbound_suite("{data2}");
}

#[test]
fn outbound_http_follows_allowed_outbound_hosts_p3() {
    outbound_suite("{data3}");
}

/// Allowed and denied outbound requests, and service chaining, through `guest`.
fn outbound_suite(guest: &str) {
    let (address, connections) = pong_server();
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/allowed/...\"\ncomponent = \"allowed\"\n\
         [[trigger.http]]\nroute = \"/denied/...\"\ncomponent = \"denied\"\n\
         [[trigger.http]]\nroute = {{ private = true }}\ncomponent = \"internal\"\n\
         [component.allowed]\nsource = \"{guest}\"\nallowed_outbound_hosts = [\"http://{address}\", \"http://*.spin.internal\"]\n\
         [component.denied]\nsource = \"{guest}\"\n\
         [component.internal]\nsource = \"{guest}\"\nvariables = {{ who = \"the private component\" }}\n"
    ));
    let ledge = app.up(&[]);
    assert_eq!(
        get(&ledge.at(&format!("/allowed/fetch/{address}/ping"))),
        (200, "200 pong".into())
    );
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);

    let (status, body) = get(&ledge.at(&format!("/denied/fetch/{address}/ping")));
    assert_eq!(status, 500);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a denied host never gets a connection"
    );

    // Service chaining reaches a private component in-process.
    assert_eq!(
        get(&ledge.at("/allowed/fetch/internal.spin.internal/var/who")),
        (200, "200 the private component".into())
    );
    assert!(
        get(&ledge.at("/denied/fetch/internal.spin.internal/var/who"))
            .1
            .contains("HttpRequestDenied")
    );
}

#[test]
fn the_key_value_suite_passes_on_redis_too() {
    let redis = RedisServer::start();
    let app = data_app("{data3}");
    let config = app.dir.path().join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let ledge = up(&app, &["--runtime-config-file", config.to_str().unwrap()]);
    key_value_suite(&ledge);
}

#[test]
fn wasi_keyvalue_atomics_batch_and_config() {
    let app = AppDir::new(&format!(
        "{HEADER}[variables]\nregion = {{ default = \"eu-west\" }}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"counter\"\n\
         [component.counter]\nsource = \"{{counter}}\"\nkey_value_stores = [\"default\"]\nvariables = {{ region = \"{{{{ region }}}}\" }}\n"
    ));
    let ledge = app.up(&[]);
    // 8 clients x 500 atomic increments: exactly 4000, none lost or doubled.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let ledge = &ledge;
            scope.spawn(move || {
                let client = client();
                for _ in 0..500 {
                    let response = client.post(ledge.at("/increment/hits")).send().unwrap();
                    assert_eq!(response.status(), 200);
                }
            });
        }
    });
    assert_eq!(post(&ledge.at("/increment/hits"), ""), (200, "4001".into()));
    assert_eq!(
        post(&ledge.at("/swap/hits/4001/reset"), ""),
        (200, "swapped".into())
    );
    assert_eq!(
        post(&ledge.at("/swap/hits/4001/again"), ""),
        (200, "conflict".into())
    );
    assert_eq!(
        get(&ledge.at("/many/hits,absent")),
        (200, "hits=reset\nabsent=<none>".into())
    );
    assert_eq!(get(&ledge.at("/get/hits")), (200, "reset".into()));
    assert_eq!(get(&ledge.at("/get/absent")), (404, "no such key".into()));
    assert_eq!(get(&ledge.at("/config/region")), (200, "eu-west".into()));
    assert_eq!(get(&ledge.at("/config/other")), (200, "<none>".into()));
}

#[test]
fn reads_see_every_acknowledged_write_and_one_process_owns_a_store() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"counter\"\n\
         [component.counter]\nsource = \"{{counter}}\"\nkey_value_stores = [\"default\"]\n"
    ));
    let ledge = app.up(&[]);
    // Each writer reads its own key back after every acknowledged increment, while readers of
    // the same keys race the writes: reads go through the read cache, which must never serve a
    // value older than an acknowledged write (so each reader sees a key only grow).
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let ledge = &ledge;
            scope.spawn(move || {
                let client = client();
                for expected in 1..=150 {
                    let url = ledge.at(&format!("/increment/key-{writer}"));
                    let written = client.post(url).send().unwrap().text().unwrap();
                    assert_eq!(written, expected.to_string());
                    let read = get(&ledge.at(&format!("/get/key-{writer}")));
                    assert_eq!(read, (200, expected.to_string()), "key-{writer}");
                }
            });
            scope.spawn(move || {
                let mut last = 0;
                for _ in 0..150 {
                    let (status, body) = get(&ledge.at(&format!("/get/key-{writer}")));
                    let seen = if status == 404 {
                        0
                    } else {
                        body.parse().unwrap()
                    };
                    assert!(seen >= last, "key-{writer} went back from {last} to {seen}");
                    last = seen;
                }
            });
        }
    });

    // A second `ledge up` on the same state directory is refused: the store has one writer,
    // this process, and its read cache depends on it.
    let mut second = crate::harness::ledge_command()
        .args(["up", "-f", app.manifest().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second ledge up on the same state directory kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("default.db is in use by another process")
            && stderr.contains("fix: stop the other process"),
        "{stderr}"
    );

    // Once the owner is gone (even by a crash), the next one takes the store over, data intact.
    ledge.kill();
    let ledge = app.up(&[]);
    assert_eq!(get(&ledge.at("/get/key-3")), (200, "150".into()));
}
