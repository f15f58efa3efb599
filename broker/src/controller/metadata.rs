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
//! What is *not* here: a broker's last heartbeat. Session expiry is time-based, so the active
//! controller decides it (with the time passed in) and records the decision as a
//! [`MetadataCommand::FenceBroker`]. Replicating heartbeats would put a clock into the log.
//!
//! # The rules (KRaft's, from `ReplicationControlManager` and `PartitionChangeBuilder`)
//!
//! - **Registration** gives a broker a *broker epoch*: the Raft log index of its
//!   `RegisterBroker` entry, as KRaft does. A registered broker starts fenced; it is unfenced
//!   once it has caught up with the metadata log ([`MetadataCommand::UnfenceBroker`]). A
//!   re-registration (a restart, a new incarnation) first fences the old incarnation.
//! - **The cluster id** is the first one a registration proposes: every `RegisterBroker`
//!   carries the id in its broker's data dir, the state keeps the first and ignores later
//!   proposals, and each broker adopts the kept one (Kafka fixes it with `kafka-storage
//!   format`; here the first broker to register does). A malformed proposal is refused
//!   whether or not it would be kept, so a broker learns about it on its first start.
//! - **Eligible** brokers are registered, unfenced and not in controlled shutdown. Only they
//!   may lead or join an ISR.
//! - **Election** keeps the current leader while it is eligible and in the ISR. Otherwise the
//!   new leader is the first replica, in replica order, that is in the ISR and eligible (a
//!   clean election). If there is none and the topic sets
//!   `unclean.leader.election.enable=true`, the first eligible replica leads, the ISR becomes
//!   just that replica and the leader recovery state becomes `Recovering` (KIP-704); the
//!   outcome marks the election unclean so the shell can log and count it. Otherwise the
//!   partition is offline: no leader.
//! - **Fencing** a broker (session expiry) and **controlled shutdown** have the same effect on
//!   partitions: the broker leaves every ISR and every partition it led gets a new leader by
//!   the rule above. The ISR never becomes empty: when the broker is the last ISR member it
//!   stays there, with no leader, so that the partition can come back cleanly when that broker
//!   does. Kafka does the same (`generateLeaderAndIsrUpdates`).
//! - **Unfencing** a broker elects leaders for the leaderless partitions it can now lead.
//! - **AlterPartition** (KIP-497) is a compare-and-set from the partition leader: it must
//!   carry the leader's current broker epoch, the current leader epoch
//!   (`FENCED_LEADER_EPOCH` otherwise) and the current partition epoch
//!   (`INVALID_UPDATE_VERSION` otherwise); the new ISR must be replicas only, contain the
//!   leader (`INVALID_REQUEST`) and name eligible brokers only (`INELIGIBLE_REPLICA`). A
//!   deposed leader therefore can never change the ISR behind the controller's back.
//! - **Replica placement** for new partitions spreads leaders round-robin over the eligible
//!   brokers (sorted by id) and puts followers on distinct brokers with Kafka's shifting
//!   scheme (`AdminUtils.assignReplicasToBrokersRackUnaware`). Where randomness would pick the
//!   starting broker, a replicated cursor (partitions placed so far) does.
//!
//! # Invariants (asserted for every partition a command changes, in release builds too)
//!
//! - `replicas` is non-empty, has no duplicates and names registered brokers only.
//! - `isr` is non-empty, has no duplicates and `isr ⊆ replicas`.
//! - `leader` is `None` or a member of the ISR that is eligible: no fenced broker leads.
//! - A `Recovering` partition has exactly one ISR member.
//! - Epochs never go back: a broker's epoch grows on every registration; a partition's
//!   leader epoch grows by one exactly when its leader changes (to or from none included);
//!   its partition epoch grows by one exactly when anything about it changes.
//! - A command that fails changes nothing.
//!
//! # Left out on purpose
//!
//! Rack-aware placement, explicit replica assignments, reassignment (adding and removing
//! replicas), eligible leader replicas (KIP-966), broker unregistration and feature levels.
//! Fencing scans every partition; a broker -> partitions index can come when clusters are big
//! enough to need it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sluice_protocol::error::ErrorCode;

use super::delta::{LastChanges, TopicChange};
use thiserror::Error;
use uuid::Uuid;

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

