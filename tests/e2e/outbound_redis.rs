//! Outbound Redis through spin-sdk 5 (`fermyon:spin/redis@2.0.0`) and spin-sdk 7
//! (`spin:redis/redis@3.0.0`) guests, against a real `redis-server`: every call, Spin's error
//! values, and `allowed_outbound_hosts` deciding before any connection is opened.

use crate::harness::{AppDir, ForbiddenPort, HEADER, RedisServer, client};

/// Runs `script` (one Redis call per line) through the guest against `127.0.0.1:<port>`.
fn calls(ledge: &crate::harness::Ledge, port: u16, script: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at(&format!("/data/redis/127.0.0.1:{port}")))
        .body(script.to_string())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn outbound_redis_suite(guest: &str) {
    let redis = RedisServer::start();
    // A port nobody may reach: the test counts the connections it accepts.
    let forbidden = ForbiddenPort::bind();
    let forbidden_port = forbidden.port;
    let app = AppDir::new(&format!(
        "{HEADER}[variables]\nredis_port = {{ default = \"{}\" }}\n\
         [[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{guest}\"\n\
         allowed_outbound_hosts = [\"redis://127.0.0.1:{{{{ redis_port }}}}\"]\n",
        redis.port
    ));
    let ledge = app.up(&[]);

    assert_eq!(
        calls(
            &ledge,
            redis.port,
            "set greeting hello\nget greeting\nget missing\nincr counter\nincr counter\n\
             sadd fruit apple pear plum\nsrem fruit pear\nsmembers fruit\ndel greeting counter\n\
             get greeting\nexecute SET n 41\nexecute INCRBY n 1\nexecute GET n\n\
             execute MGET n missing\nexecute PING"
        ),
        (
            200,
            "()\nSome(\"hello\")\nNone\n1\n2\n3\n1\napple,plum\n2\nNone\nstatus OK\nint 42\n\
             bytes 42\nbytes 42,nil\nstatus PONG"
                .into()
        )
    );

    // What the guest wrote is in the server, and what it publishes reaches a subscriber.
    let server = redis::Client::open(redis.url()).unwrap();
    let mut reader = server.get_connection().unwrap();
    let stored: String = redis::cmd("GET").arg("n").query(&mut reader).unwrap();
    assert_eq!(stored, "42");
    let mut subscriber = server.get_connection().unwrap();
    let mut subscriber = subscriber.as_pubsub();
    subscriber.subscribe("events").unwrap();
    assert_eq!(
        calls(&ledge, redis.port, "publish events hello-subscribers"),
        (200, "()".into())
    );
    let message = subscriber.get_message().unwrap();
    assert_eq!(message.get_channel_name(), "events");
    assert_eq!(
        message.get_payload::<String>().unwrap(),
        "hello-subscribers"
    );

    // A value of the wrong type is Spin's `type-error`.
    let (status, body) = calls(&ledge, redis.port, "incr fruit");
    assert_eq!(status, 500);
    assert!(body.contains("TypeError"), "{body}");

    // An address outside `allowed_outbound_hosts` is `invalid-address`, and no connection is
    // ever opened to it.
    let (status, body) = calls(&ledge, forbidden_port, "get anything");
    assert_eq!(status, 500);
    assert!(body.contains("InvalidAddress"), "{body}");
    forbidden.assert_untouched();
}

#[test]
fn p2_spin_sdk_5_guests_use_outbound_redis() {
    outbound_redis_suite("{data2}");
}

#[test]
fn p3_spin_sdk_7_guests_use_outbound_redis() {
    outbound_redis_suite("{data3}");
}
