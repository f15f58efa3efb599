//! Partition assignors: what the group leader runs to split the subscribed topics'
//! partitions among the members. Pure functions of the members' subscriptions and the
//! partition counts, so they are tested here against Kafka's own test cases.
//!
//! - [`Assignor::Range`] is Kafka's `RangeAssignor` (`range`): per topic, its partitions are
//!   cut into contiguous ranges over the members subscribed to it, in member order; the
//!   first `partitions % members` members get one partition more.
//! - [`Assignor::RoundRobin`] is Kafka's `RoundRobinAssignor` (`roundrobin`): every
//!   partition of every subscribed topic (topics sorted by name, partitions in order) goes
//!   to the next member in member order that subscribes to its topic.
//!
//! Member order is Kafka's `MemberInfo` order: members with a `group.instance.id` first,
//! sorted by it, then the others sorted by member id. With no static members that is
//! member id order.
//!
//! Both are *eager* assignors: they ignore what members own, and members give up all
//! their partitions before rejoining. [`Assignor::CooperativeSticky`] is Kafka's
//! `CooperativeStickyAssignor` (`cooperative-sticky`, module `sticky`): members keep
//! their partitions across rebalances and only those that move are revoked (KIP-429).
//! Topics that metadata does not know (no partition count) are left out, as in Kafka.
//! Left out on purpose: the rack-aware variants (KIP-881; members here send no rack).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// An assignment: member id -> topic -> partitions (ascending).
pub type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// An assignor the consumer can offer in JoinGroup and run as leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// Kafka's `RangeAssignor`.
    Range,
    /// Kafka's `RoundRobinAssignor`.
    RoundRobin,
    /// Kafka's `CooperativeStickyAssignor`: incremental (cooperative) rebalancing.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup, as Kafka's assignors name themselves.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether members keep their partitions through a rebalance (Kafka's
    /// `RebalanceProtocol.COOPERATIVE`), giving up only those that move.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// The assignor with this protocol name, if this client has it.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// Assign the partitions of `partition_counts`' topics to `members`. Every member gets
    /// an entry, possibly empty; partitions of each topic are listed in ascending order.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partition_counts: &BTreeMap<String, i32>,
    ) -> Assignment {
        match self {
            Assignor::Range => range(members, partition_counts),
            Assignor::RoundRobin => round_robin(members, partition_counts),
            Assignor::CooperativeSticky => {
                super::sticky::cooperative_sticky(members, partition_counts)
            }
        }
    }
}

/// One member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    /// What the member owns (subscription v1+; cooperative assignors use it).
    pub owned_partitions: Vec<(String, i32)>,
    /// The generation it owns them in (subscription v2+; -1 if unknown).
    pub generation: i32,
}

/// Kafka's `MemberInfo.compareTo`: static members first, by instance id; then dynamic
/// members by member id.
pub(super) fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

fn sorted(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| member_order(a, b));
    sorted
}

fn empty_assignment(members: &[MemberSubscription]) -> Assignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeMap::new()))
        .collect()
}

fn range(members: &[MemberSubscription], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut assignment = empty_assignment(members);
    let members = sorted(members);
    for (topic, &count) in partition_counts {
        let subscribed: Vec<&&MemberSubscription> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subscribed.is_empty() || count <= 0 {
            continue;
        }
        // Both fit in i32: there are fewer members than i32::MAX in any group.
        let consumers = i32::try_from(subscribed.len()).unwrap_or(i32::MAX);
        let per_consumer = count / consumers;
        let with_extra = count % consumers;
        for (index, member) in (0..).zip(subscribed) {
            let start = per_consumer * index + index.min(with_extra);
            let length = per_consumer + i32::from(index < with_extra);
            if length == 0 {
                continue;
            }
            let partitions = assignment
                .entry(member.member_id.clone())
                .or_default()
                .entry(topic.clone())
                .or_default();
            partitions.extend(start..start + length);
        }
    }
    assignment
}

