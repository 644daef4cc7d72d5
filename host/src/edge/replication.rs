//! The cluster's half of the replicated data tier (the data tier's half, and what an entry
//! holds: `crate::data::replica`).
//!
//! Each replicated store or database has, in the hub's JetStream:
//! - a log: the stream `LEDGE_DB_<id>` on the subject `ledge.db.<id>`, one message per
//!   committed write transaction, appended with `Nats-Expected-Last-Sequence` set to the
//!   position the writer has applied, so an append from a writer that is behind (a second
//!   writer, or one that lost its lease without knowing) is refused;
//! - a writer lease: the key `<id>` in the KV bucket [`LEASES`], whose entries live
//!   [`LEASE_TTL`] unless renewed. Only nodes of the hub region (no `--hub-domain`) compete for
//!   it. The holder first applies the whole log, then answers the writes other nodes forward
//!   on `ledge.write.<id>` (core NATS request/reply, which crosses leaf connections), and
//!   renews the lease every [`RENEW_EVERY`]; its term ends when a renewal fails, or when the
//!   lease could expire before one gets through ([`TERM_MARGIN`] early). A forwarded request
//!   carries its sender's bookmark of the file ([`FLOOR_HEADER`]), and the writer answers it
//!   once its own copy has applied that far, or refuses it ([`REFUSED_HEADER`]).
//!
//! Every node (the writer too) follows the log with an ordered pull consumer from the position
//! after the one its copy has applied, and applies each entry in order. A follower that stops
//! receiving while the log moves on (a link that came back stuck) is made anew by a watchdog.
//!
//! Every `--snapshot-every` entries the writer copies its file into the object store
//! [`SNAPSHOTS`](super::cluster::SNAPSHOTS) (one object per file, replaced each time), then
//! purges the entries the copy holds from the log. A copy whose next entry is no longer in the
//! log (a new node, or one away for long) first restores that snapshot, then follows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, kv, object_store, stream};
use async_nats::{HeaderMap, RequestErrorKind, Subject};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::cluster::{Cluster, with_hub_replicas};
use super::records::{ReplicaReport, now_millis};
use super::stall::StallWatch;
use crate::data::replica::{Link, LinkError, Replica, Replication, unique_id};

/// The KV bucket of writer leases, one key per replicated file.
pub const LEASES: &str = "ledge-leases";
/// How long a lease lasts unless its holder renews it: how long writes wait after a writer
/// dies.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How long before its lease could expire a writer stops taking writes, should renewals
/// fail to get through meanwhile.
const TERM_MARGIN: Duration = Duration::from_millis(500);
/// How often the holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often a node that is not the writer tries to take the lease.
const CONTEND_EVERY: Duration = Duration::from_secs(1);
/// How long a new writer may take to apply the log before it serves writes.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// How often a follower that received nothing since the last check asks the hub where the log
/// is (one request per file and node each time).
const WATCHDOG_EVERY: Duration = Duration::from_secs(1);
/// How long a copy may go without hearing from its log (an entry, or the log's position from
/// the watchdog) before reads from it are marked stale.
const CURRENT_WITHIN: Duration = Duration::from_secs(3);
/// How often the writer checks whether a file is due for a snapshot.
const COMPACT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a writer keeps asking the log whether it stored an append whose acknowledgement
/// was lost.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);
/// How long to wait before trying the cluster again after a failure.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// On a forwarded request: the position the writer's copy must have applied before it
/// answers (the sender's bookmark of the file).
const FLOOR_HEADER: &str = "Ledge-Floor";
/// On the writer's answer: why it refused the request (its copy did not reach the floor).
const REFUSED_HEADER: &str = "Ledge-Refused";

/// What a node reaches the cluster through, once it has.
#[derive(Clone)]
struct Reached {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    leases: kv::Store,
    snapshots: object_store::ObjectStore,
}

/// Replication through the cluster, for one node.
pub struct ClusterReplication {
    node: String,
    /// Whether this node may be a writer: it is in the hub region.
    candidate: bool,
    /// How many entries a log holds before its writer snapshots the file and purges them.
    snapshot_every: u64,
    reached: watch::Sender<Option<Reached>>,
    /// Every file linked, for the node's report.
    files: Mutex<Vec<Weak<Replica>>>,
}

