//! Produce: decode, hand each partition's records to the replica manager
//! ([`ReplicaManager::append_records`](crate::replica::ReplicaManager::append_records):
//! admission, validation, idempotence, append), wait as the acks mode says, encode.
//!
//! - acks=0: no response; if any partition failed, the connection is closed (Kafka's way
//!   of telling a fire-and-forget producer something went wrong).
//! - acks=1: answer after the leader's append.
//! - acks=-1 (all): after the append the request is parked (the produce purgatory, counted
//!   in its gauge and in the request's remote time) until the whole ISR has the records
//!   ([`ReplicaManager::wait_for_acks`](crate::replica::ReplicaManager::wait_for_acks)).
//! - Any other acks value: INVALID_REQUIRED_ACKS for every partition.
//! - From v13 topics are named by id (KIP-516); an unknown id is UNKNOWN_TOPIC_ID.
//! - A topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION: as on Kafka, only
//!   Metadata auto-creates topics (clients ask for a topic's metadata before producing).
//!
//! # Ordering
//! Every append of a request happens before the handler's first `.await`: phase 1 appends
//! every partition synchronously, phase 2 only waits. The
//! connection polls its in-flight requests in a `FuturesOrdered`, in the order they were
//! read, and `dispatch::handle` does not await before calling this handler, so the appends of
//! one connection happen in request order. An idempotent producer pipelines up to five
//! requests on one connection and relies on that order; an `.await` before an append would
//! let a later request overtake an earlier one and draw OUT_OF_ORDER_SEQUENCE_NUMBER.

use std::time::Duration;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use sluice_protocol::error::ErrorCode;

use super::{count_error, count_topic, str_bytes, Purgatory, RemoteTime};
use crate::metrics as m;
use crate::replica::{Acks, AppendOrigin, AppendRequest, Appended, Refusal};
use crate::server::Broker;
use sluice_protocol::clock::now_ms;

/// Each topic's partitions with their append results, in request order.
/// Per requested topic: its name (before v13) and id (v13+), and each partition's outcome.
type TopicResults = Vec<(TopicName, uuid::Uuid, Vec<(i32, Result<Appended, Refusal>)>)>;

/// What the connection should do with the result.
pub enum Outcome {
    Respond(ProduceResponse),
    NoResponse,
    Close(String),
}

/// Answer a Produce request; time parked waiting for the ISR is added to `remote`.
pub async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
    remote: &mut RemoteTime,
) -> Outcome {
    let acks = Acks::from_wire(request.acks);
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    let now = now_ms();

    // Phase 1, synchronous (see "Ordering" in the module documentation): every append.
    let mut results: TopicResults = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        // v13+ names the topic by id (KIP-516); an id the metadata lacks is UNKNOWN_TOPIC_ID.
        let name = if version >= 13 {
            broker
                .replicas
                .metadata()
                .read(|state| state.topic(&topic.topic_id).map(|t| t.name.clone()))
        } else {
            Some(topic.name.0.to_string())
        };
        let unknown = if name.is_some() {
            ErrorCode::UnknownTopicOrPartition
        } else {
            ErrorCode::UnknownTopicId
        };
        let name = name.unwrap_or_default();
        let known = acks.is_some() && broker.topic(&name).is_some();
        if known {
            count_topic(broker, m::TOPIC_PRODUCE_REQUESTS_TOTAL, &name, 1);
        }
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let result = match acks {
                None => Err((ErrorCode::InvalidRequiredAcks, None)),
                Some(_) if !known => Err((unknown, None)),
                Some(acks) => broker.replicas.append_records(AppendRequest {
                    topic: &name,
                    partition: partition.index,
                    records: partition.records,
                    acks,
                    origin: AppendOrigin::Client,
                    now_ms: now,
                }),
            };
            partitions.push((partition.index, result));
        }
        results.push((topic.name, topic.topic_id, partitions));
    }

    // Phase 2: replication and durability, for the whole request within its timeout.
    for (_, _, partitions) in &mut results {
        for (_, result) in partitions.iter_mut() {
            let Ok(appended) = result else { continue };
            if acks == Some(Acks::All) {
                // Parked in the produce purgatory, one partition after the other.
                let waited = remote
                    .park(
                        Purgatory::Produce,
                        broker.replicas.wait_for_acks(appended, deadline),
                    )
                    .await;
                if let Err(refusal) = waited {
                    *result = Err(refusal);
                }
            } else {
                broker.replicas.flush_in_background(appended);
            }
        }
    }

    let (response, first_failure) = encode(results, version);
    if acks == Some(Acks::None) {
        return match first_failure {
            Some(reason) => Outcome::Close(reason),
            None => Outcome::NoResponse,
        };
    }
    Outcome::Respond(response)
}

