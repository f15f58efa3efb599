//! Partition reassignments (KIP-455): [`Admin::alter_partition_reassignments`] to start,
//! replace or cancel them and [`Admin::list_partition_reassignments`] to see the running
//! ones, with their requests, per-partition results and types.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{
    message, partition_missing_from_response, restates_error_name, topic_name, Admin,
    NOT_CONTROLLER, NO_REASSIGNMENT_IN_PROGRESS,
};
use crate::error::{Error, Result};

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

impl Admin {
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

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use crate::connection::{assert_encodes_at_every_client_version, client_versions};

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
}
