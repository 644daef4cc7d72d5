//! The API gateway, end to end: every policy answers before the guest runs. The guest behind
//! the guarded routes is `kv-counter`, and `/count/...` (unguarded, same component, same
//! store) reads how many times it really ran, which proves the refused requests never did.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::harness::{AppDir, HEADER, Ledge, client, get, repo_root};

/// An app with the counter guest on `/api/...` (guarded by `policies`, TOML lines for
/// `[application.tool.ledge.routes."/api/..."]`) and on `/count/...` (open), the echo guest on
/// `/echo/...` (open) and `/whoami/...` (guarded by `whoami`), and `extra` manifest text.
fn gateway_app(policies: &str, whoami: &str, extra: &str) -> AppDir {
    let app = AppDir::new(&format!(
        "{HEADER}\
         [[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"counter\"\n\
         [[trigger.http]]\nroute = \"/count/...\"\ncomponent = \"counter\"\n\
         [[trigger.http]]\nroute = \"/echo/...\"\ncomponent = \"echo\"\n\
         [[trigger.http]]\nroute = \"/whoami/...\"\ncomponent = \"echo\"\n\
         [component.counter]\nsource = \"{{counter}}\"\nkey_value_stores = [\"default\"]\n\
         [component.echo]\nsource = \"{{echo}}\"\n\
         [application.tool.ledge.routes.\"/api/...\"]\n{policies}\n\
         [application.tool.ledge.routes.\"/whoami/...\"]\n{whoami}\n\
         {extra}"
    ));
    std::fs::copy(
        repo_root().join("tests/fixtures/jwt/jwks.json"),
        app.dir.path().join("jwks.json"),
    )
    .unwrap();
    app
}

/// How many times the counter guest really handled `/api/increment/<key>`.
fn runs(ledge: &Ledge, key: &str) -> u64 {
    let (status, body) = get(&ledge.at(&format!("/count/get/{key}")));
    match status {
        404 => 0,
        200 => body.parse().unwrap(),
        _ => panic!("counting failed: {status} {body}"),
    }
}

