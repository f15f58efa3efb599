//! ElectLeaders: move leadership to each partition's preferred (first) replica, or elect a
//! leader for a leaderless partition from outside the ISR (unclean), through the controller.
//! A null partition list means every partition of every topic (Kafka's "all partitions").
//! Per-partition answers: NONE, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
//! ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use sluice_protocol::error::ErrorCode;
use uuid::Uuid;

use super::{count_error, str_bytes, topic_name};
use crate::controller::{CommandOutcome, ElectionType, MetadataCommand};
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    let election = match (version, request.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            response.error_code = count_error("ElectLeaders", ErrorCode::InvalidRequest);
            tracing::debug!(election_type = other, "unknown election type");
            return response;
        }
    };
    // (topic name, partition) -> result; unknown ones answered without asking the controller.
    let mut results: BTreeMap<(String, i32), (ErrorCode, Option<String>)> = BTreeMap::new();
    let mut wanted: Vec<(Uuid, i32)> = Vec::new();
    let mut names: BTreeMap<Uuid, String> = BTreeMap::new();
    broker
        .replicas
        .metadata()
        .read(|state| match &request.topic_partitions {
            None => {
                for topic in state.topics() {
                    names.insert(topic.id, topic.name.clone());
                    wanted.extend((0..topic.partitions.len() as i32).map(|p| (topic.id, p)));
                }
            }
            Some(list) => {
                for requested in list {
                    let topic = state.topic_by_name(&requested.topic.0);
                    for &p in &requested.partitions {
                        match topic {
                            Some(t) if p >= 0 && (p as usize) < t.partitions.len() => {
                                names.insert(t.id, t.name.clone());
                                wanted.push((t.id, p));
                            }
                            _ => {
                                results.insert(
                                    (requested.topic.0.to_string(), p),
                                    (ErrorCode::UnknownTopicOrPartition, None),
                                );
                            }
                        }
                    }
                }
            }
        });
    if !wanted.is_empty() {
        let command = MetadataCommand::ElectLeaders {
            election,
            partitions: wanted.clone(),
        };
        match broker
            .controller
            .submit(command, std::time::Duration::from_secs(15))
            .await
        {
            Ok((index, Ok(CommandOutcome::LeadersElected { results: elected }))) => {
                broker.caught_up_to(index).await;
                for (topic_id, partition, result) in elected {
                    let name = names.get(&topic_id).cloned().unwrap_or_default();
                    let entry = match result {
                        Ok(change) => {
                            tracing::info!(topic = %name, partition, leader = ?change.leader, leader_epoch = change.leader_epoch, ?election, "leader elected on request");
                            (ErrorCode::None, None)
                        }
                        Err(refusal) => (refusal.code(), Some(refusal.to_string())),
                    };
                    results.insert((name, partition), entry);
                }
            }
            Ok((_, other)) => {
                tracing::warn!(?other, "unexpected ElectLeaders outcome");
                response.error_code = count_error("ElectLeaders", ErrorCode::UnknownServerError);
                return response;
            }
            Err(error) => {
                tracing::warn!(%error, "ElectLeaders: the controller did not answer");
                for (topic_id, partition) in wanted {
                    let name = names.get(&topic_id).cloned().unwrap_or_default();
                    results.insert(
                        (name, partition),
                        (ErrorCode::RequestTimedOut, Some(error.clone())),
                    );
                }
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((name, partition), (code, message)) in results {
        let mut p = PartitionResult::default();
        p.partition_id = partition;
        p.error_code = count_error("ElectLeaders", code);
        p.error_message = message.map(str_bytes);
        by_topic.entry(name).or_default().push(p);
    }
    response.replica_election_results = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = ReplicaElectionResult::default();
            topic.topic = topic_name(&name);
            topic.partition_result = partitions;
            topic
        })
        .collect();
    response
}
