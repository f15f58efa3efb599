//! Joining, request validation, member epochs and the response.

use super::*;

#[test]
fn first_member_gets_epoch_one_and_every_partition() {
    let mut h = Harness::new();
    let (response, records) = h.send(join("m1", &["foo"])).unwrap();
    assert_eq!(response.member_id, "m1");
    assert_eq!(response.member_epoch, 1);
    assert_eq!(response.heartbeat_interval_ms, 5_000);
    assert_eq!(response.assignment, Some(tp(FOO, &[0, 1, 2, 3, 4, 5])));
    assert_eq!(h.group.group_epoch(), 1);
    assert_eq!(h.group.assignment_epoch(), 1);
    assert_eq!(h.group.state(), GroupState::Stable);
    let versions: Vec<i16> = records.iter().map(|r| r.key_version()).collect();
    // Member metadata, partition metadata, group epoch, target, target epoch, current.
    assert_eq!(versions, vec![5, 4, 3, 7, 6, 8]);
    h.assert_replay_matches();
}

#[test]
fn v0_join_without_member_id_gets_a_kafka_uuid() {
    let mut h = Harness::new();
    let request = HeartbeatRequest {
        api_version: 0,
        ..join("", &["foo"])
    };
    let response = h.heartbeat(request);
    assert_eq!(response.member_id.len(), 22, "{}", response.member_id);
    assert!(h.group.has_member(&response.member_id));
    assert_eq!(
        crate::group::consumer::heartbeat::kafka_uuid_string(Uuid::from_u128(0)),
        "AAAAAAAAAAAAAAAAAAAAAA"
    );
    assert_eq!(
        crate::group::consumer::heartbeat::kafka_uuid_string(Uuid::from_u128(u128::MAX)),
        "_____________________w"
    );
}

#[test]
fn v1_join_requires_a_client_generated_member_id() {
    let mut h = Harness::new();
    let error = h.error(join("", &["foo"]));
    assert_eq!(error.code(), 42);
    assert_eq!(error.message(), "MemberId can't be empty.");
}

#[test]
fn invalid_requests_are_refused_with_kafkas_messages() {
    let cases: Vec<(HeartbeatRequest, &str)> = vec![
        (
            HeartbeatRequest {
                group_id: " ".into(),
                ..join("m1", &["foo"])
            },
            "GroupId can't be empty.",
        ),
        (
            HeartbeatRequest {
                instance_id: Some("".into()),
                ..join("m1", &["foo"])
            },
            "InstanceId can't be empty.",
        ),
        (
            HeartbeatRequest {
                rack_id: Some(" ".into()),
                ..join("m1", &["foo"])
            },
            "RackId can't be empty.",
        ),
        (
            HeartbeatRequest {
                rebalance_timeout_ms: -1,
                ..join("m1", &["foo"])
            },
            "RebalanceTimeoutMs must be provided in first request.",
        ),
        (
            HeartbeatRequest {
                owned_partitions: None,
                ..join("m1", &["foo"])
            },
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            HeartbeatRequest {
                owned_partitions: Some(tp(FOO, &[0])),
                ..join("m1", &["foo"])
            },
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            HeartbeatRequest {
                subscribed_topic_names: None,
                ..join("m1", &["foo"])
            },
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
        ),
        (leave("m1", -2), "InstanceId can't be null."),
        (beat("m1", -3, Partitions::new()), "MemberEpoch is invalid."),
        (beat("", 3, Partitions::new()), "MemberId can't be empty."),
    ];
    let mut h = Harness::new();
    for (request, message) in cases {
        let error = h.error(request);
        assert_eq!(error, GroupError::InvalidRequest(message.to_string()));
        assert_eq!(error.code(), 42);
    }
    assert_eq!(h.group.member_ids().count(), 0);
    assert!(h.records.is_empty());
}

#[test]
fn unknown_server_assignor_is_unsupported_assignor() {
    let mut h = Harness::new();
    let error = h.error(HeartbeatRequest {
        server_assignor: Some("sticky".into()),
        ..join("m1", &["foo"])
    });
    assert_eq!(error.code(), UNSUPPORTED_ASSIGNOR);
    assert_eq!(
        error.message(),
        "ServerAssignor sticky is not supported. Supported assignors: uniform, range."
    );
}

#[test]
fn heartbeat_from_unknown_member_is_unknown_member_id() {
    let mut h = Harness::new();
    let error = h.error(beat("ghost", 3, Partitions::new()));
    assert_eq!(error.code(), 25);
    assert_eq!(
        error.message(),
        "Member ghost is not a member of group group."
    );
    let error = h.error(leave("ghost", -1));
    assert_eq!(error.code(), 25);
}

#[test]
fn greater_member_epoch_is_fenced() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let error = h.error(beat("a", 2, a.owned.clone()));
    assert_eq!(error.code(), FENCED_MEMBER_EPOCH);
    assert_eq!(
        error.message(),
        "The consumer group member has a greater member epoch (2) than the one known by the \
         group coordinator (1). The member must abandon all its partitions and rejoin."
    );
}