#[test]
fn methods_cors_and_throttling_answer_before_the_guest() {
    let app = gateway_app(
        "methods = [\"POST\"]\n\
         rate_limit = { per_second = 1, burst = 3 }\n\
         cors = { allow_origins = [\"https://app.example\"], allow_methods = [\"POST\"], allow_headers = [\"content-type\"], max_age = 600 }",
        "methods = [\"GET\"]",
        "",
    );
    let ledge = app.up(&[]);
    let client = client();
    let url = ledge.at("/api/increment/calls");

    // Method routing: 405 with `Allow`, no token taken, no guest run.
    let response = client.get(&url).send().unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    // A preflight is answered by the gateway.
    let response = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(response.status(), 204);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["access-control-allow-methods"], "POST");
    assert_eq!(headers["access-control-allow-headers"], "content-type");
    assert_eq!(headers["access-control-max-age"], "600");
    let response = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // Burst of 3 at 1/s: six quick requests get at least one 429 with `Retry-After`, and
    // the guest ran exactly as often as a request was let through.
    let mut passed = 0;
    let mut throttled = 0;
    for _ in 0..6 {
        let response = client
            .post(&url)
            .header("origin", "https://app.example")
            .send()
            .unwrap();
        match response.status().as_u16() {
            200 => {
                passed += 1;
                assert_eq!(
                    response.headers()["access-control-allow-origin"],
                    "https://app.example"
                );
            }
            429 => {
                throttled += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        passed >= 3 && throttled >= 1,
        "{passed} passed, {throttled} throttled"
    );
    assert_eq!(runs(&ledge, "calls"), passed);

    // A route without policies is untouched: any method reaches the guest.
    let (status, _) = get(&ledge.at("/echo/anything"));
    assert_eq!(status, 200);
}

/// Signs `claims` with `key` (a PEM file under tests/fixtures/jwt) as RS256, kid `test-key`.
fn rs256(key: &str, claims: &serde_json::Value) -> String {
    rs256_with_kid(key, "test-key", claims)
}

/// Signs `claims` with `key` as RS256, naming `kid` in the header.
fn rs256_with_kid(key: &str, kid: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(repo_root().join("tests/fixtures/jwt").join(key)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(audience: &str, expires_in: i64, scope: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": "user-42",
        "iss": "https://issuer.test",
        "aud": audience,
        "exp": now() as i64 + expires_in,
        "scope": scope,
    })
}

#[test]
fn jwt_authorizer_refuses_forged_tokens_and_passes_the_identity() {
    let authorizer = "[application.tool.ledge.authorizers.users]\n\
                      type = \"jwt\"\njwks = \"jwks.json\"\nissuer = \"https://issuer.test\"\n\
                      audience = [\"tickets\"]\nalgorithms = [\"RS256\"]\nleeway_seconds = 5\n";
    let app = gateway_app(
        "auth = \"users\"\nscopes = [\"tickets:write\"]",
        "auth = \"users\"",
        authorizer,
    );
    let ledge = app.up(&[]);
    let client = client();
    let url = ledge.at("/api/increment/calls");
    let call = |token: Option<&str>| {
        let mut request = client.post(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (
            response.status().as_u16(),
            challenge,
            response.text().unwrap(),
        )
    };

    let (status, challenge, _) = call(None);
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));

    let good = rs256(
        "issuer.pem",
        &claims("tickets", 300, "tickets:read tickets:write"),
    );
    assert_eq!(call(Some(&good)).0, 200);

    let expired = rs256("issuer.pem", &claims("tickets", -120, "tickets:write"));
    let (status, challenge, body) = call(Some(&expired));
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    assert!(challenge.unwrap().contains("invalid_token"));

    let elsewhere = rs256("issuer.pem", &claims("billing", 300, "tickets:write"));
    let (status, _, body) = call(Some(&elsewhere));
    assert_eq!(status, 401);
    assert!(body.contains("audience"), "{body}");

    let stranger = rs256("stranger.pem", &claims("tickets", 300, "tickets:write"));
    let (status, _, body) = call(Some(&stranger));
    assert_eq!(status, 401);
    assert!(body.contains("signature"), "{body}");

    // `alg: none`: no signature at all.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT","kid":"test-key"}"#),
        b64.encode(claims("tickets", 300, "tickets:write").to_string())
    );
    assert_eq!(call(Some(&unsigned)).0, 401);

    // Key confusion: HS256 with the issuer's public key as the HMAC secret.
    let public = std::fs::read(repo_root().join("tests/fixtures/jwt/issuer.pub.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims("tickets", 300, "tickets:write"),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    let (status, _, body) = call(Some(&confused));
    assert_eq!(status, 401);
    assert!(body.contains("HS256"), "{body}");

    // A valid token without the route's scope: 403.
    let reader = rs256("issuer.pem", &claims("tickets", 300, "tickets:read"));
    let (status, challenge, _) = call(Some(&reader));
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("insufficient_scope"));

    // Only the one good call ran the guest.
    assert_eq!(runs(&ledge, "calls"), 1);

    // The verified identity reaches the guest; forged identity headers never do.
    let response = client
        .get(ledge.at("/whoami/x"))
        .bearer_auth(&good)
        .header("ledge-auth-subject", "admin")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.text().unwrap();
    assert!(
        seen.contains("header ledge-auth-subject: user-42\n"),
        "{seen}"
    );
    assert!(
        seen.contains("header ledge-auth-authorizer: users\n"),
        "{seen}"
    );
    assert!(!seen.contains("admin"), "{seen}");
    let response = client
        .get(ledge.at("/echo/x"))
        .header("ledge-auth-subject", "admin")
        .send()
        .unwrap();
    let seen = response.text().unwrap();
    assert!(!seen.contains("ledge-auth-subject"), "{seen}");
}

