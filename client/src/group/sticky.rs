//! `cooperative-sticky` (Kafka's `CooperativeStickyAssignor`, KIP-429): a balanced
//! assignment that moves as few partitions as it can, handed out in two rounds so that no
//! partition is ever owned by two members.
//!
//! Each member's subscription carries what it owns and its generation. The leader:
//! 1. keeps every owned partition that still exists and that its owner still subscribes to
//!    (when two members claim one, the claim of the higher generation wins, as Kafka's);
//! 2. gives each unowned partition to the member with the fewest partitions among those
//!    subscribed to its topic (ties: member order);
//! 3. balances: while a member has two partitions more than some other member subscribed to
//!    one of them, the last such partition moves to the least loaded one;
//! 4. cooperatively: a partition that moves from its owner to another member is left out
//!    of the new owner's assignment this round. Its owner gives it up (it is not in its
//!    assignment any more) and rejoins at once; the next round gives it to the new owner.
//!
//! Kafka's own algorithm (`AbstractStickyAssignor`) reaches the same properties by quotas
//! and may pick different partitions to move; the result here is balanced (counts differ
//! by at most one among members with the same subscription) and sticky, which is what
//! members rely on, not which partitions they get.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{member_order, Assignment, MemberSubscription};

type TopicPartition = (String, i32);

pub(super) fn cooperative_sticky(
    members: &[MemberSubscription],
    partition_counts: &BTreeMap<String, i32>,
) -> Assignment {
    let mut ordered: Vec<&MemberSubscription> = members.iter().collect();
    ordered.sort_by(|a, b| member_order(a, b));
    let exists = |(topic, partition): &TopicPartition| {
        partition_counts
            .get(topic)
            .is_some_and(|&count| *partition >= 0 && *partition < count)
    };
    let previous = previous_owners(&ordered, &exists);
    let mut owned: BTreeMap<&str, BTreeSet<TopicPartition>> = ordered
        .iter()
        .map(|m| (m.member_id.as_str(), BTreeSet::new()))
        .collect();
    for (partition, owner) in &previous {
        owned.entry(owner).or_default().insert(partition.clone());
    }
    let eligible = |partition: &TopicPartition| -> Vec<&str> {
        ordered
            .iter()
            .filter(|m| m.topics.contains(&partition.0))
            .map(|m| m.member_id.as_str())
            .collect()
    };
    for (topic, &count) in partition_counts {
        for partition in 0..count.max(0) {
            let key = (topic.clone(), partition);
            if previous.contains_key(&key) {
                continue;
            }
            let candidates = eligible(&key);
            if let Some(member) = least_loaded(&owned, &candidates) {
                owned.entry(member).or_default().insert(key);
            }
        }
    }
    balance(&mut owned, &ordered, &eligible);
    // Step 4: what moves away from its owner waits for the next round.
    let mut assignment = Assignment::new();
    for (member, partitions) in owned {
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for partition in partitions {
            let moving = previous
                .get(&partition)
                .is_some_and(|owner| *owner != member);
            if !moving {
                topics.entry(partition.0).or_default().push(partition.1);
            }
        }
        assignment.insert(member.to_string(), topics);
    }
    assignment
}

/// Who owns each partition now: valid claims (the partition exists, the owner still
/// subscribes to its topic), the highest generation winning a contested one.
fn previous_owners<'a>(
    ordered: &[&'a MemberSubscription],
    exists: &dyn Fn(&TopicPartition) -> bool,
) -> BTreeMap<TopicPartition, &'a str> {
    let mut claims: BTreeMap<TopicPartition, (i32, &str)> = BTreeMap::new();
    for member in ordered {
        for partition in &member.owned_partitions {
            if !exists(partition) || !member.topics.contains(&partition.0) {
                continue;
            }
            let claim = (member.generation, member.member_id.as_str());
            match claims.get(partition) {
                Some((generation, _)) if *generation >= member.generation => {}
                _ => {
                    claims.insert(partition.clone(), claim);
                }
            }
        }
    }
    claims.into_iter().map(|(p, (_, m))| (p, m)).collect()
}

fn least_loaded<'a>(
    owned: &BTreeMap<&'a str, BTreeSet<TopicPartition>>,
    candidates: &[&'a str],
) -> Option<&'a str> {
    // `candidates` is in member order; `min_by_key` keeps the first of equals.
    candidates
        .iter()
        .copied()
        .min_by_key(|member| owned.get(member).map_or(0, BTreeSet::len))
}

