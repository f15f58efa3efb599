//! The `uniform` assignor (Kafka's `UniformAssignor`, the default): spreads partitions as
//! evenly as possible and keeps each member's previous partitions where it can.
//!
//! - Homogeneous subscriptions (Kafka's `UniformHomogeneousAssignmentBuilder`): with `P`
//!   partitions and `M` members each gets `P / M`, and `P % M` of them one more. Members
//!   first keep their previous partitions up to that quota (those that had more than the
//!   minimum keep one extra while extras remain), then the rest are handed out in topic and
//!   partition order to members below quota. Counts differ by at most one, and a member
//!   keeps all it can: when a member joins a balanced group, the others only give up
//!   partitions, they gain none.
//! - Heterogeneous subscriptions (Kafka's `UniformHeterogeneousAssignmentBuilder`; this is a
//!   simpler greedy version): members keep their previous partitions that are still valid,
//!   each unassigned partition goes to the least loaded subscriber of its topic, then, while
//!   some member has two partitions fewer than another reachable through a chain of
//!   subscriptions (each member on it able to take a partition from the next), one
//!   partition shifts along that chain. Each shift lowers the sum of squared counts, so it
//!   ends. Cost: O(shifts x members^2 x partitions per member), fine for groups of hundreds.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{add, count, remove, AssignmentSpec, MemberSpec};
use crate::group::consumer::member::iter_partitions;
use crate::group::consumer::types::Partitions;

/// See the module docs.
pub fn assign(spec: &AssignmentSpec) -> BTreeMap<String, Partitions> {
    if spec.members.is_empty() {
        return BTreeMap::new();
    }
    if spec.is_homogeneous() {
        assign_homogeneous(spec)
    } else {
        assign_heterogeneous(spec)
    }
}

/// Every partition of the topics in `topic_ids` that exist, in order.
fn all_partitions<'a>(
    spec: &'a AssignmentSpec,
    topic_ids: impl Iterator<Item = &'a Uuid> + 'a,
) -> impl Iterator<Item = (Uuid, i32)> + 'a {
    topic_ids.flat_map(move |t| (0..spec.partition_count(*t)).map(move |p| (*t, p)))
}

/// A member's previous partitions that it may keep: of a subscribed, existing topic, in
/// range, and not already kept by another member.
fn keepable(
    spec: &AssignmentSpec,
    member: &MemberSpec,
    taken: &BTreeSet<(Uuid, i32)>,
) -> Vec<(Uuid, i32)> {
    iter_partitions(&member.previous_target)
        .filter(|(t, p)| member.subscribed_topic_ids.contains(t) && *p < spec.partition_count(*t))
        .filter(|tp| !taken.contains(tp))
        .collect()
}

fn assign_homogeneous(spec: &AssignmentSpec) -> BTreeMap<String, Partitions> {
    let subscription = &spec
        .members
        .values()
        .next()
        .map(|m| m.subscribed_topic_ids.clone());
    let topics = subscription.clone().unwrap_or_default();
    let total = all_partitions(spec, topics.iter()).count();
    let member_count = spec.members.len();
    let min_quota = total / member_count;
    let mut extras_left = total % member_count;

    let mut out: BTreeMap<String, Partitions> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for (member_id, member) in &spec.members {
        let previous = keepable(spec, member, &taken);
        let mut keep = previous.len().min(min_quota);
        if previous.len() > min_quota && extras_left > 0 {
            keep += 1;
            extras_left -= 1;
        }
        let assignment = out.entry(member_id.clone()).or_default();
        for &(t, p) in &previous[..keep] {
            add(assignment, t, p);
            taken.insert((t, p));
        }
    }

    let mut unassigned = all_partitions(spec, topics.iter()).filter(|tp| !taken.contains(tp));
    for assignment in out.values_mut() {
        while count(assignment) < min_quota {
            let Some((t, p)) = unassigned.next() else {
                break;
            };
            add(assignment, t, p);
        }
    }
    for assignment in out.values_mut() {
        if extras_left == 0 {
            break;
        }
        if count(assignment) == min_quota {
            if let Some((t, p)) = unassigned.next() {
                add(assignment, t, p);
                extras_left -= 1;
            }
        }
    }
    out
}

fn assign_heterogeneous(spec: &AssignmentSpec) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for (member_id, member) in &spec.members {
        let assignment = out.entry(member_id.clone()).or_default();
        for (t, p) in keepable(spec, member, &taken) {
            add(assignment, t, p);
            taken.insert((t, p));
        }
    }

    let subscribed: BTreeSet<Uuid> = spec
        .members
        .values()
        .flat_map(|m| m.subscribed_topic_ids.iter().copied())
        .collect();
    let unassigned: Vec<(Uuid, i32)> = all_partitions(spec, subscribed.iter())
        .filter(|tp| !taken.contains(tp))
        .collect();
    for (t, p) in unassigned {
        let least_loaded = spec
            .members
            .iter()
            .filter(|(_, m)| m.subscribed_topic_ids.contains(&t))
            .min_by_key(|(id, _)| count(&out[*id]))
            .map(|(id, _)| id.clone());
        if let Some(member_id) = least_loaded {
            add(out.entry(member_id).or_default(), t, p);
        }
    }
    while move_one(spec, &mut out) {}
    out
}

/// Moves partitions along a chain of members, each giving the next one a partition of a
/// topic it subscribes to, from a member with at least two more partitions than the chain's
/// start: the start gains one, the end loses one, the others keep their counts. Starts are
/// tried least loaded first; the chain is found breadth-first. False when none exists.
fn move_one(spec: &AssignmentSpec, out: &mut BTreeMap<String, Partitions>) -> bool {
    let mut starts: Vec<(usize, &String)> = out.iter().map(|(id, a)| (count(a), id)).collect();
    starts.sort();
    for &(start_count, start) in &starts {
        if let Some(chain) = find_chain(spec, out, start, start_count + 2) {
            for Shift {
                giver,
                taker,
                partition: (t, p),
            } in chain
            {
                remove(out.get_mut(&giver).expect("giver is a member"), t, p);
                add(out.get_mut(&taker).expect("taker is a member"), t, p);
            }
            return true;
        }
    }
    false
}

/// One partition handed from one member to another along a chain.
struct Shift {
    giver: String,
    taker: String,
    partition: (Uuid, i32),
}

/// A breadth-first search from `start` for a member holding at least `donor_count_min`
/// partitions; returns the moves (giver, taker, partition) along the chain.
fn find_chain(
    spec: &AssignmentSpec,
    out: &BTreeMap<String, Partitions>,
    start: &str,
    donor_count_min: usize,
) -> Option<Vec<Shift>> {
    // Member -> (the member it gives to, the partition it gives).
    let mut gives_to: BTreeMap<&str, (&str, (Uuid, i32))> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(taker) = queue.pop_front() {
        let taker_topics = &spec.members[taker].subscribed_topic_ids;
        for (giver, assignment) in out {
            let giver = giver.as_str();
            if giver == start || gives_to.contains_key(giver) {
                continue;
            }
            let Some(tp) = iter_partitions(assignment)
                .filter(|(t, _)| taker_topics.contains(t))
                .last()
            else {
                continue;
            };
            gives_to.insert(giver, (taker, tp));
            if count(assignment) >= donor_count_min {
                let mut chain = Vec::new();
                let mut node = giver;
                while node != start {
                    let (next, tp) = gives_to[node];
                    chain.push(Shift {
                        giver: node.to_string(),
                        taker: next.to_string(),
                        partition: tp,
                    });
                    node = next;
                }
                return Some(chain);
            }
            queue.push_back(giver);
        }
    }
    None
}
