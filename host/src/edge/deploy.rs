//! `ledge deploy` and `ledge status`: the operator's side of the deploy API (the cluster's
//! buckets, see [`super::cluster`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use async_nats::jetstream::kv;
use base64::Engine as _;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest as _, Sha256};

use super::bundle;
use super::cluster::{Cluster, latest_values};
use super::records::{DEFAULT_STAGE, Deployment, NodeReport, Version, now_millis};
use super::replication::log_stream;
use crate::cli::{DeployArgs, StatusArgs};
use crate::data::startup::Migration;
use crate::gateway::GatewayPolicies;
use crate::manifest::App;

/// How often `ledge deploy` looks at the node reports while it waits.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Runs `ledge deploy`: packs the app, uploads its bundle, points its default stage at it and
/// waits until every live node serves it.
pub async fn deploy(args: DeployArgs) -> Result<()> {
    let started = Instant::now();
    let mut app = App::load(&args.from)?;
    if args.build {
        crate::builder::build(&app, &[])?;
        app = App::load(&args.from)?;
    }
    if let Some(bad) = app
        .name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        bail!(
            "{}: the app name `{}` has `{bad}`, which a deployed app's name cannot have\n  \
             fix: name it with letters, digits, `-` and `_` under [application]",
            app.manifest_path.display(),
            app.name
        );
    }
    app.check_sources()?;
    // Refused here rather than on every node.
    GatewayPolicies::configure(&app.gateway)?;
    let migrations = args
        .sqlite
        .iter()
        .map(|argument| Migration::read(argument, Path::new(".")))
        .collect::<Result<Vec<_>>>()?;
    let packed = bundle::pack(&app)?;
    let cluster = Cluster::connect(&args.nats, "ledge-deploy")
        .await
        .map_err(|e| e.into_inner())?;
    upload_unless_held(&cluster, &packed).await?;
    let version = Version {
        bundle: packed.digest.clone(),
        size: packed.bytes.len() as u64,
        app_version: app.version.clone().unwrap_or_default(),
        deployed_at: now_millis(),
        migrations,
    };
    let keep = usize::try_from(args.keep_versions).unwrap_or(usize::MAX);
    let (number, new, dropped) = record(&cluster.deployments, &app.name, version, keep).await?;
    delete_unused_bundles(&cluster, dropped).await;
    // A deploy running beside this one may have dropped the version that last used this
    // bundle, and deleted it after this one found it held.
    upload_unless_held(&cluster, &packed).await?;
    let short = &packed.digest[..12];
    if new {
        println!(
            "Deploying {} version {number} (bundle {short}, {} KiB)",
            app.name,
            packed.bytes.len().div_ceil(1024)
        );
    } else {
        println!(
            "{} version {number} (bundle {short}) is already deployed",
            app.name
        );
    }
    let nodes = wait_for_nodes(&cluster, &app.name, number, args.wait).await?;
    println!(
        "{} version {number} is served by {nodes} node{} ({} ms)",
        app.name,
        if nodes == 1 { "" } else { "s" },
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Uploads `packed` unless the object store holds exactly that bundle under its name, written
/// less than half [`ORPHAN_AGE`] ago (a deleted or damaged object is replaced, and an old one
/// written again so that no deploy takes it for a failed deploy's while this one records it).
async fn upload_unless_held(cluster: &Cluster, packed: &bundle::Bundle) -> Result<()> {
    // The object store's own digest of what it holds.
    let stored = format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(Sha256::digest(&packed.bytes))
    );
    let now = time::OffsetDateTime::now_utc();
    let held = cluster.bundles.info(&packed.digest).await;
    if !held.is_ok_and(|info| {
        !info.deleted
            && info.digest.as_deref() == Some(&stored)
            && info
                .modified
                .is_some_and(|written| now - written < ORPHAN_AGE / 2)
    }) {
        let mut bytes = packed.bytes.as_slice();
        cluster
            .bundles
            .put(packed.digest.as_str(), &mut bytes)
            .await
            .map_err(|e| anyhow!("cannot upload bundle {}: {e}", packed.digest))?;
    }
    Ok(())
}

/// How long ago a bundle that no deployment record names must have been written before a
/// deploy deletes it. A deploy writes its bundle (again, if the copy held is older than half
/// this) seconds before it records its version, so such a bundle is one of a deploy that failed
/// or was stopped in between. Ages come from the clocks of the machines that ran
/// `ledge deploy`, which must agree within half of this.
const ORPHAN_AGE: time::Duration = time::Duration::hours(1);

