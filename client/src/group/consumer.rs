//! [`GroupConsumer`]: `subscribe` to topics and let the group split their partitions.
//!
//! It owns a plain [`Consumer`] (fetching, positions, follower reads) and assigns it the
//! partitions the group hands this member; what it adds is membership, the assignment and
//! committed offsets. Steps of [`GroupConsumer::poll`]:
//!
//! 1. If the member is not in a stable generation, or must rejoin (a heartbeat answered
//!    REBALANCE_IN_PROGRESS, the subscription changed, ...), rebalance, eagerly:
//!    a. revoke everything: commit what `poll` returned (with auto-commit), call
//!    `on_partitions_revoked`, unassign;
//!    b. JoinGroup (a new dynamic member first gets MEMBER_ID_REQUIRED and joins again with
//!    the id it was given); the leader reads every member's subscription, looks up the
//!    topics' partition counts and runs the assignor the coordinator chose;
//!    c. SyncGroup (the leader sends the assignment, everyone receives their share);
//!    d. OffsetFetch the committed offsets of the new partitions; the consumer starts from
//!    them, and from `auto_offset_reset` where nothing is committed; call
//!    `on_partitions_assigned`.
//!
//!    A rebalance is not cut short by `poll`'s timeout: it lasts until the group has an
//!    assignment (at most about `max_poll_interval_ms`, the rebalance timeout).
//! 2. With auto-commit, every `auto_commit_interval_ms` start an asynchronous commit of
//!    the positions.
//! 3. Fetch with the inner consumer, in slices no longer than the heartbeat interval, so
//!    that a rebalance the heartbeat task detects is joined promptly.
//!
//! The rest of the member is written as `impl GroupConsumer` blocks beside this file:
//! `rebalance` (step 1: revoking, joining, assigning, the [`RebalanceListener`] calls, the
//! leader's metadata checks), `commits` (step 2 and every other commit, the committed
//! offsets), `positions` (what the application has seen; `seek`, `pause`, `resume`). This
//! file holds the type and its state, its accessors, `poll` and `close`.
//!
//! With the consumer protocol (KIP-848, `kip848`), step 1 is instead: take over what the
//! heartbeat task received (revoke what moved away, add what is new, report the owned
//! set), and fetches run in short slices so that a new assignment is taken promptly.
//!
//! Pattern subscriptions (`subscribe_pattern`) are in `pattern`: with the classic
//! protocol `poll` resolves them against metadata before step 1.
//!
//! With `cooperative-sticky` as the only assignor, step 1 is cooperative (KIP-429):
//! nothing is revoked before joining; after SyncGroup only the partitions that left the
//! assignment are revoked, and the member rejoins at once if there were any (`rebalance`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consumer::{Consumer, ConsumerRecord};
use crate::error::{kafka_error_name, Error, Result};
use crate::group::config::{GroupConsumerConfig, GroupProtocol};
use crate::group::coordinator::{codes, Coordinator};
use crate::group::heartbeat::{self, HeartbeatSettings};
use crate::group::kip848;
use crate::group::member::{Member, Phase};
use crate::group::pattern::Pattern;
use crate::group::rebalance::RebalanceListener;

/// Consumer protocol: the longest a fetch runs before `poll` looks for a new assignment.
const KIP848_POLL_SLICE: Duration = Duration::from_millis(100);

