//! Reconciliation: revoke before reassign, the member states, the rebalance timeout.

use super::*;
use crate::group::consumer::member::MemberState;

/// No partition is in two members' current assignments (assigned or revoking).
fn assert_no_double_ownership(h: &Harness) {
    let mut seen = BTreeSet::new();
    for member_id in h.group.member_ids() {
        for tp in h.member(member_id).owned_partitions() {
            assert!(seen.insert(tp), "{tp:?} owned twice");
        }
    }
}

#[test]
fn partition_moves_only_after_its_owner_revoked_it() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);

    // b joins: its target is half of foo, but a still owns it all.
    let mut b = Client::new("b");
    let response = b.join(&mut h, &["foo"]);
    assert_eq!(response.member_epoch, 2);
    assert_eq!(response.assignment, Some(Partitions::new()));
    assert_eq!(h.member("b").state(), MemberState::UnreleasedPartitions);
    assert_eq!(h.group.state(), GroupState::Reconciling);
    assert_no_double_ownership(&h);

    // a is asked to revoke, at its current epoch.
    let before = a.owned.clone();
    let response = h.heartbeat(beat("a", 1, before.clone()));
    assert_eq!(response.member_epoch, 1);
    assert_eq!(response.assignment, Some(tp(FOO, &[0, 1, 2])));
    assert_eq!(h.member("a").state(), MemberState::UnrevokedPartitions);
    assert_eq!(
        h.member("a").current.partitions_pending_revocation,
        tp(FOO, &[3, 4, 5])
    );

    // b still gets nothing, and a still owning them keeps it revoking.
    assert_eq!(b.beat(&mut h).assignment, None);
    let response = h.heartbeat(beat("a", 1, before));
    assert_eq!(response.member_epoch, 1);
    assert_eq!(h.member("a").state(), MemberState::UnrevokedPartitions);
    assert_no_double_ownership(&h);

    // a acknowledges (owned no longer lists them): epoch 2, Stable.
    let response = h.heartbeat(beat("a", 1, tp(FOO, &[0, 1, 2])));
    assert_eq!(response.member_epoch, 2);
    assert_eq!(response.assignment, None, "its assignment did not change");
    assert_eq!(h.member("a").state(), MemberState::Stable);

    // Now b gets them.
    let response = b.beat(&mut h);
    assert_eq!(response.assignment, Some(tp(FOO, &[3, 4, 5])));
    assert_eq!(h.member("b").state(), MemberState::Stable);
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_no_double_ownership(&h);
    h.assert_replay_matches();
}

#[test]
fn heartbeat_without_owned_partitions_keeps_a_member_revoking() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.heartbeat(join("b", &["foo"]));
    a.beat(&mut h);
    let mut request = beat("a", 1, Partitions::new());
    request.owned_partitions = None;
    h.heartbeat(request);
    assert_eq!(h.member("a").state(), MemberState::UnrevokedPartitions);
}

#[test]
fn member_that_does_not_revoke_in_time_is_removed() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo"]);
    h.heartbeat(beat("a", 1, a.owned.clone())); // a must revoke
    assert!(h
        .timers
        .iter()
        .any(|(t, at)| *t == TimerKind::Rebalance("a".into()) && *at == h.now_ms + 30_000));

    // b keeps its session; a keeps heartbeating without revoking.
    for _ in 0..3 {
        h.advance(9_000);
        b.beat(&mut h);
        h.heartbeat(beat("a", 1, a.owned.clone()));
    }
    assert!(h.group.has_member("a"));
    let records = h.advance(4_000);
    assert!(!h.group.has_member("a"), "fenced at its rebalance timeout");
    assert_eq!(
        records.last(),
        Some(&ConsumerGroupRecord::GroupMetadata { epoch: 3 })
    );
    let error = h.error(beat("a", 1, a.owned.clone()));
    assert_eq!(error.code(), 25);

    // b now gets everything.
    b.beat(&mut h);
    assert_eq!(b.owned, tp(FOO, &[0, 1, 2, 3, 4, 5]));
    h.assert_replay_matches();
}

#[test]
fn revoking_in_time_cancels_the_rebalance_timeout() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo"]);
    a.beat(&mut h);
    a.beat(&mut h);
    assert_eq!(h.member("a").state(), MemberState::Stable);
    for _ in 0..5 {
        h.advance(10_000);
        a.beat(&mut h);
        b.beat(&mut h);
    }
    assert!(h.group.has_member("a"));
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn session_timeout_removes_the_member_and_bumps_the_epoch() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["bar"]);
    h.advance(30_000);
    b.beat(&mut h);
    let records = h.advance(SESSION_MS - 30_000);
    assert!(!h.group.has_member("a"));
    assert!(h.group.has_member("b"));
    let versions: Vec<i16> = records.iter().map(|r| r.key_version()).collect();
    // Current, target and metadata tombstones; partition metadata without foo; epoch.
    assert_eq!(versions, vec![8, 7, 5, 4, 3]);
    assert!(records[..3].iter().all(|r| r.is_tombstone()));
    assert_eq!(h.group.state(), GroupState::Assigning);
    b.beat(&mut h);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.assert_replay_matches();
}

#[test]
fn every_heartbeat_rearms_the_session() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    for _ in 0..10 {
        h.advance(SESSION_MS - 1);
        a.beat(&mut h);
    }
    assert!(h.group.has_member("a"));
    assert_eq!(h.group.next_deadline_ms(), Some(h.now_ms + SESSION_MS));
}

#[test]
fn leaving_removes_the_member_and_the_others_take_over() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo"]);
    a.beat(&mut h);
    a.beat(&mut h);
    b.beat(&mut h);
    let (response, records) = h.send(leave("a", LEAVE_GROUP_MEMBER_EPOCH)).unwrap();
    assert_eq!(response.member_epoch, -1);
    assert_eq!(response.member_id, "a");
    assert_eq!(response.assignment, None);
    let versions: Vec<i16> = records.iter().map(|r| r.key_version()).collect();
    assert_eq!(versions, vec![8, 7, 5, 3]);
    assert_eq!(h.group.group_epoch(), 3);
    let response = b.beat(&mut h);
    assert_eq!(response.member_epoch, 3);
    assert_eq!(b.owned, tp(FOO, &[0, 1, 2, 3, 4, 5]));
    assert_eq!(h.group.state(), GroupState::Stable);
    h.assert_replay_matches();
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.heartbeat(leave("a", LEAVE_GROUP_MEMBER_EPOCH));
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.next_deadline_ms(), None, "its timers are gone");
    assert_eq!(h.group.current_partition_epoch(FOO, 0), -1);
}
