//! The app at the repository root, the first thing a newcomer runs.

use crate::harness::{Ledge, client, get, guests, repo_root};

fn sample_app() -> Ledge {
    guests();
    let manifest = repo_root().join("spin.toml");
    let state = tempfile::tempdir().unwrap().keep();
    // What scripts/serve runs, with a fresh state directory.
    let migration = format!(
        "@{}",
        repo_root().join("migrations/001_shows.sql").display()
    );
    Ledge::up(&[
        "-f",
        manifest.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--sqlite",
        &migration,
    ])
}

#[test]
fn the_mobile_backend_serves_tickets_shows_and_info() {
    let ledge = sample_app();
    let (status, shows) = get(&ledge.at("/shows"));
    assert_eq!(status, 200);
    assert!(
        shows
            .starts_with(r#"[{"id":1,"starts_at":"2026-12-01T19:30:00Z","title":"Opening Night"}"#),
        "{shows}"
    );
    assert_eq!(
        get(&ledge.at("/shows/2")).1,
        r#"{"id":2,"starts_at":"2026-12-02T14:00:00Z","title":"The Matinee"}"#
    );
    assert_eq!(get(&ledge.at("/shows/9")).0, 404);
    let created = client()
        .post(ledge.at("/tickets"))
        .body(r#"{"show": 1, "seat": "A1"}"#)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let ticket = r#"{"id":"1-A1","show":1,"seat":"A1"}"#;
    assert_eq!(created.text().unwrap(), ticket);
    assert_eq!(get(&ledge.at("/tickets/1-A1")).1, ticket);
    assert_eq!(get(&ledge.at("/tickets")).1, format!("[{ticket}]"));
    let bad = client()
        .post(ledge.at("/tickets"))
        .body("nonsense")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        get(&ledge.at("/info")).1,
        r#"{"app_name":"ledge-sample","region":"local"}"#
    );
}

#[test]
fn the_sample_gateway_guards_tickets_and_caches_info() {
    let ledge = sample_app();
    let client = client();
    // The schema refuses a malformed order, the WAF an XSS payload, the route other methods.
    let order = |body: &str| {
        let response = client
            .post(ledge.at("/tickets"))
            .body(body.to_string())
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let (status, body) = order(r#"{"show": 1, "seat": "Z999"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("/seat"), "{body}");
    let (status, body) = order(r#"{"show": 1, "seat": "<script>alert(1)</script>"}"#);
    assert_eq!(status, 403);
    assert!(body.contains("cross-site scripting"), "{body}");
    let response = client.delete(ledge.at("/tickets/1-A1")).send().unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_eq!(
        get(&ledge.at("/tickets")).1,
        "[]",
        "no refused order was stored"
    );
    // A browser app on the allowed origin gets its preflight answered.
    let preflight = client
        .request(reqwest::Method::OPTIONS, ledge.at("/tickets"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(preflight.status(), 204);
    // /info is cached: the second answer comes from the gateway, with its age.
    assert!(
        !client
            .get(ledge.at("/info"))
            .send()
            .unwrap()
            .headers()
            .contains_key("age")
    );
    assert!(
        client
            .get(ledge.at("/info"))
            .send()
            .unwrap()
            .headers()
            .contains_key("age")
    );
}

#[test]
fn the_front_end_is_served_from_site_with_its_fallback() {
    let ledge = sample_app();
    let page = std::fs::read_to_string(repo_root().join("site/index.html")).unwrap();
    let response = client().get(ledge.at("/site/")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    assert_eq!(response.text().unwrap(), page);
    // A deep link gets the page (FALLBACK_PATH, as spin-fileserver reads it).
    assert_eq!(get(&ledge.at("/site/shows/2")), (200, page));
    assert_eq!(get(&ledge.at("/site/style.css")).0, 200);
}

#[test]
fn p2_and_p3_components_both_answer() {
    let ledge = sample_app();
    let (status, body) = get(&ledge.at("/hello"));
    assert_eq!(status, 200);
    assert!(
        body.starts_with("Hello from a p3 component (spin-sdk 7)!"),
        "{body}"
    );
    // The p3 guest streams its body but ends it at once: it goes out whole, with its length
    // rather than chunked (one write; see server/settle.rs).
    let response = client().get(ledge.at("/hello")).send().unwrap();
    let headers = response.headers().clone();
    assert!(!headers.contains_key("transfer-encoding"), "{headers:?}");
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        response.text().unwrap().len().to_string()
    );
    let (status, body) = get(&ledge.at("/echo/some/path"));
    assert_eq!(status, 200);
    assert!(body.contains("header spin-path-info: /some/path"), "{body}");
}

#[test]
fn sixty_four_clients_times_two_hundred_requests_all_succeed() {
    let ledge = sample_app();
    let client = client();
    std::thread::scope(|scope| {
        for worker in 0..64 {
            let client = &client;
            let ledge = &ledge;
            scope.spawn(move || {
                for i in 0..200 {
                    let (path, expected) = if (worker + i) % 2 == 0 {
                        ("/hello", "Hello from a p3 component (spin-sdk 7)!")
                    } else {
                        ("/echo/x", "method: GET")
                    };
                    let response = client.get(ledge.at(path)).send().unwrap();
                    assert_eq!(response.status(), 200, "{path}");
                    assert!(response.text().unwrap().starts_with(expected), "{path}");
                }
            });
        }
    });
}
