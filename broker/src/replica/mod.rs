//! The replica manager: the one owner of the partitions this broker hosts, kept in step
//! with the metadata log.
//!
//! # Files
//!
//! - `mod.rs`: [`ReplicaManager`], the hosted replicas by (topic, partition), the timer
//!   loop (leader ticks for ISR shrink, high-watermark checkpoints, gauges) and the
//!   AlterPartition sender.
//! - `reconcile.rs`: applying metadata changes by delta (only the topics a command changed):
//!   partitions hosted here get a log and the controller's registration (lead, or follow
//!   and fetch); partitions no longer hosted lose their replica and their directory.
//! - `hosted.rs`: [`Replica`], one hosted partition: its log and its
//!   [`replication::Partition`] state machine under one lock.
//! - `append.rs`: [`ReplicaManager::append_records`] (admission, validation, idempotence,
//!   append) and [`ReplicaManager::wait_for_acks`] (acks=all), for Produce and, later, the
//!   coordinators' internal topics.
//! - [`producer_state`]: idempotent producers' sequence and epoch checks, per partition;
//!   `describe_producers.rs` lists them (DescribeProducers).
//! - `fetch.rs`: [`ReplicaManager::fetch_records`], consumer and follower reads with the
//!   long poll, follower-read (KIP-392) rules and the reassignment throttle.
//! - `list_offsets.rs`: [`ReplicaManager::list_offset`], ListOffsets' earliest, latest and
//!   by-timestamp offsets, and which replica answers (the leader for consumers, any replica
//!   for the debugging replica id).
//! - `purgatory.rs`: the produce and fetch purgatories' accounting ([`RemoteTime`]), the
//!   leader-epoch check clients' requests get, the throttle's byte rate.
//! - `delete_records.rs`: [`ReplicaManager::delete_records`] (the leader moves its log
//!   start, Kafka's DeleteRecords) and the low watermark it waits on.
//! - [`fetcher`]: the follower fetchers, one task per leader broker (a follower also moves
//!   its log start up to its leader's).
//! - `leadership.rs`: [`ReplicaManager::watch_leadership`], the leadership changes of a
//!   topic's partitions, for the coordinators that live on their leaders, and
//!   [`ReplicaManager::watch_deletions`], deleted topics.
//!
//! # Gauges
//!
//! Refreshed every second: the hosted partitions (led, followed, under-replicated), the
//! size of the logs on disk, the cluster's health as this node's copy of the metadata
//! sees it (on the active controller only), and, with `--metrics-per-partition`, one set
//! of labelled gauges per hosted partition and per follower. A partition's own gauges are
//! also refreshed as soon as its role or ISR changes or it leaves, at O(1) cost. Series of
//! a partition that moved away stay at their last value (the exporter cannot remove a
//! series), except the follower lag series, which turn -1.
//!
//! Request handlers (Produce, Fetch, ListOffsets) decode, call
//! [`ReplicaManager::append_records`] / [`ReplicaManager::fetch_records`] /
//! [`ReplicaManager::list_offset`] and encode; they do not lock partitions or call storage
//! themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

mod append;
mod delete_records;
mod describe_producers;
mod epoch_offsets;
mod fetch;
pub mod fetcher;
mod hosted;
mod leadership;
mod list_offsets;
pub mod producer_state;
mod purgatory;
mod reconcile;

