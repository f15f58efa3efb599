//! Topic and cluster administration: create, delete, list, describe, grow, elect leaders,
//! reassign partitions.
//!
//! Owns nothing but a cluster handle: each call is one admin request (CreateTopics,
//! DeleteTopics, CreatePartitions, DescribeConfigs, DescribeCluster, DescribeQuorum,
//! ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments), a Metadata read,
//! or one of the reads behind the operator views (`health`): ListOffsets to one broker
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    describe_quorum_request, describe_quorum_response, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, ApiKey, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse, FetchRequest, ListOffsetsRequest, ListOffsetsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_protocol::api::{DEBUGGING_REPLICA_ID, METADATA_TOPIC};
use sluice_protocol::error::ProtocolError;

use crate::cluster::{BrokerInfo, Cluster, ClusterConfig, PartitionInfo};
use crate::connection::Connection;
use crate::error::{kafka_error_name, Error, Result};
use crate::offsets::{self, IsolationLevel, OffsetSpec};
use crate::records::decode_records;

/// Kafka's codes that get a sentence of their own.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const NOT_CONTROLLER: i16 = 41;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;
/// Attempts for an admin request that meets a retriable error.
const ADMIN_ATTEMPTS: u32 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// ListOffsets replica id of a consumer: the leader answers, up to the high watermark.
const CONSUMER_REPLICA_ID: i32 = -1;
/// ListOffsets timestamp meaning "latest".
const LATEST_TIMESTAMP: i64 = -1;
/// Bytes a one-record fetch asks for; the batch holding the record comes whole anyway.
const SINGLE_RECORD_FETCH_BYTES: i32 = 64 * 1024;

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on this topic.
    TopicOverride,
    /// Set for brokers dynamically.
    DynamicBroker,
    /// From the broker's configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
    Other(i8),
}

impl ConfigSource {
    fn from_wire(value: i8) -> ConfigSource {
        match value {
            1 => ConfigSource::TopicOverride,
            2..=3 => ConfigSource::DynamicBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

/// One topic config as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// None for sensitive values.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

/// A topic's partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
    pub configs: Vec<ConfigEntry>,
}

/// The cluster's id, controller and brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    /// The brokers the cluster lists: with `fenced` known, every registered broker;
    /// otherwise only the unfenced ones (and, on Sluice, the broker that answered).
    pub brokers: Vec<BrokerInfo>,
    /// The fenced brokers among `brokers`, when the cluster says (DescribeCluster v2,
    /// `include_fenced_brokers`, Kafka 4.0+); `None` when it cannot (DescribeCluster v0-1
    /// and Metadata leave fenced brokers out).
    pub fenced: Option<Vec<i32>>,
}

/// The controller quorum (the metadata log, KRaft's `__cluster_metadata` partition 0) as
/// its leader reports it in DescribeQuorum. Offsets count metadata log entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The quorum leader (the active controller); None while there is none.
    pub leader_id: Option<i32>,
    /// The leader's epoch (Raft term).
    pub leader_epoch: i32,
    /// The first entry the leader does not report as committed. A Sluice leader reports
    /// its applied index + 1: the applied index never passes the committed one, so this
    /// may trail the commit index + 1 by the entries being applied.
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    /// Members that follow the log without voting (brokers, in Kafka and in Sluice).
    pub observers: Vec<QuorumReplica>,
}

/// One quorum member's progress as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// None when the leader does not know it yet.
    pub log_end_offset: Option<i64>,
    /// When the member last fetched, ms since the epoch (DescribeQuorum v1+; None if unknown).
    pub last_fetch_timestamp: Option<i64>,
    /// When the member last held everything the leader had (v1+; None if unknown).
    pub last_caught_up_timestamp: Option<i64>,
}

/// Which leader election [`Admin::elect_leaders`] asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Each partition's preferred replica (the first in its replica list) becomes leader,
    /// if it is in the ISR and alive.
    Preferred,
    /// A partition without a leader gets any live replica as leader, in the ISR or not:
    /// acknowledged records the new leader lacks are lost.
    Unclean,
}

impl ElectionType {
    /// The wire value of ElectLeaders' `election_type` (v1+; v0 is always preferred).
    pub fn to_wire(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    /// "preferred" or "unclean".
    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "preferred",
            ElectionType::Unclean => "unclean",
        }
    }
}

/// What an election did to one partition.
#[derive(Debug, Clone)]
pub enum ElectionOutcome {
    /// A new leader was elected.
    Elected,
    /// The partition already had the leader the election would give it (preferred: its
    /// preferred replica leads; unclean: it has a leader). ELECTION_NOT_NEEDED.
    NotNeeded,
    /// The election was refused or failed for this partition, e.g.
    /// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    Failed(Error),
}

impl ElectionOutcome {
    /// Whether this is a real failure (not "elected" and not "not needed").
    pub fn is_failure(&self) -> bool {
        matches!(self, ElectionOutcome::Failed(_))
    }
}

/// One partition's answer to [`Admin::elect_leaders`].
#[derive(Debug, Clone)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub outcome: ElectionOutcome,
}

/// One partition's change for [`Admin::alter_partition_reassignments`]: (topic, partition,
/// target replicas), where `None` cancels the partition's running reassignment.
pub type Reassignment = (String, i32, Option<Vec<i32>>);

/// What a reassignment request did to one partition.
#[derive(Debug, Clone)]
pub enum ReassignmentOutcome {
    /// The controller took the target: new replicas copy the log and join the ISR, then the
    /// removed ones are dropped. It runs in the background (or completed at once, when the
    /// target added no replica); [`Admin::list_partition_reassignments`] shows it while it
    /// runs.
    Accepted,
    /// The running reassignment was cancelled: the partition is back on its original
    /// replicas.
    Cancelled,
    /// A cancel found no reassignment running (NO_REASSIGNMENT_IN_PROGRESS): nothing to do.
    NoneInProgress,
    /// The controller refused this partition's change, e.g. INVALID_REPLICA_ASSIGNMENT
    /// (duplicate, empty or unregistered replicas), UNKNOWN_TOPIC_OR_PARTITION,
    /// INVALID_REPLICATION_FACTOR.
    Failed(Error),
}

impl ReassignmentOutcome {
    /// Whether this is a real failure (not accepted, cancelled or "none in progress").
    pub fn is_failure(&self) -> bool {
        matches!(self, ReassignmentOutcome::Failed(_))
    }
}

/// One partition's answer to [`Admin::alter_partition_reassignments`].
#[derive(Debug, Clone)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub outcome: ReassignmentOutcome,
}

/// A partition whose reassignment is running, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica while the reassignment runs: the target's, then the ones being removed.
    pub replicas: Vec<i32>,
    /// Target replicas not yet in the ISR's reach: copying the log.
    pub adding: Vec<i32>,
    /// Replicas dropped once every target replica is in the ISR.
    pub removing: Vec<i32>,
}

impl OngoingReassignment {
    /// The replica set the partition moves to: `replicas` without `removing`, in order.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

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

