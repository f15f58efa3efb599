//! The metadata state machine: what the controller quorum agrees on.
//!
//! [`MetadataState`] holds the cluster's replicated metadata: registered brokers, topics, and
//! for every partition its replicas, leader, leader epoch, partition epoch, ISR and leader
//! recovery state. It changes only through [`MetadataState::apply`], which takes one
//! [`MetadataCommand`] (a Raft log entry) and its Raft log index. `apply` is sans-IO and
//! deterministic: the same state, index and command give the same new state and the same
//! [`CommandResult`] on every controller and every learner, which is what lets a Raft log
//! replicate it. It reads no clock, no randomness and no global, and it iterates only ordered
//! maps.
//!
//! # Copy-on-write
//!
//! The state is built to be shared as an immutable image (the Raft state machine hands
//! readers an `Arc<MetadataState>`, see [`raft_store`](super::raft_store)) and changed by
//! copying only what a command touches:
//!
//! - Each topic sits behind its own `Arc`, and so does the name -> id index. Cloning a
//!   `MetadataState` copies the brokers (a handful) and one pointer per topic, never a
//!   topic's partitions.
//! - A command changes a topic only through `topic_mut` (`Arc::make_mut`): the topic is
//!   copied when another image still shares it, and written in place when none does. So
//!   a change to one partition copies that one topic, and every other topic stays shared,
//!   pointer for pointer, with the image before it.
//! - The `Arc`s are invisible in serde: each serialises as what it points to, so a
//!   snapshot is byte for byte what the plain maps gave (serde's `rc` feature, which
//!   would do the same, is not enabled; `serde_shared` does it by hand).
//!
//! What is *not* here: a broker's last heartbeat. Session expiry is time-based, so the active
//! controller decides it (with the time passed in) and records the decision as a
//! [`MetadataCommand::FenceBroker`]. Replicating heartbeats would put a clock into the log.
//!
//! # Files
//!
//! This file has the state's types ([`Broker`], [`Topic`], [`Partition`], ...),
//! [`MetadataState`] with its read accessors, and `apply`, which hands each command to the
//! file that owns its rule:
//!
//! - `records.rs`: the log's records and results ([`MetadataCommand`], [`NewTopic`],
//!   [`AlterPartition`], [`CommandOutcome`], [`PartitionChange`], [`MetadataError`], ...);
//!   data only.
//! - `brokers.rs`: registration, the cluster id, fencing, unfencing, controlled shutdown
//!   and eligibility.
//! - `configs.rs`: altering a topic's config overrides.
//! - `election.rs`: the election rule and ElectLeaders.
//! - `placement.rs`: creating, deleting and growing topics, their validation, and replica
//!   placement.
//! - `reassignment.rs`: starting, cancelling and completing reassignments.
//! - `isr.rs`: AlterPartition, and the invariant checks every partition change goes
//!   through (`write_partition`).
//! - `tests.rs`: the unit and property tests.
//!
//! # The rules (KRaft's, from `ReplicationControlManager` and `PartitionChangeBuilder`)
//!
//! - **Registration** (`brokers.rs`) gives a broker a *broker epoch*: the Raft log index of
//!   its `RegisterBroker` entry, as KRaft does. A registered broker starts fenced; it is
//!   unfenced once it has caught up with the metadata log
//!   ([`MetadataCommand::UnfenceBroker`]). A re-registration (a restart, a new incarnation)
//!   first fences the old incarnation.
//! - **The cluster id** (`brokers.rs`) is the first one a registration proposes: every
//!   `RegisterBroker` carries the id in its broker's data dir, the state keeps the first and
//!   ignores later proposals, and each broker adopts the kept one (Kafka fixes it with
//!   `kafka-storage format`; here the first broker to register does). A malformed proposal
//!   is refused whether or not it would be kept, so a broker learns about it on its first
//!   start.
//! - **Eligible** brokers (`brokers.rs`) are registered, unfenced and not in controlled
//!   shutdown. Only they may lead or join an ISR.
//! - **Election** (`election.rs`) keeps the current leader while it is eligible and in the
//!   ISR. Otherwise the new leader is the first replica, in replica order, that is in the
//!   ISR and eligible (a clean election). If there is none and the topic sets
//!   `unclean.leader.election.enable=true`, the first eligible replica leads, the ISR becomes
//!   just that replica and the leader recovery state becomes `Recovering` (KIP-704); the
//!   outcome marks the election unclean so the shell can log and count it. Otherwise the
//!   partition is offline: no leader.
//! - **ElectLeaders** (`election.rs`) asks, per partition, for the preferred replica (the
//!   first) to lead, if it is in the ISR and eligible; or, for a leaderless partition, for
//!   any eligible replica (unclean). A partition it cannot or need not change is refused on
//!   its own ([`ElectionRefusal`]) without stopping the others.
//! - **Fencing** a broker (session expiry) and **controlled shutdown** (`brokers.rs`) have
//!   the same effect on partitions: the broker leaves every ISR and every partition it led
//!   gets a new leader by the rule above. The ISR never becomes empty: when the broker is
//!   the last ISR member it stays there, with no leader, so that the partition can come back
//!   cleanly when that broker does. Kafka does the same (`generateLeaderAndIsrUpdates`).
//! - **Unfencing** a broker (`brokers.rs`) elects leaders for the leaderless partitions it
//!   can now lead.
//! - **AlterPartition** (KIP-497, `isr.rs`) is a compare-and-set from the partition leader:
//!   it must carry the leader's current broker epoch, the current leader epoch
//!   (`FENCED_LEADER_EPOCH` otherwise) and the current partition epoch
//!   (`INVALID_UPDATE_VERSION` otherwise); the new ISR must be replicas only, contain the
//!   leader (`INVALID_REQUEST`) and name eligible brokers only (`INELIGIBLE_REPLICA`). A
//!   deposed leader therefore can never change the ISR behind the controller's back.
//! - **Replica placement** (`placement.rs`) for new partitions spreads leaders round-robin
//!   over the eligible brokers (sorted by id) and puts followers on distinct brokers with
//!   Kafka's shifting scheme (`AdminUtils.assignReplicasToBrokersRackUnaware`); when every
//!   eligible broker has a rack, the brokers are ordered alternating between racks and
//!   followers go to racks that hold no replica yet (the idea of
//!   `assignReplicasToBrokersRackAware`). Where randomness would pick the starting broker, a
//!   replicated cursor (partitions placed so far) does.
//! - **Reassignment** (KIP-455, `reassignment.rs`) moves a partition to target replicas:
//!   while it runs the replicas are the target followed by the original replicas not in it;
//!   once every target replica is in the ISR (checked on the request and on every
//!   AlterPartition) the removed replicas are dropped, and leadership moves to a target
//!   replica if the leader was removed. Cancelling goes back to the original replicas.
//!
//! # Invariants (asserted for every partition a command changes, in release builds too)
//!
//! Checked in `isr.rs` (`check_partition`, which `write_partition` and topic creation run,
//! and `check_invariants` for a whole state):
//!
//! - `replicas` is non-empty, has no duplicates and names registered brokers only.
//! - `isr` is non-empty, has no duplicates and `isr ⊆ replicas`.
//! - `leader` is `None` or a member of the ISR that is eligible: no fenced broker leads.
//! - A `Recovering` partition has exactly one ISR member.
//! - A running reassignment's adding and removing replicas are replicas, and none is both.
//! - Epochs never go back: a broker's epoch grows on every registration; a partition's
//!   leader epoch grows by one exactly when its leader changes (to or from none included);
//!   its partition epoch grows by one exactly when anything about it changes.
//! - A command that fails changes nothing.
//!
//! # Left out on purpose
//!
//! Eligible leader replicas (KIP-966), broker unregistration and feature levels. Fencing scans every
//! partition; a broker -> partitions index can come when clusters are big enough to need it.

