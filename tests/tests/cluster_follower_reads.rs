//! Follower reads (KIP-392) at the protocol level: three brokers in three racks, replication
//! factor 3. A consumer Fetch naming a follower's rack gets `preferred_read_replica` from the
//! leader and no records; the follower serves that consumer exactly the leader's bytes and
//! nothing at or above the high watermark (counted in the follower's consumer-fetch metrics);
//! once the follower is gone from the ISR the leader stops redirecting and serves the
//! consumer itself.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_tests::rack_reads::{consumer_bytes, rack_of, racked_cluster};
use sluice_tests::raw::{fetch_request, FETCH_VERSION};
use sluice_tests::workload::numbered_values;
use sluice_tests::Cluster;

const TOPIC: &str = "follower-reads";

/// One consumer Fetch of partition 0 from `offset`, naming `rack` (v11+ `rack_id`).
fn fetch(cluster: &Cluster, node: i32, offset: i64, rack: &str) -> FetchResponse {
    let mut conn = cluster.connect(node).expect("connect");
    conn.set_read_timeout(Duration::from_secs(10)).unwrap();
    let mut request = fetch_request(TOPIC, 0, offset, 4 << 20);
    request.rack_id = StrBytes::from_string(rack.to_string());
    request.max_wait_ms = 0;
    conn.request(ApiKey::Fetch, FETCH_VERSION, &request)
        .expect("fetch response")
}

#[test]
fn consumers_read_from_the_in_sync_replica_in_their_rack() {
    let mut cluster = racked_cluster(3);
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    let follower = state.followers()[0];
    for i in 0..20 {
        cluster.produce_acked_batch(TOPIC, 0, numbered_values(&format!("b{i}"), 50));
    }
    let high_watermark = cluster.wait_for_high_watermark(TOPIC, 0, 1_000, Duration::from_secs(30));

    // The leader redirects a consumer in the follower's rack, with no records.
    let leader_bytes_before = consumer_bytes(&cluster, leader);
    let redirected = fetch(&cluster, leader, 0, &rack_of(follower));
    let p = &redirected.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.preferred_read_replica.0, follower, "{p:?}");
    assert!(
        p.records.as_ref().is_none_or(|r| r.is_empty()),
        "no records with a redirect"
    );
    assert_eq!(
        consumer_bytes(&cluster, leader),
        leader_bytes_before,
        "the leader sent no records for the redirect"
    );
    // A consumer in the leader's own rack, or with no rack, is served by the leader.
    for rack in [rack_of(leader), String::new()] {
        let served = fetch(&cluster, leader, 0, &rack);
        let p = &served.responses[0].partitions[0];
        assert_eq!(p.preferred_read_replica.0, -1, "rack {rack:?}: {p:?}");
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    }

    // The follower learns the high watermark from its next fetch of the leader.
    cluster.wait_for(
        "the follower to serve consumers up to the high watermark",
        Duration::from_secs(10),
        |c| {
            let response = fetch(c, follower, 0, &rack_of(follower));
            let hw = response.responses[0].partitions[0].high_watermark;
            (hw >= high_watermark).then_some(())
        },
    );

    // The follower serves the same bytes, below its high watermark, and counts them.
    let follower_bytes_before = consumer_bytes(&cluster, follower);
    let mut offset = 0;
    let mut from_follower = Vec::new();
    let mut from_leader = Vec::new();
    for _ in 0..1_000 {
        if offset >= high_watermark {
            break;
        }
        let response = fetch(&cluster, follower, offset, &rack_of(follower));
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "follower fetch at {offset}: {p:?}");
        assert_eq!(p.preferred_read_replica.0, -1);
        let records = p.records.clone().unwrap_or_default();
        assert!(
            !records.is_empty(),
            "no records at {offset} below the high watermark"
        );
        let leader_copy = fetch(&cluster, leader, offset, "");
        let leader_records = leader_copy.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default();
        let batches = sluice_tests::cluster::batch_headers(&records);
        let (_, last, _, _) = *batches.last().expect("whole batches");
        assert!(
            last < p.high_watermark,
            "record {last} at or above the follower's high watermark {}",
            p.high_watermark
        );
        assert!(
            p.high_watermark <= high_watermark.max(cluster.high_watermark(TOPIC, 0).unwrap_or(0))
        );
        from_follower.extend_from_slice(&records);
        from_leader.extend_from_slice(&leader_records[..records.len().min(leader_records.len())]);
        offset = last + 1;
    }
    assert!(
        offset >= high_watermark,
        "the follower served up to {offset} of {high_watermark}"
    );
    assert_eq!(
        from_follower, from_leader,
        "the follower's bytes are the leader's"
    );
    assert!(
        consumer_bytes(&cluster, follower) - follower_bytes_before >= from_follower.len() as f64,
        "the follower's consumer-fetch metrics count what it served"
    );

    // The follower dies and leaves the ISR: the leader serves the rack's consumers itself.
    cluster.kill9(follower);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the dead follower out of the ISR",
        Duration::from_secs(30),
        |s| !s.in_isr(follower) && s.leader == Some(leader),
    );
    let served = fetch(&cluster, leader, 0, &rack_of(follower));
    let p = &served.responses[0].partitions[0];
    assert_eq!(
        p.preferred_read_replica.0, -1,
        "no redirect to a replica out of the ISR: {p:?}"
    );
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
}

