//! Offset-commit validation, loading, DescribeGroups/ListGroups, unloading, and the mapping of
//! append errors to the errors clients are told.

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use super::*;

#[test]
fn offset_commits_are_validated_as_kafka_does() {
    use CommitKind::{Consumer, Transactional};
    use ErrorCode::{FencedInstanceId, IllegalGeneration, RebalanceInProgress, UnknownMemberId};
    let empty = ClassicGroup::new("g", ClassicGroupConfig::default());
    assert_eq!(empty.validate_offset_commit("", None, -1, Consumer), Ok(()));
    assert_eq!(
        empty.validate_offset_commit("m", None, 1, Consumer),
        Err(UnknownMemberId)
    );

    let mut h = harness();
    let ids = h.stable_group(1);
    let id = ids[0].as_str();
    let cases = [
        (id, None, 1, Consumer, Ok(())),
        (id, None, 0, Consumer, Err(IllegalGeneration)),
        ("x", None, 1, Consumer, Err(UnknownMemberId)),
        ("", None, -1, Consumer, Err(UnknownMemberId)),
        ("", None, -1, Transactional, Ok(())),
        (id, Some("i-x"), 1, Consumer, Err(UnknownMemberId)),
    ];
    for (member, instance, generation, kind, expected) in cases {
        let result = h
            .group
            .validate_offset_commit(member, instance, generation, kind);
        assert_eq!(
            result, expected,
            "{member} {instance:?} {generation} {kind:?}"
        );
    }
    // CompletingRebalance: the member has its generation but not its assignment yet.
    h.join(join_request(id)); // the leader rejoins; alone, it completes the join phase
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
    let result = h.group.validate_offset_commit(id, None, 2, Consumer);
    assert_eq!(result, Err(RebalanceInProgress));
    assert_eq!(
        h.group.validate_offset_commit(id, None, 2, Transactional),
        Ok(())
    );

    let mut s = harness();
    let static_id = stable_static_member(&mut s);
    let fenced = s
        .group
        .validate_offset_commit("old", Some("i-1"), 1, Consumer);
    assert_eq!(fenced, Err(FencedInstanceId));
    let current = s
        .group
        .validate_offset_commit(&static_id, Some("i-1"), 1, Consumer);
    assert_eq!(current, Ok(()));
}

#[test]
fn loaded_group_is_stable_and_its_members_sessions_run_from_the_load() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let snapshot = h.group.snapshot(&Default::default());
    let config = ClassicGroupConfig::default();
    let (mut loaded, effects) = ClassicGroup::load("group", snapshot.clone(), config, 5_000);
    assert_eq!(loaded.state(), GroupState::Stable);
    assert_eq!(loaded.generation_id(), 1);
    assert_eq!(loaded.leader_id(), h.group.leader_id());
    assert_eq!(
        loaded.assignment(&ids[1]),
        Some(&Bytes::from(format!("assign-{}", ids[1])))
    );
    assert_eq!(loaded.snapshot(&Default::default()), snapshot, "round trip");
    let timers = effects
        .iter()
        .filter(|e| matches!(e, Effect::ScheduleTimer { .. }));
    assert_eq!(timers.count(), 2);
    assert_eq!(
        loaded.next_deadline_ms(),
        Some(5_000 + i64::from(SESSION_MS))
    );
    loaded.tick(5_000 + i64::from(SESSION_MS));
    assert_eq!(loaded.member_ids().count(), 0, "nobody heartbeated");

    let empty = GroupSnapshot {
        members: Vec::new(),
        protocol_name: None,
        ..snapshot
    };
    let (loaded, effects) = ClassicGroup::load("group", empty, ClassicGroupConfig::default(), 0);
    assert_eq!((loaded.state(), effects.len()), (GroupState::Empty, 0));
}

#[test]
fn describe_shows_metadata_only_when_stable() {
    let mut h = harness();
    let ids = h.stable_group(1);
    let stable = h.group.describe();
    assert_eq!(
        (stable.state, stable.protocol_data.as_str()),
        ("Stable", "range")
    );
    assert_eq!(stable.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(
        stable.members[0].assignment,
        Bytes::from(format!("assign-{}", ids[0]))
    );
    h.join(JoinRequest {
        protocols: protocols(&["range", "sticky"]),
        ..join_request(&ids[0])
    });
    let completing = h.group.describe();
    assert_eq!(completing.state, "CompletingRebalance");
    assert_eq!(
        (
            completing.protocol_data.as_str(),
            completing.members[0].metadata.len()
        ),
        ("", 0)
    );
    let listed = h.group.list_state();
    assert_eq!(
        (listed.state, listed.protocol_type.as_str()),
        ("CompletingRebalance", "consumer")
    );
}

#[test]
fn unload_tells_parked_requests_to_find_the_new_coordinator() {
    let mut h = harness();
    let id = h.member_id("a");
    let token = h.join(join_request(&id));
    let effects = h.group.unload(h.now_ms);
    h.effects.extend(effects);
    assert_eq!(h.joined(token).error, ErrorCode::NotCoordinator);
    assert_eq!(h.group.state(), GroupState::Dead);
    assert_eq!(h.group.next_deadline_ms(), None);
    let again = h.join(join_request(""));
    assert_eq!(h.joined(again).error, ErrorCode::CoordinatorNotAvailable);
    assert_eq!(h.heartbeat(&id, 0), ErrorCode::CoordinatorNotAvailable);
}

/// Kafka's `appendGroupMetadataErrorToResponseError`: storage and leadership errors become
/// coordinator errors, size errors UNKNOWN_SERVER_ERROR, and the rest pass through.
#[test]
fn append_errors_map_as_kafka_maps_them() {
    use ErrorCode as E;
    let cases = [
        (E::UnknownTopicOrPartition, E::CoordinatorNotAvailable),
        (E::NotEnoughReplicas, E::CoordinatorNotAvailable),
        (E::RequestTimedOut, E::CoordinatorNotAvailable),
        (E::NotLeaderOrFollower, E::NotCoordinator),
        (E::KafkaStorageError, E::NotCoordinator),
        (E::MessageTooLarge, E::UnknownServerError),
        (E::RecordListTooLarge, E::UnknownServerError),
        (E::InvalidFetchSize, E::UnknownServerError),
        (E::UnknownServerError, E::UnknownServerError),
        // Append errors Kafka does not remap pass through.
        (E::InvalidRequest, E::InvalidRequest),
        (
            E::NotEnoughReplicasAfterAppend,
            E::NotEnoughReplicasAfterAppend,
        ),
        (E::CorruptMessage, E::CorruptMessage),
    ];
    for (append_error, expected) in cases {
        let mapped = append_error_to_group_error(append_error);
        assert_eq!(mapped, expected, "{append_error:?}");
    }
}
