//! Replication: Kafka's leader/follower protocol for one partition, as a sans-IO state
//! machine.
//!
//! This module owns the *decisions* of replication: whether a follower's fetch is accepted,
//! diverging or refused; what the leader knows of each follower; when the ISR should grow or
//! shrink; where the high watermark is; when an acks=all produce is done; what a follower
//! does with a fetch response. It does no IO: no sockets, no storage calls, no clock, no
//! tokio. Every input is a value (offsets, `now_ms`, the controller's answers) or the
//! [`EpochLookup`] trait over a log's epoch history; every output is an [`Effect`] or
//! [`FollowerAction`] for the async shell to carry out, or a refusal saying why nothing
//! changed. That makes every rule below testable deterministically, and a whole cluster
//! simulable in one thread (see the `simulation` tests).
//!
//! # Modules, one noun each
//!
//! - `partition`: [`Partition`], one partition's state on this broker. [`Role`] is
//!   `Leader(LeaderState)` or `Follower(FollowerState)`; the ISR with any AlterPartition in
//!   flight ([`IsrState`], [`PendingIsrChange`]); the leader and partition epochs; the high
//!   watermark.
//! - `progress`: [`FollowerProgress`], what the leader knows of each follower (log end
//!   offset, last caught-up time, broker epoch), and [`ReplicaLiveness`].
//! - `epoch`: [`EpochLookup`], the question replication asks of a log's epoch history, and
//!   [`EpochHistory`], a value implementation of Kafka's rules for it.
//!
//! # The protocol (as Kafka does it)
//!
//! **Fetching is acknowledging.** A follower fetches from its log end offset with its replica
//! id and broker epoch, the leader epoch it follows and the epoch of its last batch
//! ([`Partition::next_fetch`]). The leader ([`Partition::on_follower_fetch`]):
//!
//! 1. refuses a fetch for another leader epoch (FENCED_/UNKNOWN_LEADER_EPOCH), from a
//!    non-leader, from an unassigned replica, or on a stale broker epoch (KIP-903);
//! 2. looks up the end offset of the follower's `last_fetched_epoch` in its own epoch
//!    history; if the leader only knows an older epoch or that epoch ended before the
//!    fetch offset, the logs diverge and it answers [`FollowerFetchDecision::Diverging`]
//!    without recording anything (KIP-320);
//! 3. otherwise records the fetch offset as the follower's log end offset and updates its
//!    last caught-up time (see `progress`), proposes adding the follower to the ISR if it
//!    qualifies, recomputes the high watermark, and reads from the fetch offset.
//!
//! **Truncation.** On `DivergingEpoch {epoch, end_offset}` the follower
//! ([`Partition::on_fetch_response`]) truncates to `min(end_offset, its own end offset for
//! epoch, its log end)`, or, if it does not know `epoch`, to the end of its largest epoch below
//! it, and fetches again (KIP-279). **A replica never truncates to its high watermark**: the
//! high watermark it knows can be behind data the new leader acknowledged (the pre-KIP-101 data
//! loss), and it can be ahead of data an unclean leader never had.
//!
//! **The ISR.** A follower joins when its log end offset is at least the high watermark and
//! at least the start offset of the current leader epoch, and its broker is active on the
//! epoch it fetched with; the epoch-start condition keeps a replica that lacks data the
//! previous leader may have acknowledged from becoming eligible to lead. A follower in the
//! ISR that has not caught up for `replica_lag_ms_max` is proposed out by
//! [`Partition::tick`]. Changes go to the controller as an [`AlterPartition`], a
//! compare-and-set on the partition epoch (KIP-497); at most one is in flight, held as
//! [`PendingIsrChange::PendingExpand`] or [`PendingIsrChange::PendingShrink`] until
//! [`Partition::on_isr_change_result`] or newer metadata replaces it.
//!
//! **The high watermark** is the smallest log end offset over the *maximal* ISR, the leader
//! included: the committed ISR plus a member being added (a member being removed counts
//! until the controller confirms). It advances only while the committed ISR has at least
//! `min(min.insync.replicas, replicas)` members (KIP-966 strict mode), and never goes down
//! on a leader. Effects report every advance ([`Effect::HighWatermarkAdvanced`]) so the shell
//! can complete parked produces and delayed fetches. Followers take the leader's value,
//! clamped to their own log.
//!
//! **Acks.** Before appending an acks=all produce the shell asks
//! [`Partition::check_acks_all_admission`] (NOT_ENOUGH_REPLICAS below min ISR). After the
//! append it parks the request with an [`AcksAllWait`] and asks
//! [`Partition::acks_all_status`] whenever the high watermark advances, leadership ends, or
//! the request times out: done once the high watermark covers it, or
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND if by then the ISR is below min ISR.
//!
//! **Epochs.** Leadership and the ISR change only through the controller's metadata
//! ([`Partition::apply_registration`]). A new leader records the start of its epoch in its
//! log ([`Effect::AssignEpochStart`]) before appending, keeps the high watermark it knew, and
//! starts with every follower's log end unknown. That holds for a re-election too, where Kafka
//! keeps what it learned: a broker whose metadata jumped over an epoch led by another broker
//! cannot know which followers truncated meanwhile, and a stale log end would let the high
//! watermark cover records such a follower no longer has (the simulation test
//! `leader_reelected_after_a_missed_epoch_relearns_follower_logs` loses a committed record
//! with Kafka's choice). The price is one fetch round before the high watermark moves again.
//!
//! # Driving it (the shell's side)
//!
//! All calls for one partition are serialised (one lock or one task). The leader side:
//! fetch handler → `on_follower_fetch` → read and respond, apply effects; produce handler →
//! `check_acks_all_admission` → append stamped with `leader_epoch()` →
//! `on_leader_append(new log end)` → park `AcksAllWait`; a timer → `tick(now_ms)`; the
//! AlterPartition sender → `on_isr_change_result(&sent, answer)` (retrying retriable errors
//! itself); the metadata listener → `apply_registration`. The follower side: the fetcher
//! loops `next_fetch` → send → `on_fetch_response` → apply [`FollowerAction`]s in order. If an
//! action fails the log is poisoned and the partition goes offline; its state is discarded.
//!
//! # Invariants (asserted by [`Partition::assert_invariants`] after every step)
//!
//! - The leader and partition epochs never go back; stale metadata is refused with a reason.
//! - On a leader, the high watermark never decreases and never exceeds the leader's log end.
//!   When it advances to `h`, every member of the maximal ISR has reported a log end `>= h`
//!   (asserted where the advance is made). A follower not heard from since this leadership
//!   began reports [`UNKNOWN_OFFSET`] and holds it still.
//! - The committed ISR is a subset of the replicas and contains the leader; follower progress
//!   exists for exactly the other replicas.
//! - At most one ISR change is in flight; a pending shrink never removes the leader, a
//!   pending expansion adds an assigned replica not already in the ISR.
//! - The start of the current leader epoch is at or below the leader's log end.
//!
//! # Left out on purpose
//!
//! - Eligible leader replicas (the rest of KIP-966), unclean election, and Kafka's
//!   `shouldWaitForReplicaToJoinIsr` refinement (the high watermark also waiting for caught-up
//!   followers outside the ISR): the controller owns elections, and the refinement only
//!   matters with ELR.
//! - Reassignment states (adding/removing replicas) and `LeaderRecoveryState`: the replica
//!   set is taken as the registration gives it.
//! - Transactions (last stable offset), follower log-start/low-watermark tracking for
//!   DeleteRecords, and fetch sessions: the shell's or later layers' business.

mod epoch;
mod partition;
mod progress;
#[cfg(test)]
mod simulation;

pub use epoch::{EpochEndOffset, EpochHistory, EpochLookup, EpochStart};
pub use partition::{
    AcksAllRefusal, AcksAllStatus, AcksAllWait, AlterPartition, AlterPartitionError,
    AlterPartitionResult, Effect, FetchRefusal, FetchResponseRefusal, FetchedPartition,
    FollowerAction, FollowerFetch, FollowerFetchDecision, FollowerState, IsrMember,
    IsrResultIgnored, IsrState, LeaderState, LogOffsets, MetadataRefusal, Partition,
    PartitionConfig, PartitionRegistration, PendingIsrChange, Role, BROKER_EPOCH_UNKNOWN,
    REPLICA_LAG_MS_MAX_DEFAULT,
};
pub use progress::{FollowerProgress, FollowerProgressSet, ReplicaLiveness, UNKNOWN_OFFSET};
