//! Custom domains: several apps on one listener, each picked by the request's `Host` and base
//! path, the base path cut off before the app routes the request.

use crate::harness::{AppDir, Ledge, client, run_ledge};

/// An app named `name` answering `domains` (TOML array text, or `None` for every other host),
/// with `extra` triggers.
fn app(name: &str, domains: Option<&str>, triggers: &str) -> AppDir {
    let domains = domains.map_or(String::new(), |list| {
        format!("[application.tool.ledge]\ndomains = {list}\n")
    });
    AppDir::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"{name}\"\n{domains}{triggers}"
    ))
}

fn static_route(route: &str, body: &str) -> String {
    format!("[[trigger.http]]\nroute = \"{route}\"\nstatic_response = {{ body = \"{body}\" }}\n")
}

/// `GET path` with `Host: host`.
fn get_on(ledge: &Ledge, host: &str, path: &str) -> (u16, String) {
    let response = client()
        .get(ledge.at(path))
        .header("host", host)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn apps_are_chosen_by_host_and_base_path() {
    let api = app(
        "api",
        Some("[\"api.example.com/v1\", \"*.tenants.example\"]\naccess_log = true"),
        "[[trigger.http]]\nroute = \"/echo/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"{echo}\"\n",
    );
    let legacy = app(
        "legacy",
        Some("[\"api.example.com\"]"),
        &static_route("/...", "legacy"),
    );
    let site = app("site", None, &static_route("/...", "site"));
    let (api_manifest, legacy_manifest, site_manifest) =
        (api.manifest(), legacy.manifest(), site.manifest());
    let ledge = Ledge::up(&[
        "-f",
        api_manifest.to_str().unwrap(),
        "-f",
        legacy_manifest.to_str().unwrap(),
        "-f",
        site_manifest.to_str().unwrap(),
    ]);
    let listing = ledge.wait_for_stdout("App site on every other host:");
    assert!(
        listing.contains("App api on api.example.com/v1, *.tenants.example:"),
        "{listing}"
    );

    // The base path is cut off: the app routes `/echo/...`, and the guest sees `/echo/x`, while
    // `spin-full-url` keeps the URL the client asked for.
    let (status, body) = get_on(&ledge, "API.example.com:443", "/v1/echo/x?q=1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("path-with-query: /echo/x?q=1"), "{body}");
    assert!(
        body.contains("header spin-full-url: http://API.example.com:443/v1/echo/x?q=1"),
        "{body}"
    );
    assert!(body.contains("header spin-path-info: /x"), "{body}");
    // The access log has the path as the client sent it.
    let log = ledge.wait_for_stdout("\"path\":\"/v1/echo/x\"");
    assert!(log.contains("\"path\":\"/v1/echo/x\""), "{log}");

    // The same host without the base path (or under a longer look-alike) is another mapping.
    assert_eq!(get_on(&ledge, "api.example.com", "/echo/x").1, "legacy");
    assert_eq!(get_on(&ledge, "api.example.com", "/v10/echo/x").1, "legacy");

    // A wildcard matches subdomains only.
    assert_eq!(get_on(&ledge, "acme.tenants.example", "/echo/y").0, 200);
    assert_eq!(get_on(&ledge, "tenants.example", "/echo/y").1, "site");

    // Everything else goes to the app without `domains`.
    assert_eq!(get_on(&ledge, "localhost", "/v1/echo/x").1, "site");
    // Each app keeps its own well-known endpoints.
    let (_, info) = get_on(&ledge, "api.example.com", "/v1/.well-known/spin/info");
    assert!(info.contains("\"app\":\"api\""), "{info}");
}

#[test]
fn without_a_catch_all_app_unmapped_hosts_get_404() {
    let api = app(
        "api",
        Some("[\"api.example.com/v1\"]"),
        &static_route("/...", "api"),
    );
    let ledge = api.up(&[]);
    assert_eq!(get_on(&ledge, "api.example.com", "/v1/anything").1, "api");
    let (status, body) = get_on(&ledge, "other.example.com", "/v1/anything");
    assert_eq!(status, 404);
    assert!(
        body.contains("no app is mapped to `other.example.com/v1/anything`"),
        "{body}"
    );
}

/// Runs `ledge up` on `apps` together, which must fail; its error output.
fn refused_together(apps: &[&AppDir]) -> String {
    let manifests: Vec<String> = apps
        .iter()
        .map(|app| app.manifest().to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["up"];
    for manifest in &manifests {
        args.extend(["-f", manifest]);
    }
    let (status, _, stderr) = run_ledge(&args);
    assert!(!status.success(), "ledge up accepted {manifests:?}");
    stderr
}

#[test]
fn conflicting_domains_are_refused_naming_both_manifests() {
    let first = app(
        "one",
        Some("[\"a.example.com/v1\"]"),
        &static_route("/", "1"),
    );
    let second = app(
        "two",
        Some("[\"A.example.com/v1/\"]"),
        &static_route("/", "2"),
    );
    let stderr = refused_together(&[&first, &second]);
    assert!(
        stderr.contains("both claim the domain `a.example.com/v1`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(first.manifest().to_str().unwrap()),
        "{stderr}"
    );

    let third = app("three", None, &static_route("/", "3"));
    let fourth = app("four", None, &static_route("/", "4"));
    let stderr = refused_together(&[&third, &fourth]);
    assert!(stderr.contains("both list no `domains`"), "{stderr}");

    let bad = app(
        "bad",
        Some("[\"https://a.example.com\"]"),
        &static_route("/", "x"),
    );
    let stderr = refused_together(&[&bad]);
    assert!(stderr.contains("spin.toml:5:"), "{stderr}");
    assert!(stderr.contains("without a scheme"), "{stderr}");
}