#[test]
fn the_cache_answers_hits_without_the_guest() {
    let app = gateway_app(
        "cache = { ttl_seconds = 60 }",
        "methods = [\"GET\"]",
        "[application.tool.ledge]\naccess_log = true\nrequest_id_header = \"x-correlation-id\"\n",
    );
    let ledge = app.up(&["--admin-listen", "127.0.0.1:0"]);
    let client = client();

    let first = client.get(ledge.at("/api/increment/hits")).send().unwrap();
    assert!(!first.headers().contains_key("age"));
    assert_eq!(first.text().unwrap(), "1");
    let second = client
        .get(ledge.at("/api/increment/hits"))
        .header("x-correlation-id", "trace-7")
        .send()
        .unwrap();
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.headers()["x-request-id"], "trace-7");
    assert_eq!(second.text().unwrap(), "1");
    assert_eq!(runs(&ledge, "hits"), 1);

    // The query is part of the key; `no-store` from the guest keeps a response out.
    assert_eq!(get(&ledge.at("/api/increment/hits?page=2")).1, "2");
    assert_eq!(
        get(&ledge.at("/api/increment/hits?cache-control=no-store")).1,
        "3"
    );
    assert_eq!(
        get(&ledge.at("/api/increment/hits?cache-control=no-store")).1,
        "4"
    );
    assert_eq!(runs(&ledge, "hits"), 4);

    // Every request has an id and an access-log line saying what the gateway did.
    let log = ledge.wait_for_stdout("\"id\":\"trace-7\"");
    let line = log.lines().find(|l| l.contains("trace-7")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["outcome"], "cache-hit");
    assert_eq!(entry["route"], "/api/...");
    assert_eq!(entry["status"], 200);
    let (_, _) = get(&ledge.at("/echo/x"));
    let log = ledge.wait_for_stdout("\"path\":\"/echo/x\"");
    assert!(log.contains("\"component\":\"echo\""), "{log}");

    // Prometheus metrics on the admin listener, not on the app's port.
    let admin = log
        .lines()
        .find_map(|line| line.strip_prefix("Metrics on "))
        .expect("the admin address is printed")
        .to_string();
    assert_eq!(get(&ledge.at("/metrics")).0, 404);
    let (status, metrics) = get(&admin);
    assert_eq!(status, 200);
    let count = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("ledge_requests_total{")
                    && l.contains("app=\"test-app\"")
                    && l.contains("route=\"/api/...\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    assert_eq!(count("cache-hit"), Some(1), "{metrics}");
    assert_eq!(count("guest"), Some(4), "{metrics}");
    assert!(
        metrics
            .contains("ledge_request_duration_seconds_bucket{app=\"test-app\",route=\"/api/...\"")
    );
    assert!(
        metrics.contains("ledge_instances_created_total{app=\"test-app\",component=\"counter\"}")
    );
}

