//! A bad app stops `ledge up` with one message naming the file, the line, the key and the fix.

use crate::harness::{AppDir, HEADER, run_ledge};

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let app = AppDir::new(&format!(
        "{HEADER}[component.echo]\nsource = \"{{echo}}\"\nenviroment = {{ A = \"b\" }}\n"
    ));
    let stderr = app.up_fails();
    assert!(
        stderr.contains("spin.toml:6") && stderr.contains("enviroment"),
        "{stderr}"
    );
}

#[test]
fn a_trigger_naming_a_missing_component_says_how_to_fix_it() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n"
    ));
    let stderr = app.up_fails();
    assert!(
        stderr.contains("spin.toml:6") && stderr.contains("trigger.http[0].component"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: add a `[component.nope]` table"),
        "{stderr}"
    );
}

#[test]
fn duplicate_and_bad_routes_are_rejected() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/a\"\ncomponent = \"echo\"\n[[trigger.http]]\nroute = \"/a\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"{{echo}}\"\n"
    ));
    assert!(
        app.up_fails()
            .contains("already used by the trigger on line 5")
    );
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/a/.../b\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{{echo}}\"\n"
    ));
    let stderr = app.up_fails();
    assert!(
        stderr.contains("trigger.http[0].route") && stderr.contains("last segment"),
        "{stderr}"
    );
}

#[test]
fn a_missing_or_invalid_wasm_is_named() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"gone\"\n[component.gone]\nsource = \"gone.wasm\"\n"
    ));
    let stderr = app.up_fails();
    assert!(
        stderr.contains("spin.toml:8")
            && stderr.contains("component.gone.source")
            && stderr.contains("does not exist"),
        "{stderr}"
    );

    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/\"\ncomponent = \"junk\"\n[component.junk]\nsource = \"junk.wasm\"\n"
    ));
    std::fs::write(app.dir.path().join("junk.wasm"), b"this is not wasm").unwrap();
    let stderr = app.up_fails();
    assert!(
        stderr.contains("component.junk.source") && stderr.contains("not WebAssembly"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_manifest_is_one_clear_line() {
    let (status, _, stderr) = run_ledge(&["up", "-f", "/nonexistent/spin.toml"]);
    assert!(!status.success());
    assert!(
        stderr.contains("/nonexistent/spin.toml") && stderr.contains("cannot read the manifest"),
        "{stderr}"
    );
}
