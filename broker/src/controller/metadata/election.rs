//! Leader election: the rule every leader change follows (`elect`: keep an
//! eligible leader in the ISR, else the first eligible ISR replica, else, where the topic
//! allows it, an unclean election or no leader), and Kafka's ElectLeaders (preferred and
//! unclean elections asked for by an operator).

use uuid::Uuid;

use super::{
    BrokerId, CommandOutcome, Election, ElectionRefusal, ElectionType, LeaderRecoveryState,
    MetadataState, Partition, PartitionChange, Topic, UNCLEAN_LEADER_ELECTION_CONFIG,
};

impl MetadataState {
    /// Whether `topic`'s leaderless partitions may be elected uncleanly: its own
    /// `unclean.leader.election.enable`, else the cluster default's dynamic config, else
    /// not (Kafka's default). A broker's own dynamic config does not decide: elections are
    /// the same on every controller.
    pub(super) fn unclean_election(&self, topic: &Topic) -> UncleanElection {
        let cluster_default = || {
            self.broker_configs(None)
                .and_then(|configs| configs.get(UNCLEAN_LEADER_ELECTION_CONFIG))
        };
        let value = topic
            .configs
            .get(UNCLEAN_LEADER_ELECTION_CONFIG)
            .or_else(cluster_default);
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("true") => UncleanElection::Allowed,
            _ => UncleanElection::Forbidden,
        }
    }
}

/// Whether a partition may get a leader from outside its ISR (see
/// [`MetadataState::unclean_election`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UncleanElection {
    Allowed,
    Forbidden,
}

impl MetadataState {
    /// The first replica, in replica order, that is in the ISR and eligible.
    pub(super) fn first_eligible_in_isr(&self, partition: &Partition) -> Option<BrokerId> {
        partition
            .replicas
            .iter()
            .copied()
            .find(|r| partition.isr.contains(r) && self.is_eligible(*r))
    }

    /// ElectLeaders: each partition on its own; a refusal for one does not stop the others.
    pub(super) fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: &[(Uuid, i32)],
    ) -> CommandOutcome {
        let mut results = Vec::with_capacity(partitions.len());
        for &(topic_id, number) in partitions {
            let result = self.elect_one(election, topic_id, number);
            results.push((topic_id, number, result));
        }
        CommandOutcome::LeadersElected { results }
    }

    fn elect_one(
        &mut self,
        election: ElectionType,
        topic_id: Uuid,
        number: i32,
    ) -> Result<PartitionChange, ElectionRefusal> {
        let partition = self
            .partition(&topic_id, number)
            .ok_or(ElectionRefusal::UnknownTopicOrPartition)?
            .clone();
        let index =
            usize::try_from(number).map_err(|_| ElectionRefusal::UnknownTopicOrPartition)?;
        let (next, kind) = match election {
            ElectionType::Preferred => {
                let preferred = partition.replicas[0];
                if partition.leader == Some(preferred) {
                    return Err(ElectionRefusal::NotNeeded);
                }
                if !partition.isr.contains(&preferred) || !self.is_eligible(preferred) {
                    return Err(ElectionRefusal::PreferredLeaderNotAvailable);
                }
                let next = Partition {
                    leader: Some(preferred),
                    leader_epoch: partition.leader_epoch + 1,
                    partition_epoch: partition.partition_epoch + 1,
                    ..partition.clone()
                };
                (next, Election::Clean)
            }
            ElectionType::Unclean => {
                if partition.leader.is_some() {
                    return Err(ElectionRefusal::NotNeeded);
                }
                match self.elect(&partition, partition.isr.clone(), UncleanElection::Allowed) {
                    Some((next, Some(kind))) if next.leader.is_some() => (next, kind),
                    _ => return Err(ElectionRefusal::EligibleLeadersNotAvailable),
                }
            }
        };
        Ok(self.write_partition(topic_id, index, next, Some(kind)))
    }

    /// The partition with ISR `target_isr` and a leader chosen by the election rule, or
    /// `None` if nothing changes. Epochs are bumped here.
    pub(super) fn elect(
        &self,
        partition: &Partition,
        target_isr: Vec<BrokerId>,
        unclean: UncleanElection,
    ) -> Option<(Partition, Option<Election>)> {
        // The ISR never empties: the last member stays so the partition can recover cleanly.
        let mut isr = if target_isr.is_empty() {
            partition.isr.clone()
        } else {
            target_isr
        };
        let mut recovery = partition.leader_recovery_state;
        let mut election = None;
        let leader = match partition.leader {
            Some(leader) if isr.contains(&leader) && self.is_eligible(leader) => Some(leader),
            _ => {
                let clean = partition
                    .replicas
                    .iter()
                    .copied()
                    .find(|&r| isr.contains(&r) && self.is_eligible(r));
                match clean {
                    Some(leader) => {
                        election = Some(Election::Clean);
                        Some(leader)
                    }
                    None if unclean == UncleanElection::Allowed => {
                        let chosen = partition
                            .replicas
                            .iter()
                            .copied()
                            .find(|&r| self.is_eligible(r));
                        if let Some(leader) = chosen {
                            election = Some(Election::Unclean);
                            isr = vec![leader];
                            recovery = LeaderRecoveryState::Recovering;
                        }
                        chosen
                    }
                    None => None,
                }
            }
        };
        let mut next = Partition {
            replicas: partition.replicas.clone(),
            isr,
            leader,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            leader_recovery_state: recovery,
            adding_replicas: partition.adding_replicas.clone(),
            removing_replicas: partition.removing_replicas.clone(),
        };
        if !next.differs_from(partition) {
            return None;
        }
        if next.leader != partition.leader {
            next.leader_epoch += 1;
        }
        next.partition_epoch += 1;
        Some((next, election))
    }
}
