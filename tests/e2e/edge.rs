//! The edge: `ledge deploy` to a NATS JetStream cluster, `ledge node`s serving what is
//! deployed, version swaps that fail no request, warm restarts without NATS, and refusals.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{FaultProxy, Ledge, NatsServer, client, free_port, get, guests, run_ledge};

/// An app as a user keeps it: its own directory, its `.wasm` and its files inside it.
fn edge_app(dir: &Path, site_version: &str) {
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"edge-app\"\nversion = \"1.0.0\"\n\
         [[trigger.http]]\nroute = \"/echo/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"echo.wasm\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"site\"\n\
         [component.site]\nsource = { url = \"https://example.com/spin_static_fs.wasm\", \
         digest = \"sha256:ef88708817e107bf49985c7cefe4dd1f199bf26f6727819183d5c996baa3d148\" }\n\
         files = [{ source = \"site\", destination = \"/\" }]\n\
         [component.site.tool.ledge]\nstatic_files = { cache_control = \"no-cache\" }\n",
    )
    .unwrap();
    std::fs::copy(&guests().echo_p2, dir.join("echo.wasm")).unwrap();
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/version.txt"), site_version).unwrap();
}

fn deploy(app: &Path, nats: &NatsServer) -> (bool, String, String) {
    deploy_with(app, nats, &[])
}

/// Deploys the app in `app` with `more` arguments to `ledge deploy`.
fn deploy_with(app: &Path, nats: &NatsServer, more: &[&str]) -> (bool, String, String) {
    let (manifest, url) = (app.join("spin.toml"), nats.url());
    let mut args = vec![
        "deploy",
        "-f",
        manifest.to_str().unwrap(),
        "--nats",
        &url,
        "--wait",
        "60s",
    ];
    args.extend(more);
    let (status, stdout, stderr) = run_ledge(&args);
    (status.success(), stdout, stderr)
}

/// Writes the app with its site at version `number` (`v<number>`), deploys it, and checks that
/// every one of `nodes` serves it.
fn deploy_version(app: &Path, nats: &NatsServer, number: u32, nodes: &[&Ledge]) {
    edge_app(app, &format!("v{number}"));
    let (deployed, stdout, stderr) = deploy(app, nats);
    assert!(deployed, "{stdout}\n{stderr}");
    let served = format!(
        "edge-app version {number} is served by {} nodes",
        nodes.len()
    );
    assert!(stdout.contains(&served), "{stdout}");
    for node in nodes {
        assert_eq!(get(&node.at("/version.txt")), (200, format!("v{number}")));
    }
}

