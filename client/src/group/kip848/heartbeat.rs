//! The consumer protocol's heartbeat task (see the module above for the protocol): one per
//! group consumer, from construction until `close` aborts it. It never holds the member's
//! lock across an await.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{kafka_error_name, Error};
use crate::group::coordinator::{codes, is_coordinator_moved, Coordinator};
use crate::group::member::{Member, Phase};

/// Kafka's member epochs with a meaning of their own.
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;
/// The interval until the coordinator names one (its answer carries it).
const FIRST_INTERVAL: Duration = Duration::from_secs(3);

/// Errors after which the member cannot go on (Kafka's consumer fails for good on them).
const FATAL: &[i16] = &[
    30,  // GROUP_AUTHORIZATION_FAILED
    35,  // UNSUPPORTED_VERSION
    42,  // INVALID_REQUEST
    69,  // GROUP_ID_NOT_FOUND (a classic group of that id exists)
    81,  // GROUP_MAX_SIZE_REACHED
    82,  // FENCED_INSTANCE_ID
    111, // UNRELEASED_INSTANCE_ID
    112, // UNSUPPORTED_ASSIGNOR
];

/// What the task needs to know of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct HeartbeatSettings {
    pub group_instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub max_poll_interval: Duration,
}

/// What one heartbeat carried, to record once it is acknowledged.
struct Sent {
    epoch: i32,
    subscription_version: u64,
    owned_version: u64,
}

pub(crate) async fn run(
    coordinator: Arc<Coordinator>,
    member: Arc<Member>,
    cluster: Arc<Cluster>,
    settings: HeartbeatSettings,
) {
    let mut interval = FIRST_INTERVAL;
    let mut now = false;
    // An assignment whose topic ids metadata did not know yet.
    let mut unresolved: Option<Vec<(uuid::Uuid, Vec<i32>)>> = None;
    loop {
        if !now {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = member.wake.notified() => {}
            }
        }
        now = false;
        if member.fatal().is_some() {
            return;
        }
        if !ready_to_send(&coordinator, &member, &settings).await {
            continue;
        }
        let (request, sent) = build(&coordinator, &member, &settings);
        let deadline = Instant::now() + coordinator.request_timeout();
        let answer = match coordinator.connection(deadline).await {
            Ok(connection) => {
                let timeout = coordinator.request_timeout();
                coordinator.send(&connection, |_| request, timeout).await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) if response.error_code == codes::NONE => {
                interval = accept(&member, &response, &sent).unwrap_or(interval);
                if let Some(assignment) = &response.assignment {
                    unresolved = Some(
                        assignment
                            .topic_partitions
                            .iter()
                            .map(|t| (t.topic_id, t.partitions.clone()))
                            .collect(),
                    );
                }
            }
            Ok(response) => {
                now = on_error(&coordinator, &member, &response);
                if !now {
                    interval =
                        interval.min(coordinator.retry_backoff().max(Duration::from_millis(1)));
                }
                continue;
            }
            Err(error) => {
                tracing::debug!(group = coordinator.group_id(), %error, "heartbeat failed");
                if error.is_retriable() {
                    coordinator.mark_unknown(&error.to_string());
                }
                interval = coordinator.retry_backoff();
                continue;
            }
        }
        if let Some(assignment) = unresolved.take() {
            unresolved = hand_over(&member, &cluster, assignment).await;
        }
    }
}

/// Whether to heartbeat now: a subscription exists (the first `poll` set it), and `poll`
/// has been called since the member left for a slow poll. Leaves if `poll` is overdue.
async fn ready_to_send(
    coordinator: &Coordinator,
    member: &Member,
    settings: &HeartbeatSettings,
) -> bool {
    let (subscribed, in_group, since_poll, waiting) = {
        let mut state = member.lock();
        let waiting = match state.kip848.left_at {
            Some(at) if state.last_poll <= at => true,
            Some(_) => {
                state.kip848.left_at = None;
                false
            }
            None => false,
        };
        (
            state.kip848.subscribed(),
            matches!(state.phase, Phase::Stable { .. }),
            state.last_poll.elapsed(),
            waiting,
        )
    };
    if !subscribed || waiting {
        return false;
    }
    if in_group && since_poll > settings.max_poll_interval {
        tracing::warn!(
            group = coordinator.group_id(),
            since_poll_ms = since_poll.as_millis() as u64,
            "poll was not called within max_poll_interval_ms; leaving the group"
        );
        leave(coordinator, member, settings.group_instance_id.as_deref()).await;
        member.lose_partitions("poll was not called within max_poll_interval_ms");
        member.lock().kip848.left_at = Some(Instant::now());
        return false;
    }
    true
}

