//! Incremental fetch sessions (KIP-227) against a real `sluiced`, beyond the life of one
//! session that `differential_kafka` compares with Kafka: partitions that returned records
//! go to the back of the session so a small response limit serves every partition in
//! turn, an incremental fetch long-polls on partitions it does not list, the cache's slots
//! bound the sessions (and 0 turns them off), and the session gauges follow.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use sluice_tests::raw::{
    fetch, metric_value, produce_batch, topic_name, value_batch, wait_for_metrics, RawConnection,
};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "sessions";
const PARTITIONS: i32 = 3;

/// A broker whose topics get three partitions, with extra flags.
fn broker(extra: &[&str]) -> Broker {
    let mut args = vec!["--default-partitions".to_string(), PARTITIONS.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    Broker::start_with(BrokerOptions {
        extra_args: args,
        ..BrokerOptions::default()
    })
}

/// A consumer's fetch of `partitions` (index, offset) in session `session_id` at `epoch`;
/// at most `max_bytes` in the response, answered at once unless `max_wait_ms` > 0.
fn request(session_id: i32, epoch: i32, partitions: &[(i32, i64)], max_bytes: i32) -> FetchRequest {
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// The partitions an answer carries records for.
fn with_records(response: &FetchResponse) -> Vec<i32> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
        .map(|p| p.partition_index)
        .collect()
}

/// Every partition an answer carries.
fn answered(response: &FetchResponse) -> Vec<i32> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.partition_index)
        .collect()
}

fn produce_to_each_partition(conn: &mut RawConnection) {
    conn.ensure_topic(TOPIC);
    for partition in 0..PARTITIONS {
        let (error, _) = produce_batch(conn, TOPIC, partition, value_batch(&[[b'x'; 100]]), 1);
        assert_eq!(error, 0, "produce to partition {partition}");
    }
}

#[test]
fn a_small_response_limit_serves_every_session_partition_in_turn() {
    let broker = broker(&[]);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    produce_to_each_partition(&mut conn);
    // A response limit of 1 byte: each answer carries the first batch it finds, whole.
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let full = fetch(&mut conn, &request(0, 0, &all, 1));
    let session = full.session_id;
    assert_ne!(session, 0, "a full fetch with epoch 0 creates a session");
    assert_eq!(with_records(&full), vec![0]);
    assert_eq!(
        answered(&full),
        vec![0, 1, 2],
        "a full fetch answers every partition"
    );

    // The fetcher never moves its offsets, so each partition has records every time; a
    // partition that returned records goes to the back, so the others get their turn.
    let mut turns = Vec::new();
    for epoch in 1..=4 {
        let response = fetch(&mut conn, &request(session, epoch, &[], 1));
        assert_eq!(response.error_code, 0);
        assert_eq!(response.session_id, session);
        turns.extend(with_records(&response));
    }
    assert_eq!(
        turns,
        vec![0, 1, 2, 0],
        "without the rotation: [0, 0, 0, 0]"
    );
}

#[test]
fn an_incremental_fetch_long_polls_on_partitions_it_does_not_list() {
    let broker = broker(&[]);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    produce_to_each_partition(&mut conn);
    let caught_up: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 1)).collect();
    let full = fetch(&mut conn, &request(0, 0, &caught_up, 1 << 20));
    let session = full.session_id;
    assert_ne!(session, 0);
    // Nothing new: an immediate incremental answer carries no partition at all.
    let quiet = fetch(&mut conn, &request(session, 1, &[], 1 << 20));
    assert_eq!((quiet.error_code, answered(&quiet)), (0, vec![]));

    // Wait up to 60 s for one byte while another connection produces to partition 2. The
    // connection's 10 s read timeout fails the test if the fetch does not wake on it.
    let bootstrap = broker.bootstrap();
    let producer = std::thread::spawn(move || {
        let mut conn = RawConnection::connect(&bootstrap).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        produce_batch(&mut conn, TOPIC, 2, value_batch(&[b"late"]), 1).0
    });
    let long_poll = request(session, 2, &[], 1 << 20)
        .with_max_wait_ms(60_000)
        .with_min_bytes(1);
    let response = fetch(&mut conn, &long_poll);
    assert_eq!(producer.join().unwrap(), 0);
    assert_eq!(response.error_code, 0);
    assert_eq!(with_records(&response), vec![2]);
    assert_eq!(answered(&response), vec![2], "only the partition with news");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 2);
}

#[test]
fn slots_bound_the_sessions_and_the_gauges_follow() {
    let broker = broker(&["--fetch-session-cache-slots", "1"]);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    produce_to_each_partition(&mut conn);
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let first = fetch(&mut conn, &request(0, 0, &all, 1 << 20)).session_id;
    assert_ne!(first, 0);
    // The one slot is taken by a young consumer session: no session for a second one,
    // which is still served in full.
    let second = fetch(&mut conn, &request(0, 0, &all, 1 << 20));
    assert_eq!(second.session_id, 0);
    assert_eq!(with_records(&second), vec![0, 1, 2]);
    let incremental = fetch(&mut conn, &request(first, 1, &[], 1 << 20));
    assert_eq!((incremental.error_code, incremental.session_id), (0, first));
    let metrics = wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_value(text, "sluice_fetch_sessions") == Some(1.0)
            && metric_value(text, "sluice_fetch_session_partitions") == Some(3.0)
    })
    .unwrap_or_else(|text| panic!("gauges never showed one session of 3 partitions:\n{text}"));
    let incremental_requests = "sluice_fetch_session_requests_total{session=\"incremental\"}";
    assert_eq!(metric_value(&metrics, incremental_requests), Some(1.0));

    // A sessionless fetch naming the session closes it, and frees the slot.
    let close = fetch(&mut conn, &request(first, -1, &all, 1 << 20));
    assert_eq!(close.session_id, 0);
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_value(text, "sluice_fetch_sessions") == Some(0.0)
            && metric_value(text, "sluice_fetch_session_partitions") == Some(0.0)
    })
    .unwrap_or_else(|text| panic!("the closed session stayed in the gauges:\n{text}"));
    let again = fetch(&mut conn, &request(0, 0, &all, 1 << 20));
    assert_ne!(again.session_id, 0);
    assert_eq!(
        fetch(&mut conn, &request(first, 2, &[], 1 << 20)).error_code,
        70,
        "FETCH_SESSION_ID_NOT_FOUND for the closed session"
    );
}

#[test]
fn zero_slots_turn_sessions_off() {
    let broker = broker(&["--fetch-session-cache-slots", "0"]);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    produce_to_each_partition(&mut conn);
    let full = fetch(&mut conn, &request(0, 0, &[(0, 0)], 1 << 20));
    assert_eq!((full.error_code, full.session_id), (0, 0));
    assert_eq!(with_records(&full), vec![0]);
}