fn status(nats: &NatsServer) -> serde_json::Value {
    let (status, stdout, stderr) = run_ledge(&["status", "--json", "--nats", &nats.url()]);
    assert!(status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Waits until `check` holds for `ledge status`, or fails with the last status seen.
fn wait_for_status(nats: &NatsServer, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status(nats);
        if check(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `count` nodes report.
fn wait_for_live_nodes(nats: &NatsServer, count: usize) {
    wait_for_status(nats, &format!("saw {count} live nodes"), |s| {
        s["nodes"].as_array().unwrap().len() == count
    });
}

/// Node `name` of `region` following the hub at `nats`, or, given `leaf`, a region's leaf
/// server; its state directory is `<states>/<name>`. As a writer, it snapshots a file and
/// compacts its log every 100 entries, so that the tests see logs compacted.
fn node(nats: &str, leaf: bool, region: &str, name: &str, states: &Path) -> Ledge {
    let state = states.join(name);
    let mut args = vec![
        "--region",
        region,
        "--name",
        name,
        "--nats",
        nats,
        "--state-dir",
        state.to_str().unwrap(),
        "--snapshot-every",
        "100",
    ];
    if leaf {
        args.extend(["--hub-domain", "hub"]);
    }
    Ledge::node(&args)
}

#[test]
fn a_deployed_app_is_served_by_every_node_and_versions_swap_without_a_failed_request() {
    let mut nats = NatsServer::start();
    let eu_leaf = NatsServer::leaf_of(&nats, "eu");
    let states = tempfile::tempdir().unwrap();
    let hub = node(&nats.url(), false, "hub", "hub-1", states.path());
    let eu = node(&eu_leaf.url(), true, "eu", "eu-1", states.path());
    wait_for_live_nodes(&nats, 2);

    let app = tempfile::tempdir().unwrap();
    deploy_version(app.path(), &nats, 1, &[&hub, &eu]);
    for node in [&hub, &eu] {
        assert_eq!(get(&node.at("/echo/hi")).0, 200);
    }

    // A changed file is a new version; requests during the swap all succeed.
    let hammering = Arc::new(AtomicBool::new(true));
    let hammer = {
        let (url, hammering) = (hub.at("/version.txt"), hammering.clone());
        std::thread::spawn(move || {
            let client = client();
            let mut seen = Vec::new();
            while hammering.load(Ordering::Relaxed) {
                let response = client.get(&url).send().unwrap();
                seen.push((response.status().as_u16(), response.text().unwrap()));
            }
            seen
        })
    };
    edge_app(app.path(), "v2");
    let (deployed, stdout, stderr) = deploy(app.path(), &nats);
    assert!(deployed, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("edge-app version 2 is served by 2 nodes"),
        "{stdout}"
    );
    hammering.store(false, Ordering::Relaxed);
    let seen = hammer.join().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|(status, body)| *status == 200 && (body == "v1" || body == "v2")),
        "a request failed during the swap: {:?}",
        seen.iter().find(|(status, _)| *status != 200)
    );
    for node in [&hub, &eu] {
        assert_eq!(get(&node.at("/version.txt")), (200, "v2".into()));
    }

    // The same app again is no new version.
    let (deployed, stdout, _) = deploy(app.path(), &nats);
    assert!(deployed && stdout.contains("version 2 (bundle"), "{stdout}");
    assert!(stdout.contains("is already deployed"), "{stdout}");
    let (_, text, _) = run_ledge(&["status", "--nats", &nats.url()]);
    assert!(text.contains("edge-app: version 2"), "{text}");
    assert!(
        text.contains("hub-1 (hub)") && text.contains("eu-1 (eu)"),
        "{text}"
    );

    // The hub goes away: the nodes keep serving; once it is back they follow again.
    nats.stop();
    for node in [&hub, &eu] {
        assert_eq!(get(&node.at("/version.txt")), (200, "v2".into()));
    }
    nats.restart();
    wait_for_live_nodes(&nats, 2);
    deploy_version(app.path(), &nats, 3, &[&hub, &eu]);
    // A node keeps the bundles of what it serves and of what that replaced, no others.
    for name in ["hub-1", "eu-1"] {
        let kept = |place: &str| {
            std::fs::read_dir(states.path().join(name).join(place))
                .map_or(0, |entries| entries.count())
        };
        assert_eq!(kept("bundles"), 2, "{name}: the bundles of v3 and v2");
        assert!(kept("staging") <= 2, "{name}");
    }

    // A bundle whose content does not match its digest is refused; v3 stays served.
    let corrupt = corrupt_deployment(&nats);
    wait_for_status(&nats, "reported the corrupted bundle", |s| {
        s["nodes"].as_array().unwrap().iter().all(|node| {
            node["apps"]["edge-app"]["failed"]["error"]
                .as_str()
                .is_some_and(|error| error.contains("is corrupted"))
        })
    });
    for node in [&hub, &eu] {
        assert_eq!(get(&node.at("/version.txt")), (200, "v3".into()));
    }
    assert!(
        !states.path().join("eu-1/bundles").join(&corrupt).exists(),
        "nothing of a corrupted bundle is kept"
    );

    // A node that joins now serves the newest version it can, v3 as the others do, and
    // reports the staged one as refused.
    let late = node(&nats.url(), false, "hub", "hub-2", states.path());
    wait_for_status(&nats, "seen the late node serve v3, refusing v4", |s| {
        s["nodes"].as_array().unwrap().iter().any(|node| {
            let app = &node["apps"]["edge-app"];
            node["node"] == "hub-2"
                && app["version"] == 3
                && app["failed"]["version"] == 4
                && app["failed"]["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("is corrupted"))
        })
    });
    assert_eq!(get(&late.at("/version.txt")), (200, "v3".into()));
    assert!(late.terminate().success());

    // A deploy keeps the app's newest versions (here 2: the refused v4 and the new v5) and
    // deletes the bundles only the versions it dropped used.
    edge_app(app.path(), "v5");
    let (deployed, stdout, stderr) = deploy_with(app.path(), &nats, &["--keep-versions", "2"]);
    assert!(deployed, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("edge-app version 5 is served by 2 nodes")
            && stdout.contains("Deleted 3 bundles no kept version uses"),
        "{stdout}"
    );
    let record = &status(&nats)["apps"]["edge-app"]["versions"];
    let kept: Vec<&String> = record.as_object().unwrap().keys().collect();
    assert_eq!(kept, ["4", "5"]);
    let v5 = record["5"]["bundle"].as_str().unwrap().to_string();
    assert_eq!(bundles_held(&nats), [corrupt, v5].into());

    // A node restarted with its state dir serves before it reaches NATS.
    eu.kill();
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let eu = node(&nowhere, true, "eu", "eu-1", states.path());
    assert_eq!(get(&eu.at("/version.txt")), (200, "v5".into()));
    assert_eq!(get(&eu.at("/echo/hi")).0, 200);
    drop(hub);
}

/// The names of the bundles the cluster holds.
fn bundles_held(nats: &NatsServer) -> std::collections::BTreeSet<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let bundles = jetstream.get_object_store("ledge-bundles").await.unwrap();
        let mut names = std::collections::BTreeSet::new();
        let mut list = bundles.list().await.unwrap();
        while let Some(info) = futures::StreamExt::next(&mut list).await {
            names.insert(info.unwrap().name);
        }
        names
    })
}

/// Records a new version whose bundle's bytes do not hash to its name; returns that name.
fn corrupt_deployment(nats: &NatsServer) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let bundles = jetstream.get_object_store("ledge-bundles").await.unwrap();
        let name = "0".repeat(64);
        bundles
            .put(name.as_str(), &mut &b"not the bundle it claims to be"[..])
            .await
            .unwrap();
        let deployments = jetstream.get_key_value("ledge-deployments").await.unwrap();
        let record = deployments.get("edge-app").await.unwrap().unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        let next = record["versions"].as_object().unwrap().len() + 1;
        record["versions"][next.to_string()] = serde_json::json!({
            "bundle": name, "size": 30, "app_version": "1.0.0", "deployed_at": 0
        });
        record["stages"]["default"]["version"] = next.into();
        deployments
            .put("edge-app", serde_json::to_vec(&record).unwrap().into())
            .await
            .unwrap();
        name
    })
}