impl Topic {
    fn unclean_election(&self) -> UncleanElection {
        match self
            .configs
            .get(UNCLEAN_LEADER_ELECTION_CONFIG)
            .map(String::as_str)
        {
            Some("true") => UncleanElection::Allowed,
            _ => UncleanElection::Forbidden,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UncleanElection {
    Allowed,
    Forbidden,
}

/// A change to one partition's leader/ISR proposed by its leader (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    /// The proposing broker; must be the current leader.
    pub leader_id: BrokerId,
    /// The proposing broker's current broker epoch.
    pub broker_epoch: BrokerEpoch,
    /// By id, not name: a proposal for a deleted topic must not apply to a new topic that
    /// reuses the name (and would start at the same epochs).
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
    pub leader_recovery_state: LeaderRecoveryState,
}

/// A Raft log entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    RegisterBroker {
        id: BrokerId,
        incarnation: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        /// The cluster id the broker proposes (its data dir's); only the first proposal the
        /// metadata sees is kept. `None` in entries written before the id was replicated.
        #[serde(default)]
        cluster_id: Option<String>,
    },
    UnfenceBroker {
        id: BrokerId,
        epoch: BrokerEpoch,
    },
    FenceBroker {
        id: BrokerId,
        epoch: BrokerEpoch,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    /// Several topics in one entry (one CreateTopics request): each is created or refused
    /// on its own, as if by its own `CreateTopic`, in order.
    CreateTopics {
        topics: Vec<NewTopic>,
    },
    DeleteTopic {
        id: Uuid,
    },
    /// Grow a topic to `count` partitions in total.
    CreatePartitions {
        topic_id: Uuid,
        count: i32,
    },
    AlterPartition(AlterPartition),
    ControlledShutdown {
        id: BrokerId,
        epoch: BrokerEpoch,
    },
    /// Kafka's ElectLeaders: move leadership to each partition's preferred (first) replica,
    /// or elect any live replica of a leaderless partition (unclean).
    ElectLeaders {
        election: ElectionType,
        partitions: Vec<(Uuid, i32)>,
    },
    /// Kafka's AlterPartitionReassignments for one partition: move it to `target` replicas
    /// (new ones are added and must join the ISR before the removed ones are dropped), or
    /// with `None` cancel the running reassignment.
    ReassignPartition {
        topic_id: Uuid,
        partition: i32,
        target: Option<Vec<BrokerId>>,
    },
}

/// One topic of a [`MetadataCommand::CreateTopics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Which election an ElectLeaders asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica leads, if it is in the ISR and eligible.
    Preferred,
    /// A leaderless partition gets any eligible replica as leader, ISR or not.
    Unclean,
}

/// Why one partition of an ElectLeaders was not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionRefusal {
    /// It already has the leader the election would give it.
    NotNeeded,
    /// The preferred replica is not in the ISR, or fenced or shutting down.
    PreferredLeaderNotAvailable,
    /// No eligible replica (unclean election of a leaderless partition).
    EligibleLeadersNotAvailable,
    UnknownTopicOrPartition,
}

impl fmt::Display for ElectionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElectionRefusal::NotNeeded => "the partition already has that leader",
            ElectionRefusal::PreferredLeaderNotAvailable => {
                "the preferred replica is not in the ISR, or is fenced or shutting down"
            }
            ElectionRefusal::EligibleLeadersNotAvailable => "no live replica can lead",
            ElectionRefusal::UnknownTopicOrPartition => "no such topic or partition",
        })
    }
}

impl ElectionRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            ElectionRefusal::NotNeeded => ErrorCode::ElectionNotNeeded,
            ElectionRefusal::PreferredLeaderNotAvailable => ErrorCode::PreferredLeaderNotAvailable,
            ElectionRefusal::EligibleLeadersNotAvailable => ErrorCode::EligibleLeadersNotAvailable,
            ElectionRefusal::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
        }
    }
}

/// How a leader was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// From the ISR.
    Clean,
    /// From outside the ISR: acknowledged writes may be lost.
    Unclean,
}

/// One partition's new state after a command changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<BrokerId>,
    /// Set when this change elected a new leader (not when it only went offline).
    pub election: Option<Election>,
}

/// What a successful command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// `changes` are the effects of fencing the broker's previous incarnation.
    BrokerRegistered {
        broker_epoch: BrokerEpoch,
        changes: Vec<PartitionChange>,
    },
    BrokerUnfenced {
        changes: Vec<PartitionChange>,
    },
    BrokerFenced {
        changes: Vec<PartitionChange>,
    },
    /// After this the broker leads nothing: every leadership moved or went offline.
    ShutdownControlled {
        changes: Vec<PartitionChange>,
    },
    TopicCreated {
        id: Uuid,
        /// Replicas per new partition.
        assignment: Vec<Vec<BrokerId>>,
    },
    /// Per topic of a `CreateTopics`, in order: its id and replicas per partition, or why
    /// it was refused.
    TopicsCreated {
        results: Vec<Result<(Uuid, Vec<Vec<BrokerId>>), MetadataError>>,
    },
    TopicDeleted {
        name: String,
    },
    PartitionsCreated {
        /// Replicas per *new* partition, starting at the old partition count.
        assignment: Vec<Vec<BrokerId>>,
    },
    /// The partition as it is now (unchanged if the proposal changed nothing).
    PartitionAltered {
        partition: Partition,
    },
    /// Per requested partition, in request order: its change or why there was none.
    LeadersElected {
        results: Vec<(Uuid, i32, Result<PartitionChange, ElectionRefusal>)>,
    },
    /// The partition after the reassignment request (already complete when nothing had to
    /// be copied).
    ReassignmentAltered {
        partition: Partition,
    },
}

impl CommandOutcome {
    /// The partition changes this outcome reports (empty for topic-level outcomes).
    pub fn changes(&self) -> &[PartitionChange] {
        match self {
            CommandOutcome::BrokerRegistered { changes, .. }
            | CommandOutcome::BrokerUnfenced { changes }
            | CommandOutcome::BrokerFenced { changes }
            | CommandOutcome::ShutdownControlled { changes } => changes,
            _ => &[],
        }
    }
}