#[test]
fn the_waf_blocks_addresses_oversize_requests_and_injections() {
    let app = gateway_app(
        "waf = { deny_ips = [\"127.0.0.0/8\"] }",
        "waf = { allow_ips = [\"::1\", \"127.0.0.1\"], max_uri_bytes = 200, max_header_bytes = 2000, max_body_bytes = 200, block_injection = true }",
        "",
    );
    let ledge = app.up(&[]);
    let client = client();

    let (status, body) = get(&ledge.at("/api/increment/calls"));
    assert_eq!(status, 403);
    assert!(body.contains("client address not allowed"), "{body}");
    assert_eq!(runs(&ledge, "calls"), 0);
    assert!(
        ledge
            .wait_for_log("blocked by the WAF")
            .contains("rule=\"client address not allowed\"")
    );

    assert_eq!(get(&ledge.at("/whoami/short?name=O%27Brien")).0, 200);
    assert_eq!(
        get(&ledge.at(&format!("/whoami/{}", "a".repeat(250)))).0,
        414
    );
    let response = client
        .get(ledge.at("/whoami/x"))
        .header("x-padding", "b".repeat(3000))
        .send()
        .unwrap();
    assert_eq!(response.status(), 431);
    let response = client
        .post(ledge.at("/whoami/x"))
        .body("c".repeat(300))
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);

    // SQL injection and XSS in the query, a form and a JSON body: 403 naming the rule.
    let (status, body) = get(&ledge.at("/whoami/x?id=1%27%20OR%20%271%27%3D%271"));
    assert_eq!(status, 403);
    assert!(
        body.contains("SQL injection in query parameter `id`"),
        "{body}"
    );
    let response = client
        .post(ledge.at("/whoami/x"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .unwrap()
            .contains("cross-site scripting in form field `comment`")
    );
    let response = client
        .post(ledge.at("/whoami/x"))
        .header("content-type", "application/json")
        .body(r#"{"user": {"name": "x' UNION SELECT password FROM users --"}}"#)
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().unwrap().contains("JSON field `user.name`"));
    // A clean body is screened and then reaches the guest whole.
    let response = client
        .post(ledge.at("/whoami/x"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().unwrap().contains("body-length: 5"));
}

#[test]
fn a_component_at_its_concurrency_cap_answers_503() {
    let app = AppDir::new(&format!(
        "{HEADER}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"faults\"\n\
         [component.faults]\nsource = \"{{faults}}\"\n\
         [component.faults.tool.ledge]\nmax_concurrent_requests = 1\n"
    ));
    let ledge = app.up(&["--admin-listen", "127.0.0.1:0"]);
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| get(&ledge.at("/sleep")));
        // Wait until the slow request holds the only slot.
        ledge.wait_in_flight("faults");
        let response = client().get(ledge.at("/fine")).send().unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(slow.join().unwrap().0, 200);
    });
    assert_eq!(get(&ledge.at("/fine")), (200, "ok\n".into()));
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn api_keys_hold_each_caller_to_its_usage_plan() {
    let keys = format!(
        "[[key]]\nid = \"acme\"\nsha256 = \"{}\"\nplan = \"daily\"\n\
         [[key]]\nid = \"beta\"\nsha256 = \"{}\"\nplan = \"slow\"\n\
         [[key]]\nid = \"gamma\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
        sha256_hex(b"acme-key-1"),
        sha256_hex(b"beta-key-2"),
        sha256_hex(b"gamma-key-3"),
    );
    let authorizer = "[application.tool.ledge.authorizers.partners]\n\
                      type = \"api_key\"\nkeys_file = \"api-keys.toml\"\n\
                      plans = { daily = { quota = 3, quota_period = \"day\" }, slow = { per_second = 1, burst = 1 } }\n";
    let app = gateway_app(
        "auth = \"partners\"",
        "auth = \"partners\"\nscopes = [\"read\"]",
        authorizer,
    );
    std::fs::write(app.dir.path().join("api-keys.toml"), keys).unwrap();
    let ledge = app.up(&[]);
    let client = client();
    let call = |key: Option<&str>| {
        let mut request = client.post(ledge.at("/api/increment/calls"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().unwrap();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (response.status().as_u16(), retry, response.text().unwrap())
    };

    assert_eq!(call(None).0, 401);
    assert_eq!(call(Some("not-a-key")).0, 401);
    for _ in 0..3 {
        assert_eq!(call(Some("acme-key-1")).0, 200);
    }
    let (status, retry, body) = call(Some("acme-key-1"));
    assert_eq!(status, 429);
    assert!(body.contains("quota of 3 requests per day"), "{body}");
    assert!(
        retry.is_some_and(|s| (1..=86_400).contains(&s)),
        "{retry:?}"
    );
    assert_eq!(call(Some("beta-key-2")).0, 200);
    let (status, retry, _) = call(Some("beta-key-2"));
    assert_eq!((status, retry), (429, Some(1)));
    assert_eq!(runs(&ledge, "calls"), 4);

    // The key's id and scopes reach the guest; a key without the route's scope is refused.
    let response = client
        .get(ledge.at("/whoami/x"))
        .header("x-api-key", "gamma-key-3")
        .send()
        .unwrap();
    let seen = response.text().unwrap();
    assert!(
        seen.contains("header ledge-auth-subject: gamma\n"),
        "{seen}"
    );
    assert!(
        seen.contains("header ledge-auth-authorizer: partners\n"),
        "{seen}"
    );
    let response = client
        .get(ledge.at("/whoami/x"))
        .header("x-api-key", "beta-key-2")
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);

    // Quota counts are durable once a call is let through: they survive a crash.
    drop(ledge);
    let ledge = app.up(&[]);
    let response = client
        .post(ledge.at("/api/increment/calls"))
        .header("x-api-key", "acme-key-1")
        .send()
        .unwrap();
    assert_eq!(response.status(), 429);
}

#[test]
fn a_quota_that_cannot_be_counted_refuses_the_call_with_503() {
    let keys = format!(
        "[[key]]\nid = \"acme\"\nsha256 = \"{}\"\nplan = \"daily\"\n",
        sha256_hex(b"acme-key-1"),
    );
    let authorizer = "[application.tool.ledge.authorizers.partners]\n\
                      type = \"api_key\"\nkeys_file = \"api-keys.toml\"\n\
                      plans = { daily = { quota = 100, quota_period = \"day\" } }\n";
    let app = gateway_app("auth = \"partners\"", "", authorizer);
    std::fs::write(app.dir.path().join("api-keys.toml"), keys).unwrap();
    let ledge = app.up(&[]);
    let call = || {
        let response = client()
            .post(ledge.at("/api/increment/calls"))
            .header("x-api-key", "acme-key-1")
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(call().0, 200);
    // Another process holds the counts' database locked: the count cannot be written, so
    // the call is refused rather than let through uncounted.
    let counts = rusqlite::Connection::open(app.dir.path().join(".ledge/host/gateway.db")).unwrap();
    counts.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, body) = call();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("quota cannot be counted"), "{body}");
    counts.execute_batch("ROLLBACK").unwrap();
    assert_eq!(call().0, 200);
    assert_eq!(
        runs(&ledge, "calls"),
        2,
        "the refused call never reached the guest"
    );
}