/// The response, and a description of the first failed partition (for acks=0's close).
fn encode(results: TopicResults, version: i16) -> (ProduceResponse, Option<String>) {
    let mut response = ProduceResponse::default();
    let mut first_failure: Option<String> = None;
    for (name, topic_id, partitions) in results {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.topic_id = topic_id;
        for (index, result) in partitions {
            let mut p = PartitionProduceResponse::default();
            p.index = index;
            match result {
                Ok(appended) => {
                    p.base_offset = appended.base_offset;
                    if version >= 5 {
                        p.log_start_offset = appended.log_start_offset;
                    }
                }
                Err((code, message)) => {
                    p.error_code = count_error("Produce", code);
                    p.base_offset = -1;
                    if first_failure.is_none() {
                        first_failure = Some(format!(
                            "produce to {}-{index} failed: {code:?}{}",
                            name.0,
                            message
                                .as_deref()
                                .map(|m| format!(" ({m})"))
                                .unwrap_or_default()
                        ));
                    }
                    if version >= 8 {
                        p.error_message = message.map(str_bytes);
                    }
                }
            }
            topic_response.partition_responses.push(p);
        }
        topic_response.name = name;
        response.responses.push(topic_response);
    }
    (response, first_failure)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::PartitionProduceResponse;
    use sluice_protocol::batch::Compression;
    use sluice_protocol::records::{encode_batch, Record};

    use super::*;
    use crate::server::api::topic_name;
    use crate::server::testing;

    const TOPIC: &str = "idempotence";

    /// A batch of `count` records from producer `producer_id` (-1: none) with extra
    /// attribute bits, CRC fixed up.
    fn batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: usize,
        attributes: i16,
    ) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                value: Some(Bytes::from(format!("value-{i}"))),
                timestamp: 1_700_000_000_000,
                ..Record::default()
            })
            .collect();
        let mut bytes = BytesMut::from(&encode_batch(&records, Compression::None).unwrap()[..]);
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | attributes;
        (&mut bytes[21..23]).put_i16(attributes);
        (&mut bytes[43..51]).put_i64(producer_id);
        (&mut bytes[51..53]).put_i16(epoch);
        (&mut bytes[53..57]).put_i32(base_sequence);
        let crc = crc32c::crc32c(&bytes[21..]);
        (&mut bytes[17..21]).put_u32(crc);
        bytes.freeze()
    }

    fn idempotent(epoch: i16, base_sequence: i32, count: usize) -> Bytes {
        batch(1, epoch, base_sequence, count, 0)
    }

    async fn produce(broker: &Broker, records: Bytes) -> PartitionProduceResponse {
        // As a client does: Metadata (auto-creating the topic) before the first produce.
        broker.topic_or_auto_create(TOPIC).await.unwrap();
        let mut partition = PartitionProduceData::default();
        partition.index = 0;
        partition.records = Some(records);
        let mut topic = TopicProduceData::default();
        topic.name = topic_name(TOPIC);
        topic.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = -1;
        request.timeout_ms = 5_000;
        request.topic_data = vec![topic];
        match handle(broker, request, 9, &mut RemoteTime::default()).await {
            Outcome::Respond(mut response) => {
                response.responses.remove(0).partition_responses.remove(0)
            }
            Outcome::NoResponse | Outcome::Close(_) => panic!("acks=all must be answered"),
        }
    }

    fn log_end_offset(broker: &Broker) -> i64 {
        broker.logs.partition(TOPIC, 0).unwrap().log_end_offset()
    }

    #[track_caller]
    fn assert_appended(response: &PartitionProduceResponse, base_offset: i64) {
        assert_eq!(
            (response.error_code, response.base_offset),
            (0, base_offset),
            "{:?}",
            response.error_message
        );
    }

    #[tokio::test]
    async fn a_topic_that_does_not_exist_is_unknown_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut partition = PartitionProduceData::default();
        partition.records = Some(batch(-1, -1, -1, 1, 0));
        let mut topic = TopicProduceData::default();
        topic.name = topic_name("never-created");
        topic.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = 1;
        request.timeout_ms = 5_000;
        request.topic_data = vec![topic];
        let Outcome::Respond(response) =
            handle(&broker, request, 9, &mut RemoteTime::default()).await
        else {
            panic!("acks=1 must be answered");
        };
        let code = response.responses[0].partition_responses[0].error_code;
        assert_eq!(code, ErrorCode::UnknownTopicOrPartition.code());
        assert!(broker.topic("never-created").is_none());
    }

    #[tokio::test]
    async fn retried_idempotent_batch_gets_its_original_offset_and_is_not_appended_again() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        assert_appended(&produce(&broker, batch(-1, -1, -1, 2, 0)).await, 3);
        assert_appended(&produce(&broker, idempotent(0, 3, 2)).await, 5);
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        assert_appended(&produce(&broker, idempotent(0, 3, 2)).await, 5);
        assert_eq!(log_end_offset(&broker), 7);
    }

    #[tokio::test]
    async fn sequence_gap_is_refused_with_out_of_order_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        let response = produce(&broker, idempotent(0, 4, 1)).await;
        assert_eq!(
            response.error_code,
            ErrorCode::OutOfOrderSequenceNumber.code()
        );
        assert_eq!(response.base_offset, -1);
        assert!(response.error_message.is_some());
        assert_eq!(log_end_offset(&broker), 3);
    }

    #[tokio::test]
    async fn older_epoch_is_refused_with_invalid_producer_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(1, 0, 1)).await, 0);
        let response = produce(&broker, idempotent(0, 1, 1)).await;
        assert_eq!(response.error_code, ErrorCode::InvalidProducerEpoch.code());
        assert_eq!(log_end_offset(&broker), 1);
    }

    #[tokio::test]
    async fn transactional_and_control_batches_are_refused_with_invalid_record() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        for attributes in [0x10, 0x20] {
            let response = produce(&broker, batch(1, 0, 0, 1, attributes)).await;
            assert_eq!(response.error_code, ErrorCode::InvalidRecord.code());
        }
        assert_eq!(log_end_offset(&broker), 0);
    }

    #[tokio::test]
    async fn idempotent_records_must_be_exactly_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut two = BytesMut::new();
        two.extend_from_slice(&idempotent(0, 0, 1));
        two.extend_from_slice(&idempotent(0, 1, 1));
        let response = produce(&broker, two.freeze()).await;
        assert_eq!(response.error_code, ErrorCode::InvalidRecord.code());
        // Several batches without a producer id are still fine.
        let mut plain = BytesMut::new();
        plain.extend_from_slice(&batch(-1, -1, -1, 1, 0));
        plain.extend_from_slice(&batch(-1, -1, -1, 1, 0));
        assert_appended(&produce(&broker, plain.freeze()).await, 0);
    }

    #[tokio::test]
    async fn retry_spanning_a_restart_is_recognised_from_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = testing::broker(dir.path()).await;
            assert_appended(&produce(&broker, idempotent(0, 0, 2)).await, 0);
            assert_appended(&produce(&broker, idempotent(0, 2, 2)).await, 2);
            broker.stop().await;
        }
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 2, 2)).await, 2);
        assert_eq!(log_end_offset(&broker), 4);
        let response = produce(&broker, idempotent(0, 9, 1)).await;
        assert_eq!(
            response.error_code,
            ErrorCode::OutOfOrderSequenceNumber.code()
        );
        assert_appended(&produce(&broker, idempotent(0, 4, 1)).await, 4);
    }
}
