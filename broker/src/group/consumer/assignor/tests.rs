//! The assignors' properties: every subscribed partition assigned exactly once and only to
//! a subscriber; uniform balanced within one and sticky; range as Kafka's ranges.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::group::consumer::member::iter_partitions;

const T1: Uuid = Uuid::from_u128(1);
const T2: Uuid = Uuid::from_u128(2);
const T3: Uuid = Uuid::from_u128(3);

fn member(topics: &[Uuid], previous: Partitions) -> MemberSpec {
    MemberSpec {
        instance_id: None,
        subscribed_topic_ids: topics.iter().copied().collect(),
        previous_target: previous,
    }
}

fn spec(members: Vec<(&str, MemberSpec)>, counts: &[(Uuid, i32)]) -> AssignmentSpec {
    AssignmentSpec {
        members: members
            .into_iter()
            .map(|(id, m)| (id.to_string(), m))
            .collect(),
        partition_counts: counts.iter().copied().collect(),
    }
}

fn parts(topic: Uuid, partitions: impl IntoIterator<Item = i32>) -> Partitions {
    let set: BTreeSet<i32> = partitions.into_iter().collect();
    if set.is_empty() {
        return Partitions::new();
    }
    Partitions::from([(topic, set)])
}

/// Every partition of a subscribed topic is assigned exactly once, to a subscriber, and
/// every member has an entry.
fn assert_complete(spec: &AssignmentSpec, result: &BTreeMap<String, Partitions>) {
    assert_eq!(
        result.keys().collect::<Vec<_>>(),
        spec.members.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for (member_id, assignment) in result {
        for (t, p) in iter_partitions(assignment) {
            assert!(spec.members[member_id].subscribed_topic_ids.contains(&t));
            assert!(p < spec.partition_count(t));
            assert!(seen.insert((t, p)), "{t}-{p} assigned twice");
        }
    }
    let subscribed: BTreeSet<Uuid> = spec
        .members
        .values()
        .flat_map(|m| m.subscribed_topic_ids.iter().copied())
        .collect();
    let expected: usize = subscribed
        .iter()
        .map(|t| spec.partition_count(*t).max(0) as usize)
        .sum();
    assert_eq!(seen.len(), expected, "some partition unassigned");
}

fn counts(result: &BTreeMap<String, Partitions>) -> Vec<usize> {
    result.values().map(count).collect()
}

fn assert_balanced(result: &BTreeMap<String, Partitions>) {
    let counts = counts(result);
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "unbalanced: {counts:?}");
}

#[test]
fn uniform_spreads_one_topic_evenly() {
    let s = spec(
        vec![
            ("a", member(&[T1], Partitions::new())),
            ("b", member(&[T1], Partitions::new())),
            ("c", member(&[T1], Partitions::new())),
        ],
        &[(T1, 7)],
    );
    let result = Assignor::Uniform.assign(&s);
    assert_complete(&s, &result);
    assert_eq!(counts(&result), vec![3, 2, 2]);
}

#[test]
fn uniform_keeps_partitions_when_a_member_joins() {
    let first = spec(
        vec![
            ("a", member(&[T1, T2], Partitions::new())),
            ("b", member(&[T1, T2], Partitions::new())),
        ],
        &[(T1, 5), (T2, 4)],
    );
    let before = Assignor::Uniform.assign(&first);
    let mut members: Vec<(&str, MemberSpec)> = before
        .iter()
        .map(|(id, a)| (id.as_str(), member(&[T1, T2], a.clone())))
        .collect();
    members.push(("c", member(&[T1, T2], Partitions::new())));
    let second = spec(members, &[(T1, 5), (T2, 4)]);
    let after = Assignor::Uniform.assign(&second);
    assert_complete(&second, &after);
    assert_balanced(&after);
    for id in ["a", "b"] {
        let kept = iter_partitions(&after[id]).all(|(t, p)| before[id][&t].contains(&p));
        assert!(
            kept,
            "{id} gained a partition: {:?} -> {:?}",
            before[id], after[id]
        );
    }
}

#[test]
fn uniform_gives_a_leaving_members_partitions_to_the_others_only() {
    let first = spec(
        vec![
            ("a", member(&[T1], Partitions::new())),
            ("b", member(&[T1], Partitions::new())),
            ("c", member(&[T1], Partitions::new())),
        ],
        &[(T1, 9)],
    );
    let before = Assignor::Uniform.assign(&first);
    let second = spec(
        vec![
            ("a", member(&[T1], before["a"].clone())),
            ("c", member(&[T1], before["c"].clone())),
        ],
        &[(T1, 9)],
    );
    let after = Assignor::Uniform.assign(&second);
    assert_complete(&second, &after);
    assert_balanced(&after);
    for id in ["a", "c"] {
        assert!(iter_partitions(&before[id]).all(|(t, p)| after[id][&t].contains(&p)));
    }
}

#[test]
fn uniform_heterogeneous_balances_where_subscriptions_allow() {
    let s = spec(
        vec![
            ("a", member(&[T1], Partitions::new())),
            ("b", member(&[T1, T2], Partitions::new())),
            ("c", member(&[T2, T3], Partitions::new())),
        ],
        &[(T1, 3), (T2, 3), (T3, 3)],
    );
    let result = Assignor::Uniform.assign(&s);
    assert_complete(&s, &result);
    assert_eq!(counts(&result), vec![3, 3, 3]);
}

