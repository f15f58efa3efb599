//! Leadership changes of chosen topics, for the coordinators that live on a partition's
//! leader (the group coordinator follows `__consumer_offsets`), and topic deletions, for
//! the coordinators that keep state about every topic (committed offsets).
//!
//! [`ReplicaManager::watch_deletions`] returns a channel of [`TopicDeleted`]: every topic
//! the metadata deletes from then on, hosted here or not, as a reconciliation pass by delta
//! sees it. A pass that cannot tell what changed (the first one, after a snapshot install
//! or after falling too far behind) announces no deletions.
//!
//! [`ReplicaManager::watch_leadership`] returns a channel of [`LeadershipChange`]s for one
//! topic: first one `Leader` for every partition of it this broker leads at that moment,
//! then every change as reconciliation applies it: `Leader` when this broker becomes the
//! partition's leader or stays leader under a new leader epoch, `NotLeader` when it
//! becomes a follower or stops hosting the partition.
//!
//! Order: the watcher list's lock is held while the current leaders are listed and while a
//! change is sent, and reconciliation sends a change only after the partition's state has
//! changed; so a watcher sees every change after the state it was first told about, in
//! order. It may see a `Leader` twice with the same epoch (listed, then announced): a
//! watcher treats a repeated epoch as no change.

use std::sync::Mutex;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::ReplicaManager;

/// A topic the metadata deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDeleted {
    pub name: String,
    pub id: Uuid,
}

/// Who hears of topic deletions.
#[derive(Debug, Default)]
pub(super) struct DeletionWatchers {
    watchers: Mutex<Vec<mpsc::UnboundedSender<TopicDeleted>>>,
}

impl DeletionWatchers {
    /// Tell every watcher, forgetting those that hung up.
    pub(super) fn announce(&self, deleted: &TopicDeleted) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|sender| sender.send(deleted.clone()).is_ok());
    }
}

/// One partition's leadership, as this broker holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipChange {
    pub topic: String,
    pub partition: i32,
    pub role: LeadershipRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipRole {
    /// This broker leads the partition in this leader epoch.
    Leader { leader_epoch: i32 },
    /// It does not (a follower, or the partition is not hosted here).
    NotLeader,
}

/// The registered watchers, by topic.
#[derive(Debug, Default)]
pub(super) struct LeadershipWatchers {
    watchers: Mutex<Vec<(String, mpsc::UnboundedSender<LeadershipChange>)>>,
}

impl LeadershipWatchers {
    /// Send `change` to the watchers of its topic, forgetting those that hung up.
    pub(super) fn announce(&self, change: LeadershipChange) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|(topic, sender)| {
            *topic != change.topic || sender.send(change.clone()).is_ok()
        });
    }

    /// Whether anyone watches `topic` (reconciliation skips building changes otherwise).
    pub(super) fn watches(&self, topic: &str) -> bool {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(watched, _)| watched == topic)
    }
}

impl ReplicaManager {
    /// Leadership changes of `topic`'s partitions on this broker (see the module docs).
    pub fn watch_leadership(&self, topic: &str) -> mpsc::UnboundedReceiver<LeadershipChange> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut watchers = self
            .leadership
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for replica in self.replicas_of(topic) {
            let state = replica.lock();
            if state.is_leader() {
                let _ = sender.send(LeadershipChange {
                    topic: topic.to_string(),
                    partition: replica.index,
                    role: LeadershipRole::Leader {
                        leader_epoch: state.leader_epoch(),
                    },
                });
            }
        }
        watchers.push((topic.to_string(), sender));
        receiver
    }

    /// Every topic the metadata deletes from now on (see the module docs).
    pub fn watch_deletions(&self) -> mpsc::UnboundedReceiver<TopicDeleted> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.deletions
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        receiver
    }

    /// Tell `topic`'s watchers, if any, that this broker now holds `role` for `partition`.
    pub(super) fn announce_leadership(&self, topic: &str, partition: i32, role: LeadershipRole) {
        if self.leadership.watches(topic) {
            self.leadership.announce(LeadershipChange {
                topic: topic.to_string(),
                partition,
                role,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::server::testing;

    async fn next(receiver: &mut mpsc::UnboundedReceiver<LeadershipChange>) -> LeadershipChange {
        tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("a leadership change within 10 s")
            .expect("the channel is open")
    }

    #[tokio::test]
    async fn a_watcher_hears_of_current_and_new_leaderships_of_its_topic_only() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        broker
            .create_topic("early", 2, -1, BTreeMap::new(), false)
            .await
            .expect("create topic");
        broker.replicas.reconcile();
        let mut early = broker.replicas.watch_leadership("early");
        let mut late = broker.replicas.watch_leadership("late");
        let mut listed: Vec<LeadershipChange> =
            vec![next(&mut early).await, next(&mut early).await];
        listed.sort_by_key(|change| change.partition);
        for (partition, change) in listed.iter().enumerate() {
            assert_eq!(change.topic, "early");
            assert_eq!(change.partition, partition as i32);
            assert!(
                matches!(change.role, LeadershipRole::Leader { .. }),
                "{change:?}"
            );
        }
        assert!(early.try_recv().is_err(), "nothing but the current leaders");

        broker
            .create_topic("late", 1, -1, BTreeMap::new(), false)
            .await
            .expect("create topic");
        broker.replicas.reconcile();
        let change = next(&mut late).await;
        assert_eq!(
            (change.topic.as_str(), change.partition),
            ("late", 0),
            "{change:?}"
        );
        assert!(matches!(change.role, LeadershipRole::Leader { .. }));
        assert!(
            early.try_recv().is_err(),
            "the other topic's watcher heard nothing"
        );

        // Deleting the topic ends the leadership.
        let request = kafka_protocol::messages::DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(crate::server::api::topic_name("late"))),
            ]);
        let response = crate::server::api::delete_topics::handle(&broker, request, 6).await;
        assert_eq!(response.responses[0].error_code, 0, "{response:?}");
        broker.replicas.reconcile();
        let change = next(&mut late).await;
        assert_eq!(change.role, LeadershipRole::NotLeader, "{change:?}");
        broker.stop().await;
    }
}