    /// Create a topic and wait until every partition has a leader.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<()> {
        let topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: configs.to_vec(),
        };
        let mut results = self.create_topics(std::slice::from_ref(&topic)).await?;
        let (_, result) = results.pop().expect("one result per topic");
        result?;
        let info = self.cluster.topic(name, self.timeout).await?;
        if !info.all_leaders_known() {
            tracing::warn!(
                topic = name,
                "topic created but not every partition has a leader yet"
            );
            return Ok(());
        }
        // Metadata can name a leader a moment before that broker serves the partition; a
        // ListOffsets answered by every leader shows they do (an acks=0 produce sent in
        // that moment would be dropped silently).
        if let Err(error) = self.list_offsets(name, OffsetSpec::Latest).await {
            tracing::warn!(topic = name, %error, "topic created but its leaders are not serving yet");
        }
        Ok(())
    }

    /// Create several topics in one CreateTopics request (the broker decides each on its
    /// own); one result per topic, in order. Returns when the controller has them, without
    /// waiting for leaders to serve.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<Vec<(String, Result<()>)>> {
        let request = CreateTopicsRequest::default()
            .with_topics(topics.iter().map(NewTopic::to_wire).collect())
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(false);
        let response = self.send_to_controller(request).await?;
        let results = topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_str();
                let result = match response.topics.iter().find(|t| &*t.name.0 == name) {
                    None => Err(missing_from_response("CreateTopics", name)),
                    Some(result) => match result.error_code {
                        0 => Ok(()),
                        TOPIC_ALREADY_EXISTS => Err(Error::broker(
                            format!("topic '{name}' already exists"),
                            TOPIC_ALREADY_EXISTS,
                            None,
                        )),
                        code => Err(Error::broker(
                            format!("creating topic '{name}'"),
                            code,
                            message(&result.error_message),
                        )),
                    },
                };
                (topic.name.clone(), result)
            })
            .collect();
        Ok(results)
    }

    /// The offset `spec` names in every partition of a topic, by partition.
    pub async fn list_offsets(&self, topic: &str, spec: OffsetSpec) -> Result<Vec<(i32, i64)>> {
        let info = self.cluster.topic(topic, self.timeout).await?;
        let name: Arc<str> = Arc::from(topic);
        let targets: Vec<_> = info
            .partitions
            .iter()
            .map(|p| ((name.clone(), p.partition), spec))
            .collect();
        let resolved =
            offsets::list_offsets(&self.cluster, IsolationLevel::ReadUncommitted, &targets).await?;
        let mut offsets: Vec<(i32, i64)> = resolved
            .into_iter()
            .map(|((_, partition), offset)| (partition, offset))
            .collect();
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// Delete a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let response = self
            .with_controller(|connection| async move {
                let version = connection.version(ApiKey::DeleteTopics)?;
                let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
                if version >= 6 {
                    request.topics =
                        vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
                } else {
                    request.topic_names = vec![topic_name(name)];
                }
                connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await
            })
            .await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| &*n.0 == name))
            .or(response.responses.first())
            .ok_or_else(|| missing_from_response("DeleteTopics", name))?;
        self.topic_changed(name, result.error_code, &result.error_message, || {
            format!("deleting topic '{name}'")
        })
        .await
    }

    /// Names of all topics except internal ones, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let metadata = self.cluster.refresh_all_topics().await?;
        let mut names: Vec<String> = metadata
            .topics
            .values()
            .filter(|t| !t.is_internal)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partitions (leader, replicas, ISR) and configs of a topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.cluster.add_interest([name]);
        let metadata = self.cluster.refresh().await?;
        let Some(info) = metadata.topic(name) else {
            return Err(Error::UnknownTopic(name.to_string()));
        };
        if info.error_code != 0 {
            return Err(Error::broker(
                format!("describing topic '{name}'"),
                info.error_code,
                None,
            ));
        }
        let configs = self.describe_topic_configs(name).await?;
        Ok(TopicDescription {
            name: info.name.clone(),
            is_internal: info.is_internal,
            partitions: info.partitions.clone(),
            configs,
        })
    }

    /// A topic's configs via DescribeConfigs.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = self.cluster.send_any(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| &*r.resource_name == name)
            .ok_or_else(|| missing_from_response("DescribeConfigs", name))?;
        if result.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return Err(Error::UnknownTopic(name.to_string()));
        }
        if result.error_code != 0 {
            return Err(Error::broker(
                format!("describing the configs of topic '{name}'"),
                result.error_code,
                message(&result.error_message),
            ));
        }
        let mut configs: Vec<ConfigEntry> = result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: ConfigSource::from_wire(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(configs)
    }

    /// Grow a topic to `total_partitions` partitions.
    pub async fn create_partitions(&self, name: &str, total_partitions: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total_partitions)
                .with_assignments(None)])
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(false);
        let response = self.send_to_controller(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| &*r.name.0 == name)
            .ok_or_else(|| missing_from_response("CreatePartitions", name))?;
        self.topic_changed(name, result.error_code, &result.error_message, || {
            format!("growing topic '{name}' to {total_partitions} partitions")
        })
        .await
    }

    /// Elect leaders: `election` for `partitions` (topic, partition), or for every
    /// partition of every topic when `None`. Sent to the controller (any broker forwards
    /// it), at the highest ElectLeaders version both sides speak; an unclean election needs
    /// v1 or later. Returns one result per partition, sorted by topic and partition: a
    /// partition the broker refused is an [`ElectionOutcome::Failed`] in the list, while an
    /// error for the whole request (unreachable cluster, a top-level error code) is `Err`.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionResult>> {
        let partitions = partitions.as_deref();
        let response = self
            .with_controller(|connection| async move {
                let version = connection.version(ApiKey::ElectLeaders)?;
                let request =
                    elect_leaders_request(election, partitions, self.timeout_ms(), version)?;
                connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await
            })
            .await?;
        election_results(election, partitions, &response)
    }

    /// Start, replace or cancel partition reassignments (KIP-455): each entry moves a
    /// partition to its target replicas (a longer or shorter list changes its replication
    /// factor), or with `None` cancels its running reassignment. Sent to the controller at
    /// the highest AlterPartitionReassignments version both sides speak; at v1+ the request
    /// allows replication factor changes (v0 always does). Returns once the controller has
    /// taken the change, not once the data has moved: one result per partition, sorted by
    /// topic and partition. A partition listed twice is an `Err` before anything is sent; so
    /// is a failure of the whole request (a top-level error code, no broker reachable).
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<Reassignment>,
    ) -> Result<Vec<ReassignmentResult>> {
        if reassignments.is_empty() {
            return Ok(Vec::new());
        }
        // Fails on duplicates before anything is sent; the version does not matter for that.
        alter_partition_reassignments_request(&reassignments, self.timeout_ms(), 0)?;
        let reassignments = reassignments.as_slice();
        let response = self
            .with_controller(|connection| async move {
                let version = connection.version(ApiKey::AlterPartitionReassignments)?;
                let request = alter_partition_reassignments_request(
                    reassignments,
                    self.timeout_ms(),
                    version,
                )?;
                let response = connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await?;
                // A top-level NOT_CONTROLLER is retried by `with_controller`.
                if response.error_code == NOT_CONTROLLER {
                    return Err(Error::broker(
                        "reassigning partitions",
                        NOT_CONTROLLER,
                        message(&response.error_message),
                    ));
                }
                Ok(response)
            })
            .await?;
        let results = reassignment_results(reassignments, &response)?;
        if results.iter().any(|r| {
            matches!(
                r.outcome,
                ReassignmentOutcome::Accepted | ReassignmentOutcome::Cancelled
            )
        }) {
            let _ = self.cluster.refresh().await;
        }
        Ok(results)
    }

    /// The reassignments running now, sorted by topic and partition: every partition's, or
    /// with `Some(topics)` only those topics' (a topic metadata does not know has none).
    /// Asks the controller (ListPartitionReassignments v0), whose view is the newest.
    pub async fn list_partition_reassignments(
        &self,
        topics: Option<Vec<String>>,
    ) -> Result<Vec<OngoingReassignment>> {
        let partitions = match &topics {
            None => None,
            Some(topics) => {
                self.cluster.add_interest(topics.iter().map(String::as_str));
                let metadata = self.cluster.refresh().await?;
                let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
                for topic in topics {
                    if partitions.iter().any(|(t, _)| t == topic) {
                        continue;
                    }
                    if let Some(info) = metadata.topic(topic) {
                        let indexes: Vec<i32> =
                            info.partitions.iter().map(|p| p.partition).collect();
                        if !indexes.is_empty() {
                            partitions.push((topic.clone(), indexes));
                        }
                    }
                }
                if partitions.is_empty() {
                    return Ok(Vec::new());
                }
                Some(partitions)
            }
        };
        let partitions = partitions.as_deref();
        let response = self
            .with_controller(|connection| async move {
                let version = connection.version(ApiKey::ListPartitionReassignments)?;
                let request = list_partition_reassignments_request(partitions, self.timeout_ms());
                let response = connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await?;
                if response.error_code == NOT_CONTROLLER {
                    return Err(Error::broker(
                        "listing partition reassignments",
                        NOT_CONTROLLER,
                        message(&response.error_message),
                    ));
                }
                Ok(response)
            })
            .await?;
        ongoing_reassignments(&response)
    }

    /// Cluster id, controller and brokers: DescribeCluster where the broker supports it
    /// (v2 also lists fenced brokers, flagged), else Metadata.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let connection = self.cluster.any_connection().await?;
        if let Ok(version) = connection.version(ApiKey::DescribeCluster) {
            let response = connection
                .send_versioned(
                    describe_cluster_request(version),
                    version,
                    connection.request_timeout(),
                )
                .await?;
            return cluster_description(&response, version);
        }
        let metadata = self.cluster.refresh().await?;
        Ok(ClusterDescription {
            cluster_id: metadata.cluster_id.clone(),
            controller_id: metadata.controller_id,
            brokers: metadata.brokers.values().cloned().collect(),
            fenced: None,
        })
    }

    /// The controller quorum from DescribeQuorum, or `None` when the cluster does not
    /// answer it (Kafka before 3.3, ZooKeeper mode). Each request, connecting included, is
    /// bounded by `timeout`.
    ///
    /// Asked first of `controller`, the controller DescribeCluster named: in Sluice that is
    /// the active controller, i.e. the quorum leader, so a settled cluster answers at once
    /// and no other node answers (and counts) NOT_LEADER_OR_FOLLOWER; Kafka names some
    /// broker, which forwards the request to the active controller. Only if that node
    /// cannot be asked (or `controller` is None) is any broker asked; a Sluice broker that
    /// is not the quorum leader answers NOT_LEADER_OR_FOLLOWER with the leader it knows,
    /// which is asked next. When that leader does not answer, or no leader is
    /// known, the error is [`Error::NoQuorumLeader`], saying which node was named by whom.
    pub async fn describe_quorum(
        &self,
        controller: Option<i32>,
        timeout: Duration,
    ) -> Result<Option<QuorumDescription>> {
        let (mut search, mut target) = QuorumSearch::start(controller);
        loop {
            let step = match self.ask_for_quorum(target, timeout).await {
                Ok((_, QuorumAnswer::Described(quorum))) => return Ok(Some(quorum)),
                Ok((_, QuorumAnswer::Unsupported)) => return Ok(None),
                Ok((_, QuorumAnswer::Failed(error))) => return Err(error),
                Ok((responder, QuorumAnswer::AskLeader(leader, error))) => {
                    search.not_leader(responder, leader, error)
                }
                Err(error) if error.is_retriable() => search.unreachable(target, error),
                Err(error) => return Err(error),
            };
            target = match step {
                QuorumStep::Ask(next) => next,
                QuorumStep::Fail(error) => return Err(error),
            };
        }
    }

    /// One DescribeQuorum to `target`, bounded by `timeout`, with who answered.
    async fn ask_for_quorum(
        &self,
        target: QuorumTarget,
        timeout: Duration,
    ) -> Result<(Responder, QuorumAnswer)> {
        let exchange = async {
            let connection = match target {
                QuorumTarget::Node(id) => self.cluster.broker_connection(id).await?,
                QuorumTarget::AnyBroker => self.cluster.any_connection().await?,
            };
            let responder = match target {
                QuorumTarget::Node(id) => Responder::Broker(id),
                QuorumTarget::AnyBroker => self.responder(&connection),
            };
            let version = match connection.version(ApiKey::DescribeQuorum) {
                Ok(version) => version,
                Err(Error::UnsupportedVersion { .. }) => {
                    return Ok((responder, QuorumAnswer::Unsupported))
                }
                Err(error) => return Err(error),
            };
            let response = connection
                .send_versioned(describe_quorum_request(), version, timeout)
                .await?;
            Ok((responder, quorum_description(&response)))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout {
                broker: target.to_string(),
                api: ApiKey::DescribeQuorum,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// The broker behind `connection`, by id where metadata lists its address.
    fn responder(&self, connection: &Connection) -> Responder {
        let address = connection.broker();
        self.cluster
            .metadata()
            .brokers
            .values()
            .find(|b| b.address() == address)
            .map_or_else(
                || Responder::Address(address.to_string()),
                |b| Responder::Broker(b.id),
            )
    }

    /// Each partition's latest offset as broker `broker`'s own replica has it: its log end
    /// offset (ListOffsets with Kafka's debugging replica id -2, which any replica answers
    /// from its local log, leader or follower). One request; one result per partition, in
    /// order (a partition the broker does not host is that partition's error).
    pub async fn replica_log_end_offsets(
        &self,
        broker: i32,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<i64>>> {
        self.latest_offsets_on(broker, DEBUGGING_REPLICA_ID, partitions)
            .await
    }

    /// Each partition's high watermark from broker `broker`, which must lead it: the latest
    /// offset a consumer sees (ListOffsets, replica id -1, read uncommitted). One request;
    /// one result per partition, in order.
    pub async fn high_watermarks(
        &self,
        broker: i32,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<i64>>> {
        self.latest_offsets_on(broker, CONSUMER_REPLICA_ID, partitions)
            .await
    }

    async fn latest_offsets_on(
        &self,
        broker: i32,
        replica_id: i32,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<i64>>> {
        let connection = self.cluster.broker_connection(broker).await?;
        let response = connection
            .send(latest_offsets_request(replica_id, partitions))
            .await?;
        Ok(latest_offsets(&response, partitions))
    }

    /// The timestamp of the record at `offset` (or the first one after it, if `offset` is
    /// a gap) in a partition, read from broker `broker` as a consumer reads it (so only
    /// below the high watermark): `None` when there is no such record yet. Fetches at most
    /// the batch holding it.
    pub async fn record_timestamp(
        &self,
        broker: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<i64>> {
        let connection = self.cluster.broker_connection(broker).await?;
        let version = connection.version(ApiKey::Fetch)?;
        let response = connection
            .send_versioned(
                single_record_fetch(topic, partition, offset),
                version,
                connection.request_timeout(),
            )
            .await?;
        let context = || format!("reading {topic}-{partition} at offset {offset}");
        if response.error_code != 0 {
            return Err(Error::broker(context(), response.error_code, None));
        }
        let data = response
            .responses
            .iter()
            .filter(|t| &*t.topic.0 == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing_from_response("Fetch", topic))?;
        if data.error_code != 0 {
            return Err(Error::broker(context(), data.error_code, None));
        }
        let Some(records) = &data.records else {
            return Ok(None);
        };
        timestamp_at(records, offset).map_err(|source| Error::Protocol {
            broker: format!("broker {broker} ({topic}-{partition})"),
            source,
        })
    }

    /// The outcome of a change to topic `name` from its result in the controller's answer:
    /// on success the metadata cache is refreshed (a failed refresh only leaves a stale
    /// entry); an unknown topic is [`Error::UnknownTopic`]; any other code is a broker
    /// error while `doing` the change.
    async fn topic_changed(
        &self,
        name: &str,
        error_code: i16,
        error_message: &Option<StrBytes>,
        doing: impl FnOnce() -> String,
    ) -> Result<()> {
        match error_code {
            0 => {
                let _ = self.cluster.refresh().await;
                Ok(())
            }
            UNKNOWN_TOPIC_OR_PARTITION => Err(Error::UnknownTopic(name.to_string())),
            code => Err(Error::broker(doing(), code, message(error_message))),
        }
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

/// The ElectLeaders request for `version`: the partitions grouped by topic (in order of
/// first mention, duplicates dropped), or null for all. An unclean election cannot be sent
/// at v0, which has no `election_type` (it always means preferred).
fn elect_leaders_request(
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
    timeout_ms: i32,
    version: i16,
) -> Result<ElectLeadersRequest> {
    if version < 1 && election != ElectionType::Preferred {
        return Err(Error::Unsupported(format!(
            "the broker speaks only ElectLeaders v{version}, which has no unclean election"
        )));
    }
    let topic_partitions = partitions.map(|partitions| {
        let mut topics: Vec<TopicPartitions> = Vec::new();
        for (topic, partition) in partitions {
            let index = match topics.iter().position(|t| &*t.topic.0 == topic.as_str()) {
                Some(index) => index,
                None => {
                    topics.push(TopicPartitions::default().with_topic(topic_name(topic)));
                    topics.len() - 1
                }
            };
            if !topics[index].partitions.contains(partition) {
                topics[index].partitions.push(*partition);
            }
        }
        topics
    });
    let mut request = ElectLeadersRequest::default()
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(timeout_ms);
    if version >= 1 {
        request = request.with_election_type(election.to_wire());
    }
    Ok(request)
}

/// Per-partition outcomes of an ElectLeaders response, sorted. A top-level error fails the
/// whole call; a requested partition the response leaves out is a failure of its own.
fn election_results(
    election: ElectionType,
    requested: Option<&[(String, i32)]>,
    response: &ElectLeadersResponse,
) -> Result<Vec<ElectionResult>> {
    let doing = |topic: &str, partition: i32| {
        format!(
            "{} leader election for {topic}-{partition}",
            election.name()
        )
    };
    if response.error_code != 0 {
        return Err(Error::broker(
            format!("{} leader election", election.name()),
            response.error_code,
            None,
        ));
    }
    let mut results: BTreeMap<(String, i32), ElectionOutcome> = BTreeMap::new();
    for topic in &response.replica_election_results {
        for p in &topic.partition_result {
            let name = topic.topic.0.to_string();
            let outcome = match p.error_code {
                0 => ElectionOutcome::Elected,
                ELECTION_NOT_NEEDED => ElectionOutcome::NotNeeded,
                code => ElectionOutcome::Failed(Error::broker(
                    doing(&name, p.partition_id),
                    code,
                    message(&p.error_message).filter(|m| !restates_error_name(m, code)),
                )),
            };
            results.insert((name, p.partition_id), outcome);
        }
    }
    for (topic, partition) in requested.unwrap_or_default() {
        results
            .entry((topic.clone(), *partition))
            .or_insert_with(|| {
                ElectionOutcome::Failed(partition_missing_from_response(
                    "ElectLeaders",
                    &doing(topic, *partition),
                ))
            });
    }
    Ok(results
        .into_iter()
        .map(|((topic, partition), outcome)| ElectionResult {
            topic,
            partition,
            outcome,
        })
        .collect())
}

/// The AlterPartitionReassignments request for `version`: partitions grouped by topic in
/// order of first mention. A partition listed twice is an error (which target would win is
/// not obvious). `allow_replication_factor_change` is set (true) only at v1+: v0 has no such
/// field (it always allows the change) and kafka-protocol refuses to encode a field a
/// version lacks unless it holds the default, true.
fn alter_partition_reassignments_request(
    reassignments: &[Reassignment],
    timeout_ms: i32,
    version: i16,
) -> Result<AlterPartitionReassignmentsRequest> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, partition, replicas) in reassignments {
        let index = match topics.iter().position(|t| &*t.name.0 == topic.as_str()) {
            Some(index) => index,
            None => {
                topics.push(ReassignableTopic::default().with_name(topic_name(topic)));
                topics.len() - 1
            }
        };
        if topics[index]
            .partitions
            .iter()
            .any(|p| p.partition_index == *partition)
        {
            return Err(Error::InvalidConfig(format!(
                "partition {topic}-{partition} is listed twice in one reassignment request"
            )));
        }
        topics[index].partitions.push(
            ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(
                    replicas
                        .as_ref()
                        .map(|ids| ids.iter().copied().map(BrokerId).collect()),
                ),
        );
    }
    let mut request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(topics);
    if version >= 1 {
        request = request.with_allow_replication_factor_change(true);
    }
    Ok(request)
}

/// Per-partition outcomes of an AlterPartitionReassignments response, sorted. A top-level
/// error fails the whole call; a requested partition the response leaves out is a failure
/// of its own.
fn reassignment_results(
    requested: &[Reassignment],
    response: &AlterPartitionReassignmentsResponse,
) -> Result<Vec<ReassignmentResult>> {
    if response.error_code != 0 {
        return Err(Error::broker(
            "reassigning partitions",
            response.error_code,
            message(&response.error_message),
        ));
    }
    let doing = |topic: &str, partition: i32| {
        let target = requested
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, target)| target.clone());
        match target {
            Some(None) => format!("cancelling the reassignment of {topic}-{partition}"),
            Some(Some(replicas)) => format!("reassigning {topic}-{partition} to {replicas:?}"),
            None => format!("reassigning {topic}-{partition}"),
        }
    };
    let is_cancel = |topic: &str, partition: i32| {
        requested
            .iter()
            .any(|(t, p, target)| t == topic && *p == partition && target.is_none())
    };
    let mut results: BTreeMap<(String, i32), ReassignmentOutcome> = BTreeMap::new();
    for topic in &response.responses {
        let name = topic.name.0.to_string();
        for p in &topic.partitions {
            let outcome = match p.error_code {
                0 if is_cancel(&name, p.partition_index) => ReassignmentOutcome::Cancelled,
                0 => ReassignmentOutcome::Accepted,
                NO_REASSIGNMENT_IN_PROGRESS if is_cancel(&name, p.partition_index) => {
                    ReassignmentOutcome::NoneInProgress
                }
                code => ReassignmentOutcome::Failed(Error::broker(
                    doing(&name, p.partition_index),
                    code,
                    message(&p.error_message).filter(|m| !restates_error_name(m, code)),
                )),
            };
            results.insert((name.clone(), p.partition_index), outcome);
        }
    }
    for (topic, partition, _) in requested {
        results
            .entry((topic.clone(), *partition))
            .or_insert_with(|| {
                ReassignmentOutcome::Failed(partition_missing_from_response(
                    "AlterPartitionReassignments",
                    &doing(topic, *partition),
                ))
            });
    }
    Ok(results
        .into_iter()
        .map(|((topic, partition), outcome)| ReassignmentResult {
            topic,
            partition,
            outcome,
        })
        .collect())
}

/// The ListPartitionReassignments request: these (topic, partitions), or null for all.
fn list_partition_reassignments_request(
    partitions: Option<&[(String, Vec<i32>)]>,
    timeout_ms: i32,
) -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(partitions.map(|partitions| {
            partitions
                .iter()
                .map(|(topic, indexes)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(indexes.clone())
                })
                .collect()
        }))
}

/// The running reassignments of a ListPartitionReassignments response, sorted by topic and
/// partition; a top-level error fails the call.
fn ongoing_reassignments(
    response: &ListPartitionReassignmentsResponse,
) -> Result<Vec<OngoingReassignment>> {
    if response.error_code != 0 {
        return Err(Error::broker(
            "listing partition reassignments",
            response.error_code,
            message(&response.error_message),
        ));
    }
    let ids = |list: &[BrokerId]| list.iter().map(|id| id.0).collect::<Vec<i32>>();
    let mut ongoing: Vec<OngoingReassignment> = response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| OngoingReassignment {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect();
    ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(ongoing)
}

/// The DescribeCluster request for `version`: client endpoints, and from v2 the fenced
/// brokers too (kafka-protocol refuses to encode the flag at versions that lack it).
fn describe_cluster_request(version: i16) -> DescribeClusterRequest {
    let mut request = DescribeClusterRequest::default().with_endpoint_type(1);
    if version >= 2 {
        request = request.with_include_fenced_brokers(true);
    }
    request
}

/// The cluster as a DescribeCluster response at `version` describes it.
fn cluster_description(
    response: &DescribeClusterResponse,
    version: i16,
) -> Result<ClusterDescription> {
    if response.error_code != 0 {
        return Err(Error::broker(
            "describing the cluster",
            response.error_code,
            message(&response.error_message),
        ));
    }
    let mut brokers: Vec<BrokerInfo> = response
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let fenced = (version >= 2).then(|| {
        let mut ids: Vec<i32> = response
            .brokers
            .iter()
            .filter(|b| b.is_fenced)
            .map(|b| b.broker_id.0)
            .collect();
        ids.sort_unstable();
        ids
    });
    Ok(ClusterDescription {
        cluster_id: Some(response.cluster_id.to_string()),
        controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
        brokers,
        fenced,
    })
}

/// DescribeQuorum for the metadata log, `__cluster_metadata` partition 0.
fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(topic_name(METADATA_TOPIC))
    .with_partitions(vec![
        describe_quorum_request::PartitionData::default().with_partition_index(0)
    ])])
}

