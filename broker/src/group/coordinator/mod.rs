//! [`GroupCoordinator`]: serves the groups of the `__consumer_offsets` partitions this
//! broker leads.
//!
//! # Ownership
//! The coordinator follows the leadership of `__consumer_offsets` through
//! [`ReplicaManager::watch_leadership`]. Becoming leader of a partition (or leader again
//! under a new epoch) makes a new [`Shard`] for it and loads it in the background
//! (`load.rs`): every record from the log start to the log end is replayed. Until then
//! requests for its groups get COORDINATOR_LOAD_IN_PROGRESS. Losing leadership drops the
//! shard: its groups get NOT_COORDINATOR and clients look the coordinator up again. This is
//! Kafka's `CoordinatorRuntime` scheduling loads and unloads on `onElection` /
//! `onResignation`.
//!
//! # Writes
//! Every change is a record appended to the group's partition through
//! [`ReplicaManager::append_records`] (origin coordinator, acks=all) and is applied to the
//! shard, and answered, only once the ISR has it (`offsets.rs`). A write that fails is not
//! applied, so nothing acknowledged is lost by a failover: the next leader's log has every
//! record the ISR had.
//!
//! # Files
//! - `shard.rs`: one partition's groups and offsets, and how records change them.
//! - `load.rs`: loading a partition.
//! - `offsets.rs`: OffsetCommit and OffsetFetch.
//! - `admin.rs`: DeleteGroups and OffsetDelete, and the offsets of deleted topics
//!   (followed through [`ReplicaManager::watch_deletions`]).
//! - `consumer_groups.rs`: consumer groups (KIP-848): ConsumerGroupHeartbeat and
//!   ConsumerGroupDescribe through each group's `ConsumerGroup` state machine;
//!   `consumer_records.rs` maps its records to the stored ones.
//! - `expiry.rs`: expiring committed offsets (`offsets.retention.minutes`).
//! - `lag.rs`: the group metrics: groups by state, members, rebalances, consumer lag.
//! - `groups.rs`: the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   ListGroups, DescribeGroups) through each group's `ClassicGroup` state machine.

mod admin;
mod consumer_groups;
mod consumer_records;
mod expiry;
mod groups;
mod lag;
mod load;
mod offsets;
mod shard;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use sluice_protocol::error::ErrorCode;

use super::classic::ClassicGroupConfig;
use super::consumer::ConsumerGroupConfig;
use super::offsets_topic::{partition_for, OFFSETS_TOPIC};
use crate::replica::{LeadershipChange, LeadershipRole, ReplicaManager, TopicDeleted};
use shard::Shard;

pub use consumer_groups::ConsumerGroupRefusal;
pub use expiry::{OFFSETS_RETENTION_CHECK_INTERVAL_DEFAULT, OFFSETS_RETENTION_MS_DEFAULT};
pub use offsets::{
    CommitPartition, FetchedOffset, OffsetCommitInput, OffsetFetchInput, TopicCommitResult,
};

/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// Kafka's `offsets.commit.timeout.ms` default: how long a commit waits for the ISR.
pub const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

/// The coordinator's settings (Kafka's names in the field docs).
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub group: ClassicGroupConfig,
    /// Consumer groups (KIP-848): `group.consumer.*`.
    pub consumer: ConsumerGroupConfig,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// How often the group metrics (lag included) are refreshed.
    pub metrics_interval: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> CoordinatorConfig {
        CoordinatorConfig {
            group: ClassicGroupConfig::default(),
            consumer: ConsumerGroupConfig::default(),
            offsets_retention_ms: expiry::OFFSETS_RETENTION_MS_DEFAULT,
            offsets_retention_check_interval: expiry::OFFSETS_RETENTION_CHECK_INTERVAL_DEFAULT,
            metrics_interval: lag::REPORT_INTERVAL_DEFAULT,
        }
    }
}

/// The group coordinator of this broker. See the module docs.
#[derive(Debug)]
pub struct GroupCoordinator {
    replicas: Arc<ReplicaManager>,
    config: CoordinatorConfig,
    group_config: ClassicGroupConfig,
    consumer_config: ConsumerGroupConfig,
    /// The shards of the offsets partitions led here, by partition.
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
}

impl GroupCoordinator {
    /// A coordinator following the leadership of `__consumer_offsets` on this broker (a
    /// task on the current runtime; it ends once the coordinator is dropped).
    pub fn start(
        replicas: Arc<ReplicaManager>,
        config: CoordinatorConfig,
    ) -> Arc<GroupCoordinator> {
        let coordinator = Arc::new(GroupCoordinator {
            replicas: replicas.clone(),
            group_config: config.group.clone(),
            consumer_config: config.consumer.clone(),
            config,
            shards: RwLock::new(HashMap::new()),
        });
        let changes = replicas.watch_leadership(OFFSETS_TOPIC);
        tokio::spawn(follow_leadership(Arc::downgrade(&coordinator), changes));
        let deletions = replicas.watch_deletions();
        tokio::spawn(follow_deletions(Arc::downgrade(&coordinator), deletions));
        let every = coordinator.config.metrics_interval;
        tokio::spawn(lag::report_periodically(
            Arc::downgrade(&coordinator),
            every,
        ));
        coordinator
    }

