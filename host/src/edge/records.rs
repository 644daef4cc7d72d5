//! The records the cluster keeps, as JSON values in its KV buckets: one [`Deployment`] per
//! app and one [`NodeReport`] per live node.
//!
//! A deployment lists the versions deployed and the stages that point at one, the way an API
//! Gateway API has deployments and stages: `ledge deploy` adds a version and points the
//! [`DEFAULT_STAGE`] at it, so stages, rollbacks and canaries fit later without a migration.
//! It keeps the newest versions and every one a stage runs; the record is one KV value, which
//! NATS caps at 1 MiB by default, and each version carries its migrations' SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::data::startup::Migration;

/// The stage a plain `ledge deploy` updates and every node serves.
pub const DEFAULT_STAGE: &str = "default";

/// The most bytes a deployment record may take as JSON, well under NATS's default 1 MiB: past
/// it, the oldest versions no stage runs are dropped too.
const RECORD_BUDGET: usize = 256 * 1024;

/// One app's deployments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The app's name (`[application] name`), also its key in the bucket.
    pub app: String,
    /// Every version deployed, by number (1, 2, ...).
    pub versions: BTreeMap<u64, Version>,
    /// Which version each stage runs.
    pub stages: BTreeMap<String, Stage>,
}

/// One deployed version: a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The bundle's SHA-256, in hex: its name in the object store.
    pub bundle: String,
    /// The bundle's size in bytes.
    pub size: u64,
    /// `[application] version` of the manifest in the bundle.
    pub app_version: String,
    /// When it was deployed, in milliseconds since the Unix epoch.
    pub deployed_at: u64,
    /// The schema migrations deployed with it (`ledge deploy --sqlite @file.sql`), in order:
    /// each node has them applied to its copy before it serves this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Migration>,
}

/// What one stage runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The version number in [`Deployment::versions`].
    pub version: u64,
    /// When the stage last changed, in milliseconds since the Unix epoch.
    pub updated_at: u64,
}

impl Deployment {
    /// The version `stage` runs, with its number.
    pub fn staged(&self, stage: &str) -> Option<(u64, &Version)> {
        let number = self.stages.get(stage)?.version;
        Some((number, self.versions.get(&number)?))
    }

    /// Points the default stage at `bundle`: at the version already holding it if the stage
    /// runs that one, else at a new version, keeping the newest `keep` versions (and those a
    /// stage runs). Returns the number, and whether it is new.
    pub fn deploy(&mut self, version: Version, keep: usize) -> (u64, bool) {
        if let Some((number, current)) = self.staged(DEFAULT_STAGE)
            && current.bundle == version.bundle
            && current.migrations == version.migrations
        {
            return (number, false);
        }
        let number = self.versions.keys().next_back().map_or(1, |last| last + 1);
        self.versions.insert(number, version);
        self.stages.insert(
            DEFAULT_STAGE.to_string(),
            Stage {
                version: number,
                updated_at: now_millis(),
            },
        );
        self.prune(keep);
        (number, true)
    }

    /// Drops the oldest versions no stage runs while there are more than `keep` or the record
    /// outgrows [`RECORD_BUDGET`].
    fn prune(&mut self, keep: usize) {
        let staged: BTreeSet<u64> = self.stages.values().map(|stage| stage.version).collect();
        let too_big = |deployment: &Self| {
            serde_json::to_vec(deployment).is_ok_and(|json| json.len() > RECORD_BUDGET)
        };
        while self.versions.len() > keep || too_big(self) {
            let Some(oldest) = self.versions.keys().find(|n| !staged.contains(n)).copied() else {
                return;
            };
            self.versions.remove(&oldest);
        }
    }

    /// The bundles its versions use.
    pub fn bundles(&self) -> impl Iterator<Item = &str> {
        self.versions
            .values()
            .map(|version| version.bundle.as_str())
    }
}

