//! DescribeCluster: the brokers clients may connect to, and the active controller.
//!
//! - **v0-1** list what Metadata lists ([`Broker::listed_brokers`]): the unfenced brokers,
//!   and this one.
//! - **v2** (KIP-1073, Kafka 4.0) flags every listed broker `is_fenced`, and when the request
//!   sets `include_fenced_brokers` lists every registered broker, fenced ones included
//!   ([`Broker::registered_brokers`]), as Kafka's `KafkaApis.handleDescribeCluster` does.
//!   Without the flag v2 lists what v0-1 list. Fenced means the controller's
//!   [`BrokerStatus::Fenced`]: registered and not yet caught up, or its session expired. A
//!   broker in controlled shutdown is not fenced, as in Kafka.
//!
//! **Endpoint type** (v1+; 1 = brokers, 2 = controllers). Sluice's client listeners are broker
//! listeners, and its controllers speak Raft on the internal listener, not the Kafka
//! protocol. So, as Kafka's `AuthHelper.computeDescribeClusterResponse` answers on a broker
//! listener: asking for controllers gets MISMATCHED_ENDPOINT_TYPE, an unknown type
//! UNSUPPORTED_ENDPOINT_TYPE, and either one INVALID_REQUEST at v0 (which cannot carry the
//! field, so only a hand-built request gets there).
//!
//! The controller id is this broker ([`Broker::client_controller_id`]), which forwards admin
//! requests to the active controller (KIP-590), as Kafka names a live broker rather than
//! the active controller; `sluice cluster status` and DescribeQuorum name the active one. Cluster authorized operations are not computed (no ACLs): the
//! schema's default is sent.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use sluice_protocol::error::ErrorCode;

use super::str_bytes;
use crate::controller::{BrokerStatus, Endpoint};
use crate::server::Broker;

/// DescribeCluster's endpoint type for brokers, the only kind Sluice's listeners serve.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// DescribeCluster's endpoint type for controllers.
const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;

/// Which registered brokers a response lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// Those Metadata lists: the unfenced brokers and this one.
    Unfenced,
    /// Every registered broker (v2 with `include_fenced_brokers`).
    Registered,
}

pub fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    if let Err((code, message)) = check_endpoint_type(request.endpoint_type, version) {
        let mut response = DescribeClusterResponse::default();
        response.error_code = code.code();
        response.error_message = Some(str_bytes(message));
        return response;
    }
    let listing = if version >= 2 && request.include_fenced_brokers {
        Listing::Registered
    } else {
        Listing::Unfenced
    };
    let identity = &broker.identity;
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = ENDPOINT_TYPE_BROKERS;
    response.cluster_id = str_bytes(identity.cluster_id.clone());
    response.controller_id = BrokerId(broker.client_controller_id());
    let entry = |(b, endpoint): (&crate::controller::Broker, &Endpoint)| {
        let mut entry = DescribeClusterBroker::default();
        entry.broker_id = BrokerId(b.id);
        entry.host = str_bytes(endpoint.host.clone());
        entry.port = i32::from(endpoint.port);
        entry.rack = b.rack.clone().map(str_bytes);
        // The field exists from v2 only: the codec refuses to encode `true` below it.
        entry.is_fenced = version >= 2 && b.status == BrokerStatus::Fenced;
        entry
    };
    response.brokers = broker.replicas.metadata().read(|state| match listing {
        Listing::Unfenced => broker.listed_brokers(state).map(entry).collect(),
        Listing::Registered => Broker::registered_brokers(state).map(entry).collect(),
    });
    response
}

