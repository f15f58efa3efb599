//! The ISR and the partition invariants: AlterPartition (KIP-497, the leader's
//! compare-and-set of its ISR), `write_partition`, through which every
//! change to an existing partition goes and which asserts the invariants and the epoch
//! rules, and the invariant checks themselves.

use uuid::Uuid;

use super::{
    has_duplicates, AlterPartition, CommandOutcome, CommandResult, Election, LeaderRecoveryState,
    MetadataError, MetadataState, Partition, PartitionChange,
};

impl MetadataState {
    /// Replace one partition after checking the invariants against the old state.
    pub(super) fn write_partition(
        &mut self,
        topic_id: Uuid,
        number: usize,
        next: Partition,
        election: Option<Election>,
    ) -> PartitionChange {
        if let Err(broken) = self.check_partition(&next) {
            panic!("metadata invariant broken for {topic_id}-{number}: {broken}: {next:?}");
        }
        let slot = &mut self
            .topic_mut(&topic_id)
            .expect("partition of an existing topic")
            .partitions[number];
        let leader_changed = slot.leader != next.leader;
        assert_eq!(
            next.leader_epoch,
            slot.leader_epoch + i32::from(leader_changed),
            "the leader epoch grows by one exactly when the leader changes"
        );
        assert_eq!(
            next.partition_epoch,
            slot.partition_epoch + 1,
            "every partition change bumps the partition epoch by one"
        );
        *slot = next;
        let change = PartitionChange {
            topic_id,
            partition: i32::try_from(number).expect("partition count is bounded"),
            leader: slot.leader,
            leader_epoch: slot.leader_epoch,
            partition_epoch: slot.partition_epoch,
            isr: slot.isr.clone(),
            election,
        };
        self.last_changes.changed(topic_id);
        change
    }