mod brokers;
mod configs;
mod election;
mod isr;
mod placement;
mod reassignment;
mod records;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::delta::{LastChanges, TopicChange};

pub use brokers::check_cluster_id;
pub use configs::broker_configs_after;
pub use records::{
    AlterPartition, CommandOutcome, CommandResult, Election, ElectionRefusal, ElectionType,
    MetadataCommand, MetadataError, NewTopic, PartitionChange,
};

// What `tests.rs` (`use super::*;`) reaches besides the items above.
#[cfg(test)]
use placement::{assign_replicas, assign_replicas_rack_aware};
#[cfg(test)]
use sluice_protocol::error::ErrorCode;

/// A broker's id, as Kafka numbers them.
pub type BrokerId = i32;
/// A broker registration's epoch: the Raft log index of its `RegisterBroker` entry.
pub type BrokerEpoch = i64;

/// Kafka's limit on a topic name's length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Most partitions one topic may have (the same limit storage enforces).
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;
/// Most endpoints one broker may register.
pub const BROKER_ENDPOINTS_MAX: usize = 16;
/// Most config overrides one topic may carry.
pub const TOPIC_CONFIGS_MAX: usize = 64;
/// Longest cluster id a registration may propose. Kafka's are 22 characters (a base64 UUID),
/// Sluice's own 32 (a hex UUID).
pub const CLUSTER_ID_BYTES_MAX: usize = 64;
/// The topic config that allows electing a leader from outside the ISR.
pub const UNCLEAN_LEADER_ELECTION_CONFIG: &str = "unclean.leader.election.enable";
/// The config a broker resource may not set for itself (a cluster-wide one).
pub const MIN_INSYNC_REPLICAS_CONFIG: &str = "min.insync.replicas";