/// What a DescribeQuorum answer means for the caller.
#[derive(Debug)]
enum QuorumAnswer {
    Described(QuorumDescription),
    /// This broker is not the quorum leader: ask the one named (if any).
    AskLeader(Option<i32>, Error),
    /// The broker does not speak DescribeQuorum.
    Unsupported,
    Failed(Error),
}

/// Most DescribeQuorum requests one [`Admin::describe_quorum`] makes: the controller, any
/// broker, the leader it names, and the leader that one names (leadership just moved).
const QUORUM_REQUESTS_MAX: usize = 4;

/// Where a DescribeQuorum goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuorumTarget {
    /// A node by id: the controller DescribeCluster named, or the leader a broker named.
    Node(i32),
    /// Any live broker.
    AnyBroker,
}

impl std::fmt::Display for QuorumTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumTarget::Node(id) => write!(f, "node {id}"),
            QuorumTarget::AnyBroker => write!(f, "any broker"),
        }
    }
}

/// The broker that answered a DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Responder {
    Broker(i32),
    /// A broker metadata does not list by this address (a bootstrap address).
    Address(String),
}

impl std::fmt::Display for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Responder::Broker(id) => write!(f, "broker {id}"),
            Responder::Address(address) => write!(f, "the broker at {address}"),
        }
    }
}