/// Why a command was rejected. Rejections are deterministic, so they are part of the
/// replicated outcome: every replica rejects the same entry the same way.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MetadataError {
    #[error("broker {0} is not registered")]
    BrokerNotRegistered(BrokerId),
    #[error("broker {broker} is at epoch {current}, not {requested}: re-register or retry with the current epoch")]
    StaleBrokerEpoch {
        broker: BrokerId,
        requested: BrokerEpoch,
        current: BrokerEpoch,
    },
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error("topic id {0} is already in use")]
    TopicIdInUse(Uuid),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("no topic with id {0}")]
    UnknownTopicId(Uuid),
    #[error("topic {topic_id} has no partition {partition}")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i32, reason: String },
    #[error("replication factor {requested} needs that many eligible brokers; {available} are")]
    InvalidReplicationFactor { requested: i16, available: usize },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("leader epoch {requested} is not the current leader epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("partition epoch {requested} is not the current partition epoch {current}")]
    InvalidUpdateVersion { requested: i32, current: i32 },
    #[error("broker {0} may not be in an ISR: it is fenced, shutting down or not registered")]
    IneligibleReplica(BrokerId),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
}

impl MetadataError {
    /// The Kafka error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            MetadataError::BrokerNotRegistered(_) => ErrorCode::BrokerIdNotRegistered,
            MetadataError::StaleBrokerEpoch { .. } => ErrorCode::StaleBrokerEpoch,
            MetadataError::TopicAlreadyExists(_) | MetadataError::TopicIdInUse(_) => {
                ErrorCode::TopicAlreadyExists
            }
            MetadataError::InvalidTopicName { .. } => ErrorCode::InvalidTopicException,
            MetadataError::UnknownTopicId(_) => ErrorCode::UnknownTopicId,
            MetadataError::UnknownPartition { .. } => ErrorCode::UnknownTopicOrPartition,
            MetadataError::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
            MetadataError::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
            MetadataError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            MetadataError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            MetadataError::InvalidUpdateVersion { .. } => ErrorCode::InvalidUpdateVersion,
            MetadataError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
            MetadataError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            MetadataError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
            MetadataError::NoReassignmentInProgress => ErrorCode::NoReassignmentInProgress,
        }
    }
}

/// What applying one command gives back to whoever proposed it.
pub type CommandResult = Result<CommandOutcome, MetadataError>;

/// The replicated cluster metadata. See the module docs for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    /// The cluster's id: the first one a registration proposed. `None` until then (and in
    /// snapshots written before the id was replicated).
    #[serde(default)]
    cluster_id: Option<String>,
    brokers: BTreeMap<BrokerId, Broker>,
    topics: BTreeMap<Uuid, Topic>,
    /// Name -> id, kept in step with `topics`.
    topic_ids: BTreeMap<String, Uuid>,
    /// Partitions placed so far: where the next placement starts, so leaders spread across
    /// topics without randomness.
    placement_cursor: u64,
    /// Log index of the last command applied (failed ones included).
    last_command_index: Option<u64>,
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

/// Which partitions a broker-wide change looks at, and what it does to the ISR.
#[derive(Debug, Clone, Copy)]
enum BrokerChange {
    /// The broker leaves every ISR (unless it is the last member) and every leadership.
    Remove(BrokerId),
    /// Leaderless partitions that the broker is a replica of get an election.
    Add(BrokerId),
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

    pub fn broker(&self, id: BrokerId) -> Option<&Broker> {
        self.brokers.get(&id)
    }

