//! One member of a consumer group (Kafka's `ConsumerGroupMember`): what it subscribed to
//! (persisted as `ConsumerGroupMemberMetadata`) and where its assignment stands (persisted
//! as `ConsumerGroupCurrentMemberAssignment`): its epoch, state, assigned partitions and
//! the partitions it still has to revoke.

use super::types::Partitions;

/// Where a member's current assignment is on its way to the target (Kafka's `MemberState`,
/// with its on-disk values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// The member has its assignment for its epoch; when a newer target appears it moves on.
    Stable,
    /// The member must revoke `partitions_pending_revocation` (acknowledged by leaving them
    /// out of its heartbeat's owned partitions) before it moves to the next epoch.
    UnrevokedPartitions,
    /// The member is at the target epoch but some of its target partitions are still owned
    /// by other members; it gets them once they are released.
    UnreleasedPartitions,
}

impl MemberState {
    /// The value `ConsumerGroupCurrentMemberAssignmentValue.State` stores.
    pub fn as_record_value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    /// The state a record stores, or `None` for one this version does not know (Kafka's
    /// UNKNOWN, 127: such a member is fenced on its next heartbeat there; here loading stops).
    pub fn from_record_value(value: i8) -> Option<MemberState> {
        match value {
            0 => Some(MemberState::Stable),
            1 => Some(MemberState::UnrevokedPartitions),
            2 => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// What a member told the coordinator (`ConsumerGroupMemberMetadataValue`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Sorted, without duplicates.
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// -1 until the member says.
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// Where a member's assignment stands (`ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned_partitions: Partitions,
    pub partitions_pending_revocation: Partitions,
}

impl CurrentAssignment {
    /// A member that just joined: epoch 0, nothing assigned (Kafka's builder defaults).
    pub fn joining() -> CurrentAssignment {
        CurrentAssignment {
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned_partitions: Partitions::new(),
            partitions_pending_revocation: Partitions::new(),
        }
    }
}

/// One member. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub metadata: MemberMetadata,
    pub current: CurrentAssignment,
}

impl Member {
    pub fn new(member_id: String, metadata: MemberMetadata) -> Member {
        Member {
            member_id,
            metadata,
            current: CurrentAssignment::joining(),
        }
    }

    pub fn member_epoch(&self) -> i32 {
        self.current.member_epoch
    }

    pub fn state(&self) -> MemberState {
        self.current.state
    }

    /// Kafka's `isReconciledTo`: Stable at the target epoch.
    pub fn is_reconciled_to(&self, assignment_epoch: i32) -> bool {
        self.current.state == MemberState::Stable && self.current.member_epoch == assignment_epoch
    }

    /// Every partition the member may still be consuming: assigned or pending revocation.
    pub fn owned_partitions(&self) -> impl Iterator<Item = (uuid::Uuid, i32)> + '_ {
        let assigned = iter_partitions(&self.current.assigned_partitions);
        let pending = iter_partitions(&self.current.partitions_pending_revocation);
        assigned.chain(pending)
    }
}

/// Every (topic id, partition) of `partitions`, in order.
pub fn iter_partitions(partitions: &Partitions) -> impl Iterator<Item = (uuid::Uuid, i32)> + '_ {
    partitions
        .iter()
        .flat_map(|(topic_id, set)| set.iter().map(move |p| (*topic_id, *p)))
}

/// Whether every partition of `owned` is in `assigned` (Kafka's `isSubset`; `None`, an
/// owned list not sent, is not a subset).
pub fn is_subset(owned: Option<&Partitions>, assigned: &Partitions) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    iter_partitions(owned)
        .all(|(topic_id, p)| assigned.get(&topic_id).is_some_and(|s| s.contains(&p)))
}

/// `partitions` without empty topic entries, so that equal assignments compare equal.
pub fn normalized(mut partitions: Partitions) -> Partitions {
    partitions.retain(|_, set| !set.is_empty());
    partitions
}
