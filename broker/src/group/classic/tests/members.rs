//! Heartbeats, sessions, LeaveGroup and static members.

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use super::*;

#[test]
fn heartbeat_errors_follow_the_group_state_and_membership() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let cases = [
        (ids[0].as_str(), 1, ErrorCode::None),
        (ids[0].as_str(), 2, ErrorCode::IllegalGeneration),
        ("nobody", 1, ErrorCode::UnknownMemberId),
    ];
    for (member_id, generation_id, expected) in cases {
        assert_eq!(
            h.heartbeat(member_id, generation_id),
            expected,
            "{member_id}"
        );
    }
    h.join(join_request(&ids[0]));
    assert_eq!(h.heartbeat(&ids[1], 1), ErrorCode::RebalanceInProgress);
}

#[test]
fn heartbeat_keeps_the_session_and_silence_ends_it() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let session = i64::from(SESSION_MS);
    for _ in 0..3 {
        h.advance(session - 1);
        assert_eq!(h.heartbeat(&ids[0], 1), ErrorCode::None);
        assert_eq!(h.heartbeat(&ids[1], 1), ErrorCode::None);
    }
    h.advance(session - 1);
    assert_eq!(h.heartbeat(&ids[0], 1), ErrorCode::None);
    h.advance(1); // ids[1]'s session ends.
    assert_eq!(
        h.group.member_ids().collect::<Vec<_>>(),
        vec![ids[0].as_str()]
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&ids[1], 1), ErrorCode::UnknownMemberId);
}

#[test]
fn pending_member_expires_after_its_session() {
    let mut h = harness();
    let id = h.member_id("a");
    h.advance(i64::from(SESSION_MS) - 1);
    assert!(h.group.is_pending_member(&id));
    h.advance(1);
    assert!(!h.group.is_pending_member(&id));
    let token = h.join(join_request(&id));
    assert_eq!(h.joined(token).error, ErrorCode::UnknownMemberId);
}

#[test]
fn new_member_join_times_out_while_the_rebalance_waits() {
    let mut h = Harness::new(ClassicGroupConfig {
        new_member_join_timeout_ms: 5_000,
        ..Default::default()
    });
    let ids = h.stable_group(1);
    let newcomer = h.member_id("new");
    let token = h.join(join_request(&newcomer));
    assert_eq!(
        h.group.state(),
        GroupState::PreparingRebalance,
        "ids[0] has not rejoined"
    );
    h.advance_heartbeating(4_999, &[&ids[0]]);
    assert!(h.join_answer(token).is_none());
    h.advance(1);
    let response = h.joined(token);
    assert_eq!(response.error, ErrorCode::UnknownMemberId);
    assert!(!h.group.member_ids().any(|id| id == newcomer));
}

#[test]
fn leave_reports_each_member_and_rebalances() {
    let mut h = harness();
    let ids = h.stable_group(3);
    let instance = JoinRequest {
        api_version: 9,
        ..static_request("i-1", "")
    };
    h.join(instance);
    let static_id = h.group.static_members["i-1"].clone();
    let request = [
        leaving(&ids[0], None),
        leaving("nobody", None),
        leaving(&ids[1], Some("i-1")),
        leaving("", Some("i-1")),
        leaving("", Some("i-unknown")),
    ];
    let response = h.leave(&request);
    let codes: Vec<_> = response.members.iter().map(|(_, e)| *e).collect();
    use ErrorCode as E;
    let expected = [
        E::None,
        E::UnknownMemberId,
        E::FencedInstanceId,
        E::None,
        E::UnknownMemberId,
    ];
    assert_eq!(codes, expected);
    assert!(!h
        .group
        .member_ids()
        .any(|id| id == ids[0] || id == static_id));
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn last_member_leaving_empties_the_group_and_persists_it() {
    let mut h = harness();
    let ids = h.stable_group(1);
    let response = h.leave(&[leaving(&ids[0], None)]);
    assert_eq!(response.members[0].1, ErrorCode::None);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.generation_id(), 2);
    let persists = h.take_persists();
    assert_eq!(persists.len(), 1);
    assert_eq!(persists[0].1.generation_id, 2);
    assert!(persists[0].1.members.is_empty());
    assert_eq!(h.group.leader_id(), None);
}

