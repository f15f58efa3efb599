//! Static membership (`group.instance.id`): temporary leave with -2, rejoin under a new
//! member id, and the instance id's errors.

use super::*;
use crate::group::consumer::member::MemberState;

fn static_join(member_id: &str, instance_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        instance_id: Some(instance_id.to_string()),
        ..join(member_id, &["foo"])
    }
}

fn static_beat(
    member_id: &str,
    instance_id: &str,
    epoch: i32,
    owned: Partitions,
) -> HeartbeatRequest {
    HeartbeatRequest {
        instance_id: Some(instance_id.to_string()),
        ..beat(member_id, epoch, owned)
    }
}

fn static_leave(member_id: &str, instance_id: &str, epoch: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        instance_id: Some(instance_id.to_string()),
        ..leave(member_id, epoch)
    }
}

/// `s1` (instance `i1`) and dynamic `b`, reconciled: s1 has foo 0-2, b has 3-5.
fn stable_pair(h: &mut Harness) -> Client {
    let mut s = Client::new("s1");
    s.accept(&h.heartbeat(static_join("s1", "i1")));
    let mut b = Client::new("b");
    b.join(h, &["foo"]);
    s.accept(&h.heartbeat(static_beat("s1", "i1", s.epoch, s.owned.clone())));
    s.accept(&h.heartbeat(static_beat("s1", "i1", s.epoch, s.owned.clone())));
    b.beat(h);
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(s.owned, tp(FOO, &[0, 1, 2]));
    b
}

#[test]
fn static_member_leaving_for_a_while_keeps_its_partitions() {
    let mut h = Harness::new();
    let mut b = stable_pair(&mut h);
    let (response, records) = h
        .send(static_leave("s1", "i1", LEAVE_GROUP_STATIC_MEMBER_EPOCH))
        .unwrap();
    assert_eq!(response.member_epoch, -2);
    assert_eq!(records.len(), 1, "only its current assignment: {records:?}");
    assert_eq!(h.group.group_epoch(), 2, "no rebalance");
    assert_eq!(h.member("s1").member_epoch(), -2);
    assert_eq!(h.group.current_partition_epoch(FOO, 0), -2, "still held");
    b.beat(&mut h);
    assert_eq!(b.owned, tp(FOO, &[3, 4, 5]));

    // The instance comes back under a new member id and takes its partitions back.
    let (response, _) = h.send(static_join("s2", "i1")).unwrap();
    assert_eq!(response.member_id, "s2");
    assert_eq!(response.member_epoch, 2);
    assert_eq!(response.assignment, Some(tp(FOO, &[0, 1, 2])));
    assert!(!h.group.has_member("s1"));
    assert_eq!(
        h.group.group_epoch(),
        2,
        "a static rejoin does not rebalance"
    );
    assert_eq!(h.member("s2").state(), MemberState::Stable);
    h.assert_replay_matches();
}

#[test]
fn static_member_that_does_not_come_back_is_removed_at_its_session_timeout() {
    let mut h = Harness::new();
    let mut b = stable_pair(&mut h);
    h.heartbeat(static_leave("s1", "i1", LEAVE_GROUP_STATIC_MEMBER_EPOCH));
    h.advance(20_000);
    b.beat(&mut h);
    h.advance(SESSION_MS - 20_000);
    assert!(!h.group.has_member("s1"));
    b.beat(&mut h);
    b.beat(&mut h);
    assert_eq!(b.owned, tp(FOO, &[0, 1, 2, 3, 4, 5]));
    h.assert_replay_matches();
}

#[test]
fn joining_with_an_instance_id_still_held_is_unreleased_instance_id() {
    let mut h = Harness::new();
    stable_pair(&mut h);
    let error = h.error(static_join("s2", "i1"));
    assert_eq!(error.code(), UNRELEASED_INSTANCE_ID);
    assert_eq!(
        error.message(),
        "Static member s2 with instance id i1 cannot join the group because the instance id is \
         owned by s1 member."
    );
}

#[test]
fn heartbeat_for_an_instance_held_by_another_member_is_fenced_instance_id() {
    let mut h = Harness::new();
    stable_pair(&mut h);
    let error = h.error(static_beat("s2", "i1", 2, Partitions::new()));
    assert_eq!(error.code(), 82);
    assert_eq!(
        error.message(),
        "Static member s2 with instance id i1 was fenced by member s1."
    );
    let error = h.error(static_leave("s2", "i1", LEAVE_GROUP_STATIC_MEMBER_EPOCH));
    assert_eq!(error.code(), 82);
}

#[test]
fn heartbeat_for_an_unknown_instance_is_unknown_member_id() {
    let mut h = Harness::new();
    let error = h.error(static_beat("s1", "nobody", 1, Partitions::new()));
    assert_eq!(error.code(), 25);
    assert_eq!(error.message(), "Instance id nobody is unknown.");
    let error = h.error(static_leave("s1", "nobody", LEAVE_GROUP_MEMBER_EPOCH));
    assert_eq!(error.message(), "Instance id nobody is unknown.");
}

#[test]
fn static_member_leaving_with_minus_one_leaves_for_good() {
    let mut h = Harness::new();
    stable_pair(&mut h);
    h.heartbeat(static_leave("s1", "i1", LEAVE_GROUP_MEMBER_EPOCH));
    assert!(!h.group.has_member("s1"));
    assert_eq!(h.group.group_epoch(), 3);
    // The instance id is free: a new member takes it as a new member.
    let response = h.heartbeat(static_join("s2", "i1"));
    assert_eq!(h.group.group_epoch(), 4);
    assert_eq!(response.member_epoch, 4);
    h.assert_replay_matches();
}
