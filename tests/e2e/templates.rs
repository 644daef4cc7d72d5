//! `ledge new` and `ledge add`: each template made into a temporary directory, built with
//! `ledge build` and served by `ledge up` on the first try.

use std::path::Path;

use crate::harness::{Ledge, get, ledge_command, repo_root};

/// Runs `ledge <args>` in `dir` with the repository's pinned toolchain (a new project has no
/// `rust-toolchain.toml`, and the machine's default may lack the wasm32 targets); panics on
/// failure with ledge's output.
fn ledge_in(dir: &Path, args: &[&str]) -> String {
    let pinned = std::fs::read_to_string(repo_root().join("rust-toolchain.toml")).unwrap();
    let channel = pinned
        .lines()
        .find_map(|line| line.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let output = ledge_command()
        .current_dir(dir)
        .env("RUSTUP_TOOLCHAIN", channel)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ledge {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_new_static_site_serves_on_the_first_try() {
    let work = tempfile::tempdir().unwrap();
    let said = ledge_in(work.path(), &["new", "static-site", "brochure"]);
    assert!(said.contains("ledge build && ledge up"), "{said}");
    let app = work.path().join("brochure");
    ledge_in(&app, &["build"]);
    let ledge = Ledge::up(&["-f", app.to_str().unwrap()]);
    let (status, page) = get(&ledge.at("/"));
    assert_eq!(status, 200);
    assert!(page.contains("<h1>brochure</h1>"), "{page}");
    // Client-side routes get the page.
    assert_eq!(get(&ledge.at("/about/team")), (200, page));
}

#[test]
fn a_new_rust_function_builds_serves_and_takes_an_added_component() {
    let work = tempfile::tempdir().unwrap();
    ledge_in(work.path(), &["new", "http-rust", "hello-app"]);
    let app = work.path().join("hello-app");
    ledge_in(&app, &["add", "static-site", "docs"]);
    ledge_in(&app, &["build"]);
    let ledge = Ledge::up(&["-f", app.to_str().unwrap()]);
    assert_eq!(
        get(&ledge.at("/some/where")),
        (
            200,
            "Hello from hello-app! You asked for /some/where\n".to_string()
        )
    );
    let (status, docs) = get(&ledge.at("/docs/"));
    assert_eq!(status, 200);
    assert!(docs.contains("<title>docs</title>"), "{docs}");

    // The same name twice is refused, and the app is left as it was.
    let manifest = std::fs::read_to_string(app.join("spin.toml")).unwrap();
    let output = ledge_command()
        .current_dir(&app)
        .args(["add", "http-rust", "docs"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already has a component `docs`"));
    assert_eq!(
        std::fs::read_to_string(app.join("spin.toml")).unwrap(),
        manifest
    );
}

#[test]
fn new_functions_in_c_javascript_and_python_build_and_serve_side_by_side() {
    let work = tempfile::tempdir().unwrap();
    ledge_in(work.path(), &["new", "http-c", "polyglot"]);
    let app = work.path().join("polyglot");
    ledge_in(&app, &["add", "http-js", "counter"]);
    ledge_in(&app, &["add", "http-py", "notes"]);
    ledge_in(&app, &["build"]);
    let ledge = Ledge::up(&["-f", app.to_str().unwrap()]);
    assert_eq!(
        get(&ledge.at("/any/where?x=1")),
        (
            200,
            "{\"hello\":\"from C\",\"path\":\"/any/where\",\"query\":\"x=1\"}\n".into()
        )
    );
    for visits in 1..=2 {
        assert_eq!(
            get(&ledge.at("/counter/a")),
            (
                200,
                format!(r#"{{"hello":"from JavaScript","path":"/a","visits":{visits}}}"#)
            )
        );
        assert_eq!(
            get(&ledge.at("/notes/b")),
            (
                200,
                format!(r#"{{"hello": "from Python", "path": "/b", "visits": {visits}}}"#)
            )
        );
    }
}