pub use append::{
    storage_error_code, Acks, AppendOrigin, AppendRequest, Appended, Refusal, SCAN_BYTES_MAX,
    SCAN_OFFSETS_MAX,
};
pub use epoch_offsets::{EpochAnswer, EpochQuery};
pub use fetch::{
    FetchOrigin, FetchParams, LocalRead, PartitionFetch, PartitionRead, ResponseBudget,
};
pub use hosted::{offsets, AppendRefusal, EffectSink, Replica};
pub use leadership::{LeadershipChange, LeadershipRole, TopicDeleted};
pub use list_offsets::{
    OffsetAnswer, OffsetOrigin, OffsetQuery, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use producer_state::ProducerStateRegistry;
pub use purgatory::{check_leader_epoch, ByteRate, Purgatory, RemoteTime};

use crate::cluster::ControllerClient;
use crate::controller::{
    AlterPartition as ControllerAlterPartition, BrokerStatus, ClusterHealth, CommandOutcome,
    LeaderRecoveryState, MetadataError, MetadataReader, MetadataState,
};
use crate::metrics as m;
use crate::replication::{
    self, AlterPartitionError, AlterPartitionResult, PendingIsrChange, ReplicaLiveness,
};
use crate::storage::LogManager;
use fetcher::Fetchers;
use reconcile::Reconciled;
use sluice_protocol::clock::monotonic_ms;

/// How often leaders are ticked (ISR shrink) and gauges refreshed.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How often the per-partition gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// How often high watermarks are checkpointed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// Pause before re-sending an AlterPartition that got no answer.
const ALTER_RETRY_BACKOFF: Duration = Duration::from_millis(200);

type ReplicaKey = (String, i32);

pub struct ReplicaManager {
    local_id: i32,
    broker_epoch: i64,
    replica_lag_ms_max: i64,
    logs: Arc<LogManager>,
    metadata: MetadataReader,
    /// Hosted replicas by (topic, partition): ordered, so a topic's replicas are a range.
    replicas: RwLock<BTreeMap<ReplicaKey, Arc<Replica>>>,
    /// (leader epoch, partition epoch) last applied per replica, to skip unchanged ones.
    applied: std::sync::Mutex<HashMap<ReplicaKey, (i32, i32)>>,
    alter_tx: mpsc::UnboundedSender<(Arc<Replica>, replication::AlterPartition)>,
    pub fetchers: Arc<Fetchers>,
    /// Whether local topics missing from the metadata may be deleted (only once this
    /// broker's metadata has caught up with its own registration).
    caught_up: std::sync::atomic::AtomicBool,
    /// In a single-node cluster, local topics missing from the metadata (a data dir from
    /// before the controller) are adopted instead.
    adopt_local_topics: bool,
    /// One reconciliation at a time (the metadata loop and admin handlers both run it),
    /// and how far the last one got.
    reconciling: std::sync::Mutex<Reconciled>,
    /// Partitions looked at by reconciliation passes (for tests and a metric).
    partitions_reconciled: std::sync::atomic::AtomicU64,
    /// Whether per-partition and per-follower gauges are exported (off bounds the label
    /// cardinality on brokers with many partitions).
    per_partition_metrics: std::sync::atomic::AtomicBool,
    /// Whether this node is the active controller, which alone exports the cluster-wide
    /// health gauges (as in Kafka), so a node cut off from the quorum does not keep
    /// reporting its last view of the cluster.
    active_controller: std::sync::atomic::AtomicBool,
    /// Per-follower lag series exported by the last gauge pass, so those of partitions no
    /// longer led here (or of replicas that left) are set to -1 rather than left frozen.
    lag_series: std::sync::Mutex<LagSeries>,
    /// Idempotent producers' state per partition (see `append.rs`).
    producers: ProducerStateRegistry,
    /// The rate at which throttled replicas (those a reassignment adds, and those a topic's
    /// `leader.replication.throttled.replicas` names) may copy from this leader (`None`: no
    /// limit): the dynamic `leader.replication.throttled.rate`, else the flag.
    reassignment_throttle: RwLock<Option<Arc<ByteRate>>>,
    /// The `--reassignment-throttle-bytes-per-sec` flag (0: none).
    static_throttle: std::sync::atomic::AtomicU64,
    /// The dynamic broker configs last applied (see `apply_broker_configs`).
    applied_broker_configs: std::sync::Mutex<Option<BTreeMap<String, String>>>,
    /// Who follows the leadership of which topic (the coordinators).
    leadership: leadership::LeadershipWatchers,
    /// Who hears of deleted topics (the group coordinator).
    deletions: leadership::DeletionWatchers,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

/// The side of the manager that replicas call back into.
struct Sink<'a> {
    manager: &'a ReplicaManager,
}

impl EffectSink for Sink<'_> {
    fn propose_isr(&self, replica: &Arc<Replica>, proposal: replication::AlterPartition) {
        let _ = self.manager.alter_tx.send((replica.clone(), proposal));
    }
    fn start_fetching(&self, replica: &Arc<Replica>, leader_id: i32) {
        self.manager.fetchers.add(leader_id, replica.clone());
    }
    fn stop_fetching(&self, replica: &Arc<Replica>) {
        self.manager.fetchers.remove(replica);
    }
}