/// What one node says it serves, put again every few seconds while it lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's name, also its key in the bucket.
    pub node: String,
    /// Its region.
    pub region: String,
    /// Where it serves HTTP (`http://127.0.0.1:3000`).
    pub url: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// When it wrote this report.
    pub reported_at: u64,
    /// Every app it knows of, by name.
    pub apps: BTreeMap<String, AppReport>,
    /// Its copies of replicated stores and databases.
    #[serde(default)]
    pub data: Vec<ReplicaReport>,
}

/// One node's copy of a replicated store or database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The file's id in bookmarks and in the cluster (its log is `LEDGE_DB_<id>`).
    pub id: String,
    /// What it is ("database `default` of app `shop`").
    pub name: String,
    /// The log position applied to the copy.
    pub applied: u64,
    /// Whether the node is its writer.
    pub writer: bool,
}

/// One app on one node: the version it serves, and the one it failed to switch to, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppReport {
    /// The version served (0 before any), and its bundle.
    pub version: u64,
    /// The served bundle's SHA-256.
    pub bundle: String,
    /// A version the node could not switch to, and why; it keeps serving `version`.
    pub failed: Option<Failure>,
}

/// A version a node refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Its number.
    pub version: u64,
    /// Its bundle.
    pub bundle: String,
    /// Why, in one line.
    pub error: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(bundle: &str) -> Version {
        Version {
            bundle: bundle.into(),
            size: 1,
            app_version: "1.0.0".into(),
            deployed_at: 0,
            migrations: Vec::new(),
        }
    }

    #[test]
    fn deploying_adds_a_version_and_moves_the_default_stage() {
        let mut deployment = Deployment::default();
        assert_eq!(deployment.deploy(version("a"), 50), (1, true));
        assert_eq!(deployment.deploy(version("b"), 50), (2, true));
        assert_eq!(deployment.staged(DEFAULT_STAGE).unwrap().0, 2);
        assert_eq!(deployment.versions.len(), 2);
    }

    #[test]
    fn deploying_the_running_bundle_again_changes_nothing() {
        let mut deployment = Deployment::default();
        deployment.deploy(version("a"), 50);
        let before = deployment.clone();
        assert_eq!(deployment.deploy(version("a"), 50), (1, false));
        assert_eq!(deployment, before);
    }

    #[test]
    fn a_record_reads_back_from_json() {
        let mut deployment = Deployment {
            app: "notes".into(),
            ..Deployment::default()
        };
        deployment.deploy(version("a"), 50);
        let json = serde_json::to_vec(&deployment).unwrap();
        assert_eq!(
            serde_json::from_slice::<Deployment>(&json).unwrap(),
            deployment
        );
    }

    #[test]
    fn the_oldest_versions_no_stage_runs_are_dropped() {
        let mut deployment = Deployment::default();
        for bundle in ["a", "b", "c"] {
            deployment.deploy(version(bundle), 2);
        }
        assert_eq!(deployment.versions.keys().collect::<Vec<_>>(), [&2, &3]);
        // A stage on an old version keeps it; numbers are never reused.
        deployment.stages.insert(
            "beta".into(),
            Stage {
                version: 2,
                updated_at: 0,
            },
        );
        assert_eq!(deployment.deploy(version("d"), 2), (4, true));
        assert_eq!(deployment.versions.keys().collect::<Vec<_>>(), [&2, &4]);
        assert_eq!(deployment.bundles().collect::<Vec<_>>(), ["b", "d"]);

        // Versions whose migrations outgrow the record's budget are dropped sooner.
        let mut deployment = Deployment::default();
        for bundle in ["a", "b", "c"] {
            let mut big = version(bundle);
            big.migrations = vec![Migration {
                name: "big.sql".into(),
                database: "default".into(),
                sql: "-".repeat(RECORD_BUDGET / 2),
            }];
            deployment.deploy(big, 50);
        }
        assert_eq!(deployment.versions.keys().collect::<Vec<_>>(), [&3]);
    }
}
