//! Functions in other WASI languages, built from source with their own toolchains and served by
//! a real `ledge up`: their responses and their effects on the data tier.

use crate::harness::{AppDir, HEADER, client, get, python_guest};

#[test]
fn a_python_function_serves_http_and_uses_sqlite() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/shows/...\"\ncomponent = \"shows\"\n\
         [component.shows]\nsource = \"{}\"\nsqlite_databases = [\"default\"]\n",
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
}