#[test]
fn pending_member_can_leave() {
    let mut h = harness();
    let id = h.member_id("a");
    let response = h.leave(&[leaving(&id, None)]);
    assert_eq!(response.members[0].1, ErrorCode::None);
    assert!(!h.group.is_pending_member(&id));
}

#[test]
fn static_member_rejoining_while_stable_takes_a_new_id_and_fences_the_old() {
    let mut h = harness();
    let old_id = stable_static_member(&mut h);
    let token = h.join(static_request("i-1", ""));
    assert!(h.join_answer(token).is_none(), "answered after the append");
    let persists = h.take_persists();
    assert_eq!(persists.len(), 1);
    let new_id = persists[0].1.members[0].member_id.clone();
    let effects = h.group.on_persisted(persists[0].0, Ok(()), h.now_ms);
    h.effects.extend(effects);
    let response = h.joined(token);
    assert_eq!(
        (response.error, response.generation_id),
        (ErrorCode::None, 1)
    );
    assert_eq!(response.member_id, new_id);
    assert!(response.skip_assignment, "v9 leader keeps its assignment");
    assert_eq!(h.group.state(), GroupState::Stable, "no rebalance");
    assert_eq!(h.group.assignment(&new_id), Some(&Bytes::from("a")));
    let request = HeartbeatRequest {
        group_instance_id: Some("i-1".to_string()),
        ..heartbeat_request(&old_id, 1)
    };
    let (error, _) = h.group.heartbeat(&request, h.now_ms);
    assert_eq!(error, ErrorCode::FencedInstanceId);
}

#[test]
fn static_replacement_is_undone_when_its_append_fails() {
    let mut h = harness();
    let old_id = stable_static_member(&mut h);
    let token = h.join(static_request("i-1", ""));
    h.persist_all(Err(ErrorCode::NotLeaderOrFollower));
    let response = h.joined(token);
    assert_eq!(response.error, ErrorCode::NotCoordinator);
    assert_eq!(response.member_id, "");
    assert_eq!(
        h.group.member_ids().collect::<Vec<_>>(),
        vec![old_id.as_str()]
    );
    assert_eq!(h.group.leader_id(), Some(old_id.as_str()));
    assert_eq!(h.heartbeat(&old_id, 1), ErrorCode::None);
}

#[test]
fn static_rejoin_fences_a_parked_join_of_the_old_id() {
    let mut h = harness();
    let ids = h.stable_group_of(vec![static_request("i-1", ""), join_request("")]);
    let (old_id, dynamic_id) = (ids[0].clone(), ids[1].clone());
    let parked = h.join(JoinRequest {
        protocols: protocols(&["range", "sticky"]),
        ..static_request("i-1", &old_id)
    });
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    let replacing = h.join(static_request("i-1", ""));
    assert_eq!(h.joined(parked).error, ErrorCode::FencedInstanceId);
    assert!(
        h.join_answer(replacing).is_none(),
        "the dynamic member has not rejoined"
    );
    h.join(join_request(&dynamic_id));
    let response = h.joined(replacing);
    assert_eq!(response.generation_id, 2);
    assert!(response.member_id.starts_with("i-1-") && response.member_id != old_id);
}

#[test]
fn static_member_survives_a_rebalance_it_missed() {
    let mut h = harness();
    let static_id = stable_static_member(&mut h);
    let dynamic_id = h.member_id("d");
    let token = h.join(join_request(&dynamic_id));
    h.advance_heartbeating(i64::from(REBALANCE_MS), &[&static_id]);
    let response = h.joined(token);
    assert_eq!(response.generation_id, 2);
    assert!(
        h.group.member_ids().any(|id| id == static_id),
        "static members are kept"
    );
}