/// Signs a request the way the HMAC authorizer checks it.
struct Signer<'a> {
    key_id: &'a str,
    secret: &'a [u8],
    host: String,
}

impl Signer<'_> {
    /// The `authorization`, `x-ledge-date` and `x-ledge-content-sha256` headers for
    /// `method path?query` with `body`, signed at `date`.
    fn headers(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        date: u64,
    ) -> [(String, String); 3] {
        use hmac::Mac as _;
        let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        let body_hash = sha256_hex(body);
        let canonical = [
            method.to_string(),
            path.to_string(),
            pairs.join("&"),
            format!("host:{}", self.host),
            date.to_string(),
            body_hash.clone(),
        ]
        .join("\n");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret).unwrap();
        mac.update(canonical.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        [
            (
                "authorization".into(),
                format!(
                    "LEDGE-HMAC-SHA256 Credential={}, SignedHeaders=host, Signature={signature}",
                    self.key_id
                ),
            ),
            ("x-ledge-date".into(), date.to_string()),
            ("x-ledge-content-sha256".into(), body_hash),
        ]
    }
}

#[test]
fn hmac_signatures_refuse_tampering_and_replays() {
    let authorizer = "[application.tool.ledge.authorizers.signed]\n\
                      type = \"hmac\"\nkeys_file = \"hmac-keys.toml\"\nsigned_headers = [\"host\"]\n\
                      replay_window_seconds = 60\n";
    let app = gateway_app("auth = \"signed\"", "methods = [\"GET\"]", authorizer);
    let secret = "0123456789abcdef0123456789abcdef";
    std::fs::write(
        app.dir.path().join("hmac-keys.toml"),
        format!("client-a = \"{secret}\"\n"),
    )
    .unwrap();
    let ledge = app.up(&[]);
    let signer = Signer {
        key_id: "client-a",
        secret: secret.as_bytes(),
        host: ledge.url.trim_start_matches("http://").to_string(),
    };
    let client = client();
    let send = |path: &str, query: &str, body: &str, headers: &[(String, String); 3]| {
        let mut request = client
            .post(ledge.at(&format!("{path}?{query}")))
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let path = "/api/increment/calls";

    let signed = signer.headers("POST", path, "b=2&a=1", b"payload", now());
    assert_eq!(send(path, "b=2&a=1", "payload", &signed).0, 200);
    let (status, body) = send(path, "b=2&a=1", "payload", &signed);
    assert_eq!(status, 401);
    assert!(body.contains("replayed"), "{body}");

    let signed = signer.headers("POST", path, "", b"payload", now() + 1);
    let (status, body) = send(path, "", "tampered", &signed);
    assert_eq!(status, 401);
    assert!(body.contains("body does not match"), "{body}");

    let signed = signer.headers("POST", path, "", b"payload", now() + 2);
    let (status, body) = send("/api/increment/other", "", "payload", &signed);
    assert_eq!(status, 401);
    assert!(body.contains("does not verify"), "{body}");

    let signed = signer.headers("POST", path, "", b"payload", now() - 120);
    let (status, body) = send(path, "", "payload", &signed);
    assert_eq!(status, 401);
    assert!(body.contains("replay window"), "{body}");

    let stranger = Signer {
        key_id: "client-b",
        ..signer
    };
    let signed = stranger.headers("POST", path, "", b"payload", now() + 3);
    assert_eq!(send(path, "", "payload", &signed).0, 401);

    assert_eq!(runs(&ledge, "calls"), 1);
}

#[test]
fn request_schemas_refuse_bad_bodies_before_the_guest() {
    let app = gateway_app(
        "request_schema = \"ticket.schema.json\"\n\
         cors = { allow_origins = [\"https://app.example\"] }",
        "methods = [\"GET\"]",
        "",
    );
    std::fs::write(
        app.dir.path().join("ticket.schema.json"),
        r#"{
          "type": "object",
          "required": ["show", "seats"],
          "properties": {
            "show": {"type": "string"},
            "seats": {"type": "integer", "minimum": 1, "maximum": 10}
          }
        }"#,
    )
    .unwrap();
    let ledge = app.up(&[]);
    let client = client();
    let post = |body: &str| {
        let response = client
            .post(ledge.at("/api/increment/calls"))
            .header("content-type", "application/json")
            .header("origin", "https://app.example")
            .body(body.to_string())
            .send()
            .unwrap();
        let cors = response
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        (response.status().as_u16(), response.text().unwrap(), cors)
    };
    assert_eq!(post(r#"{"show": "hamlet", "seats": 2}"#).0, 200);
    let (status, body, cors) = post(r#"{"show": "hamlet", "seats": 0}"#);
    assert_eq!(status, 400);
    assert!(body.contains("at `/seats`"), "{body}");
    // The refusal is readable by the page that sent it.
    assert_eq!(cors.unwrap(), "https://app.example");
    let (status, body, _) = post(r#"{"seats": 2}"#);
    assert_eq!(status, 400);
    assert!(body.contains("show"), "{body}");
    let (status, body, _) = post("seats=2");
    assert_eq!(status, 400);
    assert!(body.contains("not JSON"), "{body}");
    assert_eq!(runs(&ledge, "calls"), 1);
}

/// A CA and a client certificate it issued to `name`: (CA PEM, client cert + key PEM).
fn client_certificate(name: &str) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, name);
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let certificate = client.signed_by(&key, &ca).unwrap();
    (
        ca.pem(),
        format!("{}{}", certificate.pem(), key.serialize_pem()),
    )
}

#[test]
fn mutual_tls_admits_only_clients_of_the_ca_and_names_them() {
    let server =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (ca, trusted) = client_certificate("client-a");
    let (_, intruder) = client_certificate("intruder");
    let app = gateway_app("methods = [\"POST\"]", "methods = [\"GET\"]", "");
    let dir = app.dir.path();
    std::fs::write(dir.join("cert.pem"), server.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("clients-ca.pem"), ca).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ledge = app.up(&[
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("key.pem"),
        "--tls-client-ca",
        &path("clients-ca.pem"),
    ]);
    let client_with = |identity: Option<&str>| {
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(server.cert.pem().as_bytes()).unwrap(),
            );
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };

    let response = client_with(Some(&trusted))
        .get(ledge.at("/whoami/x"))
        .header("ledge-auth-subject", "forged")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.text().unwrap();
    assert!(
        seen.contains("header ledge-auth-subject: CN=client-a\n"),
        "{seen}"
    );
    assert!(
        seen.contains("header ledge-auth-authorizer: mtls\n"),
        "{seen}"
    );
    assert!(!seen.contains("forged"), "{seen}");

    // A certificate from another CA, or none, never gets a request through.
    assert!(
        client_with(Some(&intruder))
            .get(ledge.at("/whoami/x"))
            .send()
            .is_err()
    );
    assert!(client_with(None).get(ledge.at("/whoami/x")).send().is_err());
}

#[test]
fn a_custom_authorizer_component_decides_once_per_caller() {
    let extra = "[[trigger.http]]\nroute = { private = true }\ncomponent = \"authz\"\n\
                 [component.authz]\nsource = \"{authorizer}\"\nkey_value_stores = [\"default\"]\n\
                 [application.tool.ledge.authorizers.custom]\n\
                 type = \"component\"\ncomponent = \"authz\"\nttl_seconds = 60\n";
    let app = gateway_app(
        "auth = \"custom\"\nscopes = [\"tickets:read\"]",
        "auth = \"custom\"",
        extra,
    );
    let ledge = app.up(&[]);
    let client = client();
    let call = |token: Option<&str>| {
        let mut request = client.post(ledge.at("/api/increment/calls"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };

    for _ in 0..2 {
        let (status, body) = call(None);
        assert_eq!(status, 403);
        assert!(body.contains("not welcome"), "{body}");
    }
    for _ in 0..3 {
        assert_eq!(call(Some("token-alice")).0, 200);
    }
    assert_eq!(runs(&ledge, "calls"), 3);
    // One decision per caller: the refusal and alice's pass were each asked once.
    assert_eq!(runs(&ledge, "decisions"), 2);

    // The authorizer's identity and context reach the guest.
    let response = client
        .get(ledge.at("/whoami/x"))
        .bearer_auth("token-vip-bob")
        .send()
        .unwrap();
    let seen = response.text().unwrap();
    assert!(
        seen.contains("header ledge-auth-subject: vip-bob\n"),
        "{seen}"
    );
    assert!(seen.contains("header ledge-auth-tier: gold\n"), "{seen}");
    assert!(
        seen.contains("header ledge-auth-authorizer: custom\n"),
        "{seen}"
    );
    assert_eq!(runs(&ledge, "decisions"), 3);

    // The authorizer sees the request a function would: an absolute URL and the route's
    // `spin-*` headers, never the client's copies.
    let response = client
        .get(ledge.at("/whoami/x?q=1"))
        .bearer_auth("show-request")
        .header("spin-path-info", "forged")
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    let seen = response.text().unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let url = format!("url {}/whoami/x?q=1", ledge.url);
    for line in [
        url.as_str(),
        "spin-path-info: /x",
        "spin-matched-route: /whoami/...",
    ] {
        assert!(lines.contains(&line), "missing `{line}` in:\n{seen}");
    }
    assert!(!seen.contains("forged"), "{seen}");
}

#[test]
fn a_jwks_is_fetched_from_its_url_and_again_for_a_rotated_key() {
    // A one-file HTTP server for the key set; it counts the fetches and, once `rotated` is
    // set, serves the set with the new key.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let fixtures = repo_root().join("tests/fixtures/jwt");
    let before = std::fs::read_to_string(fixtures.join("jwks.json")).unwrap();
    let after = std::fs::read_to_string(fixtures.join("rotated-jwks.json")).unwrap();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rotated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counted, switched) = (fetches.clone(), rotated.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            use std::io::{Read as _, Write as _};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jwks = if switched.load(std::sync::atomic::Ordering::SeqCst) {
                &after
            } else {
                &before
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    let authorizer = format!(
        "[application.tool.ledge.authorizers.users]\n\
         type = \"jwt\"\njwks = \"{jwks_url}\"\naudience = [\"tickets\"]\nalgorithms = [\"RS256\"]\n\
         min_refetch_seconds = 2\n"
    );
    let app = gateway_app("auth = \"users\"", "methods = [\"GET\"]", &authorizer);
    let ledge = app.up(&[]);
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched at start-up"
    );
    let good = rs256("issuer.pem", &claims("tickets", 300, "tickets:write"));
    let response = client()
        .post(ledge.at("/api/increment/calls"))
        .bearer_auth(&good)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    // The route list says which policies guard which route.
    let routes = ledge.wait_for_stdout("[auth users]");
    assert!(routes.contains("/api (wildcard)  [auth users]"), "{routes}");

    // The issuer rotates to a new key. A token naming its kid makes the gateway fetch the set
    // again, but not more often than every `min_refetch_seconds`: however often it is tried,
    // the rotated key costs one fetch.
    rotated.store(true, std::sync::atomic::Ordering::SeqCst);
    let call = |token: &str| {
        client()
            .post(ledge.at("/api/increment/calls"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    let new_key = rs256_with_kid(
        "stranger.pem",
        "rotated-key",
        &claims("tickets", 300, "tickets:write"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call(&new_key) != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key never verified"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Right after that fetch, unknown kids are refused without fetching again.
    let unknown = rs256_with_kid("stranger.pem", "nobody", &claims("tickets", 300, ""));
    for _ in 0..5 {
        assert_eq!(call(&unknown), 401);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn throttling_per_identity_gives_each_caller_its_own_bucket() {
    let authorizer = "[application.tool.ledge.authorizers.users]\n\
         type = \"jwt\"\njwks = \"jwks.json\"\naudience = [\"tickets\"]\nalgorithms = [\"RS256\"]\n";
    let app = gateway_app(
        "auth = \"users\"\nrate_limit = { per_second = 1, burst = 2, per = \"identity\" }",
        "methods = [\"GET\"]",
        authorizer,
    );
    let ledge = app.up(&[]);
    let token = |subject: &str| {
        let mut claims = claims("tickets", 300, "tickets:write");
        claims["sub"] = subject.into();
        rs256("issuer.pem", &claims)
    };
    let call = |token: &str| {
        client()
            .post(ledge.at("/api/increment/calls"))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    assert_eq!(call(&alice).status(), 200);
    assert_eq!(call(&alice).status(), 200);
    let refused = call(&alice);
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Same client address, another identity: its own bucket.
    assert_eq!(call(&bob).status(), 200);
    assert_eq!(runs(&ledge, "calls"), 3);
}

#[test]
fn trusted_proxies_derive_the_client_from_forwarding_headers() {
    let app = gateway_app(
        "rate_limit = { per_second = 1, burst = 1 }",
        "waf = { deny_ips = [\"203.0.113.0/24\"] }",
        "[application.tool.ledge]\naccess_log = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let ledge = app.up(&[]);
    let client = client();
    let echo = |headers: &[(&str, &str)]| {
        let mut request = client.get(ledge.at("/echo/x"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap().text().unwrap()
    };

    // From a trusted proxy, the rightmost address that is not a proxy is the client: what a
    // client forged at the left of the chain, or in `ledge-client-addr`, is never believed.
    let seen = echo(&[
        ("x-forwarded-for", "198.51.100.9, 203.0.113.7"),
        ("ledge-client-addr", "10.9.9.9"),
    ]);
    assert!(
        seen.contains("header ledge-client-addr: 203.0.113.7\n"),
        "{seen}"
    );
    assert!(
        seen.contains("header spin-client-addr: 127.0.0.1:"),
        "{seen}"
    );
    let seen = echo(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
    assert!(
        seen.contains("header ledge-client-addr: 2001:db8::1\n"),
        "{seen}"
    );
    let seen = echo(&[]);
    assert!(
        seen.contains("header ledge-client-addr: 127.0.0.1\n"),
        "{seen}"
    );

    // Throttling counts per derived client.
    let call = |forwarded_for: &str| {
        client
            .get(ledge.at("/api/increment/calls"))
            .header("x-forwarded-for", forwarded_for)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call("198.51.100.1"), 200);
    assert_eq!(call("198.51.100.1"), 429);
    assert_eq!(call("198.51.100.2"), 200);

    // WAF address rules see the derived client too, and so does the access log.
    let response = client
        .get(ledge.at("/whoami/x"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(get(&ledge.at("/whoami/x")).0, 200);
    let log = ledge.wait_for_stdout("\"outcome\":\"blocked\"");
    let line = log.lines().find(|l| l.contains("\"blocked\"")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["client"], "203.0.113.7");
    drop(ledge);

    // `--trusted-proxy` replaces the manifest's list: loopback is no longer trusted, so its
    // forwarding headers are ignored.
    let ledge = app.up(&["--trusted-proxy", "10.0.0.0/8"]);
    let seen = client
        .get(ledge.at("/echo/x"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        seen.contains("header ledge-client-addr: 127.0.0.1\n"),
        "{seen}"
    );
}
