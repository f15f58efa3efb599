//! OffsetCommit and OffsetFetch against the real broker: simple commits (generation -1, as
//! clients that assign partitions themselves and admin tools send them), per-partition and
//! group-level errors as Kafka 4.1 answers them, every OffsetFetch form (v1, v7, v8 batched,
//! all partitions), committed offsets surviving a clean restart and a `kill -9` (the
//! coordinator loads them back from `__consumer_offsets`), and the offsets of a deleted
//! topic removed.

use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_client::Admin;
use sluice_tests::raw::{topic_name, RawConnection};
use sluice_tests::Broker;

const TOPIC: &str = "orders";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_ID_NOT_FOUND: i16 = 69;

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

/// FindCoordinator until the group has one (the first request creates the offsets topic).
fn wait_for_coordinator(conn: &mut RawConnection, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = FindCoordinatorRequest::default();
        request.key = StrBytes::from_string(group.to_string());
        let response: FindCoordinatorResponse =
            conn.request(ApiKey::FindCoordinator, 3, &request).unwrap();
        if response.error_code == 0 {
            return;
        }
        assert_eq!(
            response.error_code, COORDINATOR_NOT_AVAILABLE,
            "{response:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no coordinator for {group} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (partition, offset, leader epoch, metadata) to commit.
type Commit<'a> = (i32, i64, i32, &'a str);

fn commit(
    conn: &mut RawConnection,
    version: i16,
    group: &str,
    generation: i32,
    topics: &[(&str, &[Commit])],
) -> OffsetCommitResponse {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(partition, offset, epoch, metadata)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*partition)
                                        .with_committed_offset(*offset)
                                        .with_committed_leader_epoch(*epoch)
                                        .with_committed_metadata(Some(StrBytes::from_string(
                                            metadata.to_string(),
                                        )))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    conn.request(ApiKey::OffsetCommit, version, &request)
        .expect("OffsetCommit")
}

/// Every (topic, partition, error) of a commit response, sorted.
fn commit_codes(response: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    let mut codes: Vec<_> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    codes.sort();
    codes
}

/// OffsetFetch v7 of one group: (partition, offset, leader epoch, metadata) of `TOPIC`.
fn fetch_v7(
    conn: &mut RawConnection,
    group: &str,
    partitions: &[i32],
) -> (i16, Vec<(i32, i64, i32, String)>) {
    fetch_v7_of(conn, group, TOPIC, partitions)
}

/// [`fetch_v7`] of any topic.
fn fetch_v7_of(
    conn: &mut RawConnection,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> (i16, Vec<(i32, i64, i32, String)>) {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let response: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 7, &request).unwrap();
    let offsets = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "{p:?}");
            let metadata = p.metadata.as_deref().unwrap_or("").to_string();
            (
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                metadata,
            )
        })
        .collect();
    (response.error_code, offsets)
}

/// Fetch until the coordinator has loaded (after a start or restart).
fn fetch_when_loaded(
    conn: &mut RawConnection,
    group: &str,
    partitions: &[i32],
) -> Vec<(i32, i64, i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, offsets) = fetch_v7(conn, group, partitions);
        if code == 0 {
            return offsets;
        }
        // Until this broker has loaded the partition (or, a moment after FindCoordinator
        // named it, learnt that it leads it), clients are told to retry.
        assert!(
            [COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR].contains(&code),
            "OffsetFetch of {group}: {code}"
        );
        assert!(Instant::now() < deadline, "{group} not loaded after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_topic(broker: &Broker) {
    admin(broker, |admin| async move {
        admin.create_topic(TOPIC, 3, 1, &[]).await.unwrap();
    });
}

/// Run `work` with an admin client of `broker`.
fn admin<F: std::future::Future<Output = ()>>(broker: &Broker, work: impl FnOnce(Admin) -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        work(admin).await;
    });
}

