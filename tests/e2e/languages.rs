//! Functions in other WASI languages, built from source with their own toolchains and served by
//! a real `ledge up`: their responses and their effects on the data tier.

use crate::harness::{
    AppDir, HEADER, c_guest, client, get, guests, javascript_guest, python_guest,
};

#[test]
fn a_python_function_serves_http_and_uses_sqlite_key_value_and_variables() {
    // Built with the newest Python SDK, whose world imports the `@0.3.0-rc-2026-03-15` WASI
    // set beside 0.2.x and 0.3.0 (see `components/shows-py/requirements.txt`).
    let app = AppDir::new(&format!(
        "{HEADER}[variables]\nvenue = {{ default = \"The Old Vic\" }}\n\
         [[trigger.http]]\nroute = \"/shows/...\"\ncomponent = \"shows\"\n\
         [component.shows]\nsource = \"{}\"\nsqlite_databases = [\"default\"]\n\
         key_value_stores = [\"default\"]\n\
         [component.shows.variables]\nvenue = \"{{{{ venue }}}}\"\n",
        python_guest().display()
    ));
    let state = app.dir.path().join("state");
    let migration = format!(
        "@{}",
        crate::harness::repo_root()
            .join("migrations/001_shows.sql")
            .display()
    );
    let ledge = app.up(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--sqlite",
        &migration,
    ]);
    let (status, shows) = get(&ledge.at("/shows"));
    assert_eq!(status, 200, "{shows}");
    let shows: serde_json::Value = serde_json::from_str(&shows).unwrap();
    assert_eq!(shows[0]["title"], "Opening Night");
    assert_eq!(shows.as_array().unwrap().len(), 3);

    let added = client()
        .post(ledge.at("/shows"))
        .body(r#"{"title": "Encore", "starts_at": "2026-12-03T20:00:00Z"}"#)
        .send()
        .unwrap();
    assert_eq!(added.status(), 201);
    assert_eq!(added.text().unwrap(), r#"{"id": 4}"#);
    let bad = client().post(ledge.at("/shows")).body("{}").send().unwrap();
    assert_eq!(bad.status(), 400);

    // The row is in the SQLite file.
    let db = rusqlite::Connection::open(state.join("sqlite/default.db")).unwrap();
    let title: String = db
        .query_row("SELECT title FROM shows WHERE id = 4", [], |row| row.get(0))
        .unwrap();
    assert_eq!(title, "Encore");

    // Key-value: each like is counted in the store.
    for likes in 1..=2 {
        let liked = client().post(ledge.at("/shows/4/likes")).send().unwrap();
        assert_eq!(liked.status(), 200);
        assert_eq!(
            liked.text().unwrap(),
            format!(r#"{{"show": "4", "likes": {likes}}}"#)
        );
    }
    // Variables: the component's variable, from the application's default.
    assert_eq!(
        get(&ledge.at("/shows/venue")),
        (200, r#"{"venue": "The Old Vic"}"#.into())
    );
}

#[test]
fn a_javascript_function_serves_http_and_uses_key_value() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/js/...\"\ncomponent = \"js\"\n\
         [component.js]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
        javascript_guest().display()
    ));
    let state = app.dir.path().join("state");
    let ledge = app.up(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--key-value",
        "js-visits=41",
    ]);
    assert_eq!(
        get(&ledge.at("/js")),
        (200, r#"{"language":"javascript","visits":42}"#.into())
    );
    assert_eq!(
        get(&ledge.at("/js/kv/color")),
        (404, r#"{"error":"not found","key":"color"}"#.into())
    );
    let put = client()
        .put(ledge.at("/js/kv/color"))
        .body("teal")
        .send()
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(get(&ledge.at("/js/kv/color")), (200, "teal".into()));
    let post = client().post(ledge.at("/js")).send().unwrap();
    assert_eq!(post.status(), 405);

    // Both keys are in the store's SQLite file.
    drop(ledge);
    let db = rusqlite::Connection::open(state.join("kv/default.db")).unwrap();
    let mut keys: Vec<String> = db
        .prepare("SELECT key FROM kv ORDER BY key")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    keys.sort();
    assert_eq!(keys, ["color", "js-visits"]);
}

#[test]
fn a_c_function_runs_cgi_style() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/c/...\"\ncomponent = \"c\"\n\
         executor = {{ type = \"wagi\" }}\n\
         [component.c]\nsource = \"{}\"\n",
        c_guest().display()
    ));
    let ledge = app.up(&["--request-timeout", "1s"]);
    let hello = client().get(ledge.at("/c/hello?name=Ada")).send().unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.headers()["content-type"], "application/json");
    assert_eq!(
        hello.text().unwrap(),
        "{\"hello\":\"Ada\",\"method\":\"GET\",\"route\":\"/c/...\",\"language\":\"c\"}\n"
    );
    let shout = client()
        .post(ledge.at("/c/shout"))
        .body("quiet words")
        .send()
        .unwrap();
    assert_eq!(shout.status(), 200);
    assert_eq!(shout.headers()["x-content-length"], "11");
    assert_eq!(shout.text().unwrap(), "QUIET WORDS");
    // `Status:` lines set the status; headers pass through.
    let refused = client().get(ledge.at("/c/shout")).send().unwrap();
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()["allow"], "POST");
    assert_eq!(
        get(&ledge.at("/c/elsewhere")),
        (404, "no route for /elsewhere\n".into())
    );
    // A non-zero exit is a 500, logged with the command's stderr, and the next request is
    // served. (WASI 0.2's exit carries success or failure, not the code.)
    assert_eq!(get(&ledge.at("/c/fail")).0, 500);
    ledge.wait_for_log("the command exited with code 1");
    // The command's stderr reaches the log through its writer thread, maybe after that line.
    let log = ledge.wait_for_log("failing on purpose");
    assert!(log.contains("failing on purpose"), "{log}");
    assert_eq!(get(&ledge.at("/c/hello")).0, 200);
    // A command that never ends is cut off at the request timeout.
    assert_eq!(get(&ledge.at("/c/forever")).0, 504);
    assert_eq!(get(&ledge.at("/c/hello")).0, 200);
}