#[test]
fn smaller_member_epoch_other_than_the_previous_is_fenced() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.heartbeat(join("b", &["foo"]));
    h.heartbeat(join("c", &["foo"])); // group epoch 3
    a.beat(&mut h); // revoking at epoch 1
    a.beat(&mut h); // revoked: epoch 3, previous 1
    assert_eq!(a.epoch, 3);
    let error = h.error(beat("a", 2, Partitions::new()));
    assert_eq!(error.code(), FENCED_MEMBER_EPOCH);
    assert!(
        error.message().contains("smaller member epoch (2)"),
        "{error}"
    );
}

#[test]
fn previous_epoch_with_subset_of_assignment_is_accepted() {
    // The response with the bumped epoch was lost: the member comes back with its
    // previous epoch and a subset of its assignment, and gets the current epoch.
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.heartbeat(join("b", &["foo"]));
    a.beat(&mut h);
    assert_eq!(
        h.member("a").state(),
        member::MemberState::UnrevokedPartitions
    );
    let kept = h.member("a").current.assigned_partitions.clone();
    a.owned = kept.clone();
    a.beat(&mut h);
    assert_eq!(a.epoch, 2);
    assert_eq!(h.member("a").current.previous_member_epoch, 1);

    let response = h.heartbeat(beat("a", 1, kept.clone()));
    assert_eq!(response.member_epoch, 2);
    let error = h.error(beat("a", 1, tp(FOO, &[0, 1, 2, 3, 4, 5])));
    assert_eq!(error.code(), FENCED_MEMBER_EPOCH, "not a subset");
    let mut without_owned = beat("a", 1, kept);
    without_owned.owned_partitions = None;
    assert_eq!(h.error(without_owned).code(), FENCED_MEMBER_EPOCH);
}

#[test]
fn group_max_size_refuses_new_members_only() {
    let config = ConsumerGroupConfig {
        group_size_max: 1,
        ..ConsumerGroupConfig::default()
    };
    let mut h = Harness::with_config(config);
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let error = h.error(join("b", &["foo"]));
    assert_eq!(error.code(), 81);
    assert_eq!(
        error.message(),
        "The consumer group has reached its maximum capacity of 1 members."
    );
    a.beat(&mut h);
    assert_eq!(a.epoch, 1);
}

#[test]
fn assignment_is_sent_only_when_it_changed_or_on_a_full_request() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    assert!(a.join(&mut h, &["foo"]).assignment.is_some());
    assert_eq!(a.beat(&mut h).assignment, None);
    let full = HeartbeatRequest {
        member_epoch: 1,
        owned_partitions: Some(a.owned.clone()),
        ..join("a", &["foo"])
    };
    assert_eq!(h.heartbeat(full).assignment, Some(a.owned.clone()));
}

#[test]
fn subscription_change_bumps_the_group_epoch_and_reassigns() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    a.beat(&mut h);
    assert_eq!(
        h.group.group_epoch(),
        1,
        "a plain heartbeat changes nothing"
    );
    let mut request = beat("a", 1, a.owned.clone());
    request.subscribed_topic_names = Some(vec!["foo".into(), "bar".into()]);
    let response = h.heartbeat(request);
    assert_eq!(h.group.group_epoch(), 2);
    assert_eq!(response.member_epoch, 2);
    let mut expected = tp(FOO, &[0, 1, 2, 3, 4, 5]);
    expected.extend(tp(BAR, &[0, 1, 2]));
    assert_eq!(response.assignment, Some(expected));
    h.assert_replay_matches();
}

#[test]
fn more_partitions_in_the_metadata_bump_the_group_epoch() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.topics = TopicsSnapshot::new([(
        "foo".to_string(),
        TopicInfo {
            topic_id: FOO,
            partition_count: 8,
        },
    )]);
    let response = a.beat(&mut h);
    assert_eq!(h.group.group_epoch(), 2);
    assert_eq!(
        response.assignment,
        Some(tp(FOO, &[0, 1, 2, 3, 4, 5, 6, 7]))
    );
}

#[test]
fn subscribing_to_a_missing_topic_assigns_nothing_until_it_exists() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    let response = a.join(&mut h, &["later"]);
    assert_eq!(response.member_epoch, 1);
    assert_eq!(response.assignment, Some(Partitions::new()));
    let later = Uuid::from_u128(0x1a7e);
    h.topics = TopicsSnapshot::new([(
        "later".to_string(),
        TopicInfo {
            topic_id: later,
            partition_count: 2,
        },
    )]);
    let response = a.beat(&mut h);
    assert_eq!(response.assignment, Some(tp(later, &[0, 1])));
}

#[test]
fn known_member_rejoining_with_epoch_zero_starts_over() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo"]);
    b.beat(&mut h);
    // `a` was fenced on its side: it lost its partitions and rejoins with the same id.
    let response = h.heartbeat(join("a", &["foo"]));
    assert_eq!(response.member_epoch, 2);
    assert_eq!(
        h.group.group_epoch(),
        2,
        "a rejoin is not a new subscription"
    );
    assert_eq!(response.assignment, Some(h.group.target_assignment("a")));
    h.assert_replay_matches();
}