    /// Topics in id order.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    pub fn topic(&self, id: &Uuid) -> Option<&Topic> {
        self.topics.get(id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Topic> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&Partition> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic_id)?.partitions.get(index)
    }

    /// The Raft log index of the last command applied.
    pub fn last_command_index(&self) -> Option<u64> {
        self.last_command_index
    }

    /// The topics the last applied command changed, each once; leaves the list empty.
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

    fn is_eligible(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(Broker::is_eligible)
    }

    /// Eligible brokers in id order.
    fn eligible_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|broker| broker.is_eligible())
            .map(|broker| broker.id)
            .collect()
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
            } => self.create_topic(name, *id, *partitions, *replication_factor, configs),
            MetadataCommand::CreateTopics { topics } => Ok(self.create_topics(topics)),
            MetadataCommand::DeleteTopic { id } => self.delete_topic(id),
            MetadataCommand::CreatePartitions { topic_id, count } => {
                self.create_partitions(topic_id, *count)
            }
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
        }
    }

    /// Start, replace or cancel one partition's reassignment (KIP-455). The full replica
    /// set while it runs is the target followed by the original replicas not in it; a
    /// reassignment that adds nothing completes at once.
    fn reassign_partition(
        &mut self,
        topic_id: Uuid,
        number: i32,
        target: Option<&[BrokerId]>,
    ) -> CommandResult {
        let unknown = MetadataError::UnknownPartition {
            topic_id,
            partition: number,
        };
        let index = usize::try_from(number).map_err(|_| unknown.clone())?;
        let current = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId(topic_id))?
            .partitions
            .get(index)
            .ok_or(unknown)?
            .clone();
        let original = current.original_replicas();
        let mut next = current.clone();
        match target {
            None => {
                if !current.is_reassigning() {
                    return Err(MetadataError::NoReassignmentInProgress);
                }
                let isr: Vec<BrokerId> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| original.contains(r))
                    .collect();
                if isr.is_empty() {
                    return Err(MetadataError::InvalidRequest(
                        "cannot cancel: no original replica is in the ISR".into(),
                    ));
                }
                next.replicas = original;
                next.isr = isr;
                next.adding_replicas.clear();
                next.removing_replicas.clear();
            }
            Some(target) => {
                if target.is_empty() || has_duplicates(target) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "target replicas {target:?} must be distinct and non-empty"
                    )));
                }
                if let Some(unknown) = target.iter().find(|r| !self.brokers.contains_key(r)) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "broker {unknown} is not registered"
                    )));
                }
                let mut replicas = target.to_vec();
                replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
                next.adding_replicas = target
                    .iter()
                    .copied()
                    .filter(|r| !original.contains(r))
                    .collect();
                next.removing_replicas = original
                    .iter()
                    .copied()
                    .filter(|r| !target.contains(r))
                    .collect();
                // Members of an abandoned earlier target leave the ISR with it.
                next.isr.retain(|r| replicas.contains(r));
                next.replicas = replicas;
                if next.isr.is_empty() {
                    return Err(MetadataError::InvalidReplicaAssignment(
                        "no in-sync replica would be left".into(),
                    ));
                }
            }
        }
        self.complete_reassignment_if_caught_up(&mut next);
        if next
            .leader
            .is_some_and(|l| !next.isr.contains(&l) || !next.replicas.contains(&l))
        {
            next.leader = self.first_eligible_in_isr(&next);
        }
        if !next.differs_from(&current) {
            return Ok(CommandOutcome::ReassignmentAltered { partition: current });
        }
        if next.leader != current.leader {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        let election =
            (next.leader != current.leader && next.leader.is_some()).then_some(Election::Clean);
        self.write_partition(topic_id, index, next, election);
        let partition = self.topics[&topic_id].partitions[index].clone();
        Ok(CommandOutcome::ReassignmentAltered { partition })
    }

    /// If a reassignment runs and every target replica is in the ISR, finish it: the
    /// replicas become the target, removed replicas leave the ISR, and leadership moves to
    /// a target replica if the leader was removed. Epochs are the caller's.
    fn complete_reassignment_if_caught_up(&self, next: &mut Partition) {
        if !next.is_reassigning() {
            return;
        }
        let target = next.target_replicas();
        if !target.iter().all(|r| next.isr.contains(r)) {
            return;
        }
        next.isr.retain(|r| target.contains(r));
        next.replicas = target;
        next.adding_replicas.clear();
        next.removing_replicas.clear();
        if next.leader.is_some_and(|l| !next.replicas.contains(&l)) {
            next.leader = self.first_eligible_in_isr(next);
        }
    }

    /// The first replica, in replica order, that is in the ISR and eligible.
    fn first_eligible_in_isr(&self, partition: &Partition) -> Option<BrokerId> {
        partition
            .replicas
            .iter()
            .copied()
            .find(|r| partition.isr.contains(r) && self.is_eligible(*r))
    }

    /// ElectLeaders: each partition on its own; a refusal for one does not stop the others.
    fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: &[(Uuid, i32)],
    ) -> CommandOutcome {
        let mut results = Vec::with_capacity(partitions.len());
        for &(topic_id, number) in partitions {
            let result = self.elect_one(election, topic_id, number);
            results.push((topic_id, number, result));
        }
        CommandOutcome::LeadersElected { results }
    }

    fn elect_one(
        &mut self,
        election: ElectionType,
        topic_id: Uuid,
        number: i32,
    ) -> Result<PartitionChange, ElectionRefusal> {
        let partition = self
            .partition(&topic_id, number)
            .ok_or(ElectionRefusal::UnknownTopicOrPartition)?
            .clone();
        let index =
            usize::try_from(number).map_err(|_| ElectionRefusal::UnknownTopicOrPartition)?;
        let (next, kind) = match election {
            ElectionType::Preferred => {
                let preferred = partition.replicas[0];
                if partition.leader == Some(preferred) {
                    return Err(ElectionRefusal::NotNeeded);
                }
                if !partition.isr.contains(&preferred) || !self.is_eligible(preferred) {
                    return Err(ElectionRefusal::PreferredLeaderNotAvailable);
                }
                let next = Partition {
                    leader: Some(preferred),
                    leader_epoch: partition.leader_epoch + 1,
                    partition_epoch: partition.partition_epoch + 1,
                    ..partition.clone()
                };
                (next, Election::Clean)
            }
            ElectionType::Unclean => {
                if partition.leader.is_some() {
                    return Err(ElectionRefusal::NotNeeded);
                }
                match self.elect(&partition, partition.isr.clone(), UncleanElection::Allowed) {
                    Some((next, Some(kind))) if next.leader.is_some() => (next, kind),
                    _ => return Err(ElectionRefusal::EligibleLeadersNotAvailable),
                }
            }
        };
        Ok(self.write_partition(topic_id, index, next, Some(kind)))
    }

    fn register_broker(
        &mut self,
        index: u64,
        id: BrokerId,
        incarnation: Uuid,
        endpoints: &[Endpoint],
        rack: &Option<String>,
        cluster_id: Option<&str>,
    ) -> CommandResult {
        if id < 0 {
            return Err(MetadataError::InvalidRequest(format!(
                "broker id {id} is negative"
            )));
        }
        if endpoints.len() > BROKER_ENDPOINTS_MAX {
            return Err(MetadataError::InvalidRequest(format!(
                "{} endpoints, at most {BROKER_ENDPOINTS_MAX} allowed",
                endpoints.len()
            )));
        }
        if let Some(proposed) = cluster_id {
            check_cluster_id(proposed)?;
        }
        let epoch = BrokerEpoch::try_from(index).expect("Raft log index fits a broker epoch");
        // The previous incarnation is gone (or retrying): fence it before replacing it, so
        // that it neither leads nor stays in an ISR on the strength of its old registration.
        let changes = match self.brokers.get(&id) {
            Some(old) => {
                assert!(epoch > old.epoch, "broker epochs never go back");
                let old_epoch = old.epoch;
                self.remove_broker(id, old_epoch, BrokerStatus::Fenced)?
            }
            None => Vec::new(),
        };
        self.brokers.insert(
            id,
            Broker {
                id,
                incarnation,
                epoch,
                endpoints: endpoints.to_vec(),
                rack: rack.clone(),
                status: BrokerStatus::Fenced,
            },
        );
        if self.cluster_id.is_none() {
            self.cluster_id = cluster_id.map(str::to_string);
        }
        Ok(CommandOutcome::BrokerRegistered {
            broker_epoch: epoch,
            changes,
        })
    }

    fn check_broker_epoch(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<&Broker, MetadataError> {
        let broker = self
            .brokers
            .get(&id)
            .ok_or(MetadataError::BrokerNotRegistered(id))?;
        if broker.epoch != epoch {
            return Err(MetadataError::StaleBrokerEpoch {
                broker: id,
                requested: epoch,
                current: broker.epoch,
            });
        }
        Ok(broker)
    }

    fn unfence_broker(&mut self, id: BrokerId, epoch: BrokerEpoch) -> CommandResult {
        match self.check_broker_epoch(id, epoch)?.status {
            BrokerStatus::Unfenced => {
                return Ok(CommandOutcome::BrokerUnfenced { changes: vec![] })
            }
            BrokerStatus::ShuttingDown => {
                return Err(MetadataError::InvalidRequest(format!(
                    "broker {id} is shutting down; it must register again"
                )))
            }
            BrokerStatus::Fenced => {}
        }
        self.set_status(id, BrokerStatus::Unfenced);
        let changes = self.reelect_for(BrokerChange::Add(id));
        Ok(CommandOutcome::BrokerUnfenced { changes })
    }

    /// Fence a broker or put it in controlled shutdown: either way it leaves every ISR it can
    /// leave and every leadership.
    fn remove_broker(
        &mut self,
        id: BrokerId,
        epoch: BrokerEpoch,
        status: BrokerStatus,
    ) -> Result<Vec<PartitionChange>, MetadataError> {
        let current = self.check_broker_epoch(id, epoch)?.status;
        if current == BrokerStatus::Fenced {
            // Already out of every ISR and leadership; fencing stays fenced.
            return Ok(Vec::new());
        }
        self.set_status(id, status);
        Ok(self.reelect_for(BrokerChange::Remove(id)))
    }

    fn set_status(&mut self, id: BrokerId, status: BrokerStatus) {
        self.brokers
            .get_mut(&id)
            .expect("caller checked the broker is registered")
            .status = status;
    }

    /// Recompute leader and ISR of every partition affected by a broker's status change.
    fn reelect_for(&mut self, change: BrokerChange) -> Vec<PartitionChange> {
        let mut updates = Vec::new();
        for topic in self.topics.values() {
            let unclean = topic.unclean_election();
            for (number, partition) in topic.partitions.iter().enumerate() {
                let target_isr = match change {
                    BrokerChange::Remove(id) if partition.replicas.contains(&id) => {
                        partition.isr.iter().copied().filter(|&r| r != id).collect()
                    }
                    BrokerChange::Add(id)
                        if partition.leader.is_none() && partition.replicas.contains(&id) =>
                    {
                        partition.isr.clone()
                    }
                    _ => continue,
                };
                if let Some((next, election)) = self.elect(partition, target_isr, unclean) {
                    updates.push((topic.id, number, next, election));
                }
            }
        }
        updates
            .into_iter()
            .map(|(topic_id, number, next, election)| {
                self.write_partition(topic_id, number, next, election)
            })
            .collect()
    }

    /// The partition with ISR `target_isr` and a leader chosen by the election rule, or
    /// `None` if nothing changes. Epochs are bumped here.
    fn elect(
        &self,
        partition: &Partition,
        target_isr: Vec<BrokerId>,
        unclean: UncleanElection,
    ) -> Option<(Partition, Option<Election>)> {
        // The ISR never empties: the last member stays so the partition can recover cleanly.
        let mut isr = if target_isr.is_empty() {
            partition.isr.clone()
        } else {
            target_isr
        };
        let mut recovery = partition.leader_recovery_state;
        let mut election = None;
        let leader = match partition.leader {
            Some(leader) if isr.contains(&leader) && self.is_eligible(leader) => Some(leader),
            _ => {
                let clean = partition
                    .replicas
                    .iter()
                    .copied()
                    .find(|&r| isr.contains(&r) && self.is_eligible(r));
                match clean {
                    Some(leader) => {
                        election = Some(Election::Clean);
                        Some(leader)
                    }
                    None if unclean == UncleanElection::Allowed => {
                        let chosen = partition
                            .replicas
                            .iter()
                            .copied()
                            .find(|&r| self.is_eligible(r));
                        if let Some(leader) = chosen {
                            election = Some(Election::Unclean);
                            isr = vec![leader];
                            recovery = LeaderRecoveryState::Recovering;
                        }
                        chosen
                    }
                    None => None,
                }
            }
        };
        let mut next = Partition {
            replicas: partition.replicas.clone(),
            isr,
            leader,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            leader_recovery_state: recovery,
            adding_replicas: partition.adding_replicas.clone(),
            removing_replicas: partition.removing_replicas.clone(),
        };
        if !next.differs_from(partition) {
            return None;
        }
        if next.leader != partition.leader {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        Some((next, election))
    }

    /// Replace one partition after checking the invariants against the old state.
    fn write_partition(
        &mut self,
        topic_id: Uuid,
        number: usize,
        next: Partition,
        election: Option<Election>,
    ) -> PartitionChange {
        if let Err(broken) = self.check_partition(&next) {
            panic!("metadata invariant broken for {topic_id}-{number}: {broken}: {next:?}");
        }
        let slot = &mut self
            .topics
            .get_mut(&topic_id)
            .expect("partition of an existing topic")
            .partitions[number];
        let leader_changed = slot.leader != next.leader;
        assert_eq!(
            next.leader_epoch,
            slot.leader_epoch + i32::from(leader_changed),
            "the leader epoch grows by one exactly when the leader changes"
        );
        assert_eq!(
            next.partition_epoch,
            slot.partition_epoch + 1,
            "every partition change bumps the partition epoch by one"
        );
        *slot = next;
        self.last_changes.changed(topic_id);
        PartitionChange {
            topic_id,
            partition: i32::try_from(number).expect("partition count is bounded"),
            leader: slot.leader,
            leader_epoch: slot.leader_epoch,
            partition_epoch: slot.partition_epoch,
            isr: slot.isr.clone(),
            election,
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> CommandResult {
        validate_topic_name(name)?;
        if self.topic_ids.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists(name.to_string()));
        }
        if id.is_nil() || self.topics.contains_key(&id) {
            return Err(MetadataError::TopicIdInUse(id));
        }
        validate_partition_count(partitions, 1)?;
        validate_configs(configs)?;
        let assignment = self.place(partitions, replication_factor)?;
        let topic = Topic {
            name: name.to_string(),
            id,
            configs: configs.clone(),
            partitions: assignment
                .iter()
                .map(|replicas| new_partition(replicas))
                .collect(),
        };
        for partition in &topic.partitions {
            if let Err(broken) = self.check_partition(partition) {
                panic!("metadata invariant broken in new topic {name}: {broken}");
            }
        }
        self.topic_ids.insert(name.to_string(), id);
        self.topics.insert(id, topic);
        self.last_changes.changed(id);
        Ok(CommandOutcome::TopicCreated { id, assignment })
    }

    fn create_topics(&mut self, topics: &[NewTopic]) -> CommandOutcome {
        let results = topics
            .iter()
            .map(|topic| {
                let outcome = self.create_topic(
                    &topic.name,
                    topic.id,
                    topic.partitions,
                    topic.replication_factor,
                    &topic.configs,
                )?;
                match outcome {
                    CommandOutcome::TopicCreated { id, assignment } => Ok((id, assignment)),
                    other => unreachable!("create_topic answered {other:?}"),
                }
            })
            .collect();
        CommandOutcome::TopicsCreated { results }
    }

    fn delete_topic(&mut self, id: &Uuid) -> CommandResult {
        let topic = self
            .topics
            .remove(id)
            .ok_or(MetadataError::UnknownTopicId(*id))?;
        self.topic_ids.remove(&topic.name);
        self.last_changes.deleted(*id, topic.name.clone());
        Ok(CommandOutcome::TopicDeleted { name: topic.name })
    }

    fn create_partitions(&mut self, topic_id: &Uuid, count: i32) -> CommandResult {
        let topic = self
            .topics
            .get(topic_id)
            .ok_or(MetadataError::UnknownTopicId(*topic_id))?;
        let current = topic.partitions.len();
        let minimum = i32::try_from(current + 1).expect("partition count is bounded");
        validate_partition_count(count, minimum)?;
        let replication_factor = i16::try_from(topic.partitions[0].replicas.len())
            .expect("replication factor came from an i16");
        let added = count - i32::try_from(current).expect("partition count is bounded");
        let assignment = self.place(added, replication_factor)?;
        let topic = self.topics.get_mut(topic_id).expect("checked above");
        topic
            .partitions
            .extend(assignment.iter().map(|replicas| new_partition(replicas)));
        self.last_changes.changed(*topic_id);
        Ok(CommandOutcome::PartitionsCreated { assignment })
    }

    /// Replica lists for `count` new partitions, advancing the placement cursor.
    fn place(
        &mut self,
        count: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<BrokerId>>, MetadataError> {
        let brokers = self.eligible_brokers();
        let factor = usize::try_from(replication_factor).unwrap_or(0);
        if factor == 0 || factor > brokers.len() {
            return Err(MetadataError::InvalidReplicationFactor {
                requested: replication_factor,
                available: brokers.len(),
            });
        }
        let count = usize::try_from(count).expect("count was validated positive");
        let racks: Vec<Option<&str>> = brokers
            .iter()
            .map(|id| self.brokers.get(id).and_then(|b| b.rack.as_deref()))
            .collect();
        let assignment = if racks.iter().all(Option::is_some) {
            let racks: Vec<&str> = racks.into_iter().flatten().collect();
            assign_replicas_rack_aware(&brokers, &racks, count, factor, self.placement_cursor)
        } else {
            assign_replicas(&brokers, count, factor, self.placement_cursor)
        };
        self.placement_cursor += count as u64;
        Ok(assignment)
    }

    fn alter_partition(&mut self, request: &AlterPartition) -> CommandResult {
        self.check_broker_epoch(request.leader_id, request.broker_epoch)?;
        let topic = self
            .topics
            .get(&request.topic_id)
            .ok_or(MetadataError::UnknownTopicId(request.topic_id))?;
        let unknown = MetadataError::UnknownPartition {
            topic_id: request.topic_id,
            partition: request.partition,
        };
        let number = usize::try_from(request.partition).map_err(|_| unknown.clone())?;
        let partition = topic.partitions.get(number).ok_or(unknown)?;
        if request.leader_epoch != partition.leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch {
                requested: request.leader_epoch,
                current: partition.leader_epoch,
            });
        }
        if partition.leader != Some(request.leader_id) {
            return Err(MetadataError::InvalidRequest(format!(
                "broker {} is not the leader of {}-{} (the leader is {})",
                request.leader_id,
                topic.name,
                request.partition,
                partition.leader_id()
            )));
        }
        if request.partition_epoch != partition.partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion {
                requested: request.partition_epoch,
                current: partition.partition_epoch,
            });
        }
        let isr = &request.new_isr;
        if !isr.contains(&request.leader_id) {
            return Err(MetadataError::InvalidRequest(
                "the new ISR does not contain the leader".to_string(),
            ));
        }
        if let Some(stranger) = isr.iter().find(|r| !partition.replicas.contains(r)) {
            return Err(MetadataError::InvalidRequest(format!(
                "ISR member {stranger} is not a replica"
            )));
        }
        if has_duplicates(isr) {
            return Err(MetadataError::InvalidRequest(
                "the new ISR names a broker twice".to_string(),
            ));
        }
        if let Some(&ineligible) = isr.iter().find(|&&r| !self.is_eligible(r)) {
            return Err(MetadataError::IneligibleReplica(ineligible));
        }
        match (
            partition.leader_recovery_state,
            request.leader_recovery_state,
        ) {
            (LeaderRecoveryState::Recovered, LeaderRecoveryState::Recovering) => {
                return Err(MetadataError::InvalidRequest(
                    "a recovered partition cannot go back to recovering".to_string(),
                ))
            }
            (_, LeaderRecoveryState::Recovering) if isr.len() > 1 => {
                return Err(MetadataError::InvalidRequest(
                    "the ISR of a recovering partition cannot grow".to_string(),
                ))
            }
            _ => {}
        }
        let mut next = partition.clone();
        next.isr = isr.clone();
        next.leader_recovery_state = request.leader_recovery_state;
        // A reassignment whose new replicas have all joined the ISR completes here.
        self.complete_reassignment_if_caught_up(&mut next);
        if !next.differs_from(partition) {
            // A retry of an applied proposal, or a no-op: nothing to bump.
            return Ok(CommandOutcome::PartitionAltered { partition: next });
        }
        let leader_changed = next.leader != partition.leader;
        if leader_changed {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        let topic_id = request.topic_id;
        let election = (leader_changed && next.leader.is_some()).then_some(Election::Clean);
        self.write_partition(topic_id, number, next, election);
        let partition = self.topics[&topic_id].partitions[number].clone();
        Ok(CommandOutcome::PartitionAltered { partition })
    }

    /// Check one partition against the invariants in the module docs.
    fn check_partition(&self, partition: &Partition) -> Result<(), String> {
        if partition.replicas.is_empty() {
            return Err("no replicas".into());
        }
        if has_duplicates(&partition.replicas) {
            return Err("a broker appears twice in the replicas".into());
        }
        if let Some(unknown) = partition
            .replicas
            .iter()
            .find(|r| !self.brokers.contains_key(r))
        {
            return Err(format!("replica {unknown} is not a registered broker"));
        }
        if partition.isr.is_empty() {
            return Err("empty ISR".into());
        }
        if has_duplicates(&partition.isr) {
            return Err("a broker appears twice in the ISR".into());
        }
        if let Some(stranger) = partition
            .isr
            .iter()
            .find(|r| !partition.replicas.contains(r))
        {
            return Err(format!("ISR member {stranger} is not a replica"));
        }
        if let Some(leader) = partition.leader {
            if !partition.isr.contains(&leader) {
                return Err(format!("leader {leader} is not in the ISR"));
            }
            if !self.is_eligible(leader) {
                return Err(format!("leader {leader} is fenced or shutting down"));
            }
        }
        if partition.leader_recovery_state == LeaderRecoveryState::Recovering
            && partition.isr.len() != 1
        {
            return Err("a recovering partition has more than its leader in the ISR".into());
        }
        if partition.leader_epoch < 0 || partition.partition_epoch < 0 {
            return Err("negative epoch".into());
        }
        if let Some(stray) = partition
            .adding_replicas
            .iter()
            .chain(&partition.removing_replicas)
            .find(|r| !partition.replicas.contains(r))
        {
            return Err(format!(
                "reassignment names {stray}, which is not a replica"
            ));
        }
        if partition
            .adding_replicas
            .iter()
            .any(|r| partition.removing_replicas.contains(r))
        {
            return Err("a replica is both added and removed".into());
        }
        Ok(())
    }

    /// Check every invariant of the whole state: after loading a snapshot, and in tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, broker) in &self.brokers {
            if *id != broker.id {
                return Err(format!("broker {} filed under {id}", broker.id));
            }
        }
        if self.topic_ids.len() != self.topics.len() {
            return Err("topic name index out of step with topics".into());
        }
        for (id, topic) in &self.topics {
            if *id != topic.id || self.topic_ids.get(&topic.name) != Some(id) {
                return Err(format!("topic {:?} is indexed wrongly", topic.name));
            }
            if topic.partitions.is_empty() {
                return Err(format!("topic {:?} has no partitions", topic.name));
            }
            for (number, partition) in topic.partitions.iter().enumerate() {
                self.check_partition(partition)
                    .map_err(|broken| format!("{}-{number}: {broken}", topic.name))?;
            }
        }
        Ok(())
    }
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

