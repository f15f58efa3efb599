//! Kafka's own command-line tools (the 4.1.1 jars `tests/java` provisions) against a real
//! `sluiced`, read as a user reads them: `kafka-log-dirs --describe` (DescribeLogDirs) lists
//! the data directory and each partition's size; `kafka-get-offsets --time` (ListOffsets by
//! timestamp) names the record at a time inside a batch, as on Kafka.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{encode_batch, Record};
use sluice_tests::raw::{produce_batch, RawConnection};
use sluice_tests::{java_classpath, run_program, Broker, ProgramOutput};

const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

fn tool(class: &str, broker: &Broker, args: &[&str]) -> ProgramOutput {
    let output = run_program(
        Command::new("java")
            .arg("-cp")
            .arg(java_classpath())
            .arg(class)
            .arg("--bootstrap-server")
            .arg(broker.bootstrap())
            .args(args),
        None,
        TOOL_TIMEOUT,
    );
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
