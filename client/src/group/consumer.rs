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
//! # Positions and commits
//! A partition's *position* here is the offset of the next record the application will
//! see: it moves only when `poll` returns (the inner consumer hands out everything it
//! decoded before an `Ok` return, so its position then equals what the application saw),
//! and on `seek`. Commits (auto, `commit_sync`, `commit_async`, on revoke and on close)
//! send these positions, so nothing is ever committed ahead of what `poll` returned.
//!
//! Commits carry the member id and generation of a stable generation, never anything
//! else; a member that is rebalancing or was dropped cannot commit (REBALANCE_IN_PROGRESS,
//! ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID are returned, and records since the last commit
//! may be consumed again by the partition's next owner). Synchronous commits retry
//! COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR (after finding the coordinator again) and
//! failed connections until the request timeout; asynchronous ones are put on the wire at
//! once, in order, and not retried (as in Kafka).
//!
//! # Pause
//! A paused partition stays in the group's assignment but is taken out of the inner
//! consumer's; its position is kept and restored on `resume`.
//!
//! # Metadata changes
//! The leader refreshes metadata every `metadata_max_age_ms` and rejoins when a subscribed
//! topic's partition count differs from the one its assignment was made with (a topic
//! gained partitions, or appeared), as Kafka's leader does.
//!
//! Left out for now: cooperative (incremental) rebalancing and `cooperative-sticky`,
//! regex subscriptions, and KIP-848 (`group.protocol=consumer`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    AssignedPartitions, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    ASSIGNMENT_VERSION_MAX, SUBSCRIPTION_VERSION_MAX,
};

use crate::consumer::{Consumer, ConsumerRecord, SeekTo};
use crate::error::{is_retriable_code, kafka_error_name, Error, Result};
use crate::group::assignor::{Assignor, MemberSubscription};
use crate::group::config::GroupConsumerConfig;
use crate::group::coordinator::{
    codes, commit_error, is_coordinator_moved, Coordinator, JoinParams, MemberIdentityRef,
};
use crate::group::heartbeat::{self, HeartbeatSettings};
use crate::group::member::{Member, Phase};
use crate::group::metrics as gm;
use crate::offsets::{list_offsets, OffsetSpec, PartitionKey};

/// A topic partition, as the rest of the client names one.
pub type TopicPartition = (String, i32);

/// Called around rebalances, on the task that calls [`GroupConsumer::poll`] (or
/// [`GroupConsumer::close`]). Both methods do nothing by default. `Send + Sync` so that the
/// consumer's futures can be spawned on a multi-threaded runtime.
pub trait RebalanceListener: Send + Sync {
    /// Before a rebalance (eager: every owned partition) and on close. With auto-commit,
    /// the positions have been committed already, if the member could still commit: a
    /// member the coordinator dropped (session or poll timeout) has lost its partitions
    /// and commits nothing (Kafka calls `onPartitionsLost` there).
    fn on_partitions_revoked(&mut self, revoked: &[TopicPartition]) {
        let _ = revoked;
    }

    /// After a rebalance, once the positions are set (committed offsets or the reset
    /// policy). Called also when the assignment is empty.
    fn on_partitions_assigned(&mut self, assigned: &[TopicPartition]) {
        let _ = assigned;
    }
}

/// The leader's encoded assignment per member, and the partition counts it was made with.
type LeaderAssignment = (Vec<(String, Bytes)>, BTreeMap<String, Option<i32>>);

/// What one JoinGroup + SyncGroup round came to.
enum JoinStep {
    Assigned(Vec<TopicPartition>),
    /// Try again; after `retry_backoff_ms` when `backoff`.
    Retry {
        backoff: bool,
        error: Error,
    },
}