impl ReplicaManager {
    pub fn new(
        local_id: i32,
        broker_epoch: i64,
        replica_lag_ms_max: i64,
        logs: Arc<LogManager>,
        metadata: MetadataReader,
        fetchers: Arc<Fetchers>,
        adopt_local_topics: bool,
    ) -> (
        Arc<ReplicaManager>,
        mpsc::UnboundedReceiver<(Arc<Replica>, replication::AlterPartition)>,
    ) {
        let (alter_tx, alter_rx) = mpsc::unbounded_channel();
        let manager = Arc::new(ReplicaManager {
            local_id,
            broker_epoch,
            replica_lag_ms_max,
            logs,
            metadata,
            replicas: RwLock::new(BTreeMap::new()),
            applied: std::sync::Mutex::new(HashMap::new()),
            alter_tx,
            fetchers,
            caught_up: std::sync::atomic::AtomicBool::new(false),
            adopt_local_topics,
            reconciling: std::sync::Mutex::new(Reconciled::default()),
            partitions_reconciled: std::sync::atomic::AtomicU64::new(0),
            per_partition_metrics: std::sync::atomic::AtomicBool::new(true),
            active_controller: std::sync::atomic::AtomicBool::new(false),
            lag_series: std::sync::Mutex::new(LagSeries::new()),
            producers: ProducerStateRegistry::default(),
            reassignment_throttle: RwLock::new(None),
            static_throttle: std::sync::atomic::AtomicU64::new(0),
            applied_broker_configs: std::sync::Mutex::new(None),
            leadership: leadership::LeadershipWatchers::default(),
            deletions: leadership::DeletionWatchers::default(),
        });
        (manager, alter_rx)
    }

    pub fn local_id(&self) -> i32 {
        self.local_id
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch
    }

    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    pub fn metadata(&self) -> &MetadataReader {
        &self.metadata
    }

    /// Limit the rate at which replicas a reassignment adds copy from this leader, in bytes
    /// per second (0: no limit): the flag, set at start; a dynamic
    /// `leader.replication.throttled.rate` replaces it while set.
    pub fn set_reassignment_throttle(&self, bytes_per_sec: u64) {
        self.static_throttle
            .store(bytes_per_sec, std::sync::atomic::Ordering::Relaxed);
        self.use_throttle(bytes_per_sec);
    }

    fn use_throttle(&self, bytes_per_sec: u64) {
        let rate = (bytes_per_sec > 0).then(|| Arc::new(ByteRate::new(bytes_per_sec)));
        *self
            .reassignment_throttle
            .write()
            .unwrap_or_else(|e| e.into_inner()) = rate;
    }