/// The committed offset of `group` for partition 0 of `topic`, once it is `expected`
/// (at most 30 s).
fn wait_for_offset(conn: &mut RawConnection, group: &str, topic: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, offsets) = fetch_v7_of(conn, group, topic, &[0]);
        if code == 0 && offsets[0].1 == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group}'s offset of {topic}-0 is not {expected} after 30 s: {code} {offsets:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deleting a topic removes every group's committed offsets of it (Kafka's
/// `onPartitionsDeleted`), for good: a topic created again under the name starts with
/// none, also after a `kill -9`; other topics keep theirs.
#[test]
fn offsets_of_a_deleted_topic_are_removed_for_good() {
    let mut broker = Broker::start();
    create_topic(&broker);
    admin(&broker, |admin| async move {
        admin.create_topic("kept", 1, 1, &[]).await.unwrap();
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    for group in ["a", "b"] {
        wait_for_coordinator(&mut conn, group);
        fetch_when_loaded(&mut conn, group, &[0]);
        let response = commit(
            &mut conn,
            8,
            group,
            -1,
            &[
                (TOPIC, &[(0, 5, 0, ""), (2, 9, 0, "")]),
                ("kept", &[(0, 3, 0, "")]),
            ],
        );
        assert!(commit_codes(&response)
            .iter()
            .all(|(_, _, code)| *code == 0));
    }
    admin(&broker, |admin| async move {
        admin.delete_topic(TOPIC).await.unwrap();
    });
    for group in ["a", "b"] {
        wait_for_offset(&mut conn, group, TOPIC, -1);
        assert_eq!(fetch_v7(&mut conn, group, &[2]).1[0].1, -1);
        wait_for_offset(&mut conn, group, "kept", 3);
    }
    create_topic(&broker);
    broker.kill9();
    broker.restart();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn, "a");
    for group in ["a", "b"] {
        let offsets = fetch_when_loaded(&mut conn, group, &[0, 2]);
        assert_eq!(
            offsets,
            [(0, -1, -1, String::new()), (2, -1, -1, String::new())],
            "{group} after kill -9"
        );
        wait_for_offset(&mut conn, group, "kept", 3);
    }
}

#[test]
fn simple_commits_are_fetched_back_and_survive_restarts() {
    let mut broker = Broker::start();
    create_topic(&broker);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn, "g1");
    let nothing = fetch_when_loaded(&mut conn, "g1", &[0, 1]);
    assert_eq!(
        nothing,
        [(0, -1, -1, String::new()), (1, -1, -1, String::new())],
        "nothing committed yet"
    );

    let too_long = "m".repeat(4097);
    let response = commit(
        &mut conn,
        8,
        "g1",
        -1,
        &[
            (
                TOPIC,
                &[
                    (0, 5, 0, "first"),
                    (1, 7, 2, ""),
                    (2, 9, 0, too_long.as_str()),
                ],
            ),
            ("no-such-topic", &[(0, 1, 0, "")]),
        ],
    );
    assert_eq!(
        commit_codes(&response),
        [
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            (TOPIC.to_string(), 0, 0),
            (TOPIC.to_string(), 1, 0),
            (TOPIC.to_string(), 2, OFFSET_METADATA_TOO_LARGE),
        ]
    );
    let expected = vec![
        (0, 5, 0, "first".to_string()),
        (1, 7, 2, String::new()),
        (2, -1, -1, String::new()),
    ];
    assert_eq!(fetch_v7(&mut conn, "g1", &[0, 1, 2]), (0, expected.clone()));

    // A later commit replaces the offset.
    let response = commit(&mut conn, 2, "g1", -1, &[(TOPIC, &[(0, 6, -1, "second")])]);
    assert_eq!(commit_codes(&response), [(TOPIC.to_string(), 0, 0)]);
    let mut expected = expected;
    expected[0] = (0, 6, -1, "second".to_string());
    assert_eq!(fetch_v7(&mut conn, "g1", &[0, 1, 2]), (0, expected.clone()));

    check_fetch_forms(&mut conn);

    // Loaded back from __consumer_offsets after a clean restart and after kill -9.
    for crash in [false, true] {
        if crash {
            broker.kill9();
        } else {
            broker.sigterm();
        }
        broker.restart();
        let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
        wait_for_coordinator(&mut conn, "g1");
        assert_eq!(
            fetch_when_loaded(&mut conn, "g1", &[0, 1, 2]),
            expected,
            "after {}",
            if crash { "kill -9" } else { "SIGTERM" }
        );
    }
}

/// OffsetFetch v1, v8 (batched, one group asking for everything, one unknown group).
fn check_fetch_forms(conn: &mut RawConnection) {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id("g1"))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![1])]));
    let v1: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 1, &request).unwrap();
    let p = &v1.topics[0].partitions[0];
    assert_eq!(
        (p.partition_index, p.committed_offset, p.error_code),
        (1, 7, 0)
    );

    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("g1"))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("never-committed"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(TOPIC))
                .with_partition_indexes(vec![0])])),
        OffsetFetchRequestGroup::default().with_group_id(group_id("")),
    ]);
    let v8: OffsetFetchResponse = conn.request(ApiKey::OffsetFetch, 8, &request).unwrap();
    assert_eq!(v8.groups.len(), 3);
    let all: Vec<(i32, i64)> = v8.groups[0]
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(all, [(0, 6), (1, 7)], "every committed offset of g1");
    assert_eq!(v8.groups[1].error_code, 0);
    assert_eq!(v8.groups[1].topics[0].partitions[0].committed_offset, -1);
    assert_eq!(v8.groups[2].error_code, INVALID_GROUP_ID);
}

#[test]
fn commits_from_members_of_unknown_groups_are_refused_as_kafka_refuses_them() {
    let broker = Broker::start();
    create_topic(&broker);
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_coordinator(&mut conn, "g1");
    fetch_when_loaded(&mut conn, "g1", &[0]);
    let partitions: &[Commit] = &[(0, 1, 0, "")];
    let codes = |response: OffsetCommitResponse| {
        commit_codes(&response)
            .into_iter()
            .map(|(_, _, code)| code)
            .collect::<Vec<_>>()
    };
    // A generation for a group that does not exist: ILLEGAL_GENERATION before v9,
    // GROUP_ID_NOT_FOUND from v9.
    assert_eq!(
        codes(commit(&mut conn, 8, "ghost", 3, &[(TOPIC, partitions)])),
        [ILLEGAL_GENERATION]
    );
    assert_eq!(
        codes(commit(&mut conn, 9, "ghost", 3, &[(TOPIC, partitions)])),
        [GROUP_ID_NOT_FOUND]
    );
    // The group exists (a simple commit made it) but has no such member.
    assert_eq!(
        codes(commit(&mut conn, 8, "g1", -1, &[(TOPIC, partitions)])),
        [0]
    );
    assert_eq!(
        codes(commit(&mut conn, 8, "g1", 1, &[(TOPIC, partitions)])),
        [UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        codes(commit(&mut conn, 8, "", -1, &[(TOPIC, partitions)])),
        [INVALID_GROUP_ID]
    );
    // A partition the topic does not have, beside one it has.
    let mixed: &[Commit] = &[(0, 1, 0, ""), (9, 1, 0, "")];
    assert_eq!(
        codes(commit(&mut conn, 8, "g1", -1, &[(TOPIC, mixed)])),
        [0, UNKNOWN_TOPIC_OR_PARTITION]
    );
    // Nothing of the refused commits was stored.
    assert_eq!(
        fetch_v7(&mut conn, "ghost", &[0]).1,
        [(0, -1, -1, String::new())]
    );
}
