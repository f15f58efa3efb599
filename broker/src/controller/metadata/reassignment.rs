//! Partition reassignment (KIP-455, Kafka's AlterPartitionReassignments): starting,
//! replacing and cancelling one partition's move to new replicas, and completing it once
//! every target replica is in the ISR.

use uuid::Uuid;

use super::{
    has_duplicates, BrokerId, CommandOutcome, CommandResult, Election, MetadataError,
    MetadataState, Partition,
};

impl MetadataState {
    /// Start, replace or cancel one partition's reassignment (KIP-455). The full replica
    /// set while it runs is the target followed by the original replicas not in it; a
    /// reassignment that adds nothing completes at once.
    pub(super) fn reassign_partition(
        &mut self,
        topic_id: Uuid,
        number: i32,
        target: Option<&[BrokerId]>,
    ) -> CommandResult {
        let unknown = MetadataError::UnknownPartition {
            topic_id,
            partition: number,
        };
        let index = usize::try_from(number).map_err(|_| unknown.clone())?;
        let current = self
            .topics
            .get(&topic_id)
            .ok_or(MetadataError::UnknownTopicId(topic_id))?
            .partitions
            .get(index)
            .ok_or(unknown)?
            .clone();
        let original = current.original_replicas();
        let mut next = current.clone();
        match target {
            None => {
                if !current.is_reassigning() {
                    return Err(MetadataError::NoReassignmentInProgress);
                }
                let isr: Vec<BrokerId> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| original.contains(r))
                    .collect();
                if isr.is_empty() {
                    return Err(MetadataError::InvalidRequest(
                        "cannot cancel: no original replica is in the ISR".into(),
                    ));
                }
                next.replicas = original;
                next.isr = isr;
                next.adding_replicas.clear();
                next.removing_replicas.clear();
            }
            Some(target) => {
                if target.is_empty() || has_duplicates(target) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "target replicas {target:?} must be distinct and non-empty"
                    )));
                }
                if let Some(unknown) = target.iter().find(|r| !self.brokers.contains_key(r)) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "broker {unknown} is not registered"
                    )));
                }
                let mut replicas = target.to_vec();
                replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
                next.adding_replicas = target
                    .iter()
                    .copied()
                    .filter(|r| !original.contains(r))
                    .collect();
                next.removing_replicas = original
                    .iter()
                    .copied()
                    .filter(|r| !target.contains(r))
                    .collect();
                // Members of an abandoned earlier target leave the ISR with it.
                next.isr.retain(|r| replicas.contains(r));
                next.replicas = replicas;
                if next.isr.is_empty() {
                    return Err(MetadataError::InvalidReplicaAssignment(
                        "no in-sync replica would be left".into(),
                    ));
                }
            }
        }
        self.complete_reassignment_if_caught_up(&mut next);
        if next
            .leader
            .is_some_and(|l| !next.isr.contains(&l) || !next.replicas.contains(&l))
        {
            next.leader = self.first_eligible_in_isr(&next);
        }
        if !next.differs_from(&current) {
            return Ok(CommandOutcome::ReassignmentAltered { partition: current });
        }
        if next.leader != current.leader {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        let election =
            (next.leader != current.leader && next.leader.is_some()).then_some(Election::Clean);
        self.write_partition(topic_id, index, next, election);
        let partition = self.topics[&topic_id].partitions[index].clone();
        Ok(CommandOutcome::ReassignmentAltered { partition })
    }

    /// If a reassignment runs and every target replica is in the ISR, finish it: the
    /// replicas become the target, removed replicas leave the ISR, and leadership moves to
    /// a target replica if the leader was removed. Epochs are the caller's.
    pub(super) fn complete_reassignment_if_caught_up(&self, next: &mut Partition) {
        if !next.is_reassigning() {
            return;
        }
        let target = next.target_replicas();
        if !target.iter().all(|r| next.isr.contains(r)) {
            return;
        }
        next.isr.retain(|r| target.contains(r));
        next.replicas = target;
        next.adding_replicas.clear();
        next.removing_replicas.clear();
        if next.leader.is_some_and(|l| !next.replicas.contains(&l)) {
            next.leader = self.first_eligible_in_isr(next);
        }
    }
}