/// What [`Admin::describe_quorum`] does after an answer.
#[derive(Debug)]
enum QuorumStep {
    Ask(QuorumTarget),
    Fail(Error),
}

/// The order in which [`Admin::describe_quorum`] asks, as a state machine over the answers
/// (so it is tested without a cluster): the controller first, any broker if the controller
/// cannot be asked, then the leader a broker names. It fails, saying what happened, when
/// the leader named cannot be asked or no leader is known.
#[derive(Debug)]
struct QuorumSearch {
    /// Requests made so far.
    requests: usize,
    any_broker_asked: bool,
    /// Nodes that could not be asked, with why.
    unreachable: BTreeMap<i32, Error>,
    /// Nodes that answered NOT_LEADER_OR_FOLLOWER.
    not_leaders: Vec<i32>,
    /// The leader last named, and by whom.
    named: Option<(i32, Responder)>,
}

impl QuorumSearch {
    /// The search and its first target: `controller` if known, else any broker.
    fn start(controller: Option<i32>) -> (QuorumSearch, QuorumTarget) {
        let search = QuorumSearch {
            requests: 1,
            any_broker_asked: controller.is_none(),
            unreachable: BTreeMap::new(),
            not_leaders: Vec::new(),
            named: None,
        };
        let target = controller.map_or(QuorumTarget::AnyBroker, QuorumTarget::Node);
        (search, target)
    }

