//! DescribeCluster: the registered, unfenced brokers and the active controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};

use super::str_bytes;
use crate::server::Broker;

pub fn handle(broker: &Broker) -> DescribeClusterResponse {
    let identity = &broker.identity;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(identity.cluster_id.clone());
    response.controller_id = BrokerId(broker.controller_id());
    response.brokers = broker.replicas.metadata().read(|state| {
        broker
            .listed_brokers(state)
            .map(|(b, endpoint)| {
                let mut entry = DescribeClusterBroker::default();
                entry.broker_id = BrokerId(b.id);
                entry.host = str_bytes(endpoint.host.clone());
                entry.port = i32::from(endpoint.port);
                entry.rack = b.rack.clone().map(str_bytes);
                entry
            })
            .collect()
    });
    response
}
