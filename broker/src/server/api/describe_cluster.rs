//! DescribeCluster: this broker, which is also the controller on a single node.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};

use super::str_bytes;
use crate::server::Broker;

pub fn handle(broker: &Broker) -> DescribeClusterResponse {
    let identity = &broker.identity;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(identity.cluster_id.clone());
    response.controller_id = BrokerId(identity.node_id);
    let mut me = DescribeClusterBroker::default();
    me.broker_id = BrokerId(identity.node_id);
    me.host = str_bytes(identity.host.clone());
    me.port = identity.port;
    response.brokers = vec![me];
    response
}
