//! The classic group protocol against the real broker, request by request, with Kafka
//! 4.1's error codes: a dynamic member's first JoinGroup gets MEMBER_ID_REQUIRED, the
//! rejoin leads the group, SyncGroup hands out the leader's assignment, Heartbeat keeps the
//! session (and refuses wrong generations and unknown members), a group with members
//! cannot be deleted and its subscribed topics' offsets cannot be deleted, LeaveGroup
//! empties it, and then DeleteGroups and OffsetDelete succeed and stay done across a
//! restart.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_protocol::consumer_protocol::{encode_subscription, ConsumerProtocolSubscription};
use sluice_tests::raw::{topic_name, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

const GROUP: &str = "classic-group";
const SUBSCRIBED: &str = "subscribed";
const OTHER: &str = "other";

const UNKNOWN_SERVER_ERROR: i16 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_MAX_SIZE_REACHED: i16 = 81;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group_id(id: &str) -> GroupId {
    GroupId(str(id))
}

fn join(conn: &mut RawConnection, member_id: &str, session_timeout_ms: i32) -> JoinGroupResponse {
    let subscription = ConsumerProtocolSubscription::default().with_topics(vec![str(SUBSCRIBED)]);
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(GROUP))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(str(member_id))
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str("range"))
            .with_metadata(encode_subscription(&subscription, 3).unwrap())]);
    conn.request(ApiKey::JoinGroup, 9, &request)
        .expect("JoinGroup")
}

fn heartbeat(conn: &mut RawConnection, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(GROUP))
        .with_member_id(str(member_id))
        .with_generation_id(generation);
    let response: HeartbeatResponse = conn.request(ApiKey::Heartbeat, 4, &request).unwrap();
    response.error_code
}

/// Commit as `member` of `generation` (-1 and "": a simple commit).
fn commit(
    conn: &mut RawConnection,
    (member, generation): (&str, i32),
    topic: &str,
    partitions: &[i32],
) {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(GROUP))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(10 + i64::from(p))
                    })
                    .collect(),
            )]);
    let response: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 8, &request).unwrap();
    for p in &response.topics[0].partitions {
        assert_eq!(p.error_code, 0, "{response:?}");
    }
}

fn committed(conn: &mut RawConnection, topic: &str) -> Vec<i64> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(GROUP))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0, 1])]));
    let response: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 7, &request).unwrap();
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

fn delete_offsets(conn: &mut RawConnection, topic: &str) -> (i16, Vec<i16>) {
    let request = OffsetDeleteRequest::default()
        .with_group_id(group_id(GROUP))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let response: OffsetDeleteResponse = conn.request(ApiKey::OffsetDelete, 0, &request).unwrap();
    let codes = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    (response.error_code, codes)
}

fn delete_groups(conn: &mut RawConnection, groups: &[&str]) -> Vec<i16> {
    let request = DeleteGroupsRequest::default()
        .with_groups_names(groups.iter().map(|g| group_id(g)).collect());
    let response: DeleteGroupsResponse = conn.request(ApiKey::DeleteGroups, 2, &request).unwrap();
    response.results.iter().map(|r| r.error_code).collect()
}

