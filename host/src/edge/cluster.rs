//! The connection to the NATS cluster and the JetStream buckets the edge keeps there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::context::AccountErrorKind;
use async_nats::jetstream::{self, kv, object_store};
use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use bytes::Bytes;
use futures::StreamExt as _;

use super::counts::COUNTS;
use super::replication::{LEASE_TTL, LEASES};
use crate::cli::NatsArgs;

/// The KV bucket of deployment records, one per app.
pub const DEPLOYMENTS: &str = "ledge-deployments";
/// The KV bucket of node reports, one per live node.
pub const NODES: &str = "ledge-nodes";
/// The object store of bundles, named by their SHA-256.
pub const BUNDLES: &str = "ledge-bundles";
/// The object store of replicated files' snapshots, one object per file id.
pub const SNAPSHOTS: &str = "ledge-snapshots";
/// How long a node's report lives unless it is put again: a node silent this long is gone.
pub const NODE_REPORT_TTL: Duration = Duration::from_secs(10);
/// How long a quota count lives after its last increment: longer than the longest quota
/// period (a calendar month), so a count goes only once its period is over, and the bucket
/// does not keep every period's counts for good.
const COUNT_LIFETIME: Duration = Duration::from_secs(32 * 24 * 3600);
/// How long reading a whole bucket may take.
const READ_LIMIT: Duration = Duration::from_secs(10);
/// How many copies a clustered hub keeps of each bucket, bundle and log: losing one server of
/// three loses nothing acknowledged.
pub const HUB_REPLICAS: usize = 3;
/// How long one JetStream call may take before it fails (the client's default is 5 s).
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the cluster with its buckets, created if missing.
pub struct Cluster {
    /// Deployment records ([`DEPLOYMENTS`]).
    pub deployments: kv::Store,
    /// Node reports ([`NODES`]).
    pub nodes: kv::Store,
    /// Bundles ([`BUNDLES`]).
    pub bundles: object_store::ObjectStore,
    /// Snapshots of replicated stores and databases, by file id.
    pub snapshots: object_store::ObjectStore,
    /// Counts shared by every node ([`super::counts::COUNTS`]).
    pub counts: kv::Store,
    /// Writer leases of replicated stores and databases ([`super::replication::LEASES`]).
    pub leases: kv::Store,
    /// The connection, for core requests (writes forwarded to a writer).
    pub client: async_nats::Client,
    /// JetStream through the connection, in the hub's domain (the replication logs).
    pub jetstream: jetstream::Context,
}

/// Why the cluster could not be used.
#[derive(Debug)]
pub enum ClusterError {
    /// No server could be reached: worth trying again later.
    Unreachable(anyhow::Error),
    /// A server answered but cannot serve as the cluster (no JetStream, bad credentials,
    /// buckets that cannot be created): trying again will not help.
    NotUsable(anyhow::Error),
}

impl ClusterError {
    /// The error, whichever kind.
    pub fn into_inner(self) -> anyhow::Error {
        match self {
            Self::Unreachable(error) | Self::NotUsable(error) => error,
        }
    }
}

impl Cluster {
    /// Connects as `name` and opens the buckets, creating any that is missing. Fails with one
    /// line naming the server when it cannot be reached or has no JetStream. Through a leaf
    /// (`--hub-domain`), a hub that does not answer yet is unreachable, not unusable: the leaf's
    /// link to it may still be coming up.
    pub async fn connect(args: &NatsArgs, name: &str) -> Result<Self, ClusterError> {
        let client = connect(args, name).await?;
        let mut jetstream = match &args.hub_domain {
            Some(domain) => jetstream::with_domain(client.clone(), domain),
            None => jetstream::new(client.clone()),
        };
        jetstream.set_timeout(JETSTREAM_TIMEOUT);
        if let Err(error) = jetstream.query_account().await {
            let servers = args.urls.join(", ");
            let timed_out = error.kind() == AccountErrorKind::TimedOut;
            let error = match &args.hub_domain {
                None if timed_out => ClusterError::Unreachable(anyhow!(
                    "JetStream at {servers} does not answer yet ({error})"
                )),
                Some(domain) => ClusterError::Unreachable(anyhow!(
                    "the hub's JetStream (domain `{domain}`) does not answer through {servers} \
                     ({error})"
                )),
                None => ClusterError::NotUsable(anyhow!(
                    "the NATS server at {servers} has no JetStream ({error}).\n  \
                     fix: start nats-server with `-js` (or a `jetstream {{}}` block in its \
                     config); through a region's leaf server, give the hub's domain with \
                     --hub-domain"
                )),
            };
            return Err(error);
        }
        Self::open(&args.urls, client, jetstream)
            .await
            .map_err(ClusterError::NotUsable)
    }