    /// The replication throttle in force, if any.
    pub(crate) fn throttle(&self) -> Option<Arc<ByteRate>> {
        self.reassignment_throttle
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Apply this broker's dynamic configs (the cluster default's, then its own) when they
    /// changed: the topic defaults (`LogManager::set_dynamic_defaults`) and the throttle.
    fn apply_broker_configs(&self) {
        let wanted = self.metadata.read(|state| {
            crate::storage::effective_broker_configs(
                state.broker_configs(None),
                state.broker_configs(Some(self.local_id)),
            )
        });
        let mut applied = self
            .applied_broker_configs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if applied.as_ref() == Some(&wanted) {
            return;
        }
        match self.logs.set_dynamic_defaults(&wanted) {
            Ok(true) => {
                // A new default min.insync.replicas reaches the topics without their own.
                let topics: std::collections::BTreeSet<String> = self
                    .all_replicas()
                    .iter()
                    .map(|replica| replica.topic.clone())
                    .collect();
                for topic in topics {
                    let min_isr =
                        usize::try_from(self.logs.min_insync_replicas(&topic)).unwrap_or(1);
                    self.apply_min_insync_replicas(&topic, min_isr);
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "cannot apply the dynamic broker configs; keeping the previous topic defaults");
            }
        }
        let rate = wanted
            .get(crate::storage::LEADER_THROTTLE_RATE)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                self.static_throttle
                    .load(std::sync::atomic::Ordering::Relaxed)
            });
        self.use_throttle(rate);
        *applied = Some(wanted);
    }

    /// Idempotent producers' state per partition.
    pub fn producers(&self) -> &ProducerStateRegistry {
        &self.producers
    }

    pub fn sink(&self) -> impl EffectSink + '_ {
        Sink { manager: self }
    }

    /// The replica of `topic`-`partition` hosted here, if any.
    pub fn replica(&self, topic: &str, partition: i32) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Whether `replica` is still the one this broker hosts for its partition (not dropped
    /// by a reassignment or a topic deletion).
    pub fn is_current(&self, replica: &Arc<Replica>) -> bool {
        self.replica(&replica.topic, replica.index)
            .is_some_and(|current| Arc::ptr_eq(&current, replica))
    }

    /// The high watermark of the replica whose log is named `log_name` (`topic-partition`);
    /// `None` when this broker hosts no replica of it.
    pub fn high_watermark_of(&self, log_name: &str) -> Option<i64> {
        let (topic, partition) = log_name.rsplit_once('-')?;
        self.replica(topic, partition.parse().ok()?)
            .map(|replica| replica.high_watermark())
    }

    pub fn all_replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Whether per-partition and per-topic series are exported (`--metrics-per-partition`).
    pub fn per_partition_metrics(&self) -> bool {
        self.per_partition_metrics
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Export (or not) the per-partition and per-follower gauges.
    pub fn set_per_partition_metrics(&self, enabled: bool) {
        self.per_partition_metrics
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    /// Mark that this broker's metadata has caught up with its registration: the next
    /// reconciliation looks at everything, and may now delete local data the metadata
    /// does not know.
    pub fn set_caught_up(&self) {
        self.caught_up
            .store(true, std::sync::atomic::Ordering::Release);
        self.reconciling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .look_at_everything();
    }

    /// Whether a broker may fetch as a follower and join ISRs, as this broker's metadata
    /// sees it.
    pub fn liveness(&self, broker_id: i32) -> ReplicaLiveness {
        self.metadata.read(|state| liveness(state, broker_id))
    }

    /// One timer step: shrink ISRs of lagging followers.
    pub fn tick(&self) {
        let now = monotonic_ms();
        for replica in self.all_replicas() {
            let mut state = replica.lock();
            if !state.is_leader() {
                continue;
            }
            let effects = state.tick(now);
            if !effects.is_empty() {
                if let Err(error) = replica.apply_effects(&mut state, effects, &self.sink()) {
                    tracing::warn!(partition = replica.log.name(), %error, "tick effects failed");
                }
            }
        }
    }

    /// Whether this node is the active controller (it then exports the cluster's health).
    pub fn set_active_controller(&self, active: bool) {
        self.active_controller
            .store(active, std::sync::atomic::Ordering::Relaxed);
    }

    fn update_gauges(&self) {
        let (mut led, mut followed, mut under, mut under_min) = (0u32, 0u32, 0u32, 0u32);
        let per_partition = self
            .per_partition_metrics
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut lag_series = LagSeries::new();
        for replica in self.all_replicas() {
            let state = replica.lock();
            if state.is_leader() {
                led += 1;
                under += u32::from(state.is_under_replicated());
                under_min += u32::from(state.is_under_min_isr());
            } else {
                followed += 1;
            }
            if per_partition {
                let followers = partition_gauges(&replica, &state);
                if !followers.is_empty() {
                    lag_series.insert((replica.topic.clone(), replica.index), followers);
                }
            }
        }
        // Followers this broker no longer leads (leadership moved, the replica left, the
        // topic went): -1, "not measured here", rather than the last value forever.
        let mut exported = self.lag_series.lock().unwrap_or_else(|e| e.into_inner());
        for (key, followers) in exported.iter() {
            let now = lag_series.get(key);
            unset_lag_series(
                key,
                followers
                    .iter()
                    .filter(|f| now.is_none_or(|n| !n.contains(f))),
            );
        }
        *exported = lag_series;
        drop(exported);
        metrics::gauge!(m::PARTITIONS).set(f64::from(led + followed));
        metrics::gauge!(m::PARTITIONS_LED).set(f64::from(led));
        metrics::gauge!(m::PARTITIONS_FOLLOWED).set(f64::from(followed));
        metrics::gauge!(m::UNDER_REPLICATED_PARTITIONS).set(f64::from(under));
        metrics::gauge!(m::UNDER_MIN_ISR_PARTITIONS).set(f64::from(under_min));
        let usage = self.logs.usage();
        metrics::gauge!(m::LOG_SIZE_BYTES).set(usage.size_bytes as f64);
        metrics::gauge!(m::LOG_SEGMENTS).set(usage.segments as f64);
        // Cluster-wide counts from the active controller only; 0 elsewhere (Kafka's
        // controller metrics), so a node cut off from the quorum reports nothing stale.
        let health = if self
            .active_controller
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.metadata.read(MetadataState::health)
        } else {
            ClusterHealth::default()
        };
        metrics::gauge!(m::OFFLINE_PARTITIONS).set(health.offline_partitions as f64);
        metrics::gauge!(m::FENCED_BROKERS).set(health.fenced_brokers as f64);
        metrics::gauge!(m::REGISTERED_BROKERS).set(health.registered_brokers as f64);
        metrics::gauge!(m::GLOBAL_PARTITION_COUNT).set(health.partitions as f64);
        metrics::gauge!(m::GLOBAL_TOPIC_COUNT).set(health.topics as f64);
    }

    /// Refresh one replica's labelled gauges now (after its role or ISR changed), rather
    /// than at the next full pass: cost O(1), so a metadata change touching few partitions
    /// stays cheap however many are hosted.
    fn refresh_partition_gauges(&self, replica: &Replica, state: &replication::Partition) {
        if !self
            .per_partition_metrics
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let followers = partition_gauges(replica, state);
        let key = (replica.topic.clone(), replica.index);
        let mut exported = self.lag_series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = exported.get(&key) {
            unset_lag_series(&key, before.difference(&followers));
        }
        if followers.is_empty() {
            exported.remove(&key);
        } else {
            exported.insert(key, followers);
        }
    }

    /// A replica no longer hosted here: its follower lag series turn -1 now.
    fn forget_partition_gauges(&self, replica: &Replica) {
        let key = (replica.topic.clone(), replica.index);
        let mut exported = self.lag_series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = exported.remove(&key) {
            unset_lag_series(&key, before.iter());
        }
    }

    /// Persist every replica's high watermark (advisory; used on restart), and the logs'
    /// recovery points and log start offsets, in the data directory's checkpoint files.
    pub fn checkpoint_high_watermarks(&self) {
        let high_watermarks = self.all_replicas().into_iter().map(|replica| {
            (
                replica.topic.clone(),
                replica.index,
                replica.high_watermark(),
            )
        });
        if let Err(error) = self.logs.checkpoint_offsets(high_watermarks) {
            tracing::warn!(%error, "high watermark checkpoint failed");
        }
    }

    /// Reconcile on every metadata change, tick leaders and checkpoint, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        mut applied: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.reconcile();
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
        let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
        loop {
            tokio::select! {
                () = crate::shutdown::stopped(&mut shutdown) => break,
                changed = applied.changed() => {
                    if changed.is_err() { break; }
                    self.reconcile();
                }
                _ = tick.tick() => self.tick(),
                _ = gauges.tick() => self.update_gauges(),
                _ = checkpoint.tick() => self.checkpoint_high_watermarks(),
            }
        }
        self.checkpoint_high_watermarks();
    }

    /// Send ISR proposals to the controller and hand the answers to the state machine.
    pub async fn run_alter_partition_sender(
        self: Arc<Self>,
        client: ControllerClient,
        mut proposals: mpsc::UnboundedReceiver<(Arc<Replica>, replication::AlterPartition)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (replica, sent) = tokio::select! {
                () = crate::shutdown::stopped(&mut shutdown) => return,
                next = proposals.recv() => match next { Some(next) => next, None => return },
            };
            let still_pending = |replica: &Replica| {
                replica
                    .lock()
                    .isr()
                    .and_then(|isr| isr.pending().map(PendingIsrChange::sent).cloned())
                    == Some(sent.clone())
            };
            let command =
                crate::controller::MetadataCommand::AlterPartition(ControllerAlterPartition {
                    leader_id: sent.leader_id,
                    broker_epoch: self.broker_epoch,
                    topic_id: replica.topic_id,
                    partition: replica.index,
                    leader_epoch: sent.leader_epoch,
                    partition_epoch: sent.partition_epoch,
                    new_isr: sent.new_isr_ids().collect(),
                    leader_recovery_state: LeaderRecoveryState::Recovered,
                });
            let result = loop {
                if *shutdown.borrow() || !still_pending(&replica) {
                    break None;
                }
                match client.submit(command.clone(), Duration::from_secs(5)).await {
                    Ok((_, Ok(CommandOutcome::PartitionAltered { partition }))) => {
                        break Some(AlterPartitionResult::Committed {
                            leader_epoch: partition.leader_epoch,
                            partition_epoch: partition.partition_epoch,
                            isr: partition.isr,
                        })
                    }
                    Ok((_, Ok(other))) => {
                        tracing::warn!(?other, "unexpected AlterPartition outcome");
                        break None;
                    }
                    Ok((_, Err(error))) => {
                        break Some(AlterPartitionResult::Rejected(alter_error(&error)))
                    }
                    Err(error) => {
                        tracing::debug!(partition = replica.log.name(), %error, "AlterPartition not answered; retrying");
                        tokio::time::sleep(ALTER_RETRY_BACKOFF).await;
                    }
                }
            };
            let Some(result) = result else { continue };
            let mut state = replica.lock();
            let isr_before = committed_isr(&state);
            match state.on_isr_change_result(&sent, result) {
                Ok(effects) => {
                    note_isr_change(&replica, &state, isr_before);
                    if let Err(error) = replica.apply_effects(&mut state, effects, &self.sink()) {
                        tracing::warn!(partition = replica.log.name(), %error, "ISR change effects failed");
                    }
                }
                Err(ignored) => tracing::debug!(
                    partition = replica.log.name(),
                    ?ignored,
                    "AlterPartition answer ignored"
                ),
            }
        }
    }
}

