//! Answering OffsetForLeaderEpoch (KIP-279, and KIP-320 for clients):
//! [`ReplicaManager::offset_for_leader_epoch`], Kafka's
//! `Partition.lastOffsetForLeaderEpoch`: where a leader epoch ends in a replica's log, so a
//! consumer can tell whether its position survived a leader change (or a tool inspect a
//! replica).
//!
//! The answering replica is chosen as for ListOffsets: the leader for a consumer or a broker
//! replica id, any replica hosted here for the debugging id (-2). Then the client's
//! `current_leader_epoch` is checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH); then the
//! answer is the largest epoch `<=` the requested one and the offset where it ends (the
//! log end offset for the latest epoch), or -1 and -1 when the log knows no such epoch.

use sluice_protocol::error::ErrorCode;

use super::list_offsets::{OffsetOrigin, OffsetQuery, LATEST_TIMESTAMP};
use super::purgatory::check_leader_epoch;
use super::ReplicaManager;

/// One partition of an OffsetForLeaderEpoch request.
#[derive(Debug, Clone, Copy)]
pub struct EpochQuery<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub origin: OffsetOrigin,
    /// The client's idea of the current leader epoch; -1 skips the check.
    pub current_leader_epoch: i32,
    /// The epoch whose end is asked for.
    pub leader_epoch: i32,
}

/// One partition's answer: -1 and -1 when undefined (an error, or an unknown epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochAnswer {
    pub error: ErrorCode,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl ReplicaManager {
    /// Answer one partition of an OffsetForLeaderEpoch request (see the module docs).
    pub fn offset_for_leader_epoch(&self, query: &EpochQuery<'_>) -> EpochAnswer {
        let mut answer = EpochAnswer {
            error: ErrorCode::None,
            leader_epoch: -1,
            end_offset: -1,
        };
        let replica = match self.answering_replica(&OffsetQuery {
            topic: query.topic,
            partition: query.partition,
            origin: query.origin,
            current_leader_epoch: query.current_leader_epoch,
            timestamp: LATEST_TIMESTAMP,
        }) {
            Ok(replica) => replica,
            Err(error) => {
                answer.error = error;
                return answer;
            }
        };
        let current = replica.lock().leader_epoch();
        if let Err(error) = check_leader_epoch(query.current_leader_epoch, current) {
            answer.error = error;
            return answer;
        }
        if let Some(end) = replica.log.end_offset_for_epoch(query.leader_epoch) {
            answer.leader_epoch = end.epoch;
            answer.end_offset = end.end_offset;
        }
        answer
    }
}
