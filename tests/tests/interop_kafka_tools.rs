//! Kafka's own command-line tools (the 4.1.1 jars `tests/java` provisions) against a real
//! `sluiced`, read as a user reads them: `kafka-log-dirs --describe` (DescribeLogDirs) lists
//! the data directory and each partition's size; `kafka-get-offsets --time` (ListOffsets by
//! timestamp) names the record at a time inside a batch, as on Kafka; `kafka-topics --create
//! --replica-assignment` places replicas as given on a three-broker cluster (and `--alter
//! --partitions --replica-assignment` the new partitions'), and refuses what Kafka refuses;
//! `kafka-dump-log` (Kafka's `DumpLogSegments`, deep iteration) reads Sluice's segments,
//! offset indexes and time indexes straight from the data directory, every codec, and
//! finds every batch valid and every index entry where Kafka expects it.

use std::time::Duration;

use bytes::Bytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{encode_batch, Record};
use sluice_tests::raw::{produce_batch, RawConnection};
use sluice_tests::{kafka_tool, run_program, Broker, Cluster, ClusterOptions, ProgramOutput};

fn tool(class: &str, broker: &Broker, args: &[&str]) -> ProgramOutput {
    let output = kafka_tool(class, &broker.bootstrap(), args);
    assert!(
        output.success(),
        "{class} {args:?}: {}\n--- broker log ---\n{}",
        output.describe(),
        broker.log_tail(8192)
    );
    output
}

/// One batch of `count` records with timestamps `base..`, to partition `partition`.
fn produce(broker: &Broker, topic: &str, partition: i32, count: i64, base: i64) {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![],
            timestamp: base + i,
        })
        .collect();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let batch = encode_batch(&records, Compression::None).unwrap();
    assert_eq!(produce_batch(&mut conn, topic, partition, batch, -1).0, 0);
}

#[test]
fn kafka_log_dirs_describes_the_data_directory_and_partition_sizes() {
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = sluice_client::Admin::new(&broker.bootstrap())
            .await
            .unwrap();
        admin.create_topic("dirs", 2, 1, &[]).await.unwrap();
    });
    produce(&broker, "dirs", 0, 10, 1_000);
    let output = tool(
        "org.apache.kafka.tools.LogDirsCommand",
        &broker,
        &["--describe", "--topic-list", "dirs"],
    );
    let stdout = output.stdout_lossy();
    let json = stdout
        .lines()
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
    let dir = &parsed["brokers"][0]["logDirs"][0];
    assert_eq!(dir["error"], serde_json::Value::Null, "{json}");
    let data_dir = broker.data_dir().display().to_string();
    assert_eq!(dir["logDir"].as_str(), Some(data_dir.as_str()), "{json}");
    let size = |name: &str| {
        let partitions = dir["partitions"].as_array().unwrap();
        let p = partitions.iter().find(|p| p["partition"] == name).unwrap();
        assert_eq!(p["offsetLag"], 0, "{json}");
        p["size"].as_i64().unwrap()
    };
    assert!(size("dirs-0") > 0, "{json}");
    assert_eq!(size("dirs-1"), 0, "{json}");
}

#[test]
fn kafka_get_offsets_by_time_names_the_record_inside_a_batch() {
    let broker = Broker::start();
    let base = 1_700_000_000_000i64;
    produce(&broker, "times", 0, 100, base);
    let at = |time: i64| {
        let time = time.to_string();
        let args = ["--topic", "times", "--time", time.as_str()];
        let output = tool("org.apache.kafka.tools.GetOffsetShell", &broker, &args);
        output.stdout_lossy().trim().to_string()
    };
    assert_eq!(at(base + 50), "times:0:50");
    assert_eq!(at(-2), "times:0:0");
    assert_eq!(at(-1), "times:0:100");
}

