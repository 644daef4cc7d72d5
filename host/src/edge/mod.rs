//! The edge: apps deployed once and served by every `ledge node`, over NATS JetStream.
//!
//! What the cluster holds ([`cluster`]): the bundles (an app's manifest, components and
//! files, packed by [`bundle`], content-addressed by SHA-256) in an Object Store; which bundle
//! each app's stages run ([`records::Deployment`]) in a KV bucket; and each live node's report
//! of what it serves ([`records::NodeReport`]) in another, whose entries expire when a node
//! stops reporting. Those buckets are the deploy API: `ledge deploy` and `ledge status`
//! ([`deploy`]) read and write them, and [`node`] watches them, whether the NATS server is a
//! developer's single process or a cluster. A fourth bucket holds the counts every node shares
//! ([`counts`]: API-key quotas). Each replicated key-value store and SQL database has a log
//! stream and a writer lease there ([`replication`]). Every follower of a stream checks that
//! it keeps up ([`stall`]).

pub mod bundle;
pub mod cluster;
pub mod counts;
pub mod deploy;
pub mod node;
pub mod records;
pub mod replication;
pub mod stall;
