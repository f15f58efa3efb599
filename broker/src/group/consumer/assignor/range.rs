//! Kafka's server-side `RangeAssignor`: for each topic, its subscribers in order (static
//! members by instance id first, then the others by member id) each get a contiguous range
//! of `partitions / subscribers` partitions, the first `partitions % subscribers` one more.
//! Members with the same subscriptions therefore get the same partition numbers of
//! co-partitioned topics (joins by key across topics keep working).
//!
//! Not sticky, as the snapshot's (Kafka 4.x keeps a member's previous partitions within its
//! quota where it can; not here).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{add, AssignmentSpec, MemberSpec};
use crate::group::consumer::types::Partitions;

/// See the module docs.
pub fn assign(spec: &AssignmentSpec) -> BTreeMap<String, Partitions> {
    let mut members: Vec<(&String, &MemberSpec)> = spec.members.iter().collect();
    members.sort_by(member_order);
    let mut out: BTreeMap<String, Partitions> = spec
        .members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    for (&topic_id, &partitions) in &spec.partition_counts {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed_topic_ids.contains(&topic_id))
            .map(|(id, _)| *id)
            .collect();
        if subscribers.is_empty() || partitions <= 0 {
            continue;
        }
        let subscriber_count = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
        let quota = partitions / subscriber_count;
        let mut extra = partitions % subscriber_count;
        let mut next = 0;
        for member_id in subscribers {
            let mut size = quota;
            if extra > 0 {
                size += 1;
                extra -= 1;
            }
            let assignment = out.entry(member_id.clone()).or_default();
            for partition in next..(next + size).min(partitions) {
                add(assignment, topic_id, partition);
            }
            next += size;
        }
    }
    out
}

/// Kafka's `sortMemberIds`: static members by instance id, then dynamic ones by member id.
fn member_order(a: &(&String, &MemberSpec), b: &(&String, &MemberSpec)) -> Ordering {
    match (&a.1.instance_id, &b.1.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.0.cmp(b.0),
    }
}
