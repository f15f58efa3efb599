//! Kafka's DescribeProducers on the replicas: the idempotent producers a partition this
//! broker leads knows (its producer state, rebuilt from the log's tail on first use, as for
//! a produce), each with its epoch, last sequence and last timestamp. Only the leader
//! answers (NOT_LEADER_OR_FOLLOWER), as on Kafka.

use sluice_protocol::error::ErrorCode;

use super::append::rebuild_producer_state;
use super::producer_state::{lock_slot, ActiveProducer};
use super::ReplicaManager;

impl ReplicaManager {
    /// The producers of a partition this broker leads, by producer id.
    pub fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ActiveProducer>, (ErrorCode, String)> {
        let replica = self
            .replica(topic, partition)
            .ok_or_else(|| self.not_hosted(topic, partition))?;
        let leader_epoch = {
            let state = replica.lock();
            if !state.is_leader() {
                return Err((
                    ErrorCode::NotLeaderOrFollower,
                    format!("this broker does not lead {topic}-{partition}"),
                ));
            }
            state.leader_epoch()
        };
        let slot = self.producers.partition_in_epoch(
            *replica.topic_id.as_bytes(),
            partition,
            leader_epoch,
        );
        let mut guard = lock_slot(&slot);
        let state = guard.get_or_insert_with(|| rebuild_producer_state(&replica.log));
        Ok(state.describe())
    }
}
