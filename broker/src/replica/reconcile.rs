//! Applying metadata to the hosted replicas: [`ReplicaManager::reconcile`].
//!
//! A pass looks only at the topics the metadata changed since the last pass (the
//! controller's [`ChangeJournal`](crate::controller::delta::ChangeJournal), Kafka's
//! `TopicsDelta.localChanges`), so its cost grows with what changed, not with what exists.
//! Everything is looked at when the journal cannot tell (the first pass, after a snapshot
//! install, after falling too far behind) and once when this broker's metadata has caught
//! up with its registration ([`ReplicaManager::set_caught_up`]).
//!
//! For one topic: its local record exists (created with the controller's id and configs,
//! its configs kept equal to the controller's, applied live to its logs and replicas;
//! a local topic of the same name and another id is a deleted one, replaced); each
//! partition this broker is a replica of gets a log (a directory, created on first use)
//! and the controller's registration ([`Partition::apply_registration`]): it leads, or it
//! follows and its fetcher fetches from the leader; each partition it is not a replica of
//! has no log here (a replica reassigned away is dropped and its directory removed). A
//! deleted topic's replicas are dropped and its local logs deleted.
//!
//! A topic whose pass failed (a log that could not be created, say) is looked at again on
//! the next pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

use super::hosted::{offsets, Replica};
use super::leadership::LeadershipRole;
use super::{committed_isr, id_list, note_isr_change, ReplicaKey, ReplicaManager};
use crate::controller::delta::Delta;
use crate::controller::Topic;
use crate::metrics as m;
use crate::replication::{PartitionConfig, PartitionRegistration};
use crate::storage::StorageError;
use sluice_protocol::clock::monotonic_ms;

/// What the last pass reached; guarded by the manager's one-pass-at-a-time lock.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// The metadata log index reconciled through; `None`: look at everything next time.
    through: Option<u64>,
    /// Topics whose last pass failed.
    retry: BTreeSet<Uuid>,
}

impl Reconciled {
    /// Make the next pass look at every topic.
    pub(super) fn look_at_everything(&mut self) {
        self.through = None;
    }
}

/// A topic as the metadata image had it, copied so the pass owns it.
struct WantedTopic {
    name: String,
    id: Uuid,
    configs: BTreeMap<String, String>,
    partitions: Vec<crate::controller::Partition>,
}

impl WantedTopic {
    fn of(topic: &Topic) -> WantedTopic {
        WantedTopic {
            name: topic.name.clone(),
            id: topic.id,
            configs: topic.configs.clone(),
            partitions: topic.partitions.clone(),
        }
    }
}

impl ReplicaManager {
    /// Bring hosted replicas in line with the metadata (see the module docs).
    pub fn reconcile(&self) {
        let mut reconciled = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_broker_configs();
        let (through, delta) = self.metadata.changes_since(reconciled.through);
        let retry = std::mem::take(&mut reconciled.retry);
        reconciled.retry = match delta {
            Some(mut delta) => {
                delta.changed.extend(retry);
                self.reconcile_delta(&delta)
            }
            None => self.reconcile_everything(),
        };
        reconciled.through = through;
    }

    /// Partitions looked at by reconciliation passes since start (hosted or not).
    pub fn partitions_reconciled(&self) -> u64 {
        self.partitions_reconciled.load(Ordering::Relaxed)
    }

    /// The changed and deleted topics; returns those that failed.
    fn reconcile_delta(&self, delta: &Delta) -> BTreeSet<Uuid> {
        if delta.is_empty() {
            return BTreeSet::new();
        }
        for (id, name) in &delta.deleted {
            self.remove_topic(*id, name);
            self.deletions.announce(&super::TopicDeleted {
                name: name.clone(),
                id: *id,
            });
        }
        let topics: Vec<WantedTopic> = self.metadata.read(|state| {
            delta
                .changed
                .iter()
                .filter_map(|id| state.topic(id))
                .map(WantedTopic::of)
                .collect()
        });
        self.reconcile_topics(&topics)
    }

