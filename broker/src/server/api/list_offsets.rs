//! ListOffsets, answered by the partition leader only (NOT_LEADER_OR_FOLLOWER elsewhere):
//! earliest (-2), latest (-1, the high watermark) and first offset at or after a timestamp
//! (below the high watermark). Max-timestamp lookups (-3, KIP-734) are not supported yet and get
//! UNSUPPORTED_VERSION for that partition.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::error::ErrorCode;

use super::{check_leader_epoch, count_error};
use crate::server::{storage_error_code, Broker};

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
            let replica = match broker.leader_replica(&topic.name.0, partition.partition_index) {
                Ok(replica) => replica,
                Err(code) => {
                    p.error_code = count_error("ListOffsets", code);
                    topic_response.partitions.push(p);
                    continue;
                }
            };
            let leader_epoch = replica.lock().leader_epoch();
            if version >= 4 {
                p.leader_epoch = leader_epoch;
                if let Err(code) = check_leader_epoch(partition.current_leader_epoch, leader_epoch)
                {
                    p.error_code = count_error("ListOffsets", code);
                    topic_response.partitions.push(p);
                    continue;
                }
            }
            let log = &replica.log;
            let visible_end = replica.visible_end();
            match partition.timestamp {
                LATEST => p.offset = visible_end,
                EARLIEST => p.offset = log.log_start_offset(),
                timestamp if timestamp >= 0 => match log.offset_for_timestamp(timestamp) {
                    Ok(Some((offset, found))) if offset < visible_end => {
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
