//! The group coordinator's metrics against the real broker: groups by state, members,
//! rebalances, commits, coordinator partitions loaded, and consumer lag per group and
//! topic (high watermark minus committed offset, summed over the committed partitions),
//! refreshed every `--group-metrics-interval-ms`.

use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_tests::raw::{http_get, metric_value, topic_name, try_produce_values, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "lagged";

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Scrape until `series` has `value` (bounded).
fn wait_for_metric(broker: &Broker, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(&broker.metrics_address(), "/metrics").unwrap();
        let seen = metric_value(&text, series);
        if seen == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {seen:?}, not {value}, after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn commit(conn: &mut RawConnection, group: &str, offsets: &[(i32, i64)]) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(
                offsets
                    .iter()
                    .map(|&(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                    })
                    .collect(),
            )]);
    let response: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 8, &request).unwrap();
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .max()
        .unwrap()
}

#[test]
fn lag_members_and_rebalances_are_exported_per_group() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--group-metrics-interval-ms".into(),
            "100".into(),
            "--group-initial-rebalance-delay-ms".into(),
            "0".into(),
            "--offsets-topic-num-partitions".into(),
            "5".into(),
        ],
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    try_produce_values(&mut conn, TOPIC, 0, &values, -1, 5_000).unwrap();
    try_produce_values(&mut conn, TOPIC, 1, &values[..5], -1, 5_000).unwrap();

    // Commits succeed once the offsets topic exists and its coordinator has loaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = FindCoordinatorRequest::default();
        request.key = str("lag-group");
        let _: FindCoordinatorResponse =
            conn.request(ApiKey::FindCoordinator, 3, &request).unwrap();
        if commit(&mut conn, "lag-group", &[(0, 4), (1, 5)]) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no coordinator after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_metric(
        &broker,
        r#"sluice_group_coordinator_partitions{state="loaded"}"#,
        5.0,
    );
    // (10 - 4) + (5 - 5)
    wait_for_metric(
        &broker,
        r#"sluice_group_lag{group="lag-group",topic="lagged"}"#,
        6.0,
    );
    wait_for_metric(&broker, r#"sluice_groups{state="Empty"}"#, 1.0);
    // Catching up brings the lag to 0.
    assert_eq!(commit(&mut conn, "lag-group", &[(0, 10)]), 0);
    wait_for_metric(
        &broker,
        r#"sluice_group_lag{group="lag-group",topic="lagged"}"#,
        0.0,
    );
    let text = http_get(&broker.metrics_address(), "/metrics").unwrap();
    assert_eq!(
        metric_value(&text, "sluice_offset_commits_total"),
        Some(3.0)
    );

    // A member joins another group: one member, one rebalance, the group Stable... once
    // synced; CompletingRebalance until then.
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(str("member-group")))
        // Longer than all the waits below together: the member never syncs, and must not
        // expire while the test still expects the group to wait for it.
        .with_session_timeout_ms(300_000)
        .with_rebalance_timeout_ms(300_000)
        .with_member_id(str("member-1"))
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(str("range"))
        ]);
    // v3 joins without MEMBER_ID_REQUIRED: an unknown id on a new group is refused, so join
    // with an empty one.
    let request = request.with_member_id(str(""));
    let joined: JoinGroupResponse = conn.request(ApiKey::JoinGroup, 3, &request).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    wait_for_metric(
        &broker,
        r#"sluice_group_members{group="member-group"}"#,
        1.0,
    );
    wait_for_metric(
        &broker,
        r#"sluice_group_rebalances_total{group="member-group"}"#,
        1.0,
    );
    wait_for_metric(
        &broker,
        r#"sluice_groups{state="CompletingRebalance"}"#,
        1.0,
    );
}
