//! Log compaction through a running broker (`cleanup.policy=compact`, the cleaner every
//! `--log-cleaner-backoff-ms`): a compacted topic keeps the last value of each key (at its
//! original offset; consumers read across the gaps; batches LZ4-compressed or not), its
//! tombstones go after `delete.retention.ms` with nothing more produced, and `__consumer_offsets`, compacted
//! too, keeps each group's last commit, which a restarted coordinator loads back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, Record};
use sluice_tests::raw::{
    fetch, fetch_request, metric_value, produce_batch, topic_name, wait_for_metrics, RawConnection,
};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "compacted";
const KEYS: usize = 10;
const ROUNDS: usize = 10;

fn fast_cleaner() -> BrokerOptions {
    BrokerOptions {
        extra_args: vec![
            "--log-cleaner-backoff-ms".into(),
            "100".into(),
            "--offsets-topic-num-partitions".into(),
            "1".into(),
            "--offsets-topic-segment-bytes".into(),
            "2048".into(),
        ],
        ..Default::default()
    }
}

/// Every record from offset 0: (offset, key, value).
fn read_all(conn: &mut RawConnection, topic: &str) -> Vec<(i64, String, String)> {
    let response = fetch(conn, &fetch_request(topic, 0, 0, 10 << 20));
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let text = |b: Option<Bytes>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
    decode_records(&records)
        .unwrap()
        .into_iter()
        .map(|r| (r.offset, text(r.key), text(r.value)))
        .collect()
}

#[test]
fn a_compacted_topic_keeps_the_last_value_of_each_key_at_its_offset() {
    let broker = Broker::start_with(fast_cleaner());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        let configs = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", "400"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "500"),
        ];
        let configs: Vec<(String, String)> = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        admin.create_topic(TOPIC, 1, 1, &configs).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    // One batch per round; each round rolls a segment. Then one more, so the last round's
    // segment is sealed (the active segment is never cleaned).
    let mut latest = BTreeMap::new();
    for round in 0..=ROUNDS {
        let records: Vec<Record> = (0..KEYS)
            .map(|k| Record {
                key: Some(Bytes::from(format!("k{k}"))),
                value: Some(Bytes::from(format!("round-{round}"))),
                headers: vec![],
                timestamp: 1_000 + round as i64,
            })
            .collect();
        // Every other round compressed: the cleaner filters inside those batches too.
        let codec = if round % 2 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        };
        let (code, base) = produce_batch(
            &mut conn,
            TOPIC,
            0,
            encode_batch(&records, codec).unwrap(),
            -1,
        );
        assert_eq!(code, 0);
        if round < ROUNDS {
            for k in 0..KEYS {
                latest.insert(format!("k{k}"), (base + k as i64, format!("round-{round}")));
            }
        }
    }
    // (The cleaner may already have run: it passes every 100 ms.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let cleaned = loop {
        let records = read_all(&mut conn, TOPIC);
        // Cleaned: below the last round, one record per key.
        let sealed: Vec<_> = records
            .iter()
            .filter(|r| r.2 != format!("round-{ROUNDS}"))
            .collect();
        if sealed.len() == KEYS {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted after 30 s: {} records\n{}",
            records.len(),
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for (key, (offset, value)) in &latest {
        assert!(
            cleaned
                .iter()
                .any(|r| &r.1 == key && r.0 == *offset && &r.2 == value),
            "{key} at {offset} = {value} in {cleaned:?}"
        );
    }
    let offsets: Vec<i64> = cleaned.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets in order: {offsets:?}"
    );
    // Reading from offset 0 skips the gap the removed rounds left.
    assert_eq!(offsets[0], (KEYS * (ROUNDS - 1)) as i64, "{offsets:?}");
    cleaner_metrics_show_the_pass(&broker);
    tombstones_go_after_delete_retention(&broker, &mut conn);
}

/// Tombstones for every key, then one batch more (so theirs is sealed) and nothing else:
/// once `delete.retention.ms` (500 ms) has passed, a pass removes them with no new records
/// to clean, and no record of those keys is left.
fn tombstones_go_after_delete_retention(broker: &Broker, conn: &mut RawConnection) {
    let tombstones: Vec<Record> = (0..KEYS)
        .map(|k| Record {
            key: Some(Bytes::from(format!("k{k}"))),
            value: None,
            headers: vec![],
            timestamp: 2_000,
        })
        .collect();
    // Larger than segment.bytes: the tombstones' segment rolls.
    let filler = [Record {
        key: Some(Bytes::from_static(b"filler")),
        value: Some(Bytes::from(vec![b'x'; 500])),
        headers: vec![],
        timestamp: 2_001,
    }];
    for records in [&tombstones[..], &filler[..]] {
        let batch = encode_batch(records, Compression::None).unwrap();
        assert_eq!(produce_batch(conn, TOPIC, 0, batch, -1).0, 0);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = read_all(conn, TOPIC);
        let left: Vec<_> = records.iter().filter(|r| r.1.starts_with('k')).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "records of deleted keys left after 30 s: {left:?}\n{}",
            broker.log_tail(8192)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a pass: its time in the histogram, the partition's dirty ratio (with
/// `--metrics-per-partition`, on by default) back below the topic's 0.01 once nothing is
/// dirty, the max dirty ratio gauge, and no uncleanable partition.
fn cleaner_metrics_show_the_pass(broker: &Broker) {
    let series = format!("sluice_partition_log_dirty_ratio{{topic=\"{TOPIC}\",partition=\"0\"}}");
    let check = |text: &str| {
        metric_value(text, "sluice_log_cleaner_clean_seconds_count").is_some_and(|n| n >= 1.0)
            && metric_value(text, &series).is_some_and(|ratio| ratio < 0.01)
            && metric_value(text, "sluice_log_cleaner_max_dirty_ratio").is_some()
            && metric_value(text, "sluice_log_cleaner_uncleanable_partitions") == Some(0.0)
            && metric_value(text, "sluice_log_cleaner_passes_total").is_some_and(|n| n >= 1.0)
    };
    let waited = wait_for_metrics(&broker.metrics_address(), Duration::from_secs(15), check);
    if let Err(text) = waited {
        panic!("cleaner metrics not shown:\n{text}");
    }
}

fn commit(conn: &mut RawConnection, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("compacted-group")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 8, &request).unwrap();
    response.topics[0].partitions[0].error_code
}

fn committed(conn: &mut RawConnection) -> Option<i64> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("compacted-group")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 7, &request).ok()?;
    (response.error_code == 0).then(|| response.topics[0].partitions[0].committed_offset)
}

#[test]
fn the_offsets_topic_is_compacted_and_the_last_commit_survives_a_restart() {
    let mut broker = Broker::start_with(fast_cleaner());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(TOPIC, 1, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while commit(&mut conn, 1) != 0 {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("compacted-group"));
        let _: FindCoordinatorResponse =
            conn.request(ApiKey::FindCoordinator, 3, &request).unwrap();
        assert!(Instant::now() < deadline, "no coordinator");
        std::thread::sleep(Duration::from_millis(50));
    }
    for offset in 2..=300 {
        assert_eq!(commit(&mut conn, offset), 0);
    }
    // 300 commits of one key over 2 KiB segments: compaction leaves few records.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = read_all(&mut conn, "__consumer_offsets").len();
        if records < 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets not compacted: {records} records"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(committed(&mut conn), Some(300));
    broker.kill9();
    broker.restart();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(offset) = committed(&mut conn) {
            assert_eq!(
                offset, 300,
                "the last commit, loaded from the compacted partition"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the coordinator did not load");
        std::thread::sleep(Duration::from_millis(50));
    }
}
