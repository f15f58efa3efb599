//! The differential test's dynamic broker config step: a cluster default
//! (`log.retention.ms`) and a per-broker config (`log.segment.bytes` of broker 1, both
//! brokers' id) set with IncrementalAlterConfigs, then a topic's configs described with
//! synonyms: the value, its source (2 per broker, 3 cluster default) and the synonym chain
//! must be Kafka's. The configs are deleted again at the end, and described once more.
//! Refusals of broker configs must carry Kafka's codes.

use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use sluice_tests::raw::RawConnection;

use super::{alter_configs, s, TOPIC};

const KEYS: &[&str] = &[
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "cleanup.policy",
];
/// (name, value, source) of a synonym.
type Synonym = (String, Option<String>, i8);
/// (name, value, source, synonyms) of a config.
type Config = (String, Option<String>, i8, Vec<Synonym>);

const SET: i8 = 0;
const DELETE: i8 = 1;

fn alter_broker(
    c: &mut RawConnection,
    broker: &str,
    name: &str,
    op: i8,
    value: Option<&str>,
) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(broker))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(name))
                .with_config_operation(op)
                .with_value(value.map(s))]),
    ]);
    let response: IncrementalAlterConfigsResponse = c
        .request(ApiKey::IncrementalAlterConfigs, 1, &request)
        .unwrap();
    response.responses[0].error_code
}

/// (name, value, source, synonyms as (name, value, source)) of `KEYS` of the topic.
fn describe(c: &mut RawConnection) -> Vec<Config> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(TOPIC))
            .with_configuration_keys(Some(KEYS.iter().map(|k| s(k)).collect()))]);
    let response: DescribeConfigsResponse =
        c.request(ApiKey::DescribeConfigs, 4, &request).unwrap();
    let mut configs: Vec<_> = response.results[0]
        .configs
        .iter()
        .map(|c| {
            let synonyms = c
                .synonyms
                .iter()
                .map(|s| {
                    (
                        s.name.to_string(),
                        s.value.as_ref().map(|v| v.to_string()),
                        s.source,
                    )
                })
                .collect();
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
                synonyms,
            )
        })
        .collect();
    configs.sort();
    configs
}

/// Describe until `done` accepts the configs (a broker applies a committed dynamic config
/// a moment after answering the alteration), at most 10 s; the last description.
fn describe_until(c: &mut RawConnection, done: impl Fn(&[Config]) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let configs = describe(c);
        if done(&configs) || Instant::now() >= deadline {
            return format!("{configs:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The step.
pub fn dynamic_defaults_in_topic_configs(c: &mut RawConnection) -> String {
    let set_override = alter_configs(c, TOPIC, &[("retention.ms", SET, Some("1000"))]);
    let with_override = describe_until(c, |configs| {
        configs
            .iter()
            .any(|(name, _, source, _)| name == "retention.ms" && *source == 1)
    });
    let set_cluster = alter_broker(c, "", "log.retention.ms", SET, Some("3600000"));
    let set_broker = alter_broker(c, "1", "log.segment.bytes", SET, Some("2097152"));
    let set_roll = alter_broker(c, "1", "log.roll.ms", SET, Some("7200000"));
    // Kafka's value lags its source here too: wait for both.
    let with_dynamic = describe_until(c, |configs| {
        let applied = configs.iter().filter(|(_, value, source, _)| {
            *source == 2 && ["2097152", "7200000"].contains(&value.as_deref().unwrap_or(""))
        });
        applied.count() == 2
    });
    let delete_override = alter_configs(c, TOPIC, &[("retention.ms", DELETE, None)]);
    let delete_cluster = alter_broker(c, "", "log.retention.ms", DELETE, None);
    let delete_broker = alter_broker(c, "1", "log.segment.bytes", DELETE, None);
    let delete_roll = alter_broker(c, "1", "log.roll.ms", DELETE, None);
    // A broker applies a removal to its topics a moment after it answers (Kafka's value
    // lags its source): wait for the values too.
    let without = describe_until(c, |configs| {
        configs.iter().all(|(_, value, source, _)| {
            let value = value.as_deref().unwrap_or("");
            *source == 5 && !["1000", "2097152", "7200000", "3600000"].contains(&value)
        })
    });
    // Refusals: a broker's own min.insync.replicas (INVALID_CONFIG), a bad value
    // (INVALID_REQUEST for a broker resource), a config that is not dynamic.
    let refused = [
        alter_broker(c, "1", "min.insync.replicas", SET, Some("2")),
        alter_broker(c, "", "log.retention.ms", SET, Some("soon")),
        alter_broker(c, "", "min.insync.replicas", SET, Some("0")),
        alter_broker(c, "", "log.dirs", SET, Some("/elsewhere")),
    ];
    format!(
        "refused {refused:?}; override {set_override}: {with_override}; \
         set {set_cluster} {set_broker} {set_roll}: {with_dynamic}; \
         deleted {delete_override} {delete_cluster} {delete_broker} {delete_roll}: {without}"
    )
}
