//! The server-side assignors (`group.consumer.assignors`): given every member's subscribed
//! topic ids and previous target, and the partition count of each subscribed topic, they
//! compute the group's next target assignment. Pure functions: no state, no I/O.
//!
//! - [`uniform`] (the default, Kafka's `UniformAssignor`): balanced and sticky.
//! - [`range`] (Kafka's `RangeAssignor`): contiguous ranges per topic, co-partitioned.
//!
//! Both assign every partition of every subscribed topic exactly once, and only to members
//! subscribed to its topic.

pub mod range;
pub mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::types::Partitions;

/// A server-side assignor, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The target assignment: one entry per member of `spec`, possibly empty.
    pub fn assign(self, spec: &AssignmentSpec) -> BTreeMap<String, Partitions> {
        match self {
            Assignor::Uniform => uniform::assign(spec),
            Assignor::Range => range::assign(spec),
        }
    }
}

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub instance_id: Option<String>,
    /// Topics that exist; a subscribed name that does not is left out by the caller.
    pub subscribed_topic_ids: BTreeSet<Uuid>,
    /// The member's previous target, for stickiness.
    pub previous_target: Partitions,
}

/// The input of an assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentSpec {
    /// By member id.
    pub members: BTreeMap<String, MemberSpec>,
    /// Partition count per subscribed topic id.
    pub partition_counts: BTreeMap<Uuid, i32>,
}

impl AssignmentSpec {
    /// Whether every member subscribes to the same topics (Kafka's HOMOGENEOUS).
    pub fn is_homogeneous(&self) -> bool {
        let mut subscriptions = self.members.values().map(|m| &m.subscribed_topic_ids);
        match subscriptions.next() {
            None => true,
            Some(first) => subscriptions.all(|s| s == first),
        }
    }

    pub fn partition_count(&self, topic_id: Uuid) -> i32 {
        self.partition_counts.get(&topic_id).copied().unwrap_or(0)
    }
}

/// Adds one partition to an assignment.
fn add(partitions: &mut Partitions, topic_id: Uuid, partition: i32) {
    partitions.entry(topic_id).or_default().insert(partition);
}

/// Removes one partition from an assignment, dropping a topic left empty.
fn remove(partitions: &mut Partitions, topic_id: Uuid, partition: i32) {
    if let Some(set) = partitions.get_mut(&topic_id) {
        set.remove(&partition);
        if set.is_empty() {
            partitions.remove(&topic_id);
        }
    }
}

fn count(partitions: &Partitions) -> usize {
    partitions.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
mod tests;
