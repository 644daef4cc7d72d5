//! The app at the repository root, the first thing a newcomer runs.

use crate::harness::{Ledge, client, get, guests, repo_root};

fn sample_app() -> Ledge {
    guests();
    let manifest = repo_root().join("spin.toml");
    let state = tempfile::tempdir().unwrap().keep();
    Ledge::up(&[
        "-f",
        manifest.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
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
