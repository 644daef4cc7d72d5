//! Spin's Redis trigger against a real `redis-server`: spin-sdk 5 (`#[redis_component]`,
//! `fermyon:spin/inbound-redis`) and spin-sdk 7 (`#[redis_subscriber]`,
//! `spin:redis/inbound-redis@3.0.0`) components run on every message published on their
//! channel; one that fails or traps is logged and the next message is handled.

use std::time::{Duration, Instant};

use crate::harness::{AppDir, HEADER, Ledge, RedisServer, client};

/// Publishes `message` on `channel`.
fn publish(redis: &RedisServer, channel: &str, message: &str) {
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(message)
        .query(&mut connection)
        .unwrap();
    assert_eq!(receivers, 1, "ledge is subscribed to {channel}");
}

/// Waits until the `default` store holds `key` (read through the app's data route).
fn recorded(ledge: &Ledge, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = client()
            .get(ledge.at(&format!("/data/kv/default/{key}")))
            .send()
            .unwrap();
        if response.status() == 200 {
            return response.text().unwrap();
        }
        assert!(Instant::now() < deadline, "no handler recorded {key}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_messages_run_spin_sdk_5_and_7_components() {
    let redis = RedisServer::start();
    let app = AppDir::new(&format!(
        "{HEADER}[variables]\nredis_port = {{ default = \"{}\" }}\n\
         [application.trigger.redis]\naddress = \"redis://127.0.0.1:{{{{ redis_port }}}}\"\n\
         [[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [[trigger.redis]]\nchannel = \"notes-v2\"\ncomponent = \"sdk5\"\n\
         [[trigger.redis]]\nchannel = \"notes-v3\"\ncomponent = \"sdk7\"\n\
         [component.data]\nsource = \"{{data2}}\"\nkey_value_stores = [\"default\"]\n\
         [component.sdk5]\nsource = \"{{message2}}\"\nkey_value_stores = [\"default\"]\n\
         [component.sdk7]\nsource = \"{{message3}}\"\nkey_value_stores = [\"default\"]\n",
        redis.port
    ));
    let ledge = app.up(&[]);
    ledge.wait_for_stdout("Subscribed to Redis channel `notes-v3`");

    publish(&redis, "notes-v2", "first-v2");
    publish(&redis, "notes-v3", "first-v3");
    assert_eq!(recorded(&ledge, "first-v2"), "spin-sdk 5");
    assert_eq!(recorded(&ledge, "first-v3"), "spin-sdk 7");

    // A handler's error and a trap are logged; the next message is handled as usual.
    for channel in ["notes-v2", "notes-v3"] {
        publish(&redis, channel, "fail");
        publish(&redis, channel, "panic");
        publish(&redis, channel, &format!("after-{channel}"));
    }
    assert_eq!(recorded(&ledge, "after-notes-v2"), "spin-sdk 5");
    assert_eq!(recorded(&ledge, "after-notes-v3"), "spin-sdk 7");
    let log = ledge.wait_for_log("asked to panic");
    assert!(log.contains("a Redis message was not handled"), "{log}");
}

#[test]
fn a_redis_trigger_without_a_server_or_handler_stops_start_up() {
    let no_address = AppDir::new(&format!(
        "{HEADER}[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"sdk5\"\n\
         [component.sdk5]\nsource = \"{{message2}}\"\n"
    ));
    let stderr = no_address.up_fails();
    assert!(
        stderr.contains("no Redis server to subscribe to"),
        "{stderr}"
    );
    assert!(stderr.contains("[application.trigger.redis]"), "{stderr}");

    // An HTTP component is no Redis handler.
    let redis = RedisServer::start();
    let wrong_export = AppDir::new(&format!(
        "{HEADER}[[trigger.redis]]\naddress = \"{}\"\nchannel = \"c\"\ncomponent = \"web\"\n\
         [component.web]\nsource = \"{{data2}}\"\n",
        redis.url()
    ));
    let stderr = wrong_export.up_fails();
    assert!(stderr.contains("exports no Redis handler"), "{stderr}");
}
