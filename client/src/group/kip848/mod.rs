//! The consumer group protocol of KIP-848 (`group.protocol=consumer`), as Kafka 4.x's
//! consumer speaks it: the coordinator computes the assignment and hands it out through
//! ConsumerGroupHeartbeat; members give up only the partitions that move.
//!
//! Two tasks share the member ([`Member`](crate::group::member::Member)), through
//! [`Exchange`] in its state:
//!
//! - The heartbeat task (`heartbeat`) owns the conversation with the coordinator: the
//!   join (epoch 0, with the subscription, rebalance timeout, assignor and an empty owned
//!   set), then a heartbeat every interval the coordinator asks for, and at once when
//!   `poll` has something to report. It sends the subscription when it changed and the
//!   owned partitions when a reconciliation changed them, takes each new assignment
//!   (topic ids, resolved to names with metadata) into [`Exchange::target`], and acts on
//!   errors: FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID lose the partitions and join again
//!   with epoch 0 (same member id); coordinator moves find it again; FENCED_INSTANCE_ID,
//!   UNRELEASED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED, UNSUPPORTED_ASSIGNOR,
//!   INVALID_REQUEST, GROUP_ID_NOT_FOUND and authorization errors are fatal. When `poll`
//!   has not been called for `max_poll_interval_ms` it leaves (epoch -1; a static member
//!   -2) and joins again at the next `poll`.
//! - `poll` reconciles (`reconcile`): partitions in its assignment but not in the target
//!   are revoked (committed with auto-commit, `on_partitions_revoked`, no longer
//!   fetched); target partitions it lacks are added (from the committed offsets, else the
//!   reset policy; `on_partitions_assigned`); then it reports the new owned set, which the
//!   heartbeat task sends at once: that acknowledgement is what lets the coordinator give
//!   the revoked partitions to other members. Lost partitions are dropped without a
//!   commit (Kafka's `onPartitionsLost`; here `on_partitions_revoked`).
//!
//! Commits carry the member id and the current epoch (OffsetCommit v9); a commit answered
//! STALE_MEMBER_EPOCH is retried with the epoch of the next heartbeat.
//!
//! Invariants: the member id never changes; the coordinator hears an owned set only after
//! `poll` has stopped fetching and committed the partitions left out of it; a partition is
//! fetched only while it is in the last target `poll` took.

mod heartbeat;
mod reconcile;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::group::consumer::TopicPartition;

pub(crate) use heartbeat::{leave, run, HeartbeatSettings};

/// A new member id as Kafka's consumer makes one (`Uuid.randomUuid().toString()`).
pub(crate) fn new_member_id() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    sluice_protocol::uuid_string::kafka_uuid_string(uuid.as_bytes())
}

/// What `poll` and the heartbeat task tell each other, under the member's lock. Versions
/// count changes; `*_sent` is the version the coordinator has acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// The subscribed topics, as `subscribe` last set them.
    pub subscription: BTreeSet<String>,
    /// Or the subscribed pattern (`subscribe_pattern`), resolved by the coordinator.
    pub regex: Option<String>,
    /// A pattern was sent at some point: clearing it needs an empty one on the wire.
    pub regex_sent: bool,
    pub subscription_version: u64,
    pub subscription_sent: u64,
    /// The coordinator's latest assignment, by topic name, not yet taken by `poll`.
    pub target: Option<BTreeSet<TopicPartition>>,
    /// What the member owns, as `poll` last reconciled it.
    pub owned: BTreeSet<TopicPartition>,
    pub owned_version: u64,
    pub owned_sent: u64,
    /// Topic ids of the assigned topics (the owned set is sent by id).
    pub topic_ids: HashMap<String, uuid::Uuid>,
    /// The member lost its partitions (fenced, forgotten, or it left): `poll` drops them
    /// without committing.
    pub lost: bool,
    /// The member left because `poll` was too slow: it joins again after the next `poll`.
    pub left_at: Option<Instant>,
}

impl Exchange {
    /// Fenced, forgotten or left: nothing is owned any more.
    pub(crate) fn lose(&mut self) {
        self.lost = true;
        self.target = None;
        self.owned.clear();
        self.owned_version += 1;
    }

    /// `subscribe` changed the topics (and dropped any pattern).
    pub(crate) fn set_subscription(&mut self, topics: BTreeSet<String>) {
        if topics != self.subscription || self.regex.is_some() {
            self.subscription = topics;
            self.regex = None;
            self.subscription_version += 1;
        }
    }

    /// `subscribe_pattern` set a pattern (dropping any topic names).
    pub(crate) fn set_regex(&mut self, regex: Option<String>) {
        if regex != self.regex {
            self.regex = regex;
            self.subscription.clear();
            self.subscription_version += 1;
        }
    }

    /// Whether the member has subscribed to anything yet (then it may join).
    pub(crate) fn subscribed(&self) -> bool {
        !self.subscription.is_empty() || self.regex.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_22_characters_and_differ() {
        let (a, b) = (new_member_id(), new_member_id());
        assert_eq!(a.len(), 22, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn losing_clears_what_is_owned_and_pending_and_counts_a_change() {
        let mut exchange = Exchange::default();
        exchange.owned.insert(("t".into(), 0));
        exchange.target = Some(BTreeSet::from([("t".into(), 1)]));
        exchange.lose();
        assert!(exchange.lost && exchange.owned.is_empty() && exchange.target.is_none());
        assert_eq!(exchange.owned_version, 1);
        exchange.set_subscription(BTreeSet::from(["t".to_string()]));
        exchange.set_subscription(BTreeSet::from(["t".to_string()]));
        assert_eq!(exchange.subscription_version, 1);
    }
}
