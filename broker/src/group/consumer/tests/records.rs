//! Loading a group from its records, and the record sequences replay refuses.

use super::*;
use crate::group::consumer::member::{CurrentAssignment, MemberMetadata, MemberState};

fn metadata(topics: &[&str]) -> MemberMetadata {
    MemberMetadata {
        subscribed_topic_names: topics.iter().map(|t| t.to_string()).collect(),
        rebalance_timeout_ms: REBALANCE_MS,
        ..MemberMetadata::default()
    }
}

fn current(epoch: i32, state: MemberState, assigned: Partitions) -> CurrentAssignment {
    CurrentAssignment {
        member_epoch: epoch,
        previous_member_epoch: epoch - 1,
        state,
        assigned_partitions: assigned,
        partitions_pending_revocation: Partitions::new(),
    }
}

#[test]
fn loaded_group_matches_the_group_that_wrote_the_records() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    let mut b = Client::new("b");
    b.join(&mut h, &["foo", "bar"]);
    a.beat(&mut h);
    h.advance(1_000);
    let loaded = h.replayed();
    assert_eq!(loaded.data, h.group.data);
    assert_eq!(loaded.state(), h.group.state());
    assert_eq!(loaded.describe(&h.topics), h.group.describe(&h.topics));
}

#[test]
fn loaded_group_arms_sessions_and_pending_revocations() {
    let mut h = Harness::new();
    let mut a = Client::new("a");
    a.join(&mut h, &["foo"]);
    h.heartbeat(join("b", &["foo"]));
    a.beat(&mut h); // a is revoking
    let mut loaded = h.replayed();
    let effects = loaded.start_timers(100_000);
    let timers: Vec<&TimerKind> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleTimer { timer, .. } => Some(timer),
            Effect::Persist { .. } => None,
        })
        .collect();
    assert_eq!(
        timers,
        vec![
            &TimerKind::Session("a".into()),
            &TimerKind::Rebalance("a".into()),
            &TimerKind::Session("b".into()),
        ]
    );
    let effects = loaded.tick(100_000 + i64::from(REBALANCE_MS));
    assert!(!loaded.has_member("a"), "fenced: {effects:?}");
}

#[test]
fn replay_refuses_a_partition_owned_twice() {
    let mut group = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    for id in ["a", "b"] {
        let record = ConsumerGroupRecord::MemberMetadata {
            member_id: id.into(),
            metadata: metadata(&["foo"]),
        };
        group.replay(record).unwrap();
    }
    let own = |id: &str| ConsumerGroupRecord::CurrentMemberAssignment {
        member_id: id.into(),
        assignment: current(1, MemberState::Stable, tp(FOO, &[0])),
    };
    group.replay(own("a")).unwrap();
    let error = group.replay(own("b")).unwrap_err();
    assert!(error.0.contains("while owned at epoch 1"), "{error}");
}

#[test]
fn replay_refuses_a_current_assignment_without_member() {
    let mut group = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let record = ConsumerGroupRecord::CurrentMemberAssignment {
        member_id: "a".into(),
        assignment: current(1, MemberState::Stable, Partitions::new()),
    };
    assert!(group.replay(record).is_err());
}

#[test]
fn replay_refuses_a_member_tombstone_before_its_assignment_tombstone() {
    let mut group = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let record = ConsumerGroupRecord::MemberMetadata {
        member_id: "a".into(),
        metadata: metadata(&["foo"]),
    };
    group.replay(record).unwrap();
    let tombstone = ConsumerGroupRecord::MemberMetadataTombstone {
        member_id: "a".into(),
    };
    assert!(group.replay(tombstone.clone()).is_err());
    let assignment_tombstone = ConsumerGroupRecord::CurrentMemberAssignmentTombstone {
        member_id: "a".into(),
    };
    group.replay(assignment_tombstone).unwrap();
    group.replay(tombstone).unwrap();
    assert!(!group.has_member("a"));
}

#[test]
fn replay_refuses_deleting_a_group_with_members() {
    let mut group = ConsumerGroup::new("g", ConsumerGroupConfig::default());
    let record = ConsumerGroupRecord::MemberMetadata {
        member_id: "a".into(),
        metadata: metadata(&["foo"]),
    };
    group.replay(record).unwrap();
    assert!(group
        .replay(ConsumerGroupRecord::GroupMetadataTombstone)
        .is_err());
}

#[test]
fn member_state_record_values_are_kafkas() {
    for state in [
        MemberState::Stable,
        MemberState::UnrevokedPartitions,
        MemberState::UnreleasedPartitions,
    ] {
        assert_eq!(
            MemberState::from_record_value(state.as_record_value()),
            Some(state)
        );
    }
    assert_eq!(MemberState::UnreleasedPartitions.as_record_value(), 2);
    assert_eq!(MemberState::from_record_value(127), None);
}
