//! Connection hygiene, tried with raw sockets as an attacker would: a head sent by halves, an
//! idle keep-alive connection (each with its own timeout), an oversized head, more connections
//! than the cap.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{AppDir, HEADER, Ledge, TestCertificate};

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

/// Sends a whole request on `stream` and reads its (keep-alive) response, head and body.
fn request(stream: &mut TcpStream, path: &str) -> String {
    request_rest(stream, &format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"))
}

/// Sends `rest` of a request on `stream` and reads its (keep-alive) response.
fn request_rest(stream: &mut TcpStream, rest: &str) -> String {
    stream.write_all(rest.as_bytes()).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    // The echo's last line ends its body (and the last chunk, when chunked).
    let complete = |text: &str| {
        text.ends_with("body-length: 0\n")
            || (text.contains("body-length: 0\n") && text.ends_with("\r\n0\r\n\r\n"))
    };
    while !complete(&String::from_utf8_lossy(&received)) {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed before the response: {received:?}");
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn a_slow_head_is_closed_while_an_idle_connection_may_outlast_the_head_timeout() {
    let app = echo_app();
    let ledge = app.up(&["--header-read-timeout", "1s", "--idle-timeout", "5s"]);
    // Half a request head, never finished.
    let mut half = connect(&ledge);
    half.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    assert_eq!(read_until_closed(&mut half), "");
    // Kept alive and idle for longer than the head timeout, the connection still serves; left
    // idle after that, it is closed.
    let mut idle = connect(&ledge);
    assert!(request(&mut idle, "/first").starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(request(&mut idle, "/second").starts_with("HTTP/1.1 200"));
    assert_eq!(read_until_closed(&mut idle), "");
}

#[test]
fn an_idle_connection_is_closed_while_a_head_may_outlast_the_idle_timeout() {
    let app = echo_app();
    let ledge = app.up(&["--header-read-timeout", "120s", "--idle-timeout", "1s"]);
    // Idle after a response: closed long before the head timeout (or the test's read timeout).
    let mut idle = connect(&ledge);
    assert!(request(&mut idle, "/first").starts_with("HTTP/1.1 200"));
    assert_eq!(read_until_closed(&mut idle), "");
    // On a kept-alive connection, a next head started before the idle timeout and sent slowly,
    // over longer than the idle timeout, is timed by the head clock: it is answered.
    let mut slow = connect(&ledge);
    assert!(request(&mut slow, "/first").starts_with("HTTP/1.1 200"));
    slow.write_all(b"GET /second HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(request_rest(&mut slow, "Host: a\r\n\r\n").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_closed_at_the_head_timeout() {
    let app = echo_app();
    let ledge = app.up(&["--header-read-timeout", "1s", "--idle-timeout", "60s"]);
    let mut trickle = connect(&ledge);
    let head = b"GET /trickle HTTP/1.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed = false;
    for byte in head.iter().cycle().take(600) {
        // One byte every 10 ms: each arrives well within any per-byte wait, the whole head
        // never does.
        if trickle.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(closed || read_until_closed(&mut trickle).is_empty());
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

#[test]
fn an_http2_connection_idles_by_the_idle_timeout_not_the_head_timeout() {
    let certificate = TestCertificate::new();
    let app = echo_app();
    let mut args = vec!["--header-read-timeout", "1s", "--idle-timeout", "30s"];
    args.extend(certificate.args());
    let ledge = app.up(&args);
    let address = ledge.url.trim_start_matches("https://").to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(
                certificate.der().to_vec(),
            ))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let server = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server, tcp)
            .await
            .unwrap();
        let (send, mut connection) = h2::client::handshake(tls).await.unwrap();
        let mut pings = connection.ping_pong().unwrap();
        tokio::spawn(connection);
        let get = |path: &str| {
            let request = http::Request::get(format!("https://{address}{path}"))
                .body(())
                .unwrap();
            let send = send.clone();
            async move {
                let (response, _) = send.ready().await?.send_request(request, true)?;
                Ok::<_, h2::Error>(response.await?.status())
            }
        };
        assert_eq!(get("/first").await.unwrap(), 200);
        // A ping after the response: bytes arrive on an idle connection, which is not a
        // request head. Past the head timeout the connection still serves.
        pings.ping(h2::Ping::opaque()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(get("/second").await.unwrap(), 200);
    });
}
