//! Starting, restarting and stopping: the compile cache, graceful shutdown, start-up faults.

use crate::harness::{AppDir, HEADER, TestCertificate, get, run_ledge};

fn echo_app() -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"faults\"\n[component.faults]\nsource = \"{{faults}}\"\n"
    ))
}

#[test]
fn the_second_start_loads_from_the_compile_cache() {
    let app = echo_app();
    let first = app.up_with_default_cache(&[]);
    assert!(
        first.wait_for_log("ready in").contains("faults: compiled")
            || first.stderr().contains("compiled in")
    );
    assert!(!first.stderr().contains("loaded from the compile cache"));
    drop(first);
    let second = app.up_with_default_cache(&[]);
    let log = second.wait_for_log("ready in");
    assert!(log.contains("loaded from the compile cache"), "{log}");
    assert_eq!(get(&second.at("/fine")), (200, "ok\n".to_string()));
    drop(second);
    let uncached = app.up(&["--disable-cache"]);
    assert!(
        !uncached
            .wait_for_log("ready in")
            .contains("loaded from the compile cache")
    );
}

/// A component missing from the compile cache and at least `--baseline-compile-above` big is
/// served from the baseline compiler's code at once; its optimized code takes over while
/// clients keep asking (none of their requests fails), and the next start loads that code
/// from the cache.
#[test]
fn a_big_component_serves_at_once_and_its_optimized_code_takes_over() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n\
         [[trigger.http]]\nroute = \"/f/...\"\ncomponent = \"faults\"\n\
         [component.hello]\nsource = \"{{hello}}\"\n\
         [component.faults]\nsource = \"{{faults}}\"\n"
    ));
    let ledge = app.up_with_default_cache(&["--baseline-compile-above", "1"]);
    let log = ledge.wait_for_log("ready in");
    assert_eq!(
        log.matches("compiled by the baseline compiler").count(),
        2,
        "{log}"
    );
    let asking = std::sync::atomic::AtomicBool::new(true);
    let answers: Vec<Vec<(u16, String)>> = std::thread::scope(|scope| {
        let clients: Vec<_> = ["/hello", "/f/fine", "/hello", "/f/fine"]
            .into_iter()
            .map(|path| {
                let (url, asking) = (ledge.at(path), &asking);
                scope.spawn(move || {
                    let mut answers = Vec::new();
                    while asking.load(std::sync::atomic::Ordering::Relaxed) {
                        answers.push(get(&url));
                    }
                    answers
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while ledge
            .stderr()
            .matches("new requests run the optimized code")
            .count()
            < 2
        {
            assert!(std::time::Instant::now() < deadline, "{}", ledge.stderr());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Some requests on the optimized code too.
        std::thread::sleep(std::time::Duration::from_millis(200));
        asking.store(false, std::sync::atomic::Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for answer in answers.iter().flatten() {
        assert_eq!(answer.0, 200, "{answer:?}");
    }
    assert!(answers.iter().all(|a| !a.is_empty()));
    assert!(answers[0][0].1.starts_with("Hello from a p3 component"));
    assert_eq!(answers[1][0].1, "ok\n");
    drop(ledge);

    let again = app.up_with_default_cache(&["--baseline-compile-above", "1"]);
    let log = again.wait_for_log("ready in");
    assert_eq!(
        log.matches("loaded from the compile cache").count(),
        2,
        "{log}"
    );
    assert!(!log.contains("baseline"), "{log}");
    drop(again);
    let off = app.up(&["--baseline-compile-above", "off", "--disable-cache"]);
    let log = off.wait_for_log("ready in");
    assert!(!log.contains("baseline"), "{log}");
}

#[test]
fn a_wasmtime_cache_file_chooses_where_compiled_components_go() {
    let app = echo_app();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("cache.toml");
    std::fs::write(&file, "[cache]\nenabled = true\ndirectory = \"compiled\"\n").unwrap();
    let file = file.to_str().unwrap();
    drop(app.up(&["--cache", file]).wait_for_log("ready in"));
    let cached = std::fs::read_dir(config.path().join("compiled"))
        .unwrap()
        .count();
    assert_eq!(
        cached, 1,
        "one compiled component in the configured directory"
    );
    let log = app.up(&["--cache", file]).wait_for_log("ready in");
    assert!(log.contains("loaded from the compile cache"), "{log}");

    // `enabled = false` compiles afresh and keeps nothing.
    let off = config.path().join("off.toml");
    std::fs::write(&off, "[cache]\nenabled = false\ndirectory = \"unused\"\n").unwrap();
    let log = app
        .up(&["--cache", off.to_str().unwrap()])
        .wait_for_log("ready in");
    assert!(!log.contains("loaded from the compile cache"), "{log}");
    assert!(!config.path().join("unused").exists());

    // A file that is not a cache configuration stops start-up, naming it.
    let manifest = app.manifest();
    let stderr = app.up_fails_with(&["--cache", manifest.to_str().unwrap()]);
    assert!(
        stderr.contains("not a wasmtime cache configuration"),
        "{stderr}"
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let app = echo_app();
    let ledge = app.up(&["--admin-listen", "127.0.0.1:0"]);
    let slow = {
        let url = ledge.at("/sleep");
        std::thread::spawn(move || get(&url))
    };
    ledge.wait_in_flight("faults");
    let status = ledge.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(slow.join().unwrap(), (200, "slept\n".to_string()));
}

#[test]
fn a_port_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let app = echo_app();
    let manifest = app.manifest();
    let (status, _, stderr) =
        run_ledge(&["up", "-f", manifest.to_str().unwrap(), "--listen", &address]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}

#[test]
fn pooling_can_be_disabled() {
    let app = echo_app();
    let ledge = app.up(&["--disable-pooling"]);
    assert_eq!(get(&ledge.at("/fine")), (200, "ok\n".to_string()));
}

#[test]
fn profile_perfmap_names_guest_code_for_perf() {
    let app = echo_app();
    let ledge = app.up(&["--profile", "perfmap"]);
    assert_eq!(get(&ledge.at("/fine")), (200, "ok\n".to_string()));
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", ledge.pid()));
    let symbols = std::fs::read_to_string(&map).unwrap_or_default();
    drop(ledge);
    let _ = std::fs::remove_file(&map);
    assert!(
        symbols
            .lines()
            .any(|line| line.contains("wasm[0]::function")),
        "{}: {symbols}",
        map.display()
    );
}

#[test]
fn ledge_build_runs_each_command_and_stops_at_the_first_failure() {
    let app = AppDir::new(&format!(
        "{HEADER}[component.a-good]\nsource = \"{{faults}}\"\n[component.a-good.build]\ncommand = \"printf built > marker.txt\"\n\
         [component.b-bad]\nsource = \"{{faults}}\"\n[component.b-bad.build]\ncommand = \"echo 'error: it does not compile' >&2; exit 3\"\n\
         [component.c-after]\nsource = \"{{faults}}\"\n[component.c-after.build]\ncommand = \"touch after.txt\"\n"
    ));
    let manifest = app.manifest();
    let (status, _, stderr) = run_ledge(&["build", "-f", manifest.to_str().unwrap()]);
    assert!(!status.success());
    assert_eq!(
        std::fs::read_to_string(app.dir.path().join("marker.txt")).unwrap(),
        "built"
    );
    assert!(
        stderr.contains("error: it does not compile"),
        "the failing output is shown: {stderr}"
    );
    assert!(
        stderr.contains("building component `b-bad` failed"),
        "{stderr}"
    );
    assert!(
        !app.dir.path().join("after.txt").exists(),
        "the build stops at the first failure"
    );

    let (status, _, stderr) =
        run_ledge(&["build", "-f", manifest.to_str().unwrap(), "-c", "a-good"]);
    assert!(status.success(), "{stderr}");
}

#[test]
fn tls_serves_https() {
    let certificate = TestCertificate::new();
    let app = echo_app();
    let ledge = app.up(&certificate.args());
    assert!(ledge.url.starts_with("https://"), "{}", ledge.url);
    let client = certificate.client();
    let response = client.get(ledge.at("/fine")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "ok\n");
}