/// FindCoordinator, then OffsetFetch, until the group's coordinator serves.
fn wait_for_coordinator(conn: &mut RawConnection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = FindCoordinatorRequest::default().with_key(str(GROUP));
        let found: FindCoordinatorResponse =
            conn.request(ApiKey::FindCoordinator, 3, &request).unwrap();
        if found.error_code == 0 {
            let request = OffsetFetchRequest::default()
                .with_group_id(group_id(GROUP))
                .with_topics(Some(vec![]));
            let fetched: OffsetFetchResponse =
                conn.request(ApiKey::OffsetFetch, 7, &request).unwrap();
            if fetched.error_code == 0 {
                return;
            }
            assert!(
                [COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR].contains(&fetched.error_code),
                "{fetched:?}"
            );
        } else {
            assert_eq!(found.error_code, COORDINATOR_NOT_AVAILABLE, "{found:?}");
        }
        assert!(Instant::now() < deadline, "no coordinator after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_member_joins_syncs_heartbeats_and_leaves_and_then_the_group_can_be_deleted() {
    let mut broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(SUBSCRIBED, 2, 1, &[]).await.unwrap();
        admin.create_topic(OTHER, 2, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn);

    // Requests about a group that does not exist.
    assert_eq!(heartbeat(&mut conn, "nobody", 1), UNKNOWN_MEMBER_ID);
    assert_eq!(
        join(&mut conn, "nobody", 10_000).error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        join(&mut conn, "", 1_000).error_code,
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        delete_groups(&mut conn, &[GROUP, ""]),
        [GROUP_ID_NOT_FOUND, INVALID_GROUP_ID]
    );

    // Join: MEMBER_ID_REQUIRED first, then the rejoin leads generation 1.
    let first = join(&mut conn, "", 10_000);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    let member_id = first.member_id.to_string();
    assert!(member_id.len() > 10, "{member_id:?}");
    let joined = join(&mut conn, &member_id, 10_000);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        joined.members.len(),
        1,
        "the leader gets every member's metadata"
    );

    let assignment = Bytes::from_static(b"\x00\x03assignment-bytes");
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(GROUP))
        .with_generation_id(1)
        .with_member_id(str(&member_id))
        .with_protocol_type(Some(str("consumer")))
        .with_protocol_name(Some(str("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(str(&member_id))
            .with_assignment(assignment.clone())]);
    let synced: SyncGroupResponse = conn.request(ApiKey::SyncGroup, 5, &request).unwrap();
    assert_eq!(synced.error_code, 0, "{synced:?}");
    assert_eq!(synced.assignment, assignment);

    assert_eq!(heartbeat(&mut conn, &member_id, 1), 0);
    assert_eq!(heartbeat(&mut conn, &member_id, 7), ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&mut conn, "someone-else", 1), UNKNOWN_MEMBER_ID);

    // A group with a member: not deletable; its subscribed topic's offsets neither.
    // A simple commit is refused while the group has members; the member's is taken.
    let simple = OffsetCommitRequest::default()
        .with_group_id(group_id(GROUP))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(OTHER))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default().with_committed_offset(1)
            ])]);
    let refused: OffsetCommitResponse = conn.request(ApiKey::OffsetCommit, 8, &simple).unwrap();
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        UNKNOWN_MEMBER_ID
    );
    commit(&mut conn, (&member_id, 1), SUBSCRIBED, &[0, 1]);
    commit(&mut conn, (&member_id, 1), OTHER, &[0, 1]);
    assert_eq!(delete_groups(&mut conn, &[GROUP]), [NON_EMPTY_GROUP]);
    assert_eq!(
        delete_offsets(&mut conn, SUBSCRIBED),
        (0, vec![GROUP_SUBSCRIBED_TO_TOPIC])
    );
    assert_eq!(delete_offsets(&mut conn, OTHER), (0, vec![0]));
    assert_eq!(
        delete_offsets(&mut conn, "no-such-topic"),
        (0, vec![UNKNOWN_TOPIC_OR_PARTITION])
    );
    assert_eq!(committed(&mut conn, OTHER), [-1, 11]);

    let request = LeaveGroupRequest::default()
        .with_group_id(group_id(GROUP))
        .with_members(vec![
            MemberIdentity::default().with_member_id(str(&member_id))
        ]);
    let left: LeaveGroupResponse = conn.request(ApiKey::LeaveGroup, 5, &request).unwrap();
    assert_eq!(left.error_code, 0, "{left:?}");
    assert_eq!(left.members[0].error_code, 0, "{left:?}");
    assert_eq!(heartbeat(&mut conn, &member_id, 1), UNKNOWN_MEMBER_ID);

    // Empty now: offsets of any topic may go, and so may the group, for good.
    assert_eq!(delete_offsets(&mut conn, SUBSCRIBED), (0, vec![0]));
    assert_eq!(committed(&mut conn, SUBSCRIBED), [-1, 11]);
    assert_eq!(delete_groups(&mut conn, &[GROUP]), [0]);
    assert_eq!(committed(&mut conn, SUBSCRIBED), [-1, -1]);
    assert_eq!(delete_groups(&mut conn, &[GROUP]), [GROUP_ID_NOT_FOUND]);
    broker.kill9();
    broker.restart();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn);
    assert_eq!(committed(&mut conn, SUBSCRIBED), [-1, -1]);
    assert_eq!(committed(&mut conn, OTHER), [-1, -1]);
    assert_eq!(delete_groups(&mut conn, &[GROUP]), [GROUP_ID_NOT_FOUND]);
}

