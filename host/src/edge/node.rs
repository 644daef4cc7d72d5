//! `ledge node`: one edge node. It serves every app deployed to the cluster, with all that
//! `ledge up` does, and follows the deployment records: a new version's bundle is fetched,
//! checked, unpacked and compiled beside the running one, then the node's apps are swapped in
//! one step, so requests in flight finish on the old version and none fails. What it serves
//! is written to its state directory, so a restarted node serves again before it reaches NATS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use arc_swap::ArcSwapOption;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;
use tokio::sync::Notify;
use tokio_util::task::AbortOnDropHandle;

use super::bundle;
use super::cluster::{Cluster, ClusterError, follow_bucket, key_of};
use super::counts::SharedCounts;
use super::records::{
    AppReport, DEFAULT_STAGE, Deployment, Failure, NodeReport, Version, now_millis,
};
use super::replication::ClusterReplication;
use super::stall::StallWatch;
use crate::cli::{NatsArgs, NodeArgs};
use crate::data::startup::Migration;
use crate::manifest::App;
use crate::server::{Site, SiteTable, Sites};
use crate::serving::{self, AppDirs, Host, LoadedApp, RuntimeBuild, Seed};

/// How often a node puts its report, well inside [`super::cluster::NODE_REPORT_TTL`].
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// How long to wait before trying NATS again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long to wait before watching the deployment records again.
const WATCH_AGAIN_AFTER: Duration = Duration::from_millis(100);
/// How often a node checks that its watch of the deployment records keeps up.
const WATCHDOG_EVERY: Duration = Duration::from_millis(250);
/// How long a bundle may take to fetch.
const FETCH_LIMIT: Duration = Duration::from_secs(60);
/// How long after its first refusal a version is tried again; each refusal after that
/// doubles the wait, since what fails again and again (a corrupted bundle, a manifest too
/// new) would otherwise be fetched anew every time.
const RETRY_REFUSED_AFTER: Duration = Duration::from_secs(10);
/// The longest wait before a refused version is tried again.
const RETRY_REFUSED_AT_MOST: Duration = Duration::from_secs(300);
/// The file in the state directory naming what the node serves.
const SERVED_FILE: &str = "served.json";

/// Runs `ledge node` until a shutdown signal.
pub async fn run(args: NodeArgs) -> Result<()> {
    let started = Instant::now();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", args.region, host_name()));
    if let Some(bad) = name
        .chars()
        .chain(args.region.chars())
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        bail!(
            "node `{name}` in region `{}`: `{bad}` cannot be in a node or region name\n  \
             fix: use letters, digits, `-` and `_`",
            args.region
        );
    }
    std::fs::create_dir_all(args.state_dir.join("bundles")).with_context(|| {
        format!(
            "cannot create the state directory {}",
            args.state_dir.display()
        )
    })?;
    let cache_dir = serving::compile_cache_dir(&args.serve, &args.state_dir)?;
    let runtime = RuntimeBuild::begin(&args.serve);
    let mut host = Host::start(args.serve, runtime, cache_dir).await?;
    let counts = Arc::new(SharedCounts::default());
    let app_counts = counts.clone();
    host.shared_counts = Some(Box::new(move |app: &str| app_counts.for_app(app)));
    let replication =
        ClusterReplication::new(&name, args.nats.hub_domain.is_none(), args.snapshot_every);
    host.replication = Some(replication.clone());
    let node = Arc::new(Node {
        name,
        region: args.region,
        state_dir: args.state_dir,
        host,
        sites: Arc::new(SiteTable::new(Sites::new(Vec::new())?)),
        apps: Mutex::default(),
        url: OnceLock::new(),
        started_at: now_millis(),
        changed: Notify::new(),
        counts,
        replication,
        reports: ArcSwapOption::empty(),
    });
    node.serve_what_was_served().await;

    let server = node.host.bind().await?;
    let url = format!("{}://{}", server.scheme(), server.local_addr()?);
    println!("Serving {url}");
    println!("Node {} in region {}", node.name, node.region);
    let _ = node.url.set(url);
    node.host.print_observers();
    tracing::info!("ready in {} ms", started.elapsed().as_millis());

    let cluster = match Cluster::connect(&args.nats, &node.name).await {
        Ok(cluster) => Some(cluster),
        Err(ClusterError::NotUsable(error)) => return Err(error),
        Err(ClusterError::Unreachable(error)) => {
            tracing::warn!("{error:#}; serving what this node served before, trying again");
            None
        }
    };
    let following = tokio::spawn(node.clone().follow(args.nats, cluster));
    let served = server.serve(node.sites.clone()).await;
    following.abort();
    // Gone at once from the live nodes, so no deploy waits for this one.
    if let Some(nodes) = node.reports.load_full() {
        let _ = tokio::time::timeout(Duration::from_secs(1), nodes.delete(&node.name)).await;
    }
    node.host.shutdown().await?;
    served
}

