//! Rebalancing a [`GroupConsumer`] (step 1 of [`GroupConsumer::poll`]). Eagerly: revoke
//! every partition (commit with auto-commit, `on_partitions_revoked`, unassign), then
//! JoinGroup and SyncGroup until an assignment arrives (as the leader, run the assignor the
//! coordinator chose over every member's subscription), then take the assignment over:
//! positions from the committed offsets or the reset policy, `on_partitions_assigned`.
//! Cooperatively (every offered assignor cooperative: `cooperative-sticky`): keep the
//! partitions through the join (sending them, and their generation, in the subscription),
//! then revoke only those the new assignment lacks, add the new ones, and rejoin at once if
//! anything was revoked (KIP-429's second round).
//!
//! # Metadata changes
//! The leader refreshes metadata every `metadata_max_age_ms` and rejoins when a subscribed
//! topic's partition count differs from the one its assignment was made with (a topic
//! gained partitions, or appeared), as Kafka's leader does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
    AssignedPartitions, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    OwnedPartitions as SubscriptionTopicPartition, ASSIGNMENT_VERSION_MAX,
    SUBSCRIPTION_VERSION_MAX,
};

use crate::error::{kafka_error_name, Error, Result};
use crate::group::assignor::{Assignor, MemberSubscription};
use crate::group::consumer::{GroupConsumer, TopicPartition};
use crate::group::coordinator::{codes, is_coordinator_moved, JoinParams, MemberIdentityRef};
use crate::group::member::Phase;
use crate::group::metrics as gm;

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
impl GroupConsumer {
    /// Give up every partition (eager): commit with auto-commit, tell the listener,
    /// unassign. Returns the commit's result.
    pub(super) async fn revoke_all(&mut self) -> Result<()> {
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
    /// As the leader, every `metadata_max_age_ms`: refresh metadata, and rejoin if a
    /// subscribed topic's partition count differs from the one the assignment was made
    /// with (Kafka's leader does the same), so that new partitions get consumed.
    pub(super) async fn maybe_check_metadata(&mut self) {
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
    /// Whether rebalances are cooperative (KIP-429): every offered assignor is, as Kafka's
    /// consumer decides it.
    pub(super) fn cooperative(&self) -> bool {
        self.config.assignors.iter().all(|a| a.is_cooperative())
    }

    /// Rebalance: revoke (eager: everything; cooperative: nothing, unless the member lost
    /// its generation, when its partitions are dropped without a commit), then JoinGroup and
    /// SyncGroup until an assignment arrives, a fatal error, or the rebalance timeout (plus a
    /// request timeout) passes.
    pub(super) async fn join_group(&mut self) -> Result<()> {
        let owned_in = match self.member.lock().phase {
            Phase::Stable { generation } => Some(generation),
            _ => None,
        };
        if !self.cooperative() {
            // A failed commit was logged; the rebalance goes on regardless.
            let _ = self.revoke_all().await;
        } else if owned_in.is_none() {
            self.drop_lost().await;
        }
        self.owned_generation = owned_in.unwrap_or(-1);
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
        if self.cooperative() {
            self.take_incrementally(partitions).await
        } else {
            self.take_assignment(partitions).await
        }
    }

    /// Cooperative: give up what the assignment no longer has (committing it), start what
    /// is new, keep the rest fetching; rejoin at once if anything was given up, so that the
    /// next round hands it to its new owner.
    async fn take_incrementally(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let new: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        let revoked: Vec<TopicPartition> = self.assigned.difference(&new).cloned().collect();
        let added: Vec<TopicPartition> = new.difference(&self.assigned).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked).await?;
        }
        let started = if added.is_empty() {
            Ok(())
        } else {
            self.add(&added).await
        };
        if let Err(error) = started {
            self.member.request_rejoin(format!(
                "could not take over the assigned partitions: {error}"
            ));
            return Err(error);
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_assigned(&added);
        }
        if !revoked.is_empty() {
            self.member
                .request_rejoin("cooperative rebalance: partitions were given up");
        }
        self.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        Ok(())
    }

    fn join_params(&self, reason: &str, generation: i32) -> Result<JoinParams> {
        let mut owned: Vec<SubscriptionTopicPartition> = Vec::new();
        for (topic, partition) in &self.assigned {
            match owned.last_mut() {
                Some(last) if *last.topic.0 == **topic => last.partitions.push(*partition),
                _ => owned.push(
                    SubscriptionTopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![*partition]),
                ),
            }
        }
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(
                self.subscription
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_owned_partitions(owned)
            .with_generation_id(generation);
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
        let params = self.join_params(reason, self.owned_generation)?;
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
                owned_partitions: subscription
                    .message
                    .owned_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
                    .collect(),
                generation: subscription.message.generation_id,
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
        // Everything was revoked before the join: every partition is new.
        let result = if partitions.is_empty() {
            Ok(())
        } else {
            self.add(&partitions).await
        };
        if let Err(error) = &result {
            // Hold nothing half-started; the next poll rejoins.
            self.positions.clear();
            let _ = self.consumer.assign(Vec::new()).await;
            self.member.request_rejoin(format!(
                "could not take over the assigned partitions: {error}"
            ));
            return result;
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.on_partitions_assigned(&partitions);
        }
        self.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        result
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
#[cfg(test)]
mod tests {
    use super::*;

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
