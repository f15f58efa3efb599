//! The metadata log's records and what applying them gives back: [`MetadataCommand`] (one
//! Raft log entry) and its payloads ([`AlterPartition`], [`NewTopic`]), [`CommandOutcome`]
//! and [`PartitionChange`] for a command that applied, [`MetadataError`] (with its Kafka
//! error code) for one that was refused, and the election types ([`ElectionType`],
//! [`ElectionRefusal`], [`Election`]). Data only; the rules that produce them are in the
//! sibling files.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sluice_protocol::error::ErrorCode;
use thiserror::Error;
use uuid::Uuid;

use super::{BrokerEpoch, BrokerId, Endpoint, LeaderRecoveryState, Partition};
use crate::storage::ConfigChange;

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
    /// Grow a topic to `count` partitions in total; the new partitions on the replicas of
    /// `assignment` (CreatePartitions' manual assignment) if given, else placed.
    CreatePartitions {
        topic_id: Uuid,
        count: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignment: Option<Vec<Vec<BrokerId>>>,
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
    /// Kafka's IncrementalAlterConfigs for one topic's overrides, or with `replace` its
    /// AlterConfigs (the SETs become the whole set).
    AlterTopicConfigs {
        topic_id: Uuid,
        changes: Vec<ConfigChange>,
        replace: bool,
    },
    /// The same for dynamic broker configs: one broker's, or with `None` the cluster
    /// default.
    AlterBrokerConfigs {
        broker: Option<BrokerId>,
        changes: Vec<ConfigChange>,
        replace: bool,
    },
}

/// A topic a `CreateTopics` created: its id and the replicas of each partition.
pub type CreatedTopic = (Uuid, Vec<Vec<BrokerId>>);

/// One topic of a [`MetadataCommand::CreateTopics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replicas per partition chosen by the client (CreateTopics' manual assignments); the
    /// controller places them otherwise. Absent from entries written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Vec<Vec<BrokerId>>>,
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
        results: Vec<Result<CreatedTopic, MetadataError>>,
    },
    TopicDeleted {
        name: String,
    },
    PartitionsCreated {
        /// Replicas per *new* partition, starting at the old partition count.
        assignment: Vec<Vec<BrokerId>>,
    },
    /// The partitions an unclean election the change allowed gave a leader.
    ConfigsAltered {
        changes: Vec<PartitionChange>,
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
            | CommandOutcome::ShutdownControlled { changes }
            | CommandOutcome::ConfigsAltered { changes } => changes,
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
    /// A broker config that cannot change at run time, or a bad value for one (Kafka's
    /// INVALID_REQUEST).
    #[error("{0}")]
    InvalidBrokerConfig(String),
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
            MetadataError::InvalidBrokerConfig(_) => ErrorCode::InvalidRequest,
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
