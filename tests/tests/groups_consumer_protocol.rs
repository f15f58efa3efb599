//! The KIP-848 consumer group protocol (ConsumerGroupHeartbeat, ConsumerGroupDescribe)
//! against the real broker, request by request: a member joins with epoch 0 and gets the
//! partitions (the server-side `uniform` assignor), heartbeats keep it, a wrong epoch is
//! FENCED_MEMBER_EPOCH, the group and its members survive a `kill -9` of the broker (the
//! coordinator rebuilds them from their records in `__consumer_offsets`), and leaving with
//! epoch -1 empties the group. A classic JoinGroup for it is refused.

use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_tests::raw::{topic_name, RawConnection};
use sluice_tests::Broker;

const GROUP: &str = "kip848-group";
const TOPIC: &str = "kip848-topic";
const MEMBER: &str = "AAAAAAAAAAAAAAAAAAAAAA";
const FENCED_MEMBER_EPOCH: i16 = 110;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const STALE_MEMBER_EPOCH: i16 = 113;

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn heartbeat(
    conn: &mut RawConnection,
    epoch: i32,
    owned: Option<Vec<TopicPartitions>>,
) -> ConsumerGroupHeartbeatResponse {
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str(GROUP)))
        .with_member_id(str(MEMBER))
        .with_member_epoch(epoch)
        .with_topic_partitions(owned);
    if epoch == 0 {
        request = request
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic_name(TOPIC)]))
            .with_topic_partitions(Some(vec![]));
    }
    conn.request(ApiKey::ConsumerGroupHeartbeat, 1, &request)
        .expect("ConsumerGroupHeartbeat")
}

fn describe(conn: &mut RawConnection) -> consumer_group_describe_response::DescribedGroup {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str(GROUP))]);
    let response: ConsumerGroupDescribeResponse = conn
        .request(ApiKey::ConsumerGroupDescribe, 1, &request)
        .unwrap();
    response.groups.into_iter().next().unwrap()
}

/// FindCoordinator, then heartbeats with `epoch` until the coordinator serves the group.
fn wait_until_served(conn: &mut RawConnection, epoch: i32) -> ConsumerGroupHeartbeatResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = FindCoordinatorRequest::default().with_key(str(GROUP));
        let found: FindCoordinatorResponse =
            conn.request(ApiKey::FindCoordinator, 3, &request).unwrap();
        if found.error_code == 0 {
            let response = heartbeat(conn, epoch, None);
            // COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR while the partition loads.
            if ![14, 16].contains(&response.error_code) {
                return response;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the group is not served after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_consumer_group_member_joins_is_fenced_survives_a_restart_and_leaves() {
    let mut broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
    ]));
    let metadata: MetadataResponse = conn.request(ApiKey::Metadata, 12, &request).unwrap();
    let topic_id = metadata.topics[0].topic_id;
    // Asked for by id alone (as KIP-848 clients resolve their assignments), it is found.
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(topic_id),
    ]));
    let by_id: MetadataResponse = conn.request(ApiKey::Metadata, 12, &request).unwrap();
    assert_eq!(by_id.topics[0].error_code, 0, "{by_id:?}");
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some(TOPIC)
    );
    let joined = wait_until_served(&mut conn, 0);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.member_id.as_deref(), Some(MEMBER));
    assert_eq!(joined.member_epoch, 1);
    assert!(joined.heartbeat_interval_ms > 0);
    let assignment = joined
        .assignment
        .expect("the first answer carries the assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id);
    assert_eq!(assignment.topic_partitions[0].partitions, [0, 1]);
    let owned = vec![TopicPartitions::default()
        .with_topic_id(topic_id)
        .with_partitions(vec![0, 1])];
    assert_eq!(heartbeat(&mut conn, 1, Some(owned.clone())).error_code, 0);

    let described = describe(&mut conn);
    assert_eq!(described.error_code, 0, "{described:?}");
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].member_epoch, 1);
    assert_eq!(described.assignor_name.as_str(), "uniform");

    // OffsetFetch v9 from the member: its epoch is checked.
    for (epoch, expected) in [(1, 0), (7, STALE_MEMBER_EPOCH)] {
        let request = OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str(GROUP)))
                .with_member_id(Some(str(MEMBER)))
                .with_member_epoch(epoch)
                .with_topics(None),
        ]);
        let fetched: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 9, &request).unwrap();
        assert_eq!(
            fetched.groups[0].error_code, expected,
            "epoch {epoch}: {fetched:?}"
        );
    }

    // A classic join for it is refused; a wrong epoch is fenced.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(str(GROUP)))
        .with_session_timeout_ms(10_000)
        .with_protocol_type(str("consumer"));
    let refused: JoinGroupResponse = conn.request(ApiKey::JoinGroup, 9, &join).unwrap();
    assert_eq!(refused.error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(
        heartbeat(&mut conn, 5, None).error_code,
        FENCED_MEMBER_EPOCH
    );

    // The group comes back from its records after a crash.
    broker.kill9();
    broker.restart();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let again = wait_until_served(&mut conn, 1);
    assert_eq!(
        again.error_code, 0,
        "the member is still known after the restart: {again:?}"
    );
    assert_eq!(again.member_epoch, 1);
    let described = describe(&mut conn);
    assert_eq!(described.members.len(), 1, "{described:?}");
    assert_eq!(described.members[0].member_id.as_str(), MEMBER);
    assert_eq!(
        described.members[0].assignment.topic_partitions[0].partitions,
        [0, 1]
    );

    let left = heartbeat(&mut conn, -1, None);
    assert_eq!(left.error_code, 0, "{left:?}");
    assert_eq!(left.member_epoch, -1);
    assert_eq!(describe(&mut conn).group_state.as_str(), "Empty");
}