/// The next heartbeat: a full one when joining (epoch 0), else only what changed.
fn build(
    coordinator: &Coordinator,
    member: &Member,
    settings: &HeartbeatSettings,
) -> (ConsumerGroupHeartbeatRequest, Sent) {
    let mut state = member.lock();
    let epoch = match state.phase {
        Phase::Stable { generation } => generation,
        _ => 0,
    };
    let exchange = &state.kip848;
    let joining = epoch == 0;
    let mut regex_sent = false;
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(
            coordinator.group_id().to_string(),
        )))
        .with_member_id(StrBytes::from_string(state.member_id.clone()))
        .with_member_epoch(epoch)
        .with_instance_id(
            settings
                .group_instance_id
                .clone()
                .map(StrBytes::from_string),
        );
    if joining || exchange.subscription_sent != exchange.subscription_version {
        request.subscribed_topic_names = Some(
            exchange
                .subscription
                .iter()
                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                .collect(),
        );
        // v1's field: the pattern, or "" to drop one sent before.
        if exchange.regex.is_some() || exchange.regex_sent {
            let regex = exchange.regex.clone().unwrap_or_default();
            request.subscribed_topic_regex = Some(StrBytes::from_string(regex));
            regex_sent = true;
        }
    }
    if joining {
        request.rebalance_timeout_ms = settings.rebalance_timeout_ms;
        request.server_assignor = settings.server_assignor.clone().map(StrBytes::from_string);
        request.topic_partitions = Some(Vec::new());
    } else if exchange.owned_sent != exchange.owned_version {
        request.topic_partitions = Some(owned_by_id(&exchange.owned, &exchange.topic_ids));
    }
    let sent = Sent {
        epoch,
        subscription_version: exchange.subscription_version,
        owned_version: if joining {
            exchange.owned_sent
        } else {
            exchange.owned_version
        },
    };
    state.kip848.regex_sent |= regex_sent;
    (request, sent)
}

