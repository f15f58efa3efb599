//! DescribeProducers (v0): the idempotent producers of each partition, from its leader
//! (`kafka-transactions describe-producers`). Coordinator epoch and transaction start are
//! -1: Sluice has no transactions yet (issue 15).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{count_error, str_bytes};
use crate::server::Broker;

pub fn handle(broker: &Broker, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut answer = TopicResponse::default();
        answer.name = topic.name;
        for partition in topic.partition_indexes {
            let mut result = PartitionResponse::default();
            result.partition_index = partition;
            match broker.replicas.describe_producers(&name, partition) {
                Ok(producers) => {
                    result.active_producers = producers
                        .into_iter()
                        .map(|p| {
                            let mut state = ProducerState::default();
                            state.producer_id = ProducerId(p.producer_id);
                            state.producer_epoch = i32::from(p.epoch);
                            state.last_sequence = p.last_sequence;
                            state.last_timestamp = p.last_timestamp;
                            state.coordinator_epoch = -1;
                            state.current_txn_start_offset = -1;
                            state
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = count_error("DescribeProducers", code);
                    result.error_message = Some(str_bytes(message));
                }
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    response
}