impl ClusterReplication {
    /// Replication for node `node`; `candidate` if it is in the hub region, and then it
    /// snapshots each file it writes every `snapshot_every` entries. Files wait for
    /// [`ClusterReplication::reached`] before they follow their logs.
    pub fn new(node: &str, candidate: bool, snapshot_every: u64) -> Arc<Self> {
        Arc::new(Self {
            node: node.to_string(),
            candidate,
            snapshot_every,
            reached: watch::channel(None).0,
            files: Mutex::default(),
        })
    }

    /// Where each of this node's copies stands, for its report.
    pub fn report(&self) -> Vec<ReplicaReport> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|file| file.strong_count() > 0);
        files
            .iter()
            .filter_map(Weak::upgrade)
            .map(|replica| ReplicaReport {
                id: replica.id.clone(),
                name: replica.name.clone(),
                applied: replica.applied(),
                writer: replica.is_writer(),
            })
            .collect()
    }

    /// The node has reached `cluster`: every file follows its log from now on.
    pub fn reached(&self, cluster: &Cluster) {
        self.reached.send_replace(Some(Reached {
            client: cluster.client.clone(),
            jetstream: cluster.jetstream.clone(),
            leases: cluster.leases.clone(),
            snapshots: cluster.snapshots.clone(),
        }));
    }
}

impl Replication for ClusterReplication {
    fn link(&self, replica: &Arc<Replica>) -> Arc<dyn Link> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|file| file.strong_count() > 0);
        files.push(Arc::downgrade(replica));
        drop(files);
        let names = Names::of(&replica.id);
        let writer_until = Arc::new(AtomicU64::new(0));
        let contact = Arc::new(AtomicU64::new(0));
        let file = File {
            contact: contact.clone(),
            replica: Arc::downgrade(replica),
            name: replica.name.clone(),
            names: names.clone(),
            node: self.node.clone(),
            writer_until: writer_until.clone(),
            snapshot_every: self.snapshot_every,
        };
        let task = tokio::spawn(file.run(self.reached.subscribe(), self.candidate));
        Arc::new(FileLink {
            contact,
            names,
            reached: self.reached.subscribe(),
            writer_until,
            _task: AbortOnDropHandle::new(task),
        })
    }
}

/// The stream holding the log of the file `id`.
pub fn log_stream(id: &str) -> String {
    format!("LEDGE_DB_{id}")
}

/// The names one file has in the cluster.
#[derive(Clone)]
struct Names {
    stream: String,
    subject: String,
    writes: String,
    lease: String,
    snapshot: String,
}

impl Names {
    fn of(id: &str) -> Self {
        Self {
            stream: log_stream(id),
            subject: format!("ledge.db.{id}"),
            writes: format!("ledge.write.{id}"),
            lease: id.to_string(),
            snapshot: id.to_string(),
        }
    }
}

/// One file's [`Link`]: appends and forwarded requests, and the task that follows its log and
/// contends for its lease.
struct FileLink {
    /// When the file's follower last heard from the log, in milliseconds since the epoch.
    contact: Arc<AtomicU64>,
    names: Names,
    reached: watch::Receiver<Option<Reached>>,
    /// Until when this node is the file's writer, in milliseconds since the epoch (0: not).
    writer_until: Arc<AtomicU64>,
    _task: AbortOnDropHandle<()>,
}

