//! One member of a classic group (Kafka's `ClassicGroupMember`) and the protocol vote.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::types::{Protocol, RequestToken};

/// A member: what it joined with, its assignment, and the requests it has parked.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) member_id: String,
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<Protocol>,
    pub(super) assignment: Bytes,
    /// The JoinGroup waiting for the join phase to end.
    pub(super) awaiting_join: Option<RequestToken>,
    /// The SyncGroup waiting for the leader's assignment (and its append).
    pub(super) awaiting_sync: Option<RequestToken>,
    /// Joined during the current rebalance and has not had a JoinGroup response yet.
    pub(super) is_new: bool,
}

impl Member {
    pub(super) fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// The member's metadata for `protocol_name`, if it supports it.
    pub(super) fn metadata(&self, protocol_name: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol_name)
            .map(|p| &p.metadata)
    }

    /// Whether the member's session may be considered alive without a heartbeat: it is
    /// parked in a rebalance. New members are the exception, so that a client that went away
    /// during its first join does not stay forever.
    pub(super) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    /// Whether the member joins with exactly the protocols (names, metadata, order) it has.
    pub(super) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }
}

/// The protocols every member supports, in name order.
pub(super) fn candidate_protocols<'a>(
    members: impl Iterator<Item = &'a Member> + Clone,
) -> Vec<&'a str> {
    let count = members.clone().count();
    let mut supporters: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members {
        for protocol in &member.protocols {
            *supporters.entry(protocol.name.as_str()).or_default() += 1;
        }
    }
    supporters
        .into_iter()
        .filter(|&(_, n)| n == count)
        .map(|(name, _)| name)
        .collect()
}

/// Kafka's `selectProtocol`: each member votes for its most preferred protocol that all
/// members support; the most votes win. Kafka breaks a tie by hash-map order; here the
/// smallest name wins, so the choice is deterministic. `None` only for no members or no
/// common protocol, which the join checks rule out.
pub(super) fn select_protocol<'a>(
    members: impl Iterator<Item = &'a Member> + Clone,
) -> Option<String> {
    let candidates = candidate_protocols(members.clone());
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members {
        if let Some(name) = member.vote(&candidates) {
            *votes.entry(name).or_default() += 1;
        }
    }
    let best = votes.values().copied().max()?;
    votes
        .into_iter()
        .find(|&(_, n)| n == best)
        .map(|(name, _)| name.to_string())
}
