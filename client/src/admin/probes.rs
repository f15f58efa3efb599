//! Probes of one broker, the reads behind the `sluice` CLI's operator views: a replica's
//! log end offsets (ListOffsets with the debugging replica id), a leader's high watermarks
//! (ListOffsets as a consumer) and the timestamp of the record at an offset (a one-record
//! Fetch).

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, ListOffsetsResponse,
};
use sluice_protocol::api::DEBUGGING_REPLICA_ID;
use sluice_protocol::error::ProtocolError;

use super::{missing_from_response, topic_name, Admin};
use crate::error::{Error, Result};
use crate::records::decode_records;

/// ListOffsets replica id of a consumer: the leader answers, up to the high watermark.
const CONSUMER_REPLICA_ID: i32 = -1;
/// ListOffsets timestamp meaning "latest".
const LATEST_TIMESTAMP: i64 = -1;
/// Bytes a one-record fetch asks for; the batch holding the record comes whole anyway.
const SINGLE_RECORD_FETCH_BYTES: i32 = 64 * 1024;

impl Admin {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::connection::assert_encodes_at_every_client_version;

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
}
