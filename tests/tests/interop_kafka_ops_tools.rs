//! Kafka's operations and system-test tools (the 4.1.1 jars) against real `sluiced`, read
//! as their users read them: `kafka-producer-perf-test` and `kafka-consumer-perf-test` move
//! every record, `kafka-transactions describe-producers` lists the idempotent producer, `kafka-e2e-latency` gets its records back (its consumer in an incremental fetch session), `kafka-verifiable-producer` and
//! `kafka-verifiable-consumer` (Kafka's own system-test clients) see every record acked,
//! consumed in a group and committed, and `kafka-reassign-partitions --generate / --execute
//! / --verify` (with a replication throttle, set as dynamic broker and topic configs and
//! cleared by --verify) and `kafka-leader-election` move replicas and leaders on a
//! three-broker cluster.

use std::time::{Duration, Instant};

use sluice_tests::raw::{metric_sum, metric_value, wait_for_metrics};
use sluice_tests::{kafka_tool, run_program, Broker, Cluster, ClusterOptions, ProgramOutput};

fn ok(output: ProgramOutput, what: &str) -> String {
    assert!(output.success(), "{what}: {}", output.describe());
    output.stdout_lossy()
}

/// A tool that takes its broker another way than `--bootstrap-server`.
fn java(args: &[&str]) -> ProgramOutput {
    run_program(
        std::process::Command::new("java")
            .arg("-cp")
            .arg(sluice_tests::java_classpath())
            .args(args),
        None,
        Duration::from_secs(120),
    )
}

/// The JSON events a verifiable client printed, one per line.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn perf_and_latency_tools_move_every_record() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let servers = format!("bootstrap.servers={bootstrap}");
    let produced = ok(
        java(&[
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            "perf",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            &servers,
            "acks=all",
        ]),
        "kafka-producer-perf-test",
    );
    assert!(
        produced.contains("20000 records sent"),
        "kafka-producer-perf-test:\n{produced}"
    );
    // The perf producer is idempotent: `kafka-transactions describe-producers` (on the
    // partition's leader, DescribeProducers) lists it with its last sequence.
    let producers = ok(
        kafka_tool(
            "org.apache.kafka.tools.TransactionsCommand",
            &bootstrap,
            &["describe-producers", "--topic", "perf", "--partition", "0"],
        ),
        "kafka-transactions describe-producers",
    );
    let row: Vec<&str> = producers
        .lines()
        .skip_while(|l| !l.starts_with("ProducerId"))
        .nth(1)
        .unwrap_or_else(|| panic!("no producer listed:\n{producers}"))
        .split_whitespace()
        .collect();
    // ProducerId, ProducerEpoch, LatestCoordinatorEpoch, LastSequence, LastTimestamp, ...
    assert_eq!(
        (row[1], row[2], row[3]),
        ("0", "-1", "19999"),
        "{producers}"
    );
    let consumed = ok(
        kafka_tool(
            "org.apache.kafka.tools.ConsumerPerformance",
            &bootstrap,
            &["--topic", "perf", "--messages", "20000"],
        ),
        "kafka-consumer-perf-test",
    );
    // The data line: start, end, MB, MB/s, records, ...
    let data = consumed
        .lines()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no data line in:\n{consumed}"));
    let records: i64 = data.split(", ").nth(4).unwrap().trim().parse().unwrap();
    assert_eq!(records, 20000, "{consumed}");
    let latency = ok(
        java(&[
            "org.apache.kafka.tools.EndToEndLatency",
            &bootstrap,
            "e2e",
            "500",
            "all",
            "100",
        ]),
        "kafka-e2e-latency",
    );
    assert!(latency.contains("Avg latency:"), "{latency}");
    // The latency tool's consumer fetches 500 times: in an incremental fetch session
    // (KIP-227) after the first, which it closes on exit.
    let incremental = "sluice_fetch_session_requests_total{session=\"incremental\"}";
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(text, incremental) >= 400.0
            && metric_value(text, "sluice_fetch_sessions") == Some(0.0)
    })
    .unwrap_or_else(|text| {
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.contains("fetch_session"))
            .collect();
        panic!(
            "too few incremental fetches, or sessions left open:\n{}",
            lines.join("\n")
        )
    });
}