/// The follower-read test with our consumer: `client_rack` = a follower's rack; the
/// consumer reads everything from that follower (its consumer-fetch bytes grow, the leader's
/// do not), gets exactly the records the leader has, never one at or above the high
/// watermark; when the follower dies it goes on reading new records from the leader.
#[test]
fn our_consumer_with_a_client_rack_reads_from_its_racks_follower_and_falls_back() {
    use sluice_client::{Consumer, ConsumerConfig, SeekTo};

    let mut cluster = racked_cluster(3);
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    let follower = state.followers()[0];
    let mut expected = Vec::new();
    for i in 0..10 {
        let values = numbered_values(&format!("first{i}"), 100);
        expected.extend(values.clone());
        cluster.produce_acked_batch(TOPIC, 0, values);
    }
    let first_end = expected.len() as i64;
    cluster.wait_for_high_watermark(TOPIC, 0, first_end, Duration::from_secs(30));
    let (leader_before, follower_before) = (
        consumer_bytes(&cluster, leader),
        consumer_bytes(&cluster, follower),
    );

    let runtime = sluice_tests::workload::runtime();
    let mut config = ConsumerConfig::new(cluster.bootstrap());
    config.client_rack = Some(rack_of(follower));
    let mut consumer = runtime.block_on(Consumer::new(config)).expect("consumer");
    runtime
        .block_on(consumer.assign(vec![(TOPIC.to_string(), 0)]))
        .expect("assign");
    runtime
        .block_on(consumer.seek(TOPIC, 0, SeekTo::Earliest))
        .expect("seek");
    let mut got: Vec<(i64, String)> = Vec::new();
    read_until(&runtime, &mut consumer, first_end, &mut got);
    assert_eq!(
        consumer.preferred_read_replica(TOPIC, 0),
        Some(follower),
        "the consumer follows the leader's redirect to its rack's follower"
    );
    let served_by_follower = consumer_bytes(&cluster, follower) - follower_before;
    let served_by_leader = consumer_bytes(&cluster, leader) - leader_before;
    assert!(
        served_by_follower > 0.0 && served_by_leader == 0.0,
        "records came from the follower ({served_by_follower} bytes), not the leader ({served_by_leader} bytes)"
    );
    let values: Vec<String> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, expected, "exactly the leader's records, in order");
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (offset, _))| *offset == i as i64));

    // The follower dies: the consumer goes back to the leader for new records.
    cluster.kill9(follower);
    let mut more = Vec::new();
    for i in 0..3 {
        let values = numbered_values(&format!("after{i}"), 100);
        more.extend(values.clone());
        cluster.produce_acked_batch(TOPIC, 0, values);
    }
    let second_end = first_end + more.len() as i64;
    got.clear();
    read_until(&runtime, &mut consumer, second_end, &mut got);
    let values: Vec<String> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, more, "the records written after the follower died");
    assert_ne!(consumer.preferred_read_replica(TOPIC, 0), Some(follower));
}

/// Poll `consumer` until its position reaches `end` (bounded), checking no record is at or
/// above the high watermark the consumer was told.
fn read_until(
    runtime: &tokio::runtime::Runtime,
    consumer: &mut sluice_client::Consumer,
    end: i64,
    got: &mut Vec<(i64, String)>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while consumer.position(TOPIC, 0).unwrap_or(0) < end {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed up to {:?} of {end}",
            consumer.position(TOPIC, 0)
        );
        let records = match runtime.block_on(consumer.poll(Duration::from_millis(500))) {
            Ok(records) => records,
            Err(e) if e.is_retriable() => continue,
            Err(e) => panic!("poll: {e}"),
        };
        let high_watermark = consumer.high_watermark(TOPIC, 0).unwrap_or(i64::MAX);
        for record in records {
            assert!(
                record.offset < high_watermark,
                "record {} at or above the high watermark {high_watermark}",
                record.offset
            );
            let value = String::from_utf8(record.value.unwrap_or_default().to_vec()).unwrap();
            got.push((record.offset, value));
        }
    }
}
