//! ListOffsets: earliest (-2), latest (-1, the high watermark) and first offset at or after
//! a timestamp. Max-timestamp lookups (-3, KIP-734) are not supported yet and get
//! UNSUPPORTED_VERSION for that partition.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::error::ErrorCode;

use super::count_error;
use crate::server::{high_watermark, storage_error_code, Broker};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partitions {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = partition.partition_index;
            p.timestamp = -1;
            p.offset = -1;
            if version >= 4 {
                p.leader_epoch = 0;
            }
            let Some(log) = broker
                .logs
                .partition(&topic.name.0, partition.partition_index)
            else {
                p.error_code = count_error("ListOffsets", ErrorCode::UnknownTopicOrPartition);
                topic_response.partitions.push(p);
                continue;
            };
            match partition.timestamp {
                LATEST => p.offset = high_watermark(&log),
                EARLIEST => p.offset = log.log_start_offset(),
                timestamp if timestamp >= 0 => match log.offset_for_timestamp(timestamp) {
                    Ok(Some((offset, found))) if offset < high_watermark(&log) => {
                        p.offset = offset;
                        p.timestamp = found;
                    }
                    Ok(_) => {}
                    Err(e) => p.error_code = count_error("ListOffsets", storage_error_code(&e)),
                },
                _ => p.error_code = count_error("ListOffsets", ErrorCode::UnsupportedVersion),
            }
            topic_response.partitions.push(p);
        }
        response.topics.push(topic_response);
    }
    response
}
