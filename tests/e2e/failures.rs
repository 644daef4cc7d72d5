//! A misbehaving guest gets a status, a log line naming it, and nobody else notices.

use crate::harness::{AppDir, HEADER, Ledge, client, get};

fn faults_app() -> AppDir {
    AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/faults/...\"\ncomponent = \"faults\"\n\
         [[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n\
         [component.faults]\nsource = \"{{faults}}\"\n[component.hello]\nsource = \"{{hello}}\"\n"
    ))
}

fn still_serving(ledge: &Ledge) {
    assert_eq!(get(&ledge.at("/faults/fine")), (200, "ok\n".to_string()));
    assert_eq!(get(&ledge.at("/hello")).0, 200);
}

#[test]
fn a_trapping_guest_answers_500_and_is_logged() {
    let app = faults_app();
    let ledge = app.up(&[]);
    let (status, body) = get(&ledge.at("/faults/trap"));
    assert_eq!((status, body.as_str()), (500, "Internal Server Error\n"));
    let log = ledge.wait_for_log("the guest failed");
    assert!(
        log.contains("component=\"faults\"") || log.contains("component=faults"),
        "{log}"
    );
    // The guest's own output reaches the log through its writer thread, so it may come after
    // ledge's line about the failure.
    let log = ledge.wait_for_log("the guest was asked to trap");
    assert!(
        log.contains("the guest was asked to trap"),
        "the guest's panic message is logged: {log}"
    );
    still_serving(&ledge);
}

#[test]
fn a_guest_that_never_returns_times_out_with_504() {
    let app = faults_app();
    let ledge = app.up(&["--request-timeout", "1s", "--admin-listen", "127.0.0.1:0"]);
    let looping = {
        let url = ledge.at("/faults/loop");
        std::thread::spawn(move || get(&url))
    };
    // While one instance spins, the others keep answering.
    ledge.wait_in_flight("faults");
    still_serving(&ledge);
    let (status, body) = looping.join().unwrap();
    assert_eq!((status, body.as_str()), (504, "Gateway Timeout\n"));
    assert!(
        ledge
            .wait_for_log("within the request timeout")
            .contains("faults")
    );
    still_serving(&ledge);
}

#[test]
fn a_guest_that_allocates_without_bound_answers_500() {
    let app = faults_app();
    let ledge = app.up(&["--max-instance-memory", "64MiB"]);
    let (status, _) = get(&ledge.at("/faults/alloc"));
    assert_eq!(status, 500);
    assert!(ledge.wait_for_log("the guest failed").contains("faults"));
    still_serving(&ledge);
}

#[test]
fn an_oversize_body_gets_413_before_the_guest_runs() {
    let app = faults_app();
    let ledge = app.up(&["--max-request-body-size", "1KiB"]);
    let response = client()
        .post(ledge.at("/faults/fine"))
        .body(vec![0u8; 4096])
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().unwrap().contains("over 1024 bytes"));
    let small = client()
        .post(ledge.at("/faults/fine"))
        .body(vec![0u8; 512])
        .send()
        .unwrap();
    assert_eq!(small.status(), 200);
}

#[test]
fn guest_output_goes_to_the_log_and_the_component_log_file() {
    let app = faults_app();
    let state = tempfile::tempdir().unwrap();
    let ledge = app.up(&["--state-dir", state.path().to_str().unwrap()]);
    assert_eq!(get(&ledge.at("/faults/log")), (200, "logged\n".to_string()));
    let log = ledge.wait_for_log("a line on stderr");
    assert!(
        log.contains("a line on stdout") && log.contains("faults"),
        "{log}"
    );
    let file = std::fs::read_to_string(state.path().join("logs/faults.log")).unwrap();
    assert!(
        file.contains("a line on stdout\n") && file.contains("a line on stderr\n"),
        "{file}"
    );
}

#[test]
fn environment_and_read_only_files_reach_the_guest() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"faults\"\n\
         [component.faults]\nsource = \"{{faults}}\"\nenvironment = {{ GREETING = \"from-manifest\" }}\n\
         files = [{{ source = \"assets\", destination = \"/data\" }}]\n"
    ));
    std::fs::create_dir(app.dir.path().join("assets")).unwrap();
    std::fs::write(app.dir.path().join("assets/message.txt"), "mounted").unwrap();
    let ledge = app.up(&[]);
    assert_eq!(
        get(&ledge.at("/env")),
        (200, "GREETING=from-manifest\nfile=mounted".to_string())
    );
    assert_eq!(
        get(&ledge.at("/write")),
        (200, "write refused\n".to_string())
    );
    drop(ledge);
    let ledge = app.up(&["-e", "GREETING=from-the-command-line"]);
    assert_eq!(
        get(&ledge.at("/env")).1,
        "GREETING=from-the-command-line\nfile=mounted"
    );
}

#[test]
fn an_import_ledge_does_not_provide_fails_only_the_call() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"counter\"\n\
         [component.counter]\nsource = \"{{counter}}\"\nkey_value_stores = [\"default\"]\n"
    ));
    let ledge = app.up(&[]);
    let warning = ledge.wait_for_log("imports interfaces ledge does not provide");
    assert!(warning.contains("ledge:kv-counter/unprovided"), "{warning}");
    let (status, _) = get(&ledge.at("/kv/unprovided"));
    assert_eq!(status, 500);
    ledge.wait_for_log("the guest failed");
    let log = ledge.wait_for_log("has not been defined");
    assert!(
        log.contains("the guest called `ledge:kv-counter/unprovided#"),
        "{log}"
    );
    // The component's other routes, and the component itself, keep working.
    assert_eq!(get(&ledge.at("/kv/increment/n")).0, 200);
    assert_eq!(get(&ledge.at("/kv/unprovided")).0, 500);
    assert_eq!(get(&ledge.at("/kv/get/n")), (200, "1".to_string()));
}

#[test]
fn follow_prints_only_the_named_components_output() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/loud/...\"\ncomponent = \"loud\"\n\
         [[trigger.http]]\nroute = \"/muted/...\"\ncomponent = \"muted\"\n\
         [component.loud]\nsource = \"{{faults}}\"\n[component.muted]\nsource = \"{{faults}}\"\n"
    ));
    let state = tempfile::tempdir().unwrap();
    let ledge = app.up(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "--follow",
        "loud",
        "--direct-mounts",
    ]);
    // The muted component speaks first; once the loud one's line is printed, the muted one's
    // would have been too.
    assert_eq!(get(&ledge.at("/muted/log")), (200, "logged\n".to_string()));
    assert_eq!(get(&ledge.at("/loud/log")), (200, "logged\n".to_string()));
    let log = ledge.wait_for_log("a line on stderr");
    let printed: Vec<&str> = log.lines().filter(|l| l.contains("a line on")).collect();
    assert!(!printed.is_empty(), "{log}");
    assert!(printed.iter().all(|l| l.contains("loud")), "{log}");
    // Both still write their log files.
    for component in ["loud", "muted"] {
        let file =
            std::fs::read_to_string(state.path().join(format!("logs/{component}.log"))).unwrap();
        assert!(file.contains("a line on stdout\n"), "{component}: {file}");
    }

    let stderr = app.up_fails_with(&["--follow", "nobody"]);
    assert!(
        stderr.contains("--follow nobody: no component has that id")
            && stderr.contains("loud, muted"),
        "{stderr}"
    );
}
