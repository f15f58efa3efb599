//! The group coordinator as the client sees it: finding it, one dedicated connection to it,
//! and the requests of the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch), each built for the version negotiated with that broker
//! (ConsumerGroupHeartbeat is built in `kip848`, and sent through [`Coordinator::send`]).
//!
//! This module sends requests and classifies answers; what an answer does to the member
//! (rejoin, reset the member id, give up) is decided by the caller (`consumer.rs`,
//! `heartbeat.rs`).
//!
//! - FindCoordinator goes to any broker and is retried (after `retry_backoff`) on
//!   COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS until the deadline.
//!   Concurrent lookups (the application's task and the heartbeat task) collapse into one.
//! - The coordinator gets its own connection, opened from the host and port FindCoordinator
//!   names, as the Java client does: a JoinGroup parked at the broker for a whole rebalance
//!   must not hold up fetches on the broker's ordinary connection, and commits and
//!   heartbeats must not wait behind a long-polling Fetch.
//! - [`Coordinator::mark_unknown`] drops that connection (NOT_COORDINATOR,
//!   COORDINATOR_NOT_AVAILABLE, a failed connection); the next request finds the
//!   coordinator again.
//! - Versions: the client speaks the versions below (all with topic names, none with topic
//!   ids; the lowest ones are Kafka 2.3's, the first with static membership), and picks the
//!   highest the coordinator supports. Fields a version lacks are left at their defaults.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_protocol::consumer_protocol::PROTOCOL_TYPE;

use crate::cluster::{BrokerInfo, Cluster};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// The versions of the group APIs this client speaks, inclusive.
pub(crate) const GROUP_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::FindCoordinator, 1, 6),
    (ApiKey::JoinGroup, 5, 9),
    (ApiKey::SyncGroup, 3, 5),
    (ApiKey::Heartbeat, 3, 4),
    (ApiKey::LeaveGroup, 3, 5),
    (ApiKey::OffsetCommit, 7, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
];

/// Kafka error codes the group protocol acts on.
pub(crate) mod codes {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
}

/// FindCoordinator's key type for groups.
const KEY_TYPE_GROUP: i8 = 0;
/// The first FindCoordinator version that batches keys (KIP-699).
const FIND_COORDINATOR_BATCHED_MIN_VERSION: i16 = 4;
/// The first OffsetFetch version that batches groups.
const OFFSET_FETCH_BATCHED_MIN_VERSION: i16 = 8;
/// The first OffsetFetch version with `require_stable`.
const OFFSET_FETCH_REQUIRE_STABLE_MIN_VERSION: i16 = 7;
/// The first SyncGroup version with the protocol type and name.
const SYNC_GROUP_PROTOCOL_MIN_VERSION: i16 = 5;
/// The first LeaveGroup version with a reason per member.
const LEAVE_GROUP_REASON_MIN_VERSION: i16 = 5;
/// The first JoinGroup version with a reason.
const JOIN_GROUP_REASON_MIN_VERSION: i16 = 8;

/// Whether a group error code means "this broker is not (or not yet) the coordinator":
/// find it again.
pub(crate) fn is_coordinator_moved(code: i16) -> bool {
    matches!(
        code,
        codes::COORDINATOR_NOT_AVAILABLE | codes::NOT_COORDINATOR
    )
}

/// The version of `api` to use with a broker that advertised `versions`.
fn negotiate(connection: &Connection, api: ApiKey) -> Result<i16> {
    let (ours_min, ours_max) = GROUP_API_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
        .unwrap_or((0, 0));
    let unsupported = |theirs: String| Error::UnsupportedVersion {
        broker: connection.broker().to_string(),
        api,
        ours_min,
        ours_max,
        theirs,
    };
    let Some((theirs_min, theirs_max)) = connection.api_versions().range(api) else {
        return Err(unsupported("none".to_string()));
    };
    let chosen = ours_max.min(theirs_max);
    if chosen < ours_min.max(theirs_min) {
        return Err(unsupported(format!("{theirs_min}..={theirs_max}")));
    }
    Ok(chosen)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(str_bytes(topic))
}

/// Who is asking: the member's identity in one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberIdentityRef {
    pub member_id: String,
    pub generation: i32,
}

/// What a JoinGroup carries besides the member id.
#[derive(Debug, Clone)]
pub(crate) struct JoinParams {
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (assignor name, encoded subscription), in preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub reason: String,
}

