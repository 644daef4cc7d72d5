//! The request a guest sees: Spin's request-shape scenario, header by header.

use crate::harness::{AppDir, HEADER, client};

fn echo_lines(body: &str) -> Vec<&str> {
    body.lines().collect()
}

#[test]
fn spin_headers_match_the_compat_scenario_and_nothing_else() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/base/:path_segment/:path_end/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"{{echo}}\"\n"
    ));
    let ledge = app.up(&[]);
    let response = client()
        .get(ledge.at("/base/path/end/rest?key=value"))
        .header("host", "example.com")
        .header("spin-path-info", "forged-by-the-client")
        // An app without authorizers still never passes on a forged identity.
        .header("ledge-auth-subject", "forged-by-the-client")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let response_headers: Vec<String> = response.headers().keys().map(|k| k.to_string()).collect();
    assert!(
        !response_headers.iter().any(|h| h == "server"),
        "{response_headers:?}"
    );
    let body = response.text().unwrap();
    let lines = echo_lines(&body);
    let expected = [
        "method: GET",
        "authority: example.com",
        "path-with-query: /base/path/end/rest?key=value",
        "header spin-base-path: /",
        "header spin-component-route: /base/:path_segment/:path_end",
        "header spin-full-url: http://example.com/base/path/end/rest?key=value",
        "header spin-matched-route: /base/:path_segment/:path_end/...",
        "header spin-path-info: /rest",
        "header spin-path-match-path-end: end",
        "header spin-path-match-path-segment: path",
        "header spin-raw-component-route: /base/:path_segment/:path_end/...",
    ];
    for line in expected {
        assert!(lines.contains(&line), "missing `{line}` in:\n{body}");
    }
    assert!(!body.contains("ledge-auth-"), "{body}");
    let client_addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("header spin-client-addr: "))
        .expect("spin-client-addr is set");
    assert!(
        client_addr.parse::<std::net::SocketAddr>().is_ok(),
        "{client_addr}"
    );
    let spin_headers: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("header spin-"))
        .collect();
    assert_eq!(
        spin_headers.len(),
        9,
        "exactly the Spin headers: {spin_headers:#?}"
    );
}

#[test]
fn path_info_for_a_wildcard_route() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/foo/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{{echo}}\"\n"
    ));
    let ledge = app.up(&[]);
    for (path, info) in [
        ("/foo", ""),
        ("/foo/", "/"),
        ("/foo/bar/", "/bar/"),
        ("/foo/bar/baz", "/bar/baz"),
    ] {
        let body = client().get(ledge.at(path)).send().unwrap().text().unwrap();
        let expected = format!("header spin-path-info: {info}");
        assert!(
            body.lines().any(|l| l.trim_end() == expected.trim_end()),
            "{path}: {body}"
        );
    }
}

#[test]
fn request_bodies_reach_the_guest() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{{echo}}\"\n"
    ));
    let ledge = app.up(&[]);
    let body = client()
        .post(ledge.at("/post"))
        .body(vec![7u8; 100_000])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(body.contains("method: POST"), "{body}");
    assert!(body.contains("body-length: 100000"), "{body}");
}
