//! The target assignment (Kafka's `TargetAssignmentBuilder`) and the reconciliation of a
//! member's current assignment towards it (Kafka's `CurrentAssignmentBuilder`).
//!
//! A member moves towards its target in steps that never let two members own a partition:
//! it keeps what is in both its assignment and its target; what it has and the target does
//! not, it must revoke first (UnrevokedPartitions, at its current epoch); once its heartbeat
//! no longer lists them as owned it moves to the next epoch; target partitions still owned
//! by another member (any epoch in the owned-partition index) are held back
//! (UnreleasedPartitions) until released.

use std::collections::BTreeSet;

use super::assignor::{AssignmentSpec, MemberSpec};
use super::member::{normalized, CurrentAssignment, Member, MemberState};
use super::records::ConsumerGroupRecord;
use super::types::{Effect, Partitions, TimerKind};
use super::ConsumerGroup;

impl ConsumerGroup {
    /// Computes a new target for every member when the group epoch is past the assignment
    /// epoch, writing the members whose target changed and then the new assignment epoch.
    pub(super) fn maybe_update_target_assignment(
        &mut self,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        let epoch = self.data.group_epoch;
        if epoch <= self.data.assignment_epoch {
            return;
        }
        let assignor = self.preferred_assignor();
        let target = assignor.assign(&self.assignment_spec());
        let mut new = Vec::new();
        for (member_id, partitions) in target {
            let partitions = normalized(partitions);
            if self.target_assignment(&member_id) != partitions {
                new.push(ConsumerGroupRecord::TargetAssignmentMember {
                    member_id,
                    partitions,
                });
            }
        }
        new.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            assignment_epoch: epoch,
        });
        self.apply(new, records);
    }

    /// What the assignor sees: each member's subscribed topics that exist, with their
    /// partition counts, and its previous target.
    fn assignment_spec(&self) -> AssignmentSpec {
        let metadata = &self.data.subscription_metadata;
        let members = self.data.members.iter().map(|(member_id, member)| {
            let known = metadata.keys().map(String::as_str);
            let subscribed = super::regex::member_topics(&member.metadata, known);
            let spec = MemberSpec {
                instance_id: member.metadata.instance_id.clone(),
                subscribed_topic_ids: subscribed
                    .iter()
                    .filter_map(|name| metadata.get(*name).map(|info| info.topic_id))
                    .collect(),
                previous_target: self.target_assignment(member_id),
            };
            (member_id.clone(), spec)
        });
        AssignmentSpec {
            members: members.collect(),
            partition_counts: metadata
                .values()
                .map(|info| (info.topic_id, info.partition_count))
                .collect(),
        }
    }

    /// Moves the member's current assignment towards its target if it is not reconciled
    /// yet, writing it if it changed; arms its rebalance timer while it has partitions to
    /// revoke, and cancels it otherwise.
    pub(super) fn maybe_reconcile(
        &mut self,
        member_id: &str,
        owned: Option<&Partitions>,
        now_ms: i64,
        records: &mut Vec<ConsumerGroupRecord>,
        effects: &mut Vec<Effect>,
    ) {
        let member = &self.data.members[member_id];
        if member.is_reconciled_to(self.data.assignment_epoch) {
            return;
        }
        let target = self.target_assignment(member_id);
        let next = self.next_assignment(member, &target, owned);
        if next == member.current {
            return;
        }
        let timeout_ms = member.metadata.rebalance_timeout_ms;
        let unrevoked = next.state == MemberState::UnrevokedPartitions;
        let epoch = next.member_epoch;
        let record = ConsumerGroupRecord::CurrentMemberAssignment {
            member_id: member_id.to_string(),
            assignment: next,
        };
        self.apply(vec![record], records);
        let timer = TimerKind::Rebalance(member_id.to_string());
        if unrevoked {
            self.rebalance_timer_epochs
                .insert(member_id.to_string(), epoch);
            self.schedule(timer, timeout_ms, now_ms, effects);
        } else {
            self.cancel(&timer);
        }
    }

    /// Kafka's `CurrentAssignmentBuilder.build`.
    fn next_assignment(
        &self,
        member: &Member,
        target: &Partitions,
        owned: Option<&Partitions>,
    ) -> CurrentAssignment {
        let current = &member.current;
        match current.state {
            MemberState::Stable if current.member_epoch == self.data.assignment_epoch => {
                current.clone()
            }
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.compute_next(current, current.member_epoch, target, owned)
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &current.partitions_pending_revocation) {
                    current.clone()
                } else {
                    self.compute_next(current, current.member_epoch + 1, target, owned)
                }
            }
        }
    }

    /// Kafka's `computeNextAssignment`: keep assigned ∩ target, revoke the rest first, then
    /// take the target partitions nobody owns.
    fn compute_next(
        &self,
        current: &CurrentAssignment,
        member_epoch: i32,
        target: &Partitions,
        owned: Option<&Partitions>,
    ) -> CurrentAssignment {
        let mut assigned = Partitions::new();
        let mut revoking = Partitions::new();
        let mut pending_assignment = Partitions::new();
        let mut has_unreleased = false;
        let topics: BTreeSet<_> = target
            .keys()
            .chain(current.assigned_partitions.keys())
            .collect();
        let empty = BTreeSet::new();
        for &topic_id in topics {
            let target_set = target.get(&topic_id).unwrap_or(&empty);
            let current_set = current.assigned_partitions.get(&topic_id).unwrap_or(&empty);
            let kept: BTreeSet<i32> = current_set.intersection(target_set).copied().collect();
            let revoked: BTreeSet<i32> = current_set.difference(&kept).copied().collect();
            let mut wanted: BTreeSet<i32> = target_set.difference(&kept).copied().collect();
            let before = wanted.len();
            wanted.retain(|p| self.current_partition_epoch(topic_id, *p) == -1);
            has_unreleased |= wanted.len() != before;
            assigned.insert(topic_id, kept);
            revoking.insert(topic_id, revoked);
            pending_assignment.insert(topic_id, wanted);
        }
        let (mut assigned, revoking) = (normalized(assigned), normalized(revoking));
        let pending_assignment = normalized(pending_assignment);
        let next = |state, member_epoch, assigned, pending| CurrentAssignment {
            member_epoch,
            previous_member_epoch: current.member_epoch,
            state,
            assigned_partitions: assigned,
            partitions_pending_revocation: pending,
        };
        let target_epoch = self.data.assignment_epoch;
        if !revoking.is_empty() && owns_any(owned, &revoking) {
            return next(
                MemberState::UnrevokedPartitions,
                member_epoch,
                assigned,
                revoking,
            );
        }
        for (topic_id, partitions) in pending_assignment {
            assigned.entry(topic_id).or_default().extend(partitions);
        }
        let state = if has_unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        next(state, target_epoch, assigned, Partitions::new())
    }
}

/// Kafka's `ownsRevokedPartitions`: whether the member still owns any of `revoking`. A
/// heartbeat that did not say what it owns is taken to own them all.
fn owns_any(owned: Option<&Partitions>, revoking: &Partitions) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic_id, partitions)| {
        let revoking = revoking.get(topic_id);
        revoking.is_some_and(|r| partitions.iter().any(|p| r.contains(p)))
    })
}
