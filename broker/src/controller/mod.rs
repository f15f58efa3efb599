//! The controller: cluster metadata as a replicated state machine on a Raft log (KRaft-like).
//!
//! A configured set of *voters* (1, 3 or 5 brokers) runs a Raft quorum with the `openraft`
//! crate; the elected leader is the *active controller*. Every change to cluster metadata
//! (broker registrations and fencing, topics, partition assignments, leaders, epochs, ISRs)
//! is a [`MetadataCommand`] appended to the Raft log; once committed, every node applies it
//! to its [`MetadataState`], so all agree on the same metadata in the same order. Brokers
//! that are not voters will follow the log as learners, so every broker has the metadata
//! locally.
//!
//! # Modules, one noun each
//!
//! - [`metadata`]: the metadata state machine. Sans-IO and deterministic; all the rules
//!   (election, fencing, AlterPartition's compare-and-set, placement) live here.
//! - [`delta`]: which topics each applied command changed, journalled by log index, so
//!   brokers reconcile only what changed.
//! - [`record_file`]: the on-disk unit, a file of `[len][crc32][payload]` records whose torn
//!   or corrupt tail is cut on open.
//! - [`raft_log`]: openraft log storage (entries, vote, committed id) in one write-ahead file.
//! - [`raft_store`]: openraft state machine storage: applies entries to [`MetadataState`]
//!   and persists snapshots; [`MetadataReader`] is the read view for the rest of the broker:
//!   a copy-on-write image that readers and snapshots read with no lock held.
//! - [`network`]: an in-process router for tests (it can isolate and heal a node).
//! - [`tcp`]: the TCP transport: `[u32 len][u32 crc32][json]` frames, lazily reconnected
//!   peers, [`serve_raft`] for the listening side, bound to the broker's internal listener
//!   (`--internal-listen`).
//! - [`service`]: the active controller's side of broker-to-controller requests
//!   (registration, heartbeats, AlterPartition, admin commands), session expiry (fencing)
//!   and the leader-rebalance loop.
//!
//! # Files
//!
//! ```text
//! <data_dir>/controller/
//!   raft-log      write-ahead log: entries, votes, committed id, purges, truncations
//!   snapshot      the last snapshot: [meta][MetadataState], replaced atomically
//! ```
//!
//! # Protocol
//!
//! 1. A fresh cluster: every voter opens its controller ([`Controller::open`]); one of them
//!    (any; conventionally the lowest id) calls [`Controller::initialize`] with all voters.
//!    A node that is already initialized skips it.
//! 2. Raft elects a leader: a voter that hears no leader for a random time between
//!    `election_timeout_min_ms` and `election_timeout_max_ms` stands for election.
//! 3. The active controller turns requests (broker registration and heartbeats, CreateTopics,
//!    AlterPartition, session expiry it observed itself) into commands and proposes them
//!    ([`Controller::submit`]). A non-leader answers [`ControllerError::NotController`] with
//!    the leader's id, as Kafka answers NOT_CONTROLLER.
//! 4. When a command commits, each node's state machine applies it and the proposer gets its
//!    [`CommandResult`]. A rejected command (a stale epoch, say) is also committed: the
//!    rejection is deterministic, so every node rejects it the same way.
//!
//! # Invariants
//!
//! - Only committed entries are applied, in log order, once each (asserted in `apply`).
//! - A log entry counts toward a quorum only after it is fsynced (`append` calls
//!   `log_io_completed` after the fsync); a vote is durable before it is acted on.
//! - Session expiry is decided by the active controller and enters the log as a command;
//!   nothing in the replicated state depends on a clock.
//!
//! Voters are `--controller-voters`; every other broker follows the log as a learner (the
//! active controller adds it when it registers).
//!
//! # Left out (for now)
//!
//! Changing the voter set after initialization, and linearizable reads for requests that
//! need them (reads are of this node's applied metadata).

pub mod delta;
pub mod metadata;
pub mod network;
pub mod raft_log;
pub mod raft_store;
pub mod record_file;
pub mod service;
pub mod tcp;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, RaftNetworkFactory, SnapshotPolicy, TokioRuntime};

pub use metadata::{
    broker_configs_after, AlterPartition, Broker, BrokerEpoch, BrokerId, BrokerStatus,
    ClusterHealth, CommandOutcome, CommandResult, ElectionRefusal, ElectionType, Endpoint,
    LeaderRecoveryState, MetadataCommand, MetadataError, MetadataState, NewTopic, Partition, Topic,
};
pub use raft_log::RaftLogStore;
pub use raft_store::{EntryResponse, MetadataReader, StateMachineStore};
pub use service::{ControllerRequest, ControllerResponse, ControllerService, HeartbeatReply};
pub use tcp::{serve_raft, serve_raft_with_config, TcpNetworkConfig, TcpRaftNetwork};

use crate::storage::FileSystem;

/// A controller node's Raft id. Controllers are brokers, so this is the broker id.
pub type NodeId = u64;

/// Name of the controller's directory under the broker's data directory.
pub const CONTROLLER_DIR_NAME: &str = "controller";

openraft::declare_raft_types!(
    /// The Raft types of the metadata log.
    pub TypeConfig:
        D = MetadataCommand,
        R = EntryResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// A Raft node of the metadata log.
pub type ControllerRaft = Raft<TypeConfig>;

/// Raft timing and log retention. Tests shrink the timeouts.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How often the leader sends heartbeats (append-entries) to followers.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears nothing for a random time in this range starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_entries_max: u64,
    /// Entries kept in the log behind a snapshot, so a slightly lagging follower can catch
    /// up without a snapshot transfer.
    pub entries_kept_after_snapshot: u64,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_entries_max: 10_000,
            entries_kept_after_snapshot: 1_000,
        }
    }
}

