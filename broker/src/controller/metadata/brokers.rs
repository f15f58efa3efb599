//! Brokers: registration (the broker epoch and the cluster id it proposes), fencing,
//! unfencing, controlled shutdown and who is eligible to lead or be in an ISR. A status
//! change re-elects the partitions it touches (`BrokerChange`, by the rule in
//! `election.rs`).

use uuid::Uuid;

use super::{
    Broker, BrokerEpoch, BrokerId, BrokerStatus, CommandOutcome, CommandResult, Endpoint,
    MetadataError, MetadataState, PartitionChange, BROKER_ENDPOINTS_MAX, CLUSTER_ID_BYTES_MAX,
};

/// Which partitions a broker-wide change looks at, and what it does to the ISR.
#[derive(Debug, Clone, Copy)]
enum BrokerChange {
    /// The broker leaves every ISR (unless it is the last member) and every leadership.
    Remove(BrokerId),
    /// Leaderless partitions that the broker is a replica of get an election.
    Add(BrokerId),
}

impl MetadataState {
    pub(super) fn is_eligible(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(Broker::is_eligible)
    }

    /// Eligible brokers in id order.
    pub(super) fn eligible_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|broker| broker.is_eligible())
            .map(|broker| broker.id)
            .collect()
    }

    pub(super) fn register_broker(
        &mut self,
        index: u64,
        id: BrokerId,
        incarnation: Uuid,
        endpoints: &[Endpoint],
        rack: &Option<String>,
        cluster_id: Option<&str>,
    ) -> CommandResult {
        if id < 0 {
            return Err(MetadataError::InvalidRequest(format!(
                "broker id {id} is negative"
            )));
        }
        if endpoints.len() > BROKER_ENDPOINTS_MAX {
            return Err(MetadataError::InvalidRequest(format!(
                "{} endpoints, at most {BROKER_ENDPOINTS_MAX} allowed",
                endpoints.len()
            )));
        }
        if let Some(proposed) = cluster_id {
            check_cluster_id(proposed)?;
        }
        let epoch = BrokerEpoch::try_from(index).expect("Raft log index fits a broker epoch");
        // The previous incarnation is gone (or retrying): fence it before replacing it, so
        // that it neither leads nor stays in an ISR on the strength of its old registration.
        let changes = match self.brokers.get(&id) {
            Some(old) => {
                assert!(epoch > old.epoch, "broker epochs never go back");
                let old_epoch = old.epoch;
                self.remove_broker(id, old_epoch, BrokerStatus::Fenced)?
            }
            None => Vec::new(),
        };
        self.brokers.insert(
            id,
            Broker {
                id,
                incarnation,
                epoch,
                endpoints: endpoints.to_vec(),
                rack: rack.clone(),
                status: BrokerStatus::Fenced,
            },
        );
        if self.cluster_id.is_none() {
            self.cluster_id = cluster_id.map(str::to_string);
        }
        Ok(CommandOutcome::BrokerRegistered {
            broker_epoch: epoch,
            changes,
        })
    }

    pub(super) fn check_broker_epoch(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<&Broker, MetadataError> {
        let broker = self
            .brokers
            .get(&id)
            .ok_or(MetadataError::BrokerNotRegistered(id))?;
        if broker.epoch != epoch {
            return Err(MetadataError::StaleBrokerEpoch {
                broker: id,
                requested: epoch,
                current: broker.epoch,
            });
        }
        Ok(broker)
    }

    pub(super) fn unfence_broker(&mut self, id: BrokerId, epoch: BrokerEpoch) -> CommandResult {
        match self.check_broker_epoch(id, epoch)?.status {
            BrokerStatus::Unfenced => {
                return Ok(CommandOutcome::BrokerUnfenced { changes: vec![] })
            }
            BrokerStatus::ShuttingDown => {
                return Err(MetadataError::InvalidRequest(format!(
                    "broker {id} is shutting down; it must register again"
                )))
            }
            BrokerStatus::Fenced => {}
        }
        self.set_status(id, BrokerStatus::Unfenced);
        let changes = self.reelect_for(BrokerChange::Add(id));
        Ok(CommandOutcome::BrokerUnfenced { changes })
    }

    /// Fence a broker or put it in controlled shutdown: either way it leaves every ISR it can
    /// leave and every leadership.
    pub(super) fn remove_broker(
        &mut self,
        id: BrokerId,
        epoch: BrokerEpoch,
        status: BrokerStatus,
    ) -> Result<Vec<PartitionChange>, MetadataError> {
        let current = self.check_broker_epoch(id, epoch)?.status;
        if current == BrokerStatus::Fenced {
            // Already out of every ISR and leadership; fencing stays fenced.
            return Ok(Vec::new());
        }
        self.set_status(id, status);
        Ok(self.reelect_for(BrokerChange::Remove(id)))
    }

    fn set_status(&mut self, id: BrokerId, status: BrokerStatus) {
        self.brokers
            .get_mut(&id)
            .expect("caller checked the broker is registered")
            .status = status;
    }

    /// Recompute leader and ISR of every partition affected by a broker's status change.
    fn reelect_for(&mut self, change: BrokerChange) -> Vec<PartitionChange> {
        let mut updates = Vec::new();
        for topic in self.topics.values() {
            let unclean = self.unclean_election(topic);
            for (number, partition) in topic.partitions.iter().enumerate() {
                let target_isr = match change {
                    BrokerChange::Remove(id) if partition.replicas.contains(&id) => {
                        partition.isr.iter().copied().filter(|&r| r != id).collect()
                    }
                    BrokerChange::Add(id)
                        if partition.leader.is_none() && partition.replicas.contains(&id) =>
                    {
                        partition.isr.clone()
                    }
                    _ => continue,
                };
                if let Some((next, election)) = self.elect(partition, target_isr, unclean) {
                    updates.push((topic.id, number, next, election));
                }
            }
        }
        updates
            .into_iter()
            .map(|(topic_id, number, next, election)| {
                self.write_partition(topic_id, number, next, election)
            })
            .collect()
    }
}

/// A cluster id is 1..=[`CLUSTER_ID_BYTES_MAX`] printable ASCII characters, no spaces: it
/// goes into every Metadata response and into a file of every data dir.
pub fn check_cluster_id(id: &str) -> Result<(), MetadataError> {
    if id.is_empty() || id.len() > CLUSTER_ID_BYTES_MAX {
        return Err(MetadataError::InvalidRequest(format!(
            "cluster id {id:?} must be 1 to {CLUSTER_ID_BYTES_MAX} bytes long"
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MetadataError::InvalidRequest(format!(
            "cluster id {id:?} may hold printable ASCII characters only, no spaces"
        )));
    }
    Ok(())
}
