//! `poll`'s side of the consumer protocol: take the coordinator's latest assignment over
//! incrementally (revoke what left it, add what is new), or drop lost partitions, then
//! report the owned set for the heartbeat task to acknowledge. The classic protocol's
//! cooperative rebalancing (`rebalance`) takes its assignments over with the same
//! `revoke`, `add` and `drop_lost`.

use std::collections::BTreeMap;

use crate::consumer::SeekTo;
use crate::error::{Error, Result};
use crate::group::consumer::{GroupConsumer, TopicPartition};
use crate::group::metrics as gm;

impl GroupConsumer {
    /// Act on what the heartbeat task left: lost partitions, a new target assignment.
    pub(in crate::group) async fn reconcile(&mut self) -> Result<()> {
        let (lost, target) = {
            let mut state = self.member.lock();
            let lost = std::mem::take(&mut state.kip848.lost);
            (lost, state.kip848.target.take())
        };
        if lost {
            self.drop_lost().await;
        }
        let Some(target) = target else {
            return Ok(());
        };
        let revoked: Vec<TopicPartition> = self.assigned.difference(&target).cloned().collect();
        let added: Vec<TopicPartition> = target.difference(&self.assigned).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked).await?;
        }
        if !added.is_empty() {
            if let Err(error) = self.add(&added).await {
                // Try again at the next poll, unless a newer assignment came meanwhile.
                self.member.lock().kip848.target.get_or_insert(target);
                return Err(error);
            }
        }
        {
            let mut state = self.member.lock();
            state.kip848.owned = self.assigned.clone();
            state.kip848.owned_version += 1;
        }
        self.member.wake.notify_one();
        metrics::counter!(gm::REBALANCES_TOTAL).increment(1);
        tracing::info!(
            group = self.coordinator.group_id(),
            revoked = ?revoked,
            added = ?added,
            owned = self.assigned.len(),
            "reconciled the assignment"
        );
        // As Kafka's consumer protocol, on every reconciliation (the added set may be empty).
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// Give up partitions that moved: commit their positions (with auto-commit), tell the
    /// listener, stop fetching them.
    pub(in crate::group) async fn revoke(&mut self, revoked: &[TopicPartition]) -> Result<()> {
        if self.config.enable_auto_commit {
            let offsets: BTreeMap<TopicPartition, i64> = revoked
                .iter()
                .filter_map(|key| Some((key.clone(), *self.positions.get(key)?)))
                .collect();
            if let Err(error) = self.commit(&offsets).await {
                tracing::warn!(
                    group = self.coordinator.group_id(),
                    %error,
                    "committing revoked partitions failed; their next owner may consume \
                     records again"
                );
            }
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_revoked(revoked);
        }
        for key in revoked {
            self.assigned.remove(key);
            self.positions.remove(key);
            self.paused.remove(key);
        }
        metrics::gauge!(gm::ASSIGNED_PARTITIONS).decrement(revoked.len() as f64);
        self.consumer.assign(self.fetched_partitions()).await
    }

    /// Take new partitions over: positions from the committed offsets, else the reset
    /// policy.
    pub(in crate::group) async fn add(&mut self, added: &[TopicPartition]) -> Result<()> {
        let committed = self.committed(added).await?;
        let mut fetched = self.fetched_partitions();
        fetched.extend(added.iter().cloned());
        match self.consumer.assign(fetched.clone()).await {
            // The coordinator knows partitions this client's metadata does not have yet.
            Err(Error::UnknownPartition { .. }) => {
                self.consumer.cluster().refresh().await?;
                self.consumer.assign(fetched).await?;
            }
            other => other?,
        }
        for (key, offset) in committed {
            if let Some(offset) = offset {
                self.consumer
                    .seek(&key.0, key.1, SeekTo::Offset(offset))
                    .await?;
                self.positions.insert(key, offset);
            }
        }
        self.assigned.extend(added.iter().cloned());
        metrics::gauge!(gm::ASSIGNED_PARTITIONS).increment(added.len() as f64);
        Ok(())
    }

    /// The member was fenced or dropped: its partitions may already be someone else's, so
    /// nothing is committed (Kafka's `onPartitionsLost`, here `on_partitions_revoked`).
    pub(in crate::group) async fn drop_lost(&mut self) {
        if self.assigned.is_empty() {
            return;
        }
        let lost: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        tracing::info!(group = self.coordinator.group_id(), partitions = ?lost, "partitions lost");
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_revoked(&lost);
        }
        metrics::gauge!(gm::ASSIGNED_PARTITIONS).decrement(lost.len() as f64);
        self.assigned.clear();
        self.positions.clear();
        self.paused.clear();
        // An empty assignment looks up no topic, so this cannot fail.
        let _ = self.consumer.assign(Vec::new()).await;
    }
}
