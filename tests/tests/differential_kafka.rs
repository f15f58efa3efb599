//! The differential test: one scripted sequence of requests (admin, produce, fetch,
//! offsets, configs, and errors on purpose) sent to Apache Kafka 4.1.1 (started from the
//! jars `tests/java` provisions, [`KafkaReference`]) and to Sluice, each answer reduced to
//! the fields both must agree on and compared. Ignored: what must differ (topic ids,
//! throttle times, hosts and ports, error messages, timestamps the broker picks). Every
//! other difference fails the test, unless it is listed in [`KNOWN_DIFFERENCES`] with its
//! reason (and in `docs/compatibility.md`).

#[path = "differential_kafka/broker_configs.rs"]
mod broker_configs;
#[path = "differential_kafka/fetch_sessions.rs"]
mod fetch_sessions;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{encode_batch, Record};
use sluice_tests::kafka_reference::KafkaReference;
use sluice_tests::raw::{produce_request, topic_id, topic_name, RawConnection};
use sluice_tests::Broker;

const TOPIC: &str = "diff";
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// Steps whose answers differ on purpose, with the reason.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "create a topic with segment.bytes=1024",
    "Sluice allows segments down to 14 bytes (its tests use tiny ones); Kafka 4.1 refuses below 1 MiB",
)];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// One step: a name and what it sends, reduced to a comparable view.
struct Step {
    name: &'static str,
    run: fn(&mut RawConnection) -> String,
}

fn create_topics(conn: &mut RawConnection, topics: Vec<CreatableTopic>) -> String {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = conn.request(ApiKey::CreateTopics, 7, &request).unwrap();
    let view: Vec<_> = response
        .topics
        .iter()
        .map(|t| {
            let ok = t.error_code == 0;
            (
                t.name.0.to_string(),
                t.error_code,
                ok.then_some(t.num_partitions),
                ok.then_some(t.replication_factor),
            )
        })
        .collect();
    format!("{view:?}")
}

fn topic(name: &str, partitions: i32, factor: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

fn batch(count: i64, codec: Compression) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![],
            timestamp: BASE_TIMESTAMP + i,
        })
        .collect();
    encode_batch(&records, codec).unwrap()
}

fn produce(
    conn: &mut RawConnection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> String {
    let request = produce_request(topic, partition, records, acks);
    let response: ProduceResponse = conn.request(ApiKey::Produce, 9, &request).unwrap();
    let view: Vec<_> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses.iter().map(|p| {
                (
                    p.index,
                    p.error_code,
                    p.base_offset,
                    p.log_start_offset,
                    p.record_errors.len(),
                )
            })
        })
        .collect();
    format!("{view:?}")
}

fn fetch(conn: &mut RawConnection, partition: i32, offset: i64) -> String {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = conn.request(ApiKey::Fetch, 12, &request).unwrap();
    let p = &response.responses[0].partitions[0];
    let records = p.records.as_ref().map_or(0, |r| {
        sluice_protocol::batch::Batches::new(r)
            .flatten()
            .map(|(h, _)| i64::from(h.last_offset_delta) + 1)
            .sum::<i64>()
    });
    format!(
        "{:?}",
        (
            response.error_code,
            p.error_code,
            p.high_watermark,
            p.last_stable_offset,
            p.log_start_offset,
            records
        )
    )
}

fn list_offsets(conn: &mut RawConnection, timestamp: i64) -> String {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = conn.request(ApiKey::ListOffsets, 7, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    // The timestamp of earliest/latest answers is the broker's choice (-1 on both today).
    format!(
        "{:?}",
        (p.error_code, p.offset, p.timestamp, p.leader_epoch)
    )
}

fn describe_configs(conn: &mut RawConnection, name: &str, keys: &[&str]) -> String {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(keys.iter().map(|k| s(k)).collect()))]);
    let response: DescribeConfigsResponse =
        conn.request(ApiKey::DescribeConfigs, 4, &request).unwrap();
    let r = &response.results[0];
    let mut configs: Vec<_> = r
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.read_only,
                c.config_source,
                c.is_sensitive,
                c.config_type,
            )
        })
        .collect();
    configs.sort();
    format!("{:?}", (r.error_code, configs))
}