    /// Opens (or creates) the buckets.
    async fn open(
        urls: &[String],
        client: async_nats::Client,
        jetstream: jetstream::Context,
    ) -> Result<Self> {
        let servers = urls.join(", ");
        let jetstream_ref = &jetstream;
        let bucket = |bucket: &'static str, description: &str, history: i64, max_age| {
            let config = kv::Config {
                bucket: bucket.into(),
                description: format!("ledge: {description}"),
                history,
                max_age,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            };
            let servers = servers.clone();
            async move {
                with_hub_replicas(|num_replicas| {
                    let config = kv::Config {
                        num_replicas,
                        ..config.clone()
                    };
                    jetstream_ref.create_or_update_key_value(config)
                })
                .await
                .with_context(|| format!("cannot open the KV bucket {bucket} at {servers}"))
            }
        };
        let forever = Duration::ZERO;
        let deployments = bucket(
            DEPLOYMENTS,
            "which bundle each app's stages run",
            16,
            forever,
        );
        let deployments = deployments.await?;
        let nodes = bucket(NODES, "what each live node serves", 1, NODE_REPORT_TTL).await?;
        let counts = bucket(
            COUNTS,
            "counts every node shares (API-key quotas)",
            1,
            COUNT_LIFETIME,
        );
        let counts = counts.await?;
        let leases = bucket(
            LEASES,
            "writer leases of replicated stores and databases",
            1,
            LEASE_TTL,
        );
        let leases = leases.await?;
        let object_store = |bucket: &'static str, description: &str| {
            let description = Some(format!("ledge: {description}"));
            let servers = servers.clone();
            async move {
                with_hub_replicas(|num_replicas| {
                    jetstream_ref.create_object_store(object_store::Config {
                        bucket: bucket.into(),
                        description: description.clone(),
                        storage: jetstream::stream::StorageType::File,
                        num_replicas,
                        ..Default::default()
                    })
                })
                .await
                .with_context(|| format!("cannot open the object store {bucket} at {servers}"))
            }
        };
        let bundles = object_store(BUNDLES, "app bundles, by SHA-256").await?;
        let snapshots = object_store(
            SNAPSHOTS,
            "snapshots of replicated stores and databases, by id",
        )
        .await?;
        Ok(Self {
            deployments,
            nodes,
            bundles,
            snapshots,
            counts,
            leases,
            client,
            jetstream,
        })
    }
}

/// The longest wait between two attempts to reconnect to NATS.
const RECONNECT_DELAY_LIMIT: Duration = Duration::from_millis(250);

/// Creates something in the hub's JetStream (a bucket, an object store, a log) with
/// [`HUB_REPLICAS`] copies, or with one on a hub of a single server, which refuses more.
pub async fn with_hub_replicas<T, E, F>(create: impl Fn(usize) -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    match create(HUB_REPLICAS).await {
        // JetStream's error 10074: "replicas > 1 not supported in non-clustered mode".
        Err(error) if error.to_string().contains("non-clustered") => create(1).await,
        created => created,
    }
}