/// Step 3: move partitions from the most loaded members to less loaded eligible ones until
/// no move brings two members closer. Each move lowers the sum of squared counts, so this
/// ends.
fn balance<'a>(
    owned: &mut BTreeMap<&'a str, BTreeSet<TopicPartition>>,
    ordered: &[&'a MemberSubscription],
    eligible: &dyn Fn(&TopicPartition) -> Vec<&'a str>,
) {
    loop {
        let mut by_load: Vec<&str> = ordered.iter().map(|m| m.member_id.as_str()).collect();
        by_load.sort_by_key(|m| std::cmp::Reverse(owned.get(m).map_or(0, BTreeSet::len)));
        let found = by_load.iter().find_map(|&from| {
            let load = owned.get(from).map_or(0, BTreeSet::len);
            owned.get(from)?.iter().rev().find_map(|partition| {
                let to = least_loaded(owned, &eligible(partition))?;
                let to_load = owned.get(to).map_or(0, BTreeSet::len);
                (to_load + 1 < load).then(|| (from, to, partition.clone()))
            })
        });
        let Some((from, to, partition)) = found else {
            return;
        };
        if let Some(set) = owned.get_mut(from) {
            set.remove(&partition);
        }
        owned.entry(to).or_default().insert(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        id: &str,
        topics: &[&str],
        owned: &[(&str, i32)],
        generation: i32,
    ) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned_partitions: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            generation,
        }
    }

    fn counts(assignment: &Assignment) -> Vec<usize> {
        assignment
            .values()
            .map(|topics| topics.values().map(Vec::len).sum())
            .collect()
    }

    fn owned_by(assignment: &Assignment, member: &str) -> Vec<(String, i32)> {
        assignment[member]
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    }

    #[test]
    fn a_new_group_is_balanced() {
        let members = [
            member("a", &["t"], &[], -1),
            member("b", &["t"], &[], -1),
            member("c", &["t"], &[], -1),
        ];
        let assignment = cooperative_sticky(&members, &BTreeMap::from([("t".to_string(), 7)]));
        let mut sizes = counts(&assignment);
        sizes.sort_unstable();
        assert_eq!(sizes, [2, 2, 3]);
    }

    #[test]
    fn a_joining_member_gets_partitions_only_in_the_second_round() {
        let all: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        let counts_map = BTreeMap::from([("t".to_string(), 6)]);
        // Round 1: "a" owns everything; "b" joins. "a" keeps 3, "b" gets none yet.
        let round1 = cooperative_sticky(
            &[member("a", &["t"], &all, 1), member("b", &["t"], &[], -1)],
            &counts_map,
        );
        let kept = owned_by(&round1, "a");
        assert_eq!(kept.len(), 3, "{round1:?}");
        assert!(owned_by(&round1, "b").is_empty(), "{round1:?}");
        // Round 2: "a" owns what it kept; the rest goes to "b", and "a" keeps its three.
        let kept_refs: Vec<(&str, i32)> = kept.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let round2 = cooperative_sticky(
            &[
                member("a", &["t"], &kept_refs, 2),
                member("b", &["t"], &[], -1),
            ],
            &counts_map,
        );
        assert_eq!(owned_by(&round2, "a"), kept);
        assert_eq!(owned_by(&round2, "b").len(), 3);
    }

    #[test]
    fn a_member_leaving_moves_only_its_partitions() {
        let counts_map = BTreeMap::from([("t".to_string(), 6)]);
        let a = [("t", 0), ("t", 1)];
        let b = [("t", 2), ("t", 3)];
        let assignment = cooperative_sticky(
            &[member("a", &["t"], &a, 3), member("b", &["t"], &b, 3)],
            &counts_map,
        );
        // "c" left with 4 and 5: nobody owns them, so they go out at once.
        let a_now = owned_by(&assignment, "a");
        let b_now = owned_by(&assignment, "b");
        assert!(
            a_now.starts_with(&[("t".into(), 0), ("t".into(), 1)]),
            "{a_now:?}"
        );
        assert!(
            b_now.starts_with(&[("t".into(), 2), ("t".into(), 3)]),
            "{b_now:?}"
        );
        assert_eq!(a_now.len() + b_now.len(), 6);
    }

    #[test]
    fn the_newer_generation_wins_a_contested_partition_and_gone_topics_are_dropped() {
        let counts_map = BTreeMap::from([("t".to_string(), 2)]);
        let assignment = cooperative_sticky(
            &[
                member("a", &["t"], &[("t", 0), ("gone", 0)], 1),
                member("b", &["t"], &[("t", 0)], 2),
            ],
            &counts_map,
        );
        assert_eq!(owned_by(&assignment, "b"), [("t".to_string(), 0)]);
        assert_eq!(owned_by(&assignment, "a"), [("t".to_string(), 1)]);
    }

    #[test]
    fn members_with_different_subscriptions_get_only_their_topics() {
        let counts_map = BTreeMap::from([("x".to_string(), 4), ("y".to_string(), 2)]);
        let assignment = cooperative_sticky(
            &[
                member("a", &["x", "y"], &[], -1),
                member("b", &["y"], &[], -1),
            ],
            &counts_map,
        );
        assert!(assignment["b"].keys().all(|t| t == "y"), "{assignment:?}");
        let total: usize = counts(&assignment).iter().sum();
        assert_eq!(total, 6);
    }
}
