//! Leader elections: [`Admin::elect_leaders`] (Kafka's ElectLeaders, preferred or unclean),
//! its request per version and its per-partition results.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};

use super::{
    message, partition_missing_from_response, restates_error_name, topic_name, Admin,
    ELECTION_NOT_NEEDED,
};
use crate::error::{Error, Result};

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

impl Admin {
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

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::BytesMut;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

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
}