    /// Every topic of the metadata, and every local topic or replica it no longer has.
    fn reconcile_everything(&self) -> BTreeSet<Uuid> {
        let topics: Vec<WantedTopic> = self
            .metadata
            .read(|state| state.topics().map(WantedTopic::of).collect());
        let failed = self.reconcile_topics(&topics);
        let known: HashMap<&str, Uuid> = topics.iter().map(|t| (t.name.as_str(), t.id)).collect();
        for replica in self.all_replicas() {
            if known.get(replica.topic.as_str()) != Some(&replica.topic_id) {
                self.drop_replica(&replica);
            }
        }
        if self.caught_up.load(Ordering::Acquire) && !self.adopt_local_topics {
            for local in self.logs.topics() {
                if known.get(local.name.as_str()).map(|id| *id.as_bytes()) != Some(local.id) {
                    self.delete_local_topic(&local.name, "the metadata no longer has it");
                }
            }
        }
        failed
    }

    fn reconcile_topics(&self, topics: &[WantedTopic]) -> BTreeSet<Uuid> {
        // The replication state machines' clock: replica lag must not follow the wall clock.
        let now = monotonic_ms();
        let mut failed = BTreeSet::new();
        for topic in topics {
            if let Err(error) = self.reconcile_topic(topic, now) {
                tracing::error!(topic = %topic.name, %error, "cannot reconcile a topic's local replicas; retrying on the next metadata change");
                failed.insert(topic.id);
            }
        }
        failed
    }

    fn reconcile_topic(&self, topic: &WantedTopic, now: i64) -> Result<(), StorageError> {
        let configs_changed = self.ensure_local_topic(topic)?;
        // Replicas of a deleted topic that had the same name.
        for replica in self.replicas_of(&topic.name) {
            if replica.topic_id != topic.id {
                self.drop_replica(&replica);
            }
        }
        let min_insync_replicas =
            usize::try_from(self.logs.min_insync_replicas(&topic.name)).unwrap_or(1);
        if configs_changed {
            self.apply_min_insync_replicas(&topic.name, min_insync_replicas);
        }
        let examined = u64::try_from(topic.partitions.len()).unwrap_or(u64::MAX);
        self.partitions_reconciled
            .fetch_add(examined, Ordering::Relaxed);
        metrics::counter!(m::METADATA_PARTITIONS_RECONCILED_TOTAL).increment(examined);
        let mut result = Ok(());
        for (index, partition) in topic.partitions.iter().enumerate() {
            let index = i32::try_from(index).expect("partition count is bounded");
            let outcome = if partition.replicas.contains(&self.local_id) {
                self.apply_partition(topic, index, partition, min_insync_replicas, now)
            } else {
                self.stop_hosting(&topic.name, index)
            };
            if let Err(error) = outcome {
                tracing::error!(partition = %format!("{}-{index}", topic.name), %error, "cannot reconcile a partition");
                result = Err(error);
            }
        }
        result
    }

