//! DescribeCluster: the registered, unfenced brokers and the active controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};

use super::str_bytes;
use crate::controller::BrokerStatus;
use crate::server::Broker;

pub fn handle(broker: &Broker) -> DescribeClusterResponse {
    let identity = &broker.identity;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(identity.cluster_id.clone());
    response.controller_id = BrokerId(
        broker
            .controller
            .controller()
            .current_leader()
            .map_or(-1, |id| id as i32),
    );
    response.brokers = broker.replicas.metadata().read(|state| {
        state
            .brokers()
            .filter(|b| b.id == identity.node_id || b.status != BrokerStatus::Fenced)
            .filter_map(|b| {
                let endpoint = b.client_endpoint()?;
                let mut entry = DescribeClusterBroker::default();
                entry.broker_id = BrokerId(b.id);
                entry.host = str_bytes(endpoint.host.clone());
                entry.port = i32::from(endpoint.port);
                entry.rack = b.rack.clone().map(str_bytes);
                Some(entry)
            })
            .collect()
    });
    response
}