/// The error for an endpoint type a broker listener does not serve, as Kafka words it.
fn check_endpoint_type(endpoint_type: i8, version: i16) -> Result<(), (ErrorCode, String)> {
    let (code, message) = match endpoint_type {
        ENDPOINT_TYPE_BROKERS => return Ok(()),
        ENDPOINT_TYPE_CONTROLLERS => (
            ErrorCode::MismatchedEndpointType,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint \
             of type CONTROLLER"
                .to_string(),
        ),
        other => (
            ErrorCode::UnsupportedEndpointType,
            format!("Unsupported endpoint type {other}"),
        ),
    };
    let code = if version == 0 {
        ErrorCode::InvalidRequest
    } else {
        code
    };
    Err((code, message))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};
    use uuid::Uuid;

    use super::*;
    use crate::controller::MetadataCommand;
    use crate::server::testing::{self, TestBroker};

    /// Encode at `version` and decode as a client would.
    fn on_the_wire(response: &DescribeClusterResponse, version: i16) -> DescribeClusterResponse {
        let mut buf = BytesMut::new();
        response
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        DescribeClusterResponse::decode(&mut buf.freeze(), version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"))
    }

    fn request(endpoint_type: i8, include_fenced_brokers: bool) -> DescribeClusterRequest {
        DescribeClusterRequest::default()
            .with_endpoint_type(endpoint_type)
            .with_include_fenced_brokers(include_fenced_brokers)
    }

    /// (id, is_fenced) of every listed broker, in id order.
    fn listed(response: &DescribeClusterResponse) -> Vec<(i32, bool)> {
        let mut brokers: Vec<(i32, bool)> = response
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        brokers.sort_unstable();
        brokers
    }

    /// Register broker `id` with the test broker's controller and leave it fenced (where
    /// registration leaves a broker) or unfence it. It never heartbeats, but its session
    /// outlasts the test.
    async fn register(broker: &TestBroker, id: i32, status: BrokerStatus) {
        let command = MetadataCommand::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(id as u128),
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 19_090 + id as u16,
            }],
            rack: None,
            cluster_id: None,
        };
        let epoch = broker.controller_command(command).await.expect("register");
        if status == BrokerStatus::Unfenced {
            let epoch = i64::try_from(epoch).expect("epoch");
            let command = MetadataCommand::UnfenceBroker { id, epoch };
            let index = broker.controller_command(command).await.expect("unfence");
            broker.caught_up_to(index).await;
        } else {
            broker.caught_up_to(epoch).await;
        }
    }

    #[tokio::test]
    async fn v2_reports_fenced_brokers_when_asked_and_v0_1_leave_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        register(&broker, 2, BrokerStatus::Fenced).await;
        register(&broker, 3, BrokerStatus::Unfenced).await;

        let response = on_the_wire(&handle(&broker, request(1, true), 2), 2);
        assert_eq!(response.error_code, 0, "{response:?}");
        assert_eq!(response.endpoint_type, ENDPOINT_TYPE_BROKERS);
        assert_eq!(response.cluster_id.as_str(), "test-cluster");
        assert_eq!(response.controller_id, BrokerId(1));
        assert_eq!(listed(&response), vec![(1, false), (2, true), (3, false)]);
        let fenced = response.brokers.iter().find(|b| b.broker_id.0 == 2);
        assert_eq!(fenced.map(|b| b.port), Some(19_092), "{response:?}");

        // Not asked for fenced brokers, v2 lists what v0-1 (and Metadata) list.
        let response = on_the_wire(&handle(&broker, request(1, false), 2), 2);
        assert_eq!(listed(&response), vec![(1, false), (3, false)]);
        for version in 0..=1 {
            let response = on_the_wire(
                &handle(&broker, DescribeClusterRequest::default(), version),
                version,
            );
            assert_eq!(response.error_code, 0, "v{version}: {response:?}");
            assert_eq!(
                listed(&response),
                vec![(1, false), (3, false)],
                "v{version}"
            );
        }
        broker.stop().await;
    }

    #[tokio::test]
    async fn a_broker_listener_refuses_to_describe_controllers() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        for version in 1..=2 {
            let response = on_the_wire(&handle(&broker, request(2, false), version), version);
            assert_eq!(
                response.error_code,
                ErrorCode::MismatchedEndpointType.code(),
                "v{version}: {response:?}"
            );
            assert!(response.brokers.is_empty(), "v{version}: {response:?}");
            let response = on_the_wire(&handle(&broker, request(7, false), version), version);
            assert_eq!(
                response.error_code,
                ErrorCode::UnsupportedEndpointType.code(),
                "v{version}: {response:?}"
            );
        }
        broker.stop().await;
    }

    #[test]
    fn v0_cannot_name_an_endpoint_type_so_any_other_is_an_invalid_request() {
        assert_eq!(check_endpoint_type(ENDPOINT_TYPE_BROKERS, 0), Ok(()));
        for endpoint_type in [ENDPOINT_TYPE_CONTROLLERS, 7] {
            let (code, _) = check_endpoint_type(endpoint_type, 0).unwrap_err();
            assert_eq!(code, ErrorCode::InvalidRequest);
        }
    }
}