/// A topic partition, as the rest of the client names one.
pub type TopicPartition = (String, i32);
/// A consumer-group member: classic protocol with eager (or, with `cooperative-sticky`,
/// cooperative) rebalancing, or the consumer
/// protocol (KIP-848) with incremental reconciliation.
///
/// Call [`GroupConsumer::close`] when done: dropping the consumer stops its heartbeats but
/// neither commits nor leaves, so its partitions wait for the session timeout to move.
pub struct GroupConsumer {
    pub(super) config: GroupConsumerConfig,
    pub(super) consumer: Consumer,
    pub(super) coordinator: Arc<Coordinator>,
    pub(super) member: Arc<Member>,
    pub(super) heartbeat: tokio::task::JoinHandle<()>,
    pub(super) subscription: BTreeSet<String>,
    /// Set by `subscribe_pattern`: the subscription follows it (see `pattern`).
    pub(super) pattern: Option<Pattern>,
    /// The group's assignment to this member, paused partitions included.
    pub(super) assigned: BTreeSet<TopicPartition>,
    /// Paused partitions, with the position to resume from (None: not known yet; the reset
    /// policy or committed offset applies again).
    pub(super) paused: BTreeMap<TopicPartition, Option<i64>>,
    /// The next offset the application will see, per assigned partition whose position is
    /// known: what commits send.
    pub(super) positions: BTreeMap<TopicPartition, i64>,
    pub(super) listener: Option<Box<dyn RebalanceListener>>,
    pub(super) next_auto_commit: Instant,
    /// As the group's leader: the partition count of every topic the members subscribe to
    /// when the assignment was made (None: unknown to metadata), and when to compare it
    /// with fresh metadata next.
    pub(super) led_with: Option<BTreeMap<String, Option<i32>>>,
    /// Cooperative rebalancing: the generation the assigned partitions are owned in (sent
    /// with them in the subscription; -1 if none).
    pub(super) owned_generation: i32,
    pub(super) next_metadata_check: Instant,
}

impl GroupConsumer {
    /// Connect to the cluster. Nothing is sent to the group until the first `poll`.
    pub async fn new(config: GroupConsumerConfig) -> Result<GroupConsumer> {
        config.validate()?;
        let consumer = Consumer::new(config.consumer.clone()).await?;
        let coordinator = Arc::new(Coordinator::new(
            consumer.cluster().clone(),
            config.group_id.clone(),
            config.group_instance_id.clone(),
            config.request_timeout(),
            config.retry_backoff(),
        ));
        let (member, heartbeat) = match config.group_protocol {
            GroupProtocol::Classic => {
                let member = Arc::new(Member::new());
                let settings = HeartbeatSettings {
                    interval: config.heartbeat_interval(),
                    session_timeout: config.session_timeout(),
                    max_poll_interval: config.max_poll_interval(),
                    is_static: config.group_instance_id.is_some(),
                };
                let task = heartbeat::run(coordinator.clone(), member.clone(), settings);
                (member, tokio::spawn(task))
            }
            GroupProtocol::Consumer => {
                let member = Arc::new(Member::consumer_protocol(kip848::new_member_id()));
                let settings = kip848::HeartbeatSettings {
                    group_instance_id: config.group_instance_id.clone(),
                    rebalance_timeout_ms: i32::try_from(config.max_poll_interval_ms)
                        .unwrap_or(i32::MAX),
                    server_assignor: config.group_remote_assignor.clone(),
                    max_poll_interval: config.max_poll_interval(),
                };
                let cluster = consumer.cluster().clone();
                let task = kip848::run(coordinator.clone(), member.clone(), cluster, settings);
                (member, tokio::spawn(task))
            }
        };
        let next_auto_commit =
            Instant::now() + Duration::from_millis(config.auto_commit_interval_ms);
        Ok(GroupConsumer {
            config,
            consumer,
            coordinator,
            member,
            heartbeat,
            subscription: BTreeSet::new(),
            pattern: None,
            assigned: BTreeSet::new(),
            paused: BTreeMap::new(),
            positions: BTreeMap::new(),
            listener: None,
            next_auto_commit,
            led_with: None,
            owned_generation: -1,
            next_metadata_check: Instant::now(),
        })
    }