/// Where a broker can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// Whether a registered broker may lead partitions and be in ISRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerStatus {
    /// Just registered, or its session expired: neither leads nor joins ISRs.
    Fenced,
    /// Caught up and heartbeating: eligible.
    Unfenced,
    /// Asked to shut down cleanly: its leaderships were moved away; not eligible until it
    /// registers again.
    ShuttingDown,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    pub id: BrokerId,
    /// Changes on every process start: tells a restart from a retried registration.
    pub incarnation: Uuid,
    pub epoch: BrokerEpoch,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub status: BrokerStatus,
}

impl Broker {
    pub fn is_eligible(&self) -> bool {
        self.status == BrokerStatus::Unfenced
    }

    /// Where clients (and follower fetchers) reach this broker: its first endpoint that is
    /// not the internal (controller) listener.
    pub fn client_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.listener != super::service::INTERNAL_LISTENER)
    }
}

/// Whether a partition's leader may serve reads and take part in ISR growth (KIP-704).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderRecoveryState {
    Recovered,
    /// Elected uncleanly: the leader must recover its log before the ISR may grow.
    Recovering,
}

impl LeaderRecoveryState {
    /// The value on the wire (Kafka's `LeaderRecoveryState`).
    pub fn wire_value(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Assigned replicas in preference order; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas, in the order the leader proposed them.
    pub isr: Vec<BrokerId>,
    /// `None` when offline (`-1` on the wire).
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub leader_recovery_state: LeaderRecoveryState,
    /// While a reassignment runs (KIP-455): replicas being added (in `replicas`, fetching,
    /// not yet all in the ISR) and replicas to drop once they are. Empty otherwise.
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    #[serde(default)]
    pub removing_replicas: Vec<BrokerId>,
}

impl Partition {
    /// The replica set a running reassignment moves to (`replicas` when none runs).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replica set before the running reassignment (`replicas` when none runs).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The leader as Kafka sends it: `-1` for none.
    pub fn leader_id(&self) -> BrokerId {
        self.leader.unwrap_or(-1)
    }