/// An ordered pull consumer of `store`: each key's latest entry, then every change. A KV watch
/// (and `kv::Store::keys`) uses a push consumer, which starts sending before its subscription's
/// interest has crossed a leaf connection; what it sends meanwhile is lost, so a node behind a
/// leaf saw nothing. A pull consumer asks for each batch on an inbox it already listens to.
pub async fn follow_bucket(store: &kv::Store) -> Result<pull::Ordered> {
    let consumer = store
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("$KV.{}.>", store.name),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            ..Default::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// The key `message` (from [`follow_bucket`]) is about, and whether it was deleted.
pub fn key_of<'a>(store: &kv::Store, message: &'a jetstream::Message) -> Option<(&'a str, bool)> {
    let key = message
        .subject
        .strip_prefix("$KV.")?
        .strip_prefix(store.name.as_str())?
        .strip_prefix('.')?;
    let deleted = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get("KV-Operation"))
        .and_then(|operation| operation.as_str().parse::<kv::Operation>().ok())
        .is_some_and(|operation| operation != kv::Operation::Put);
    Some((key, deleted))
}

/// Every key's latest value in `store`, deleted keys left out.
pub async fn latest_values(store: &kv::Store) -> Result<BTreeMap<String, Bytes>> {
    let mut stream = store.stream.clone();
    if stream.info().await?.state.messages == 0 {
        return Ok(BTreeMap::new());
    }
    let read = async {
        let mut messages = follow_bucket(store).await?;
        let mut values = BTreeMap::new();
        while let Some(message) = messages.next().await {
            let message = message?;
            let pending = message.info().map_err(|e| anyhow!("{e}"))?.pending;
            if let Some((key, deleted)) = key_of(store, &message) {
                match deleted {
                    true => values.remove(key),
                    false => values.insert(key.to_string(), message.payload.clone()),
                };
            }
            if pending == 0 {
                break;
            }
        }
        Ok(values)
    };
    tokio::time::timeout(READ_LIMIT, read)
        .await
        .map_err(|_| anyhow!("reading the bucket {} took over {READ_LIMIT:?}", store.name))?
}

/// Connects to the first reachable server of `args.urls`, with TLS on the ring provider
/// ledge uses everywhere and the webpki roots plus `--nats-ca`.
async fn connect(args: &NatsArgs, name: &str) -> Result<async_nats::Client, ClusterError> {
    let options = options(args, name).await.map_err(ClusterError::NotUsable)?;
    let addresses = args
        .urls
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>()
                .map_err(|e| anyhow!("--nats {url}: not a NATS URL ({e})"))
        })
        .collect::<Result<Vec<_>>>()
        .map_err(ClusterError::NotUsable)?;
    let servers = args.urls.join(", ");
    options
        .connect(addresses)
        .await
        .map_err(|error| match error.kind() {
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                ClusterError::NotUsable(anyhow!(
                    "NATS at {servers} refused ledge's credentials: {error}\n  fix: give the \
                 cluster's credentials with --nats-creds (LEDGE_NATS_CREDS)"
                ))
            }
            _ => ClusterError::Unreachable(anyhow!(
                "cannot reach NATS at {servers}: {error}\n  fix: start nats-server there, or point \
             --nats (LEDGE_NATS_URL) at the cluster"
            )),
        })
}

/// The client's options: its name, timeouts, TLS and credentials.
async fn options(args: &NatsArgs, name: &str) -> Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        // After an outage, try again soon: the default backoff grows to 4 s, all of which a
        // node would spend not writing and not following its logs.
        .reconnect_delay_callback(|attempts| {
            RECONNECT_DELAY_LIMIT.min(Duration::from_millis(1 << attempts.min(16)))
        })
        .tls_client_config(tls_config(args)?);
    if let Some(creds) = &args.nats_creds {
        options = options
            .credentials_file(creds)
            .await
            .with_context(|| format!("--nats-creds {}: cannot read it", creds.display()))?;
    }
    Ok(options)
}

fn tls_config(args: &NatsArgs) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &args.nats_ca {
        use rustls_pki_types::pem::PemObject as _;
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| anyhow!("--nats-ca {}: {e}", ca.display()))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| anyhow!("--nats-ca {}: {e}", ca.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