#[test]
fn kafka_topics_creates_a_topic_with_a_manual_replica_assignment() {
    const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
    let cluster = Cluster::start(3, ClusterOptions::default());
    let ids = cluster.ids();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let bootstrap = cluster.bootstrap();
    let assignment = format!("{b}:{c},{c}:{a}");
    let args = [
        "--create",
        "--topic",
        "manual",
        "--replica-assignment",
        assignment.as_str(),
    ];
    let created = kafka_tool(TOPIC_COMMAND, &bootstrap, &args);
    assert!(created.success(), "{}", created.describe());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topic = runtime.block_on(async {
        let admin = sluice_client::Admin::new(&bootstrap).await.unwrap();
        admin.describe_topic("manual").await.unwrap()
    });
    let replicas: Vec<Vec<i32>> = topic
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(replicas, [vec![b, c], vec![c, a]]);
    let leaders: Vec<Option<i32>> = topic.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(leaders, [Some(b), Some(c)]);
    // Growing it with `--alter --partitions --replica-assignment` (CreatePartitions with
    // assignments): the tool sends the lists of the new partitions only.
    let grown = format!("{b}:{c},{c}:{a},{a}:{b}");
    let args = [
        "--alter",
        "--topic",
        "manual",
        "--partitions",
        "3",
        "--replica-assignment",
        grown.as_str(),
    ];
    let altered = kafka_tool(TOPIC_COMMAND, &bootstrap, &args);
    assert!(altered.success(), "{}", altered.describe());
    // The broker asked may learn of the new partitions a moment after the controller.
    let third = runtime.block_on(async {
        let admin = sluice_client::Admin::new(&bootstrap).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let topic = admin.describe_topic("manual").await.unwrap();
            let third: Vec<(Vec<i32>, Option<i32>)> = topic
                .partitions
                .iter()
                .filter(|p| p.partition == 2)
                .map(|p| (p.replicas.clone(), p.leader))
                .collect();
            if !third.is_empty() || tokio::time::Instant::now() >= deadline {
                return third;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(third, [(vec![a, b], Some(a))]);
    // A broker twice: the tool itself refuses. One that does not exist: the broker refuses
    // it as Kafka's controller does.
    let twice = format!("{a}:{a}");
    let args = [
        "--create",
        "--topic",
        "twice",
        "--replica-assignment",
        twice.as_str(),
    ];
    assert!(!kafka_tool(TOPIC_COMMAND, &bootstrap, &args).success());
    let args = [
        "--create",
        "--topic",
        "nobody",
        "--replica-assignment",
        "4242",
    ];
    let refused = kafka_tool(TOPIC_COMMAND, &bootstrap, &args);
    let text = format!(
        "{}{}",
        refused.stdout_lossy(),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        text.contains("InvalidReplicaAssignmentException")
            && text.contains("broker 4242, but no such broker is registered"),
        "{}",
        refused.describe()
    );
}

#[test]
fn kafka_dump_log_reads_sluice_segments_and_indexes_as_kafkas() {
    const DUMP_LOG: &str = "kafka.tools.DumpLogSegments";
    let mut broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = sluice_client::Admin::new(&broker.bootstrap())
            .await
            .unwrap();
        let configs = [("segment.bytes".to_string(), "16384".to_string())];
        admin.create_topic("dump", 1, 1, &configs).await.unwrap();
    });
    // Batches of every codec, with keys and headers, over several segments (each with
    // index entries: one per 4096 bytes).
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let mut expected = Vec::new();
    for round in 0..60 {
        let codec = codecs[round % codecs.len()];
        let records: Vec<Record> = (0..20)
            .map(|i| {
                let n = round * 20 + i;
                expected.push((format!("key-{n}"), format!("value-{n}-{n:0>120}")));
                Record {
                    key: Some(Bytes::from(format!("key-{n}"))),
                    value: Some(Bytes::from(format!("value-{n}-{n:0>120}"))),
                    headers: vec![("h".to_string(), Some(Bytes::from_static(b"x")))],
                    timestamp: 1_700_000_000_000 + n as i64,
                }
            })
            .collect();
        let batch = encode_batch(&records, codec).unwrap();
        assert_eq!(produce_batch(&mut conn, "dump", 0, batch, -1).0, 0);
    }
    drop(conn);
    // A clean shutdown leaves every segment and index as it stays on disk.
    broker.sigterm();
    let dir = broker.data_dir().join("dump-0");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".log") || p.ends_with(".index") || p.ends_with(".timeindex"))
        .collect();
    files.sort();
    let logs = files.iter().filter(|f| f.ends_with(".log")).count();
    assert!(logs >= 3, "expected several segments: {files:?}");
    let all = files.join(",");
    let output = run_program(
        std::process::Command::new("java")
            .arg("-cp")
            .arg(sluice_tests::java_classpath())
            .args([DUMP_LOG, "--deep-iteration", "--print-data-log", "--files"])
            .arg(&all),
        None,
        Duration::from_secs(90),
    );
    assert!(output.success(), "{}", output.describe());
    let text = output.stdout_lossy();
    // Every batch's CRC checks out; every index entry points where Kafka expects.
    let batches = text.matches("isvalid: true").count();
    assert_eq!(batches, 60, "{text}");
    assert!(!text.contains("isvalid: false"), "{text}");
    let lower = text.to_lowercase();
    assert!(!lower.contains("mismatch"), "{text}");
    assert!(!lower.contains("corrupt"), "{text}");
    assert!(text.matches("offset: ").count() > 0);
    assert!(
        text.contains("timestamp: "),
        "no time index entries:\n{text}"
    );
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        assert!(text.contains(&format!("compresscodec: {codec}")), "{codec}");
    }
    // Every record, in offset order, with its key and value.
    let records: Vec<(String, String)> = text
        .lines()
        .filter(|l| l.starts_with("| offset: "))
        .map(|l| {
            let key = l.split(" key: ").nth(1).unwrap().split(' ').next().unwrap();
            let value = l.split(" payload: ").nth(1).unwrap();
            (key.to_string(), value.to_string())
        })
        .collect();
    assert_eq!(records, expected);
}