/// Broker ids for a log line: `1,2,3` (a plain string in JSON logs too).
fn id_list<'a>(ids: impl IntoIterator<Item = &'a i32>) -> String {
    ids.into_iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The committed ISR of a partition this broker leads.
fn committed_isr(state: &replication::Partition) -> Option<BTreeSet<i32>> {
    state.isr().map(|isr| isr.committed_isr().clone())
}

/// Count and log (one INFO line) a change of a led partition's committed ISR, whichever
/// way it came: this leader's AlterPartition, or the controller's metadata (a fenced
/// broker, a reassignment). Kafka's IsrShrinksPerSec / IsrExpandsPerSec.
fn note_isr_change(
    replica: &Replica,
    state: &replication::Partition,
    before: Option<BTreeSet<i32>>,
) {
    let (Some(before), Some(after)) = (before, committed_isr(state)) else {
        return;
    };
    if before == after {
        return;
    }
    if after.len() < before.len() {
        metrics::counter!(m::ISR_SHRINKS_TOTAL).increment(1);
    } else if after.len() > before.len() {
        metrics::counter!(m::ISR_EXPANDS_TOTAL).increment(1);
    }
    tracing::info!(
        partition = replica.log.name(),
        isr_before = %id_list(&before),
        isr = %id_list(&after),
        leader_epoch = state.leader_epoch(),
        partition_epoch = state.partition_epoch(),
        high_watermark = state.high_watermark(),
        "ISR changed"
    );
}

/// One replica's labelled gauges: log end offset and high watermark; on the leader the ISR
/// size and each follower's lag in offsets and milliseconds (0 when caught up, -1 when not
/// heard from in this leadership).
fn partition_gauges(replica: &Replica, state: &replication::Partition) -> BTreeSet<i32> {
    let mut exported = BTreeSet::new();
    let labels = [
        ("topic", replica.topic.clone()),
        ("partition", replica.index.to_string()),
    ];
    let log_end_offset = replica.log.log_end_offset();
    metrics::gauge!(m::PARTITION_LOG_END_OFFSET, &labels).set(log_end_offset as f64);
    metrics::gauge!(m::PARTITION_HIGH_WATERMARK, &labels).set(state.high_watermark() as f64);
    metrics::gauge!(m::PARTITION_LOG_START_OFFSET, &labels)
        .set(replica.log.log_start_offset() as f64);
    metrics::gauge!(m::PARTITION_LOG_SIZE_BYTES, &labels).set(replica.log.size_bytes() as f64);
    metrics::gauge!(m::PARTITION_LOG_SEGMENTS, &labels).set(replica.log.segment_count() as f64);
    if let Some(ratio) = replica.log.dirty_ratio() {
        metrics::gauge!(m::PARTITION_LOG_DIRTY_RATIO, &labels).set(ratio);
    }
    // 0 where this broker does not lead, as Kafka's InSyncReplicasCount.
    let isr_size = state.isr().map_or(0, |isr| isr.committed_isr().len());
    metrics::gauge!(m::PARTITION_ISR_SIZE, &labels).set(isr_size as f64);
    let now = monotonic_ms();
    for follower in state.followers().into_iter().flat_map(|f| f.iter()) {
        let replica_labels = [
            labels[0].clone(),
            labels[1].clone(),
            ("replica", follower.replica_id().to_string()),
        ];
        // Both -1 while the follower has not fetched in this leadership (its log end is
        // unknown), rather than a lag computed from a guess.
        let known = follower.log_end_offset() >= 0;
        let lag_offsets = if known {
            (log_end_offset - follower.log_end_offset()).max(0)
        } else {
            -1
        };
        let caught_up = follower.last_caught_up_time_ms();
        let lag_ms = if !known {
            -1
        } else if follower.log_end_offset() >= log_end_offset {
            0
        } else if caught_up > 0 {
            (now - caught_up).max(0)
        } else {
            -1
        };
        metrics::gauge!(m::REPLICA_LAG_OFFSETS, &replica_labels).set(lag_offsets as f64);
        metrics::gauge!(m::REPLICA_LAG_MS, &replica_labels).set(lag_ms as f64);
        exported.insert(follower.replica_id());
    }
    exported
}

/// The followers whose lag series each led partition exports, by (topic, partition).
type LagSeries = HashMap<(String, i32), BTreeSet<i32>>;

/// Set `followers`' lag series of `key` to -1 ("not measured here").
fn unset_lag_series<'a>(key: &(String, i32), followers: impl Iterator<Item = &'a i32>) {
    for follower in followers {
        let labels = [
            ("topic", key.0.clone()),
            ("partition", key.1.to_string()),
            ("replica", follower.to_string()),
        ];
        metrics::gauge!(m::REPLICA_LAG_OFFSETS, &labels).set(-1.0);
        metrics::gauge!(m::REPLICA_LAG_MS, &labels).set(-1.0);
    }
}