/// Join `GROUP` as a new dynamic member (MEMBER_ID_REQUIRED, then the rejoin).
fn join_new_member(conn: &mut RawConnection) -> JoinGroupResponse {
    let first = join(conn, "", 10_000);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    join(conn, &first.member_id, 10_000)
}

#[test]
fn bad_group_requests_get_kafkas_errors_and_store_nothing() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--group-initial-rebalance-delay-ms".into(),
            "0".into(),
            "--group-max-size".into(),
            "1".into(),
        ],
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(SUBSCRIBED, 2, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn);

    // An empty group id.
    let request = JoinGroupRequest::default()
        .with_session_timeout_ms(10_000)
        .with_protocol_type(str("consumer"));
    let response: JoinGroupResponse = conn.request(ApiKey::JoinGroup, 9, &request).unwrap();
    assert_eq!(response.error_code, INVALID_GROUP_ID);
    let request = HeartbeatRequest::default().with_member_id(str("m"));
    let response: HeartbeatResponse = conn.request(ApiKey::Heartbeat, 4, &request).unwrap();
    assert_eq!(response.error_code, INVALID_GROUP_ID);
    // Session timeouts outside [6000, 1800000].
    for session_timeout_ms in [5_999, 1_800_001] {
        assert_eq!(
            join(&mut conn, "", session_timeout_ms).error_code,
            INVALID_SESSION_TIMEOUT
        );
    }

    // The one member group.max.size allows, then a second one is turned away at once (as
    // Kafka checks the size before handing out a member id).
    let member = join_new_member(&mut conn);
    assert_eq!(member.error_code, 0, "{member:?}");
    let second = join(&mut conn, "", 10_000);
    assert_eq!(second.error_code, GROUP_MAX_SIZE_REACHED, "{second:?}");
    assert_eq!(second.member_id.as_str(), "");

    // Commits from the wrong generation or an unknown member change nothing.
    let member_id = member.member_id.to_string();
    for (who, generation, expected) in [
        (member_id.as_str(), 5, ILLEGAL_GENERATION),
        ("stranger", 1, UNKNOWN_MEMBER_ID),
    ] {
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(GROUP))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(str(who))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(SUBSCRIBED))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(99)])]);
        let response: OffsetCommitResponse =
            conn.request(ApiKey::OffsetCommit, 8, &request).unwrap();
        assert_eq!(
            response.topics[0].partitions[0].error_code, expected,
            "{who}"
        );
    }
    assert_eq!(committed(&mut conn, SUBSCRIBED), [-1, -1]);
}

/// A member whose subscription metadata makes the group's record larger than the offsets
/// topic takes (max.message.bytes, 1 MiB by default): the join is answered, the sync is
/// refused with Kafka's UNKNOWN_SERVER_ERROR (its mapping of MESSAGE_TOO_LARGE), and
/// nothing is stored — the group does not become Stable.
#[test]
fn a_group_too_large_to_persist_is_refused_at_sync() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..Default::default()
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn);
    let big = Bytes::from(vec![7u8; 2 << 20]);
    let join_big = |conn: &mut RawConnection, member_id: &str| -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(GROUP))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str(member_id))
            .with_protocol_type(str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str("range"))
                .with_metadata(big.clone())]);
        conn.request(ApiKey::JoinGroup, 9, &request).unwrap()
    };
    let first = join_big(&mut conn, "");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let joined = join_big(&mut conn, &first.member_id);
    assert_eq!(joined.error_code, 0, "{}", joined.error_code);
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(GROUP))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"x"))]);
    let synced: SyncGroupResponse = conn.request(ApiKey::SyncGroup, 5, &request).unwrap();
    assert_eq!(synced.error_code, UNKNOWN_SERVER_ERROR);
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(GROUP)]);
    let described: DescribeGroupsResponse =
        conn.request(ApiKey::DescribeGroups, 5, &request).unwrap();
    assert_ne!(described.groups[0].group_state.as_str(), "Stable");
}