    /// `target` could not be asked (not listed, refused, silent past the timeout).
    fn unreachable(&mut self, target: QuorumTarget, error: Error) -> QuorumStep {
        let QuorumTarget::Node(id) = target else {
            // Every broker was tried.
            return QuorumStep::Fail(error);
        };
        if let Some((leader, named_by)) = &self.named {
            if *leader == id {
                return QuorumStep::Fail(leader_did_not_answer(id, named_by, &error));
            }
        }
        self.unreachable.insert(id, error.clone());
        if self.any_broker_asked {
            return QuorumStep::Fail(error);
        }
        self.ask(QuorumTarget::AnyBroker, error)
    }

    /// `responder` is not the quorum leader; it names `leader`, if it knows one.
    fn not_leader(
        &mut self,
        responder: Responder,
        leader: Option<i32>,
        error: Error,
    ) -> QuorumStep {
        if let Responder::Broker(id) = responder {
            self.not_leaders.push(id);
        }
        let Some(leader) = leader else {
            return QuorumStep::Fail(Error::NoQuorumLeader(format!(
                "{responder} knows no quorum leader"
            )));
        };
        if let Some(why) = self.unreachable.get(&leader) {
            return QuorumStep::Fail(leader_did_not_answer(leader, &responder, why));
        }
        if self.not_leaders.contains(&leader) {
            return QuorumStep::Fail(Error::NoQuorumLeader(format!(
                "{responder} names node {leader} the quorum leader, but node {leader} \
                 answered that it is not ({})",
                kafka_error_name(NOT_LEADER_OR_FOLLOWER)
            )));
        }
        let gave_up = Error::NoQuorumLeader(format!(
            "no node asked answers as the quorum leader ({responder} names node {leader}: {error})"
        ));
        self.named = Some((leader, responder));
        self.ask(QuorumTarget::Node(leader), gave_up)
    }

    /// Ask `target` next, unless the requests are used up (then fail with `error`).
    fn ask(&mut self, target: QuorumTarget, error: Error) -> QuorumStep {
        if self.requests >= QUORUM_REQUESTS_MAX {
            return QuorumStep::Fail(error);
        }
        self.requests += 1;
        self.any_broker_asked |= target == QuorumTarget::AnyBroker;
        QuorumStep::Ask(target)
    }
}

/// The error when the quorum leader `leader`, named by `named_by`, could not be asked.
fn leader_did_not_answer(leader: i32, named_by: &Responder, why: &Error) -> Error {
    Error::NoQuorumLeader(format!(
        "the quorum leader (node {leader}, named by {named_by}) did not answer ({why})"
    ))
}

fn quorum_description(response: &DescribeQuorumResponse) -> QuorumAnswer {
    let doing = "describing the controller quorum";
    if response.error_code != 0 {
        return QuorumAnswer::Failed(Error::broker(
            doing,
            response.error_code,
            message(&response.error_message),
        ));
    }
    let Some(partition) = response
        .topics
        .iter()
        .filter(|t| &*t.topic_name.0 == METADATA_TOPIC)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
    else {
        return QuorumAnswer::Failed(missing_from_response("DescribeQuorum", METADATA_TOPIC));
    };
    let leader = (partition.leader_id.0 >= 0).then_some(partition.leader_id.0);
    match partition.error_code {
        0 => {}
        NOT_LEADER_OR_FOLLOWER => {
            return QuorumAnswer::AskLeader(
                leader,
                Error::broker(
                    doing,
                    NOT_LEADER_OR_FOLLOWER,
                    message(&partition.error_message),
                ),
            )
        }
        code => {
            return QuorumAnswer::Failed(Error::broker(
                doing,
                code,
                message(&partition.error_message),
            ))
        }
    }
    let known = |value: i64| (value >= 0).then_some(value);
    let replicas = |list: &[describe_quorum_response::ReplicaState]| {
        let mut replicas: Vec<QuorumReplica> = list
            .iter()
            .map(|r| QuorumReplica {
                id: r.replica_id.0,
                log_end_offset: known(r.log_end_offset),
                last_fetch_timestamp: known(r.last_fetch_timestamp),
                last_caught_up_timestamp: known(r.last_caught_up_timestamp),
            })
            .collect();
        replicas.sort_by_key(|r| r.id);
        replicas
    };
    QuorumAnswer::Described(QuorumDescription {
        leader_id: leader,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: replicas(&partition.current_voters),
        observers: replicas(&partition.observers),
    })
}

/// ListOffsets "latest" for `partitions` as `replica_id` asks it.
fn latest_offsets_request(replica_id: i32, partitions: &[(String, i32)]) -> ListOffsetsRequest {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for (topic, partition) in partitions {
        let entry = ListOffsetsPartition::default()
            .with_partition_index(*partition)
            .with_current_leader_epoch(-1)
            .with_timestamp(LATEST_TIMESTAMP);
        match topics.iter_mut().find(|t| &*t.name.0 == topic.as_str()) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_isolation_level(0)
        .with_topics(topics)
}

/// One result per asked partition, in order, from a ListOffsets response.
fn latest_offsets(
    response: &ListOffsetsResponse,
    partitions: &[(String, i32)],
) -> Vec<Result<i64>> {
    partitions
        .iter()
        .map(|(topic, partition)| {
            let found = response
                .topics
                .iter()
                .filter(|t| &*t.name.0 == topic.as_str())
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == *partition);
            let context = || format!("looking up the latest offset of {topic}-{partition}");
            match found {
                Some(p) if p.error_code == 0 => Ok(p.offset),
                Some(p) => Err(Error::broker(context(), p.error_code, None)),
                None => Err(Error::broker(
                    context(),
                    -1,
                    Some("the partition is missing from the response".into()),
                )),
            }
        })
        .collect()
}

/// A sessionless consumer Fetch of one partition from `offset`, returning at once. Every
/// field left at its default exists in every Fetch version the client speaks.
fn single_record_fetch(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(CONSUMER_REPLICA_ID))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(SINGLE_RECORD_FETCH_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(SINGLE_RECORD_FETCH_BYTES)])])
}

