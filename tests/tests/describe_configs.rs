//! DescribeConfigs of a topic as Kafka 4.1.1 answers it (compared with the reference
//! broker on 2026-12-07; `broker/src/storage/manager/kafka_topic_configs.rs`): Kafka's 33
//! topic configs and Sluice's `durability`, with sources, types and synonyms; Kafka's
//! configs Sluice does not implement accepted at Kafka's default only (INVALID_CONFIG for
//! any other value).

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_tests::raw::RawConnection;
use sluice_tests::Broker;

fn describe(conn: &mut RawConnection, topic: &str) -> DescribeConfigsResponse {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(true);
    conn.request(ApiKey::DescribeConfigs, 4, &request).unwrap()
}

#[test]
fn a_topic_lists_kafkas_configs_with_sources_types_and_synonyms() {
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        let configs = [
            ("retention.ms".to_string(), "12345".to_string()),
            // What Kafka Streams sets: Kafka's default of a config Sluice does not implement.
            (
                "message.timestamp.type".to_string(),
                "CreateTime".to_string(),
            ),
        ];
        admin
            .create_topic("described", 1, 1, &configs)
            .await
            .unwrap();
        let other = [(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        )];
        let refused = admin
            .create_topic("refused", 1, 1, &other)
            .await
            .unwrap_err();
        assert_eq!(refused.kafka_code(), Some(40), "INVALID_CONFIG: {refused}");
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let response = describe(&mut conn, "described");
    let result = &response.results[0];
    assert_eq!(result.error_code, 0);
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 34, "{names:?}");
    let config = |name: &str| {
        result
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
    };
    let synonyms = |name: &str| -> Vec<(String, i8)> {
        config(name)
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect()
    };
    let retention = config("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("12345"));
    assert_eq!((retention.config_source, retention.config_type), (1, 5));
    assert_eq!(synonyms("retention.ms"), [("retention.ms".to_string(), 1)]);
    let cleanup = config("cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_eq!((cleanup.config_source, cleanup.config_type), (5, 7));
    assert_eq!(
        synonyms("cleanup.policy"),
        [("log.cleanup.policy".to_string(), 5)]
    );
    let timestamp_type = config("message.timestamp.type");
    assert_eq!(timestamp_type.value.as_deref(), Some("CreateTime"));
    assert_eq!(timestamp_type.config_source, 1);
    assert_eq!(
        config("compression.type").value.as_deref(),
        Some("producer")
    );
    assert!(result
        .configs
        .iter()
        .all(|c| !c.read_only && !c.is_sensitive));
}
