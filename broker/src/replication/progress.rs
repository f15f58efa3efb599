//! What the leader knows of each follower: its log end offset, when it last caught up, and
//! the broker epoch it fetched with (Kafka's `Replica`/`ReplicaState`).
//!
//! The leader learns all of it from fetches: a follower's fetch offset *is* its log end offset
//! (it asks for the next offset it lacks), so every accepted fetch is an acknowledgement.
//! Nothing here is sent or stored; [`super::partition::Partition`] owns one
//! [`FollowerProgress`] per assigned follower while it leads, and drops them all when it stops.
//!
//! # Caught up
//!
//! A follower is *caught up* at time `now` if its log end offset equals the leader's, or if it
//! was last caught up no more than `replica_lag_ms_max` ago. "Last caught up" moves forward
//! on a fetch (Kafka's `Replica.updateFetchStateOrThrow`):
//!
//! - to this fetch's time, if the fetch offset reached the leader's log end offset as it was
//!   when this fetch was read;
//! - else to the *previous* fetch's time, if the fetch offset reached the leader's log end
//!   offset as it was at the previous fetch. A follower that always asks for exactly what the
//!   leader had one round trip ago is keeping up, even though a steady trickle of produces
//!   means it never equals the leader's current end.
//!
//! It never moves backwards.

use std::collections::BTreeMap;

/// A log end offset or log start offset the leader has not learned yet (Kafka's
/// `UnifiedLog.UnknownOffset`). Smaller than every real offset, so an unknown follower holds
/// the high watermark where it is.
pub const UNKNOWN_OFFSET: i64 = -1;

/// What the leader's metadata says about a follower's broker when the follower fetches. The
/// shell looks it up in the local metadata image; it decides whether the follower's fetch is
/// stale (KIP-903) and whether the follower may join the ISR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaLiveness {
    /// Registered with this broker epoch, unfenced, not shutting down: may join the ISR.
    Active { broker_epoch: i64 },
    /// Registered with this broker epoch and unfenced, but in controlled shutdown: may fetch,
    /// may not join the ISR.
    ShuttingDown { broker_epoch: i64 },
    /// Fenced, or unknown to this broker's metadata: may fetch, may not join the ISR.
    Fenced,
}

impl ReplicaLiveness {
    /// The broker epoch of the follower's current registration, if it is unfenced.
    pub fn registered_broker_epoch(self) -> Option<i64> {
        match self {
            ReplicaLiveness::Active { broker_epoch }
            | ReplicaLiveness::ShuttingDown { broker_epoch } => Some(broker_epoch),
            ReplicaLiveness::Fenced => None,
        }
    }
}

/// Whether a follower was in the ISR when the leader (re)started tracking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsrMembership {
    Member,
    NotMember,
}

/// The facts one accepted follower fetch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchFacts {
    pub fetch_offset: i64,
    pub follower_log_start_offset: i64,
    pub broker_epoch: i64,
    /// The leader's log end offset when the fetch was read.
    pub leader_log_end_offset: i64,
    pub fetch_time_ms: i64,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerProgress {
    replica_id: i32,
    log_end_offset: i64,
    log_start_offset: i64,
    /// The leader's log end offset at the follower's previous fetch (max over fetches).
    last_fetch_leader_log_end_offset: i64,
    last_fetch_time_ms: i64,
    last_caught_up_time_ms: i64,
    /// The broker epoch the follower last fetched with; `None` before its first fetch to this
    /// leader.
    broker_epoch: Option<i64>,
}

impl FollowerProgress {
    /// A follower the leader knows nothing about yet (Kafka's `resetReplicaState` with
    /// `isNewLeader`). A follower in the ISR counts as caught up `now`, so it gets a full
    /// `replica_lag_ms_max` to fetch before it can be shrunk out; one outside counts as never
    /// caught up.
    pub(crate) fn unknown(replica_id: i32, now_ms: i64, membership: IsrMembership) -> Self {
        FollowerProgress {
            replica_id,
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_fetch_leader_log_end_offset: UNKNOWN_OFFSET,
            last_fetch_time_ms: 0,
            last_caught_up_time_ms: caught_up_at_reset(now_ms, membership),
            broker_epoch: None,
        }
    }

    /// Record an accepted (non-diverging) fetch.
    pub(crate) fn record_fetch(&mut self, fetch: FetchFacts) {
        self.last_caught_up_time_ms = if fetch.fetch_offset >= fetch.leader_log_end_offset {
            self.last_caught_up_time_ms.max(fetch.fetch_time_ms)
        } else if fetch.fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_time_ms.max(self.last_fetch_time_ms)
        } else {
            self.last_caught_up_time_ms
        };
        self.log_end_offset = fetch.fetch_offset;
        self.log_start_offset = fetch.follower_log_start_offset;
        self.last_fetch_leader_log_end_offset = self
            .last_fetch_leader_log_end_offset
            .max(fetch.leader_log_end_offset);
        self.last_fetch_time_ms = fetch.fetch_time_ms;
        self.broker_epoch = Some(fetch.broker_epoch);
    }

    /// Kafka's `ReplicaState.isCaughtUp`: at the leader's end, or caught up recently enough.
    pub fn is_caught_up(
        &self,
        leader_log_end_offset: i64,
        now_ms: i64,
        replica_lag_ms_max: i64,
    ) -> bool {
        self.log_end_offset == leader_log_end_offset
            || now_ms.saturating_sub(self.last_caught_up_time_ms) <= replica_lag_ms_max
    }

    pub fn replica_id(&self) -> i32 {
        self.replica_id
    }

    /// The follower's log end offset, [`UNKNOWN_OFFSET`] before its first accepted fetch.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn last_caught_up_time_ms(&self) -> i64 {
        self.last_caught_up_time_ms
    }

    pub fn last_fetch_time_ms(&self) -> i64 {
        self.last_fetch_time_ms
    }

    pub fn broker_epoch(&self) -> Option<i64> {
        self.broker_epoch
    }
}