#[test]
fn uniform_heterogeneous_moves_a_hoarders_partitions() {
    let s = spec(
        vec![
            ("a", member(&[T1, T2], parts(T1, 0..6))),
            ("b", member(&[T1], Partitions::new())),
            ("c", member(&[T2], Partitions::new())),
        ],
        &[(T1, 6), (T2, 3)],
    );
    let result = Assignor::Uniform.assign(&s);
    assert_complete(&s, &result);
    assert_balanced(&result);
}

#[test]
fn range_gives_contiguous_ranges_first_members_one_more() {
    let s = spec(
        vec![
            ("a", member(&[T1, T2], Partitions::new())),
            ("b", member(&[T1, T2], Partitions::new())),
        ],
        &[(T1, 3), (T2, 3)],
    );
    let result = Assignor::Range.assign(&s);
    assert_complete(&s, &result);
    let mut a = parts(T1, 0..2);
    a.extend(parts(T2, 0..2));
    let mut b = parts(T1, [2]);
    b.extend(parts(T2, [2]));
    assert_eq!(result["a"], a, "co-partitioned");
    assert_eq!(result["b"], b);
}

#[test]
fn range_puts_static_members_first_by_instance_id() {
    let mut z = member(&[T1], Partitions::new());
    z.instance_id = Some("instance-0".into());
    let s = spec(
        vec![("a", member(&[T1], Partitions::new())), ("z", z)],
        &[(T1, 4)],
    );
    let result = Assignor::Range.assign(&s);
    assert_eq!(result["z"], parts(T1, 0..2));
    assert_eq!(result["a"], parts(T1, 2..4));
}

#[test]
fn range_heterogeneous_splits_each_topic_among_its_subscribers() {
    let s = spec(
        vec![
            ("a", member(&[T1], Partitions::new())),
            ("b", member(&[T1, T2], Partitions::new())),
        ],
        &[(T1, 4), (T2, 2)],
    );
    let result = Assignor::Range.assign(&s);
    assert_complete(&s, &result);
    assert_eq!(result["a"], parts(T1, 0..2));
    let mut b = parts(T1, 2..4);
    b.extend(parts(T2, 0..2));
    assert_eq!(result["b"], b);
}

#[test]
fn assignors_give_members_of_missing_topics_nothing() {
    let s = spec(vec![("a", member(&[], Partitions::new()))], &[]);
    for assignor in [Assignor::Uniform, Assignor::Range] {
        let result = assignor.assign(&s);
        assert_eq!(result["a"], Partitions::new());
    }
}

fn homogeneous_group() -> impl Strategy<Value = (usize, Vec<i32>, Vec<usize>)> {
    // members, partition counts of up to three topics, and which previous members stay.
    (
        1usize..7,
        prop::collection::vec(0i32..12, 1..4),
        prop::collection::vec(0usize..7, 0..7),
    )
}

proptest! {
    #[test]
    fn uniform_homogeneous_is_complete_balanced_and_sticky(
        (members, partition_counts, stayers) in homogeneous_group()
    ) {
        let topics: Vec<Uuid> = (1..=partition_counts.len() as u128).map(Uuid::from_u128).collect();
        let counts: Vec<(Uuid, i32)> = topics.iter().copied().zip(partition_counts).collect();
        let ids: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
        let first = spec(
            ids.iter().map(|id| (id.as_str(), member(&topics, Partitions::new()))).collect(),
            &counts,
        );
        let before = Assignor::Uniform.assign(&first);
        assert_complete(&first, &before);
        assert_balanced(&before);

        // Some members stay (with their previous targets), one new member joins.
        let stay: BTreeSet<usize> = stayers.into_iter().filter(|i| *i < members).collect();
        let mut next: Vec<(&str, MemberSpec)> = stay
            .iter()
            .map(|i| (ids[*i].as_str(), member(&topics, before[&ids[*i]].clone())))
            .collect();
        next.push(("new", member(&topics, Partitions::new())));
        let second = spec(next, &counts);
        let after = Assignor::Uniform.assign(&second);
        assert_complete(&second, &after);
        assert_balanced(&after);
        if stay.len() == members {
            for i in &stay {
                let id = &ids[*i];
                let old = &before[id];
                let kept = iter_partitions(&after[id])
                    .all(|(t, p)| old.get(&t).is_some_and(|s| s.contains(&p)));
                prop_assert!(kept, "{} gained a partition", id);
            }
        }
    }

    #[test]
    fn assignors_are_complete_for_any_subscriptions(
        subscriptions in prop::collection::vec(prop::collection::btree_set(1u128..4, 0..4), 1..6),
        partition_counts in prop::collection::vec(0i32..10, 3),
    ) {
        let counts: Vec<(Uuid, i32)> = (1u128..4)
            .map(Uuid::from_u128)
            .zip(partition_counts)
            .collect();
        let ids: Vec<String> = (0..subscriptions.len()).map(|i| format!("m{i}")).collect();
        let members = ids
            .iter()
            .zip(&subscriptions)
            .map(|(id, topics)| {
                let topics: Vec<Uuid> = topics.iter().map(|t| Uuid::from_u128(*t)).collect();
                (id.as_str(), member(&topics, Partitions::new()))
            })
            .collect();
        let s = spec(members, &counts);
        for assignor in [Assignor::Uniform, Assignor::Range] {
            assert_complete(&s, &assignor.assign(&s));
        }
    }
}