    /// The shard serving `group_id`, or the error to answer with: NOT_COORDINATOR if this
    /// broker does not lead its partition, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, ErrorCode> {
        let local_id = self.replicas.local_id();
        // The group's partition, and whether the metadata makes this broker its leader.
        let (partition, led_here) = self
            .replicas
            .metadata()
            .read(|state| {
                let topic = state.topic_by_name(OFFSETS_TOPIC)?;
                let partitions = i32::try_from(topic.partitions.len()).ok()?;
                if partitions == 0 {
                    return None;
                }
                let partition = partition_for(group_id, partitions);
                let leader = state.partition(&topic.id, partition)?.leader;
                Some((partition, leader == Some(local_id)))
            })
            .ok_or(ErrorCode::NotCoordinator)?;
        let shard = self
            .shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .cloned();
        match shard {
            Some(shard) if shard.is_loaded() => Ok(shard),
            Some(_) => Err(ErrorCode::CoordinatorLoadInProgress),
            // Led here by the metadata, but the replica manager has not made this broker
            // the leader yet: about to load (Kafka answers the same while it loads).
            None if led_here => Err(ErrorCode::CoordinatorLoadInProgress),
            None => Err(ErrorCode::NotCoordinator),
        }
    }

    /// Whether `shard` still serves its partition (not replaced by a newer epoch or dropped).
    fn is_current(&self, shard: &Arc<Shard>) -> bool {
        self.shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&shard.partition)
            .is_some_and(|current| Arc::ptr_eq(current, shard))
    }

    /// Load `shard`'s partition again from its log (a write failed after its groups had
    /// applied it, so the shard is ahead of the log): a new shard for the same epoch replaces
    /// it, and its groups' parked requests are answered NOT_COORDINATOR.
    fn reload(self: &Arc<Self>, shard: &Arc<Shard>) {
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        if !shards
            .get(&shard.partition)
            .is_some_and(|current| Arc::ptr_eq(current, shard))
        {
            return;
        }
        let fresh = Arc::new(Shard::new(shard.partition, shard.leader_epoch));
        shards.insert(shard.partition, fresh.clone());
        drop(shards);
        tracing::warn!(
            partition = shard.partition,
            "a group write failed after the group changed: loading the partition again"
        );
        self.unload_groups(shard);
        tokio::spawn(load::load(self.clone(), fresh));
    }

    /// Take a leadership change: a new shard to load, or the partition's shard dropped.
    fn on_leadership(self: &Arc<Self>, change: LeadershipChange) {
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        match change.role {
            LeadershipRole::Leader { leader_epoch } => {
                if shards
                    .get(&change.partition)
                    .is_some_and(|shard| shard.leader_epoch == leader_epoch)
                {
                    return;
                }
                let shard = Arc::new(Shard::new(change.partition, leader_epoch));
                if let Some(old) = shards.insert(change.partition, shard.clone()) {
                    self.unload_groups(&old);
                }
                tracing::info!(
                    partition = change.partition,
                    leader_epoch,
                    "loading group coordinator partition"
                );
                tokio::spawn(load::load(self.clone(), shard));
            }
            LeadershipRole::NotLeader => {
                if let Some(old) = shards.remove(&change.partition) {
                    self.unload_groups(&old);
                    tracing::info!(
                        partition = change.partition,
                        "unloaded group coordinator partition: no longer its leader"
                    );
                }
            }
        }
    }

    /// The shards of every led partition, loaded or not.
    fn shards_snapshot(&self) -> Vec<Arc<Shard>> {
        self.shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many offsets partitions are loaded and serving here.
    pub fn loaded_partitions(&self) -> usize {
        self.shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|shard| shard.is_loaded())
            .count()
    }
}

async fn follow_leadership(
    coordinator: Weak<GroupCoordinator>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<LeadershipChange>,
) {
    while let Some(change) = changes.recv().await {
        let Some(coordinator) = coordinator.upgrade() else {
            return;
        };
        coordinator.on_leadership(change);
    }
}

/// Remove the committed offsets of each topic the metadata deletes.
async fn follow_deletions(
    coordinator: Weak<GroupCoordinator>,
    mut deletions: tokio::sync::mpsc::UnboundedReceiver<TopicDeleted>,
) {
    while let Some(deleted) = deletions.recv().await {
        let Some(coordinator) = coordinator.upgrade() else {
            return;
        };
        coordinator.delete_topic_offsets(&deleted.name).await;
    }
}
