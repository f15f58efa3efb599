//! Group states, ConsumerGroupDescribe, offset commit/fetch validation and deletion.

use super::*;
use crate::group::classic::CommitKind;

#[test]
fn group_states_follow_kafkas_rules() {
    let mut h = Harness::new();
    assert_eq!(h.group.state(), GroupState::Empty);
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    assert_eq!(h.group.state(), GroupState::Stable);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo"]);
    assert_eq!(h.group.state(), GroupState::Reconciling);
    a.beat(&mut h);
    a.beat(&mut h);
    b.beat(&mut h);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.heartbeat(leave("b", LEAVE_GROUP_MEMBER_EPOCH));
    assert_eq!(h.group.state(), GroupState::Assigning);
    a.beat(&mut h);
    assert_eq!(h.group.state(), GroupState::Stable);
    h.heartbeat(leave("a", LEAVE_GROUP_MEMBER_EPOCH));
    assert_eq!(h.group.state(), GroupState::Empty);
    h.group.delete().unwrap();
    assert_eq!(h.group.state(), GroupState::Dead);
    assert_eq!(GroupState::Dead.as_str(), "Dead");
}

#[test]
fn describe_reports_members_and_assignments() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let request = HeartbeatRequest {
        rack_id: Some("rack-1".into()),
        instance_id: Some("i-b".into()),
        server_assignor: Some("range".into()),
        ..join("b", &["foo", "bar"])
    };
    h.heartbeat(request);
    let description = h.group.describe(&h.topics);
    assert_eq!(description.group_id, "group");
    assert_eq!(description.group_state, "Reconciling");
    assert_eq!(description.group_epoch, 2);
    assert_eq!(description.assignment_epoch, 2);
    assert_eq!(description.assignor_name, "range");
    assert_eq!(description.members.len(), 2);
    let b = &description.members[1];
    assert_eq!(b.member_id, "b");
    assert_eq!(b.instance_id.as_deref(), Some("i-b"));
    assert_eq!(b.rack_id.as_deref(), Some("rack-1"));
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.client_id, "client");
    assert_eq!(b.client_host, "/127.0.0.1");
    assert_eq!(b.subscribed_topic_names, vec!["bar", "foo"]);
    assert_eq!(b.member_type, 1);
    // Range: b (static) sorts first; it has bar alone and foo 0-2.
    let names: Vec<&str> = b
        .target_assignment
        .iter()
        .map(|t| t.topic_name.as_str())
        .collect();
    assert_eq!(names, vec!["bar", "foo"]); // by topic id: BAR < FOO
    assert_eq!(b.target_assignment[0].partitions, vec![0, 1, 2]);
    assert_eq!(b.target_assignment[1].partitions, vec![0, 1, 2]);
    // bar is free, so b already has it; foo 0-2 is still a's.
    assert_eq!(b.assignment.len(), 1);
    assert_eq!(b.assignment[0].topic_id, BAR);
    let a = &description.members[0];
    assert_eq!(a.assignment[0].partitions, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(a.target_assignment[0].partitions, vec![3, 4, 5]);
}

#[test]
fn describe_of_an_empty_group_names_the_default_assignor() {
    let h = Harness::new();
    let description = h.group.describe(&h.topics);
    assert_eq!(description.group_state, "Empty");
    assert_eq!(description.assignor_name, "uniform");
    assert!(description.members.is_empty());
}

#[test]
fn offset_commit_checks_the_member_epoch() {
    let mut h = Harness::new();
    let group = &h.group;
    assert_eq!(
        group.validate_offset_commit("", -1, CommitKind::Consumer, 2),
        Ok(())
    );
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let group = &h.group;
    let error = group
        .validate_offset_commit("", -1, CommitKind::Consumer, 9)
        .unwrap_err();
    assert_eq!(error.code(), 25, "a simple commit needs an empty group");
    let error = group
        .validate_offset_commit("x", 1, CommitKind::Consumer, 9)
        .unwrap_err();
    assert_eq!(error.message(), "Member x is not a member of group group.");
    assert_eq!(
        group.validate_offset_commit("a", 1, CommitKind::Consumer, 9),
        Ok(())
    );
    let error = group
        .validate_offset_commit("a", 0, CommitKind::Consumer, 9)
        .unwrap_err();
    assert_eq!(error.code(), STALE_MEMBER_EPOCH);
    assert_eq!(
        error.message(),
        "The received member epoch 0 does not match the expected member epoch 1."
    );
    let error = group
        .validate_offset_commit("a", 1, CommitKind::Consumer, 8)
        .unwrap_err();
    assert_eq!(error.code(), 35);
    let transactional = CommitKind::Transactional;
    assert_eq!(
        group.validate_offset_commit("a", 1, transactional, 3),
        Ok(())
    );
}

#[test]
fn offset_fetch_checks_the_member_epoch() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let group = &h.group;
    assert_eq!(group.validate_offset_fetch(None, -1), Ok(()));
    assert_eq!(group.validate_offset_fetch(Some("a"), 1), Ok(()));
    let stale = group.validate_offset_fetch(Some("a"), 2).unwrap_err();
    assert_eq!(stale.code(), STALE_MEMBER_EPOCH);
    let unknown = group.validate_offset_fetch(Some("x"), 1).unwrap_err();
    assert_eq!(unknown.code(), 25);
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let error = h.group.delete().unwrap_err();
    assert_eq!(error.code(), 68);
    h.heartbeat(leave("a", LEAVE_GROUP_MEMBER_EPOCH));
    let tombstones = h.group.delete().unwrap();
    assert!(tombstones.iter().all(|r| r.is_tombstone()));
    assert_eq!(tombstones.last().unwrap().key_version(), 3);
    h.records.extend(tombstones);
    assert_eq!(h.replayed().state(), GroupState::Dead);
}

#[test]
fn subscribed_topics_are_known_for_offset_delete() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    assert!(h.group.is_subscribed_to_topic("foo"));
    assert!(!h.group.is_subscribed_to_topic("bar"));
}