fn caught_up_at_reset(now_ms: i64, membership: IsrMembership) -> i64 {
    match membership {
        IsrMembership::Member => now_ms,
        IsrMembership::NotMember => 0,
    }
}

/// The leader's [`FollowerProgress`] for every assigned follower, keyed by broker id. Its size
/// is bounded by the replica set the controller assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerProgressSet {
    by_replica: BTreeMap<i32, FollowerProgress>,
}

impl FollowerProgressSet {
    /// Match the set to an assignment: followers no longer assigned are dropped, new ones
    /// start unknown. Followers that stay keep what the leader learned of them.
    pub(crate) fn reconcile(
        &mut self,
        followers: impl IntoIterator<Item = (i32, IsrMembership)>,
        now_ms: i64,
    ) {
        let mut kept = BTreeMap::new();
        for (replica_id, membership) in followers {
            let progress = self
                .by_replica
                .remove(&replica_id)
                .unwrap_or_else(|| FollowerProgress::unknown(replica_id, now_ms, membership));
            kept.insert(replica_id, progress);
        }
        self.by_replica = kept;
    }

    pub fn get(&self, replica_id: i32) -> Option<&FollowerProgress> {
        self.by_replica.get(&replica_id)
    }

    pub(crate) fn get_mut(&mut self, replica_id: i32) -> Option<&mut FollowerProgress> {
        self.by_replica.get_mut(&replica_id)
    }

    /// The log end offset the leader knows for `replica_id`, [`UNKNOWN_OFFSET`] if none.
    pub fn log_end_offset(&self, replica_id: i32) -> i64 {
        self.get(replica_id)
            .map_or(UNKNOWN_OFFSET, FollowerProgress::log_end_offset)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FollowerProgress> {
        self.by_replica.values()
    }

    pub fn len(&self) -> usize {
        self.by_replica.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_replica.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 100;

    fn fetch(fetch_offset: i64, leader_log_end_offset: i64, fetch_time_ms: i64) -> FetchFacts {
        FetchFacts {
            fetch_offset,
            follower_log_start_offset: 0,
            broker_epoch: 1,
            leader_log_end_offset,
            fetch_time_ms,
        }
    }

    #[test]
    fn fetch_at_leader_end_counts_as_caught_up_now() {
        let mut progress = FollowerProgress::unknown(2, 0, IsrMembership::NotMember);
        progress.record_fetch(fetch(10, 10, 500));
        assert_eq!(progress.last_caught_up_time_ms(), 500);
    }

    #[test]
    fn fetch_reaching_previous_leader_end_counts_as_caught_up_at_previous_fetch() {
        let mut progress = FollowerProgress::unknown(2, 0, IsrMembership::NotMember);
        progress.record_fetch(fetch(5, 10, 500));
        assert_eq!(
            progress.last_caught_up_time_ms(),
            0,
            "5 < 10: not caught up"
        );
        // The leader moved on to 12, but the follower now has everything the leader had at
        // the previous fetch.
        progress.record_fetch(fetch(10, 12, 600));
        assert_eq!(progress.last_caught_up_time_ms(), 500);
        assert!(progress.is_caught_up(12, 600, LAG_MS));
        assert!(!progress.is_caught_up(12, 601 + LAG_MS, LAG_MS));
    }

    #[test]
    fn falling_behind_does_not_move_caught_up_time() {
        let mut progress = FollowerProgress::unknown(2, 0, IsrMembership::Member);
        progress.record_fetch(fetch(10, 10, 100));
        progress.record_fetch(fetch(11, 20, 200));
        progress.record_fetch(fetch(12, 30, 300));
        assert_eq!(progress.last_caught_up_time_ms(), 100);
        assert!(!progress.is_caught_up(30, 300 + LAG_MS, LAG_MS));
    }

    #[test]
    fn isr_member_gets_a_full_lag_window_after_reset() {
        let member = FollowerProgress::unknown(2, 1_000, IsrMembership::Member);
        let outsider = FollowerProgress::unknown(3, 1_000, IsrMembership::NotMember);
        assert!(member.is_caught_up(50, 1_000 + LAG_MS, LAG_MS));
        assert!(!outsider.is_caught_up(50, 1_000, LAG_MS));
    }

    #[test]
    fn reconcile_keeps_known_followers_and_forgets_removed_ones() {
        let mut set = FollowerProgressSet::default();
        set.reconcile([(2, IsrMembership::Member), (3, IsrMembership::Member)], 0);
        set.get_mut(2).unwrap().record_fetch(fetch(7, 7, 10));
        set.reconcile(
            [(2, IsrMembership::Member), (4, IsrMembership::NotMember)],
            20,
        );
        assert_eq!(set.log_end_offset(2), 7);
        assert_eq!(set.log_end_offset(4), UNKNOWN_OFFSET);
        assert!(set.get(3).is_none());
        assert_eq!(set.len(), 2);
    }
}
