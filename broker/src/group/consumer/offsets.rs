//! What a consumer group checks before committing or fetching offsets for a member
//! (Kafka's `ConsumerGroup.validateOffsetCommit` and `validateOffsetFetch`): the member
//! must exist and send its current epoch.

use super::types::GroupError;
use super::ConsumerGroup;
use crate::group::classic::CommitKind;

/// The first OffsetCommit version that carries a member epoch.
const OFFSET_COMMIT_MEMBER_EPOCH_VERSION: i16 = 9;

impl ConsumerGroup {
    /// OffsetCommit (and TxnOffsetCommit): a commit with a negative epoch (an admin client,
    /// or a consumer not using the group) is accepted while the group has no members;
    /// otherwise the member must exist (UNKNOWN_MEMBER_ID), a consumer's own commit must be
    /// v9+ (UNSUPPORTED_VERSION), and the epoch must be the member's (STALE_MEMBER_EPOCH).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        kind: CommitKind,
        api_version: i16,
    ) -> Result<(), GroupError> {
        if member_epoch < 0 && self.data.members.is_empty() {
            return Ok(());
        }
        let Some(member) = self.data.members.get(member_id) else {
            return Err(self.not_a_member(member_id));
        };
        if kind == CommitKind::Consumer && api_version < OFFSET_COMMIT_MEMBER_EPOCH_VERSION {
            return Err(GroupError::UnsupportedVersion(
                "OffsetCommit version 9 or above must be used by members using the modern group \
                 protocol"
                    .to_string(),
            ));
        }
        check_epoch(member_epoch, member.member_epoch())
    }

    /// OffsetFetch v9+ with a member id and epoch (`None` and a negative epoch: an admin
    /// client, always accepted).
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            if member_epoch < 0 {
                return Ok(());
            }
            return Err(self.not_a_member(""));
        };
        let Some(member) = self.data.members.get(member_id) else {
            return Err(self.not_a_member(member_id));
        };
        check_epoch(member_epoch, member.member_epoch())
    }

    fn not_a_member(&self, member_id: &str) -> GroupError {
        GroupError::UnknownMemberId(format!(
            "Member {member_id} is not a member of group {}.",
            self.group_id
        ))
    }
}

fn check_epoch(received: i32, expected: i32) -> Result<(), GroupError> {
    if received != expected {
        return Err(GroupError::StaleMemberEpoch(format!(
            "The received member epoch {received} does not match the expected member epoch \
             {expected}."
        )));
    }
    Ok(())
}