impl ControllerConfig {
    fn raft_config(&self) -> Result<Config, ControllerError> {
        let config = Config {
            cluster_name: "sluice-controller".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_entries_max),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|error| ControllerError::Config(error.to_string()))
    }
}

/// What went wrong talking to the controller, shaped by what the caller does next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControllerError {
    /// This node is not the active controller: retry on `leader` (if known).
    #[error("not the active controller; the leader is {leader:?}")]
    NotController { leader: Option<NodeId> },
    /// The Raft node stopped (shutdown or a storage failure); it will not recover.
    #[error("controller stopped: {0}")]
    Stopped(String),
    #[error("invalid controller configuration: {0}")]
    Config(String),
    #[error("controller storage: {0}")]
    Storage(String),
}

impl ControllerError {
    /// Whether retrying (on another node, or later) can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ControllerError::NotController { .. })
    }
}

/// One node's view of the controller quorum ([`Controller::quorum_status`]). Log positions
/// are Raft log indexes (the first entry is index 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The node this view is from.
    pub node_id: NodeId,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// The last entry this node applied to its metadata. openraft's `RaftMetrics` carries
    /// no commit index (the log store publishes it as `sluice_controller_raft_commit_index`);
    /// on the leader the two differ only while a committed entry is being applied.
    pub applied_index: Option<u64>,
    pub voters: Vec<NodeId>,
    /// Members that follow the log without voting (brokers outside the voter set).
    pub learners: Vec<NodeId>,
    /// On the leader only: the last entry each member (itself included) is known to hold.
    pub matched: Option<BTreeMap<NodeId, Option<u64>>>,
}

/// One node of the controller quorum: the Raft node and a view of its applied metadata.
#[derive(Clone)]
pub struct Controller {
    node_id: NodeId,
    raft: ControllerRaft,
    metadata: MetadataReader,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Open the controller's storage under `<data_dir>/controller/` (creating it if new) and
    /// start its Raft node, which talks to its peers through `network`.
    pub async fn open<N>(
        node_id: NodeId,
        fs: Arc<dyn FileSystem>,
        data_dir: &Path,
        config: &ControllerConfig,
        network: N,
    ) -> Result<Controller, ControllerError>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        let dir = data_dir.join(CONTROLLER_DIR_NAME);
        let storage_error = |error: std::io::Error| {
            ControllerError::Storage(format!("opening {}: {error}", dir.display()))
        };
        let log = RaftLogStore::open(fs.clone(), &dir).map_err(storage_error)?;
        let state_machine = StateMachineStore::open(fs, &dir).map_err(storage_error)?;
        let metadata = state_machine.reader();
        let raft = Raft::new(
            node_id,
            Arc::new(config.raft_config()?),
            network,
            log,
            state_machine,
        )
        .await
        .map_err(|fatal| ControllerError::Stopped(fatal.to_string()))?;
        Ok(Controller {
            node_id,
            raft,
            metadata,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The Raft node (for metrics, waiting on conditions, and the network's inbound side).
    pub fn raft(&self) -> &ControllerRaft {
        &self.raft
    }

    /// The metadata as this node has applied it.
    pub fn metadata(&self) -> &MetadataReader {
        &self.metadata
    }

    /// The leader this node knows of, if any.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// What this node knows of the quorum now (for DescribeQuorum), from openraft's metrics.
    pub fn quorum_status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        QuorumStatus {
            node_id: self.node_id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|log_id| log_id.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            matched: metrics.replication.map(|replication| {
                replication
                    .into_iter()
                    .map(|(id, matched)| (id, matched.map(|log_id| log_id.index)))
                    .collect()
            }),
        }
    }

    /// Form a new quorum of `voters`. Does nothing on a node that is already initialized
    /// (its log holds entries or it has voted): a restart, or a peer that formed the quorum
    /// first. openraft logs an ERROR when asked to initialize such a node, so ask first.
    pub async fn initialize(
        &self,
        voters: BTreeMap<NodeId, BasicNode>,
    ) -> Result<(), ControllerError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|fatal| ControllerError::Stopped(fatal.to_string()))?;
        if initialized {
            return Ok(());
        }
        // A peer's vote may still arrive between the question and the call: NotAllowed.
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotInMembers(error))) => {
                Err(ControllerError::Config(error.to_string()))
            }
            Err(RaftError::Fatal(fatal)) => Err(ControllerError::Stopped(fatal.to_string())),
        }
    }

    /// Propose `command`; once it is committed and applied, return its log index and result.
    pub async fn submit(
        &self,
        command: MetadataCommand,
    ) -> Result<(u64, CommandResult), ControllerError> {
        match self.raft.client_write(command).await {
            Ok(response) => match response.data {
                EntryResponse::Command(result) => Ok((response.log_id.index, result)),
                other => unreachable!("a command entry answered {other:?}"),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ControllerError::NotController {
                    leader: forward.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(error))) => {
                unreachable!("a command is not a membership change: {error}")
            }
            Err(RaftError::Fatal(fatal)) => Err(ControllerError::Stopped(fatal.to_string())),
        }
    }

    /// Stop the Raft node. Storage is closed when the last handle to it is dropped.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.raft
            .shutdown()
            .await
            .map_err(|error| ControllerError::Stopped(error.to_string()))
    }
}

#[cfg(test)]
mod tests;
