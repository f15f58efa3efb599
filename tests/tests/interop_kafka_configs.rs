//! Topic configs altered after creation, with Kafka's own `kafka-configs` (the 4.1.1
//! `kafka.admin.ConfigCommand`, IncrementalAlterConfigs), with `sluice topic alter
//! --config` and with Sluice's admin client:
//! the change is applied live (a smaller `max.message.bytes` refuses the next batch,
//! `retention.bytes` deletes segments at the next retention pass), survives a restart,
//! reaches every broker of a cluster, and bad changes are refused as Kafka refuses them.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_client::{Admin, ConfigOp, OffsetSpec};
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{encode_batch, Record};
use sluice_tests::raw::{produce_batch, RawConnection};
use sluice_tests::{
    kafka_tool, run_program, sluice_binary, Broker, BrokerOptions, Cluster, ClusterOptions,
    ProgramOutput,
};

const CONFIG_COMMAND: &str = "kafka.admin.ConfigCommand";
/// Kafka's MESSAGE_TOO_LARGE.
const MESSAGE_TOO_LARGE: i16 = 10;

fn kafka_configs(broker: &Broker, args: &[&str]) -> ProgramOutput {
    let mut all = vec!["--entity-type", "topics"];
    all.extend_from_slice(args);
    kafka_tool(CONFIG_COMMAND, &broker.bootstrap(), &all)
}

fn alter_ok(broker: &Broker, args: &[&str]) {
    let mut all = vec!["--alter", "--entity-name", "live"];
    all.extend_from_slice(args);
    let output = kafka_configs(broker, &all);
    assert!(
        output.success(),
        "kafka-configs {all:?}: {}\n--- broker log ---\n{}",
        output.describe(),
        broker.log_tail(4096)
    );
}

/// The tool's failure text, for a change the broker must refuse.
fn alter_refused(broker: &Broker, args: &[&str]) -> String {
    let mut all = vec!["--alter"];
    all.extend_from_slice(args);
    let output = kafka_configs(broker, &all);
    assert!(!output.success(), "kafka-configs {all:?} was accepted");
    format!(
        "{}{}",
        output.stdout_lossy(),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One batch of `count` records of 40 bytes each, now; the produce error code.
fn produce(broker: &Broker, count: usize) -> i16 {
    let now = sluice_protocol::clock::now_ms();
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            key: None,
            value: Some(Bytes::from(format!("{i:040}"))),
            headers: vec![],
            timestamp: now,
        })
        .collect();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let batch = encode_batch(&records, Compression::None).unwrap();
    produce_batch(&mut conn, "live", 0, batch, -1).0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn earliest(runtime: &tokio::runtime::Runtime, broker: &Broker) -> i64 {
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin
            .list_offsets("live", OffsetSpec::Earliest)
            .await
            .unwrap()[0]
            .1
    })
}

/// A broker whose retention runs every 100 ms, with topic "live" (1 KiB segments) holding
/// ten batches over several segments.
fn broker_with_live_topic() -> (Broker, tokio::runtime::Runtime) {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--retention-check-interval-ms".into(), "100".into()],
        ..BrokerOptions::default()
    });
    let runtime = runtime();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin
            .create_topic("live", 1, 1, &[("segment.bytes".into(), "1024".into())])
            .await
            .unwrap();
    });
    for _ in 0..10 {
        assert_eq!(produce(&broker, 20), 0);
    }
    (broker, runtime)
}