    /// Subscribe to exactly these topics (replacing any earlier subscription). Takes effect
    /// at the next `poll`, which rejoins the group if the member is in one.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        if topics.is_empty() || topics.iter().any(|t| t.is_empty()) {
            return Err(Error::InvalidConfig(
                "subscribe needs at least one topic, and no empty names".into(),
            ));
        }
        let topics: BTreeSet<String> = topics.iter().map(|t| t.to_string()).collect();
        if topics != self.subscription || self.pattern.is_some() {
            self.pattern = None;
            self.consumer
                .cluster()
                .add_interest(topics.iter().map(String::as_str));
            self.subscription = topics;
            if self.config.group_protocol == GroupProtocol::Consumer {
                let topics = self.subscription.clone();
                self.member.lock().kip848.set_subscription(topics);
                self.member.wake.notify_one();
            } else if self.member.stable_identity().is_some() {
                self.member.request_rejoin("the subscription changed");
            }
        }
        Ok(())
    }

    /// Call `listener` around every rebalance from now on.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// The subscribed topics.
    pub fn subscription(&self) -> Vec<String> {
        self.subscription.iter().cloned().collect()
    }

    /// The partitions the group assigned to this member (paused ones included).
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.iter().cloned().collect()
    }

    /// This member's id (empty before the first join) and generation (None when not in a
    /// stable generation).
    pub fn member(&self) -> (String, Option<i32>) {
        let state = self.member.lock();
        let generation = match state.phase {
            Phase::Stable { generation } => Some(generation),
            _ => None,
        };
        (state.member_id.clone(), generation)
    }

    /// Join the group if needed, then fetch. Returns as soon as records arrive, or empty
    /// after `timeout` (a rebalance in progress is finished first; see the module doc).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.subscription.is_empty() && self.pattern.is_none() {
            return Err(Error::InvalidConfig(
                "subscribe to at least one topic (or a pattern) before poll".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        self.member.note_poll();
        loop {
            if let Some(error) = self.member.fatal() {
                return Err(error);
            }
            let slice_max = if self.config.group_protocol == GroupProtocol::Consumer {
                self.reconcile().await?;
                KIP848_POLL_SLICE
            } else {
                self.maybe_resolve_pattern().await?;
                if self.member.needs_join() {
                    self.join_group().await?;
                    self.member.note_poll();
                }
                self.config.heartbeat_interval()
            };
            self.maybe_auto_commit();
            self.maybe_check_metadata().await;
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(slice_max);
            let records = self.consumer.poll(slice).await?;
            self.note_positions();
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }
    /// Commit (with auto-commit), call `on_partitions_revoked`, then leave the group unless
    /// the member is static (a static member keeps its partitions until its session times
    /// out or it comes back). Returns the commit's error, if it failed; the member leaves
    /// anyway.
    pub async fn close(mut self) -> Result<()> {
        let committed = self.revoke_all().await;
        self.heartbeat.abort();
        if self.config.group_protocol == GroupProtocol::Consumer {
            let instance = self.config.group_instance_id.as_deref();
            kip848::leave(&self.coordinator, &self.member, instance).await;
            self.member.lock().phase = Phase::Unjoined;
            return committed;
        }
        let member_id = self.member.lock().member_id.clone();
        if self.config.group_instance_id.is_none() && !member_id.is_empty() {
            let deadline = Instant::now() + self.config.request_timeout();
            let left = match self.coordinator.connection(deadline).await {
                Ok(connection) => {
                    self.coordinator
                        .leave(&connection, &member_id, "the consumer is being closed")
                        .await
                }
                Err(error) => Err(error),
            };
            match left {
                Ok(codes::NONE) => {
                    tracing::info!(group = self.coordinator.group_id(), member = %member_id, "left the group")
                }
                Ok(code) => tracing::warn!(
                    group = self.coordinator.group_id(),
                    error = %kafka_error_name(code),
                    "LeaveGroup failed"
                ),
                Err(error) => {
                    tracing::warn!(group = self.coordinator.group_id(), %error, "LeaveGroup failed")
                }
            }
        }
        self.member.lock().phase = Phase::Unjoined;
        committed
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::SeekTo;

    /// Compile-time check: the group consumer's futures can be spawned on a multi-threaded
    /// runtime.
    #[allow(dead_code)]
    fn group_consumer_futures_are_send(consumer: &mut GroupConsumer) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&consumer.poll(Duration::from_secs(1)));
        is_send(&consumer.commit_sync());
        is_send(&consumer.committed(&[]));
        is_send(&consumer.seek("t", 0, SeekTo::Earliest));
        is_send(&consumer.pause(&[]));
    }
}
