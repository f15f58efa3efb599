//! The member's state, shared by the application's task (`poll`, commits) and the
//! heartbeat task: its member id and generation, whether it is in a stable generation,
//! whether it must rejoin, and a fatal error.
//!
//! Transitions:
//! - `Unjoined` -> `Joining` when `poll` starts a (re)join; -> `Stable { generation }` when
//!   SyncGroup hands it its assignment.
//! - Heartbeat or commit answers: REBALANCE_IN_PROGRESS asks for a rejoin;
//!   ILLEGAL_GENERATION forgets the generation, UNKNOWN_MEMBER_ID the member id too (both
//!   then rejoin); FENCED_INSTANCE_ID is fatal: every later call fails with it.
//!
//! With the consumer protocol (KIP-848) the generation is the member epoch: `Stable {
//! generation }` holds the epoch of the last heartbeat answer, `Unjoined` means epoch 0
//! (join next), and the member id is the client's own, kept for the member's life; the
//! resets then mark the member's partitions lost instead (see `kip848`), and
//! [`MemberState::kip848`] is what `poll` and the heartbeat task tell each other.
//!
//! Invariant: a commit or heartbeat is only sent with the generation of a `Stable` member,
//! so nothing is ever committed in a generation the member does not belong to.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::error::Error;
use crate::group::coordinator::MemberIdentityRef;
use crate::group::kip848::Exchange;

/// Where the member is in the group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Unjoined,
    Joining,
    Stable { generation: i32 },
}

#[derive(Debug)]
pub(crate) struct MemberState {
    /// Empty until the coordinator assigns one (MEMBER_ID_REQUIRED).
    pub member_id: String,
    pub phase: Phase,
    /// Why the member must rejoin, if it must.
    pub rejoin: Option<String>,
    pub fatal: Option<Error>,
    /// When the application last called `poll` (for `max_poll_interval_ms`).
    pub last_poll: Instant,
    /// Consumer protocol only: what `poll` and the heartbeat task tell each other.
    pub kip848: Exchange,
}

/// [`MemberState`] behind a lock; no lock is held across an await.
#[derive(Debug)]
pub(crate) struct Member {
    state: Mutex<MemberState>,
    /// Consumer protocol: the member id is the client's, and a lost member rejoins with
    /// it (epoch 0) rather than as a new member.
    consumer_protocol: bool,
    /// Wakes the consumer protocol's heartbeat task to send now (a join, an acknowledged
    /// reconciliation, a new subscription).
    pub(crate) wake: Notify,
}

impl Member {
    /// A classic member: no id until the coordinator gives one.
    pub(crate) fn new() -> Member {
        Member::with_id(String::new(), false)
    }

    /// A consumer-protocol member with the id it made up (KIP-1082).
    pub(crate) fn consumer_protocol(member_id: String) -> Member {
        Member::with_id(member_id, true)
    }

    fn with_id(member_id: String, consumer_protocol: bool) -> Member {
        Member {
            state: Mutex::new(MemberState {
                member_id,
                phase: Phase::Unjoined,
                rejoin: None,
                fatal: None,
                last_poll: Instant::now(),
                kip848: Exchange::default(),
            }),
            consumer_protocol,
            wake: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, MemberState> {
        // No update spans a panic point, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The member id and generation, if the member is in a stable generation.
    pub(crate) fn stable_identity(&self) -> Option<MemberIdentityRef> {
        let state = self.lock();
        match state.phase {
            Phase::Stable { generation } => Some(MemberIdentityRef {
                member_id: state.member_id.clone(),
                generation,
            }),
            _ => None,
        }
    }

    pub(crate) fn request_rejoin(&self, reason: impl Into<String>) {
        let mut state = self.lock();
        if state.rejoin.is_none() {
            let reason = reason.into();
            tracing::info!(member = %state.member_id, %reason, "rejoining the group");
            state.rejoin = Some(reason);
        }
    }

    /// ILLEGAL_GENERATION: the generation is over; keep the member id and rejoin.
    pub(crate) fn reset_generation(&self, reason: &str) {
        if self.consumer_protocol {
            return self.lose_partitions(reason);
        }
        {
            let mut state = self.lock();
            if state.phase != Phase::Joining {
                state.phase = Phase::Unjoined;
            }
        }
        self.request_rejoin(reason);
    }

    /// UNKNOWN_MEMBER_ID: the coordinator forgot this member; join as a new one.
    pub(crate) fn reset_member_id(&self, reason: &str) {
        if self.consumer_protocol {
            return self.lose_partitions(reason);
        }
        {
            let mut state = self.lock();
            state.member_id.clear();
            if state.phase != Phase::Joining {
                state.phase = Phase::Unjoined;
            }
        }
        self.request_rejoin(reason);
    }

    /// Consumer protocol: the coordinator fenced or forgot this member (or it left): its
    /// partitions are lost (`poll` drops them without committing) and it joins again
    /// with epoch 0 and the same id.
    pub(crate) fn lose_partitions(&self, reason: &str) {
        {
            let mut state = self.lock();
            if state.phase == Phase::Unjoined && state.kip848.lost {
                return;
            }
            tracing::info!(member = %state.member_id, %reason, "partitions lost; joining again");
            state.phase = Phase::Unjoined;
            state.kip848.lose();
        }
        self.wake.notify_one();
    }

    pub(crate) fn set_fatal(&self, error: Error) {
        let mut state = self.lock();
        tracing::error!(member = %state.member_id, %error, "group member failed for good");
        state.fatal.get_or_insert(error);
    }

    pub(crate) fn fatal(&self) -> Option<Error> {
        self.lock().fatal.clone()
    }

    pub(crate) fn note_poll(&self) {
        self.lock().last_poll = Instant::now();
    }

    /// Whether `poll` must (re)join before fetching.
    pub(crate) fn needs_join(&self) -> bool {
        let state = self.lock();
        state.rejoin.is_some() || !matches!(state.phase, Phase::Stable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_member_id_forgets_the_id_and_illegal_generation_only_the_generation() {
        let member = Member::new();
        {
            let mut state = member.lock();
            state.member_id = "m-1".into();
            state.phase = Phase::Stable { generation: 4 };
        }
        assert!(!member.needs_join());
        member.reset_generation("ILLEGAL_GENERATION");
        assert!(member.needs_join());
        assert_eq!(member.stable_identity(), None);
        assert_eq!(member.lock().member_id, "m-1");
        member.reset_member_id("UNKNOWN_MEMBER_ID");
        assert_eq!(member.lock().member_id, "");
        // The first reason is kept.
        assert_eq!(member.lock().rejoin.as_deref(), Some("ILLEGAL_GENERATION"));
    }
}
