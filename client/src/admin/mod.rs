//! Topic and cluster administration: create, delete, list, describe, grow, elect leaders,
//! reassign partitions.
//!
//! Owns nothing but a cluster handle: each call is one admin request (CreateTopics,
//! DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs, DeleteRecords,
//! DescribeCluster, DescribeQuorum,
//! ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments), a Metadata read,
//! or one of the reads behind the CLI's operator views: ListOffsets to one broker
//! (a replica's log end offset with Kafka's debugging replica id -2, any replica answers;
//! a leader's high watermark with replica id -1) and a one-record Fetch for a timestamp.
//!
//! - Requests that change topics go to the controller named in metadata (KRaft brokers
//!   also forward them, so any broker does when the controller is unknown). A retriable
//!   error or NOT_CONTROLLER refreshes metadata and tries again, a few times.
//! - `create_topic` returns once metadata shows a leader for every partition and each
//!   leader answers ListOffsets for it (bounded by the timeout), so a produce right after
//!   it does not race the topic's creation.
//! - Errors name the Kafka error: "topic 'x' already exists (TOPIC_ALREADY_EXISTS)".
//! - `elect_leaders` answers per partition: one partition's refusal (its preferred replica
//!   is out of the ISR, say) is that partition's [`ElectionOutcome::Failed`], not an error
//!   of the whole call; ELECTION_NOT_NEEDED is [`ElectionOutcome::NotNeeded`], not a failure.
//! - `alter_partition_reassignments` answers per partition the same way: a refused target
//!   (INVALID_REPLICA_ASSIGNMENT, UNKNOWN_TOPIC_OR_PARTITION, ...) is that partition's
//!   [`ReassignmentOutcome::Failed`]; cancelling where nothing runs
//!   (NO_REASSIGNMENT_IN_PROGRESS) is [`ReassignmentOutcome::NoneInProgress`], not a failure.
//!
//! # Files
//!
//! This file has [`Admin`] itself (construction, the retry loop that sends a request to the
//! controller), [`NewTopic`] and the helpers every request shares; each concept has its own
//! file:
//!
//! - `topics.rs`: create, delete, list, describe and grow topics; configs; list offsets.
//! - `configs.rs`: `alter_topic_configs` (IncrementalAlterConfigs) and [`ConfigOp`].
//! - `records.rs`: `delete_records` (DeleteRecords, to each partition's leader).
//! - `elections.rs`: `elect_leaders` and its types.
//! - `groups/`: consumer groups: list, describe, committed offsets (list, alter, delete),
//!   delete; the coordinator lookup and its retries.
//! - `reassignments.rs`: alter and list partition reassignments and their types.
//! - `quorum.rs`: `describe_cluster` and `describe_quorum` (the search for the quorum
//!   leader) and their types.
//! - `probes.rs`: the reads behind the operator views: replicas' log end offsets, high
//!   watermarks, a record's timestamp.

mod configs;
mod elections;
mod groups;
mod probes;
mod quorum;
mod reassignments;
mod records;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Request, StrBytes};

use crate::cluster::{Cluster, ClusterConfig};
use crate::connection::Connection;
use crate::error::{kafka_error_name, Error, Result};

pub use configs::ConfigOp;
pub use elections::{ElectionOutcome, ElectionResult, ElectionType};
pub use groups::{
    CommittedOffset, GroupDescription, GroupListing, GroupListings, GroupMember, GroupState,
    ListGroupsFilter, MemberAssignment, NewOffset, PartitionResult, GROUP_API_VERSIONS,
};
pub use quorum::{ClusterDescription, QuorumDescription, QuorumReplica};
pub use reassignments::{
    OngoingReassignment, Reassignment, ReassignmentOutcome, ReassignmentResult,
};
pub use records::DELETE_TO_HIGH_WATERMARK;
pub use topics::{ConfigEntry, ConfigSource, TopicDescription};

/// Kafka's codes that get a sentence of their own.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const NOT_CONTROLLER: i16 = 41;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Attempts for an admin request that meets a retriable error.
const ADMIN_ATTEMPTS: u32 = 3;

/// Administrative operations on one cluster.
pub struct Admin {
    cluster: Arc<Cluster>,
    timeout: Duration,
}

/// A topic to create ([`Admin::create_topics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    /// Config overrides, Kafka's names.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    fn to_wire(&self) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(topic_name(&self.name))
            .with_num_partitions(self.partitions)
            .with_replication_factor(self.replication_factor)
            .with_configs(
                self.configs
                    .iter()
                    .map(|(key, value)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(key.clone()))
                            .with_value(Some(StrBytes::from_string(value.clone())))
                    })
                    .collect(),
            )
    }
}

impl Admin {
    /// Connect through `HOST:PORT[,HOST:PORT...]`.
    pub async fn new(bootstrap: &str) -> Result<Admin> {
        let mut config = ClusterConfig::new(bootstrap)?;
        config.connection.client_id = "sluice-admin".to_string();
        Ok(Admin::with_cluster(Cluster::connect(config).await?))
    }

    pub fn with_cluster(cluster: Arc<Cluster>) -> Admin {
        let timeout = cluster.config().connection.request_timeout;
        Admin { cluster, timeout }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Send `request` to the controller, retrying as [`Admin::with_controller`] does.
    async fn send_to_controller<R: Request + Clone>(&self, request: R) -> Result<R::Response> {
        self.with_controller(|connection| {
            let request = request.clone();
            async move { connection.send(request).await }
        })
        .await
    }

    /// Run an admin request against the controller, retrying (after a metadata refresh)
    /// on connection errors and NOT_CONTROLLER-like top-level failures.
    async fn with_controller<T, F, Fut>(&self, request: F) -> Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut last_error = None;
        for attempt in 0..ADMIN_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                let _ = self.cluster.refresh().await;
            }
            let connection = match self.cluster.controller_connection().await {
                Ok(connection) => connection,
                Err(error) if error.is_retriable() => {
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return Err(error),
            };
            match request(connection).await {
                Ok(response) => return Ok(response),
                Err(error)
                    if error.is_retriable() || error.kafka_code() == Some(NOT_CONTROLLER) =>
                {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::NoBrokerAvailable("no controller reachable".into())))
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn message(message: &Option<StrBytes>) -> Option<String> {
    message.as_ref().map(|m| m.to_string())
}

/// Whether a broker's error message only spells the code's name another way
/// ("PreferredLeaderNotAvailable" for PREFERRED_LEADER_NOT_AVAILABLE): not worth repeating.
fn restates_error_name(message: &str, code: i16) -> bool {
    let letters = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    letters(message) == letters(&kafka_error_name(code))
}

fn missing_from_response(api: &str, topic: &str) -> Error {
    Error::Broker {
        context: format!("{api} response does not mention topic '{topic}'"),
        code: -1,
        name: kafka_error_name(-1),
        message: None,
    }
}

/// A requested partition the `api` response left out: a failure of its own, described by
/// what was being done to it.
fn partition_missing_from_response(api: &str, doing: &str) -> Error {
    Error::Broker {
        context: format!("{doing}: the {api} response does not mention it"),
        code: -1,
        name: kafka_error_name(-1),
        message: None,
    }
}
