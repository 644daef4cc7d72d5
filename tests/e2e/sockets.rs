//! `wasi:sockets` through a p2 guest (Rust `std::net`, TCP and UDP) and a p3 guest
//! (`wasi:sockets@0.3.0` TCP): `allowed_outbound_hosts` grants IPs, CIDR ranges (also from
//! templates) and names, whatever the scheme; everything else is `access-denied` before a
//! packet leaves, which the test's own servers check by seeing nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::{AppDir, HEADER, client};

/// A loopback TCP server answering `echo:<what it read until EOF>`, counting its connections.
struct TcpEcho {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl TcpEcho {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut message = Vec::new();
                if stream.read_to_end(&mut message).is_ok() {
                    let _ = stream.write_all(&[b"echo:".as_slice(), &message].concat());
                }
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A loopback UDP socket answering each datagram with `echo:<datagram>`, counting them.
struct UdpEcho {
    port: u16,
    datagrams: Arc<AtomicUsize>,
}

impl UdpEcho {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let datagrams = Arc::new(AtomicUsize::new(0));
        let counted = datagrams.clone();
        std::thread::spawn(move || {
            let mut buffer = [0; 2048];
            while let Ok((length, from)) = socket.recv_from(&mut buffer) {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = socket.send_to(&[b"echo:".as_slice(), &buffer[..length]].concat(), from);
            }
        });
        Self { port, datagrams }
    }
}

/// Sends `message` through the guest's `/tcp` or `/udp` route to `address`.
fn round_trip(ledge: &crate::harness::Ledge, route: &str, address: &str) -> (u16, String) {
    let response = client()
        .post(ledge.at(&format!("/data/{route}/{address}")))
        .body("hello")
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn sockets_suite(guest: &str, denied_says: &str) {
    let by_range = TcpEcho::start();
    let by_name = TcpEcho::start();
    let outside = TcpEcho::start();
    let app = AppDir::new(&format!(
        "{HEADER}[variables]\naddr_prefix = {{ default = \"127.0.0.0\" }}\n\
         prefix_len = {{ default = \"24\" }}\n\
         [[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{guest}\"\n\
         allowed_outbound_hosts = [\"*://{{{{ addr_prefix }}}}/{{{{ prefix_len }}}}:{}\", \
         \"postgres://localhost:{}\"]\n",
        by_range.port, by_name.port
    ));
    let ledge = app.up(&[]);

    // Inside the CIDR range from the templates, and by a name whose lookup grants its
    // addresses (the entry's scheme does not matter to a raw socket).
    for address in [
        format!("127.0.0.1:{}", by_range.port),
        format!("127.0.0.5:{}", by_range.port),
        format!("localhost:{}", by_name.port),
    ] {
        let (status, body) = round_trip(&ledge, "tcp", &address);
        if address.starts_with("127.0.0.5") {
            // Granted, but nothing listens there: the connection is refused, not denied.
            assert_eq!(status, 500, "{address}: {body}");
            assert!(!body.contains(denied_says), "{address}: {body}");
            continue;
        }
        assert_eq!((status, body.as_str()), (200, "echo:hello"), "{address}");
    }

    // Outside every entry: denied, and the server there never sees a connection.
    let (status, body) = round_trip(&ledge, "tcp", &format!("127.0.0.1:{}", outside.port));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains(denied_says), "{body}");
    assert_eq!(
        outside.connections(),
        0,
        "the denied server saw a connection"
    );
    assert_eq!(by_range.connections(), 1);
    assert_eq!(by_name.connections(), 1);
    let (status, body) = round_trip(&ledge, "tcp", "localhost:1");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains(denied_says), "{body}");
}

#[test]
fn p2_guests_reach_only_granted_socket_addresses() {
    sockets_suite("{data2}", "PermissionDenied");
}

#[test]
fn p3_guests_reach_only_granted_socket_addresses() {
    sockets_suite("{data3}", "AccessDenied");
}

#[test]
fn p2_guests_send_datagrams_only_to_granted_addresses() {
    let granted = UdpEcho::start();
    let outside = UdpEcho::start();
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{{data2}}\"\n\
         allowed_outbound_hosts = [\"udp://127.0.0.1:{}\"]\n",
        granted.port
    ));
    let ledge = app.up(&[]);
    assert_eq!(
        round_trip(&ledge, "udp", &format!("127.0.0.1:{}", granted.port)),
        (200, "echo:hello".into())
    );
    let (status, body) = round_trip(&ledge, "udp", &format!("127.0.0.1:{}", outside.port));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("PermissionDenied"), "{body}");
    assert_eq!(outside.datagrams.load(Ordering::SeqCst), 0);
    assert_eq!(granted.datagrams.load(Ordering::SeqCst), 1);
}

#[test]
fn a_malformed_cidr_range_stops_start_up_naming_the_line() {
    let manifest = format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{{data2}}\"\n\
         allowed_outbound_hosts = [\n  \"*://127.0.0.1:7\",\n  \"*://127.0.0.0/33:7\",\n]\n"
    );
    let line = 1 + manifest
        .lines()
        .position(|text| text.contains("/33"))
        .unwrap();
    let stderr = AppDir::new(&manifest).up_fails();
    assert!(stderr.contains(&format!("spin.toml:{line}:")), "{stderr}");
    assert!(
        stderr.contains("invalid CIDR range `127.0.0.0/33`"),
        "{stderr}"
    );
    assert!(stderr.contains("allowed_outbound_hosts"), "{stderr}");
}

#[test]
fn a_component_without_network_entries_opens_no_socket() {
    let server = TcpEcho::start();
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"{{data2}}\"\nallowed_outbound_hosts = [\"self\"]\n"
    ));
    let ledge = app.up(&[]);
    let (status, body) = round_trip(&ledge, "tcp", &format!("127.0.0.1:{}", server.port));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("PermissionDenied"), "{body}");
    // Nor may it look a name up.
    let (status, body) = round_trip(&ledge, "tcp", &format!("localhost:{}", server.port));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("failed to lookup address"), "{body}");
    assert_eq!(server.connections(), 0);
}
