//! Follower reads (KIP-392) at the protocol level: three brokers in three racks, replication
//! factor 3. A consumer Fetch naming a follower's rack gets `preferred_read_replica` from the
//! leader and no records; the follower serves that consumer exactly the leader's bytes and
//! nothing at or above the high watermark (counted in the follower's consumer-fetch metrics);
//! once the follower is gone from the ISR the leader stops redirecting and serves the
//! consumer itself.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_tests::raw::{fetch_request, http_get, metric_sum, FETCH_VERSION};
use sluice_tests::workload::numbered_values;
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "follower-reads";
const CONSUMER_BYTES: &str = "sluice_fetch_bytes_out_total{fetcher=\"consumer\"}";

fn rack_of(id: i32) -> String {
    format!("rack-{id}")
}

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

fn consumer_bytes(cluster: &Cluster, node: i32) -> f64 {
    http_get(&cluster.broker(node).metrics_address(), "/metrics")
        .map(|text| metric_sum(&text, CONSUMER_BYTES))
        .unwrap_or(0.0)
}

#[test]
fn consumers_read_from_the_in_sync_replica_in_their_rack() {
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            racks: (1..=3).map(rack_of).collect(),
            ..ClusterOptions::fast(2_000, 2_000)
        },
    );
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
