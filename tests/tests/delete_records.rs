//! DeleteRecords end to end on a three-broker cluster: Kafka's own `kafka-delete-records`
//! (4.1.1 `DeleteRecordsCommand`) moves a partition's log start offset on its leader, every
//! follower follows (each asked directly with the debugging replica id), the answer carries
//! the low watermark, consumers get OFFSET_OUT_OF_RANGE below it, ListOffsets earliest
//! follows it, and a restarted follower keeps it. Kafka's refusals: past the high watermark
//! (OFFSET_OUT_OF_RANGE), a compacted topic (POLICY_VIOLATION). `sluice topic
//! delete-records` does the same.

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use sluice_client::Admin;
use sluice_tests::raw::{fetch, fetch_request, topic_name, try_produce_values, RawConnection};
use sluice_tests::{kafka_tool, run_program, sluice_binary, Cluster, ClusterOptions};

const TOPIC: &str = "trim";
const OFFSET_OUT_OF_RANGE: i16 = 1;
const POLICY_VIOLATION: i16 = 44;
/// ListOffsets' earliest timestamp; the debugging replica id any replica answers for.
const EARLIEST: i64 = -2;
const DEBUGGING_REPLICA_ID: i32 = -2;

/// The log start offset of `address`'s replica of `TOPIC`-0.
fn log_start(address: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(DEBUGGING_REPLICA_ID))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(EARLIEST)])]);
    let mut conn = RawConnection::connect(address).unwrap();
    let response: ListOffsetsResponse = conn.request(ApiKey::ListOffsets, 7, &request).unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{partition:?}");
    partition.offset
}

fn wait_log_start(cluster: &Cluster, id: i32, at_least: i64) {
    let address = cluster.broker(id).bootstrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let start = log_start(&address);
        if start >= at_least {
            assert_eq!(
                start, at_least,
                "broker {id} moved past the requested offset"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker {id}'s log start is still {start}, not {at_least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn delete_records_moves_the_log_start_on_every_replica() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.create_topic(TOPIC, 1, 3, &[]);
    let leader = cluster.wait_for_leader(TOPIC, 0, Duration::from_secs(10));
    let leader_address = cluster.broker(leader).bootstrap();
    let mut conn = RawConnection::connect(&leader_address).unwrap();
    for batch in 0..10 {
        let values: Vec<String> = (0..10).map(|i| format!("v{}", batch * 10 + i)).collect();
        assert_eq!(
            try_produce_values(&mut conn, TOPIC, 0, &values, -1, 10_000)
                .unwrap()
                .0,
            0
        );
    }
    cluster.wait_for_high_watermark(TOPIC, 0, 100, Duration::from_secs(10));

    // Kafka's tool, through any broker (it finds the leader).
    let json = format!(
        r#"{{"partitions":[{{"topic":"{TOPIC}","partition":0,"offset":55}}],"version":1}}"#
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), json).unwrap();
    let path = file.path().display().to_string();
    let output = kafka_tool(
        "org.apache.kafka.tools.DeleteRecordsCommand",
        &cluster.bootstrap(),
        &["--offset-json-file", &path],
    );
    assert!(output.success(), "{}", output.describe());
    let text = output.stdout_lossy();
    assert!(text.contains("low_watermark: 55"), "{text}");

    for id in cluster.ids() {
        wait_log_start(&cluster, id, 55);
    }
    // Below the log start: out of range; at it: the batch holding it (50..60).
    let below = fetch(&mut conn, &fetch_request(TOPIC, 0, 20, 1 << 20));
    let partition = &below.responses[0].partitions[0];
    assert_eq!(partition.error_code, OFFSET_OUT_OF_RANGE);
    // Kafka answers a consumer's failed partition with the offsets unknown.
    assert_eq!(partition.log_start_offset, -1);
    let at = fetch(&mut conn, &fetch_request(TOPIC, 0, 55, 1 << 20));
    let at = &at.responses[0].partitions[0];
    assert_eq!((at.error_code, at.log_start_offset), (0, 55));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bootstrap = cluster.bootstrap();
    runtime.block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        let earliest = admin
            .list_offsets(TOPIC, sluice_client::OffsetSpec::Earliest)
            .await
            .unwrap();
        assert_eq!(earliest, vec![(0, 55)]);
        // Past the high watermark: Kafka's OFFSET_OUT_OF_RANGE; below the start: no change.
        let answers = admin.delete_records(TOPIC, &[(0, 1000)]).await.unwrap();
        let error = answers[0].1.as_ref().unwrap_err().to_string();
        assert!(error.contains("OFFSET_OUT_OF_RANGE"), "{error}");
        let answers = admin.delete_records(TOPIC, &[(0, 10)]).await.unwrap();
        assert_eq!(answers[0].1.as_ref().unwrap(), &55);
    });

    // A restarted follower keeps its log start.
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.restart(follower);
    assert_eq!(log_start(&cluster.broker(follower).bootstrap()), 55);

    // `sluice topic delete-records` with the default: everything below the high watermark.
    let cli = run_program(
        Command::new(sluice_binary()).args([
            "--bootstrap",
            &cluster.bootstrap(),
            "topic",
            "delete-records",
            TOPIC,
        ]),
        None,
        Duration::from_secs(60),
    );
    assert!(cli.success(), "{}", cli.describe());
    assert!(
        cli.stdout_lossy()
            .contains(&format!("{TOPIC}-0: records below 100 deleted")),
        "{}",
        cli.describe()
    );
    for id in cluster.ids() {
        wait_log_start(&cluster, id, 100);
    }
}

#[test]
fn a_compacted_topic_refuses_delete_records() {
    let mut cluster = Cluster::start(1, ClusterOptions::default());
    cluster.create_topic("compacted", 1, 1, &[("cleanup.policy", "compact")]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bootstrap = cluster.bootstrap();
    runtime.block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        let answers = admin.delete_records("compacted", &[(0, 0)]).await.unwrap();
        match &answers[0].1 {
            Err(sluice_client::Error::Broker { code, .. }) => {
                assert_eq!(*code, POLICY_VIOLATION)
            }
            other => panic!("{other:?}"),
        }
    });
}