/// The node's state, shared by the request path (through `sites`) and the follower.
struct Node {
    name: String,
    region: String,
    state_dir: PathBuf,
    host: Host,
    /// What requests are answered with.
    sites: Arc<SiteTable>,
    /// Every app, by name: what it serves and what it failed to switch to.
    apps: Mutex<BTreeMap<String, NodeApp>>,
    /// Where it serves, once bound.
    url: OnceLock<String>,
    started_at: u64,
    /// Woken when an app changed, so the report goes out at once.
    changed: Notify,
    /// The quota counts every node shares, counted in the cluster once it is reached.
    counts: Arc<SharedCounts>,
    /// The replicated stores and databases, which follow their logs once the cluster is
    /// reached.
    replication: Arc<ClusterReplication>,
    /// Where this node reports, once the cluster is reached.
    reports: ArcSwapOption<async_nats::jetstream::kv::Store>,
}

/// One app on this node.
#[derive(Default)]
struct NodeApp {
    serving: Option<Served>,
    /// The bundle of the version `serving` replaced, kept for the requests that may still
    /// read its files.
    replaced: Option<String>,
    failed: Option<Failure>,
    /// When `failed` was last tried.
    failed_at: Option<Instant>,
    /// How many times in a row `failed` was refused.
    refusals: u32,
}

/// A version being served.
struct Served {
    version: u64,
    bundle: String,
    app: App,
    loaded: LoadedApp,
}

/// What [`SERVED_FILE`] holds: each app's version and bundle.
#[derive(Default, Serialize, Deserialize)]
struct ServedFile {
    apps: BTreeMap<String, ServedVersion>,
}

#[derive(Serialize, Deserialize)]
struct ServedVersion {
    version: u64,
    bundle: String,
}

impl Node {
    /// Loads the versions named in the state directory, from their unpacked bundles.
    async fn serve_what_was_served(&self) {
        let Ok(text) = std::fs::read_to_string(self.state_dir.join(SERVED_FILE)) else {
            return;
        };
        let served: ServedFile = match serde_json::from_str(&text) {
            Ok(served) => served,
            Err(error) => {
                tracing::warn!("{SERVED_FILE} is unreadable, serving nothing until NATS: {error}");
                return;
            }
        };
        for (name, version) in served.apps {
            let manifest = self.state_dir.join("bundles").join(&version.bundle);
            let loaded = async {
                let manifest = bundle::manifest_in(&manifest, &version.bundle)?;
                // Its migrations were applied before it was first served.
                self.load(&name, &manifest, &version.bundle, &[]).await
            };
            match loaded.await {
                Ok((app, loaded)) => {
                    let served = Served {
                        version: version.version,
                        bundle: version.bundle,
                        app,
                        loaded,
                    };
                    if let Err(error) = self.install(&name, served) {
                        tracing::warn!("app `{name}`: {error:#}");
                    }
                }
                Err(error) => tracing::warn!("app `{name}` is not served: {error:#}"),
            }
        }
    }

    /// Follows the cluster: reports what this node serves and switches apps as their
    /// deployment records change, watching them again whenever the watch ends or stalls.
    async fn follow(self: Arc<Self>, nats: NatsArgs, cluster: Option<Cluster>) {
        let cluster = match cluster {
            Some(cluster) => cluster,
            None => loop {
                match Cluster::connect(&nats, &self.name).await {
                    Ok(cluster) => break cluster,
                    Err(error) => {
                        tracing::debug!("{:#}", error.into_inner());
                        tokio::time::sleep(RECONNECT_DELAY).await;
                    }
                }
            },
        };
        tracing::info!("following the cluster at {}", nats.urls.join(", "));
        // The client reconnects by itself from here on; the watch is made anew whenever it
        // ends or stalls.
        self.counts.connect(cluster.counts.clone());
        self.replication.reached(&cluster);
        self.reports.store(Some(Arc::new(cluster.nodes.clone())));
        let _reporting =
            AbortOnDropHandle::new(tokio::spawn(self.clone().report(cluster.nodes.clone())));
        loop {
            if let Err(error) = self.watch(&cluster).await {
                tracing::warn!("lost the deployment records: {error:#}; following again");
            }
            tokio::time::sleep(WATCH_AGAIN_AFTER).await;
        }
    }