/// Wait (at most 15 s) until retention has moved the log start of "live" past 0.
fn wait_for_retention(runtime: &tokio::runtime::Runtime, broker: &Broker, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while earliest(runtime, broker) == 0 {
        assert!(
            Instant::now() < deadline,
            "{why} deleted nothing in 15 s\n{}",
            broker.log_tail(4096)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kafka_configs_alters_a_topic_live_and_refuses_what_kafka_refuses() {
    let (mut broker, runtime) = broker_with_live_topic();
    assert_eq!(earliest(&runtime, &broker), 0);

    // A smaller max.message.bytes refuses the next batch at once.
    alter_ok(&broker, &["--add-config", "max.message.bytes=64"]);
    assert_eq!(produce(&broker, 20), MESSAGE_TOO_LARGE);
    alter_ok(&broker, &["--delete-config", "max.message.bytes"]);
    assert_eq!(produce(&broker, 20), 0);

    // retention.bytes=1 keeps only the active segment: the next pass deletes the rest.
    alter_ok(
        &broker,
        &["--add-config", "retention.bytes=1,cleanup.policy=[delete]"],
    );
    wait_for_retention(&runtime, &broker, "retention.bytes=1");

    // Bad values, unknown names and topics, and the config fixed at creation.
    let refused = alter_refused(
        &broker,
        &["--entity-name", "live", "--add-config", "retention.ms=abc"],
    );
    assert!(
        refused.contains("InvalidConfigurationException") && refused.contains("retention.ms"),
        "{refused}"
    );
    let refused = alter_refused(
        &broker,
        &["--entity-name", "live", "--add-config", "no.such.config=1"],
    );
    assert!(
        refused.contains("InvalidConfigurationException") && refused.contains("no.such.config"),
        "{refused}"
    );
    let refused = alter_refused(
        &broker,
        &["--entity-name", "live", "--add-config", "durability=fsync"],
    );
    assert!(
        refused.contains("InvalidConfigurationException")
            && refused.contains("fixed when the topic is created"),
        "{refused}"
    );
    let refused = alter_refused(
        &broker,
        &["--entity-name", "nope", "--add-config", "retention.ms=1"],
    );
    assert!(
        refused.contains("UnknownTopicOrPartitionException"),
        "{refused}"
    );

    // Sluice's own CLI changes them the same way.
    let cli = run_program(
        Command::new(sluice_binary()).args([
            "--bootstrap",
            &broker.bootstrap(),
            "topic",
            "alter",
            "live",
            "--config",
            "segment.ms=3600000",
            "--delete-config",
            "retention.ms",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(cli.success(), "{}", cli.describe());
    assert!(cli
        .stdout_lossy()
        .contains("Updated the configs of topic live."));

    // The overrides are in the replicated metadata: a restart keeps them.
    broker.restart();
    let described = kafka_configs(&broker, &["--describe", "--entity-name", "live"]);
    let text = described.stdout_lossy();
    assert!(described.success(), "{}", described.describe());
    for expected in [
        "retention.bytes=1",
        "cleanup.policy=delete",
        "segment.bytes=1024",
        "segment.ms=3600000",
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    assert!(!text.contains("max.message.bytes"), "{text}");
}

#[test]
fn a_config_altered_through_one_broker_reaches_every_broker() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let runtime = runtime();
    runtime.block_on(async {
        let admin = Admin::new(&cluster.bootstrap()).await.unwrap();
        admin.create_topic("spread", 3, 3, &[]).await.unwrap();
        let changes = [
            ConfigOp::Set("retention.ms".into(), "3600000".into()),
            ConfigOp::Append("cleanup.policy".into(), "compact".into()),
        ];
        // validate_only checks and changes nothing.
        admin
            .alter_topic_configs("spread", &changes, true)
            .await
            .unwrap();
        let bad = [ConfigOp::Append("retention.ms".into(), "5".into())];
        let error = admin
            .alter_topic_configs("spread", &bad, false)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("INVALID_CONFIG"), "{error}");
        admin
            .alter_topic_configs("spread", &changes, false)
            .await
            .unwrap();
    });
    // Every broker describes the new values (each asked directly).
    for id in cluster.ids() {
        let address = cluster.broker(id).bootstrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = (
                described(&address, "spread", "retention.ms"),
                described(&address, "spread", "cleanup.policy"),
            );
            if seen == (Some("3600000".into()), Some("delete,compact".into())) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {id} still describes {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One config's value as the broker at `address` describes it (DescribeConfigs v4).
fn described(address: &str, topic: &str, name: &str) -> Option<String> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(name.to_string())]))]);
    let mut conn = RawConnection::connect(address).unwrap();
    let response: DescribeConfigsResponse =
        conn.request(ApiKey::DescribeConfigs, 4, &request).unwrap();
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

fn kafka_broker_configs(broker: &Broker, args: &[&str]) -> ProgramOutput {
    let mut all = vec!["--entity-type", "brokers"];
    all.extend_from_slice(args);
    kafka_tool(CONFIG_COMMAND, &broker.bootstrap(), &all)
}

#[test]
fn dynamic_broker_configs_change_every_topics_defaults_live() {
    let (broker, runtime) = broker_with_live_topic();
    let ok = |output: ProgramOutput| {
        assert!(output.success(), "{}", output.describe());
        output.stdout_lossy()
    };
    // This broker's own message.max.bytes: the next batch is too large, until removed.
    ok(kafka_broker_configs(
        &broker,
        &[
            "--alter",
            "--entity-name",
            "1",
            "--add-config",
            "message.max.bytes=64",
        ],
    ));
    assert_eq!(produce(&broker, 20), MESSAGE_TOO_LARGE);
    let described = ok(kafka_broker_configs(
        &broker,
        &["--describe", "--entity-name", "1"],
    ));
    assert!(described.contains("message.max.bytes=64"), "{described}");
    ok(kafka_broker_configs(
        &broker,
        &[
            "--alter",
            "--entity-name",
            "1",
            "--delete-config",
            "message.max.bytes",
        ],
    ));
    assert_eq!(produce(&broker, 20), 0);

    // The cluster default's log.retention.bytes reaches the topic (it has no override).
    ok(kafka_broker_configs(
        &broker,
        &[
            "--alter",
            "--entity-default",
            "--add-config",
            "log.retention.bytes=1",
        ],
    ));
    wait_for_retention(&runtime, &broker, "log.retention.bytes=1");
    let described = ok(kafka_broker_configs(
        &broker,
        &["--describe", "--entity-default"],
    ));
    assert!(described.contains("log.retention.bytes=1"), "{described}");

    // A config Sluice cannot change at run time, a bad value (both INVALID_REQUEST for a
    // broker resource, as Kafka), and a broker's own min.insync.replicas (cluster-wide
    // only: INVALID_CONFIG, as Kafka 4.1).
    for (entity, config, expected) in [
        (
            "--entity-default",
            "log.dirs=/elsewhere",
            "Cannot update these configs dynamically",
        ),
        (
            "--entity-default",
            "log.retention.ms=soon",
            "InvalidRequestException: Invalid value soon for configuration log.retention.ms",
        ),
        (
            "--entity-name=1",
            "min.insync.replicas=2",
            "Broker-level min.insync.replicas cannot be altered",
        ),
    ] {
        let refused = kafka_broker_configs(&broker, &["--alter", entity, "--add-config", config]);
        let text = format!(
            "{}{}",
            refused.stdout_lossy(),
            String::from_utf8_lossy(&refused.stderr)
        );
        assert!(
            !refused.success() && text.contains(expected),
            "{config}: {text}"
        );
    }
}