    /// True if the two differ in anything but the epochs.
    fn differs_from(&self, other: &Partition) -> bool {
        self.replicas != other.replicas
            || self.isr != other.isr
            || self.leader != other.leader
            || self.leader_recovery_state != other.leader_recovery_state
            || self.adding_replicas != other.adding_replicas
            || self.removing_replicas != other.removing_replicas
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Config overrides (Kafka's names).
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<Partition>,
}

/// The replicated cluster metadata. See the module docs for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    /// The cluster's id: the first one a registration proposed. `None` until then (and in
    /// snapshots written before the id was replicated).
    #[serde(default)]
    cluster_id: Option<String>,
    brokers: BTreeMap<BrokerId, Broker>,
    /// Each topic shared between images until a command changes it (see the module docs).
    #[serde(with = "serde_shared::values")]
    topics: BTreeMap<Uuid, Arc<Topic>>,
    /// Name -> id, kept in step with `topics`; shared until a topic is created or deleted.
    #[serde(with = "serde_shared::whole")]
    topic_ids: Arc<BTreeMap<String, Uuid>>,
    /// Partitions placed so far: where the next placement starts, so leaders spread across
    /// topics without randomness.
    placement_cursor: u64,
    /// Log index of the last command applied (failed ones included).
    last_command_index: Option<u64>,
    /// Dynamic broker configs by broker id, `""` for the cluster-wide default (Kafka's
    /// `kafka-configs --entity-type brokers`; string keys for the JSON snapshot). Absent
    /// from older snapshots, and left out while empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Topics the last command changed (see [`delta`](super::delta)); not replicated state.
    #[serde(skip)]
    last_changes: LastChanges,
}

/// The cluster's health as one copy of the metadata sees it ([`MetadataState::health`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Brokers registered, whatever their status.
    pub registered_brokers: usize,
    /// Registered brokers that are fenced (not those in controlled shutdown).
    pub fenced_brokers: usize,
    pub topics: usize,
    pub partitions: usize,
    /// Partitions with no leader.
    pub offline_partitions: usize,
}

impl MetadataState {
    pub fn new() -> MetadataState {
        MetadataState::default()
    }

    /// The cluster's id, once a broker has registered.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn brokers(&self) -> impl Iterator<Item = &Broker> {
        self.brokers.values()
    }