fn round_robin(
    members: &[MemberSubscription],
    partition_counts: &BTreeMap<String, i32>,
) -> Assignment {
    let mut assignment = empty_assignment(members);
    let members = sorted(members);
    if members.is_empty() {
        return assignment;
    }
    // Kafka's allPartitionsSorted: the subscribed topics in name order.
    let subscribed: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    // A CircularIterator over the sorted members.
    let mut next = 0usize;
    for topic in subscribed {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        for partition in 0..count.max(0) {
            // Some member subscribes to this topic, so this ends within one lap.
            while !members[next].topics.contains(topic) {
                next = (next + 1) % members.len();
            }
            assignment
                .entry(members[next].member_id.clone())
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push(partition);
            next = (next + 1) % members.len();
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned_partitions: Vec::new(),
            generation: -1,
        }
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// One member's row: `(member, [(topic, partitions)])`.
    type Row = (String, Vec<(String, Vec<i32>)>);
    /// An expected row, written with literals.
    type ExpectedRow<'a> = (&'a str, &'a [(&'a str, &'a [i32])]);

    /// The assignment as rows, for compact expectations.
    fn flat(assignment: &Assignment) -> Vec<Row> {
        assignment
            .iter()
            .map(|(m, topics)| {
                (
                    m.clone(),
                    topics.iter().map(|(t, p)| (t.clone(), p.clone())).collect(),
                )
            })
            .collect()
    }

    fn expect(rows: &[ExpectedRow]) -> Vec<Row> {
        rows.iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    topics
                        .iter()
                        .map(|(t, p)| (t.to_string(), p.to_vec()))
                        .collect(),
                )
            })
            .collect()
    }

    // The cases below are Kafka's RangeAssignorTest (4.1, without racks).

    #[test]
    fn range_gives_one_member_every_partition() {
        let members = [member("consumer", &["t1"])];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 3)]));
        assert_eq!(
            flat(&result),
            expect(&[("consumer", &[("t1", &[0, 1, 2])])])
        );
    }

    #[test]
    fn range_gives_nothing_for_a_topic_metadata_does_not_know() {
        let members = [member("consumer", &["t1"])];
        let result = Assignor::Range.assign(&members, &BTreeMap::new());
        assert_eq!(flat(&result), expect(&[("consumer", &[])]));
    }

    #[test]
    fn range_only_assigns_subscribed_topics() {
        let members = [member("consumer", &["t1"])];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 3), ("t2", 1)]));
        assert_eq!(
            flat(&result),
            expect(&[("consumer", &[("t1", &[0, 1, 2])])])
        );
    }

    #[test]
    fn range_splits_uneven_counts_with_the_extra_partitions_to_the_first_members() {
        // testTwoConsumersOneTopicThreePartitions: 3 over 2 -> [0,1], [2].
        let members = [member("consumer1", &["t1"]), member("consumer2", &["t1"])];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 3)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer1", &[("t1", &[0, 1])]),
                ("consumer2", &[("t1", &[2])]),
            ])
        );
        // 7 over 3 -> 3, 2, 2; 8 over 3 -> 3, 3, 2.
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let result = Assignor::Range.assign(&members, &counts(&[("t", 7)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("a", &[("t", &[0, 1, 2])]),
                ("b", &[("t", &[3, 4])]),
                ("c", &[("t", &[5, 6])]),
            ])
        );
        let result = Assignor::Range.assign(&members, &counts(&[("t", 8)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("a", &[("t", &[0, 1, 2])]),
                ("b", &[("t", &[3, 4, 5])]),
                ("c", &[("t", &[6, 7])]),
            ])
        );
    }

    #[test]
    fn range_leaves_the_last_members_empty_when_there_are_more_members_than_partitions() {
        // testOnlyAssignsPartitionsFromSubscribedTopics / more consumers than partitions.
        let members = [member("consumer1", &["t1"]), member("consumer2", &["t1"])];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 1)]));
        assert_eq!(
            flat(&result),
            expect(&[("consumer1", &[("t1", &[0])]), ("consumer2", &[])])
        );
    }

    #[test]
    fn range_assigns_each_topic_independently_so_the_first_member_gets_every_extra() {
        // testTwoConsumersTwoTopicsSixPartitions: t1 and t2 with 3 partitions each.
        let members = [
            member("consumer1", &["t1", "t2"]),
            member("consumer2", &["t1", "t2"]),
        ];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 3), ("t2", 3)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer1", &[("t1", &[0, 1]), ("t2", &[0, 1])]),
                ("consumer2", &[("t1", &[2]), ("t2", &[2])]),
            ])
        );
    }

    #[test]
    fn range_splits_a_topic_only_over_its_own_subscribers() {
        // testMultipleConsumersMixedTopics: t1 has 3 partitions, t2 2; consumer2 takes both.
        let members = [
            member("consumer1", &["t1"]),
            member("consumer2", &["t1", "t2"]),
            member("consumer3", &["t1"]),
        ];
        let result = Assignor::Range.assign(&members, &counts(&[("t1", 3), ("t2", 2)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer1", &[("t1", &[0])]),
                ("consumer2", &[("t1", &[1]), ("t2", &[0, 1])]),
                ("consumer3", &[("t1", &[2])]),
            ])
        );
    }

    #[test]
    fn range_orders_members_by_member_id_not_by_arrival() {
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let result = Assignor::Range.assign(&members, &counts(&[("t", 6)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("a", &[("t", &[0, 1])]),
                ("b", &[("t", &[2, 3])]),
                ("c", &[("t", &[4, 5])]),
            ])
        );
    }

    #[test]
    fn range_orders_static_members_by_instance_id_before_dynamic_members() {
        // testStaticMemberRangeAssignmentPersistent: instance ids decide, not member ids.
        let mut members = vec![
            member("consumer-a", &["t"]),
            member("consumer-b", &["t"]),
            member("consumer-c", &["t"]),
        ];
        members[0].group_instance_id = Some("instance-2".into());
        members[2].group_instance_id = Some("instance-1".into());
        let result = Assignor::Range.assign(&members, &counts(&[("t", 5)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer-a", &[("t", &[2, 3])]),
                ("consumer-b", &[("t", &[4])]),
                ("consumer-c", &[("t", &[0, 1])]),
            ])
        );
    }

    // Kafka's RoundRobinAssignorTest.

    #[test]
    fn round_robin_deals_partitions_of_all_topics_in_turn() {
        // testTwoConsumersTwoTopicsSixPartitions.
        let members = [
            member("consumer1", &["t1", "t2"]),
            member("consumer2", &["t1", "t2"]),
        ];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t1", 3), ("t2", 3)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer1", &[("t1", &[0, 2]), ("t2", &[1])]),
                ("consumer2", &[("t1", &[1]), ("t2", &[0, 2])]),
            ])
        );
    }

    #[test]
    fn round_robin_skips_members_not_subscribed_to_the_topic() {
        // testMultipleConsumersMixedTopics.
        let members = [
            member("consumer1", &["t1"]),
            member("consumer2", &["t1", "t2"]),
            member("consumer3", &["t1"]),
        ];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t1", 3), ("t2", 2)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("consumer1", &[("t1", &[0])]),
                ("consumer2", &[("t1", &[1]), ("t2", &[0, 1])]),
                ("consumer3", &[("t1", &[2])]),
            ])
        );
    }

    #[test]
    fn round_robin_three_members_six_partitions_get_two_each() {
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t", 6)]));
        assert_eq!(
            flat(&result),
            expect(&[
                ("a", &[("t", &[0, 3])]),
                ("b", &[("t", &[1, 4])]),
                ("c", &[("t", &[2, 5])]),
            ])
        );
    }

    #[test]
    fn names_round_trip() {
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
        assert!(Assignor::CooperativeSticky.is_cooperative() && !Assignor::Range.is_cooperative());
    }
}
