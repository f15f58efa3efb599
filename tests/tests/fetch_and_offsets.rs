//! Fetch and ListOffsets semantics against the real broker: long poll, byte limits,
//! out-of-range offsets, sessionless fetches, and offsets by time (per record,
//! inside a batch, as Kafka).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, Record};
use sluice_tests::raw::{fetch, fetch_request, produce_batch, topic_name, RawConnection};
use sluice_tests::Broker;

/// Produce one batch of `count` records with timestamps `base_ts..`; returns its base offset.
fn produce(
    conn: &mut RawConnection,
    topic: &str,
    count: usize,
    base_ts: i64,
    value_bytes: usize,
) -> i64 {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_bytes])),
            headers: vec![],
            timestamp: base_ts + i as i64,
        })
        .collect();
    let batch = encode_batch(&records, Compression::None).unwrap();
    let (error_code, base_offset) = produce_batch(conn, topic, 0, batch, 1);
    assert_eq!(error_code, 0);
    base_offset
}

fn list_offset(conn: &mut RawConnection, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = conn.request(ApiKey::ListOffsets, 7, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn long_poll_returns_when_data_arrives_not_at_the_deadline() {
    long_poll_returns_on_new_data(Broker::start());
}

/// With fsync durability records become visible when an fsync covers them; the long poll
/// must wake for that too, not sit until its deadline.
#[test]
fn long_poll_wakes_when_an_fsync_makes_data_visible() {
    long_poll_returns_on_new_data(Broker::start_with(sluice_tests::BrokerOptions {
        extra_args: vec!["--durability".into(), "fsync".into()],
        ..Default::default()
    }));
}

fn long_poll_returns_on_new_data(broker: Broker) {
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    produce(&mut conn, "longpoll", 1, 1_000, 10);

    let address = broker.bootstrap();
    let writer = std::thread::spawn(move || {
        let mut conn = RawConnection::connect(&address).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        produce(&mut conn, "longpoll", 1, 2_000, 10);
    });
    let started = Instant::now();
    // Wait up to 20 s for at least one byte past offset 1.
    let response = fetch(
        &mut conn,
        &fetch_request("longpoll", 0, 1, 1 << 20)
            .with_max_wait_ms(20_000)
            .with_min_bytes(1),
    );
    let waited = started.elapsed();
    writer.join().unwrap();
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = decode_records(p.records.as_ref().unwrap()).unwrap();
    assert_eq!(records.len(), 1, "the record produced during the wait");
    assert_eq!(records[0].offset, 1);
    assert!(
        waited < Duration::from_secs(15),
        "woke at the deadline ({waited:?}), not on the append"
    );

    // With nothing to wait for, max_wait bounds the answer, which is empty.
    let started = Instant::now();
    let response = fetch(
        &mut conn,
        &fetch_request("longpoll", 0, 2, 1 << 20)
            .with_max_wait_ms(200)
            .with_min_bytes(1),
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        response.responses[0].partitions[0]
            .records
            .as_ref()
            .map(|r| r.len()),
        Some(0),
        "empty, not null"
    );
}

#[test]
fn fetch_limits_out_of_range_and_sessions() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    for i in 0..10 {
        produce(&mut conn, "limits", 10, 1_000 * i, 1000);
    }

    // partition_max_bytes of 1 still returns the first batch whole (about 10 KB).
    let response = fetch(&mut conn, &fetch_request("limits", 0, 0, 1));
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    let decoded = decode_records(&records).unwrap();
    assert_eq!(decoded.len(), 10, "exactly one whole batch");
    assert_eq!(response.responses[0].partitions[0].high_watermark, 100);

    // 25 KB: two whole batches, never a partial one.
    let response = fetch(&mut conn, &fetch_request("limits", 0, 0, 25_000));
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    assert!(records.len() <= 25_000);
    assert_eq!(decode_records(&records).unwrap().len(), 20);

    // Mid-batch offset: the batch holding it comes back (clients skip the earlier records).
    let response = fetch(&mut conn, &fetch_request("limits", 0, 15, 1));
    let decoded =
        decode_records(&response.responses[0].partitions[0].records.clone().unwrap()).unwrap();
    assert!(decoded.iter().any(|r| r.offset == 15));

    // Past the log end: OFFSET_OUT_OF_RANGE (1).
    let response = fetch(&mut conn, &fetch_request("limits", 0, 1000, 1 << 20));
    assert_eq!(response.responses[0].partitions[0].error_code, 1);

    // Unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3), without auto-creating it.
    let response = fetch(&mut conn, &fetch_request("nope", 0, 0, 1 << 20));
    assert_eq!(response.responses[0].partitions[0].error_code, 3);

    // Sessionless fetches (epoch -1) get session id 0; naming a session that does not
    // exist is FETCH_SESSION_ID_NOT_FOUND (tests/tests/fetch_sessions.rs has the rest).
    let response = fetch(&mut conn, &fetch_request("limits", 0, 0, 1));
    assert_eq!(response.session_id, 0);
    let incremental = fetch_request("limits", 0, 0, 1)
        .with_session_id(1234)
        .with_session_epoch(1);
    let response = fetch(&mut conn, &incremental);
    assert_eq!(response.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    assert!(response.responses.is_empty());

    // ListOffsets: earliest, latest, by timestamp.
    assert_eq!(list_offset(&mut conn, "limits", -2), (0, 0, -1));
    assert_eq!(list_offset(&mut conn, "limits", -1).1, 100);
    let (code, offset, _) = list_offset(&mut conn, "limits", 5_000);
    assert_eq!(code, 0);
    assert_eq!(offset, 50, "batch 5 starts at timestamp 5000");
    let (_, offset, _) = list_offset(&mut conn, "limits", 10_000_000);
    assert_eq!(offset, -1, "no record that late");
}

/// Issue 12's case: one batch of 100 records 1 ms apart; a time inside it answers the
/// record, as Kafka (offset 50 and its own timestamp), not the batch (offset 0 and the
/// batch's max timestamp).
#[test]
fn offsets_by_time_answer_the_record_inside_a_batch() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let base = 1_700_000_000_000;
    assert_eq!(produce(&mut conn, "by-time", 100, base, 10), 0);
    assert_eq!(
        list_offset(&mut conn, "by-time", base + 50),
        (0, 50, base + 50)
    );
    assert_eq!(list_offset(&mut conn, "by-time", base), (0, 0, base));
    assert_eq!(
        list_offset(&mut conn, "by-time", base + 99),
        (0, 99, base + 99)
    );
    assert_eq!(list_offset(&mut conn, "by-time", base + 100), (0, -1, -1));
}

fn epoch_end(
    conn: &mut RawConnection,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let response: OffsetForLeaderEpochResponse = conn
        .request(ApiKey::OffsetForLeaderEpoch, 4, &request)
        .unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// OffsetForLeaderEpoch as a consumer sends it after a leader change (KIP-320): the
/// current epoch ends at the log end offset, a later one is unknown to the log, and the
/// client's current leader epoch is checked first.
#[test]
fn offset_for_leader_epoch_answers_where_an_epoch_ends() {
    let broker = Broker::start();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    assert_eq!(produce(&mut conn, "epochs", 10, 1_000, 10), 0);
    let (_, epoch, _) = list_offset_epoch(&mut conn, "epochs");
    assert!(epoch >= 0);
    assert_eq!(epoch_end(&mut conn, "epochs", epoch, epoch), (0, epoch, 10));
    assert_eq!(epoch_end(&mut conn, "epochs", -1, epoch), (0, epoch, 10));
    // A later epoch than the log knows: undefined, as Kafka's cache answers it.
    assert_eq!(epoch_end(&mut conn, "epochs", -1, epoch + 1), (0, -1, -1));
    // The client thinks the leader is newer (UNKNOWN_LEADER_EPOCH) or older
    // (FENCED_LEADER_EPOCH) than it is.
    assert_eq!(
        epoch_end(&mut conn, "epochs", epoch + 1, epoch),
        (75, -1, -1)
    );
    if epoch > 0 {
        assert_eq!(
            epoch_end(&mut conn, "epochs", epoch - 1, epoch),
            (74, -1, -1)
        );
        // An epoch older than any the log has: it ends where the log's first epoch starts.
        assert_eq!(
            epoch_end(&mut conn, "epochs", -1, epoch - 1),
            (0, epoch - 1, 0)
        );
    }
    let unknown = epoch_end(&mut conn, "no-such-topic", -1, 0);
    assert_eq!(unknown.0, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// The leader epoch ListOffsets v4+ reports for the latest offset.
fn list_offset_epoch(conn: &mut RawConnection, topic: &str) -> (i16, i32, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = conn.request(ApiKey::ListOffsets, 7, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.offset)
}