#[test]
fn a_nats_server_without_jetstream_is_refused_in_one_line() {
    let nats = NatsServer::without_jetstream();
    let state = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_ledge(&[
        "node",
        "--region",
        "hub",
        "--nats",
        &nats.url(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!status.success());
    assert!(stderr.contains("has no JetStream"), "{stderr}");
    assert!(
        stderr.contains("fix: start nats-server with `-js`"),
        "{stderr}"
    );

    let app = tempfile::tempdir().unwrap();
    edge_app(app.path(), "v1");
    let (deployed, _, stderr) = deploy(app.path(), &nats);
    assert!(!deployed);
    assert!(stderr.contains("has no JetStream"), "{stderr}");

    // An app name that cannot be a key is refused before anything is uploaded.
    let manifest = app.path().join("spin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"edge-app\"", "\"edge app\"")).unwrap();
    let (deployed, _, stderr) = deploy(app.path(), &nats);
    assert!(!deployed);
    assert!(
        stderr.contains("the app name `edge app` has ` `"),
        "{stderr}"
    );
}

#[test]
fn an_api_key_quota_is_counted_across_every_node() {
    let nats = NatsServer::start();
    let states = tempfile::tempdir().unwrap();
    let one = node(&nats.url(), false, "hub", "hub-1", states.path());
    let two = node(&nats.url(), false, "hub", "hub-2", states.path());
    wait_for_live_nodes(&nats, 2);
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"metered\"\n\
         [[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = \"echo.wasm\"\n\
         [application.tool.ledge.routes.\"/api/...\"]\nauth = \"partners\"\n\
         [application.tool.ledge.authorizers.partners]\n\
         type = \"api_key\"\nkeys_file = \"api-keys.toml\"\n\
         plans = { daily = { quota = 3, quota_period = \"day\" } }\n",
    )
    .unwrap();
    std::fs::copy(&guests().echo_p2, app.path().join("echo.wasm")).unwrap();
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"acme-key-1"))
    };
    std::fs::write(
        app.path().join("api-keys.toml"),
        format!("[[key]]\nid = \"acme\"\nsha256 = \"{digest}\"\nplan = \"daily\"\n"),
    )
    .unwrap();
    let (deployed, stdout, stderr) = deploy(app.path(), &nats);
    assert!(deployed, "{stdout}\n{stderr}");

    let call = |node: &Ledge| {
        let response = client()
            .get(node.at("/api/x"))
            .header("x-api-key", "acme-key-1")
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    // Three calls spread over two nodes use up the quota of three on both.
    assert_eq!(call(&one).0, 200);
    assert_eq!(call(&two).0, 200);
    assert_eq!(call(&one).0, 200);
    for node in [&two, &one] {
        let (status, body) = call(node);
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("quota of 3 requests per day"), "{body}");
    }
    // The counts go once their period is over (a month is the longest), not never.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lifetime = runtime.block_on(async {
        let jetstream = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let counts = jetstream.get_key_value("ledge-counts").await.unwrap();
        let status = counts.status().await.unwrap();
        (status.max_age(), status.values())
    });
    assert_eq!(lifetime.0, Duration::from_secs(32 * 24 * 3600));
    assert_eq!(lifetime.1, 1, "one count");

    // A node that stops takes its report with it (reports would otherwise live 10 s).
    assert!(two.terminate().success());
    let nodes = status(&nats)["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["node"], "hub-1");
}

/// Deploys, through the hub `nats`, an app of the data guests (spin-sdk 5 at `/data`,
/// spin-sdk 7 at `/p3`) sharing a replicated key-value store and database; the app's
/// directory.
fn deploy_data_app(nats: &NatsServer) -> tempfile::TempDir {
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"shop\"\n\
         [[trigger.http]]\nroute = \"/data/...\"\ncomponent = \"data\"\n\
         [component.data]\nsource = \"data.wasm\"\n\
         key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n\
         [[trigger.http]]\nroute = \"/p3/...\"\ncomponent = \"data3\"\n\
         [component.data3]\nsource = \"data3.wasm\"\n\
         key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n",
    )
    .unwrap();
    std::fs::copy(&guests().data_p2, dir.join("data.wasm")).unwrap();
    std::fs::copy(&guests().data_p3, dir.join("data3.wasm")).unwrap();
    let (deployed, stdout, stderr) = deploy(dir, nats);
    assert!(deployed, "{stdout}\n{stderr}");
    app
}

/// What one request through the data guest answered: status, body and the bookmark it gave.
struct Answer {
    status: u16,
    body: String,
    bookmark: Option<String>,
    retry_after: Option<String>,
    /// `ledge-stale`: the read came from a copy out of touch with the hub.
    stale: Option<String>,
}

/// Sends `body` with `method` to `path` of `node`, presenting `bookmark` if given.
fn call(node: &Ledge, method: &str, path: &str, body: &str, bookmark: Option<&str>) -> Answer {
    let mut request = client()
        .request(method.parse().unwrap(), node.at(path))
        .body(body.to_string());
    if let Some(bookmark) = bookmark {
        request = request.header("ledge-bookmark", bookmark);
    }
    let response = request.send().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
    };
    let (bookmark, retry_after) = (header("ledge-bookmark"), header("retry-after"));
    let stale = header("ledge-stale");
    Answer {
        status: response.status().as_u16(),
        body: response.text().unwrap(),
        bookmark,
        retry_after,
        stale,
    }
}

