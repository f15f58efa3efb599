//! The records a consumer group writes to `__consumer_offsets` (Kafka's KIP-848 records, by
//! their JSON schemas in `group-coordinator/src/main/resources/common/message/`), as typed
//! values, and [`ConsumerGroup::replay`], which applies one to the group.
//!
//! Every change the group makes is a record applied through `replay`, live and when
//! loading alike, so a group rebuilt from its records is the group that wrote them.
//!
//! | Record | Key (type, fields) | Value fields |
//! |---|---|---|
//! | `GroupMetadata` | `ConsumerGroupMetadataKey` (3): group id | `Epoch` |
//! | `PartitionMetadata` | `ConsumerGroupPartitionMetadataKey` (4): group id | `Topics[]`: `TopicId`, `TopicName`, `NumPartitions`, `PartitionMetadata[]` (racks; written empty) |
//! | `MemberMetadata` | `ConsumerGroupMemberMetadataKey` (5): group id, member id | `InstanceId`, `RackId`, `ClientId`, `ClientHost`, `SubscribedTopicNames`, `SubscribedTopicRegex`, `RebalanceTimeoutMs`, `ServerAssignor`, `ClassicMemberMetadata` (always null here) |
//! | `TargetAssignmentMetadata` | `ConsumerGroupTargetAssignmentMetadataKey` (6): group id | `AssignmentEpoch` |
//! | `TargetAssignmentMember` | `ConsumerGroupTargetAssignmentMemberKey` (7): group id, member id | `TopicPartitions[]`: `TopicId`, `Partitions` |
//! | `CurrentMemberAssignment` | `ConsumerGroupCurrentMemberAssignmentKey` (8): group id, member id | `MemberEpoch`, `PreviousMemberEpoch`, `State`, `AssignedPartitions[]`, `PartitionsPendingRevocation[]` |
//!
//! Each has a tombstone (the key with a null value). Kafka 4.1 (KIP-1101) adds a
//! `MetadataHash` to `ConsumerGroupMetadataValue` and stops writing `PartitionMetadata`,
//! and writes `ConsumerGroupRegularExpression` records (type 16) for regex subscriptions;
//! neither is here (the 2024 schemas are followed). Encoding is the coordinator's.

use std::collections::BTreeMap;

use super::member::{iter_partitions, CurrentAssignment, Member, MemberMetadata};
use super::types::{Partitions, ReplayError, TopicInfo, LEAVE_GROUP_MEMBER_EPOCH};
use super::ConsumerGroup;

/// One record of a consumer group, keyed (implicitly) by the group's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupRecord {
    GroupMetadata {
        epoch: i32,
    },
    GroupMetadataTombstone,
    /// The subscribed topics that exist, by name.
    PartitionMetadata {
        topics: BTreeMap<String, TopicInfo>,
    },
    PartitionMetadataTombstone,
    MemberMetadata {
        member_id: String,
        metadata: MemberMetadata,
    },
    MemberMetadataTombstone {
        member_id: String,
    },
    TargetAssignmentMetadata {
        assignment_epoch: i32,
    },
    TargetAssignmentMetadataTombstone,
    TargetAssignmentMember {
        member_id: String,
        partitions: Partitions,
    },
    TargetAssignmentMemberTombstone {
        member_id: String,
    },
    CurrentMemberAssignment {
        member_id: String,
        assignment: CurrentAssignment,
    },
    CurrentMemberAssignmentTombstone {
        member_id: String,
    },
}

