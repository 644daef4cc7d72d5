//! Connection hygiene, tried with raw sockets as an attacker would: a head sent by halves, an
//! idle keep-alive connection, an oversized head, more connections than the cap.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{AppDir, HEADER, Ledge};

fn echo_app() -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"{{echo}}\"\n"
    ))
}

fn connect(ledge: &Ledge) -> TcpStream {
    let stream = TcpStream::connect(ledge.url.trim_start_matches("http://")).unwrap();
    // Far longer than any timeout the tests set: reaching it means the server never acted.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; panics if it does not within the read
/// timeout. Returns what arrived before.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn a_slow_head_and_an_idle_keep_alive_connection_are_closed() {
    let app = echo_app();
    let ledge = app.up(&["--header-read-timeout", "1s"]);
    // Half a request head, never finished.
    let mut half = connect(&ledge);
    half.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    assert_eq!(read_until_closed(&mut half), "");
    // A whole request is answered; the connection, kept alive and then left idle, is closed.
    let mut idle = connect(&ledge);
    idle.write_all(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let answered = read_until_closed(&mut idle);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[test]
fn an_oversized_request_head_is_answered_431() {
    let app = echo_app();
    let ledge = app.up(&["--max-request-head", "16KiB"]);
    let request = |header_bytes: usize| {
        let mut stream = connect(&ledge);
        let head = format!(
            "GET /big HTTP/1.1\r\nHost: a\r\nx-padding: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(header_bytes)
        );
        // The server may stop reading once the head is too large.
        let _ = stream.write_all(head.as_bytes());
        read_until_closed(&mut stream)
    };
    let small = request(10 * 1024);
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    let large = request(200 * 1024);
    assert!(large.starts_with("HTTP/1.1 431"), "{large}");
    // The server goes on serving.
    assert!(request(100).starts_with("HTTP/1.1 200"));
}

#[test]
fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let app = echo_app();
    let ledge = app.up(&["--max-connections", "2"]);
    let first = connect(&ledge);
    let _second = connect(&ledge);
    // The third is left in the listen backlog: its request gets no answer while both slots
    // are held, and the cap is logged.
    let mut third = connect(&ledge);
    third
        .write_all(b"GET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    ledge.wait_for_log("connections are open, the most allowed");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waiting = third.read(&mut byte).map_err(|e| e.kind());
    assert!(
        matches!(waiting, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{waiting:?}"
    );
    // Closing one connection frees a slot: the third is served.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let answered = read_until_closed(&mut third);
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(
        ledge
            .stderr()
            .matches("connections are open, the most allowed")
            .count(),
        1
    );
}