/// Runs SQL `script` (one statement per line) through `node`, presenting `bookmark` if given.
fn sql(node: &Ledge, script: &str, bookmark: Option<&str>) -> Answer {
    call(node, "POST", "/data/sql/default", script, bookmark)
}

/// `bookmark` (of one file) moved a million positions past the end of its log.
fn past_the_end(bookmark: &str) -> String {
    let (id, position) = bookmark.split_once('-').expect("<id>-<position>");
    format!("{id}-{}", position.parse::<u64>().unwrap() + 1_000_000)
}

/// Checks that `answer` is the guest's 500 for a failure whose message says `reason`.
fn assert_failed(answer: &Answer, reason: &str) {
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert!(answer.body.contains(reason), "{}", answer.body);
}

/// Runs SQL `script` (one statement per line) through `node` until it succeeds, for up to
/// 30 s (while a writer is being chosen, a write fails and says to retry).
fn sql_until_done(node: &Ledge, script: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = sql(node, script, None);
        if answer.status == 200 {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "`{script}` kept failing: {} {}",
            answer.status,
            answer.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rows of `items` as `node` reads them from its own copy, once it has them all (`count`).
fn items_at(node: &Ledge, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = sql(
            node,
            "SELECT id, name, at, noise FROM items ORDER BY id",
            None,
        );
        if answer.status == 200 && answer.body.lines().count() == count + 1 {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had {count} items: {} {}",
            node.url,
            answer.status,
            answer.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Puts `<prefix> <round>` under `key` through `writer`, `rounds` times, and reads each back
/// at once through `reader` with the put's bookmark: the value just written every time.
fn written_then_read_fresh(writer: &Ledge, reader: &Ledge, key: &str, prefix: &str, rounds: u32) {
    let path = format!("/data/kv/default/{key}");
    for round in 0..rounds {
        let value = format!("{prefix} {round}");
        let put = call(writer, "PUT", &path, &value, None);
        assert_eq!(put.status, 200, "{}", put.body);
        let got = call(reader, "GET", &path, "", put.bookmark.as_deref());
        assert_eq!((got.status, got.body), (200, value));
    }
}

/// Waits until `node`'s reads are marked stale, checking that they go on answering meanwhile.
fn wait_until_stale(node: &Ledge) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = call(node, "GET", "/data/kv/default/fresh", "", None);
        assert_eq!((read.status, read.body.as_str()), (200, "round 999"));
        if read.stale.as_deref() == Some("1") {
            return;
        }
        assert!(Instant::now() < deadline, "reads were never marked stale");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn data_written_on_any_node_is_read_on_every_node_and_survives_its_writer() {
    let mut hub_nats = NatsServer::start();
    // The eu region reaches the hub over a link the test can cut.
    let mut eu_link = FaultProxy::to(hub_nats.leaf_port());
    let eu_leaf = NatsServer::leaf_behind(&eu_link, "eu");
    let ap_leaf = NatsServer::leaf_of(&hub_nats, "ap");
    let states = tempfile::tempdir().unwrap();
    let hub_1 = node(&hub_nats.url(), false, "hub", "hub-1", states.path());
    let hub_2 = node(&hub_nats.url(), false, "hub", "hub-2", states.path());
    let eu = node(&eu_leaf.url(), true, "eu", "eu-1", states.path());
    let ap = node(&ap_leaf.url(), true, "ap", "ap-1", states.path());
    wait_for_live_nodes(&hub_nats, 4);
    let app = deploy_data_app(&hub_nats);

    // Schema and rows written through the leaf region commit at the hub's writer; values the
    // writer computed (time, random, rowid) are the same on every copy.
    sql_until_done(
        &eu,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')), \
         noise INTEGER NOT NULL DEFAULT (random()))",
    );
    let written = sql_until_done(&eu, "INSERT INTO items (name) VALUES ('kettle')");
    let bookmark = written
        .bookmark
        .expect("a write gives the client a bookmark");

    // Read-your-writes: with the bookmark, another node answers with the write at once.
    let read = sql(&hub_2, "SELECT name FROM items", Some(&bookmark));
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, "name\n[Value::Text(\"kettle\")]")
    );
    let everywhere = items_at(&eu, 1);
    for node in [&hub_1, &hub_2, &ap] {
        assert_eq!(items_at(node, 1), everywhere);
    }

    // A migration deployed with a new version runs once, at the writer, and every node has it
    // in its own copy before it serves that version: once the deploy says every node serves
    // it, each answers from its copy with the new column and index.
    let migration = app.path().join("0002-price.sql");
    std::fs::write(
        &migration,
        "-- prices; a `;` in a comment or a string does not end a statement\n\
         ALTER TABLE items ADD COLUMN price INTEGER NOT NULL DEFAULT 0;\n\
         CREATE INDEX items_by_price ON items (price);\n\
         UPDATE items SET price = 3 WHERE name != 'a;b';\n",
    )
    .unwrap();
    let sqlite = format!("@{}", migration.display());
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(deployed, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("shop version 2 is served by 4 nodes"),
        "{stdout}"
    );
    for node in [&hub_1, &hub_2, &eu, &ap] {
        let priced = sql(
            node,
            "SELECT price FROM items INDEXED BY items_by_price",
            None,
        );
        assert_eq!(
            (priced.status, priced.body.as_str()),
            (200, "price\n[Value::Integer(3)]"),
            "{}:\n{}",
            node.url,
            node.stderr()
        );
    }
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(
        deployed && stdout.contains("version 2"),
        "{stdout}\n{stderr}"
    );
    let recorded = sql(&ap, "SELECT name FROM _ledge_migrations", None);
    assert_eq!(recorded.body, "name\n[Value::Text(\"0002-price.sql\")]");
    // A migration edited after it ran is refused by every node, naming why; they keep serving
    // version 2, and take the next version once the file is as it was.
    let applied = std::fs::read_to_string(&migration).unwrap();
    std::fs::write(&migration, "ALTER TABLE items ADD COLUMN weight INTEGER;\n").unwrap();
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(!deployed, "{stdout}");
    assert!(
        stderr.contains("4 nodes did not switch to it")
            && stderr.contains("0002-price.sql was already applied to `default` with different"),
        "{stderr}"
    );
    let priced = sql(&eu, "SELECT price FROM items", None);
    assert_eq!(priced.body, "price\n[Value::Integer(3)]");
    std::fs::write(&migration, applied).unwrap();
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(
        deployed && stdout.contains("shop version 4 is served by 4 nodes"),
        "{stdout}\n{stderr}"
    );
    // A migration SQLite refuses is refused by every node with SQLite's reason, not tried
    // again as if the writer were busy; they keep serving version 4.
    let broken = app.path().join("0003-broken.sql");
    std::fs::write(&broken, "UPDATE nowhere SET price = 4;\n").unwrap();
    let broken = format!("@{}", broken.display());
    let (deployed, stdout, stderr) = deploy_with(
        app.path(),
        &hub_nats,
        &["--sqlite", &sqlite, "--sqlite", &broken],
    );
    assert!(!deployed, "{stdout}");
    assert!(
        stderr.contains("4 nodes did not switch to it")
            && stderr.contains("the migration 0003-broken.sql failed: no such table: nowhere"),
        "{stderr}"
    );
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(
        deployed && stdout.contains("shop version 6 is served by 4 nodes"),
        "{stdout}\n{stderr}"
    );

    // Key-value: a value put in one region is read in the other, and its deletion too.
    let put = call(&eu, "PUT", "/data/kv/default/cart", "3 kettles", None);
    assert_eq!(put.status, 200, "{}", put.body);
    let bookmark = put.bookmark.expect("a put gives a bookmark");
    let got = call(&hub_1, "GET", "/data/kv/default/cart", "", Some(&bookmark));
    assert_eq!((got.status, got.body.as_str()), (200, "3 kettles"));
    // A bookmark past the end of a log (from before the log was made anew, or made up) is
    // answered once the writer confirms where the log ends, and the bookmark given back holds
    // that end, so the client's next request does not wait for the made-up position again.
    for node in [&eu, &hub_1, &hub_2] {
        let past = past_the_end(&bookmark);
        let got = call(node, "GET", "/data/kv/default/cart", "", Some(&past));
        assert_eq!((got.status, got.body.as_str()), (200, "3 kettles"));
        assert_eq!(got.bookmark, Some(bookmark.clone()), "{}", node.url);
    }
    let deleted = call(&hub_1, "DELETE", "/data/kv/default/cart", "", None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let got = call(
        &eu,
        "GET",
        "/data/kv/default/cart",
        "",
        deleted.bookmark.as_deref(),
    );
    assert_eq!(got.status, 404, "{}", got.body);

    // A database's bookmark past the end of its log, likewise.
    let real = sql_until_done(&eu, "UPDATE items SET price = 4")
        .bookmark
        .expect("a write gives a bookmark");
    let read = sql(&ap, "SELECT price FROM items", Some(&past_the_end(&real)));
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, "price\n[Value::Integer(4)]")
    );
    assert_eq!(read.bookmark.as_deref(), Some(real.as_str()));
    // A write forwarded with it: the writer, finding the position past the log's end, runs
    // it (it carries the sender's bookmark, which the writer's copy must have applied). The
    // bookmark given back still holds the made-up position, which the next read lowers.
    let wrote = sql(
        &ap,
        "UPDATE items SET price = 5",
        Some(&past_the_end(&real)),
    );
    assert_eq!(wrote.status, 200, "{}", wrote.body);
    let read = sql(&eu, "SELECT price FROM items", wrote.bookmark.as_deref());
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, "price\n[Value::Integer(5)]")
    );
    let (id, position) = real.split_once('-').unwrap();
    let after_the_write = format!("{id}-{}", position.parse::<u64>().unwrap() + 1);
    assert_eq!(read.bookmark, Some(after_the_write));

    // Written in one edge region, read in the other with the bookmark: fresh every time.
    written_then_read_fresh(&eu, &ap, "fresh", "round", 1000);

    // spin-sdk 7's async results, consumed in every order its docs allow, on a node that is
    // not the writer: its writes go to the writer, its reads see them.
    let orders = call(&eu, "GET", "/p3/sql-orders/default", "", None);
    assert_eq!(
        (orders.status, orders.body.as_str()),
        (
            200,
            "stream-then-result 3\nresult-then-stream 3\nhalfway [Value::Integer(1)]\n\
             stream-dropped\nboth-dropped [Value::Integer(3)]"
        ),
        "eu:\n{}\nhub 1:\n{}\nhub 2:\n{}\nap:\n{}",
        eu.stderr(),
        hub_1.stderr(),
        hub_2.stderr(),
        ap.stderr()
    );
    let orders = call(&ap, "GET", "/p3/kv-orders/default", "", None);
    assert_eq!(
        (orders.status, orders.body.as_str()),
        (
            200,
            "stream-then-result 1\nresult-then-stream 1\nhalfway fresh\nstream-dropped\n\
             both-dropped 1"
        )
    );

    // A virtual table would not replicate: it is refused, saying why.
    let refused = sql(&hub_1, "CREATE VIRTUAL TABLE docs USING fts5(body)", None);
    assert_failed(&refused, "cannot be replicated");

    // Deferred foreign keys, in transactions opened from the edge: a COMMIT that would leave
    // a pet without its owner is refused at the writer and nothing of it reaches any copy;
    // one that adds the owner later in the transaction commits everywhere.
    sql_until_done(
        &eu,
        "CREATE TABLE owners (id INTEGER PRIMARY KEY)\n\
         CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER \
         REFERENCES owners(id) DEFERRABLE INITIALLY DEFERRED)",
    );
    let orphaned = sql(
        &eu,
        "BEGIN\nINSERT INTO pets (owner) VALUES (9)\nCOMMIT",
        None,
    );
    assert_failed(&orphaned, "FOREIGN KEY constraint failed");
    let adopted = sql(
        &eu,
        "BEGIN\nINSERT INTO pets (owner) VALUES (1)\nINSERT INTO owners (id) VALUES (1)\nCOMMIT",
        None,
    );
    assert_eq!(adopted.status, 200, "{}", adopted.body);
    let bookmark = adopted.bookmark.expect("a commit gives a bookmark");
    for node in [&hub_1, &hub_2, &eu, &ap] {
        let pets = sql(node, "SELECT id, owner FROM pets", Some(&bookmark));
        assert_eq!(
            (pets.status, pets.body.as_str()),
            (200, "id,owner\n[Value::Integer(1), Value::Integer(1)]"),
            "{}",
            node.url
        );
    }

    // A write forwarded while another edge's transaction holds the writer waits there for a
    // while, then is answered "locked" before its sender stops waiting: the edge knows it was
    // not applied. The transaction (busy for 6 s, never idle for its limit) then commits.
    let holding = holding_a_transaction(&eu, 2);
    std::thread::sleep(Duration::from_millis(1500));
    let waited = sql(&ap, "INSERT INTO owners (id) VALUES (3)", None);
    assert_failed(&waited, "database is locked");
    let (held_status, held_body, bookmark) = holding.join().unwrap();
    assert_eq!(held_status, 200, "{held_body}");
    let bookmark = bookmark.expect("a commit gives a bookmark");
    let owners = sql(
        &ap,
        "SELECT group_concat(id) FROM (SELECT id FROM owners ORDER BY id)",
        Some(bookmark.to_str().unwrap()),
    );
    assert_eq!(
        (owners.status, owners.body.as_str()),
        (200, "group_concat(id)\n[Value::Text(\"1,2\")]")
    );

    // A new version deployed while an edge's transaction is open at the writer: the request
    // finishes on the version it began on. The writer's new version answers forwarded
    // statements from the moment it is opened (its migrations, which need the writer, run
    // once the transaction ends), so it takes the transaction's later statements and commits
    // it.
    let holding = holding_a_transaction(&eu, 4);
    std::thread::sleep(Duration::from_millis(500));
    let manifest = app.path().join("spin.toml");
    let mut edited = std::fs::read_to_string(&manifest).unwrap();
    edited.push_str("# version 7: deployed while a transaction is open\n");
    std::fs::write(&manifest, edited).unwrap();
    let (deployed, stdout, stderr) = deploy_with(app.path(), &hub_nats, &["--sqlite", &sqlite]);
    assert!(
        deployed && stdout.contains("shop version 7 is served by 4 nodes"),
        "{stdout}\n{stderr}"
    );
    let (held_status, held_body, bookmark) = holding.join().unwrap();
    assert_eq!(
        held_status,
        200,
        "{held_body}\nhub 1:\n{}\nhub 2:\n{}",
        hub_1.stderr(),
        hub_2.stderr()
    );
    let bookmark = bookmark.expect("a commit gives a bookmark");
    let owners = sql(
        &ap,
        "SELECT count(*) FROM owners WHERE id = 4",
        Some(bookmark.to_str().unwrap()),
    );
    assert_eq!(owners.body, "count(*)\n[Value::Integer(1)]");

    // A transaction opened from the edge and left idle past the writer's limit is rolled
    // back whole there; its later statements fail instead of committing on their own.
    let abandoned = sql(
        &eu,
        "BEGIN\nINSERT INTO items (name) VALUES ('lost')\n!sleep 6000\n\
         INSERT INTO items (name) VALUES ('lost')\nCOMMIT",
        None,
    );
    assert_failed(&abandoned, "rolled back at the writer");
    assert_eq!(items_at(&eu, 1), everywhere);

    // Either hub node may be the writer: kill one, then the other, writing through the leaf
    // region all along; every acknowledged row is on every copy.
    hub_1.kill();
    for _ in 0..3 {
        sql_until_done(&eu, "INSERT INTO items (name) VALUES ('teapot')");
    }
    // The killed node comes back with its copy and catches up, then is the only writer left.
    let hub_1 = node(&hub_nats.url(), false, "hub", "hub-1", states.path());
    assert_eq!(items_at(&hub_1, 4), items_at(&eu, 4));
    hub_2.kill();
    for _ in 0..3 {
        sql_until_done(&eu, "INSERT INTO items (name) VALUES ('cup')");
    }
    let rows = items_at(&eu, 7);
    assert_eq!(items_at(&hub_1, 7), rows);
    assert_eq!(items_at(&ap, 7), rows);
    assert!(rows.starts_with(&everywhere), "{rows}");

    // An edge killed while it applies a burst of writes comes back with a whole copy: each
    // entry is applied in one transaction with its position, the rest comes from the log.
    let burst = "INSERT INTO items (name) VALUES ('spoon')\n".repeat(200);
    let burst_url = hub_1.at("/data/sql/default");
    let burst = std::thread::spawn(move || {
        let response = client().post(burst_url).body(burst).send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count = sql(&eu, "SELECT count(*) FROM items", None);
        if count.body != "count(*)\n[Value::Integer(7)]" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "eu never saw the burst: {}",
            count.body
        );
    }
    eu.kill();
    let (burst_status, body) = burst.join().unwrap();
    assert_eq!(burst_status, 200, "{body}");
    let eu = node(&eu_leaf.url(), true, "eu", "eu-1", states.path());
    let rows = items_at(&hub_1, 207);
    assert_eq!(items_at(&eu, 207), rows);
    assert_eq!(items_at(&ap, 207), rows);

    // The writers have snapshotted both files (the store while hub-2 wrote it, the database
    // after the burst) and dropped the entries the snapshots hold; a new node starts from the
    // snapshots and follows the logs from there.
    let needle = "database `default` of app `shop`: snapshot at entry";
    let log = hub_1.wait_for_log(needle);
    assert!(log.contains(needle), "{log}");
    let ap_2 = node(&ap_leaf.url(), true, "ap", "ap-2", states.path());
    assert_eq!(items_at(&ap_2, 207), rows);
    for file in ["database", "key-value store"] {
        let needle = format!("{file} `default` of app `shop`: restored from the snapshot");
        let log = ap_2.wait_for_log(&needle);
        assert!(log.contains(&needle), "{log}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fresh = call(&ap_2, "GET", "/data/kv/default/fresh", "", None);
        if (fresh.status, fresh.body.as_str()) == (200, "round 999") {
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", fresh.status, fresh.body);
        std::thread::sleep(Duration::from_millis(50));
    }

    // Behind a slow link (20 ms each way), a region still reads another region's write with
    // its bookmark, never an older value.
    eu_link.delay(Duration::from_millis(20));
    written_then_read_fresh(&ap, &eu, "far", "slow", 20);
    eu_link.delay(Duration::ZERO);

    // A partition between a region and the hub: the region reads its copy, marked stale, and
    // its writes fail saying when to retry, while the other region writes on; once the link is
    // back the region catches up and writes again, with no one stepping in.
    eu_link.cut();
    let written_in_ap = sql_until_done(&ap, "INSERT INTO items (name) VALUES ('plate')");
    assert!(written_in_ap.bookmark.is_some());
    wait_until_stale(&eu);
    assert_eq!(items_at(&eu, 207), rows);
    let failed = sql(&eu, "INSERT INTO items (name) VALUES ('bowl')", None);
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert_eq!(failed.retry_after.as_deref(), Some("1"));
    eu_link.heal();
    let rows = items_at(&eu, 208);
    assert_eq!(items_at(&hub_1, 208), rows);
    sql_until_done(&eu, "INSERT INTO items (name) VALUES ('bowl')");
    let rows = items_at(&ap, 209);
    assert_eq!(items_at(&eu, 209), rows);
    let fresh = call(&eu, "GET", "/data/kv/default/fresh", "", None);
    assert_eq!(fresh.stale, None, "a healed region's reads are not stale");

    // Without the hub, the region still reads its copy; a write fails, telling the client
    // when to try again, and succeeds once the hub is back.
    hub_nats.stop();
    assert_eq!(items_at(&eu, 209), rows);
    wait_until_stale(&eu);
    let failed = sql(&eu, "INSERT INTO items (name) VALUES ('saucer')", None);
    assert_failed(&failed, "cannot be reached");
    assert_eq!(failed.retry_after.as_deref(), Some("1"));
    hub_nats.restart();
    sql_until_done(&eu, "INSERT INTO items (name) VALUES ('saucer')");
    let rows = items_at(&eu, 210);
    for node in [&hub_1, &ap, &ap_2] {
        assert_eq!(items_at(node, 210), rows);
    }

    // `ledge status` shows each store and database: its log (compacted: it keeps only what
    // follows the snapshot), its writer, every copy at its end.
    wait_for_status(&hub_nats, "saw every copy at its log's end", |status| {
        let data = status["data"].as_object().unwrap();
        data.len() == 2
            && data.values().all(|file| {
                let copies = file["applied"].as_object().unwrap();
                file["kept_from"].as_u64() > Some(1)
                    && file["writer"] == "hub-1"
                    && copies.len() == 4
                    && copies.values().all(|applied| *applied == file["log"])
            })
    });

    // The database's writer lease rewritten by hand, as an operator could.
    let cluster = status(&hub_nats);
    let (database, _) = cluster["data"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, file)| file["name"].as_str().unwrap().starts_with("database"))
        .unwrap();
    // Rewritten to name the writer itself: its renewal fails all the same, and it takes the
    // lease back at once rather than wait for it to lapse (as after a moment cut off from the
    // hub). Should it miss that window on a loaded machine, it is given another.
    let reclaimed = "the lease still names this node, which takes it back";
    let before = hub_1.stderr().matches(reclaimed).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub_1.stderr().matches(reclaimed).count() == before {
        assert!(Instant::now() < deadline, "{}", hub_1.stderr());
        force_lease(&hub_nats, database, "hub-1");
        std::thread::sleep(Duration::from_millis(2500));
    }
    sql_until_done(&eu, "INSERT INTO items (name) VALUES ('mug')");

    // A second writer forced by hand: the lease rewritten to name another holder. The
    // writer's next renewal fails, so it stops committing; writes fail, saying when to retry,
    // until the forged lease lapses and a hub node takes it again. Nothing forks.
    force_lease(&hub_nats, database, "intruder");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let answer = sql(&eu, "INSERT INTO items (name) VALUES ('jug')", None);
        if answer.status != 200 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "writes went on under a forged lease"
        );
    };
    assert_eq!(
        refused.retry_after.as_deref(),
        Some("1"),
        "{}",
        refused.body
    );
    let written = sql_until_done(&eu, "INSERT INTO items (name) VALUES ('jug')");
    let counted = sql(
        &hub_1,
        "SELECT count(*) FROM items",
        written.bookmark.as_deref(),
    );
    let count: usize = counted
        .body
        .trim_start_matches("count(*)\n[Value::Integer(")
        .trim_end_matches(")]")
        .parse()
        .unwrap_or_else(|_| panic!("{}", counted.body));
    let rows = items_at(&hub_1, count);
    for node in [&eu, &ap, &ap_2] {
        assert_eq!(items_at(node, count), rows);
    }
}