    /// The controller's registration of a partition hosted here, applied to its replica.
    fn apply_partition(
        &self,
        topic: &WantedTopic,
        index: i32,
        partition: &crate::controller::Partition,
        min_insync_replicas: usize,
        now: i64,
    ) -> Result<(), StorageError> {
        let key = (topic.name.clone(), index);
        let epochs = (partition.leader_epoch, partition.partition_epoch);
        if self.applied_epochs(&key) == Some(epochs) {
            return Ok(());
        }
        let replica = self.replica_or_create(topic, index, min_insync_replicas)?;
        let registration = PartitionRegistration {
            leader_id: partition.leader,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            replicas: partition.replicas.clone(),
            isr: partition.isr.clone(),
        };
        let mut state = replica.lock();
        let was_leader = state.is_leader();
        let epoch_before = state.leader_epoch();
        let isr_before = committed_isr(&state);
        match state.apply_registration(&registration, offsets(&replica.log), now) {
            Ok(effects) => {
                if let Err(error) = replica.apply_effects(&mut state, effects, &self.sink()) {
                    tracing::error!(partition = replica.log.name(), %error, "applying a leadership change failed");
                }
                if was_leader && state.is_leader() {
                    // The controller changed the ISR (a fenced broker, a reassignment),
                    // or its metadata brought our own AlterPartition first.
                    note_isr_change(&replica, &state, isr_before);
                }
                if state.is_leader() && !was_leader {
                    metrics::counter!(m::LEADERSHIPS_TAKEN_TOTAL).increment(1);
                }
                self.refresh_partition_gauges(&replica, &state);
                if state.is_leader() != was_leader || !state.is_leader() {
                    tracing::info!(
                        partition = replica.log.name(),
                        role = if state.is_leader() { "leader" } else { "follower" },
                        leader = partition.leader.unwrap_or(-1),
                        leader_epoch = partition.leader_epoch,
                        partition_epoch = partition.partition_epoch,
                        isr = %id_list(&partition.isr),
                        log_end_offset = replica.log.log_end_offset(),
                        high_watermark = state.high_watermark(),
                        "partition role"
                    );
                }
            }
            Err(refusal) => {
                tracing::debug!(
                    partition = replica.log.name(),
                    ?refusal,
                    "registration not applied"
                );
            }
        }
        let changed = leadership_change(&state, was_leader, epoch_before);
        drop(state);
        if let Some(role) = changed {
            self.announce_leadership(&topic.name, index, role);
        }
        self.set_applied_epochs(key, epochs);
        Ok(())
    }

