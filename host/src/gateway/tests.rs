//! The gateway as a whole: how the manifest's tables become policies, the order they run in,
//! and what a guarded route answers before any guest runs.

use std::net::IpAddr;
use std::path::Path;

use http::{Method, StatusCode, header};

use super::*;
use crate::manifest::App;

const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"a\"\n\
    [[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"api\"\n\
    [[trigger.http]]\nroute = \"/open\"\ncomponent = \"api\"\n\
    [component.api]\nsource = \"api.wasm\"\n";

/// The gateway's policies for a manifest with `text` appended to [`HEADER`].
fn configure(text: &str) -> Result<GatewayPolicies, ManifestError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spin.toml");
    std::fs::write(&file, format!("{HEADER}{text}")).unwrap();
    std::fs::write(dir.path().join("order.json"), r#"{"type": "object"}"#).unwrap();
    let app = App::load(&file).expect("the manifest is valid");
    GatewayPolicies::configure(&app.gateway)
}

/// The error a manifest with `text` appended is refused with.
fn refused(text: &str) -> ManifestError {
    match configure(text) {
        Err(error) => error,
        Ok(_) => panic!("accepted: {text}"),
    }
}

/// The summaries of a route's policies, in the order they run.
fn order(policies: &GatewayPolicies, route: &str) -> Vec<String> {
    policies.routes[route].iter().map(|p| p.summary()).collect()
}

async fn guard(text: &str, route: &str) -> Arc<RouteGuard> {
    let policies = configure(text).unwrap();
    let gateway = Gateway::build(
        policies,
        &GatewaySettings::default(),
        QuotaCounts::StateDir(Path::new(".")),
        &BTreeMap::new(),
    )
    .await
    .unwrap();
    gateway.guard(route).unwrap()
}

fn request(method: Method, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri("/open");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[test]
fn policies_run_by_stage_then_in_registry_order() {
    let policies = configure(
        "[application.tool.ledge.gateway]\n\
         cache = { ttl_seconds = 60 }\n\
         rate_limit = { per_second = 5, per = \"identity\" }\n\
         methods = [\"GET\"]\n\
         request_schema = \"order.json\"\n\
         cors = { allow_origins = [\"*\"] }\n\
         waf = { max_body_bytes = 10 }\n\
         [application.tool.ledge.routes.\"/open\"]\n\
         rate_limit = { per_second = 5 }\n\
         skip = [\"cache\", \"request_schema\"]\n",
    )
    .unwrap();
    // By identity, the throttle waits for the caller, so it runs with the cache, after the
    // anonymous stage.
    assert_eq!(
        order(&policies, "/api/..."),
        ["waf", "cors", "GET", "schema", "5/s burst 5", "cache 60s"]
    );
    // By client address it runs before any authorizer; skipped policies are gone.
    assert_eq!(
        order(&policies, "/open"),
        ["waf", "cors", "GET", "5/s burst 5"]
    );
}

#[test]
fn unguarded_routes_have_no_policies() {
    let policies = configure("[application.tool.ledge]\naccess_log = true\n").unwrap();
    assert!(policies.routes.is_empty());
    assert!(policies.app.is_empty());
}

#[test]
fn each_policy_names_the_line_and_the_fix() {
    let error = refused("[application.tool.ledge.gateway]\nmethods = [\"get\"]\n");
    assert_eq!(error.line, Some(13));
    assert_eq!(
        error.key.as_deref(),
        Some("application.tool.ledge.gateway.methods")
    );
    assert!(error.fix.unwrap().contains("upper case"));

    let error = refused("[application.tool.ledge.gateway]\nrate_limt = 1\n");
    assert_eq!(error.line, Some(13));
    assert!(
        error.message.contains("`rate_limt` is not a policy"),
        "{error}"
    );

    let error =
        refused("[application.tool.ledge.gateway]\nrate_limit = { per_second = 1, bust = 2 }\n");
    assert_eq!(error.line, Some(13));
    assert!(error.message.contains("bust"), "{error}");

    let error = refused("[application.tool.ledge.gateway]\nauth = \"users\"\n");
    assert!(error.message.contains("no authorizer `users`"));

    let error = refused("[application.tool.ledge.gateway]\nscopes = [\"read\"]\n");
    assert!(error.message.contains("need an authorizer"));

    let error = refused(
        "[application.tool.ledge.gateway]\ncors = { allow_origins = [\"*\"], allow_credentials = true }\n",
    );
    assert!(error.message.contains("browsers refuse"));

    let error = refused("[application.tool.ledge.routes.\"/open\"]\nskip = [\"wav\"]\n");
    assert_eq!(error.line, Some(13));
    assert!(error.message.contains("`wav` is not a policy"));

    let error = refused("[application.tool.ledge]\ntrusted_proxy = [\"10.0.0.0/8\"]\n");
    assert_eq!(error.line, Some(13));
    assert!(
        error.message.contains("`trusted_proxy` is not a setting"),
        "{error}"
    );

    let error = refused("[application.tool.ledge]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    assert!(
        error.message.contains("not an address or CIDR network"),
        "{error}"
    );
}

#[tokio::test]
async fn refusals_stop_the_guest_and_still_carry_cors_headers() {
    let guard = guard(
        "[application.tool.ledge.routes.\"/open\"]\n\
         methods = [\"GET\"]\n\
         cors = { allow_origins = [\"https://app.example\"] }\n\
         rate_limit = { per_second = 1, burst = 1 }\n",
        "/open",
    )
    .await;
    let origin = [("origin", "https://app.example")];
    let mut record = Record::default();

    // A refused method is answered by the gateway, readable by the allowed origin.
    let mut put = request(Method::PUT, &origin);
    let refusal = guard
        .admit(&mut put, CLIENT, &mut record)
        .await
        .err()
        .unwrap();
    assert_eq!(refusal.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refusal.headers()[header::ALLOW], "GET");
    assert_eq!(
        refusal.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    assert_eq!(record.outcome, Some("method-not-allowed"));

    // The method check runs before the throttle: the refused PUT took no token.
    let mut get = request(Method::GET, &origin);
    let admitted = guard.admit(&mut get, CLIENT, &mut record).await.unwrap();
    let response = guard
        .finish(admitted, crate::reply::text(StatusCode::OK, "hi"))
        .await;
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );

    let mut again = request(Method::GET, &[]);
    let throttled = guard
        .admit(&mut again, CLIENT, &mut record)
        .await
        .err()
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key(header::RETRY_AFTER));
    assert!(
        !throttled
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn the_gateway_derives_the_client_address_and_strips_forged_headers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spin.toml");
    std::fs::write(
        &file,
        format!("{HEADER}[application.tool.ledge]\ntrusted_proxies = [\"127.0.0.0/8\"]\n"),
    )
    .unwrap();
    let app = App::load(&file).unwrap();
    let policies = GatewayPolicies::configure(&app.gateway).unwrap();
    let counts = QuotaCounts::StateDir(dir.path());
    let gateway = Gateway::build(policies, &app.gateway, counts, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(gateway.summary(), "trusted proxies 127.0.0.0/8");
    let mut parts = request(
        Method::GET,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("ledge-client-addr", "192.0.2.1"),
            ("ledge-auth-subject", "admin"),
        ],
    );
    let client = gateway.arrive(&mut parts, CLIENT);
    assert_eq!(client.to_string(), "203.0.113.7");
    assert!(!parts.headers.contains_key("ledge-client-addr"));
    assert!(!parts.headers.contains_key("ledge-auth-subject"));
}
