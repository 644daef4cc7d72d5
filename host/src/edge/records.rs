//! The records the cluster keeps, as JSON values in its KV buckets: one [`Deployment`] per
//! app and one [`NodeReport`] per live node.
//!
//! A deployment lists every version ever deployed and the stages that point at one, the way an
//! API Gateway API has deployments and stages: `ledge deploy` adds a version and points the
//! [`DEFAULT_STAGE`] at it, so stages, rollbacks and canaries fit later without a migration.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::data::startup::Migration;

/// The stage a plain `ledge deploy` updates and every node serves.
pub const DEFAULT_STAGE: &str = "default";

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
    /// runs that one, else at a new version. Returns the number, and whether it is new.
    pub fn deploy(&mut self, version: Version) -> (u64, bool) {
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
        (number, true)
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
        assert_eq!(deployment.deploy(version("a")), (1, true));
        assert_eq!(deployment.deploy(version("b")), (2, true));
        assert_eq!(deployment.staged(DEFAULT_STAGE).unwrap().0, 2);
        assert_eq!(deployment.versions.len(), 2);
    }

    #[test]
    fn deploying_the_running_bundle_again_changes_nothing() {
        let mut deployment = Deployment::default();
        deployment.deploy(version("a"));
        let before = deployment.clone();
        assert_eq!(deployment.deploy(version("a")), (1, false));
        assert_eq!(deployment, before);
    }

    #[test]
    fn a_record_reads_back_from_json() {
        let mut deployment = Deployment {
            app: "notes".into(),
            ..Deployment::default()
        };
        deployment.deploy(version("a"));
        let json = serde_json::to_vec(&deployment).unwrap();
        assert_eq!(
            serde_json::from_slice::<Deployment>(&json).unwrap(),
            deployment
        );
    }
}