impl FileLink {
    /// After an append whose acknowledgement was lost (`error`), asks the log until it
    /// answers, for up to [`SETTLE_LIMIT`]: the position it holds the entry at if it was stored
    /// after all (the entry after `after` carries its `id`), so the writer commits what every
    /// copy will apply; else the failure, then certain. If the log never answers, the error
    /// says that the outcome is unknown: the entry may still be applied everywhere.
    async fn settle(
        &self,
        reached: &Reached,
        after: u64,
        id: &str,
        error: String,
    ) -> Result<u64, LinkError> {
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            match self.stored_after(reached, after, id).await {
                Ok(Some(true)) => {
                    tracing::info!(
                        "{}: the log stored the entry whose acknowledgement was lost ({error})",
                        self.names.stream
                    );
                    return Ok(after + 1);
                }
                Ok(Some(false)) => return Err(LinkError::Fenced),
                Ok(None) => return Err(LinkError::Unreachable(format!("the log: {error}"))),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(RETRY_AFTER).await,
                Err(asking) => {
                    return Err(LinkError::Unreachable(format!(
                        "the log: {error}; whether it stored the write is unknown ({asking:#}), \
                         so it may still be applied"
                    )));
                }
            }
        }
    }

    /// Whether the log's entry after `after` is the one appended as `id`; `None` if the log
    /// holds nothing after `after`.
    async fn stored_after(&self, reached: &Reached, after: u64, id: &str) -> Result<Option<bool>> {
        let ask = async {
            let log = reached.jetstream.get_stream(&self.names.stream).await?;
            if last_sequence(&log)? <= after {
                return Ok(None);
            }
            let entry = log.get_raw_message(after + 1).await?;
            let stored_id = entry.headers.get(async_nats::header::NATS_MESSAGE_ID);
            Ok(Some(stored_id.is_some_and(|stored| stored.as_str() == id)))
        };
        within_question_limit(ask).await
    }

    fn reached(&self) -> Result<Reached, LinkError> {
        self.reached.borrow().clone().ok_or_else(|| {
            LinkError::Unreachable("this node has not reached the cluster yet".into())
        })
    }

    /// What this node reaches the cluster through, if it is connected now: a question sent
    /// while disconnected would only wait out its limit.
    fn connected(&self) -> Result<Reached, LinkError> {
        let reached = self.reached()?;
        if reached.client.connection_state() != async_nats::connection::State::Connected {
            return Err(LinkError::Unreachable(
                "this node is disconnected from NATS".into(),
            ));
        }
        Ok(reached)
    }
}

#[async_trait::async_trait]
impl Link for FileLink {
    fn is_writer(&self) -> bool {
        is_in_term(&self.writer_until)
    }

    fn is_current(&self) -> bool {
        let since = now_millis().saturating_sub(self.contact.load(Ordering::Relaxed));
        u128::from(since) <= CURRENT_WITHIN.as_millis()
    }

    async fn append(&self, after: u64, entry: Bytes) -> Result<u64, LinkError> {
        let reached = self.reached()?;
        let id = unique_id();
        let message = PublishMessage::build()
            .payload(entry)
            .expected_last_sequence(after)
            .message_id(&id);
        let published = async {
            reached
                .jetstream
                .send_publish(self.names.subject.clone(), message)
                .await?
                .await
        };
        match published.await {
            Ok(ack) => Ok(ack.sequence),
            Err(error) => match error.kind() {
                PublishErrorKind::WrongLastSequence => Err(LinkError::Fenced),
                // 10164 ("wrong last sequence" from a clustered stream's leader) comes as Other.
                PublishErrorKind::Other if error.to_string().contains("10164") => {
                    Err(LinkError::Fenced)
                }
                _ => self.settle(&reached, after, &id, error.to_string()).await,
            },
        }
    }

    async fn log_end(&self) -> Result<u64, LinkError> {
        let reached = self.connected()?;
        let ask = async {
            let log = reached.jetstream.get_stream(&self.names.stream).await?;
            last_sequence(&log)
        };
        within_question_limit(ask)
            .await
            .map_err(|error| LinkError::Unreachable(format!("the log: {error:#}")))
    }

    async fn forward(
        &self,
        request: Bytes,
        floor: u64,
        deadline: Duration,
    ) -> Result<Bytes, LinkError> {
        let reached = self.connected()?;
        let mut headers = HeaderMap::new();
        if floor > 0 {
            headers.insert(FLOOR_HEADER, floor.to_string());
        }
        let subject = Subject::from(self.names.writes.as_str());
        let request = reached
            .client
            .request_with_headers(subject, headers, request);
        match tokio::time::timeout(deadline, request).await {
            Ok(Ok(answer)) => match header(&answer.headers, REFUSED_HEADER) {
                Some(reason) => Err(LinkError::Behind(reason.to_string())),
                None => Ok(answer.payload),
            },
            Ok(Err(error)) if error.kind() == RequestErrorKind::NoResponders => {
                Err(LinkError::Unreachable(
                    "no node holds the writer's lease (is a node of the hub region running?)"
                        .into(),
                ))
            }
            Ok(Err(error)) => Err(LinkError::Unreachable(error.to_string())),
            Err(_) => Err(LinkError::Unreachable(format!(
                "no answer within {deadline:?}"
            ))),
        }
    }
}