    /// The dynamic configs of one broker (`Some(id)`) or the cluster default (`None`).
    pub fn broker_configs(&self, broker: Option<BrokerId>) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&broker_config_key(broker))
    }

    pub fn broker(&self, id: BrokerId) -> Option<&Broker> {
        self.brokers.get(&id)
    }

    /// Topics in id order.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values().map(Arc::as_ref)
    }

    pub fn topic(&self, id: &Uuid) -> Option<&Topic> {
        self.topics.get(id).map(Arc::as_ref)
    }

    /// The shared topic itself, for tests that check what a change copied.
    #[cfg(test)]
    pub(crate) fn topic_arc(&self, id: &Uuid) -> Option<&Arc<Topic>> {
        self.topics.get(id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Topic> {
        self.topic_ids.get(name).and_then(|id| self.topic(id))
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&Partition> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic_id)?.partitions.get(index)
    }

    /// The Raft log index of the last command applied.
    pub fn last_command_index(&self) -> Option<u64> {
        self.last_command_index
    }

    /// The topic to change, copied first if another image shares it: the one way commands
    /// write to a topic (see the module docs).
    fn topic_mut(&mut self, id: &Uuid) -> Option<&mut Topic> {
        self.topics.get_mut(id).map(Arc::make_mut)
    }

    /// The topics the last applied command changed, each once; leaves the list empty.
    ///
    /// The changes live in the state that `apply` wrote, so take them from that same value
    /// (the copy `Arc::make_mut` returned, not an image taken before it).
    pub fn take_last_changes(&mut self) -> Vec<TopicChange> {
        self.last_changes.take()
    }

    /// Counts an operator watches (KafkaController's OfflinePartitionsCount,
    /// FencedBrokerCount, GlobalPartitionCount, ...). One pass over every partition.
    pub fn health(&self) -> ClusterHealth {
        let partitions = self.topics.values().flat_map(|topic| &topic.partitions);
        ClusterHealth {
            registered_brokers: self.brokers.len(),
            fenced_brokers: self
                .brokers
                .values()
                .filter(|broker| broker.status == BrokerStatus::Fenced)
                .count(),
            topics: self.topics.len(),
            partitions: partitions.clone().count(),
            offline_partitions: partitions
                .filter(|partition| partition.leader.is_none())
                .count(),
        }
    }

    /// Apply the command at Raft log index `index`. Pure and deterministic; a rejected command
    /// changes nothing but `last_command_index`.
    ///
    /// # Panics
    /// If `index` does not grow (the log applies each entry once, in order), or if a change
    /// would break an invariant (a bug: the state must not be corrupted silently).
    pub fn apply(&mut self, index: u64, command: &MetadataCommand) -> CommandResult {
        if let Some(last) = self.last_command_index {
            assert!(
                index > last,
                "metadata command at log index {index} applied after index {last}"
            );
        }
        self.last_command_index = Some(index);
        self.last_changes.clear();
        match command {
            MetadataCommand::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
                cluster_id,
            } => self.register_broker(
                index,
                *id,
                *incarnation,
                endpoints,
                rack,
                cluster_id.as_deref(),
            ),
            MetadataCommand::UnfenceBroker { id, epoch } => self.unfence_broker(*id, *epoch),
            MetadataCommand::FenceBroker { id, epoch } => self
                .remove_broker(*id, *epoch, BrokerStatus::Fenced)
                .map(|changes| CommandOutcome::BrokerFenced { changes }),
            MetadataCommand::ControlledShutdown { id, epoch } => self
                .remove_broker(*id, *epoch, BrokerStatus::ShuttingDown)
                .map(|changes| CommandOutcome::ShutdownControlled { changes }),
            MetadataCommand::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                configs,
            } => {
                let shape = (*partitions, *replication_factor, None);
                self.create_topic(name, *id, shape, configs)
            }
            MetadataCommand::CreateTopics { topics } => Ok(self.create_topics(topics)),
            MetadataCommand::DeleteTopic { id } => self.delete_topic(id),
            MetadataCommand::CreatePartitions {
                topic_id,
                count,
                assignment,
            } => self.create_partitions(topic_id, *count, assignment.as_deref()),
            MetadataCommand::AlterPartition(request) => self.alter_partition(request),
            MetadataCommand::ElectLeaders {
                election,
                partitions,
            } => Ok(self.elect_leaders(*election, partitions)),
            MetadataCommand::ReassignPartition {
                topic_id,
                partition,
                target,
            } => self.reassign_partition(*topic_id, *partition, target.as_deref()),
            MetadataCommand::AlterTopicConfigs {
                topic_id,
                changes,
                replace,
            } => self.alter_topic_configs(topic_id, changes, *replace),
            MetadataCommand::AlterBrokerConfigs {
                broker,
                changes,
                replace,
            } => self.alter_broker_configs(*broker, changes, *replace),
        }
    }
}

/// The key of a broker resource in `broker_configs`.
pub(super) fn broker_config_key(broker: Option<BrokerId>) -> String {
    broker.map_or_else(String::new, |id| id.to_string())
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replicas {:?} isr {:?} leader {} leader epoch {} partition epoch {}",
            self.replicas,
            self.isr,
            self.leader_id(),
            self.leader_epoch,
            self.partition_epoch
        )
    }
}

fn has_duplicates(ids: &[BrokerId]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

/// Serde for the shared parts of [`MetadataState`]: an `Arc` is written as what it points
/// to and read back into a new one, so the format is that of the plain types.
mod serde_shared {
    /// A whole `Arc<T>` field.
    pub(super) mod whole {
        use std::sync::Arc;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<T: Serialize, S: Serializer>(
            value: &Arc<T>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            T::serialize(value, serializer)
        }

        pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Arc<T>, D::Error> {
            T::deserialize(deserializer).map(Arc::new)
        }
    }

    /// A `BTreeMap<K, Arc<V>>` field, written as `BTreeMap<K, V>` is (`collect_map`).
    pub(super) mod values {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
            map: &BTreeMap<K, Arc<V>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serializer.collect_map(map.iter().map(|(key, value)| (key, value.as_ref())))
        }

        pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, Arc<V>>, D::Error>
        where
            K: Deserialize<'de> + Ord,
            V: Deserialize<'de>,
            D: Deserializer<'de>,
        {
            let plain = BTreeMap::<K, V>::deserialize(deserializer)?;
            Ok(plain
                .into_iter()
                .map(|(key, value)| (key, Arc::new(value)))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests;
