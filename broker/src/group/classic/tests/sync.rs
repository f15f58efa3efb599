//! SyncGroup: waiting for the leader and the append, and its errors.

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use super::*;

#[test]
fn sync_responses_wait_for_the_leader_and_the_append() {
    let mut h = harness();
    let a = h.member_id("a");
    let b = h.member_id("b");
    let (ta, tb) = (h.join(join_request(&a)), h.join(join_request(&b)));
    h.advance(2 * DELAY_MS);
    let generation = h.joined(ta).generation_id;
    assert_eq!(h.joined(tb).leader, a);
    let sb = h.sync(sync_request(&b, generation));
    assert!(h.sync_answer(sb).is_none(), "parked until the leader syncs");
    let mut leader_sync = sync_request(&a, generation);
    leader_sync.assignments = vec![(b.clone(), Bytes::from("for-b"))];
    let sa = h.sync(leader_sync);
    let persists = h.take_persists();
    assert_eq!(persists.len(), 1);
    let snapshot = &persists[0].1;
    assert_eq!(snapshot.generation_id, 1);
    assert_eq!(snapshot.leader.as_deref(), Some(a.as_str()));
    assert_eq!(snapshot.protocol_name.as_deref(), Some("range"));
    assert_eq!(snapshot.members.len(), 2);
    assert!(
        h.sync_answer(sa).is_none() && h.sync_answer(sb).is_none(),
        "not before the append"
    );
    let effects = h.group.on_persisted(persists[0].0, Ok(()), h.now_ms);
    h.effects.extend(effects);
    assert_eq!(h.synced(sb).assignment, Bytes::from("for-b"));
    assert_eq!(h.synced(sa).assignment, Bytes::new(), "left out: empty");
    assert_eq!(h.synced(sa).error, ErrorCode::None);
    assert_eq!(h.group.state(), GroupState::Stable);
    // Stable: a late sync gets its assignment at once.
    let again = h.sync(sync_request(&b, generation));
    assert_eq!(h.synced(again).assignment, Bytes::from("for-b"));
}

#[test]
fn failed_assignment_append_answers_syncs_with_the_mapped_error_and_rebalances() {
    let cases = [
        (ErrorCode::NotLeaderOrFollower, ErrorCode::NotCoordinator),
        (ErrorCode::KafkaStorageError, ErrorCode::NotCoordinator),
        (
            ErrorCode::RequestTimedOut,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (
            ErrorCode::NotEnoughReplicas,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::CoordinatorNotAvailable,
        ),
        (ErrorCode::MessageTooLarge, ErrorCode::UnknownServerError),
        (ErrorCode::RecordListTooLarge, ErrorCode::UnknownServerError),
    ];
    for (append_error, expected) in cases {
        let mut h = harness();
        let a = h.member_id("a");
        let ta = h.join(join_request(&a));
        h.advance(DELAY_MS);
        assert_eq!(h.joined(ta).generation_id, 1);
        let sa = h.sync(sync_request(&a, 1));
        h.persist_all(Err(append_error));
        assert_eq!(h.synced(sa).error, expected, "{append_error:?}");
        assert_eq!(h.group.state(), GroupState::PreparingRebalance);
        assert_eq!(h.group.assignment(&a), Some(&Bytes::new()));
    }
}

#[test]
fn sync_errors_follow_kafkas_checks() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let mut wrong_type = sync_request(&ids[0], 1);
    wrong_type.protocol_type = Some("connect".to_string());
    let mut wrong_name = sync_request(&ids[0], 1);
    wrong_name.protocol_name = Some("sticky".to_string());
    let mut unnamed = sync_request(&ids[0], 1);
    (unnamed.protocol_type, unnamed.protocol_name) = (None, None);
    let cases = [
        (sync_request(&ids[0], 0), ErrorCode::IllegalGeneration),
        (sync_request("nobody", 1), ErrorCode::UnknownMemberId),
        (wrong_type, ErrorCode::InconsistentGroupProtocol),
        (wrong_name, ErrorCode::InconsistentGroupProtocol),
        (unnamed, ErrorCode::None),
    ];
    for (request, expected) in cases {
        let token = h.sync(request.clone());
        assert_eq!(h.synced(token).error, expected, "{request:?}");
    }
    // A rejoin starts a rebalance: syncs are told to rejoin.
    h.join(join_request(&ids[0]));
    let token = h.sync(sync_request(&ids[1], 1));
    assert_eq!(h.synced(token).error, ErrorCode::RebalanceInProgress);
    // An Empty group has no members to sync.
    let mut empty = harness();
    let token = empty.sync(sync_request("x", 0));
    assert_eq!(empty.synced(token).error, ErrorCode::UnknownMemberId);
}

#[test]
fn members_that_do_not_sync_in_time_are_removed() {
    let mut h = harness();
    let a = h.member_id("a");
    let b = h.member_id("b");
    h.join(join_request(&a));
    h.join(join_request(&b));
    h.advance(2 * DELAY_MS);
    let sb = h.sync(sync_request(&b, 1));
    h.advance_heartbeating(i64::from(REBALANCE_MS) - 1, &[&a]);
    assert!(h.group.member_ids().any(|id| id == a));
    assert!(h.sync_answer(sb).is_none());
    h.advance(1);
    assert!(
        !h.group.member_ids().any(|id| id == a),
        "the leader never synced"
    );
    assert_eq!(h.synced(sb).error, ErrorCode::RebalanceInProgress);
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn member_parked_in_sync_outlives_its_session() {
    let mut h = harness();
    let a = h.member_id("a");
    let b = h.member_id("b");
    let (ta, tb) = (h.join(join_request(&a)), h.join(join_request(&b)));
    h.advance(2 * DELAY_MS);
    assert_eq!(h.joined(tb).leader, a);
    let sb = h.sync(sync_request(&b, 1));
    // The leader takes its time over the assignment but keeps its session.
    h.advance_heartbeating(2 * i64::from(SESSION_MS), &[&a]);
    assert!(
        h.group.member_ids().any(|id| id == b),
        "b is parked in SyncGroup"
    );
    let mut leader_sync = sync_request(&a, h.joined(ta).generation_id);
    leader_sync.assignments = vec![(b.clone(), Bytes::from("for-b"))];
    h.sync(leader_sync);
    h.persist_all(Ok(()));
    assert_eq!(h.synced(sb).assignment, Bytes::from("for-b"));
}
