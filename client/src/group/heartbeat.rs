//! The heartbeat task: one per group consumer, from construction to `close`.
//!
//! Every `heartbeat_interval_ms`, while the member is in a stable generation, it sends
//! Heartbeat to the coordinator and acts on the answer:
//!
//! | answer | effect |
//! |---|---|
//! | REBALANCE_IN_PROGRESS | rejoin at the next `poll` |
//! | ILLEGAL_GENERATION | forget the generation, rejoin |
//! | UNKNOWN_MEMBER_ID | forget the member id and generation, rejoin as a new member |
//! | FENCED_INSTANCE_ID | fatal: another process uses this `group.instance.id` |
//! | NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, a failed connection | find the coordinator again |
//!
//! An answer about a generation the member has already left (it rejoined while the
//! heartbeat was in flight) is ignored. When the application has not called `poll` for
//! `max_poll_interval_ms`, the member leaves the group (LeaveGroup, unless static) so its
//! partitions go to members that make progress, and rejoins at its next `poll`, as
//! Kafka's heartbeat thread does. When no heartbeat has succeeded for a whole session
//! timeout, the coordinator is looked up again.
//!
//! The task never holds the member lock across an await, and stops only when aborted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::group::coordinator::{codes, is_coordinator_moved, Coordinator, MemberIdentityRef};
use crate::group::member::Member;

/// What the heartbeat task needs to know of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeartbeatSettings {
    pub interval: Duration,
    pub session_timeout: Duration,
    pub max_poll_interval: Duration,
    /// A static member (`group.instance.id`) does not send LeaveGroup.
    pub is_static: bool,
}

pub(crate) async fn run(
    coordinator: Arc<Coordinator>,
    member: Arc<Member>,
    settings: HeartbeatSettings,
) {
    let mut last_success = Instant::now();
    loop {
        tokio::time::sleep(settings.interval).await;
        if member.fatal().is_some() {
            return;
        }
        let Some(identity) = member.stable_identity() else {
            // Not in a generation: nothing to keep alive; the session starts at the join.
            last_success = Instant::now();
            continue;
        };
        let since_poll = member.lock().last_poll.elapsed();
        if since_poll > settings.max_poll_interval {
            leave_for_slow_poll(&coordinator, &member, &identity, settings, since_poll).await;
            continue;
        }
        let deadline = Instant::now() + coordinator.request_timeout();
        let answer = match coordinator.connection(deadline).await {
            Ok(connection) => coordinator.heartbeat(&connection, &identity).await,
            Err(error) => Err(error),
        };
        // The member may have rejoined while the heartbeat was in flight.
        if member.stable_identity().as_ref() != Some(&identity) {
            continue;
        }
        match answer {
            Ok(codes::NONE) => last_success = Instant::now(),
            Ok(codes::REBALANCE_IN_PROGRESS) => {
                last_success = Instant::now();
                member
                    .request_rejoin("the group is rebalancing (heartbeat: REBALANCE_IN_PROGRESS)");
            }
            Ok(codes::ILLEGAL_GENERATION) => {
                member.reset_generation("heartbeat: ILLEGAL_GENERATION")
            }
            Ok(codes::UNKNOWN_MEMBER_ID) => member.reset_member_id("heartbeat: UNKNOWN_MEMBER_ID"),
            Ok(codes::FENCED_INSTANCE_ID) => {
                member.set_fatal(Error::broker(
                    format!(
                        "heartbeat of group '{}': another consumer uses this group.instance.id",
                        coordinator.group_id()
                    ),
                    codes::FENCED_INSTANCE_ID,
                    None,
                ));
                return;
            }
            Ok(code) if is_coordinator_moved(code) => {
                coordinator.mark_unknown(&crate::error::kafka_error_name(code));
            }
            Ok(code) => {
                tracing::warn!(
                    group = coordinator.group_id(),
                    error = %crate::error::kafka_error_name(code),
                    "heartbeat failed"
                );
            }
            Err(error) => {
                tracing::debug!(group = coordinator.group_id(), %error, "heartbeat failed");
                if error.is_retriable() {
                    coordinator.mark_unknown(&error.to_string());
                }
            }
        }
        if last_success.elapsed() > settings.session_timeout {
            coordinator.mark_unknown("no heartbeat succeeded for a session timeout");
        }
    }
}

/// `poll` has not been called for `max_poll_interval_ms`: leave, and rejoin at the next
/// `poll`.
async fn leave_for_slow_poll(
    coordinator: &Coordinator,
    member: &Member,
    identity: &MemberIdentityRef,
    settings: HeartbeatSettings,
    since_poll: Duration,
) {
    tracing::warn!(
        group = coordinator.group_id(),
        member = %identity.member_id,
        since_poll_ms = since_poll.as_millis() as u64,
        "poll was not called within max_poll_interval_ms; leaving the group"
    );
    if !settings.is_static {
        let deadline = Instant::now() + coordinator.request_timeout();
        if let Ok(connection) = coordinator.connection(deadline).await {
            let reason = "consumer poll timeout has expired";
            if let Err(error) = coordinator
                .leave(&connection, &identity.member_id, reason)
                .await
            {
                tracing::debug!(%error, "LeaveGroup failed");
            }
        }
    }
    member.reset_member_id("poll was not called within max_poll_interval_ms");
}