impl ConsumerGroupRecord {
    /// The key's version, which is the record type in `__consumer_offsets`.
    pub fn key_version(&self) -> i16 {
        use ConsumerGroupRecord::*;
        match self {
            GroupMetadata { .. } | GroupMetadataTombstone => 3,
            PartitionMetadata { .. } | PartitionMetadataTombstone => 4,
            MemberMetadata { .. } | MemberMetadataTombstone { .. } => 5,
            TargetAssignmentMetadata { .. } | TargetAssignmentMetadataTombstone => 6,
            TargetAssignmentMember { .. } | TargetAssignmentMemberTombstone { .. } => 7,
            CurrentMemberAssignment { .. } | CurrentMemberAssignmentTombstone { .. } => 8,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        use ConsumerGroupRecord::*;
        matches!(
            self,
            GroupMetadataTombstone
                | PartitionMetadataTombstone
                | MemberMetadataTombstone { .. }
                | TargetAssignmentMetadataTombstone
                | TargetAssignmentMemberTombstone { .. }
                | CurrentMemberAssignmentTombstone { .. }
        )
    }
}

impl ConsumerGroup {
    /// Applies one record (Kafka's `GroupMetadataManager.replay` for the consumer group
    /// records), when loading the group or after the group wrote it. Timers are not
    /// records: after loading, [`ConsumerGroup::start_timers`] arms the sessions.
    pub fn replay(&mut self, record: ConsumerGroupRecord) -> Result<(), ReplayError> {
        use ConsumerGroupRecord::*;
        let data = &mut self.data;
        match record {
            GroupMetadata { epoch } => data.group_epoch = epoch,
            GroupMetadataTombstone => {
                if !data.members.is_empty() {
                    return Err(ReplayError(format!(
                        "group {} deleted with {} members",
                        self.group_id,
                        data.members.len()
                    )));
                }
                self.deleted = true;
            }
            PartitionMetadata { topics } => data.subscription_metadata = topics,
            PartitionMetadataTombstone => data.subscription_metadata.clear(),
            MemberMetadata {
                member_id,
                metadata,
            } => self.replay_member_metadata(member_id, metadata),
            MemberMetadataTombstone { member_id } => self.replay_member_tombstone(&member_id)?,
            TargetAssignmentMetadata { assignment_epoch } => {
                data.assignment_epoch = assignment_epoch
            }
            TargetAssignmentMetadataTombstone => data.assignment_epoch = 0,
            TargetAssignmentMember {
                member_id,
                partitions,
            } => {
                data.target_assignment.insert(member_id, partitions);
            }
            TargetAssignmentMemberTombstone { member_id } => {
                data.target_assignment.remove(&member_id);
            }
            CurrentMemberAssignment {
                member_id,
                assignment,
            } => self.replay_current_assignment(&member_id, assignment)?,
            CurrentMemberAssignmentTombstone { member_id } => {
                let left = CurrentAssignment {
                    member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                    previous_member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                    ..CurrentAssignment::joining()
                };
                if self.data.members.contains_key(&member_id) {
                    self.replay_current_assignment(&member_id, left)?;
                }
            }
        }
        Ok(())
    }

    fn replay_member_metadata(&mut self, member_id: String, metadata: MemberMetadata) {
        let data = &mut self.data;
        if let Some(instance_id) = &metadata.instance_id {
            data.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        match data.members.get_mut(&member_id) {
            Some(member) => member.metadata = metadata,
            None => {
                let member = Member::new(member_id.clone(), metadata);
                data.members.insert(member_id, member);
            }
        }
    }

    fn replay_member_tombstone(&mut self, member_id: &str) -> Result<(), ReplayError> {
        let data = &mut self.data;
        let Some(member) = data.members.get(member_id) else {
            return Ok(());
        };
        if member.member_epoch() != LEAVE_GROUP_MEMBER_EPOCH {
            return Err(ReplayError(format!(
                "member {member_id} deleted before its current assignment"
            )));
        }
        if let Some(instance_id) = &member.metadata.instance_id {
            if data.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                data.static_members.remove(instance_id);
            }
        }
        data.members.remove(member_id);
        Ok(())
    }

    /// Sets a member's current assignment, moving its partitions' epochs in the index of
    /// owned partitions (Kafka's `maybeUpdatePartitionEpoch`).
    fn replay_current_assignment(
        &mut self,
        member_id: &str,
        assignment: CurrentAssignment,
    ) -> Result<(), ReplayError> {
        let data = &mut self.data;
        let Some(member) = data.members.get_mut(member_id) else {
            return Err(ReplayError(format!(
                "current assignment for {member_id}, which has no metadata"
            )));
        };
        let old_epoch = member.member_epoch();
        for (topic_id, partition) in member.owned_partitions() {
            let topic = data.partition_epochs.entry(topic_id).or_default();
            if topic.remove(&partition) != Some(old_epoch) {
                return Err(ReplayError(format!(
                    "{topic_id}-{partition} was not owned by {member_id} at epoch {old_epoch}"
                )));
            }
            if topic.is_empty() {
                data.partition_epochs.remove(&topic_id);
            }
        }
        member.current = assignment;
        let new_epoch = member.member_epoch();
        let assigned = iter_partitions(&member.current.assigned_partitions);
        let pending = iter_partitions(&member.current.partitions_pending_revocation);
        for (topic_id, partition) in assigned.chain(pending) {
            let topic = data.partition_epochs.entry(topic_id).or_default();
            if let Some(epoch) = topic.insert(partition, new_epoch) {
                return Err(ReplayError(format!(
                    "{topic_id}-{partition} given to {member_id} while owned at epoch {epoch}"
                )));
            }
        }
        Ok(())
    }
}
