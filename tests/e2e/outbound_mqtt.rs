//! Outbound MQTT through spin-sdk 5 (`fermyon:spin/mqtt@2.0.0`) and spin-sdk 7
//! (`spin:mqtt/mqtt@3.0.0`) guests, against a real `mosquitto` broker: a subscriber receives
//! what the guest publishes at each QoS, and `allowed_outbound_hosts` decides before any
//! connection is opened.

use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::harness::{AppDir, ForbiddenPort, HEADER, Ledge, Mosquitto, client};

fn publish(ledge: &Ledge, port: u16, topic: &str, qos: u8, payload: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at(&format!("/data/mqtt/127.0.0.1:{port}/{topic}/{qos}")))
        .body(payload.to_string())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn outbound_mqtt_suite(guest: &str) {
    let broker = Mosquitto::start();
    let forbidden = ForbiddenPort::bind();
    let forbidden_port = forbidden.port;
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{guest}\"\n\
         allowed_outbound_hosts = [\"mqtt://127.0.0.1:{}\"]\n",
        broker.port
    ));
    let ledge = app.up(&[]);

    let (subscriber, mut events) = Client::new(
        MqttOptions::new("test-subscriber", "127.0.0.1", broker.port),
        10,
    );
    subscriber
        .subscribe("ledge.events", QoS::ExactlyOnce)
        .unwrap();
    let mut next_packet = || loop {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Event::Incoming(packet))) => return packet,
            Ok(Ok(Event::Outgoing(_))) => {}
            other => panic!("the subscriber stopped: {other:?}"),
        }
    };
    while !matches!(next_packet(), Packet::SubAck(_)) {}

    for qos in [0, 1, 2] {
        let payload = format!("hello at QoS {qos}");
        assert_eq!(
            publish(&ledge, broker.port, "ledge.events", qos, &payload),
            (200, "published".into())
        );
        let received = loop {
            if let Packet::Publish(message) = next_packet() {
                break message;
            }
        };
        assert_eq!(received.topic, "ledge.events");
        assert_eq!(received.payload.as_ref(), payload.as_bytes());
    }

    // An address outside `allowed_outbound_hosts` is Spin's connection-failed, and no
    // connection is ever opened to it.
    let (status, body) = publish(&ledge, forbidden_port, "ledge.events", 1, "nope");
    assert_eq!(status, 500);
    assert!(
        body.contains("ConnectionFailed") && body.contains("is not permitted"),
        "{body}"
    );
    forbidden.assert_untouched();
}

#[test]
fn p2_spin_sdk_5_guests_publish_over_mqtt() {
    outbound_mqtt_suite("{data2}");
}

#[test]
fn p3_spin_sdk_7_guests_publish_over_mqtt() {
    outbound_mqtt_suite("{data3}");
}