    /// Applies every deployment record, then each change, until the watch ends or falls
    /// behind ([`follow_bucket`] says why it is no KV watch). A watch can stall after the hub
    /// comes back, so every [`WATCHDOG_EVERY`] a [`StallWatch`] compares the records' last
    /// revision at the hub with the last one delivered: stuck, the watch is given up and made
    /// anew.
    async fn watch(&self, cluster: &Cluster) -> Result<()> {
        let mut records = follow_bucket(&cluster.deployments).await?;
        let mut delivered = 0;
        let mut stall = StallWatch::default();
        let mut watchdog = tokio::time::interval(WATCHDOG_EVERY);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = records.next() => {
                    let Some(message) = message else {
                        bail!("the watch ended");
                    };
                    let message = message?;
                    let revision = message.info().map_err(|e| anyhow!("{e}"))?.stream_sequence;
                    delivered = delivered.max(revision);
                    let Some((app, deleted)) = key_of(&cluster.deployments, &message) else {
                        continue;
                    };
                    match deleted {
                        true => self.remove(app),
                        false => self.apply(cluster, app, &message.payload).await,
                    }
                }
                _ = watchdog.tick() => {
                    self.retry_refused(cluster).await;
                    if stall.progressed(delivered) {
                        continue;
                    }
                    let mut stream = cluster.deployments.stream.clone();
                    let Ok(info) = stream.info().await else {
                        stall.unreachable();
                        continue;
                    };
                    let last = info.state.last_sequence;
                    if let Some(after) = stall.compare(delivered, last).context("the deployment watch")? {
                        watchdog.reset_after(after);
                    }
                }
            }
        }
    }

    /// Serves what app `name`'s deployment record says. When its staged version is refused
    /// and this node serves nothing of the app yet (it joined after that version was
    /// deployed), the newest earlier version it can load serves meanwhile, as it does on the
    /// nodes that refused the staged one while serving that.
    async fn apply(&self, cluster: &Cluster, name: &str, record: &[u8]) {
        let deployment: Deployment = match serde_json::from_slice(record) {
            Ok(deployment) => deployment,
            Err(error) => {
                tracing::warn!("the deployment record of `{name}` is unreadable: {error}");
                return;
            }
        };
        let Some((number, version)) = deployment.staged(DEFAULT_STAGE) else {
            return;
        };
        let Err(error) = self.switch(cluster, name, number, version).await else {
            return;
        };
        if !self.serves_any(name) {
            for (&earlier, version) in deployment.versions.range(..number).rev() {
                match self.switch(cluster, name, earlier, version).await {
                    Ok(()) => {
                        tracing::warn!(
                            "app `{name}`: serving version {earlier} until version {number} can be"
                        );
                        break;
                    }
                    Err(error) => tracing::info!(
                        "app `{name}`: version {earlier} cannot serve either: {error:#}"
                    ),
                }
            }
        }
        self.refuse(name, number, &version.bundle, &error);
    }

    /// Serves `version` (number `number`) of app `name`, unless it does already.
    async fn switch(
        &self,
        cluster: &Cluster,
        name: &str,
        number: u64,
        version: &Version,
    ) -> Result<()> {
        let bundle = version.bundle.as_str();
        if self.serves(name, number, bundle) {
            return Ok(());
        }
        let started = Instant::now();
        let (app, loaded) = self.fetch_and_load(cluster, name, version).await?;
        let served = Served {
            version: number,
            bundle: bundle.to_string(),
            app,
            loaded,
        };
        self.install(name, served)?;
        self.remove_unused_bundles();
        tracing::info!(
            "app `{name}`: serving version {number} after {} ms",
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// Tries again, for each app whose version was refused long enough ago
    /// ([`retry_delay`]), what its record stages now: what failed may have been passing (a
    /// timeout, a source URL down, a domain another app gave up, the writer of a migration
    /// away).
    async fn retry_refused(&self, cluster: &Cluster) {
        let due: Vec<String> = {
            let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.iter_mut()
                .filter_map(|(name, app)| {
                    app.failed.as_ref()?;
                    let at = app.failed_at.as_mut()?;
                    if at.elapsed() < retry_delay(app.refusals) {
                        return None;
                    }
                    *at = Instant::now();
                    Some(name.clone())
                })
                .collect()
        };
        for name in due {
            if let Ok(Some(record)) = cluster.deployments.get(&name).await {
                self.apply(cluster, &name, &record).await;
            }
        }
    }

    /// Fetches, checks and unpacks the bundle of `version`, then loads it beside what is
    /// served, with its migrations applied to this node's copies.
    async fn fetch_and_load(
        &self,
        cluster: &Cluster,
        name: &str,
        version: &Version,
    ) -> Result<(App, LoadedApp)> {
        let bundle = version.bundle.as_str();
        bundle::check_digest(bundle)?;
        let bundles = self.state_dir.join("bundles");
        let manifest = match bundle::manifest_in(&bundles.join(bundle), bundle) {
            Ok(manifest) => manifest,
            Err(_) => {
                let fetch = async {
                    let mut object = cluster.bundles.get(bundle).await?;
                    let mut bytes = Vec::new();
                    object.read_to_end(&mut bytes).await?;
                    Ok::<_, anyhow::Error>(bytes)
                };
                let bytes = tokio::time::timeout(FETCH_LIMIT, fetch)
                    .await
                    .map_err(|_| anyhow!("fetching bundle {bundle} took over {FETCH_LIMIT:?}"))?
                    .with_context(|| format!("cannot fetch bundle {bundle}"))?;
                let digest = bundle.to_string();
                tokio::task::spawn_blocking(move || bundle::unpack(&bytes, &digest, &bundles))
                    .await??
            }
        };
        self.load(name, &manifest, bundle, &version.migrations)
            .await
    }

    /// Loads the app in `manifest` (compiling its components) on a blocking thread, so the
    /// requests being served keep their workers.
    async fn load(
        &self,
        name: &str,
        manifest: &Path,
        bundle: &str,
        migrations: &[Migration],
    ) -> Result<(App, LoadedApp)> {
        let mut app = App::load(manifest)?;
        if app.name != name {
            bail!(
                "bundle {bundle} holds app `{}`, not `{name}`; it is not served",
                app.name
            );
        }
        let gateway = serving::gateway_policies(&mut app, &self.host.args)?;
        let dirs = AppDirs {
            state: self.state_dir.join("apps").join(name),
            staging: self.state_dir.join("staging").join(bundle),
        };
        crate::sources::fetch_remote_sources(&mut app, &dirs.state).await?;
        app.check_sources()?;
        let runtime = tokio::runtime::Handle::current();
        let loaded = tokio::task::block_in_place(|| {
            runtime.block_on(serving::load_app(
                &self.host,
                &app,
                gateway,
                &dirs,
                &Seed {
                    migrations,
                    ..Seed::default()
                },
            ))
        })?;
        Ok((app, loaded))
    }

    /// Whether `name` is served as version `number` from `bundle` already.
    fn serves(&self, name: &str, number: u64, bundle: &str) -> bool {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(name)
            .and_then(|app| app.serving.as_ref())
            .is_some_and(|served| served.version == number && served.bundle == bundle)
    }

    /// Whether any version of `name` is served.
    fn serves_any(&self, name: &str) -> bool {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.get(name).is_some_and(|app| app.serving.is_some())
    }

    /// Serves `served` as app `name` from the next request on, then records it. Refused,
    /// with nothing changed, when it cannot share the listener with the other apps.
    fn install(&self, name: &str, served: Served) -> Result<()> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let previous = apps
            .entry(name.to_string())
            .or_default()
            .serving
            .replace(served);
        if let Err(error) = self.publish(&apps) {
            let entry = apps.get_mut(name).expect("inserted above");
            entry.serving = previous;
            return Err(error);
        }
        let entry = apps.get_mut(name).expect("inserted above");
        entry.failed = None;
        entry.failed_at = None;
        entry.refusals = 0;
        entry.replaced = previous.as_ref().map(|served| served.bundle.clone());
        self.save(&apps);
        drop(apps);
        // The old version is dropped here, its requests in flight still holding what they
        // need.
        drop(previous);
        self.changed.notify_one();
        Ok(())
    }

    /// Stops serving `name`.
    fn remove(&self, name: &str) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if apps.remove(name).is_some() {
            if let Err(error) = self.publish(&apps) {
                tracing::warn!("after removing app `{name}`: {error:#}");
            }
            self.save(&apps);
            drop(apps);
            tracing::info!("app `{name}`: no longer deployed");
            self.changed.notify_one();
            self.remove_unused_bundles();
        }
    }

    /// Records that version `number` of `name` was not switched to, and why.
    fn refuse(&self, name: &str, number: u64, bundle: &str, error: &anyhow::Error) {
        let error = format!("{error:#}");
        tracing::error!("app `{name}`: version {number} is not served: {error}");
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let app = apps.entry(name.to_string()).or_default();
        let again = app
            .failed
            .as_ref()
            .is_some_and(|failed| failed.version == number && failed.bundle == bundle);
        app.refusals = if again {
            app.refusals.saturating_add(1)
        } else {
            1
        };
        app.failed = Some(Failure {
            version: number,
            bundle: bundle.to_string(),
            error,
        });
        app.failed_at = Some(Instant::now());
        self.changed.notify_one();
    }

    /// Makes `apps` what the listener serves.
    fn publish(&self, apps: &BTreeMap<String, NodeApp>) -> Result<()> {
        let sites = apps
            .values()
            .filter_map(|app| app.serving.as_ref())
            .map(|served| Site {
                manifest: served.app.manifest_path.clone(),
                domains: served.app.gateway.domains.clone(),
                service: served.loaded.service.clone(),
            })
            .collect();
        self.sites.replace(Sites::new(sites)?);
        Ok(())
    }

    /// Writes what is served to the state directory, for the next start.
    fn save(&self, apps: &BTreeMap<String, NodeApp>) {
        let file = ServedFile {
            apps: apps
                .iter()
                .filter_map(|(name, app)| {
                    let served = app.serving.as_ref()?;
                    let version = ServedVersion {
                        version: served.version,
                        bundle: served.bundle.clone(),
                    };
                    Some((name.clone(), version))
                })
                .collect(),
        };
        let path = self.state_dir.join(SERVED_FILE);
        let partial = path.with_extension("json.partial");
        let written = serde_json::to_vec_pretty(&file)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&partial, json))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(error) = written {
            tracing::warn!("cannot write {}: {error}", path.display());
        }
    }

    /// Deletes the unpacked bundles, and their staged files, of every version that is neither
    /// served nor the one a served version replaced: a node that is deployed to often would
    /// otherwise keep every bundle it ever served. Switches run one at a time, so no bundle is
    /// being unpacked meanwhile; the deleting blocks this worker thread (the follower's), not
    /// the apps' lock.
    fn remove_unused_bundles(&self) {
        let kept: Vec<String> = {
            let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
            apps.values()
                .flat_map(|app| {
                    [
                        app.serving.as_ref().map(|s| s.bundle.clone()),
                        app.replaced.clone(),
                    ]
                })
                .flatten()
                .collect()
        };
        tokio::task::block_in_place(|| self.remove_bundles_but(&kept));
    }

    /// Deletes every unpacked bundle and staged directory not named in `kept`.
    fn remove_bundles_but(&self, kept: &[String]) {
        for place in ["bundles", "staging"] {
            let Ok(entries) = std::fs::read_dir(self.state_dir.join(place)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                if bundle::check_digest(name).is_err() || kept.iter().any(|k| k == name) {
                    continue;
                }
                match std::fs::remove_dir_all(entry.path()) {
                    Ok(()) => tracing::debug!("removed the unused {place} of bundle {name}"),
                    Err(error) => {
                        tracing::warn!("cannot remove {}: {error}", entry.path().display())
                    }
                }
            }
        }
    }

    /// This node's report.
    fn report_now(&self) -> NodeReport {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        NodeReport {
            node: self.name.clone(),
            region: self.region.clone(),
            url: self.url.get().cloned().unwrap_or_default(),
            started_at: self.started_at,
            reported_at: now_millis(),
            apps: apps
                .iter()
                .map(|(name, app)| {
                    let (version, bundle) = app
                        .serving
                        .as_ref()
                        .map_or((0, String::new()), |s| (s.version, s.bundle.clone()));
                    let report = AppReport {
                        version,
                        bundle,
                        failed: app.failed.clone(),
                    };
                    (name.clone(), report)
                })
                .collect(),
            data: self.replication.report(),
        }
    }

    /// Puts this node's report every [`REPORT_EVERY`], and at once after each change.
    async fn report(self: Arc<Self>, nodes: async_nats::jetstream::kv::Store) {
        loop {
            let report = self.report_now();
            match serde_json::to_vec(&report) {
                Ok(json) => {
                    if let Err(error) = nodes.put(&self.name, json.into()).await {
                        tracing::debug!("cannot report to the cluster: {error}");
                    }
                }
                Err(error) => tracing::warn!("cannot encode the node report: {error}"),
            }
            tokio::select! {
                () = tokio::time::sleep(REPORT_EVERY) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// How long to wait before trying a version refused `refusals` times in a row again.
fn retry_delay(refusals: u32) -> Duration {
    let doublings = refusals.saturating_sub(1).min(16);
    RETRY_REFUSED_AFTER
        .saturating_mul(1 << doublings)
        .min(RETRY_REFUSED_AT_MOST)
}

/// This machine's host name, for the default node name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .map_or_else(
            || "node".to_string(),
            |name| {
                name.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect()
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_refused_again_and_again_is_tried_less_and_less_often() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), RETRY_REFUSED_AT_MOST);
    }
}