fn alter_configs(
    conn: &mut RawConnection,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> String {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configs(
                changes
                    .iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let response: IncrementalAlterConfigsResponse = conn
        .request(ApiKey::IncrementalAlterConfigs, 1, &request)
        .unwrap();
    let view: Vec<_> = response
        .responses
        .iter()
        .map(|r| (r.resource_name.to_string(), r.error_code))
        .collect();
    format!("{view:?}")
}

fn create_partitions(conn: &mut RawConnection, name: &str, count: i32) -> String {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)])
        .with_timeout_ms(30_000);
    let response: CreatePartitionsResponse =
        conn.request(ApiKey::CreatePartitions, 3, &request).unwrap();
    format!("{:?}", (response.results[0].error_code))
}

fn delete_records(conn: &mut RawConnection, offset: i64) -> String {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])])
        .with_timeout_ms(30_000);
    let response: DeleteRecordsResponse = conn.request(ApiKey::DeleteRecords, 2, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    format!("{:?}", (p.error_code, p.low_watermark))
}

fn metadata(conn: &mut RawConnection, names: &[&str]) -> String {
    let request = MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = conn.request(ApiKey::Metadata, 12, &request).unwrap();
    let mut view: Vec<_> = response
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.error_code,
                        p.leader_id.0,
                        p.leader_epoch,
                        p.replica_nodes.len(),
                        p.isr_nodes.len(),
                    )
                })
                .collect();
            partitions.sort();
            (
                t.name.as_ref().map(|n| n.0.to_string()),
                t.error_code,
                t.is_internal,
                partitions,
            )
        })
        .collect();
    view.sort();
    format!("{view:?}")
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "create a topic, a bad name, zero partitions, too many replicas, a bad config",
            run: |c| {
                create_topics(
                    c,
                    vec![
                        topic(TOPIC, 2, 1, &[]),
                        topic("bad name!", 1, 1, &[]),
                        topic("zero", 0, 1, &[]),
                        topic("wide", 1, 3, &[]),
                        topic("badconfig", 1, 1, &[("retention.ms", "abc")]),
                        topic("unknownconfig", 1, 1, &[("no.such.config", "1")]),
                    ],
                )
            },
        },
        Step {
            name: "create the same topic again",
            run: |c| create_topics(c, vec![topic(TOPIC, 2, 1, &[])]),
        },
        Step {
            name: "create a topic with segment.bytes=1024",
            run: |c| create_topics(c, vec![topic("tiny", 1, 1, &[("segment.bytes", "1024")])]),
        },
        Step {
            name: "metadata of the topic and an unknown one",
            run: |c| metadata(c, &[TOPIC, "nope"]),
        },
        Step {
            name: "produce three records (acks=1)",
            run: |c| produce(c, TOPIC, 0, batch(3, Compression::None), 1),
        },
        Step {
            name: "produce five gzip records (acks=all)",
            run: |c| produce(c, TOPIC, 0, batch(5, Compression::Gzip), -1),
        },
        Step {
            name: "produce to a partition that does not exist",
            run: |c| produce(c, TOPIC, 7, batch(1, Compression::None), 1),
        },
        Step {
            name: "produce to an unknown topic",
            run: |c| produce(c, "nope", 0, batch(1, Compression::None), 1),
        },
        Step {
            name: "produce a batch with a wrong CRC",
            run: |c| {
                let mut bytes = batch(2, Compression::None).to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 0xff;
                produce(c, TOPIC, 0, Bytes::from(bytes), 1)
            },
        },
        Step {
            name: "produce by topic id (v13) and to an unknown id",
            run: |c| {
                let id = topic_id(c, TOPIC);
                let by_id = |c: &mut RawConnection, id| {
                    let mut request = produce_request("", 1, batch(2, Compression::None), 1);
                    request.topic_data[0].topic_id = id;
                    let response: ProduceResponse =
                        c.request(ApiKey::Produce, 13, &request).unwrap();
                    let t = &response.responses[0];
                    let p = &t.partition_responses[0];
                    (t.topic_id == id, p.error_code, p.base_offset)
                };
                let known = by_id(c, id);
                let unknown = by_id(c, uuid::Uuid::from_u128(0x5eed));
                format!("{known:?} {unknown:?}")
            },
        },
        Step {
            name: "produce with acks=2",
            run: |c| produce(c, TOPIC, 0, batch(1, Compression::None), 2),
        },
        Step {
            name: "fetch from offset 0",
            run: |c| fetch(c, 0, 0),
        },
        Step {
            name: "fetch past the log end",
            run: |c| fetch(c, 0, 100),
        },
        Step {
            name: "fetch an empty partition",
            run: |c| fetch(c, 1, 0),
        },
        Step {
            name: "fetch by topic id (v17) and by an unknown id",
            run: |c| {
                let id = topic_id(c, TOPIC);
                let by_id = |c: &mut RawConnection, id| {
                    let request = FetchRequest::default()
                        .with_max_wait_ms(0)
                        .with_min_bytes(0)
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![FetchTopic::default()
                            .with_topic_id(id)
                            .with_partitions(vec![FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)])]);
                    let response: FetchResponse = c.request(ApiKey::Fetch, 17, &request).unwrap();
                    let t = &response.responses[0];
                    let p = &t.partitions[0];
                    (t.topic_id == id, p.error_code, p.high_watermark)
                };
                let known = by_id(c, id);
                let unknown = by_id(c, uuid::Uuid::from_u128(0x5eed));
                format!("{known:?} {unknown:?}")
            },
        },
        Step {
            name: "a fetch session: full, incremental, stale epoch, forget, v13, unknown, close",
            run: fetch_sessions::session_life,
        },
        Step {
            name: "list offsets: earliest",
            run: |c| list_offsets(c, -2),
        },
        Step {
            name: "list offsets: latest",
            run: |c| list_offsets(c, -1),
        },
        Step {
            name: "list offsets: a timestamp inside the first batch",
            run: |c| list_offsets(c, BASE_TIMESTAMP + 1),
        },
        Step {
            name: "list offsets: a timestamp after every record",
            run: |c| list_offsets(c, BASE_TIMESTAMP + 1_000_000),
        },
        Step {
            name: "offset for leader epoch 0",
            run: |c| {
                let request = OffsetForLeaderEpochRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![OffsetForLeaderTopic::default()
                        .with_topic(topic_name(TOPIC))
                        .with_partitions(vec![OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0)])]);
                let response: OffsetForLeaderEpochResponse = c
                    .request(ApiKey::OffsetForLeaderEpoch, 4, &request)
                    .unwrap();
                let p = &response.topics[0].partitions[0];
                format!("{:?}", (p.error_code, p.leader_epoch, p.end_offset))
            },
        },
        Step {
            name: "describe three topic configs",
            run: |c| {
                describe_configs(
                    c,
                    TOPIC,
                    &["retention.ms", "cleanup.policy", "max.message.bytes"],
                )
            },
        },
        Step {
            name: "describe the configs of an unknown topic",
            run: |c| describe_configs(c, "nope", &["retention.ms"]),
        },
        Step {
            name: "alter configs: set retention.ms, append to cleanup.policy",
            run: |c| {
                alter_configs(
                    c,
                    TOPIC,
                    &[
                        ("retention.ms", 0, Some("86400000")),
                        ("cleanup.policy", 2, Some("compact")),
                    ],
                )
            },
        },
        Step {
            name: "alter configs: a bad value, an unknown key, append to a long",
            run: |c| {
                let mut views = Vec::new();
                for change in [
                    ("retention.ms", 0, Some("abc")),
                    ("no.such.config", 0, Some("1")),
                    ("retention.ms", 2, Some("5")),
                ] {
                    views.push(alter_configs(c, TOPIC, &[change]));
                }
                views.join(" ")
            },
        },
        Step {
            name: "alter configs: a key twice, an unknown topic",
            run: |c| {
                let twice = alter_configs(
                    c,
                    TOPIC,
                    &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
                );
                let unknown = alter_configs(c, "nope", &[("retention.ms", 0, Some("1"))]);
                format!("{twice} {unknown}")
            },
        },
        Step {
            name: "describe the altered configs",
            run: |c| describe_configs(c, TOPIC, &["retention.ms", "cleanup.policy"]),
        },
        Step {
            name: "alter configs: delete them again",
            run: |c| {
                alter_configs(
                    c,
                    TOPIC,
                    &[("retention.ms", 1, None), ("cleanup.policy", 1, None)],
                )
            },
        },
        Step {
            name: "dynamic broker configs: a topic's sources and synonyms",
            run: broker_configs::dynamic_defaults_in_topic_configs,
        },
        Step {
            name: "legacy AlterConfigs replaces the overrides; an unknown key",
            run: |c| {
                let legacy = |c: &mut RawConnection, pairs: &[(&str, &str)]| {
                    let request = AlterConfigsRequest::default().with_resources(vec![
                        alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s(TOPIC))
                            .with_configs(
                                pairs
                                    .iter()
                                    .map(|(k, v)| {
                                        alter_configs_request::AlterableConfig::default()
                                            .with_name(s(k))
                                            .with_value(Some(s(v)))
                                    })
                                    .collect(),
                            ),
                    ]);
                    let response: AlterConfigsResponse =
                        c.request(ApiKey::AlterConfigs, 2, &request).unwrap();
                    response.responses[0].error_code
                };
                let set = legacy(c, &[("retention.ms", "5000")]);
                let unknown = legacy(c, &[("no.such.config", "1")]);
                let described = describe_configs(c, TOPIC, &["retention.ms", "segment.ms"]);
                format!("{set} {unknown} {described}")
            },
        },
        Step {
            name: "create partitions: fewer, more, unknown topic",
            run: |c| {
                format!(
                    "{} {} {}",
                    create_partitions(c, TOPIC, 1),
                    create_partitions(c, TOPIC, 3),
                    create_partitions(c, "nope", 2)
                )
            },
        },
        Step {
            name: "delete records past the high watermark",
            run: |c| delete_records(c, 100),
        },
        Step {
            name: "delete records below offset 2",
            run: |c| delete_records(c, 2),
        },
        Step {
            name: "fetch below the new log start",
            run: |c| fetch(c, 0, 1),
        },
        Step {
            name: "list offsets: earliest after deleting records",
            run: |c| list_offsets(c, -2),
        },
        Step {
            name: "delete an unknown topic, then the topic",
            run: |c| {
                let request = DeleteTopicsRequest::default()
                    .with_topics(
                        ["nope", TOPIC]
                            .iter()
                            .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                            .collect(),
                    )
                    .with_timeout_ms(30_000);
                let response: DeleteTopicsResponse =
                    c.request(ApiKey::DeleteTopics, 6, &request).unwrap();
                // Kafka answers in no particular order.
                let mut view: Vec<_> = response
                    .responses
                    .iter()
                    .map(|r| (r.name.as_ref().map(|n| n.0.to_string()), r.error_code))
                    .collect();
                view.sort();
                format!("{view:?}")
            },
        },
    ]
}