/// How long deleting unused bundles may take before a deploy leaves the rest for the next.
const SWEEP_LIMIT: Duration = Duration::from_secs(30);

/// Deletes the bundles that no version of any app uses: those of `dropped` (the versions the
/// record just dropped), and any written over [`ORPHAN_AGE`] ago. What it cannot delete stays,
/// with a warning.
async fn delete_unused_bundles(cluster: &Cluster, dropped: BTreeSet<String>) {
    let sweep = async {
        let mut stored = Vec::new();
        let mut listing = cluster.bundles.list().await?;
        while let Some(object) = listing.next().await {
            let object = object?;
            stored.push((object.name, object.modified));
        }
        let mut deployments = Vec::new();
        for (app, value) in latest_values(&cluster.deployments).await? {
            let deployment: Deployment = serde_json::from_slice(&value)
                .with_context(|| format!("the deployment record of `{app}` is unreadable"))?;
            deployments.push(deployment);
        }
        let used = deployments.iter().flat_map(Deployment::bundles).collect();
        let unused = unused_bundles(dropped, stored, &used, time::OffsetDateTime::now_utc());
        let mut deleted = 0;
        for bundle in &unused {
            match cluster.bundles.delete(bundle).await {
                Ok(()) => deleted += 1,
                Err(error) => tracing::warn!("cannot delete unused bundle {bundle}: {error}"),
            }
        }
        Ok::<_, anyhow::Error>(deleted)
    };
    match tokio::time::timeout(SWEEP_LIMIT, sweep).await {
        Ok(Ok(0)) => {}
        Ok(Ok(count)) => println!(
            "Deleted {count} bundle{} no kept version uses",
            if count == 1 { "" } else { "s" }
        ),
        Ok(Err(error)) => tracing::warn!("unused bundles stay in the cluster: {error:#}"),
        Err(_) => tracing::warn!(
            "deleting unused bundles took over {SWEEP_LIMIT:?}; the next deploy deletes the rest"
        ),
    }
}

/// Of the bundles `dropped` by a record and those `stored` (name, when last written), the
/// ones no version uses (`used`): all of `dropped`, and the others once older than
/// [`ORPHAN_AGE`] at `now` (one of unknown age stays).
fn unused_bundles(
    dropped: BTreeSet<String>,
    stored: Vec<(String, Option<time::OffsetDateTime>)>,
    used: &BTreeSet<&str>,
    now: time::OffsetDateTime,
) -> BTreeSet<String> {
    let orphans = stored
        .into_iter()
        .filter(|(_, written)| written.is_some_and(|written| now - written > ORPHAN_AGE))
        .map(|(name, _)| name);
    dropped
        .into_iter()
        .chain(orphans)
        .filter(|bundle| !used.contains(bundle.as_str()))
        .collect()
}

/// Adds `version` to `app`'s record, keeping its newest `keep` versions, retrying when
/// another deploy changed it meanwhile. Returns the version's number, whether it is new, and
/// the bundles of the versions dropped that no kept one uses.
async fn record(
    deployments: &kv::Store,
    app: &str,
    version: Version,
    keep: usize,
) -> Result<(u64, bool, BTreeSet<String>)> {
    loop {
        let entry = deployments.entry(app).await?;
        let (mut deployment, revision) = match &entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let deployment: Deployment = serde_json::from_slice(&entry.value)
                    .with_context(|| format!("the deployment record of `{app}` is unreadable"))?;
                (deployment, Some(entry.revision))
            }
            Some(entry) => (Deployment::default(), Some(entry.revision)),
            None => (Deployment::default(), None),
        };
        deployment.app = app.to_string();
        let before: BTreeSet<String> = deployment.bundles().map(str::to_string).collect();
        let (number, new) = deployment.deploy(version.clone(), keep);
        if !new {
            return Ok((number, false, BTreeSet::new()));
        }
        let mut dropped = before;
        for bundle in deployment.bundles() {
            dropped.remove(bundle);
        }
        let json = serde_json::to_vec(&deployment)?;
        let written = match revision {
            Some(revision) => deployments
                .update(app, json.into(), revision)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => deployments
                .create(app, json.into())
                .await
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
        };
        match written {
            Ok(()) => return Ok((number, true, dropped)),
            Err((true, _)) => continue,
            Err((false, error)) => bail!("cannot record the deployment of `{app}`: {error}"),
        }
    }
}

