//! Starting, restarting and stopping: the compile cache, graceful shutdown, start-up faults.

use std::time::Duration;

use crate::harness::{AppDir, HEADER, get, run_ledge};

fn echo_app() -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"faults\"\n[component.faults]\nsource = \"{{faults}}\"\n"
    ))
}

#[test]
fn the_second_start_loads_from_the_compile_cache() {
    let app = echo_app();
    let first = app.up(&[]);
    assert!(
        first.wait_for_log("ready in").contains("faults: compiled")
            || first.stderr().contains("compiled in")
    );
    assert!(!first.stderr().contains("loaded from the compile cache"));
    drop(first);
    let second = app.up(&[]);
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

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let app = echo_app();
    let ledge = app.up(&[]);
    let slow = {
        let url = ledge.at("/sleep");
        std::thread::spawn(move || get(&url))
    };
    std::thread::sleep(Duration::from_millis(400));
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