    pub(super) fn alter_partition(&mut self, request: &AlterPartition) -> CommandResult {
        self.check_broker_epoch(request.leader_id, request.broker_epoch)?;
        let topic = self
            .topics
            .get(&request.topic_id)
            .ok_or(MetadataError::UnknownTopicId(request.topic_id))?;
        let unknown = MetadataError::UnknownPartition {
            topic_id: request.topic_id,
            partition: request.partition,
        };
        let number = usize::try_from(request.partition).map_err(|_| unknown.clone())?;
        let partition = topic.partitions.get(number).ok_or(unknown)?;
        if request.leader_epoch != partition.leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch {
                requested: request.leader_epoch,
                current: partition.leader_epoch,
            });
        }
        if partition.leader != Some(request.leader_id) {
            return Err(MetadataError::InvalidRequest(format!(
                "broker {} is not the leader of {}-{} (the leader is {})",
                request.leader_id,
                topic.name,
                request.partition,
                partition.leader_id()
            )));
        }
        if request.partition_epoch != partition.partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion {
                requested: request.partition_epoch,
                current: partition.partition_epoch,
            });
        }
        let isr = &request.new_isr;
        if !isr.contains(&request.leader_id) {
            return Err(MetadataError::InvalidRequest(
                "the new ISR does not contain the leader".to_string(),
            ));
        }
        if let Some(stranger) = isr.iter().find(|r| !partition.replicas.contains(r)) {
            return Err(MetadataError::InvalidRequest(format!(
                "ISR member {stranger} is not a replica"
            )));
        }
        if has_duplicates(isr) {
            return Err(MetadataError::InvalidRequest(
                "the new ISR names a broker twice".to_string(),
            ));
        }
        if let Some(&ineligible) = isr.iter().find(|&&r| !self.is_eligible(r)) {
            return Err(MetadataError::IneligibleReplica(ineligible));
        }
        match (
            partition.leader_recovery_state,
            request.leader_recovery_state,
        ) {
            (LeaderRecoveryState::Recovered, LeaderRecoveryState::Recovering) => {
                return Err(MetadataError::InvalidRequest(
                    "a recovered partition cannot go back to recovering".to_string(),
                ))
            }
            (_, LeaderRecoveryState::Recovering) if isr.len() > 1 => {
                return Err(MetadataError::InvalidRequest(
                    "the ISR of a recovering partition cannot grow".to_string(),
                ))
            }
            _ => {}
        }
        let mut next = partition.clone();
        next.isr = isr.clone();
        next.leader_recovery_state = request.leader_recovery_state;
        // A reassignment whose new replicas have all joined the ISR completes here.
        self.complete_reassignment_if_caught_up(&mut next);
        if !next.differs_from(partition) {
            // A retry of an applied proposal, or a no-op: nothing to bump.
            return Ok(CommandOutcome::PartitionAltered { partition: next });
        }
        let leader_changed = next.leader != partition.leader;
        if leader_changed {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        let topic_id = request.topic_id;
        let election = (leader_changed && next.leader.is_some()).then_some(Election::Clean);
        self.write_partition(topic_id, number, next, election);
        let partition = self.topics[&topic_id].partitions[number].clone();
        Ok(CommandOutcome::PartitionAltered { partition })
    }

    /// Check one partition against the invariants in the module docs.
    pub(super) fn check_partition(&self, partition: &Partition) -> Result<(), String> {
        if partition.replicas.is_empty() {
            return Err("no replicas".into());
        }
        if has_duplicates(&partition.replicas) {
            return Err("a broker appears twice in the replicas".into());
        }
        if let Some(unknown) = partition
            .replicas
            .iter()
            .find(|r| !self.brokers.contains_key(r))
        {
            return Err(format!("replica {unknown} is not a registered broker"));
        }
        if partition.isr.is_empty() {
            return Err("empty ISR".into());
        }
        if has_duplicates(&partition.isr) {
            return Err("a broker appears twice in the ISR".into());
        }
        if let Some(stranger) = partition
            .isr
            .iter()
            .find(|r| !partition.replicas.contains(r))
        {
            return Err(format!("ISR member {stranger} is not a replica"));
        }
        if let Some(leader) = partition.leader {
            if !partition.isr.contains(&leader) {
                return Err(format!("leader {leader} is not in the ISR"));
            }
            if !self.is_eligible(leader) {
                return Err(format!("leader {leader} is fenced or shutting down"));
            }
        }
        if partition.leader_recovery_state == LeaderRecoveryState::Recovering
            && partition.isr.len() != 1
        {
            return Err("a recovering partition has more than its leader in the ISR".into());
        }
        if partition.leader_epoch < 0 || partition.partition_epoch < 0 {
            return Err("negative epoch".into());
        }
        if let Some(stray) = partition
            .adding_replicas
            .iter()
            .chain(&partition.removing_replicas)
            .find(|r| !partition.replicas.contains(r))
        {
            return Err(format!(
                "reassignment names {stray}, which is not a replica"
            ));
        }
        if partition
            .adding_replicas
            .iter()
            .any(|r| partition.removing_replicas.contains(r))
        {
            return Err("a replica is both added and removed".into());
        }
        Ok(())
    }

    /// Check every invariant of the whole state: after loading a snapshot, and in tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, broker) in &self.brokers {
            if *id != broker.id {
                return Err(format!("broker {} filed under {id}", broker.id));
            }
        }
        if self.topic_ids.len() != self.topics.len() {
            return Err("topic name index out of step with topics".into());
        }
        for (id, topic) in &self.topics {
            if *id != topic.id || self.topic_ids.get(&topic.name) != Some(id) {
                return Err(format!("topic {:?} is indexed wrongly", topic.name));
            }
            if topic.partitions.is_empty() {
                return Err(format!("topic {:?} has no partitions", topic.name));
            }
            for (number, partition) in topic.partitions.iter().enumerate() {
                self.check_partition(partition)
                    .map_err(|broken| format!("{}-{number}: {broken}", topic.name))?;
            }
        }
        Ok(())
    }
}