/// An asynchronous commit started by [`GroupConsumer::commit_async`]. It completes
/// whether or not it is awaited.
#[derive(Debug)]
pub struct PendingCommit {
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PendingCommit {
    /// Wait for the coordinator's answer.
    pub async fn wait(self) -> Result<()> {
        self.task.await.unwrap_or(Err(Error::Closed))
    }
}

/// A consumer-group member (classic protocol, eager rebalancing).
///
/// Call [`GroupConsumer::close`] when done: dropping the consumer stops its heartbeats but
/// neither commits nor leaves, so its partitions wait for the session timeout to move.
pub struct GroupConsumer {
    config: GroupConsumerConfig,
    consumer: Consumer,
    coordinator: Arc<Coordinator>,
    member: Arc<Member>,
    heartbeat: tokio::task::JoinHandle<()>,
    subscription: BTreeSet<String>,
    /// The group's assignment to this member, paused partitions included.
    assigned: BTreeSet<TopicPartition>,
    /// Paused partitions, with the position to resume from (None: not known yet; the reset
    /// policy or committed offset applies again).
    paused: BTreeMap<TopicPartition, Option<i64>>,
    /// The next offset the application will see, per assigned partition whose position is
    /// known: what commits send.
    positions: BTreeMap<TopicPartition, i64>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_auto_commit: Instant,
    /// As the group's leader: the partition count of every topic the members subscribe to
    /// when the assignment was made (None: unknown to metadata), and when to compare it
    /// with fresh metadata next.
    led_with: Option<BTreeMap<String, Option<i32>>>,
    next_metadata_check: Instant,
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
        let member = Arc::new(Member::new());
        let heartbeat = tokio::spawn(heartbeat::run(
            coordinator.clone(),
            member.clone(),
            HeartbeatSettings {
                interval: config.heartbeat_interval(),
                session_timeout: config.session_timeout(),
                max_poll_interval: config.max_poll_interval(),
                is_static: config.group_instance_id.is_some(),
            },
        ));
        let next_auto_commit =
            Instant::now() + Duration::from_millis(config.auto_commit_interval_ms);
        Ok(GroupConsumer {
            config,
            consumer,
            coordinator,
            member,
            heartbeat,
            subscription: BTreeSet::new(),
            assigned: BTreeSet::new(),
            paused: BTreeMap::new(),
            positions: BTreeMap::new(),
            listener: None,
            next_auto_commit,
            led_with: None,
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
        if topics != self.subscription {
            self.consumer
                .cluster()
                .add_interest(topics.iter().map(String::as_str));
            self.subscription = topics;
            if self.member.stable_identity().is_some() {
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

    /// The offset of the next record `poll` returns for an assigned partition, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// Join the group if needed, then fetch. Returns as soon as records arrive, or empty
    /// after `timeout` (a rebalance in progress is finished first; see the module doc).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.subscription.is_empty() {
            return Err(Error::InvalidConfig(
                "subscribe to at least one topic before poll".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        self.member.note_poll();
        loop {
            if let Some(error) = self.member.fatal() {
                return Err(error);
            }
            if self.member.needs_join() {
                self.join_group().await?;
                self.member.note_poll();
            }
            self.maybe_auto_commit();
            self.maybe_check_metadata().await;
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(self.config.heartbeat_interval());
            let records = self.consumer.poll(slice).await?;
            self.note_positions();
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// After a successful inner poll, the inner consumer's positions are exactly what the
    /// application has seen.
    fn note_positions(&mut self) {
        for (topic, partition) in self.consumer.assignment() {
            if let Some(position) = self.consumer.position(&topic, partition) {
                self.positions.insert((topic, partition), position);
            }
        }
    }

    /// Move an assigned partition's position (paused ones included). Earliest, Latest and
    /// Timestamp are resolved now with ListOffsets.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<()> {
        let key = (topic.to_string(), partition);
        if !self.assigned.contains(&key) {
            return Err(Error::InvalidConfig(format!(
                "cannot seek {topic}-{partition}: the group has not assigned it to this member"
            )));
        }
        let offset = if let Some(saved) = self.paused.get_mut(&key) {
            // The inner consumer does not hold a paused partition: resolve here.
            let spec = match to {
                SeekTo::Offset(offset) => Err(offset),
                SeekTo::Earliest => Ok(OffsetSpec::Earliest),
                SeekTo::Latest => Ok(OffsetSpec::Latest),
                SeekTo::Timestamp(ts) => Ok(OffsetSpec::Timestamp(ts)),
            };
            let offset = match spec {
                Err(offset) => offset,
                Ok(spec) => {
                    let target: PartitionKey = (Arc::from(topic), partition);
                    let resolved = list_offsets(
                        self.consumer.cluster(),
                        self.config.consumer.isolation,
                        &[(target.clone(), spec)],
                    )
                    .await?;
                    resolved.get(&target).copied().unwrap_or(0)
                }
            };
            *saved = Some(offset);
            offset
        } else {
            self.consumer.seek(topic, partition, to).await?;
            self.consumer.position(topic, partition).unwrap_or(0)
        };
        self.positions.insert(key, offset);
        Ok(())
    }

    /// Stop fetching these assigned partitions until `resume`; their positions are kept.
    /// A rebalance clears the paused set, as in Kafka.
    pub async fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for key in partitions {
            if !self.assigned.contains(key) {
                return Err(Error::InvalidConfig(format!(
                    "cannot pause {}-{}: the group has not assigned it to this member",
                    key.0, key.1
                )));
            }
        }
        for key in partitions {
            if !self.paused.contains_key(key) {
                self.paused
                    .insert(key.clone(), self.positions.get(key).copied());
            }
        }
        self.consumer.assign(self.fetched_partitions()).await
    }

    /// Fetch these paused partitions again, from where they were paused (or sought).
    pub async fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let mut resumed = Vec::new();
        for key in partitions {
            if let Some(saved) = self.paused.remove(key) {
                resumed.push((key.clone(), saved));
            }
        }
        self.consumer.assign(self.fetched_partitions()).await?;
        for ((topic, partition), saved) in resumed {
            if let Some(offset) = saved {
                self.consumer
                    .seek(&topic, partition, SeekTo::Offset(offset))
                    .await?;
            }
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.paused.keys().cloned().collect()
    }

    /// The assigned partitions that are not paused: what the inner consumer fetches.
    fn fetched_partitions(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|key| !self.paused.contains_key(*key))
            .cloned()
            .collect()
    }

    /// What a commit of the current positions sends.
    fn consumed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions.clone()
    }

    /// Commit the positions of every assigned partition (what `poll` has returned) and
    /// wait for the coordinator's answer.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit(&offsets).await
    }

    /// Commit the positions without waiting: the request is on the wire when this returns
    /// (if the coordinator is known), so commits reach the coordinator in the order made.
    pub fn commit_async(&mut self) -> PendingCommit {
        start_commit(
            self.coordinator.clone(),
            self.member.clone(),
            self.consumed_offsets(),
        )
    }

    /// Commit these offsets (each the offset of the next record to read) and wait. Retries
    /// coordinator moves and failed connections until the request timeout.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let Some(identity) = self.member.stable_identity() else {
                return Err(not_in_a_generation(self.coordinator.group_id()));
            };
            let connection = self.coordinator.connection(deadline).await?;
            let error = match commit_once(
                &self.coordinator,
                &self.member,
                &identity,
                &connection,
                offsets,
            )
            .await
            {
                CommitOutcome::Committed => return Ok(()),
                CommitOutcome::Failed(error) => return Err(error),
                CommitOutcome::Retry(error) => error,
            };
            if Instant::now() + self.coordinator.retry_backoff() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(self.coordinator.retry_backoff()).await;
        }
    }

