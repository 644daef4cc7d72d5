//! Static files served by the host for a component marked `static_files`: index pages, the
//! single-page-app fallback, a custom 404, `Cache-Control`, `ETag` / 304, ranges, and no way
//! out of the mounted directory.

use std::io::{Read as _, Write as _};

use crate::harness::{AppDir, Ledge, client};

/// The fileserver component a Spin app names; ledge never fetches it.
const SPIN_FILESERVER: &str = "source = { url = \"https://github.com/fermyon/spin-fileserver/releases/download/v0.3.0/spin_static_fs.wasm\", digest = \"sha256:ef88708817e107bf49985c7cefe4dd1f199bf26f6727819183d5c996baa3d148\" }";

fn site() -> AppDir {
    let app = AppDir::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"site\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n\
         [component.app]\n{SPIN_FILESERVER}\nfiles = [{{ source = \"dist\", destination = \"/\" }}]\n\
         [component.app.tool.ledge]\n\
         static_files = {{ fallback = \"index.html\", cache_control = \"public, max-age=60\" }}\n\
         [[trigger.http]]\nroute = \"/docs/...\"\ncomponent = \"docs\"\n\
         [component.docs]\n{SPIN_FILESERVER}\nfiles = [{{ source = \"docs\", destination = \"/\" }}]\n\
         [component.docs.tool.ledge]\nstatic_files = {{ not_found = \"404.html\" }}\n"
    ));
    let root = app.dir.path();
    for (path, text) in [
        ("dist/index.html", "<h1>the app</h1>"),
        ("dist/sub/index.html", "<h1>a section</h1>"),
        ("docs/guide.html", "<p>the guide</p>"),
        ("docs/404.html", "no such page"),
        ("secret.txt", "do not serve me"),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(root.join("dist/assets")).unwrap();
    std::fs::write(root.join("dist/assets/app.js"), "0123456789".repeat(10)).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("docs/escape.txt")).unwrap();
    app
}

/// A request sent byte for byte (no client normalizes its path): (status, body).
fn raw_get(ledge: &Ledge, path: &str) -> (u16, String) {
    let address = ledge.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn files_are_served_with_indexes_fallbacks_and_cache_headers() {
    let app = site();
    let ledge = app.up(&[]);
    let client = client();

    let response = client.get(ledge.at("/")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    assert_eq!(response.text().unwrap(), "<h1>the app</h1>");
    assert_eq!(
        client
            .get(ledge.at("/sub/"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "<h1>a section</h1>"
    );

    // A client-side route of the single-page app gets the app.
    let response = client.get(ledge.at("/tickets/42")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "<h1>the app</h1>");

    // Another mount, with its own 404 page; `Cache-Control` defaults to revalidation.
    let response = client.get(ledge.at("/docs/guide.html")).send().unwrap();
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.text().unwrap(), "<p>the guide</p>");
    let response = client.get(ledge.at("/docs/nope.html")).send().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().unwrap(), "no such page");

    // Only reads.
    let response = client.post(ledge.at("/")).send().unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    let response = client.head(ledge.at("/assets/app.js")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "100");
}

#[test]
fn etags_answer_304_and_ranges_answer_206() {
    let app = site();
    let ledge = app.up(&[]);
    let client = client();
    let url = ledge.at("/assets/app.js");

    let response = client.get(&url).send().unwrap();
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    let etag = response.headers()["etag"].clone();
    let response = client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag);
    assert_eq!(response.text().unwrap(), "");
    let response = client
        .get(&url)
        .header("if-none-match", "\"another\"")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    let response = client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 10-19/100");
    assert_eq!(response.text().unwrap(), "0123456789");
    let response = client
        .get(&url)
        .header("range", "bytes=500-")
        .send()
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */100");
}

#[test]
fn nothing_outside_the_mount_is_served() {
    let app = site();
    let ledge = app.up(&[]);
    for path in [
        "/docs/../secret.txt",
        "/docs/%2e%2e/secret.txt",
        "/docs/..%2fsecret.txt",
        "/docs/%2e%2e%2fsecret.txt",
        "/docs/escape.txt",
        "/docs/.%2e/.%2e/secret.txt",
    ] {
        let (status, body) = raw_get(&ledge, path);
        assert!(!body.contains("do not serve me"), "{path} leaked: {status}");
        assert!(matches!(status, 400 | 403 | 404), "{path}: {status} {body}");
    }
}