/// The value of the header `name` of a message, if it has one.
fn header<'a>(headers: &'a Option<HeaderMap>, name: &str) -> Option<&'a str> {
    headers.as_ref()?.get(name).map(|value| value.as_str())
}

/// The last position of `log` as its info, just fetched, says; a failure if a replicated
/// stream had no leader when asked, since a lagging replica may have answered.
fn last_sequence(log: &stream::Stream) -> Result<u64> {
    let info = log.cached_info();
    if info
        .cluster
        .as_ref()
        .is_some_and(|cluster| cluster.leader.is_none())
    {
        anyhow::bail!("the log has no leader now");
    }
    Ok(info.state.last_sequence)
}

/// `ask`, a question to the hub's JetStream, or a failure once it has gone unanswered for
/// [`RETRY_AFTER`] five times over.
async fn within_question_limit<T>(ask: impl Future<Output = Result<T>>) -> Result<T> {
    let limit = RETRY_AFTER * 5;
    tokio::time::timeout(limit, ask)
        .await
        .map_err(|_| anyhow!("no answer in {limit:?}"))?
}

/// What the task of one file works with.
struct File {
    /// When the follower last heard from the log, in milliseconds since the epoch.
    contact: Arc<AtomicU64>,
    replica: Weak<Replica>,
    name: String,
    names: Names,
    node: String,
    /// Until when this node is the file's writer, in milliseconds since the epoch (0: not).
    writer_until: Arc<AtomicU64>,
    snapshot_every: u64,
}

/// Whether a writer's term that ends at `writer_until` (milliseconds since the epoch) runs now.
fn is_in_term(writer_until: &AtomicU64) -> bool {
    now_millis() < writer_until.load(Ordering::Acquire)
}