    /// This broker is no replica of `topic`-`index`: drop the replica and the log if it
    /// has them (a reassignment away, or data from before a restart).
    fn stop_hosting(&self, topic: &str, index: i32) -> Result<(), StorageError> {
        let key = (topic.to_string(), index);
        // The common case, a partition hosted elsewhere all along, takes no write lock (the
        // produce and fetch paths read this map).
        let hosted = self
            .replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key);
        let removed = if hosted {
            self.replicas
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key)
        } else {
            None
        };
        if let Some(replica) = &removed {
            self.forget_replica(replica);
        } else if !self.caught_up.load(Ordering::Acquire) {
            // Metadata that has not caught up may be older than the log: keep it for now.
            return Ok(());
        }
        if self.logs.partition(topic, index).is_some()
            && self.logs.remove_partition(topic, index)?
        {
            tracing::info!(
                partition = %format!("{topic}-{index}"),
                "this broker is no longer a replica: its log was removed"
            );
        }
        Ok(())
    }

    /// A deleted topic: drop its replicas and local logs (if the local topic is that one).
    fn remove_topic(&self, id: Uuid, name: &str) {
        for replica in self.replicas_of(name) {
            if replica.topic_id == id {
                self.drop_replica(&replica);
            }
        }
        if self
            .logs
            .topic(name)
            .is_some_and(|local| local.id == *id.as_bytes())
        {
            self.delete_local_topic(name, "the topic was deleted");
        }
    }

    fn delete_local_topic(&self, name: &str, why: &str) {
        match self.logs.delete_topic(name) {
            Ok(()) => tracing::info!(topic = %name, why, "deleted the local logs of a topic"),
            Err(error) => tracing::warn!(topic = %name, %error, "deleting a local topic failed"),
        }
    }

    /// Remove `replica` from the hosted set (its log is the caller's business).
    fn drop_replica(&self, replica: &Arc<Replica>) {
        let key = (replica.topic.clone(), replica.index);
        let mut replicas = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        if replicas
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, replica))
        {
            replicas.remove(&key);
        }
        drop(replicas);
        self.forget_replica(replica);
    }

    /// Stop fetching for a replica no longer hosted and wake whoever waits on it.
    fn forget_replica(&self, replica: &Arc<Replica>) {
        if replica.lock().is_leader() {
            self.announce_leadership(&replica.topic, replica.index, LeadershipRole::NotLeader);
        }
        self.fetchers.remove(replica);
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(replica.topic.clone(), replica.index));
        replica.publish_high_watermark(replica.high_watermark());
        self.forget_partition_gauges(replica);
    }

    /// The hosted replicas of the topic named `name`.
    pub(super) fn replicas_of(&self, name: &str) -> Vec<Arc<Replica>> {
        let start: ReplicaKey = (name.to_string(), i32::MIN);
        let end: ReplicaKey = (name.to_string(), i32::MAX);
        self.replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .range(start..=end)
            .map(|(_, replica)| replica.clone())
            .collect()
    }

    fn applied_epochs(&self, key: &ReplicaKey) -> Option<(i32, i32)> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    fn set_applied_epochs(&self, key: ReplicaKey, epochs: (i32, i32)) {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, epochs);
    }

    /// The topic's local record, created or brought in line with the metadata (partition
    /// count, configs); returns whether its configs changed.
    fn ensure_local_topic(&self, topic: &WantedTopic) -> Result<bool, StorageError> {
        let (name, id) = (topic.name.as_str(), topic.id);
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        match self.logs.topic(name) {
            Some(local) if local.id == *id.as_bytes() => {
                if local.partitions < partitions {
                    self.logs.create_partitions(name, partitions)?;
                }
                self.logs.alter_topic_configs(name, &topic.configs)
            }
            Some(local) => {
                // Same name, another topic: the old one was deleted while this broker was
                // away and the name reused.
                tracing::info!(topic = name, old_id = %Uuid::from_bytes(local.id), new_id = %id, "replacing the local log of a deleted topic");
                self.logs.delete_topic(name)?;
                self.create_local_topic(topic).map(|()| false)
            }
            None => self.create_local_topic(topic).map(|()| false),
        }
    }

    /// A changed `min.insync.replicas` applied to the topic's hosted replicas (lowering it
    /// may let a leader's high watermark advance at once).
    pub(super) fn apply_min_insync_replicas(&self, topic: &str, min_insync_replicas: usize) {
        for replica in self.replicas_of(topic) {
            let mut state = replica.lock();
            let effects = state.set_min_insync_replicas(min_insync_replicas);
            if let Err(error) = replica.apply_effects(&mut state, effects, &self.sink()) {
                tracing::error!(partition = replica.log.name(), %error, "applying a min.insync.replicas change failed");
            }
        }
    }

    fn create_local_topic(&self, topic: &WantedTopic) -> Result<(), StorageError> {
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        self.logs
            .create_topic_with_id(
                &topic.name,
                *topic.id.as_bytes(),
                partitions,
                topic.configs.clone(),
            )
            .map(|_| ())
    }

    fn replica_or_create(
        &self,
        topic: &WantedTopic,
        index: i32,
        min_insync_replicas: usize,
    ) -> Result<Arc<Replica>, StorageError> {
        let key = (topic.name.clone(), index);
        if let Some(replica) = self
            .replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(replica.clone());
        }
        let log = self.logs.open_partition(&topic.name, index)?;
        let replica = Arc::new(Replica::new(
            topic.name.clone(),
            topic.id,
            index,
            log,
            PartitionConfig {
                local_broker_id: self.local_id,
                local_broker_epoch: self.broker_epoch,
                replica_lag_ms_max: self.replica_lag_ms_max,
                min_insync_replicas,
            },
        ));
        self.replicas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, replica.clone());
        Ok(replica)
    }
}

/// The leadership to announce after a registration was applied: a new leadership, a new
/// leader epoch, or a lost leadership; `None` if nothing changed.
fn leadership_change(
    state: &crate::replication::Partition,
    was_leader: bool,
    epoch_before: i32,
) -> Option<LeadershipRole> {
    if state.is_leader() {
        let leader_epoch = state.leader_epoch();
        (!was_leader || leader_epoch != epoch_before)
            .then_some(LeadershipRole::Leader { leader_epoch })
    } else {
        was_leader.then_some(LeadershipRole::NotLeader)
    }
}
