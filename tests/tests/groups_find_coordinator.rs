//! FindCoordinator against the real broker: the first request for a group creates
//! `__consumer_offsets` and is answered COORDINATOR_NOT_AVAILABLE (clients retry); then the
//! coordinator is the leader of the group's partition (`abs(hashCode) % partitions`, as
//! Kafka). Batched keys (v4+), the single-key versions, and the refused key types.

use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_tests::raw::{metadata, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_REQUEST: i16 = 42;

fn find(
    conn: &mut RawConnection,
    version: i16,
    key_type: i8,
    key: &str,
) -> FindCoordinatorResponse {
    let key = StrBytes::from_string(key.to_string());
    let mut request = FindCoordinatorRequest::default();
    if version >= 4 {
        request.coordinator_keys = vec![key];
    } else {
        request.key = key;
    }
    if version >= 1 {
        request.key_type = key_type;
    }
    conn.request(ApiKey::FindCoordinator, version, &request)
        .expect("FindCoordinator")
}

#[test]
fn the_first_request_creates_the_offsets_topic_and_then_the_leader_coordinates() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--offsets-topic-num-partitions".into(), "7".into()],
        ..Default::default()
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let first = find(&mut conn, 3, 0, "my-group");
    assert_eq!(first.error_code, COORDINATOR_NOT_AVAILABLE, "{first:?}");
    assert_eq!(
        (first.node_id.0, first.port, first.host.as_str()),
        (-1, -1, "")
    );
    assert_eq!(
        first.error_message.as_deref(),
        Some("The coordinator is not available.")
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let response = find(&mut conn, 3, 0, "my-group");
        if response.error_code == 0 {
            break response;
        }
        assert_eq!(
            response.error_code, COORDINATOR_NOT_AVAILABLE,
            "{response:?}"
        );
        assert!(Instant::now() < deadline, "no coordinator after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let address = broker.listen_address();
    assert_eq!(found.node_id.0, 1);
    assert_eq!(found.host.as_str(), address.ip().to_string());
    assert_eq!(found.port, i32::from(address.port()));
    assert_eq!(found.error_message.as_deref(), Some("NONE"));

    // The internal topic: the configured partition count, replication factor clamped to
    // the one broker there is, marked internal.
    let response = metadata(&mut conn, Some(&["__consumer_offsets"])).unwrap();
    let topic = &response.topics[0];
    assert_eq!(topic.error_code, 0, "{topic:?}");
    assert!(topic.is_internal);
    assert_eq!(topic.partitions.len(), 7);
    assert!(topic.partitions.iter().all(|p| p.replica_nodes.len() == 1));
    // Compacted (no time retention) with Kafka's segment size for the topic.
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("__consumer_offsets"))
            .with_configuration_keys(None)]);
    let configs: DescribeConfigsResponse =
        conn.request(ApiKey::DescribeConfigs, 4, &request).unwrap();
    let value = |name: &str| {
        configs.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
    };
    assert_eq!(
        value("cleanup.policy").as_deref(),
        Some("compact"),
        "{configs:?}"
    );
    assert_eq!(value("segment.bytes").as_deref(), Some("104857600"));

    // v0 (no key type), and the batched form with several keys.
    assert_eq!(find(&mut conn, 0, 0, "g").error_code, 0);
    let mut request = FindCoordinatorRequest::default();
    request.coordinator_keys = ["a", "b", ""]
        .iter()
        .map(|key| StrBytes::from_string(key.to_string()))
        .collect();
    let batched: FindCoordinatorResponse =
        conn.request(ApiKey::FindCoordinator, 4, &request).unwrap();
    let keys: Vec<&str> = batched
        .coordinators
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(keys, ["a", "b", ""]);
    for coordinator in &batched.coordinators {
        assert_eq!(coordinator.error_code, 0, "{coordinator:?}");
        assert_eq!(coordinator.node_id.0, 1);
        assert_eq!(coordinator.port, i32::from(address.port()));
    }
}

#[test]
fn transactional_ids_and_unknown_key_types_are_refused_clearly() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    for version in [1, 3, 4, 6] {
        let response = find(&mut conn, version, 1, "my-transactional-id");
        let (code, message) = if version >= 4 {
            let c = &response.coordinators[0];
            (c.error_code, c.error_message.clone())
        } else {
            (response.error_code, response.error_message.clone())
        };
        assert_eq!(code, INVALID_REQUEST, "v{version}: {response:?}");
        assert!(
            message.as_deref().unwrap_or("").contains("transactions"),
            "v{version}: {message:?}"
        );
        let response = find(&mut conn, version, 9, "x");
        let code = if version >= 4 {
            response.coordinators[0].error_code
        } else {
            response.error_code
        };
        assert_eq!(code, INVALID_REQUEST, "v{version}");
    }
    // Nothing was created for them.
    let response = metadata(&mut conn, Some(&["__consumer_offsets"])).unwrap();
    assert_ne!(response.topics[0].error_code, 0);
}