fn new_partition(replicas: &[BrokerId]) -> Partition {
    Partition {
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas.first().copied(),
        leader_epoch: 0,
        partition_epoch: 0,
        leader_recovery_state: LeaderRecoveryState::Recovered,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Kafka's rack-unaware placement with the start chosen by `cursor` instead of at random:
/// partition `p`'s leader is broker `(cursor + p) mod n`, and its followers follow it at a
/// distance that shifts by one every `n` partitions, so follower load spreads too.
/// Replicas of one partition are distinct because `factor <= n`.
fn assign_replicas(
    brokers: &[BrokerId],
    count: usize,
    factor: usize,
    cursor: u64,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len() as u64;
    assert!(
        factor >= 1 && factor as u64 <= n,
        "replication factor fits the brokers"
    );
    (0..count as u64)
        .map(|p| {
            let position = cursor + p;
            let first = position % n;
            let shift = if n > 1 { (position / n) % (n - 1) } else { 0 };
            let mut replicas = vec![brokers[first as usize]];
            for j in 1..factor as u64 {
                let offset = 1 + (shift + j - 1) % (n - 1);
                replicas.push(brokers[((first + offset) % n) as usize]);
            }
            replicas
        })
        .collect()
}

/// Rack-aware placement (the idea of Kafka's `assignReplicasToBrokersRackAware`): brokers
/// are ordered alternating between racks, leaders go round-robin over that order, and each
/// follower is the next broker in the shifted order whose rack holds no replica yet (any
/// unused broker once every rack has one). `brokers` and `racks` are parallel, sorted by id.
fn assign_replicas_rack_aware(
    brokers: &[BrokerId],
    racks: &[&str],
    count: usize,
    factor: usize,
    cursor: u64,
) -> Vec<Vec<BrokerId>> {
    // Rack-alternated order: first broker of each rack (racks sorted), then the second...
    let mut by_rack: BTreeMap<&str, Vec<(BrokerId, &str)>> = BTreeMap::new();
    for (id, rack) in brokers.iter().zip(racks) {
        by_rack.entry(rack).or_default().push((*id, rack));
    }
    let mut ordered: Vec<(BrokerId, &str)> = Vec::with_capacity(brokers.len());
    for round in 0.. {
        let before = ordered.len();
        ordered.extend(
            by_rack
                .values()
                .filter_map(|members| members.get(round).copied()),
        );
        if ordered.len() == before {
            break;
        }
    }
    let rack_count = by_rack.len();
    let n = ordered.len() as u64;
    (0..count as u64)
        .map(|p| {
            let position = cursor + p;
            let first = (position % n) as usize;
            let shift = if n > 1 { (position / n) % (n - 1) } else { 0 };
            let mut chosen = vec![ordered[first]];
            while chosen.len() < factor {
                let racks_full = chosen.len() >= rack_count
                    || by_rack
                        .keys()
                        .all(|rack| chosen.iter().any(|(_, r)| r == rack));
                let next = (1..n)
                    .map(|step| {
                        ordered[((first as u64 + 1 + (shift + step - 1) % (n - 1)) % n) as usize]
                    })
                    .find(|(id, rack)| {
                        !chosen.iter().any(|(c, _)| c == id)
                            && (racks_full || !chosen.iter().any(|(_, r)| r == rack))
                    })
                    .expect("the replication factor fits the brokers");
                chosen.push(next);
            }
            chosen.into_iter().map(|(id, _)| id).collect()
        })
        .collect()
}

fn has_duplicates(ids: &[BrokerId]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

/// A cluster id is 1..=[`CLUSTER_ID_BYTES_MAX`] printable ASCII characters, no spaces: it
/// goes into every Metadata response and into a file of every data dir.
pub fn check_cluster_id(id: &str) -> Result<(), MetadataError> {
    if id.is_empty() || id.len() > CLUSTER_ID_BYTES_MAX {
        return Err(MetadataError::InvalidRequest(format!(
            "cluster id {id:?} must be 1 to {CLUSTER_ID_BYTES_MAX} bytes long"
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MetadataError::InvalidRequest(format!(
            "cluster id {id:?} may hold printable ASCII characters only, no spaces"
        )));
    }
    Ok(())
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: &str| {
        Err(MetadataError::InvalidTopicName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate_partition_count(count: i32, minimum: i32) -> Result<(), MetadataError> {
    if count < minimum {
        return Err(MetadataError::InvalidPartitions {
            count,
            reason: format!("at least {minimum} needed"),
        });
    }
    if count > TOPIC_PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions {
            count,
            reason: format!("at most {TOPIC_PARTITIONS_MAX} allowed"),
        });
    }
    Ok(())
}

fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(MetadataError::InvalidConfig(format!(
            "{} overrides, at most {TOPIC_CONFIGS_MAX} allowed",
            configs.len()
        )));
    }
    if let Some(value) = configs.get(UNCLEAN_LEADER_ELECTION_CONFIG) {
        if value != "true" && value != "false" {
            return Err(MetadataError::InvalidConfig(format!(
                "{UNCLEAN_LEADER_ELECTION_CONFIG} must be true or false, not {value:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