/// One group's coordinator.
pub(crate) struct Coordinator {
    cluster: Arc<Cluster>,
    group_id: String,
    group_instance_id: Option<String>,
    request_timeout: Duration,
    retry_backoff: Duration,
    /// The open connection to the coordinator, if known.
    connection: Mutex<Option<Connection>>,
    /// Held while a lookup runs, so that concurrent lookups collapse into one.
    lookup: tokio::sync::Mutex<()>,
}

impl Coordinator {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        group_id: String,
        group_instance_id: Option<String>,
        request_timeout: Duration,
        retry_backoff: Duration,
    ) -> Coordinator {
        Coordinator {
            cluster,
            group_id,
            group_instance_id,
            request_timeout,
            retry_backoff,
            connection: Mutex::new(None),
            lookup: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub(crate) fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    fn group(&self) -> GroupId {
        GroupId(str_bytes(&self.group_id))
    }

    fn instance(&self) -> Option<StrBytes> {
        self.group_instance_id.as_deref().map(str_bytes)
    }

    /// The coordinator's connection if it is known and open, without a lookup.
    pub(crate) fn cached(&self) -> Option<Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|c| !c.is_closed())
    }

    /// Forget the coordinator: the next request looks it up again.
    pub(crate) fn mark_unknown(&self, why: &str) {
        let previous = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(previous) = previous {
            tracing::info!(
                group = %self.group_id,
                coordinator = previous.broker(),
                why,
                "group coordinator lost; looking it up again"
            );
        }
    }

    /// The coordinator's connection, looking it up (FindCoordinator, retried on
    /// COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS) until `deadline`.
    pub(crate) async fn connection(&self, deadline: Instant) -> Result<Connection> {
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        let _lookup = self.lookup.lock().await;
        // Someone else may have found it while this call waited.
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        loop {
            let error = match self.find_once().await {
                Ok(connection) => {
                    *self.connection.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(connection.clone());
                    return Ok(connection);
                }
                Err(error) => error,
            };
            let retriable = error.is_retriable()
                || matches!(error.kafka_code(), Some(code) if is_coordinator_moved(code)
                    || code == codes::COORDINATOR_LOAD_IN_PROGRESS);
            if !retriable || Instant::now() + self.retry_backoff >= deadline {
                return Err(error);
            }
            tracing::debug!(group = %self.group_id, %error, "coordinator lookup failed; retrying");
            if error.needs_metadata_refresh() {
                let _ = self.cluster.refresh().await;
            }
            tokio::time::sleep(self.retry_backoff).await;
        }
    }

    /// One FindCoordinator, then a connection to the broker it names.
    async fn find_once(&self) -> Result<Connection> {
        let any = self.cluster.any_connection().await?;
        let version = negotiate(&any, ApiKey::FindCoordinator)?;
        let request = find_coordinator_request(&self.group_id, version);
        let response = any
            .send_versioned(request, version, self.request_timeout)
            .await?;
        let broker = coordinator_from_response(&response, &self.group_id)?;
        let connection =
            Connection::connect(&broker.address(), &self.cluster.config().connection).await?;
        tracing::debug!(
            group = %self.group_id,
            coordinator = broker.id,
            address = %broker.address(),
            "found the group coordinator"
        );
        Ok(connection)
    }

    pub(crate) async fn send<R: Request>(
        &self,
        connection: &Connection,
        build: impl FnOnce(i16) -> R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = negotiate(connection, api_key_of::<R>())?;
        connection
            .send_versioned(build(version), version, timeout)
            .await
    }

    /// JoinGroup. It may wait at the broker for the whole rebalance, so its timeout is the
    /// rebalance timeout plus the request timeout (Java: rebalance timeout + 5 s).
    pub(crate) async fn join(
        &self,
        connection: &Connection,
        member_id: &str,
        params: &JoinParams,
    ) -> Result<JoinGroupResponse> {
        let timeout =
            Duration::from_millis(u64::try_from(params.rebalance_timeout_ms).unwrap_or(0))
                + self.request_timeout;
        self.send(
            connection,
            |version| {
                let mut request = JoinGroupRequest::default()
                    .with_group_id(self.group())
                    .with_session_timeout_ms(params.session_timeout_ms)
                    .with_rebalance_timeout_ms(params.rebalance_timeout_ms)
                    .with_member_id(str_bytes(member_id))
                    .with_group_instance_id(self.instance())
                    .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                    .with_protocols(
                        params
                            .protocols
                            .iter()
                            .map(|(name, metadata)| {
                                JoinGroupRequestProtocol::default()
                                    .with_name(str_bytes(name))
                                    .with_metadata(metadata.clone())
                            })
                            .collect(),
                    );
                if version >= JOIN_GROUP_REASON_MIN_VERSION {
                    request = request.with_reason(Some(str_bytes(&params.reason)));
                }
                request
            },
            timeout,
        )
        .await
    }

    /// SyncGroup; the leader sends `assignments`, followers none.
    pub(crate) async fn sync(
        &self,
        connection: &Connection,
        member: &MemberIdentityRef,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<SyncGroupResponse> {
        // A follower's SyncGroup waits at the broker for the leader's.
        let timeout = self.request_timeout * 2;
        self.send(
            connection,
            |version| {
                let mut request = SyncGroupRequest::default()
                    .with_group_id(self.group())
                    .with_generation_id(member.generation)
                    .with_member_id(str_bytes(&member.member_id))
                    .with_group_instance_id(self.instance())
                    .with_assignments(
                        assignments
                            .into_iter()
                            .map(|(member_id, assignment)| {
                                SyncGroupRequestAssignment::default()
                                    .with_member_id(StrBytes::from_string(member_id))
                                    .with_assignment(assignment)
                            })
                            .collect(),
                    );
                if version >= SYNC_GROUP_PROTOCOL_MIN_VERSION {
                    request = request
                        .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                        .with_protocol_name(protocol_name.map(str_bytes));
                }
                request
            },
            timeout,
        )
        .await
    }

    /// Heartbeat; returns the error code.
    pub(crate) async fn heartbeat(
        &self,
        connection: &Connection,
        member: &MemberIdentityRef,
    ) -> Result<i16> {
        let response = self
            .send(
                connection,
                |_| {
                    HeartbeatRequest::default()
                        .with_group_id(self.group())
                        .with_generation_id(member.generation)
                        .with_member_id(str_bytes(&member.member_id))
                        .with_group_instance_id(self.instance())
                },
                self.request_timeout,
            )
            .await?;
        Ok(response.error_code)
    }

    /// LeaveGroup for this member; returns the error code (the member's, else the
    /// request's).
    pub(crate) async fn leave(
        &self,
        connection: &Connection,
        member_id: &str,
        reason: &str,
    ) -> Result<i16> {
        let response = self
            .send(
                connection,
                |version| {
                    let mut member = MemberIdentity::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(self.instance());
                    if version >= LEAVE_GROUP_REASON_MIN_VERSION {
                        member = member.with_reason(Some(str_bytes(reason)));
                    }
                    LeaveGroupRequest::default()
                        .with_group_id(self.group())
                        .with_members(vec![member])
                },
                self.request_timeout,
            )
            .await?;
        if response.error_code != codes::NONE {
            return Ok(response.error_code);
        }
        Ok(response
            .members
            .iter()
            .map(|m| m.error_code)
            .find(|&code| code != codes::NONE)
            .unwrap_or(codes::NONE))
    }

    /// Build an OffsetCommit for `offsets` at the version the coordinator speaks.
    pub(crate) fn commit_request(
        &self,
        connection: &Connection,
        member: &MemberIdentityRef,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(OffsetCommitRequest, i16)> {
        let version = negotiate(connection, ApiKey::OffsetCommit)?;
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for ((topic, partition), offset) in offsets {
            let entry = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset);
            match topics.last_mut() {
                Some(last) if *last.name.0 == **topic => last.partitions.push(entry),
                _ => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(self.group())
            .with_generation_id_or_member_epoch(member.generation)
            .with_member_id(str_bytes(&member.member_id))
            .with_group_instance_id(self.instance())
            .with_topics(topics);
        Ok((request, version))
    }

    /// OffsetFetch: the committed offset of each partition (None: nothing committed).
    /// Returns the first error code met (top-level, group or partition) instead, if any.
    pub(crate) async fn fetch_offsets(
        &self,
        connection: &Connection,
        partitions: &[(String, i32)],
    ) -> Result<std::result::Result<BTreeMap<(String, i32), Option<i64>>, i16>> {
        let response = self
            .send(
                connection,
                |version| offset_fetch_request(&self.group_id, partitions, version),
                self.request_timeout,
            )
            .await?;
        Ok(committed_from_response(&response))
    }
}

/// `R`'s API key.
fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

pub(crate) fn find_coordinator_request(group_id: &str, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_GROUP);
    if version >= FIND_COORDINATOR_BATCHED_MIN_VERSION {
        request.with_coordinator_keys(vec![str_bytes(group_id)])
    } else {
        request.with_key(str_bytes(group_id))
    }
}

/// The coordinator a FindCoordinator response names, or its error.
fn coordinator_from_response(
    response: &FindCoordinatorResponse,
    group_id: &str,
) -> Result<BrokerInfo> {
    let (code, message, node, host, port) = match response.coordinators.first() {
        // v4+: one entry per key asked.
        Some(c) => (c.error_code, &c.error_message, c.node_id.0, &c.host, c.port),
        None => (
            response.error_code,
            &response.error_message,
            response.node_id.0,
            &response.host,
            response.port,
        ),
    };
    if code != codes::NONE {
        return Err(Error::broker(
            format!("finding the coordinator of group '{group_id}'"),
            code,
            message.as_ref().map(|m| m.to_string()),
        ));
    }
    Ok(BrokerInfo {
        id: node,
        host: host.to_string(),
        port,
        rack: None,
    })
}

pub(crate) fn offset_fetch_request(
    group_id: &str,
    partitions: &[(String, i32)],
    version: i16,
) -> OffsetFetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut request = OffsetFetchRequest::default();
    if version >= OFFSET_FETCH_REQUIRE_STABLE_MIN_VERSION {
        // Wait for pending transactional commits rather than read past them.
        request = request.with_require_stable(true);
    }
    if version >= OFFSET_FETCH_BATCHED_MIN_VERSION {
        let topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchRequestTopics::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions)
            })
            .collect();
        // The top-level `topics` (v0-7) stays at its default, which v8+ requires.
        request.with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_topics(Some(topics))])
    } else {
        let topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions)
            })
            .collect();
        request
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_topics(Some(topics))
    }
}