#[test]
fn verifiable_producer_and_consumer_see_every_record() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let produced = ok(
        kafka_tool(
            "org.apache.kafka.tools.VerifiableProducer",
            &bootstrap,
            &[
                "--topic",
                "verify",
                "--max-messages",
                "1000",
                "--acks",
                "-1",
            ],
        ),
        "kafka-verifiable-producer",
    );
    let events_out = events(&produced);
    let acked = events_out
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .count();
    assert_eq!(acked, 1000, "{produced}");
    assert!(
        events_out
            .iter()
            .all(|e| e["name"] != "producer_send_error"),
        "{produced}"
    );
    let consumed = ok(
        kafka_tool(
            "org.apache.kafka.tools.VerifiableConsumer",
            &bootstrap,
            &[
                "--topic",
                "verify",
                "--group-id",
                "verifiers",
                "--max-messages",
                "1000",
            ],
        ),
        "kafka-verifiable-consumer",
    );
    let events_in = events(&consumed);
    let count: i64 = events_in
        .iter()
        .filter(|e| e["name"] == "records_consumed")
        .map(|e| e["count"].as_i64().unwrap())
        .sum();
    assert_eq!(count, 1000, "{consumed}");
    let committed = events_in
        .iter()
        .filter(|e| e["name"] == "offsets_committed")
        .collect::<Vec<_>>();
    assert!(committed.iter().all(|e| e["success"] == true), "{consumed}");
    assert!(
        committed
            .iter()
            .flat_map(|e| e["offsets"].as_array().unwrap())
            .any(|o| o["offset"] == 1000),
        "offset 1000 never committed:\n{consumed}"
    );
}

#[test]
fn reassign_partitions_and_leader_election_tools_move_replicas_and_leaders() {
    const REASSIGN: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.create_topic("moving", 1, 2, &[]);
    let bootstrap = cluster.bootstrap();
    let ids = cluster.ids();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let topics = file(
        "topics.json",
        r#"{"topics":[{"topic":"moving"}],"version":1}"#,
    );
    let brokers = ids
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let generated = ok(
        kafka_tool(
            REASSIGN,
            &bootstrap,
            &[
                "--generate",
                "--topics-to-move-json-file",
                &topics,
                "--broker-list",
                &brokers,
            ],
        ),
        "kafka-reassign-partitions --generate",
    );
    assert!(
        generated.contains("Current partition replica assignment")
            && generated.contains("Proposed partition reassignment configuration"),
        "{generated}"
    );
    // Move the partition to the broker it lacks, then its current leader: the new broker
    // becomes the preferred leader.
    cluster.wait_for_leader("moving", 0, Duration::from_secs(10));
    let before = cluster.partition_state("moving", 0).unwrap();
    let missing = *ids.iter().find(|id| !before.replicas.contains(id)).unwrap();
    let target = [missing, before.leader.unwrap()];
    let plan = file(
        "plan.json",
        &format!(
            r#"{{"version":1,"partitions":[{{"topic":"moving","partition":0,"replicas":[{},{}],"log_dirs":["any","any"]}}]}}"#,
            target[0], target[1]
        ),
    );
    ok(
        kafka_tool(
            REASSIGN,
            &bootstrap,
            &[
                "--execute",
                "--reassignment-json-file",
                &plan,
                "--throttle",
                "50000000",
            ],
        ),
        "kafka-reassign-partitions --execute",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let verified = ok(
            kafka_tool(
                REASSIGN,
                &bootstrap,
                &["--verify", "--reassignment-json-file", &plan],
            ),
            "kafka-reassign-partitions --verify",
        );
        if verified.contains("Reassignment of partition moving-0 is completed") {
            break;
        }
        assert!(Instant::now() < deadline, "still moving:\n{verified}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The first target replica is the preferred leader; the tool elects it if needed.
    let elected = ok(
        kafka_tool(
            "org.apache.kafka.tools.LeaderElectionCommand",
            &bootstrap,
            &[
                "--election-type",
                "preferred",
                "--topic",
                "moving",
                "--partition",
                "0",
            ],
        ),
        "kafka-leader-election",
    );
    assert!(
        elected.contains("Successfully completed leader election")
            || elected.contains("Valid replica already elected"),
        "{elected}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.wait_for_leader("moving", 0, Duration::from_secs(10)) != target[0] {
        assert!(
            Instant::now() < deadline,
            "{} never became the leader",
            target[0]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