/// How a broker looks to replication, from the metadata.
pub fn liveness(state: &MetadataState, broker_id: i32) -> ReplicaLiveness {
    match state.broker(broker_id) {
        Some(broker) if broker.status == BrokerStatus::Unfenced => ReplicaLiveness::Active {
            broker_epoch: broker.epoch,
        },
        Some(broker) if broker.status == BrokerStatus::ShuttingDown => {
            ReplicaLiveness::ShuttingDown {
                broker_epoch: broker.epoch,
            }
        }
        _ => ReplicaLiveness::Fenced,
    }
}

fn alter_error(error: &MetadataError) -> AlterPartitionError {
    match error {
        MetadataError::FencedLeaderEpoch { .. } => AlterPartitionError::FencedLeaderEpoch,
        MetadataError::InvalidUpdateVersion { .. } => AlterPartitionError::InvalidPartitionEpoch,
        MetadataError::IneligibleReplica(_) => AlterPartitionError::IneligibleReplica,
        MetadataError::UnknownTopicId(_) | MetadataError::UnknownPartition { .. } => {
            AlterPartitionError::UnknownTopicOrPartition
        }
        MetadataError::StaleBrokerEpoch { .. } | MetadataError::BrokerNotRegistered(_) => {
            AlterPartitionError::OperationNotAttempted
        }
        _ => AlterPartitionError::InvalidRequest,
    }
}