    /// The group's committed offsets for these partitions (None: nothing committed), from
    /// the coordinator. Any partitions, assigned to this member or not.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let connection = self.coordinator.connection(deadline).await?;
            let error = match self
                .coordinator
                .fetch_offsets(&connection, partitions)
                .await
            {
                Ok(Ok(committed)) => return Ok(committed),
                Ok(Err(code)) => {
                    let error = Error::broker(
                        format!(
                            "fetching the committed offsets of group '{}'",
                            self.coordinator.group_id()
                        ),
                        code,
                        None,
                    );
                    if is_coordinator_moved(code) {
                        self.coordinator.mark_unknown(&kafka_error_name(code));
                    } else if !matches!(
                        code,
                        codes::COORDINATOR_LOAD_IN_PROGRESS | codes::UNSTABLE_OFFSET_COMMIT
                    ) {
                        return Err(error);
                    }
                    error
                }
                Err(error) if error.is_retriable() => {
                    self.coordinator.mark_unknown(&error.to_string());
                    error
                }
                Err(error) => return Err(error),
            };
            if Instant::now() + self.coordinator.retry_backoff() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(self.coordinator.retry_backoff()).await;
        }
    }

    /// Commit (with auto-commit), call `on_partitions_revoked`, then leave the group unless
    /// the member is static (a static member keeps its partitions until its session times
    /// out or it comes back). Returns the commit's error, if it failed; the member leaves
    /// anyway.
    pub async fn close(mut self) -> Result<()> {
        let committed = self.revoke_all().await;
        self.heartbeat.abort();
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

    /// Give up every partition (eager): commit with auto-commit, tell the listener,
    /// unassign. Returns the commit's result.
    async fn revoke_all(&mut self) -> Result<()> {
        if self.assigned.is_empty() {
            return Ok(());
        }
        let mut committed = Ok(());
        if self.config.enable_auto_commit {
            committed = self.commit_sync().await;
            if let Err(error) = &committed {
                tracing::warn!(
                    group = self.coordinator.group_id(),
                    %error,
                    "committing before giving up partitions failed; their next owner may \
                     consume records again"
                );
            }
        }
        let revoked: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_revoked(&revoked);
        }
        // An empty assignment looks up no topic, so this cannot fail.
        self.consumer.assign(Vec::new()).await?;
        metrics::gauge!(gm::ASSIGNED_PARTITIONS).decrement(revoked.len() as f64);
        self.assigned.clear();
        self.positions.clear();
        self.paused.clear();
        committed
    }

    /// Start an asynchronous commit when auto-commit is due.
    fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        if self.positions.is_empty() || self.member.stable_identity().is_none() {
            return;
        }
        let pending = self.commit_async();
        let group = self.coordinator.group_id().to_string();
        tokio::spawn(async move {
            if let Err(error) = pending.wait().await {
                tracing::warn!(%group, %error, "auto-commit failed");
            }
        });
    }

    /// As the leader, every `metadata_max_age_ms`: refresh metadata, and rejoin if a
    /// subscribed topic's partition count differs from the one the assignment was made
    /// with (Kafka's leader does the same), so that new partitions get consumed.
    async fn maybe_check_metadata(&mut self) {
        let Some(led_with) = &self.led_with else {
            return;
        };
        if Instant::now() < self.next_metadata_check {
            return;
        }
        self.next_metadata_check = Instant::now() + self.config.metadata_max_age();
        let topics: BTreeSet<String> = led_with.keys().cloned().collect();
        let now = self.partition_counts(&topics).await;
        let changed: Vec<&String> = topics
            .iter()
            .filter(|t| led_with.get(*t).copied().flatten() != now.get(*t).copied())
            .collect();
        if !changed.is_empty() {
            self.member.request_rejoin(format!(
                "the partition count of subscribed topics {changed:?} changed"
            ));
        }
    }

    /// Rebalance: revoke, then JoinGroup and SyncGroup until an assignment arrives, a
    /// fatal error, or the rebalance timeout (plus a request timeout) passes.
    async fn join_group(&mut self) -> Result<()> {
        // A failed commit was logged; the rebalance goes on regardless.
        let _ = self.revoke_all().await;
        let reason = {
            let mut state = self.member.lock();
            state.phase = Phase::Joining;
            state.rejoin.take().unwrap_or_else(|| "joining".to_string())
        };
        let give_up =
            Instant::now() + self.config.max_poll_interval() + self.config.request_timeout();
        let partitions = loop {
            let step = match self.member.fatal() {
                Some(error) => Err(error),
                None => self.join_once(&reason, give_up).await,
            };
            match step {
                Ok(JoinStep::Assigned(partitions)) => break partitions,
                Ok(JoinStep::Retry { backoff, error }) => {
                    if Instant::now() >= give_up {
                        self.member.lock().phase = Phase::Unjoined;
                        return Err(error);
                    }
                    tracing::debug!(group = self.coordinator.group_id(), %error, "joining again");
                    if backoff {
                        tokio::time::sleep(self.coordinator.retry_backoff()).await;
                    }
                }
                Err(error) => {
                    self.member.lock().phase = Phase::Unjoined;
                    return Err(error);
                }
            }
        };
        self.take_assignment(partitions).await
    }

    fn join_params(&self, reason: &str) -> Result<JoinParams> {
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            self.subscription
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        );
        let metadata = encode_subscription(&subscription, SUBSCRIPTION_VERSION_MAX)
            .map_err(|e| Error::InvalidConfig(format!("encoding the subscription: {e}")))?;
        let as_i32 = |ms: u64| i32::try_from(ms).unwrap_or(i32::MAX);
        Ok(JoinParams {
            session_timeout_ms: as_i32(self.config.session_timeout_ms),
            rebalance_timeout_ms: as_i32(self.config.max_poll_interval_ms),
            protocols: self
                .config
                .assignors
                .iter()
                .map(|a| (a.name().to_string(), metadata.clone()))
                .collect(),
            reason: reason.to_string(),
        })
    }

    /// One JoinGroup and, if it succeeded, one SyncGroup.
    async fn join_once(&mut self, reason: &str, give_up: Instant) -> Result<JoinStep> {
        let group = self.coordinator.group_id().to_string();
        // Without a coordinator for a whole request timeout, poll reports it (retriable).
        let lookup_deadline = Instant::now() + self.config.request_timeout();
        let connection = self
            .coordinator
            .connection(lookup_deadline.min(give_up))
            .await?;
        let member_id = self.member.lock().member_id.clone();
        let params = self.join_params(reason)?;
        let response = match self
            .coordinator
            .join(&connection, &member_id, &params)
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_retriable() => {
                self.coordinator.mark_unknown(&error.to_string());
                return Ok(JoinStep::Retry {
                    backoff: true,
                    error,
                });
            }
            Err(error) => return Err(error),
        };
        let code = response.error_code;
        let error = Error::broker(format!("joining group '{group}'"), code, None);
        match code {
            codes::NONE => {}
            codes::MEMBER_ID_REQUIRED => {
                // KIP-394: join again with the id the coordinator made up.
                self.member.lock().member_id = response.member_id.to_string();
                return Ok(JoinStep::Retry {
                    backoff: false,
                    error,
                });
            }
            codes::UNKNOWN_MEMBER_ID => {
                self.member.lock().member_id.clear();
                return Ok(JoinStep::Retry {
                    backoff: false,
                    error,
                });
            }
            codes::FENCED_INSTANCE_ID => {
                self.member.set_fatal(error.clone());
                return Err(error);
            }
            code if is_coordinator_moved(code) => {
                self.coordinator.mark_unknown(&kafka_error_name(code));
                return Ok(JoinStep::Retry {
                    backoff: true,
                    error,
                });
            }
            codes::COORDINATOR_LOAD_IN_PROGRESS
            | codes::REBALANCE_IN_PROGRESS
            | codes::ILLEGAL_GENERATION => {
                return Ok(JoinStep::Retry {
                    backoff: true,
                    error,
                });
            }
            _ => return Err(error),
        }

        let identity = MemberIdentityRef {
            member_id: response.member_id.to_string(),
            generation: response.generation_id,
        };
        self.member.lock().member_id = identity.member_id.clone();
        let protocol = response.protocol_name.as_ref().map(|p| p.to_string());
        let leads = *response.leader == *identity.member_id && !response.skip_assignment;
        self.led_with = None;
        let assignments = if leads {
            let (assignments, counts) = self.lead(&response, protocol.as_deref()).await?;
            self.led_with = Some(counts);
            self.next_metadata_check = Instant::now() + self.config.metadata_max_age();
            assignments
        } else {
            Vec::new()
        };
        let sync = match self
            .coordinator
            .sync(&connection, &identity, protocol.as_deref(), assignments)
            .await
        {
            Ok(sync) => sync,
            Err(error) if error.is_retriable() => {
                self.coordinator.mark_unknown(&error.to_string());
                return Ok(JoinStep::Retry {
                    backoff: true,
                    error,
                });
            }
            Err(error) => return Err(error),
        };
        let code = sync.error_code;
        let error = Error::broker(format!("syncing group '{group}'"), code, None);
        match code {
            codes::NONE => {}
            codes::REBALANCE_IN_PROGRESS | codes::ILLEGAL_GENERATION => {
                return Ok(JoinStep::Retry {
                    backoff: false,
                    error,
                });
            }
            codes::UNKNOWN_MEMBER_ID => {
                self.member.lock().member_id.clear();
                return Ok(JoinStep::Retry {
                    backoff: false,
                    error,
                });
            }
            codes::FENCED_INSTANCE_ID => {
                self.member.set_fatal(error.clone());
                return Err(error);
            }
            code if is_coordinator_moved(code) => {
                self.coordinator.mark_unknown(&kafka_error_name(code));
                return Ok(JoinStep::Retry {
                    backoff: true,
                    error,
                });
            }
            _ => return Err(error),
        }
        let partitions = partitions_of(&sync.assignment)?;
        self.member.lock().phase = Phase::Stable {
            generation: identity.generation,
        };
        metrics::counter!(gm::REBALANCES_TOTAL).increment(1);
        tracing::info!(
            %group,
            member = %identity.member_id,
            generation = identity.generation,
            leader = leads,
            protocol = protocol.as_deref().unwrap_or("-"),
            partitions = ?partitions,
            "joined the group"
        );
        Ok(JoinStep::Assigned(partitions))
    }

    /// As the leader: run the chosen assignor over every member's subscription. Returns
    /// the encoded assignments and the partition counts they were made with.
    async fn lead(
        &self,
        response: &JoinGroupResponse,
        protocol: Option<&str>,
    ) -> Result<LeaderAssignment> {
        let name = protocol.unwrap_or_default();
        let assignor = Assignor::from_name(name)
            .filter(|a| self.config.assignors.contains(a))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "the group chose assignor '{name}', which this consumer did not offer"
                ))
            })?;
        let mut version = SUBSCRIPTION_VERSION_MAX;
        let mut members = Vec::new();
        for member in &response.members {
            let subscription = decode_subscription(member.metadata.clone()).map_err(|e| {
                Error::Unsupported(format!(
                    "cannot read the subscription of member {}: {e}",
                    member.member_id
                ))
            })?;
            version = version.min(subscription.version);
            members.push(MemberSubscription {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|i| i.to_string()),
                topics: subscription
                    .message
                    .topics
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            });
        }
        let topics: BTreeSet<String> = members.iter().flat_map(|m| m.topics.clone()).collect();
        let counts = self.partition_counts(&topics).await;
        let assignment = assignor.assign(&members, &counts);
        tracing::debug!(
            ?assignment,
            assignor = name,
            "computed the group's assignment"
        );
        // Every member reads the assignment version its subscription version implies.
        let version = version.clamp(0, ASSIGNMENT_VERSION_MAX);
        let mut encoded = Vec::new();
        for (member_id, topics) in assignment {
            let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        AssignedPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
            let bytes = encode_assignment(&message, version)
                .map_err(|e| Error::Unsupported(format!("encoding an assignment: {e}")))?;
            encoded.push((member_id, bytes));
        }
        let counts_used = topics
            .into_iter()
            .map(|t| {
                let count = counts.get(&t).copied();
                (t, count)
            })
            .collect();
        Ok((encoded, counts_used))
    }

    /// The partition count of each topic metadata knows, after a refresh; unknown topics
    /// are left out (and get no assignment, as in Kafka).
    async fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, i32> {
        let cluster = self.consumer.cluster();
        cluster.add_interest(topics.iter().map(String::as_str));
        if let Err(error) = cluster.refresh().await {
            tracing::debug!(%error, "metadata refresh before assigning failed");
        }
        let mut counts = BTreeMap::new();
        for topic in topics {
            // Known topics answer from the cache; an unknown one gets one lookup.
            match cluster.topic(topic, Duration::ZERO).await {
                Ok(info) if info.partition_count() > 0 => {
                    counts.insert(topic.clone(), info.partition_count());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::info!(%topic, %error, "subscribed topic not assigned: metadata lacks it")
                }
            }
        }
        counts
    }

    /// Take over the partitions SyncGroup handed out: positions from the committed offsets
    /// (the reset policy elsewhere), then tell the listener. On failure the member rejoins
    /// at the next `poll`.
    async fn take_assignment(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let result = self.start_partitions(&partitions).await;
        if let Err(error) = &result {
            // Hold nothing half-started; the next poll rejoins.
            self.positions.clear();
            let _ = self.consumer.assign(Vec::new()).await;
            self.member.request_rejoin(format!(
                "could not take over the assigned partitions: {error}"
            ));
            return result;
        }
        metrics::gauge!(gm::ASSIGNED_PARTITIONS).increment(partitions.len() as f64);
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_assigned(&partitions);
        }
        self.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        result
    }

    async fn start_partitions(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let committed = if partitions.is_empty() {
            BTreeMap::new()
        } else {
            self.committed(partitions).await?
        };
        match self.consumer.assign(partitions.to_vec()).await {
            // The leader saw partitions this member's metadata does not have yet (the topic
            // grew): refresh and try once more.
            Err(Error::UnknownPartition { .. }) => {
                self.consumer.cluster().refresh().await?;
                self.consumer.assign(partitions.to_vec()).await?;
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
        self.assigned = partitions.iter().cloned().collect();
        Ok(())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// The partitions in a SyncGroup assignment (empty bytes: none).
fn partitions_of(assignment: &Bytes) -> Result<Vec<TopicPartition>> {
    if assignment.is_empty() {
        return Ok(Vec::new());
    }
    let decoded = decode_assignment(assignment.clone())
        .map_err(|e| Error::Unsupported(format!("cannot read this member's assignment: {e}")))?;
    let mut partitions: Vec<TopicPartition> = decoded
        .message
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

fn not_in_a_generation(group: &str) -> Error {
    Error::broker(
        format!("committing offsets of group '{group}': the member is not in a stable generation"),
        codes::REBALANCE_IN_PROGRESS,
        None,
    )
}

/// How one OffsetCommit went.
enum CommitOutcome {
    Committed,
    /// Worth retrying (the coordinator moved or is loading, the connection failed).
    Retry(Error),
    Failed(Error),
}

async fn commit_once(
    coordinator: &Coordinator,
    member: &Member,
    identity: &MemberIdentityRef,
    connection: &crate::connection::Connection,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> CommitOutcome {
    let (request, version) = match coordinator.commit_request(connection, identity, offsets) {
        Ok(built) => built,
        Err(error) => return CommitOutcome::Failed(error),
    };
    let sent = Instant::now();
    let result = connection
        .send_versioned(request, version, coordinator.request_timeout())
        .await;
    classify_commit(coordinator, member, identity, result, sent)
}

/// Act on an OffsetCommit answer: metrics, the member's state, what the caller does next.
fn classify_commit(
    coordinator: &Coordinator,
    member: &Member,
    identity: &MemberIdentityRef,
    result: Result<OffsetCommitResponse>,
    sent: Instant,
) -> CommitOutcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!(gm::COMMIT_ERRORS_TOTAL, "error" => crate::metrics::error_label(&error))
                .increment(1);
            if error.is_retriable() {
                coordinator.mark_unknown(&error.to_string());
                return CommitOutcome::Retry(error);
            }
            return CommitOutcome::Failed(error);
        }
    };
    metrics::histogram!(gm::COMMIT_LATENCY_SECONDS).record(sent.elapsed().as_secs_f64());
    let Some(code) = commit_error(&response) else {
        metrics::counter!(gm::COMMITS_TOTAL).increment(1);
        return CommitOutcome::Committed;
    };
    metrics::counter!(gm::COMMIT_ERRORS_TOTAL, "error" => kafka_error_name(code)).increment(1);
    let error = Error::broker(
        format!("committing offsets of group '{}'", coordinator.group_id()),
        code,
        None,
    );
    // Only act on the member if it is still in the generation the commit was made in.
    let current = member.stable_identity().as_ref() == Some(identity);
    match code {
        code if is_coordinator_moved(code) => {
            coordinator.mark_unknown(&kafka_error_name(code));
            CommitOutcome::Retry(error)
        }
        codes::COORDINATOR_LOAD_IN_PROGRESS => CommitOutcome::Retry(error),
        codes::REBALANCE_IN_PROGRESS => {
            if current {
                member.request_rejoin("commit: REBALANCE_IN_PROGRESS");
            }
            CommitOutcome::Failed(error)
        }
        codes::ILLEGAL_GENERATION => {
            if current {
                member.reset_generation("commit: ILLEGAL_GENERATION");
            }
            CommitOutcome::Failed(error)
        }
        codes::UNKNOWN_MEMBER_ID => {
            if current {
                member.reset_member_id("commit: UNKNOWN_MEMBER_ID");
            }
            CommitOutcome::Failed(error)
        }
        codes::FENCED_INSTANCE_ID => {
            member.set_fatal(error.clone());
            CommitOutcome::Failed(error)
        }
        code if is_retriable_code(code) => CommitOutcome::Retry(error),
        _ => CommitOutcome::Failed(error),
    }
}

/// Start an asynchronous commit: on the wire now if the coordinator is known (so commits
/// keep their order), else once it is found. Not retried.
fn start_commit(
    coordinator: Arc<Coordinator>,
    member: Arc<Member>,
    offsets: BTreeMap<TopicPartition, i64>,
) -> PendingCommit {
    let identity = member.stable_identity();
    let started = match (&identity, coordinator.cached()) {
        (Some(identity), Some(connection)) if !offsets.is_empty() => Some(
            coordinator
                .commit_request(&connection, identity, &offsets)
                .and_then(|(request, version)| {
                    connection.start_send_versioned(
                        &request,
                        version,
                        coordinator.request_timeout(),
                    )
                }),
        ),
        _ => None,
    };
    let sent = Instant::now();
    let task = tokio::spawn(async move {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(identity) = identity else {
            return Err(not_in_a_generation(coordinator.group_id()));
        };
        let outcome = match started {
            Some(Ok(pending)) => {
                let result = pending.response().await;
                classify_commit(&coordinator, &member, &identity, result, sent)
            }
            Some(Err(error)) => CommitOutcome::Failed(error),
            None => {
                let deadline = Instant::now() + coordinator.request_timeout();
                match coordinator.connection(deadline).await {
                    Ok(connection) => {
                        commit_once(&coordinator, &member, &identity, &connection, &offsets).await
                    }
                    Err(error) => CommitOutcome::Failed(error),
                }
            }
        };
        match outcome {
            CommitOutcome::Committed => Ok(()),
            CommitOutcome::Retry(error) | CommitOutcome::Failed(error) => Err(error),
        }
    });
    PendingCommit { task }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_empty_assignment_is_no_partitions_and_a_real_one_is_sorted() {
        assert_eq!(partitions_of(&Bytes::new()).unwrap(), Vec::new());
        let message = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str("b")))
                .with_partitions(vec![3, 1]),
            AssignedPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![0]),
        ]);
        for version in 0..=ASSIGNMENT_VERSION_MAX {
            let bytes = encode_assignment(&message, version).unwrap();
            assert_eq!(
                partitions_of(&bytes).unwrap(),
                [("a".into(), 0), ("b".into(), 1), ("b".into(), 3)]
            );
        }
        assert!(partitions_of(&Bytes::from_static(&[0])).is_err());
    }
}
