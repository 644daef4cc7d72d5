//! Remote component sources: `source = { url, digest }` is fetched once into `.ledge/sources/`,
//! checked against its digest, and served from there on later starts; a wrong digest or an
//! unreachable URL stops start-up with the file, the line and the fix.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use crate::harness::{AppDir, HEADER, get, guests};

/// Answers every request with `body` on a free loopback port: the address, and the number of
/// requests answered so far.
fn file_server(body: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            // The whole request head, so closing the connection never cuts it short.
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => head.extend_from_slice(&chunk[..read]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let status = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(status.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (address, requests)
}

/// The hello-world p3 component's bytes and their SHA-256 in hex.
fn hello_wasm() -> (Vec<u8>, String) {
    let wasm = std::fs::read(&guests().hello_p3).unwrap();
    let sha256 = hex::encode(Sha256::digest(&wasm));
    (wasm, sha256)
}

/// An app answering `/hello` with the component at `url`; its `source` is on line 8.
fn remote_app(url: &str, sha256: &str) -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n\
         [component.hello]\nsource = {{ url = \"{url}\", digest = \"sha256:{sha256}\" }}\n"
    ))
}

#[test]
fn a_remote_source_is_fetched_once_then_served_from_the_state_dir() {
    let (wasm, sha256) = hello_wasm();
    let (address, requests) = file_server(wasm);
    let app = remote_app(&format!("http://{address}/hello.wasm"), &sha256);

    let ledge = app.up(&[]);
    let (status, body) = get(&ledge.at("/hello"));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Hello from a p3 component"), "{body}");
    let copy = app
        .dir
        .path()
        .join(format!(".ledge/sources/sha256-{sha256}.wasm"));
    assert!(
        copy.is_file(),
        "the fetched file is kept in the state directory"
    );
    ledge.kill();

    let ledge = app.up(&[]);
    assert_eq!(get(&ledge.at("/hello")).0, 200);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the second start takes the file from the state directory"
    );
}

#[test]
fn a_wrong_digest_stops_start_up() {
    let (wasm, actual) = hello_wasm();
    let (address, _) = file_server(wasm);
    let wrong = "0".repeat(64);
    let app = remote_app(&format!("http://{address}/hello.wasm"), &wrong);
    let stderr = app.up_fails();
    assert!(
        stderr.contains("spin.toml:8") && stderr.contains("component.hello.source"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "has digest sha256:{actual}, but the manifest says sha256:{wrong}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("fix: "), "{stderr}");
    let sources = app.dir.path().join(".ledge/sources");
    assert!(
        !sources.join(format!("sha256-{wrong}.wasm")).exists(),
        "a file that does not match is not kept"
    );
}

#[test]
fn an_unreachable_url_stops_start_up() {
    // Bound, then closed at the end of the statement: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/hello.wasm");
    let app = remote_app(&url, &"0".repeat(64));
    let stderr = app.up_fails();
    assert!(
        stderr.contains("spin.toml:8") && stderr.contains(&format!("cannot fetch {url}: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: check the URL and the network"),
        "{stderr}"
    );
}