/// The committed offsets in an OffsetFetch response (either shape), or the first error.
fn committed_from_response(
    response: &OffsetFetchResponse,
) -> std::result::Result<BTreeMap<(String, i32), Option<i64>>, i16> {
    let mut committed = BTreeMap::new();
    let offset = |o: i64| (o >= 0).then_some(o);
    if let Some(group) = response.groups.first() {
        if group.error_code != codes::NONE {
            return Err(group.error_code);
        }
        for topic in &group.topics {
            for p in &topic.partitions {
                if p.error_code != codes::NONE {
                    return Err(p.error_code);
                }
                committed.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    offset(p.committed_offset),
                );
            }
        }
        return Ok(committed);
    }
    if response.error_code != codes::NONE {
        return Err(response.error_code);
    }
    for topic in &response.topics {
        for p in &topic.partitions {
            if p.error_code != codes::NONE {
                return Err(p.error_code);
            }
            committed.insert(
                (topic.name.0.to_string(), p.partition_index),
                offset(p.committed_offset),
            );
        }
    }
    Ok(committed)
}

/// The first error code in an OffsetCommit response, if any.
pub(crate) fn commit_error(response: &OffsetCommitResponse) -> Option<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .find(|&code| code != codes::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
    };
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (_, min, max) = GROUP_API_VERSIONS
            .iter()
            .find(|(key, _, _)| *key == api)
            .unwrap();
        *min..=*max
    }

    fn encodes<T: Encodable>(request: &T, api: ApiKey, version: i16) -> bytes::BytesMut {
        let mut buf = bytes::BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        buf
    }

    #[test]
    fn find_coordinator_names_the_group_in_the_field_each_version_has() {
        for version in versions(ApiKey::FindCoordinator) {
            let request = find_coordinator_request("g", version);
            let buf = encodes(&request, ApiKey::FindCoordinator, version);
            let back = FindCoordinatorRequest::decode(&mut buf.freeze(), version).unwrap();
            if version >= 4 {
                assert_eq!(back.coordinator_keys, vec![str_bytes("g")]);
            } else {
                assert_eq!(&*back.key, "g");
            }
        }
    }

    #[test]
    fn offset_fetch_asks_for_the_partitions_in_the_shape_each_version_has() {
        let partitions = [("t".to_string(), 1), ("t".to_string(), 0), ("u".into(), 2)];
        for version in versions(ApiKey::OffsetFetch) {
            let request = offset_fetch_request("g", &partitions, version);
            let buf = encodes(&request, ApiKey::OffsetFetch, version);
            let back = OffsetFetchRequest::decode(&mut buf.freeze(), version).unwrap();
            let asked: Vec<(String, Vec<i32>)> = if version >= 8 {
                assert_eq!(&*back.groups[0].group_id.0, "g");
                back.groups[0]
                    .topics
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            } else {
                assert_eq!(&*back.group_id.0, "g");
                back.topics
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            };
            assert_eq!(asked, [("t".into(), vec![1, 0]), ("u".into(), vec![2])]);
            assert_eq!(back.require_stable, version >= 7, "v{version}");
        }
    }

    #[test]
    fn group_requests_encode_at_every_version_we_may_pick() {
        let member = MemberIdentityRef {
            member_id: "m".into(),
            generation: 3,
        };
        for version in versions(ApiKey::JoinGroup) {
            let mut request = JoinGroupRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_member_id(str_bytes(&member.member_id))
                .with_group_instance_id(Some(str_bytes("i")))
                .with_protocol_type(str_bytes(PROTOCOL_TYPE));
            if version >= JOIN_GROUP_REASON_MIN_VERSION {
                request = request.with_reason(Some(str_bytes("why")));
            }
            encodes(&request, ApiKey::JoinGroup, version);
        }
        for version in versions(ApiKey::SyncGroup) {
            let mut request = SyncGroupRequest::default()
                .with_generation_id(3)
                .with_group_instance_id(Some(str_bytes("i")));
            if version >= SYNC_GROUP_PROTOCOL_MIN_VERSION {
                request = request
                    .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                    .with_protocol_name(Some(str_bytes("range")));
            }
            encodes(&request, ApiKey::SyncGroup, version);
        }
        for version in versions(ApiKey::Heartbeat) {
            let request = HeartbeatRequest::default().with_group_instance_id(Some(str_bytes("i")));
            encodes(&request, ApiKey::Heartbeat, version);
        }
        for version in versions(ApiKey::LeaveGroup) {
            let mut identity = MemberIdentity::default()
                .with_member_id(str_bytes("m"))
                .with_group_instance_id(Some(str_bytes("i")));
            if version >= LEAVE_GROUP_REASON_MIN_VERSION {
                identity = identity.with_reason(Some(str_bytes("closing")));
            }
            let request = LeaveGroupRequest::default().with_members(vec![identity]);
            encodes(&request, ApiKey::LeaveGroup, version);
        }
        for version in versions(ApiKey::OffsetCommit) {
            let request = OffsetCommitRequest::default()
                .with_generation_id_or_member_epoch(3)
                .with_group_instance_id(Some(str_bytes("i")))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7)])]);
            encodes(&request, ApiKey::OffsetCommit, version);
        }
    }

    #[test]
    fn the_coordinator_is_read_from_either_response_shape() {
        let old = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(2))
            .with_host(str_bytes("h"))
            .with_port(9093);
        let new =
            FindCoordinatorResponse::default().with_coordinators(vec![CoordinatorEntry::default()
                .with_key(str_bytes("g"))
                .with_node_id(BrokerId(2))
                .with_host(str_bytes("h"))
                .with_port(9093)]);
        for response in [old, new] {
            let broker = coordinator_from_response(&response, "g").unwrap();
            assert_eq!((broker.id, broker.address()), (2, "h:9093".to_string()));
        }
        let refused = FindCoordinatorResponse::default().with_coordinators(vec![
            CoordinatorEntry::default().with_error_code(codes::COORDINATOR_NOT_AVAILABLE),
        ]);
        let error = coordinator_from_response(&refused, "g").unwrap_err();
        assert_eq!(error.kafka_code(), Some(codes::COORDINATOR_NOT_AVAILABLE));
    }

    #[test]
    fn committed_offsets_are_read_from_the_batched_shape_and_minus_one_is_none() {
        let response =
            OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
                .with_topics(vec![OffsetFetchResponseTopics::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(0)
                            .with_committed_offset(12),
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(1)
                            .with_committed_offset(-1),
                    ])])]);
        let committed = committed_from_response(&response).unwrap();
        assert_eq!(committed[&("t".to_string(), 0)], Some(12));
        assert_eq!(committed[&("t".to_string(), 1)], None);
        let loading = OffsetFetchResponse::default()
            .with_groups(vec![OffsetFetchResponseGroup::default()
                .with_error_code(codes::COORDINATOR_LOAD_IN_PROGRESS)]);
        assert_eq!(
            committed_from_response(&loading),
            Err(codes::COORDINATOR_LOAD_IN_PROGRESS)
        );
    }
}