impl File {
    /// Once the cluster is reached: makes sure the log exists, then follows it, and contends
    /// for the lease if `candidate`.
    async fn run(self, mut reached: watch::Receiver<Option<Reached>>, candidate: bool) {
        let Ok(reached) = reached.wait_for(Option::is_some).await.map(|r| r.clone()) else {
            return;
        };
        let Some(reached) = reached else {
            return;
        };
        let log = loop {
            match self.open_log(&reached.jetstream).await {
                Ok(log) => break log,
                Err(error) => {
                    tracing::warn!("{}: cannot open its log: {error:#}", self.name);
                    tokio::time::sleep(RETRY_AFTER * 5).await;
                }
            }
        };
        let file = Arc::new(self);
        let _contending = candidate.then(|| {
            let contend = file.clone().contend(reached.clone(), log.clone());
            let compact = file.clone().compact(reached.clone(), log.clone());
            (
                AbortOnDropHandle::new(tokio::spawn(contend)),
                AbortOnDropHandle::new(tokio::spawn(compact)),
            )
        });
        loop {
            let followed = file.follow(&reached, &log).await;
            if file.replica.strong_count() == 0 {
                return;
            }
            if let Err(error) = followed {
                tracing::warn!("{}: following its log again: {error:#}", file.name);
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn open_log(&self, jetstream: &jetstream::Context) -> Result<stream::Stream> {
        let log = with_hub_replicas(|num_replicas| {
            jetstream.get_or_create_stream(stream::Config {
                name: self.names.stream.clone(),
                description: Some(format!("ledge: the log of the {}", self.name)),
                subjects: vec![self.names.subject.clone()],
                storage: stream::StorageType::File,
                num_replicas,
                ..Default::default()
            })
        });
        Ok(log.await?)
    }

    /// Applies the log from the entry after the one applied, until the consumer ends or
    /// is stuck (see [`StallWatch`]). A copy whose next entry was purged
    /// restores the file's snapshot first.
    async fn follow(&self, reached: &Reached, log: &stream::Stream) -> Result<()> {
        let Some(replica) = self.replica.upgrade() else {
            return Ok(());
        };
        let first_kept = log.clone().info().await?.state.first_sequence;
        if replica.applied() + 1 < first_kept {
            self.restore(reached, &replica).await?;
        }
        let from = replica.applied() + 1;
        drop(replica);
        let consumer = log
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.names.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                replay_policy: ReplayPolicy::Instant,
                ..Default::default()
            })
            .await?;
        let mut entries = consumer.messages().await?;
        let mut log = log.clone();
        let mut stall = StallWatch::default();
        let mut watchdog = tokio::time::interval(WATCHDOG_EVERY);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                entry = entries.next() => {
                    let entry = entry.ok_or_else(|| anyhow!("the consumer ended"))??;
                    let position = entry.info().map_err(|e| anyhow!("{e}"))?.stream_sequence;
                    self.heard_from_log();
                    let Some(replica) = self.replica.upgrade() else {
                        return Ok(());
                    };
                    replica.apply(position, entry.payload.clone()).await?;
                }
                _ = watchdog.tick() => {
                    let Some(replica) = self.replica.upgrade() else {
                        return Ok(());
                    };
                    let applied = replica.applied();
                    if stall.progressed(applied) {
                        continue;
                    }
                    let Ok(info) = log.info().await else {
                        stall.unreachable();
                        continue;
                    };
                    self.heard_from_log();
                    if let Some(after) = stall.compare(applied, info.state.last_sequence)? {
                        watchdog.reset_after(after);
                    }
                }
            }
        }
    }

    /// Restores the snapshot the writer left in the object store into `replica`.
    async fn restore(&self, reached: &Reached, replica: &Replica) -> Result<()> {
        let path = replica.snapshot_path();
        let fetched = async {
            let mut snapshot = reached
                .snapshots
                .get(&self.names.snapshot)
                .await
                .context("the log was compacted, but its snapshot cannot be read")?;
            let mut file = tokio::fs::File::create(&path).await?;
            tokio::io::copy(&mut snapshot, &mut file).await?;
            anyhow::Ok(())
        };
        let restored = match fetched.await {
            Ok(()) => replica.restore(path.clone()).await,
            Err(error) => Err(error),
        };
        let _ = tokio::fs::remove_file(&path).await;
        let at = restored?;
        tracing::info!("{}: restored from the snapshot at entry {at}", self.name);
        Ok(())
    }

    /// While this node is the writer: once the log holds [`File::snapshot_every`] entries,
    /// snapshots the file into the object store and purges the entries the snapshot holds.
    async fn compact(self: Arc<Self>, reached: Reached, mut log: stream::Stream) {
        let mut check = tokio::time::interval(COMPACT_CHECK_EVERY);
        loop {
            check.tick().await;
            let Some(replica) = self.replica.upgrade() else {
                return;
            };
            if !is_in_term(&self.writer_until) {
                continue;
            }
            let Ok(info) = log.info().await else {
                continue;
            };
            let purged = info.state.first_sequence.saturating_sub(1);
            if replica.applied() < purged + self.snapshot_every {
                continue;
            }
            if let Err(error) = self.snapshot(&reached, &log, &replica).await {
                tracing::warn!("{}: no snapshot: {error:#}", self.name);
            }
        }
    }

    /// Puts a snapshot of `replica` in the object store, then purges the log up to it.
    async fn snapshot(
        &self,
        reached: &Reached,
        log: &stream::Stream,
        replica: &Replica,
    ) -> Result<()> {
        let path = replica.snapshot_path();
        let stored = async {
            let at = replica.snapshot(path.clone()).await?;
            let mut file = tokio::fs::File::open(&path).await?;
            reached
                .snapshots
                .put(self.names.snapshot.as_str(), &mut file)
                .await?;
            anyhow::Ok(at)
        };
        let stored = stored.await;
        let _ = tokio::fs::remove_file(&path).await;
        let at = stored?;
        log.purge().sequence(at + 1).await?;
        tracing::info!(
            "{}: snapshot at entry {at}; the log keeps what follows",
            self.name
        );
        Ok(())
    }

    fn heard_from_log(&self) {
        self.contact.store(now_millis(), Ordering::Relaxed);
    }

    /// Contends for the lease; while holding it, catches up and then serves as the writer.
    async fn contend(self: Arc<Self>, reached: Reached, log: stream::Stream) {
        loop {
            if let Some(revision) = self.take_lease(&reached).await {
                if let Err(error) = self.hold(&reached, &log, revision).await {
                    tracing::warn!("{}: no longer its writer: {error:#}", self.name);
                }
                self.writer_until.store(0, Ordering::Release);
            }
            if self.replica.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(CONTEND_EVERY).await;
        }
    }

    /// Takes the lease if no one holds it, or if it still names this node (its term ended
    /// when the hub was out of reach, or a renewal's answer was lost): the lease's revision.
    async fn take_lease(&self, reached: &Reached) -> Option<u64> {
        let node = Bytes::from(self.node.clone());
        match reached.leases.create(&self.names.lease, node.clone()).await {
            Ok(revision) => Some(revision),
            Err(_) => {
                let lease = reached.leases.entry(&self.names.lease).await.ok()??;
                let ours = lease.operation == kv::Operation::Put && lease.value == node;
                if ours {
                    tracing::info!(
                        "{}: the lease still names this node, which takes it back",
                        self.name
                    );
                }
                ours.then_some(lease.revision)
            }
        }
    }

    /// Renews the lease held at `revision`: this node's term as the writer then runs until
    /// the lease could have expired, counted from before the renewal was sent, less
    /// [`TERM_MARGIN`]. Returns the new revision.
    async fn renew(&self, reached: &Reached, revision: u64) -> Result<u64> {
        let sent = now_millis();
        let node = self.node.clone().into();
        let revision = reached
            .leases
            .update(&self.names.lease, node, revision)
            .await?;
        let term = (LEASE_TTL - TERM_MARGIN).as_millis() as u64;
        self.writer_until.store(sent + term, Ordering::Release);
        Ok(revision)
    }

    /// Holds the lease taken at `revision`: applies the whole log, then answers forwarded
    /// writes until a renewal fails.
    async fn hold(&self, reached: &Reached, log: &stream::Stream, mut revision: u64) -> Result<()> {
        let last = log.clone().info().await?.state.last_sequence;
        let replica = self.replica.upgrade().ok_or_else(|| anyhow!("closed"))?;
        if !replica.reached(last, CATCH_UP_LIMIT).await {
            anyhow::bail!("could not apply the log up to entry {last} in {CATCH_UP_LIMIT:?}");
        }
        drop(replica);
        // Catching up may have outlasted the lease: renewing it proves it is still held.
        revision = self.renew(reached, revision).await?;
        // A queue group: should two nodes believe they are the writer for a moment, each
        // request still reaches only one of them.
        let mut requests = reached
            .client
            .queue_subscribe(self.names.writes.clone(), "writer".into())
            .await?;
        tracing::info!("{}: this node is its writer", self.name);
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.tick().await;
        loop {
            tokio::select! {
                request = requests.next() => {
                    let request = request.ok_or_else(|| anyhow!("the subscription ended"))?;
                    let Some(reply) = request.reply.clone() else {
                        continue;
                    };
                    if !is_in_term(&self.writer_until) {
                        // The term ran out before a renewal came back: another node may be
                        // the writer by now, and this copy may miss its commits. The request
                        // goes back to the subject once this node no longer listens (the
                        // unsubscription is sent first, on the same connection), for the
                        // lease's holder, or as "no responders" to its sender.
                        let _ = requests.unsubscribe().await;
                        let subject = Subject::from(self.names.writes.as_str());
                        let headers = request.headers.unwrap_or_default();
                        let _ = reached
                            .client
                            .publish_with_reply_and_headers(subject, reply, headers, request.payload)
                            .await;
                        anyhow::bail!("its term ended before the lease was renewed");
                    }
                    let (replica, client) = (self.replica.clone(), reached.client.clone());
                    tokio::spawn(async move {
                        let Some(replica) = replica.upgrade() else {
                            return;
                        };
                        let floor = header(&request.headers, FLOOR_HEADER)
                            .and_then(|floor| floor.parse().ok())
                            .unwrap_or(0);
                        match replica.serve(request.payload, floor).await {
                            Some(Ok(answer)) => {
                                let _ = client.publish(reply, answer).await;
                            }
                            Some(Err(reason)) => {
                                let mut headers = HeaderMap::new();
                                headers.insert(REFUSED_HEADER, reason);
                                let _ = client
                                    .publish_with_headers(reply, headers, Bytes::new())
                                    .await;
                            }
                            None => {}
                        }
                    });
                }
                _ = renew.tick() => {
                    revision = self.renew(reached, revision).await?;
                    if self.replica.strong_count() == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }
}
