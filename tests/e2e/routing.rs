//! Route precedence, base paths, private routes and the host's own endpoints.

use crate::harness::{AppDir, HEADER, Ledge, get, guests};

fn static_route(route: &str, body: &str) -> String {
    format!("[[trigger.http]]\nroute = \"{route}\"\nstatic_response = {{ body = \"{body}\" }}\n")
}

#[test]
fn exact_beats_wildcard_and_the_longest_prefix_wins() {
    let app = AppDir::new(&format!(
        "{HEADER}{}{}{}{}{}{}",
        static_route("/...", "root-wildcard"),
        static_route("/one/...", "one-wildcard"),
        static_route("/one/two/...", "two-wildcard"),
        static_route("/one", "one-exact"),
        static_route("/users/:id", "user-param"),
        static_route("/users/me", "user-me"),
    ));
    let ledge = app.up(&[]);
    for (path, expected) in [
        ("/one", "one-exact"),
        ("/one/", "one-exact"),
        ("/one/x", "one-wildcard"),
        ("/one/two", "two-wildcard"),
        ("/one/two/three", "two-wildcard"),
        ("/elsewhere", "root-wildcard"),
        ("/", "root-wildcard"),
        ("/users/me", "user-me"),
        ("/users/42", "user-param"),
    ] {
        assert_eq!(get(&ledge.at(path)), (200, expected.to_string()), "{path}");
    }
}

#[test]
fn base_path_prefixes_routes() {
    let app = AppDir::new(
        "spin_manifest_version = 2\n[application]\nname = \"b\"\n[application.trigger.http]\nbase = \"/api\"\n\
         [[trigger.http]]\nroute = \"/echo/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{echo}\"\n",
    );
    let ledge = app.up(&[]);
    let (status, body) = get(&ledge.at("/api/echo/x"));
    assert_eq!(status, 200);
    assert!(
        body.contains("header spin-matched-route: /api/echo/..."),
        "{body}"
    );
    assert!(body.contains("header spin-base-path: /api"), "{body}");
    assert!(body.contains("header spin-path-info: /x"), "{body}");
    assert_eq!(get(&ledge.at("/echo/x")).0, 404);
}

#[test]
fn private_routes_are_not_reachable_and_health_is_answered() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = {{ private = true }}\ncomponent = \"echo\"\n\
         [[trigger.http]]\nroute = \"/public\"\ncomponent = \"hello\"\n\
         [component.echo]\nsource = \"{{echo}}\"\n[component.hello]\nsource = \"{{hello}}\"\n"
    ));
    let ledge = app.up(&[]);
    assert_eq!(get(&ledge.at("/")).0, 404);
    assert_eq!(get(&ledge.at("/echo")).0, 404);
    assert_eq!(get(&ledge.at("/public")).0, 200);
    assert_eq!(
        get(&ledge.at("/.well-known/spin/health")),
        (200, "OK\n".to_string())
    );
    let (status, info) = get(&ledge.at("/.well-known/spin/info"));
    assert_eq!(status, 200);
    assert!(info.contains("\"app\":\"test-app\""), "{info}");
}

#[test]
fn a_bare_wasm_serves_every_path() {
    let echo = guests().echo_p2.to_string_lossy().into_owned();
    let state = tempfile::tempdir().unwrap();
    let ledge = Ledge::up(&["-f", &echo, "--state-dir", state.path().to_str().unwrap()]);
    let (status, body) = get(&ledge.at("/any/path?q=1"));
    assert_eq!(status, 200);
    assert!(body.contains("path-with-query: /any/path?q=1"), "{body}");
    assert!(
        body.contains("header spin-raw-component-route: /..."),
        "{body}"
    );
}

#[test]
fn a_core_module_is_componentized_at_load() {
    let core = guests().core_module.to_string_lossy().into_owned();
    let state = tempfile::tempdir().unwrap();
    let ledge = Ledge::up(&["-f", &core, "--state-dir", state.path().to_str().unwrap()]);
    assert_eq!(get(&ledge.at("/")), (200, "Hello, world!\n".to_string()));
}

#[test]
fn a_wasip1_module_is_componentized_with_the_adapter() {
    let faults = guests().faults_wasip1.to_string_lossy().into_owned();
    let state = tempfile::tempdir().unwrap();
    let ledge = Ledge::up(&["-f", &faults, "--state-dir", state.path().to_str().unwrap()]);
    assert_eq!(get(&ledge.at("/fine")), (200, "ok\n".to_string()));
    assert_eq!(get(&ledge.at("/log")), (200, "logged\n".to_string()));
    assert!(
        ledge
            .wait_for_log("a line on stdout")
            .contains("a line on stdout")
    );
}