/// Waits until every live node serves version `number` of `app`, showing how many do. Fails
/// naming each node that refused it, and why, or that did not switch in time. The version,
/// not its bundle, is what a node must have switched to: two versions may share a bundle
/// (a new one may differ only in its migrations).
async fn wait_for_nodes(
    cluster: &Cluster,
    app: &str,
    number: u64,
    wait: Duration,
) -> Result<usize> {
    let progress = ProgressBar::new_spinner();
    progress.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    progress.enable_steady_tick(Duration::from_millis(100));
    let deadline = Instant::now() + wait;
    let outcome = loop {
        let reports = live_nodes(&cluster.nodes).await?;
        let serving = reports
            .iter()
            .filter(|r| r.apps.get(app).is_some_and(|a| a.version == number))
            .count();
        let refused: Vec<String> = reports
            .iter()
            .filter_map(|r| {
                let failed = r.apps.get(app)?.failed.as_ref()?;
                (failed.version == number)
                    .then(|| format!("node {} ({}): {}", r.node, r.region, failed.error))
            })
            .collect();
        progress.set_message(format!("{serving} of {} nodes serve it", reports.len()));
        if serving == reports.len() {
            if reports.is_empty() {
                progress.println("No node is live yet: nodes serve it when they start.");
            }
            break Ok(serving);
        }
        // Once every node has either switched or refused (or time is up), the refusals are
        // the answer; nodes that have not decided yet are named as late.
        let decided = |r: &NodeReport| {
            r.apps.get(app).is_some_and(|a| {
                a.version == number || a.failed.as_ref().is_some_and(|f| f.version == number)
            })
        };
        if reports.iter().all(decided) || Instant::now() >= deadline {
            let late: Vec<String> = reports
                .iter()
                .filter(|r| !decided(r))
                .map(|r| {
                    let serves = r
                        .apps
                        .get(app)
                        .map_or("nothing".into(), |a| format!("version {}", a.version));
                    format!("node {} ({}) still serves {serves}", r.node, r.region)
                })
                .collect();
            let mut problems = Vec::new();
            if !refused.is_empty() {
                problems.push(format!(
                    "{} node{} did not switch to it:\n  {}",
                    refused.len(),
                    if refused.len() == 1 { "" } else { "s" },
                    refused.join("\n  ")
                ));
            }
            if !late.is_empty() {
                problems.push(format!(
                    "not every node switched within {}:\n  {}\n  fix: see those nodes' logs; \
                     they switch once they can fetch and load the bundle",
                    humantime::format_duration(wait),
                    late.join("\n  ")
                ));
            }
            break Err(anyhow!("{}", problems.join("\n")));
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    progress.finish_and_clear();
    outcome
}

/// The reports of the nodes alive now.
async fn live_nodes(nodes: &kv::Store) -> Result<Vec<NodeReport>> {
    let mut reports = Vec::new();
    for (key, value) in latest_values(nodes).await? {
        match serde_json::from_slice::<NodeReport>(&value) {
            Ok(report) => reports.push(report),
            Err(error) => tracing::warn!("the report of node `{key}` is unreadable: {error}"),
        }
    }
    reports.sort_by(|a, b| (&a.region, &a.node).cmp(&(&b.region, &b.node)));
    Ok(reports)
}

/// Runs `ledge status`: every app's deployed version, and each live node with what it serves.
pub async fn status(args: StatusArgs) -> Result<()> {
    let cluster = Cluster::connect(&args.nats, "ledge-status")
        .await
        .map_err(|e| e.into_inner())?;
    let mut deployments = BTreeMap::new();
    for (app, value) in latest_values(&cluster.deployments).await? {
        let deployment: Deployment = serde_json::from_slice(&value)
            .with_context(|| format!("the deployment record of `{app}` is unreadable"))?;
        deployments.insert(app, deployment);
    }
    let nodes = live_nodes(&cluster.nodes).await?;
    let data = data_status(&cluster, &nodes).await;
    if args.json {
        let status = serde_json::json!({ "apps": deployments, "nodes": nodes, "data": data });
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!("Apps:");
    if deployments.is_empty() {
        println!("  none deployed");
    }
    for (name, deployment) in &deployments {
        match deployment.staged(DEFAULT_STAGE) {
            Some((number, version)) => println!(
                "  {name}: version {number} (bundle {}, app version {})",
                &version.bundle[..12.min(version.bundle.len())],
                if version.app_version.is_empty() {
                    "-"
                } else {
                    &version.app_version
                }
            ),
            None => println!("  {name}: no version staged"),
        }
    }
    println!("Nodes:");
    if nodes.is_empty() {
        println!("  none live");
    }
    let now = now_millis();
    for node in &nodes {
        let apps: Vec<String> = node
            .apps
            .iter()
            .map(|(name, app)| match &app.failed {
                Some(failed) => format!(
                    "{name} v{} (refused v{}: {})",
                    app.version, failed.version, failed.error
                ),
                None => format!("{name} v{}", app.version),
            })
            .collect();
        println!(
            "  {} ({}) {} up {}s, seen {} ms ago: {}",
            node.node,
            node.region,
            node.url,
            now.saturating_sub(node.started_at) / 1000,
            now.saturating_sub(node.reported_at),
            if apps.is_empty() {
                "no apps".to_string()
            } else {
                apps.join(", ")
            }
        );
    }
    if !data.is_empty() {
        println!("Data (log position; each node's applied position and lag):");
    }
    for file in data.values() {
        let log = match (file.log, file.kept_from) {
            (Some(log), Some(kept_from)) if kept_from > 1 => {
                format!("{log} (a snapshot up to {})", kept_from - 1)
            }
            (Some(log), _) => log.to_string(),
            (None, _) => "unknown".to_string(),
        };
        let copies: Vec<String> = file
            .applied
            .iter()
            .map(|(node, applied)| match file.log {
                Some(log) => format!("{node} {applied} (-{})", log.saturating_sub(*applied)),
                None => format!("{node} {applied}"),
            })
            .collect();
        println!(
            "  {}: log {log}, writer {}; {}",
            file.name,
            file.writer.as_deref().unwrap_or("none"),
            copies.join(", ")
        );
    }
    Ok(())
}

/// One replicated store or database across the cluster.
#[derive(serde::Serialize)]
struct DataStatus {
    name: String,
    /// The position of the log's last entry, if the hub answered.
    log: Option<u64>,
    /// The position of the log's first entry kept: those before it are in the file's
    /// snapshot.
    kept_from: Option<u64>,
    /// The node that holds its writer lease, as the nodes report.
    writer: Option<String>,
    /// Each live node's applied position.
    applied: BTreeMap<String, u64>,
}

/// Every replicated file the live `nodes` report, by id, with its log's position.
async fn data_status(cluster: &Cluster, nodes: &[NodeReport]) -> BTreeMap<String, DataStatus> {
    let mut data: BTreeMap<String, DataStatus> = BTreeMap::new();
    for node in nodes {
        for copy in &node.data {
            let file = data.entry(copy.id.clone()).or_insert_with(|| DataStatus {
                name: copy.name.clone(),
                log: None,
                kept_from: None,
                writer: None,
                applied: BTreeMap::new(),
            });
            file.applied.insert(node.node.clone(), copy.applied);
            if copy.writer {
                file.writer = Some(node.node.clone());
            }
        }
    }
    for (id, file) in &mut data {
        if let Ok(mut log) = cluster.jetstream.get_stream(log_stream(id)).await
            && let Ok(info) = log.info().await
        {
            file.log = Some(info.state.last_sequence);
            file.kept_from = Some(info.state.first_sequence);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_bundles_are_those_dropped_and_old_ones_no_record_names() {
        let now = time::OffsetDateTime::now_utc();
        let old = Some(now - ORPHAN_AGE - time::Duration::minutes(1));
        let recent = Some(now - time::Duration::minutes(1));
        let stored = vec![
            ("kept".to_string(), old),
            ("dropped".to_string(), recent),
            ("dropped-but-used".to_string(), recent),
            ("failed-long-ago".to_string(), old),
            ("being-deployed".to_string(), recent),
            ("of-unknown-age".to_string(), None),
        ];
        let dropped = ["dropped", "dropped-but-used"].map(String::from).into();
        let used = ["kept", "dropped-but-used"].into();
        let unused = unused_bundles(dropped, stored, &used, now);
        assert_eq!(
            unused,
            ["dropped", "failed-long-ago"].map(String::from).into()
        );
    }
}