/// The timestamp of the first record at or after `offset` in fetched batches.
fn timestamp_at(records: &Bytes, offset: i64) -> std::result::Result<Option<i64>, ProtocolError> {
    Ok(decode_records(records)?
        .into_iter()
        .find(|r| r.offset >= offset)
        .map(|r| r.timestamp))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_map_from_the_wire() {
        assert_eq!(ConfigSource::from_wire(1), ConfigSource::TopicOverride);
        assert_eq!(ConfigSource::from_wire(5), ConfigSource::Default);
        assert_eq!(ConfigSource::from_wire(9), ConfigSource::Other(9));
    }

    use bytes::BytesMut;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    use crate::connection::{assert_encodes_at_every_client_version, client_versions};

    fn partitions(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    /// Encode at `version` and decode as a broker would.
    fn round_trip(request: &ElectLeadersRequest, version: i16) -> ElectLeadersRequest {
        let mut buf = BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        ElectLeadersRequest::decode(&mut buf.freeze(), version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"))
    }

    #[test]
    fn preferred_election_encodes_at_every_version_the_client_speaks() {
        let (min, max) = client_versions(ApiKey::ElectLeaders).expect("spoken");
        assert_eq!((min, max), (0, 2));
        let wanted = partitions(&[("a", 0), ("b", 2), ("a", 1), ("a", 0)]);
        for version in min..=max {
            let request =
                elect_leaders_request(ElectionType::Preferred, Some(&wanted), 5_000, version)
                    .unwrap();
            // The same request serves whichever version is negotiated.
            assert_encodes_at_every_client_version(&request, ApiKey::ElectLeaders);
            let decoded = round_trip(&request, version);
            assert_eq!(decoded.election_type, 0, "v{version}");
            assert_eq!(decoded.timeout_ms, 5_000);
            let topics: Vec<(String, Vec<i32>)> = decoded
                .topic_partitions
                .expect("a list, not null")
                .iter()
                .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
                .collect();
            // Grouped by topic in order of first mention, the duplicate dropped.
            assert_eq!(
                topics,
                vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![2])],
                "v{version}"
            );
        }
    }

    #[test]
    fn all_partitions_is_a_null_list_at_every_version() {
        for version in 0..=2 {
            let request =
                elect_leaders_request(ElectionType::Preferred, None, 1_000, version).unwrap();
            assert_eq!(round_trip(&request, version).topic_partitions, None);
        }
        let request = elect_leaders_request(ElectionType::Unclean, None, 1_000, 2).unwrap();
        let decoded = round_trip(&request, 2);
        assert_eq!(decoded.topic_partitions, None);
        assert_eq!(decoded.election_type, 1);
    }

    #[test]
    fn unclean_election_needs_version_one() {
        let wanted = partitions(&[("t", 3)]);
        for version in 1..=2 {
            let request =
                elect_leaders_request(ElectionType::Unclean, Some(&wanted), 1_000, version)
                    .unwrap();
            assert_eq!(round_trip(&request, version).election_type, 1, "v{version}");
        }
        let error =
            elect_leaders_request(ElectionType::Unclean, Some(&wanted), 1_000, 0).unwrap_err();
        assert!(matches!(error, Error::Unsupported(_)), "{error}");
        // kafka-protocol itself refuses election_type at v0, which is why the client checks.
        let forced = ElectLeadersRequest::default().with_election_type(1);
        assert!(forced.encode(&mut BytesMut::new(), 0).is_err());
    }

    fn partition_result(partition: i32, code: i16, message: Option<&str>) -> PartitionResult {
        PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(|m| StrBytes::from_string(m.to_string())))
    }

    #[test]
    fn election_results_sort_and_classify_every_partition() {
        let response = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default()
                .with_topic(topic_name("b"))
                .with_partition_result(vec![partition_result(0, 80, Some("not in ISR"))]),
            ReplicaElectionResult::default()
                .with_topic(topic_name("d"))
                .with_partition_result(vec![partition_result(
                    0,
                    83,
                    Some("EligibleLeadersNotAvailable"),
                )]),
            ReplicaElectionResult::default()
                .with_topic(topic_name("a"))
                .with_partition_result(vec![
                    partition_result(1, ELECTION_NOT_NEEDED, None),
                    partition_result(0, 0, None),
                ]),
        ]);
        let requested = partitions(&[("a", 0), ("a", 1), ("b", 0), ("c", 7), ("d", 0)]);
        let results =
            election_results(ElectionType::Preferred, Some(&requested), &response).unwrap();
        let summary: Vec<(String, i32, String)> = results
            .iter()
            .map(|r| {
                let outcome = match &r.outcome {
                    ElectionOutcome::Elected => "elected".to_string(),
                    ElectionOutcome::NotNeeded => "not needed".to_string(),
                    ElectionOutcome::Failed(e) => e.to_string(),
                };
                (r.topic.clone(), r.partition, outcome)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), 0, "elected".into()),
                ("a".into(), 1, "not needed".into()),
                (
                    "b".into(),
                    0,
                    "preferred leader election for b-0: not in ISR (PREFERRED_LEADER_NOT_AVAILABLE)"
                        .into()
                ),
                (
                    "c".into(),
                    7,
                    "preferred leader election for c-7: the ElectLeaders response does not mention it (UNKNOWN_SERVER_ERROR)"
                        .into()
                ),
                (
                    "d".into(),
                    0,
                    // A message that only restates the code's name is dropped.
                    "preferred leader election for d-0 (ELIGIBLE_LEADERS_NOT_AVAILABLE)".into()
                ),
            ]
        );
        assert_eq!(results.iter().filter(|r| r.outcome.is_failure()).count(), 3);
    }

    #[test]
    fn a_top_level_error_fails_the_whole_election() {
        let response = ElectLeadersResponse::default().with_error_code(42);
        let error = election_results(ElectionType::Unclean, None, &response).unwrap_err();
        assert_eq!(error.kafka_code(), Some(42));
        assert!(
            error.to_string().starts_with("unclean leader election"),
            "{error}"
        );
    }

    fn reassignments(list: &[(&str, i32, Option<&[i32]>)]) -> Vec<Reassignment> {
        list.iter()
            .map(|(t, p, r)| (t.to_string(), *p, r.map(<[i32]>::to_vec)))
            .collect()
    }

    fn decode_alter(
        request: &AlterPartitionReassignmentsRequest,
        version: i16,
    ) -> AlterPartitionReassignmentsRequest {
        let mut buf = BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        AlterPartitionReassignmentsRequest::decode(&mut buf.freeze(), version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"))
    }

    #[test]
    fn reassignment_requests_encode_at_every_version_the_client_speaks() {
        let (min, max) = client_versions(ApiKey::AlterPartitionReassignments).expect("spoken");
        assert_eq!((min, max), (0, 1));
        let wanted = reassignments(&[
            ("a", 0, Some(&[2, 3, 4])),
            ("b", 1, None),
            ("a", 2, Some(&[1])),
        ]);
        for version in min..=max {
            let request = alter_partition_reassignments_request(&wanted, 7_000, version).unwrap();
            let decoded = decode_alter(&request, version);
            assert_eq!(decoded.timeout_ms, 7_000, "v{version}");
            // v1 carries the flag, set; v0 has no field and the broker reads it as true.
            assert!(decoded.allow_replication_factor_change, "v{version}");
            type Targets = Vec<(i32, Option<Vec<i32>>)>;
            let topics: Vec<(String, Targets)> = decoded
                .topics
                .iter()
                .map(|t| {
                    (
                        t.name.0.to_string(),
                        t.partitions
                            .iter()
                            .map(|p| {
                                (
                                    p.partition_index,
                                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                                )
                            })
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(
                topics,
                vec![
                    (
                        "a".to_string(),
                        vec![(0, Some(vec![2, 3, 4])), (2, Some(vec![1]))]
                    ),
                    // A cancel is a null replica list.
                    ("b".to_string(), vec![(1, None)]),
                ],
                "v{version}"
            );
        }
        // The v1 request says "allow" on the wire: the flag byte is there and true.
        let v1 = alter_partition_reassignments_request(&wanted, 7_000, 1).unwrap();
        let mut with_flag = BytesMut::new();
        v1.encode(&mut with_flag, 1).unwrap();
        let v0 = alter_partition_reassignments_request(&wanted, 7_000, 0).unwrap();
        let mut without_flag = BytesMut::new();
        v0.encode(&mut without_flag, 0).unwrap();
        assert_eq!(with_flag.len(), without_flag.len() + 1);
        assert_eq!(with_flag[4], 1, "timeout (4 bytes), then the flag");
    }

    #[test]
    fn kafka_protocol_refuses_the_flag_a_version_lacks() {
        // Why the client leaves the field alone at v0: a non-default value cannot encode.
        let forced = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(false);
        assert!(forced.encode(&mut BytesMut::new(), 0).is_err());
        assert!(forced.encode(&mut BytesMut::new(), 1).is_ok());
    }

    #[test]
    fn a_partition_listed_twice_is_refused_before_sending() {
        let twice = reassignments(&[("a", 0, Some(&[1, 2])), ("a", 0, None)]);
        let error = alter_partition_reassignments_request(&twice, 1_000, 1).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
        assert!(error.to_string().contains("a-0"), "{error}");
    }

    fn reassignment_partition(
        partition: i32,
        code: i16,
        message: Option<&str>,
    ) -> kafka_protocol::messages::alter_partition_reassignments_response::ReassignablePartitionResponse
    {
        kafka_protocol::messages::alter_partition_reassignments_response::ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message.map(|m| StrBytes::from_string(m.to_string())))
    }

    fn outcome_text(outcome: &ReassignmentOutcome) -> String {
        match outcome {
            ReassignmentOutcome::Accepted => "accepted".to_string(),
            ReassignmentOutcome::Cancelled => "cancelled".to_string(),
            ReassignmentOutcome::NoneInProgress => "none in progress".to_string(),
            ReassignmentOutcome::Failed(e) => e.to_string(),
        }
    }

    #[test]
    fn reassignment_results_sort_and_classify_every_partition() {
        use kafka_protocol::messages::alter_partition_reassignments_response::ReassignableTopicResponse;
        let response = AlterPartitionReassignmentsResponse::default().with_responses(vec![
            ReassignableTopicResponse::default()
                .with_name(topic_name("b"))
                .with_partitions(vec![
                    reassignment_partition(0, 39, Some("broker 9 is not registered")),
                    reassignment_partition(1, NO_REASSIGNMENT_IN_PROGRESS, None),
                    reassignment_partition(2, 0, None),
                ]),
            ReassignableTopicResponse::default()
                .with_name(topic_name("a"))
                .with_partitions(vec![
                    reassignment_partition(0, 0, None),
                    reassignment_partition(1, 3, Some("topic 'a' has no partition 1")),
                    reassignment_partition(2, NO_REASSIGNMENT_IN_PROGRESS, None),
                ]),
        ]);
        let requested = reassignments(&[
            ("b", 0, Some(&[9])),
            ("b", 1, None),
            ("b", 2, None),
            ("a", 0, Some(&[1, 2, 3])),
            ("a", 1, Some(&[1])),
            // NO_REASSIGNMENT_IN_PROGRESS for a target (not a cancel) is a failure.
            ("a", 2, Some(&[2])),
            ("c", 0, Some(&[1])),
        ]);
        let results = reassignment_results(&requested, &response).unwrap();
        let summary: Vec<(String, i32, String)> = results
            .iter()
            .map(|r| (r.topic.clone(), r.partition, outcome_text(&r.outcome)))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), 0, "accepted".into()),
                (
                    "a".into(),
                    1,
                    "reassigning a-1 to [1]: topic 'a' has no partition 1 (UNKNOWN_TOPIC_OR_PARTITION)"
                        .into()
                ),
                (
                    "a".into(),
                    2,
                    "reassigning a-2 to [2] (NO_REASSIGNMENT_IN_PROGRESS)".into()
                ),
                (
                    "b".into(),
                    0,
                    "reassigning b-0 to [9]: broker 9 is not registered (INVALID_REPLICA_ASSIGNMENT)"
                        .into()
                ),
                ("b".into(), 1, "none in progress".into()),
                ("b".into(), 2, "cancelled".into()),
                (
                    "c".into(),
                    0,
                    "reassigning c-0 to [1]: the AlterPartitionReassignments response does not mention it (UNKNOWN_SERVER_ERROR)"
                        .into()
                ),
            ]
        );
        assert_eq!(results.iter().filter(|r| r.outcome.is_failure()).count(), 4);
    }

    #[test]
    fn a_top_level_error_fails_the_whole_reassignment() {
        let response = AlterPartitionReassignmentsResponse::default()
            .with_error_code(NOT_CONTROLLER)
            .with_error_message(Some(StrBytes::from_static_str("moved")));
        let error = reassignment_results(&reassignments(&[("a", 0, None)]), &response).unwrap_err();
        assert_eq!(error.kafka_code(), Some(NOT_CONTROLLER));
        assert_eq!(
            error.to_string(),
            "reassigning partitions: moved (NOT_CONTROLLER)"
        );
    }

    #[test]
    fn list_requests_encode_a_null_or_explicit_partition_list() {
        let (min, max) = client_versions(ApiKey::ListPartitionReassignments).expect("spoken");
        assert_eq!((min, max), (0, 0));
        let decode = |request: &ListPartitionReassignmentsRequest| {
            assert_encodes_at_every_client_version(request, ApiKey::ListPartitionReassignments);
            let mut buf = BytesMut::new();
            request.encode(&mut buf, 0).unwrap();
            ListPartitionReassignmentsRequest::decode(&mut buf.freeze(), 0).unwrap()
        };
        let all = decode(&list_partition_reassignments_request(None, 3_000));
        assert_eq!(all.topics, None);
        assert_eq!(all.timeout_ms, 3_000);
        let some = decode(&list_partition_reassignments_request(
            Some(&[("t".to_string(), vec![0, 1]), ("u".to_string(), vec![4])]),
            3_000,
        ));
        let topics: Vec<(String, Vec<i32>)> = some
            .topics
            .expect("a list")
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(
            topics,
            vec![("t".to_string(), vec![0, 1]), ("u".to_string(), vec![4])]
        );
    }

    #[test]
    fn ongoing_reassignments_are_sorted_with_their_targets() {
        use kafka_protocol::messages::list_partition_reassignments_response::{
            OngoingPartitionReassignment, OngoingTopicReassignment,
        };
        let ids = |list: &[i32]| list.iter().copied().map(BrokerId).collect::<Vec<_>>();
        let partition = |index: i32, replicas: &[i32], adding: &[i32], removing: &[i32]| {
            OngoingPartitionReassignment::default()
                .with_partition_index(index)
                .with_replicas(ids(replicas))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing))
        };
        let response = ListPartitionReassignmentsResponse::default().with_topics(vec![
            OngoingTopicReassignment::default()
                .with_name(topic_name("z"))
                .with_partitions(vec![partition(0, &[4, 2, 1], &[4], &[1])]),
            OngoingTopicReassignment::default()
                .with_name(topic_name("a"))
                .with_partitions(vec![
                    partition(3, &[1, 2, 3], &[2, 3], &[]),
                    partition(1, &[2, 3, 4, 1], &[4], &[1]),
                ]),
        ]);
        let ongoing = ongoing_reassignments(&response).unwrap();
        let keys: Vec<(&str, i32)> = ongoing
            .iter()
            .map(|o| (o.topic.as_str(), o.partition))
            .collect();
        assert_eq!(keys, vec![("a", 1), ("a", 3), ("z", 0)]);
        assert_eq!(ongoing[0].target(), vec![2, 3, 4]);
        assert_eq!(ongoing[0].adding, vec![4]);
        assert_eq!(ongoing[0].removing, vec![1]);
        assert_eq!(ongoing[1].target(), vec![1, 2, 3]);
        assert_eq!(ongoing[2].target(), vec![4, 2]);
        let failed = ListPartitionReassignmentsResponse::default().with_error_code(41);
        assert_eq!(
            ongoing_reassignments(&failed).unwrap_err().kafka_code(),
            Some(41)
        );
    }

    #[test]
    fn describe_cluster_asks_for_fenced_brokers_only_where_the_field_exists() {
        use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
        let (min, max) = client_versions(ApiKey::DescribeCluster).expect("spoken");
        assert_eq!((min, max), (0, 2));
        for version in min..=max {
            let request = describe_cluster_request(version);
            let mut buf = BytesMut::new();
            request
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let decoded = DescribeClusterRequest::decode(&mut buf.freeze(), version).unwrap();
            assert_eq!(decoded.include_fenced_brokers, version >= 2, "v{version}");
        }
        let broker = |id: i32, fenced: bool| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("h"))
                .with_port(9092)
                .with_is_fenced(fenced)
        };
        let response = DescribeClusterResponse::default()
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![broker(3, true), broker(1, false), broker(2, false)]);
        let v2 = cluster_description(&response, 2).unwrap();
        assert_eq!(
            v2.brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(v2.fenced, Some(vec![3]));
        assert_eq!(v2.controller_id, Some(2));
        // Before v2 nothing says who is fenced.
        let unfenced = DescribeClusterResponse::default()
            .with_controller_id(BrokerId(-1))
            .with_brokers(vec![broker(1, false)]);
        let v1 = cluster_description(&unfenced, 1).unwrap();
        assert_eq!(v1.fenced, None);
        assert_eq!(v1.controller_id, None);
        let failed = DescribeClusterResponse::default().with_error_code(31);
        assert_eq!(
            cluster_description(&failed, 1).unwrap_err().kafka_code(),
            Some(31)
        );
    }

    fn quorum_partition() -> describe_quorum_response::PartitionData {
        let replica = |id: i32, end: i64, caught_up: i64| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(end)
                .with_last_caught_up_timestamp(caught_up)
        };
        describe_quorum_response::PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(2))
            .with_leader_epoch(7)
            .with_high_watermark(50)
            .with_current_voters(vec![replica(3, 40, -1), replica(2, 51, 1_000)])
            .with_observers(vec![replica(4, -1, -1)])
    }

    fn quorum_response(
        partition: describe_quorum_response::PartitionData,
    ) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition]),
        ])
    }

    #[test]
    fn describe_quorum_asks_for_the_metadata_partition_at_every_version() {
        let (min, max) = client_versions(ApiKey::DescribeQuorum).expect("spoken");
        assert_eq!((min, max), (0, 1));
        assert_encodes_at_every_client_version(&describe_quorum_request(), ApiKey::DescribeQuorum);
        let request = describe_quorum_request();
        assert_eq!(&*request.topics[0].topic_name.0, "__cluster_metadata");
        assert_eq!(request.topics[0].partitions[0].partition_index, 0);
    }

    #[test]
    fn quorum_answers_map_to_members_or_to_the_leader_to_ask() {
        let QuorumAnswer::Described(quorum) =
            quorum_description(&quorum_response(quorum_partition()))
        else {
            panic!("not described");
        };
        assert_eq!(quorum.leader_id, Some(2));
        assert_eq!(quorum.leader_epoch, 7);
        assert_eq!(quorum.high_watermark, 50);
        assert_eq!(
            quorum.voters,
            vec![
                QuorumReplica {
                    id: 2,
                    log_end_offset: Some(51),
                    last_fetch_timestamp: None,
                    last_caught_up_timestamp: Some(1_000),
                },
                QuorumReplica {
                    id: 3,
                    log_end_offset: Some(40),
                    last_fetch_timestamp: None,
                    last_caught_up_timestamp: None,
                },
            ]
        );
        assert_eq!(quorum.observers[0].log_end_offset, None);

        let not_leader = quorum_partition().with_error_code(NOT_LEADER_OR_FOLLOWER);
        match quorum_description(&quorum_response(not_leader)) {
            QuorumAnswer::AskLeader(Some(2), error) => {
                assert_eq!(error.kafka_code(), Some(NOT_LEADER_OR_FOLLOWER))
            }
            other => panic!("unexpected {other:?}"),
        }
        let unknown = DescribeQuorumResponse::default().with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
        assert!(matches!(
            quorum_description(&unknown),
            QuorumAnswer::Failed(e) if e.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION)
        ));
        assert!(matches!(
            quorum_description(&DescribeQuorumResponse::default()),
            QuorumAnswer::Failed(_)
        ));
    }

    fn refused(broker: &str) -> Error {
        Error::Io {
            broker: broker.to_string(),
            reason: "Connection refused".to_string(),
        }
    }

    fn not_leader() -> Error {
        Error::broker(
            "describing the controller quorum",
            NOT_LEADER_OR_FOLLOWER,
            None,
        )
    }

    fn asks(step: QuorumStep) -> QuorumTarget {
        match step {
            QuorumStep::Ask(target) => target,
            QuorumStep::Fail(error) => panic!("failed: {error}"),
        }
    }

    fn fails(step: QuorumStep) -> String {
        match step {
            QuorumStep::Fail(error) => {
                assert!(error.is_retriable(), "{error}");
                error.to_string()
            }
            QuorumStep::Ask(target) => panic!("asks {target}"),
        }
    }

    #[test]
    fn describe_quorum_asks_the_controller_first() {
        // DescribeCluster named a controller: it is asked, no other broker.
        let (_, first) = QuorumSearch::start(Some(2));
        assert_eq!(first, QuorumTarget::Node(2));
        // No controller known: any broker, as before.
        let (_, first) = QuorumSearch::start(None);
        assert_eq!(first, QuorumTarget::AnyBroker);
        // A controller that is not the quorum leader (Kafka's DescribeCluster names any
        // broker; a lagging Sluice broker may name an old leader) points at the leader.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.not_leader(Responder::Broker(2), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
    }

    #[test]
    fn an_unreachable_controller_falls_back_to_any_broker_and_the_leader_it_names() {
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.unreachable(QuorumTarget::Node(2), refused("127.0.0.1:19093"));
        assert_eq!(asks(next), QuorumTarget::AnyBroker);
        // Broker 3 knows the new leader.
        let next = search.not_leader(Responder::Broker(3), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
    }

    #[test]
    fn a_dead_quorum_leader_is_reported_as_such() {
        // The controller was killed; broker 3 still names it as the quorum leader.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.unreachable(QuorumTarget::Node(2), refused("127.0.0.1:19093"));
        assert_eq!(asks(next), QuorumTarget::AnyBroker);
        let error = fails(search.not_leader(Responder::Broker(3), Some(2), not_leader()));
        assert_eq!(
            error,
            "the quorum leader (node 2, named by broker 3) did not answer (connection to \
             127.0.0.1:19093 failed: Connection refused); an election may be in progress"
        );

        // Without a controller hint: the leader a broker names is asked and is silent.
        let (mut search, _) = QuorumSearch::start(None);
        let named_by = Responder::Address("127.0.0.1:19094".to_string());
        let next = search.not_leader(named_by, Some(2), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(2));
        let timed_out = Error::Timeout {
            broker: "node 2".to_string(),
            api: ApiKey::DescribeQuorum,
            timeout_ms: 1_000,
        };
        let error = fails(search.unreachable(QuorumTarget::Node(2), timed_out));
        assert_eq!(
            error,
            "the quorum leader (node 2, named by the broker at 127.0.0.1:19094) did not \
             answer (DescribeQuorum request to node 2 timed out after 1000 ms); an election \
             may be in progress"
        );
    }

    #[test]
    fn no_known_quorum_leader_or_a_leadership_loop_ends_the_search() {
        let (mut search, _) = QuorumSearch::start(Some(2));
        let error = fails(search.not_leader(Responder::Broker(2), None, not_leader()));
        assert_eq!(
            error,
            "broker 2 knows no quorum leader; an election may be in progress"
        );

        // 2 names 1, 1 names 2 back: neither is asked again.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.not_leader(Responder::Broker(2), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
        let error = fails(search.not_leader(Responder::Broker(1), Some(2), not_leader()));
        assert!(
            error.starts_with("broker 1 names node 2 the quorum leader, but node 2 answered"),
            "{error}"
        );
    }

    #[test]
    fn describe_quorum_makes_a_bounded_number_of_requests() {
        // Every broker unreachable: any_connection has tried them all.
        let (mut search, _) = QuorumSearch::start(None);
        let error = fails(search.unreachable(QuorumTarget::AnyBroker, refused("b")));
        assert!(error.starts_with("connection to b failed"), "{error}");

        // Leadership keeps moving: controller, then the leaders named, up to the limit.
        let (mut search, mut target) = QuorumSearch::start(Some(1));
        let mut requests = 1;
        let last = loop {
            let QuorumTarget::Node(id) = target else {
                panic!("{target}");
            };
            match search.not_leader(Responder::Broker(id), Some(id + 1), not_leader()) {
                QuorumStep::Ask(next) => {
                    requests += 1;
                    target = next;
                }
                QuorumStep::Fail(error) => break error.to_string(),
            }
        };
        assert_eq!(requests, QUORUM_REQUESTS_MAX);
        assert!(
            last.starts_with("no node asked answers as the quorum leader (broker 4 names node 5"),
            "{last}"
        );
    }

    #[test]
    fn latest_offset_requests_carry_the_replica_id_at_every_version() {
        use kafka_protocol::messages::list_offsets_response::{
            ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
        };
        let partitions = vec![
            ("a".to_string(), 0),
            ("b".to_string(), 1),
            ("a".to_string(), 2),
        ];
        let request = latest_offsets_request(DEBUGGING_REPLICA_ID, &partitions);
        assert_encodes_at_every_client_version(&request, ApiKey::ListOffsets);
        assert_eq!(request.replica_id, BrokerId(-2));
        assert_eq!(request.topics.len(), 2, "grouped by topic");
        assert!(request
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.timestamp == LATEST_TIMESTAMP && p.current_leader_epoch == -1));

        let response =
            ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(topic_name("a"))
                .with_partitions(vec![
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(2)
                        .with_error_code(6),
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_offset(42),
                ])]);
        let results = latest_offsets(&response, &partitions);
        assert_eq!(results[0].as_ref().ok(), Some(&42));
        assert_eq!(
            results[1].as_ref().unwrap_err().kafka_code(),
            Some(-1),
            "missing"
        );
        assert_eq!(results[2].as_ref().unwrap_err().kafka_code(), Some(6));
    }

    #[test]
    fn one_record_fetches_encode_and_find_the_records_timestamp() {
        use crate::records::{encode_batch, Record};
        use sluice_protocol::batch::Compression;
        let fetch = single_record_fetch("t", 3, 17);
        assert_encodes_at_every_client_version(&fetch, ApiKey::Fetch);
        assert_eq!(fetch.topics[0].partitions[0].fetch_offset, 17);
        assert_eq!(fetch.max_wait_ms, 0);

        let record = |timestamp| Record {
            value: Some(Bytes::from_static(b"v")),
            timestamp,
            ..Record::default()
        };
        let mut batch = encode_batch(&[record(100), record(200), record(300)], Compression::None)
            .unwrap()
            .to_vec();
        batch[..8].copy_from_slice(&10i64.to_be_bytes());
        let batch = Bytes::from(batch);
        assert_eq!(timestamp_at(&batch, 11).unwrap(), Some(200));
        assert_eq!(
            timestamp_at(&batch, 5).unwrap(),
            Some(100),
            "a gap: the next record"
        );
        assert_eq!(timestamp_at(&batch, 13).unwrap(), None);
        assert_eq!(timestamp_at(&Bytes::new(), 0).unwrap(), None);
    }

    #[test]
    fn topic_already_exists_reads_as_kafka_names_it() {
        let error = Error::broker("topic 'x' already exists", TOPIC_ALREADY_EXISTS, None);
        assert_eq!(
            error.to_string(),
            "topic 'x' already exists (TOPIC_ALREADY_EXISTS)"
        );
    }
}