fn owned_by_id(
    owned: &BTreeSet<(String, i32)>,
    ids: &std::collections::HashMap<String, uuid::Uuid>,
) -> Vec<TopicPartitions> {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in owned {
        let Some(id) = ids.get(topic) else { continue };
        match topics.last_mut() {
            Some(last) if last.topic_id == *id => last.partitions.push(*partition),
            _ => topics.push(
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    topics
}

/// A successful answer: the new epoch, what the coordinator now knows. Returns the
/// heartbeat interval it asks for. An answer to a heartbeat sent before the member was
/// lost (epoch changed under it) is ignored.
fn accept(
    member: &Member,
    response: &ConsumerGroupHeartbeatResponse,
    sent: &Sent,
) -> Option<Duration> {
    let mut state = member.lock();
    let epoch_now = match state.phase {
        Phase::Stable { generation } => generation,
        _ => 0,
    };
    if epoch_now != sent.epoch {
        return None;
    }
    if let Some(id) = response.member_id.as_ref().filter(|id| !id.is_empty()) {
        state.member_id = id.to_string();
    }
    if sent.epoch == 0 || response.member_epoch != epoch_now {
        tracing::info!(
            member = %state.member_id,
            epoch = response.member_epoch,
            "consumer group member epoch"
        );
    }
    state.phase = Phase::Stable {
        generation: response.member_epoch,
    };
    let exchange = &mut state.kip848;
    exchange.subscription_sent = exchange.subscription_sent.max(sent.subscription_version);
    exchange.owned_sent = exchange.owned_sent.max(sent.owned_version);
    u64::try_from(response.heartbeat_interval_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// An error answer. Returns whether to send again at once (a rejoin).
fn on_error(
    coordinator: &Coordinator,
    member: &Member,
    response: &ConsumerGroupHeartbeatResponse,
) -> bool {
    let code = response.error_code;
    let message = response
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    match code {
        codes::FENCED_MEMBER_EPOCH | codes::UNKNOWN_MEMBER_ID => {
            member.lose_partitions(&format!("heartbeat: {}", kafka_error_name(code)));
            true
        }
        code if is_coordinator_moved(code) => {
            coordinator.mark_unknown(&kafka_error_name(code));
            false
        }
        code if FATAL.contains(&code) => {
            member.set_fatal(Error::broker(
                format!(
                    "heartbeat of group '{}' (consumer protocol): {message}",
                    coordinator.group_id()
                ),
                code,
                None,
            ));
            false
        }
        _ => {
            tracing::warn!(
                group = coordinator.group_id(),
                error = %kafka_error_name(code),
                %message,
                "heartbeat failed"
            );
            false
        }
    }
}

/// Resolve an assignment's topic ids to names (refreshing metadata once if some are
/// unknown) and hand it to `poll`. Returns it back if some ids are still unknown.
async fn hand_over(
    member: &Member,
    cluster: &Cluster,
    assignment: Vec<(uuid::Uuid, Vec<i32>)>,
) -> Option<Vec<(uuid::Uuid, Vec<i32>)>> {
    let known = |metadata: &crate::cluster::Metadata| {
        assignment
            .iter()
            .all(|(id, _)| metadata.topic_name(id).is_some())
    };
    let mut metadata = cluster.metadata();
    if !known(&metadata) {
        match cluster.refresh_all_topics().await {
            Ok(fresh) => metadata = fresh,
            Err(error) => tracing::debug!(%error, "metadata refresh for an assignment failed"),
        }
        if !known(&metadata) {
            tracing::info!("assigned topic ids unknown to metadata yet; waiting");
            return Some(assignment);
        }
    }
    let mut target = BTreeSet::new();
    let mut state = member.lock();
    for (id, partitions) in &assignment {
        let Some(name) = metadata.topic_name(id) else {
            continue;
        };
        state.kip848.topic_ids.insert(name.to_string(), *id);
        target.extend(partitions.iter().map(|&p| (name.to_string(), p)));
    }
    tracing::debug!(partitions = ?target, "new assignment from the coordinator");
    state.kip848.target = Some(target);
    None
}

/// Leave the group: a heartbeat with epoch -1 (-2 for a static member, which keeps its
/// partitions until it comes back or its session ends). Errors are logged.
pub(crate) async fn leave(
    coordinator: &Coordinator,
    member: &Member,
    group_instance_id: Option<&str>,
) {
    let member_id = {
        let state = member.lock();
        if !matches!(state.phase, Phase::Stable { .. }) {
            return;
        }
        state.member_id.clone()
    };
    let epoch = match group_instance_id {
        Some(_) => STATIC_LEAVE_EPOCH,
        None => LEAVE_EPOCH,
    };
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(
            coordinator.group_id().to_string(),
        )))
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_instance_id(group_instance_id.map(|i| StrBytes::from_string(i.to_string())))
        .with_member_epoch(epoch);
    let deadline = Instant::now() + coordinator.request_timeout();
    let result = match coordinator.connection(deadline).await {
        Ok(connection) => {
            coordinator
                .send(&connection, |_| request, coordinator.request_timeout())
                .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(response) if response.error_code == codes::NONE => {
            tracing::info!(group = coordinator.group_id(), member = %member_id, "left the group")
        }
        Ok(response) => tracing::warn!(
            group = coordinator.group_id(),
            error = %kafka_error_name(response.error_code),
            "leaving the group failed"
        ),
        Err(error) => {
            tracing::warn!(group = coordinator.group_id(), %error, "leaving the group failed")
        }
    }
}