#[test]
fn a_write_whose_acknowledgement_from_the_log_was_lost_is_settled_by_asking_the_log() {
    let hub_nats = NatsServer::start();
    // The only node of the hub region, so the writer, reaches the hub through a link whose
    // answers the test holds back.
    let mut link = FaultProxy::to(hub_nats.port);
    let ap_leaf = NatsServer::leaf_of(&hub_nats, "ap");
    let states = tempfile::tempdir().unwrap();
    let through_link = format!("nats://127.0.0.1:{}", link.port);
    let writer = node(&through_link, false, "hub", "hub-1", states.path());
    let ap = node(&ap_leaf.url(), true, "ap", "ap-1", states.path());
    wait_for_live_nodes(&hub_nats, 2);
    deploy_data_app(&hub_nats);
    sql_until_done(
        &writer,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, at TEXT, noise INTEGER)",
    );

    // The log stores the write, but its acknowledgement comes back after the writer stopped
    // waiting for it (2 s): the writer asks the log, finds its entry there, commits it and
    // answers. It is applied once, everywhere.
    let settled = written_while_answers_are_late(
        &mut link,
        &writer,
        "INSERT INTO items (name) VALUES ('kettle')",
        Duration::from_secs(1),
    );
    assert_eq!(settled.status, 200, "{}\n{}", settled.body, writer.stderr());
    assert!(
        writer
            .stderr()
            .contains("the log stored the entry whose acknowledgement was lost"),
        "{}",
        writer.stderr()
    );
    let rows = items_at(&writer, 1);
    assert_eq!(items_at(&ap, 1), rows);

    // Answers held back for longer than the writer keeps asking (3 s more): the write fails
    // saying that its outcome is unknown, and as the log has it, every copy applies it.
    sql_until_done(&writer, "INSERT INTO items (name) VALUES ('cup')");
    let unknown = written_while_answers_are_late(
        &mut link,
        &writer,
        "INSERT INTO items (name) VALUES ('teapot')",
        Duration::from_secs(6),
    );
    assert_failed(&unknown, "whether it stored the write is unknown");
    let rows = items_at(&writer, 3);
    assert!(rows.contains("teapot"), "{rows}");
    assert_eq!(items_at(&ap, 3), rows);
}