#[test]
fn a_c_command_without_the_wagi_executor_is_refused_with_the_fix() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"{}\"\n",
        c_guest().display()
    ));
    let (status, _, stderr) = crate::harness::run_ledge(&[
        "up",
        "-f",
        app.manifest().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("executor = { type = \"wagi\" }"),
        "{stderr}"
    );
}

#[test]
fn a_function_written_with_the_ledge_sdk_routes_and_speaks_json() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/sdk/...\"\ncomponent = \"sdk\"\n\
         [component.sdk]\nsource = \"{}\"\n",
        guests().hello_sdk.display()
    ));
    let ledge = app.up(&[]);
    assert_eq!(
        get(&ledge.at("/sdk/hello/J%C3%BCrgen%20X")),
        (200, r#"{"hello":"Jürgen X"}"#.into())
    );
    let json = |body: &'static str| {
        let response = client()
            .post(ledge.at("/sdk/echo"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(
        json(r#"{"message":"hi"}"#),
        (200, r#"{"echo":"hi"}"#.into())
    );
    let (status, error) = json(r#"{"msg":1}"#);
    assert_eq!(status, 400);
    assert!(error.contains("missing field `message`"), "{error}");
    let form = client()
        .post(ledge.at("/sdk/echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=hi")
        .send()
        .unwrap();
    assert_eq!(form.status(), 415);
    let wrong_method = client().get(ledge.at("/sdk/echo")).send().unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_eq!(
        get(&ledge.at("/sdk/nope")),
        (404, r#"{"error":"no route for /nope"}"#.into())
    );
}