/// Wait until the broker's metadata shows a leader for every partition of `topic`.
fn wait_for_leaders(conn: &mut RawConnection, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        let response: MetadataResponse = conn.request(ApiKey::Metadata, 12, &request).unwrap();
        let ready = response.topics.iter().all(|t| {
            t.error_code == 0
                && t.partitions
                    .iter()
                    .all(|p| p.leader_id.0 >= 0 && p.error_code == 0)
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no leaders for {topic}: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sluice_answers_a_scripted_session_as_kafka_does() {
    let kafka = KafkaReference::start();
    let sluice = Broker::start();
    let mut to_kafka = RawConnection::connect(&kafka.bootstrap()).unwrap();
    let mut to_sluice = RawConnection::connect(&sluice.bootstrap()).unwrap();
    let mut differences = Vec::new();
    let mut known = Vec::new();
    for step in steps() {
        let expected = (step.run)(&mut to_kafka);
        let actual = (step.run)(&mut to_sluice);
        if step.name.starts_with("create a topic, a bad name")
            || step.name.starts_with("create partitions")
        {
            wait_for_leaders(&mut to_kafka, TOPIC);
            wait_for_leaders(&mut to_sluice, TOPIC);
        }
        if expected == actual {
            continue;
        }
        let line = format!("{}:\n  kafka:  {expected}\n  sluice: {actual}", step.name);
        match KNOWN_DIFFERENCES
            .iter()
            .find(|(name, _)| *name == step.name)
        {
            Some((_, reason)) => known.push(format!("{line}\n  known: {reason}")),
            None => differences.push(line),
        }
    }
    for line in &known {
        eprintln!("{line}");
    }
    assert!(
        differences.is_empty(),
        "{} step(s) answered differently:\n{}\n--- kafka log ---\n{}",
        differences.len(),
        differences.join("\n"),
        kafka.log_tail(2048)
    );
}