/// Opens a transaction through `node` that adds owner `id` and stays open for 6 s (a
/// statement every 2 s, never idle for the writer's limit), then commits; the request's
/// status, body and bookmark.
fn holding_a_transaction(
    node: &Ledge,
    id: u32,
) -> std::thread::JoinHandle<(u16, String, Option<reqwest::header::HeaderValue>)> {
    let url = node.at("/data/sql/default");
    std::thread::spawn(move || {
        let script = format!(
            "BEGIN\nINSERT INTO owners (id) VALUES ({id})\n!sleep 2000\nSELECT 1\n\
             !sleep 2000\nSELECT 1\n!sleep 2000\nCOMMIT"
        );
        let response = client().post(url).body(script).send().unwrap();
        let bookmark = response.headers().get("ledge-bookmark").cloned();
        let status = response.status().as_u16();
        (status, response.text().unwrap(), bookmark)
    })
}

/// Runs SQL `script` through `writer` while the answers `link` passes back come 3 s late, for
/// the first `for_how_long` of it.
fn written_while_answers_are_late(
    link: &mut FaultProxy,
    writer: &Ledge,
    script: &str,
    for_how_long: Duration,
) -> Answer {
    link.delay_answers(Duration::from_secs(3));
    std::thread::scope(|scope| {
        let written = scope.spawn(|| sql(writer, script, None));
        std::thread::sleep(for_how_long);
        link.delay_answers(Duration::ZERO);
        written.join().unwrap()
    })
}

/// Rewrites the writer lease of replicated file `id` to name `holder`, as an operator could
/// by hand.
fn force_lease(nats: &NatsServer, id: &str, holder: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let leases = async_nats::jetstream::new(client)
            .get_key_value("ledge-leases")
            .await
            .unwrap();
        leases.put(id, holder.to_string().into()).await.unwrap();
    });
}
