//! One partition's replication state on this broker: its role (leader or follower), the
//! epochs, the ISR with any change in flight, and the high watermark (Kafka's `Partition`).
//!
//! [`Partition`] is a synchronous state machine: every method takes the facts it needs (log
//! offsets, an [`EpochLookup`], the time) and returns what the shell must do ([`Effect`],
//! [`FollowerAction`]) or a refusal saying why nothing changed. The protocol, the invariants
//! and what is left out are described in the [module documentation](super).

use std::collections::BTreeSet;

use sluice_protocol::error::ErrorCode;

use super::epoch::{EpochEndOffset, EpochLookup};
use super::progress::{FetchFacts, FollowerProgressSet, IsrMembership, ReplicaLiveness};

/// Kafka's default `replica.lag.time.max.ms`.
pub const REPLICA_LAG_MS_MAX_DEFAULT: i64 = 30_000;

/// The broker epoch of an ISR member this leader has not heard from (Kafka's -1).
pub const BROKER_EPOCH_UNKNOWN: i64 = -1;

/// What this broker knows about itself and the partition's replication settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    pub local_broker_id: i32,
    /// The broker epoch of this broker's current registration: sent in its fetches and in
    /// its own ISR entry of an AlterPartition (KIP-903).
    pub local_broker_epoch: i64,
    /// A follower in the ISR that has not caught up for longer than this is proposed out.
    pub replica_lag_ms_max: i64,
    /// Kafka's `min.insync.replicas`. The high watermark advances, and acks=all produces
    /// are admitted, only while the ISR has at least `min(min_insync_replicas, replicas)`
    /// members (see [`Partition::effective_min_isr`]).
    pub min_insync_replicas: usize,
}

/// The controller's record of the partition, as the metadata log delivers it (KRaft's
/// `PartitionRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// `None` while no replica can lead (Kafka's leader -1).
    pub leader_id: Option<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The assigned replicas, in preference order.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Where the local log starts and ends, read from storage just before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl LogOffsets {
    fn assert_valid(self) {
        assert!(
            0 <= self.log_start_offset && self.log_start_offset <= self.log_end_offset,
            "log offsets out of order: start {} end {}",
            self.log_start_offset,
            self.log_end_offset
        );
    }
}

/// This broker's role for the partition. The state of each role lives only in its variant,
/// so follower progress cannot outlive leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader(LeaderState),
    Follower(FollowerState),
}

/// What a leader tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    isr: IsrState,
    followers: FollowerProgressSet,
    /// The leader's own log end offset, as last reported (a monotone merge of reports).
    log_end_offset: i64,
    /// Where the current leader epoch began: the log end offset when this broker took it.
    epoch_start_offset: i64,
    /// The leader epoch at which this uninterrupted leadership began. An acks=all produce
    /// appended under an earlier epoch may have been truncated away since.
    leadership_start_epoch: i32,
}

impl LeaderState {
    pub fn isr(&self) -> &IsrState {
        &self.isr
    }

    pub fn followers(&self) -> &FollowerProgressSet {
        &self.followers
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    fn observe_log_end_offset(&mut self, log_end_offset: i64) {
        // The shell may report appends out of order; the log itself never shrinks while
        // this broker leads, so the largest report is the truth.
        self.log_end_offset = self.log_end_offset.max(log_end_offset);
    }
}

/// What a follower tracks: whom it fetches from. (Its high watermark lives in [`Partition`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    leader_id: Option<i32>,
}

impl FollowerState {
    pub fn leader_id(&self) -> Option<i32> {
        self.leader_id
    }
}

/// The ISR as the controller last confirmed it, plus the change in flight, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    committed: BTreeSet<i32>,
    pending: Option<PendingIsrChange>,
}

impl IsrState {
    fn committed(isr: BTreeSet<i32>) -> IsrState {
        IsrState {
            committed: isr,
            pending: None,
        }
    }

    /// The ISR the controller confirmed: what min-ISR checks count.
    pub fn committed_isr(&self) -> &BTreeSet<i32> {
        &self.committed
    }

    pub fn pending(&self) -> Option<&PendingIsrChange> {
        self.pending.as_ref()
    }

    pub fn is_inflight(&self) -> bool {
        self.pending.is_some()
    }

    /// The largest ISR that may be in force at the controller: the committed ISR plus a
    /// member being added. A member being removed still counts until the removal is
    /// confirmed. The high watermark waits for all of them.
    pub fn maximal(&self) -> impl Iterator<Item = i32> + '_ {
        let added = match &self.pending {
            Some(PendingIsrChange::PendingExpand { added, .. }) => Some(*added),
            _ => None,
        };
        self.committed.iter().copied().chain(added)
    }

    pub fn maximal_len(&self) -> usize {
        self.maximal().count()
    }
}

/// An AlterPartition this leader sent and has no answer for. While one is in flight no other
/// ISR change is proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingIsrChange {
    /// Removing lagging followers. They still count for the high watermark until confirmed:
    /// if the controller refused, counting them out early could have acknowledged a write
    /// that an ISR member lacks.
    PendingShrink {
        removed: BTreeSet<i32>,
        sent: AlterPartition,
    },
    /// Adding a follower that caught up. It counts for the high watermark at once: if the
    /// controller accepts, the new member may lead next and must hold everything below the
    /// high watermark; if it refuses, waiting for it did no harm.
    PendingExpand { added: i32, sent: AlterPartition },
}

impl PendingIsrChange {
    pub fn sent(&self) -> &AlterPartition {
        match self {
            PendingIsrChange::PendingShrink { sent, .. }
            | PendingIsrChange::PendingExpand { sent, .. } => sent,
        }
    }
}

/// An ISR change proposed to the controller: a compare-and-set on `partition_epoch` (KIP-497).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on; the controller refuses it if its own
    /// differs (INVALID_UPDATE_VERSION).
    pub partition_epoch: i32,
    /// The proposed ISR, sorted by broker id, each with the broker epoch it fetched with.
    pub new_isr: Vec<IsrMember>,
}

impl AlterPartition {
    pub fn new_isr_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.new_isr.iter().map(|member| member.broker_id)
    }
}

/// One member of a proposed ISR (AlterPartition v3 `NewIsrWithEpochs`, KIP-903).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    /// The broker epoch the member last fetched with, or -1 if this leader has not heard
    /// from it (the controller then skips the epoch check, as Kafka's does).
    pub broker_epoch: i64,
}

/// The controller's answer to an [`AlterPartition`]. Retriable failures (timeouts,
/// NOT_CONTROLLER, ...) are the shell's to retry with the same request and never come here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterPartitionResult {
    Committed {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    Rejected(AlterPartitionError),
}

/// Why the controller refused an AlterPartition (Kafka's non-retriable answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterPartitionError {
    /// OPERATION_NOT_ATTEMPTED: the controller did not apply it (e.g. it would empty the ISR).
    OperationNotAttempted,
    /// INELIGIBLE_REPLICA: a proposed member is fenced, shutting down, or on a stale broker
    /// epoch. Not applied.
    IneligibleReplica,
    /// FENCED_LEADER_EPOCH: this leader is stale.
    FencedLeaderEpoch,
    /// INVALID_UPDATE_VERSION: the partition epoch moved on.
    InvalidPartitionEpoch,
    UnknownTopicOrPartition,
    InvalidRequest,
    /// NEW_LEADER_ELECTED: applied, and the reassignment it completed removed this leader.
    NewLeaderElected,
}

impl AlterPartitionError {
    /// Whether the answer proves the change was not applied by any controller, so the leader
    /// can fall back to its committed ISR. For the others it may have been applied (a retry
    /// can fail on the epoch its own first attempt bumped), so the leader keeps counting the
    /// maximal ISR until new metadata arrives, as Kafka does.
    pub fn proves_not_applied(self) -> bool {
        matches!(
            self,
            AlterPartitionError::OperationNotAttempted | AlterPartitionError::IneligibleReplica
        )
    }
}

/// Why an [`AlterPartitionResult`] changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrResultIgnored {
    #[error("not the leader any more")]
    NotLeader,
    #[error("the answered AlterPartition is not the one in flight (state moved on)")]
    NotTheProposalInFlight,
    #[error("committed ISR is for leader epoch {received}, this leader is at {current}")]
    StaleLeaderEpoch { received: i32, current: i32 },
    #[error("committed ISR is for partition epoch {received}, already at {current}")]
    StalePartitionEpoch { received: i32, current: i32 },
    #[error("committed ISR is unusable: {0}")]
    InvalidIsr(String),
}

/// Why a [`PartitionRegistration`] was not applied. The partition is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataRefusal {
    #[error("stale metadata: partition epoch {received} is older than {current}")]
    StalePartitionEpoch { received: i32, current: i32 },
    #[error("stale metadata: leader epoch {received} is older than {current}")]
    StaleLeaderEpoch { received: i32, current: i32 },
    #[error("invalid partition registration: {0}")]
    Invalid(String),
}

/// What the shell must do after a step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record in the local log's epoch history that `leader_epoch` starts at `start_offset`
    /// (the log end offset) before the first append under it (KIP-101). Also done when no
    /// append follows, so that followers holding later epochs can find their divergence.
    AssignEpochStart {
        leader_epoch: i32,
        start_offset: i64,
    },
    /// Send this AlterPartition to the controller; hand the answer to
    /// [`Partition::on_isr_change_result`] together with this same value.
    ProposeIsr(AlterPartition),
    /// The high watermark rose to this offset: complete parked acks=all produces (ask
    /// [`Partition::acks_all_status`]) and delayed fetches; checkpoint it lazily.
    HighWatermarkAdvanced(i64),
    /// (Re)start fetching from `leader_id` in `leader_epoch`; any fetch in flight belongs to
    /// an older epoch and its response will be refused.
    StartFetching {
        leader_id: i32,
        leader_epoch: i32,
    },
    StopFetching,
    /// This broker stopped leading: answer parked acks=all produces (their status is now
    /// [`AcksAllStatus::NotLeaderOrFollower`]) and delayed follower fetches.
    LeadershipEnded,
}

/// A follower's fetch of this partition, as the leader decodes it (Fetch v15+ fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica_id: i32,
    /// The broker epoch of the follower's registration (`ReplicaState.ReplicaEpoch`).
    pub broker_epoch: i64,
    /// The leader epoch the follower believes current (KIP-320); `None` skips the check.
    pub current_leader_epoch: Option<i32>,
    /// The follower's log end offset: the first offset it lacks.
    pub fetch_offset: i64,
    /// The epoch of the last batch in the follower's log; `None` for an empty epoch history.
    pub last_fetched_epoch: Option<i32>,
    pub log_start_offset: i64,
}

/// The leader's answer to a [`FollowerFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerFetchDecision {
    /// Read records from `from` and answer with `high_watermark`; apply `effects`.
    Read {
        from: i64,
        high_watermark: i64,
        effects: Vec<Effect>,
    },
    /// The logs diverge: answer with no records and this `DivergingEpoch`. The follower's
    /// progress was not recorded; it truncates and fetches again.
    Diverging(EpochEndOffset),
    Refused(FetchRefusal),
}

/// Why a follower fetch was refused. Nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchRefusal {
    #[error("fetch for leader epoch {requested}, current is {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("fetch for leader epoch {requested}, newer than current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("broker {replica_id} is not an assigned follower")]
    UnknownReplica {
        replica_id: i32,
        current_leader_epoch: Option<i32>,
    },
    #[error("fetch with broker epoch {requested}, registration is at {registered}")]
    StaleBrokerEpoch { requested: i64, registered: i64 },
    #[error("no end offset for last fetched epoch {last_fetched_epoch}")]
    UndefinedEpoch { last_fetched_epoch: i32 },
    #[error("fetch offset {fetch_offset} outside {log_start_offset}..={log_end_offset}")]
    OffsetOutOfRange {
        fetch_offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
}

impl FetchRefusal {
    /// The Kafka error code for the partition in the fetch response, as Kafka answers.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            FetchRefusal::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            FetchRefusal::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
            FetchRefusal::UnknownReplica {
                current_leader_epoch: Some(_),
                ..
            } => ErrorCode::UnknownLeaderEpoch,
            FetchRefusal::NotLeader
            | FetchRefusal::UnknownReplica {
                current_leader_epoch: None,
                ..
            }
            | FetchRefusal::StaleBrokerEpoch { .. } => ErrorCode::NotLeaderOrFollower,
            FetchRefusal::UndefinedEpoch { .. } | FetchRefusal::OffsetOutOfRange { .. } => {
                ErrorCode::OffsetOutOfRange
            }
        }
    }
}

/// The parts of the leader's fetch response a follower's state depends on. The records
/// themselves stay with the fetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedPartition {
    pub high_watermark: i64,
    pub diverging_epoch: Option<EpochEndOffset>,
    /// One past the last offset of the records returned (last batch's base offset +
    /// lastOffsetDelta + 1); `None` when no records came back.
    pub records_end_offset: Option<i64>,
}

/// What a follower's fetcher must do with a fetch response, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerAction {
    /// Remove every offset `>=` this one (and epoch-history entries starting there), then
    /// fetch again from the new end. Never the high watermark: only a diverging end offset.
    TruncateTo(i64),
    /// Append the response's records as a follower (offsets and epochs as the leader
    /// stamped them; new epochs enter the epoch history).
    Append,
    /// The local high watermark is now this (visible to consumers reading from followers).
    UpdateHighWatermark(i64),
}

/// Why a fetch response was not applied. Discard it and fetch again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchResponseRefusal {
    #[error("this broker is not a follower of the partition")]
    NotFollower,
    #[error("response to a fetch sent in leader epoch {sent:?}, now {current}")]
    StaleLeaderEpoch { sent: Option<i32>, current: i32 },
    #[error("log end moved from {fetch_offset} to {log_end_offset} while fetching")]
    LogMoved {
        fetch_offset: i64,
        log_end_offset: i64,
    },
    #[error("records end at {records_end_offset}, not after fetch offset {fetch_offset}")]
    RecordsDoNotAdvance {
        fetch_offset: i64,
        records_end_offset: i64,
    },
    #[error("diverging epoch {epoch} with end offset {end_offset} is malformed")]
    InvalidDivergingEpoch { epoch: i32, end_offset: i64 },
}

/// An acks=all produce parked after its append: the leader epoch it was appended in and the
/// offset the high watermark must reach (its last offset + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcksAllWait {
    pub leader_epoch: i32,
    pub required_offset: i64,
}

/// Why an acks=all produce must not be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcksAllRefusal {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("ISR has {isr_size} members, min.insync.replicas needs {min_insync_replicas}")]
    NotEnoughReplicas {
        isr_size: usize,
        min_insync_replicas: usize,
    },
}

impl AcksAllRefusal {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            AcksAllRefusal::NotLeader => ErrorCode::NotLeaderOrFollower,
            AcksAllRefusal::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        }
    }
}

/// Where a parked acks=all produce stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAllStatus {
    /// The high watermark has not reached it: keep waiting (until the request times out).
    Pending,
    /// Replicated to the whole ISR: answer success.
    Done,
    /// Replicated, but the ISR is now below min.insync.replicas: answer
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (the records stay in the log).
    NotEnoughReplicasAfterAppend,
    /// This broker no longer leads, or lost leadership since the append: answer
    /// NOT_LEADER_OR_FOLLOWER.
    NotLeaderOrFollower,
}

/// One partition's replication state on this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    config: PartitionConfig,
    /// -1 until the first registration is applied.
    leader_epoch: i32,
    /// -1 until the first registration is applied.
    partition_epoch: i32,
    replicas: Vec<i32>,
    high_watermark: i64,
    role: Role,
}

impl Partition {
    /// A partition opened from its local log, before any metadata: a follower of nobody.
    /// The checkpointed high watermark is clamped into the log's range, as Kafka does.
    pub fn new(config: PartitionConfig, log: LogOffsets, high_watermark_checkpoint: i64) -> Self {
        log.assert_valid();
        Partition {
            config,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            high_watermark: high_watermark_checkpoint
                .clamp(log.log_start_offset, log.log_end_offset),
            role: Role::Follower(FollowerState { leader_id: None }),
        }
    }

    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(leader) => Some(leader),
            Role::Follower(_) => None,
        }
    }

    /// The broker this one believes leads the partition.
    pub fn leader_id(&self) -> Option<i32> {
        match &self.role {
            Role::Leader(_) => Some(self.config.local_broker_id),
            Role::Follower(follower) => follower.leader_id,
        }
    }

    /// The leader epoch: what a leader stamps into appended batches.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The first offset not known to be on every ISR member; consumers read below it.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The committed ISR and any change in flight, while leading.
    pub fn isr(&self) -> Option<&IsrState> {
        self.leader_state().map(LeaderState::isr)
    }

    /// What the leader knows of each follower, while leading.
    pub fn followers(&self) -> Option<&FollowerProgressSet> {
        self.leader_state().map(LeaderState::followers)
    }

    /// Where the current leader epoch began, while leading. ListOffsets(latest) answers
    /// OFFSET_NOT_AVAILABLE while the high watermark is below it, as Kafka does.
    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        self.leader_state().map(LeaderState::epoch_start_offset)
    }

    /// `min.insync.replicas`, capped by the replica count (Kafka's `effectiveMinIsr`) so that
    /// a topic configured above its replication factor still makes progress.
    pub fn effective_min_isr(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.replicas.len())
            .max(1)
    }

    /// Whether the leader's committed ISR is below the effective min ISR.
    pub fn is_under_min_isr(&self) -> bool {
        self.leader_state()
            .is_some_and(|leader| leader.isr.committed.len() < self.effective_min_isr())
    }

    /// Whether the leader's committed ISR lacks some assigned replica (Kafka's
    /// UnderReplicatedPartitions).
    pub fn is_under_replicated(&self) -> bool {
        self.leader_state()
            .is_some_and(|leader| leader.isr.committed.len() < self.replicas.len())
    }

    /// Change `min.insync.replicas` (a topic config update). Lowering it may let the high
    /// watermark advance at once.
    pub fn set_min_insync_replicas(&mut self, min_insync_replicas: usize) -> Vec<Effect> {
        self.config.min_insync_replicas = min_insync_replicas;
        let mut effects = Vec::new();
        self.push_high_watermark_advance(&mut effects);
        self.assert_invariants();
        effects
    }

    pub fn set_replica_lag_ms_max(&mut self, replica_lag_ms_max: i64) {
        self.config.replica_lag_ms_max = replica_lag_ms_max;
    }

    // ---------------------------------------------------------------------------------
    // Metadata: becoming leader or follower.
    // ---------------------------------------------------------------------------------

    /// Apply a registration from the metadata log: [`Partition::become_leader`] if it names
    /// this broker as leader, else [`Partition::become_follower`].
    pub fn apply_registration(
        &mut self,
        registration: &PartitionRegistration,
        log: LogOffsets,
        now_ms: i64,
    ) -> Result<Vec<Effect>, MetadataRefusal> {
        if registration.leader_id == Some(self.config.local_broker_id) {
            self.become_leader(registration, log, now_ms)
        } else {
            self.become_follower(registration, log)
        }
    }

    /// Lead the partition as `registration` says (Kafka's `makeLeader`).
    ///
    /// - From follower (new leader epoch): follower progress starts unknown, the high
    ///   watermark stays what this broker knew (clamped to its log end) and may rise once
    ///   followers report; the new epoch starts at the log end offset.
    /// - Already leading, new leader epoch (re-elected): as from follower, follower progress
    ///   starts unknown (unlike Kafka, which keeps it: this broker may have missed epochs in
    ///   which followers truncated); the high watermark stays; the new epoch starts at the log
    ///   end offset.
    /// - Already leading, same leader epoch: the controller changed the ISR or the replicas;
    ///   any pending ISR change is superseded.
    pub fn become_leader(
        &mut self,
        registration: &PartitionRegistration,
        log: LogOffsets,
        now_ms: i64,
    ) -> Result<Vec<Effect>, MetadataRefusal> {
        log.assert_valid();
        let local = self.config.local_broker_id;
        validate_registration(registration, local)?;
        if registration.leader_id != Some(local) {
            return Err(MetadataRefusal::Invalid(format!(
                "become_leader on broker {local} for a partition led by {:?}",
                registration.leader_id
            )));
        }
        if !registration.isr.contains(&local) {
            return Err(MetadataRefusal::Invalid(format!(
                "leader {local} is not in ISR {:?}",
                registration.isr
            )));
        }
        self.check_not_stale(registration)?;
        if self.is_same_registration(registration) {
            return Ok(Vec::new());
        }
        let new_leader_epoch = registration.leader_epoch > self.leader_epoch;
        if !self.is_leader() && !new_leader_epoch {
            return Err(MetadataRefusal::Invalid(format!(
                "leadership moved to broker {local} without a new leader epoch ({})",
                registration.leader_epoch
            )));
        }

        self.advance_epochs(registration.leader_epoch, registration.partition_epoch);
        self.replicas = registration.replicas.clone();
        let isr: BTreeSet<i32> = registration.isr.iter().copied().collect();
        let followers: Vec<(i32, IsrMembership)> = self
            .replicas
            .iter()
            .filter(|&&id| id != local)
            .map(|&id| (id, membership(&isr, id)))
            .collect();

        let mut effects = Vec::new();
        match &mut self.role {
            Role::Leader(leader) => {
                leader.observe_log_end_offset(log.log_end_offset);
                leader.isr = IsrState::committed(isr);
                if new_leader_epoch {
                    // Forget what was learned of the followers' logs: this broker may have
                    // missed epochs in which another broker led and followers truncated to
                    // follow it (metadata can jump to the latest registration). Kafka keeps
                    // them when re-elected; a stale log end could let the high watermark
                    // cover records a follower no longer has.
                    leader.followers = FollowerProgressSet::default();
                    let start_offset = leader.log_end_offset;
                    leader.epoch_start_offset = start_offset;
                    effects.push(Effect::AssignEpochStart {
                        leader_epoch: registration.leader_epoch,
                        start_offset,
                    });
                }
                leader.followers.reconcile(followers, now_ms);
            }
            Role::Follower(_) => {
                let mut progress = FollowerProgressSet::default();
                progress.reconcile(followers, now_ms);
                // A follower's high watermark never exceeds its log end; keep it so.
                self.high_watermark = self.high_watermark.min(log.log_end_offset);
                self.role = Role::Leader(LeaderState {
                    isr: IsrState::committed(isr),
                    followers: progress,
                    log_end_offset: log.log_end_offset,
                    epoch_start_offset: log.log_end_offset,
                    leadership_start_epoch: registration.leader_epoch,
                });
                effects.push(Effect::StopFetching);
                effects.push(Effect::AssignEpochStart {
                    leader_epoch: registration.leader_epoch,
                    start_offset: log.log_end_offset,
                });
            }
        }
        // The ISR may be down to this broker alone.
        self.push_high_watermark_advance(&mut effects);
        self.assert_invariants();
        Ok(effects)
    }

    /// Follow the partition as `registration` says (Kafka's `makeFollower`). The log is not
    /// touched: any divergence is found by the first fetch (KIP-320), never by truncating to
    /// the high watermark. The fetcher restarts whenever the leader epoch changes.
    pub fn become_follower(
        &mut self,
        registration: &PartitionRegistration,
        log: LogOffsets,
    ) -> Result<Vec<Effect>, MetadataRefusal> {
        log.assert_valid();
        let local = self.config.local_broker_id;
        validate_registration(registration, local)?;
        if registration.leader_id == Some(local) {
            return Err(MetadataRefusal::Invalid(format!(
                "become_follower on broker {local}, which the registration names leader"
            )));
        }
        self.check_not_stale(registration)?;
        if self.is_same_registration(registration) {
            return Ok(Vec::new());
        }
        let new_leader_epoch = registration.leader_epoch > self.leader_epoch;
        let was_leader = self.is_leader();

        self.advance_epochs(registration.leader_epoch, registration.partition_epoch);
        self.replicas = registration.replicas.clone();
        self.high_watermark = self.high_watermark.min(log.log_end_offset);
        self.role = Role::Follower(FollowerState {
            leader_id: registration.leader_id,
        });

        let mut effects = Vec::new();
        if was_leader {
            effects.push(Effect::LeadershipEnded);
        }
        if was_leader || new_leader_epoch {
            effects.push(match registration.leader_id {
                Some(leader_id) => Effect::StartFetching {
                    leader_id,
                    leader_epoch: registration.leader_epoch,
                },
                None => Effect::StopFetching,
            });
        }
        self.assert_invariants();
        Ok(effects)
    }

    fn check_not_stale(&self, registration: &PartitionRegistration) -> Result<(), MetadataRefusal> {
        // Equal partition epochs are allowed: an AlterPartition answer may have told us the
        // epoch before the metadata log did.
        if registration.partition_epoch < self.partition_epoch {
            return Err(MetadataRefusal::StalePartitionEpoch {
                received: registration.partition_epoch,
                current: self.partition_epoch,
            });
        }
        if registration.leader_epoch < self.leader_epoch {
            return Err(MetadataRefusal::StaleLeaderEpoch {
                received: registration.leader_epoch,
                current: self.leader_epoch,
            });
        }
        Ok(())
    }

    /// A registration at exactly the epochs already applied says nothing new (the metadata
    /// log catching up with an AlterPartition answer, or a replay). Applying it again would
    /// wrongly drop an ISR change in flight whose compare-and-set may still succeed.
    fn is_same_registration(&self, registration: &PartitionRegistration) -> bool {
        registration.leader_epoch == self.leader_epoch
            && registration.partition_epoch == self.partition_epoch
    }

    fn advance_epochs(&mut self, leader_epoch: i32, partition_epoch: i32) {
        assert!(
            leader_epoch >= self.leader_epoch && partition_epoch >= self.partition_epoch,
            "epochs go back: leader {} -> {leader_epoch}, partition {} -> {partition_epoch}",
            self.leader_epoch,
            self.partition_epoch
        );
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
    }

    // ---------------------------------------------------------------------------------
    // Leader side.
    // ---------------------------------------------------------------------------------

    /// A follower fetched. Checks, in Kafka's order: the leader epoch the follower believes
    /// in (fenced/unknown), leadership, that the follower is assigned, that its broker epoch
    /// is current (KIP-903), divergence from the leader's epoch history (KIP-320: the end
    /// offset of `last_fetched_epoch` is below the fetch offset, or the leader only knows an
    /// older epoch), and the offset range. A non-diverging fetch records the follower's
    /// progress, may propose adding it to the ISR, and may advance the high watermark.
    ///
    /// `log` is the leader's log as it was just before the read; `liveness` is the
    /// follower's broker as this broker's metadata sees it.
    pub fn on_follower_fetch(
        &mut self,
        fetch: &FollowerFetch,
        log: LogOffsets,
        epochs: &impl EpochLookup,
        liveness: ReplicaLiveness,
        now_ms: i64,
    ) -> FollowerFetchDecision {
        use FollowerFetchDecision::{Diverging, Read, Refused};
        log.assert_valid();
        if let Some(requested) = fetch.current_leader_epoch {
            if requested < self.leader_epoch {
                return Refused(FetchRefusal::FencedLeaderEpoch {
                    requested,
                    current: self.leader_epoch,
                });
            }
            if requested > self.leader_epoch {
                return Refused(FetchRefusal::UnknownLeaderEpoch {
                    requested,
                    current: self.leader_epoch,
                });
            }
        }
        let Role::Leader(leader) = &mut self.role else {
            return Refused(FetchRefusal::NotLeader);
        };
        if leader.followers.get(fetch.replica_id).is_none() {
            return Refused(FetchRefusal::UnknownReplica {
                replica_id: fetch.replica_id,
                current_leader_epoch: fetch.current_leader_epoch,
            });
        }
        if let Some(registered) = liveness.registered_broker_epoch() {
            if fetch.broker_epoch < registered {
                return Refused(FetchRefusal::StaleBrokerEpoch {
                    requested: fetch.broker_epoch,
                    registered,
                });
            }
        }
        leader.observe_log_end_offset(log.log_end_offset);
        let out_of_range = FetchRefusal::OffsetOutOfRange {
            fetch_offset: fetch.fetch_offset,
            log_start_offset: log.log_start_offset,
            log_end_offset: leader.log_end_offset,
        };
        if let Some(last_fetched_epoch) = fetch.last_fetched_epoch {
            let Some(end) = epochs.end_offset_for(last_fetched_epoch) else {
                return Refused(FetchRefusal::UndefinedEpoch { last_fetched_epoch });
            };
            if fetch.fetch_offset < log.log_start_offset {
                return Refused(out_of_range);
            }
            if end.epoch < last_fetched_epoch || end.end_offset < fetch.fetch_offset {
                return Diverging(end);
            }
        }
        if fetch.fetch_offset < log.log_start_offset || fetch.fetch_offset > leader.log_end_offset {
            return Refused(out_of_range);
        }

        let Some(progress) = leader.followers.get_mut(fetch.replica_id) else {
            unreachable!(
                "checked above that replica {} is assigned",
                fetch.replica_id
            );
        };
        let previous_log_end_offset = progress.log_end_offset();
        progress.record_fetch(FetchFacts {
            fetch_offset: fetch.fetch_offset,
            follower_log_start_offset: fetch.log_start_offset,
            broker_epoch: fetch.broker_epoch,
            // The leader's end before the read, so that appends racing with this fetch do
            // not keep the follower from counting as caught up.
            leader_log_end_offset: log.log_end_offset,
            fetch_time_ms: now_ms,
        });

        let mut effects = Vec::new();
        if let Some(proposal) = self.maybe_expand_isr(fetch.replica_id, liveness) {
            effects.push(Effect::ProposeIsr(proposal));
        }
        if previous_log_end_offset != fetch.fetch_offset {
            self.push_high_watermark_advance(&mut effects);
        }
        self.assert_invariants();
        Read {
            from: fetch.fetch_offset,
            high_watermark: self.high_watermark,
            effects,
        }
    }

    /// The leader appended; its log now ends at `log_end_offset`. The high watermark may
    /// advance (when the ISR is this broker alone, or followers were ahead of the report).
    /// A no-op unless leading.
    pub fn on_leader_append(&mut self, log_end_offset: i64) -> Vec<Effect> {
        let Role::Leader(leader) = &mut self.role else {
            return Vec::new();
        };
        leader.observe_log_end_offset(log_end_offset);
        let mut effects = Vec::new();
        self.push_high_watermark_advance(&mut effects);
        self.assert_invariants();
        effects
    }

    /// Time passed. A leader with no ISR change in flight proposes removing every follower in
    /// the ISR that has not caught up within `replica_lag_ms_max` (Kafka's `maybeShrinkIsr`).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let local = self.config.local_broker_id;
        let lag_ms_max = self.config.replica_lag_ms_max;
        let Role::Leader(leader) = &mut self.role else {
            return Vec::new();
        };
        if leader.isr.is_inflight() {
            return Vec::new();
        }
        let removed: BTreeSet<i32> = leader
            .isr
            .committed
            .iter()
            .copied()
            .filter(|&id| id != local)
            .filter(|&id| {
                leader.followers.get(id).is_none_or(|progress| {
                    !progress.is_caught_up(leader.log_end_offset, now_ms, lag_ms_max)
                })
            })
            .collect();
        if removed.is_empty() {
            return Vec::new();
        }
        let new_isr: BTreeSet<i32> = leader.isr.committed.difference(&removed).copied().collect();
        let sent = proposal(
            &self.config,
            self.leader_epoch,
            self.partition_epoch,
            &leader.followers,
            &new_isr,
        );
        leader.isr.pending = Some(PendingIsrChange::PendingShrink {
            removed,
            sent: sent.clone(),
        });
        self.assert_invariants();
        vec![Effect::ProposeIsr(sent)]
    }

    /// The controller answered the AlterPartition `sent`. A commit is adopted (ISR and
    /// partition epoch) and may advance the high watermark. A refusal that proves nothing was
    /// applied returns to the committed ISR; any other refusal keeps the change pending
    /// until the metadata log supersedes it (see [`AlterPartitionError::proves_not_applied`]).
    pub fn on_isr_change_result(
        &mut self,
        sent: &AlterPartition,
        result: AlterPartitionResult,
    ) -> Result<Vec<Effect>, IsrResultIgnored> {
        let local = self.config.local_broker_id;
        let Role::Leader(leader) = &mut self.role else {
            return Err(IsrResultIgnored::NotLeader);
        };
        if leader.isr.pending.as_ref().map(PendingIsrChange::sent) != Some(sent) {
            return Err(IsrResultIgnored::NotTheProposalInFlight);
        }
        match result {
            AlterPartitionResult::Rejected(error) => {
                if error.proves_not_applied() {
                    leader.isr.pending = None;
                }
                Ok(Vec::new())
            }
            AlterPartitionResult::Committed {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                if leader_epoch != self.leader_epoch {
                    return Err(IsrResultIgnored::StaleLeaderEpoch {
                        received: leader_epoch,
                        current: self.leader_epoch,
                    });
                }
                if partition_epoch < self.partition_epoch {
                    return Err(IsrResultIgnored::StalePartitionEpoch {
                        received: partition_epoch,
                        current: self.partition_epoch,
                    });
                }
                let committed: BTreeSet<i32> = isr.iter().copied().collect();
                if committed.len() != isr.len()
                    || !committed.contains(&local)
                    || !committed.iter().all(|id| self.replicas.contains(id))
                {
                    return Err(IsrResultIgnored::InvalidIsr(format!(
                        "ISR {isr:?} must be distinct replicas of {:?} including leader {local}",
                        self.replicas
                    )));
                }
                leader.isr = IsrState::committed(committed);
                self.advance_epochs(leader_epoch, partition_epoch);
                let mut effects = Vec::new();
                self.push_high_watermark_advance(&mut effects);
                self.assert_invariants();
                Ok(effects)
            }
        }
    }

    /// Whether an acks=all produce may be appended: only by the leader, and only while the
    /// committed ISR meets the effective min ISR (else NOT_ENOUGH_REPLICAS, before append).
    pub fn check_acks_all_admission(&self) -> Result<(), AcksAllRefusal> {
        let leader = self.leader_state().ok_or(AcksAllRefusal::NotLeader)?;
        let min_insync_replicas = self.effective_min_isr();
        if leader.isr.committed.len() < min_insync_replicas {
            return Err(AcksAllRefusal::NotEnoughReplicas {
                isr_size: leader.isr.committed.len(),
                min_insync_replicas,
            });
        }
        Ok(())
    }

    /// Where a parked acks=all produce stands (Kafka's `checkEnoughReplicasReachOffset`):
    /// done once the high watermark reaches `required_offset`, unless by then the maximal ISR
    /// is below the effective min ISR (NOT_ENOUGH_REPLICAS_AFTER_APPEND). A produce appended
    /// in an earlier leadership of this broker fails: the log may have been truncated since.
    pub fn acks_all_status(&self, wait: AcksAllWait) -> AcksAllStatus {
        let Some(leader) = self.leader_state() else {
            return AcksAllStatus::NotLeaderOrFollower;
        };
        if wait.leader_epoch < leader.leadership_start_epoch
            || wait.leader_epoch > self.leader_epoch
        {
            return AcksAllStatus::NotLeaderOrFollower;
        }
        if self.high_watermark < wait.required_offset {
            AcksAllStatus::Pending
        } else if leader.isr.maximal_len() >= self.effective_min_isr() {
            AcksAllStatus::Done
        } else {
            AcksAllStatus::NotEnoughReplicasAfterAppend
        }
    }

    /// Propose adding `replica_id` to the ISR if nothing is in flight and it qualifies: its
    /// log end offset reached the high watermark and the start of the current leader epoch
    /// (so it holds everything this leader may have acknowledged), and its broker is active
    /// on the broker epoch it fetched with.
    fn maybe_expand_isr(
        &mut self,
        replica_id: i32,
        liveness: ReplicaLiveness,
    ) -> Option<AlterPartition> {
        let high_watermark = self.high_watermark;
        let Role::Leader(leader) = &mut self.role else {
            return None;
        };
        if leader.isr.is_inflight() || leader.isr.committed.contains(&replica_id) {
            return None;
        }
        let progress = leader.followers.get(replica_id)?;
        let eligible = matches!(
            liveness,
            ReplicaLiveness::Active { broker_epoch } if progress.broker_epoch() == Some(broker_epoch)
        );
        let caught_up = progress.log_end_offset() >= high_watermark
            && progress.log_end_offset() >= leader.epoch_start_offset;
        if !(eligible && caught_up) {
            return None;
        }
        let mut new_isr = leader.isr.committed.clone();
        new_isr.insert(replica_id);
        let sent = proposal(
            &self.config,
            self.leader_epoch,
            self.partition_epoch,
            &leader.followers,
            &new_isr,
        );
        leader.isr.pending = Some(PendingIsrChange::PendingExpand {
            added: replica_id,
            sent: sent.clone(),
        });
        Some(sent)
    }

    /// Raise the high watermark to the smallest log end offset over the maximal ISR (the
    /// leader's own included), if the committed ISR meets the effective min ISR (KIP-966
    /// strict mode). It never goes down; a follower not yet heard from holds it where it is.
    fn push_high_watermark_advance(&mut self, effects: &mut Vec<Effect>) {
        let local = self.config.local_broker_id;
        let min_isr = self.effective_min_isr();
        let Role::Leader(leader) = &self.role else {
            return;
        };
        if leader.isr.committed.len() < min_isr {
            return;
        }
        let candidate = leader
            .isr
            .maximal()
            .filter(|&id| id != local)
            .map(|id| leader.followers.log_end_offset(id))
            .fold(leader.log_end_offset, i64::min);
        if candidate > self.high_watermark {
            // The guarded statement, checked again where it is made true.
            assert!(
                leader
                    .isr
                    .maximal()
                    .filter(|&id| id != local)
                    .all(|id| leader.followers.log_end_offset(id) >= candidate)
                    && candidate <= leader.log_end_offset,
                "high watermark {candidate} beyond an ISR member's log end"
            );
            self.high_watermark = candidate;
            effects.push(Effect::HighWatermarkAdvanced(candidate));
        }
    }

    // ---------------------------------------------------------------------------------
    // Follower side.
    // ---------------------------------------------------------------------------------

    /// The next fetch a follower sends: from its log end, naming its latest epoch
    /// (`latest_epoch`, from the local epoch history) and the leader epoch it follows.
    /// `None` unless following a known leader.
    pub fn next_fetch(&self, log: LogOffsets, latest_epoch: Option<i32>) -> Option<FollowerFetch> {
        log.assert_valid();
        match &self.role {
            Role::Follower(FollowerState { leader_id: Some(_) }) => Some(FollowerFetch {
                replica_id: self.config.local_broker_id,
                broker_epoch: self.config.local_broker_epoch,
                current_leader_epoch: Some(self.leader_epoch),
                fetch_offset: log.log_end_offset,
                last_fetched_epoch: latest_epoch,
                log_start_offset: log.log_start_offset,
            }),
            _ => None,
        }
    }

    /// The leader answered `sent`. A `DivergingEpoch` means truncate, and only to the
    /// divergence point: the smaller of the leader's end offset for that epoch and this
    /// log's own end offset for it (KIP-279), never the high watermark. If this log does not
    /// know the leader's epoch, it truncates to the end of its largest epoch below it and
    /// lets the next fetch narrow it down. Otherwise: append the records, and take the
    /// leader's high watermark, clamped to this log's range.
    ///
    /// `log` and `epochs` are this follower's log before applying the response.
    pub fn on_fetch_response(
        &mut self,
        sent: &FollowerFetch,
        response: &FetchedPartition,
        log: LogOffsets,
        epochs: &impl EpochLookup,
    ) -> Result<Vec<FollowerAction>, FetchResponseRefusal> {
        log.assert_valid();
        if !matches!(self.role, Role::Follower(_)) {
            return Err(FetchResponseRefusal::NotFollower);
        }
        if sent.current_leader_epoch != Some(self.leader_epoch) {
            return Err(FetchResponseRefusal::StaleLeaderEpoch {
                sent: sent.current_leader_epoch,
                current: self.leader_epoch,
            });
        }
        if log.log_end_offset != sent.fetch_offset {
            return Err(FetchResponseRefusal::LogMoved {
                fetch_offset: sent.fetch_offset,
                log_end_offset: log.log_end_offset,
            });
        }
        let previous_high_watermark = self.high_watermark;
        let mut actions = Vec::new();
        if let Some(diverging) = response.diverging_epoch {
            if diverging.epoch < 0 || diverging.end_offset < 0 {
                return Err(FetchResponseRefusal::InvalidDivergingEpoch {
                    epoch: diverging.epoch,
                    end_offset: diverging.end_offset,
                });
            }
            let target = match epochs.end_offset_for(diverging.epoch) {
                Some(local) if local.epoch == diverging.epoch => {
                    diverging.end_offset.min(local.end_offset)
                }
                Some(local) => local.end_offset,
                None => diverging.end_offset,
            }
            .min(log.log_end_offset);
            actions.push(FollowerAction::TruncateTo(target));
            self.high_watermark = self.high_watermark.min(target);
        } else {
            let log_end_offset = match response.records_end_offset {
                Some(end) if end > sent.fetch_offset => {
                    actions.push(FollowerAction::Append);
                    end
                }
                Some(end) => {
                    return Err(FetchResponseRefusal::RecordsDoNotAdvance {
                        fetch_offset: sent.fetch_offset,
                        records_end_offset: end,
                    })
                }
                None => log.log_end_offset,
            };
            self.high_watermark = response
                .high_watermark
                .min(log_end_offset)
                .max(log.log_start_offset);
        }
        if self.high_watermark != previous_high_watermark {
            actions.push(FollowerAction::UpdateHighWatermark(self.high_watermark));
        }
        self.assert_invariants();
        Ok(actions)
    }

    // ---------------------------------------------------------------------------------
    // Invariants.
    // ---------------------------------------------------------------------------------

    /// Assert the invariants listed in the [module documentation](super). Every mutating
    /// method ends with this; it is cheap (linear in the replica count) and stays on in
    /// release builds because it guards acknowledged data.
    pub fn assert_invariants(&self) {
        assert!(
            self.high_watermark >= 0,
            "negative high watermark {}",
            self.high_watermark
        );
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let local = self.config.local_broker_id;
        assert!(
            self.high_watermark <= leader.log_end_offset,
            "high watermark {} beyond leader log end {}",
            self.high_watermark,
            leader.log_end_offset
        );
        assert!(
            leader.epoch_start_offset <= leader.log_end_offset,
            "epoch start {} beyond log end {}",
            leader.epoch_start_offset,
            leader.log_end_offset
        );
        assert!(leader.leadership_start_epoch <= self.leader_epoch);
        assert!(
            leader.isr.committed.contains(&local),
            "leader {local} not in its ISR {:?}",
            leader.isr.committed
        );
        assert!(
            leader
                .isr
                .committed
                .iter()
                .all(|id| self.replicas.contains(id)),
            "ISR {:?} not within replicas {:?}",
            leader.isr.committed,
            self.replicas
        );
        assert_eq!(
            leader.followers.len(),
            self.replicas.len() - 1,
            "follower progress must cover exactly the other replicas"
        );
        assert!(self
            .replicas
            .iter()
            .all(|&id| id == local || leader.followers.get(id).is_some()));
        match &leader.isr.pending {
            None => {}
            Some(PendingIsrChange::PendingExpand { added, sent }) => {
                assert!(self.replicas.contains(added) && !leader.isr.committed.contains(added));
                assert!(sent.new_isr_ids().any(|id| id == local));
            }
            Some(PendingIsrChange::PendingShrink { removed, sent }) => {
                assert!(!removed.is_empty() && !removed.contains(&local));
                assert!(removed.is_subset(&leader.isr.committed));
                assert!(sent.new_isr_ids().any(|id| id == local));
            }
        }
    }
}

fn membership(isr: &BTreeSet<i32>, replica_id: i32) -> IsrMembership {
    if isr.contains(&replica_id) {
        IsrMembership::Member
    } else {
        IsrMembership::NotMember
    }
}

/// The AlterPartition for `new_isr`, each member with the broker epoch it last fetched with.
fn proposal(
    config: &PartitionConfig,
    leader_epoch: i32,
    partition_epoch: i32,
    followers: &FollowerProgressSet,
    new_isr: &BTreeSet<i32>,
) -> AlterPartition {
    let new_isr = new_isr
        .iter()
        .map(|&broker_id| IsrMember {
            broker_id,
            broker_epoch: if broker_id == config.local_broker_id {
                config.local_broker_epoch
            } else {
                followers
                    .get(broker_id)
                    .and_then(|progress| progress.broker_epoch())
                    .unwrap_or(BROKER_EPOCH_UNKNOWN)
            },
        })
        .collect();
    AlterPartition {
        leader_id: config.local_broker_id,
        leader_epoch,
        partition_epoch,
        new_isr,
    }
}

/// Check what the controller sent before trusting it: it came over the network.
fn validate_registration(
    registration: &PartitionRegistration,
    local: i32,
) -> Result<(), MetadataRefusal> {
    let invalid = |why: String| Err(MetadataRefusal::Invalid(why));
    if registration.leader_epoch < 0 || registration.partition_epoch < 0 {
        return invalid(format!(
            "negative epoch: leader {} partition {}",
            registration.leader_epoch, registration.partition_epoch
        ));
    }
    let replicas: BTreeSet<i32> = registration.replicas.iter().copied().collect();
    if replicas.len() != registration.replicas.len() {
        return invalid(format!("duplicate replicas {:?}", registration.replicas));
    }
    if !replicas.contains(&local) {
        return invalid(format!(
            "broker {local} is not among replicas {:?}; stop the replica instead",
            registration.replicas
        ));
    }
    let isr: BTreeSet<i32> = registration.isr.iter().copied().collect();
    if isr.len() != registration.isr.len() || !isr.is_subset(&replicas) {
        return invalid(format!(
            "ISR {:?} is not a set of replicas {:?}",
            registration.isr, registration.replicas
        ));
    }
    if let Some(leader) = registration.leader_id {
        if !replicas.contains(&leader) {
            return invalid(format!("leader {leader} is not a replica"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::epoch::EpochHistory;
    use crate::replication::progress::UNKNOWN_OFFSET;

    const LEADER: i32 = 1;
    const F2: i32 = 2;
    const F3: i32 = 3;
    const LOCAL_BROKER_EPOCH: i64 = 40;
    const FOLLOWER_BROKER_EPOCH: i64 = 50;
    const LAG_MS: i64 = 1_000;
    const ACTIVE: ReplicaLiveness = ReplicaLiveness::Active {
        broker_epoch: FOLLOWER_BROKER_EPOCH,
    };

    fn config(local_broker_id: i32) -> PartitionConfig {
        PartitionConfig {
            local_broker_id,
            local_broker_epoch: LOCAL_BROKER_EPOCH,
            replica_lag_ms_max: LAG_MS,
            min_insync_replicas: 2,
        }
    }

    fn registration(
        leader_id: Option<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> PartitionRegistration {
        PartitionRegistration {
            leader_id,
            leader_epoch,
            partition_epoch,
            replicas: vec![LEADER, F2, F3],
            isr: isr.to_vec(),
        }
    }

    fn offsets(log: &EpochHistory) -> LogOffsets {
        LogOffsets {
            log_start_offset: 0,
            log_end_offset: log.log_end_offset(),
        }
    }

    fn proposed(effects: &[Effect]) -> Option<AlterPartition> {
        effects.iter().find_map(|effect| match effect {
            Effect::ProposeIsr(sent) => Some(sent.clone()),
            _ => None,
        })
    }

    fn advanced(effects: &[Effect]) -> Option<i64> {
        effects.iter().find_map(|effect| match effect {
            Effect::HighWatermarkAdvanced(offset) => Some(*offset),
            _ => None,
        })
    }

    fn ids(sent: &AlterPartition) -> Vec<i32> {
        sent.new_isr_ids().collect()
    }

    /// Broker 1 leading replicas {1, 2, 3}, with its log and a clock.
    struct LeaderFixture {
        partition: Partition,
        log: EpochHistory,
        now_ms: i64,
    }

    impl LeaderFixture {
        /// Leader epoch 1 over a log of `log_end_offset` records of epoch 0.
        fn new(isr: &[i32], log_end_offset: i64, high_watermark: i64) -> LeaderFixture {
            let mut log = EpochHistory::new(0);
            if log_end_offset > 0 {
                log.append(0, 0, log_end_offset);
            }
            LeaderFixture::with_log(log, 1, isr, high_watermark)
        }

        fn with_log(
            mut log: EpochHistory,
            leader_epoch: i32,
            isr: &[i32],
            high_watermark: i64,
        ) -> LeaderFixture {
            let mut partition = Partition::new(config(LEADER), offsets(&log), high_watermark);
            let effects = partition
                .become_leader(
                    &registration(Some(LEADER), leader_epoch, 1, isr),
                    offsets(&log),
                    0,
                )
                .unwrap();
            for effect in effects {
                if let Effect::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } = effect
                {
                    log.assign(leader_epoch, start_offset);
                }
            }
            LeaderFixture {
                partition,
                log,
                now_ms: 0,
            }
        }

        fn append(&mut self, records: i64) -> Vec<Effect> {
            let base = self.log.log_end_offset();
            self.log
                .append(self.partition.leader_epoch(), base, base + records);
            self.partition.on_leader_append(base + records)
        }

        /// An honest follower's fetch: its last batch is the leader's batch before
        /// `fetch_offset`.
        fn fetch(&mut self, replica_id: i32, fetch_offset: i64) -> FollowerFetchDecision {
            let last_fetched_epoch = self
                .log
                .entries()
                .iter()
                .take_while(|entry| entry.start_offset < fetch_offset)
                .last()
                .map(|entry| entry.epoch);
            self.fetch_as(
                FollowerFetch {
                    replica_id,
                    broker_epoch: FOLLOWER_BROKER_EPOCH,
                    current_leader_epoch: Some(self.partition.leader_epoch()),
                    fetch_offset,
                    last_fetched_epoch,
                    log_start_offset: 0,
                },
                ACTIVE,
            )
        }

        fn fetch_as(
            &mut self,
            fetch: FollowerFetch,
            liveness: ReplicaLiveness,
        ) -> FollowerFetchDecision {
            self.partition.on_follower_fetch(
                &fetch,
                offsets(&self.log),
                &self.log,
                liveness,
                self.now_ms,
            )
        }

        /// The effects of a fetch that must have been read.
        fn read(&mut self, replica_id: i32, fetch_offset: i64) -> Vec<Effect> {
            match self.fetch(replica_id, fetch_offset) {
                FollowerFetchDecision::Read { from, effects, .. } => {
                    assert_eq!(from, fetch_offset);
                    effects
                }
                other => panic!("fetch by {replica_id} at {fetch_offset}: {other:?}"),
            }
        }

        fn pending(&self) -> Option<&PendingIsrChange> {
            self.partition.isr().unwrap().pending()
        }

        fn committed_isr(&self) -> Vec<i32> {
            self.partition
                .isr()
                .unwrap()
                .committed_isr()
                .iter()
                .copied()
                .collect()
        }

        /// The controller accepts the change in flight.
        fn commit(&mut self) -> Vec<Effect> {
            let sent = self.pending().expect("a change in flight").sent().clone();
            let result = AlterPartitionResult::Committed {
                leader_epoch: sent.leader_epoch,
                partition_epoch: sent.partition_epoch + 1,
                isr: ids(&sent),
            };
            self.partition.on_isr_change_result(&sent, result).unwrap()
        }

        fn reject(&mut self, error: AlterPartitionError) -> Vec<Effect> {
            let sent = self.pending().expect("a change in flight").sent().clone();
            self.partition
                .on_isr_change_result(&sent, AlterPartitionResult::Rejected(error))
                .unwrap()
        }
    }

    /// Broker 2 following broker 1 in `leader_epoch`, over `log`.
    fn follower(log: &EpochHistory, high_watermark: i64, leader_epoch: i32) -> Partition {
        let mut partition = Partition::new(config(F2), offsets(log), high_watermark);
        let effects = partition
            .become_follower(
                &registration(Some(LEADER), leader_epoch, 1, &[1, 2, 3]),
                offsets(log),
            )
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::StartFetching {
                leader_id: LEADER,
                leader_epoch
            }]
        );
        partition
    }

    fn history(batches: &[(i32, i64, i64)]) -> EpochHistory {
        let mut log = EpochHistory::new(0);
        for &(epoch, base, next) in batches {
            log.append(epoch, base, next);
        }
        log
    }

    // --- High watermark ------------------------------------------------------------------

    #[test]
    fn hw_is_min_leo_over_maximal_isr() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 0, 0);
        assert_eq!(
            leader.append(10),
            vec![],
            "followers not heard from hold the HW"
        );
        assert_eq!(advanced(&leader.read(F2, 10)), None, "F3 still unknown");
        assert_eq!(advanced(&leader.read(F3, 6)), Some(6));
        assert_eq!(leader.partition.high_watermark(), 6);
        assert_eq!(advanced(&leader.read(F3, 10)), Some(10));
        assert_eq!(leader.append(5), vec![], "the leader alone cannot move it");
        assert_eq!(leader.partition.high_watermark(), 10);
    }

    #[test]
    fn hw_waits_for_member_of_pending_expansion() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        assert_eq!(advanced(&leader.read(F2, 10)), Some(10));
        let sent = proposed(&leader.read(F3, 10)).expect("F3 caught up: expansion");
        assert_eq!(ids(&sent), vec![1, 2, 3]);
        leader.append(5);
        assert_eq!(
            advanced(&leader.read(F2, 15)),
            None,
            "F3 (pending) is at 10"
        );
        assert_eq!(advanced(&leader.read(F3, 12)), Some(12));
    }

    #[test]
    fn hw_keeps_counting_member_of_pending_shrink() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        leader.read(F2, 10);
        assert_eq!(advanced(&leader.read(F3, 10)), Some(10));
        leader.append(5);
        leader.now_ms = LAG_MS + 1;
        assert_eq!(advanced(&leader.read(F2, 15)), None, "F3 is at 10");
        let sent = proposed(&leader.partition.tick(leader.now_ms)).expect("F3 lags");
        assert_eq!(ids(&sent), vec![1, 2]);
        leader.append(1);
        assert_eq!(
            advanced(&leader.read(F2, 16)),
            None,
            "F3 counts until the shrink is confirmed"
        );
        assert_eq!(leader.partition.high_watermark(), 10);
        assert_eq!(advanced(&leader.commit()), Some(16));
    }

    #[test]
    fn hw_does_not_advance_below_min_isr() {
        let mut leader = LeaderFixture::new(&[1], 0, 0);
        assert_eq!(leader.append(10), vec![], "ISR {{1}} < min ISR 2");
        assert_eq!(leader.partition.high_watermark(), 0);
        let effects = leader.read(F2, 10);
        assert!(proposed(&effects).is_some(), "F2 joins");
        assert_eq!(advanced(&effects), None, "the committed ISR is still {{1}}");
        assert_eq!(advanced(&leader.commit()), Some(10));
    }

    #[test]
    fn lowering_min_isr_lets_hw_advance() {
        let mut leader = LeaderFixture::new(&[1], 0, 0);
        leader.append(10);
        assert_eq!(
            leader.partition.set_min_insync_replicas(1),
            vec![Effect::HighWatermarkAdvanced(10)]
        );
    }

    #[test]
    fn min_isr_above_replication_factor_is_capped() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 0, 0);
        leader.partition.set_min_insync_replicas(5);
        assert_eq!(leader.partition.effective_min_isr(), 3);
        leader.append(4);
        leader.read(F2, 4);
        assert_eq!(advanced(&leader.read(F3, 4)), Some(4));
    }

    // --- ISR -------------------------------------------------------------------------------

    #[test]
    fn follower_lagging_longer_than_lag_max_is_proposed_out() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        leader.read(F2, 10);
        leader.read(F3, 10);
        leader.append(5);
        leader.now_ms = 500;
        leader.read(F2, 15);
        assert_eq!(
            leader.partition.tick(LAG_MS),
            vec![],
            "F3 lags exactly the max"
        );
        let sent = proposed(&leader.partition.tick(LAG_MS + 1)).expect("F3 lags too long");
        assert_eq!(ids(&sent), vec![1, 2]);
        assert_eq!(sent.partition_epoch, 1);
        assert_eq!(sent.leader_epoch, 1);
        assert!(matches!(
            leader.pending(),
            Some(PendingIsrChange::PendingShrink { removed, .. }) if removed == &BTreeSet::from([F3])
        ));
    }

    #[test]
    fn follower_keeping_pace_with_a_trickle_stays_in_isr() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        leader.read(F3, 10);
        // Every round the leader gets one more record and F2 asks for exactly what the
        // leader had at its previous fetch: never at the end, never behind.
        let mut previous_end = 10;
        for round in 1..=10 {
            leader.append(1);
            leader.now_ms = round * (LAG_MS / 2);
            leader.read(F2, previous_end);
            leader.read(F3, leader.log.log_end_offset());
            previous_end = leader.log.log_end_offset();
        }
        assert_eq!(leader.partition.tick(leader.now_ms), vec![]);
    }

    #[test]
    fn one_isr_change_in_flight_at_a_time() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        leader.read(F2, 10);
        leader.append(5);
        leader.now_ms = LAG_MS + 1;
        assert!(proposed(&leader.partition.tick(leader.now_ms)).is_some());
        assert!(
            proposed(&leader.read(F3, 10)).is_none(),
            "F3 qualifies, but a shrink is in flight"
        );
        assert_eq!(leader.partition.tick(leader.now_ms + 1), vec![]);
        leader.commit();
        assert_eq!(leader.committed_isr(), vec![1]);
        let sent = proposed(&leader.read(F3, 10)).expect("nothing in flight now");
        assert_eq!(ids(&sent), vec![1, 3]);
        assert_eq!(sent.partition_epoch, 2, "based on the committed epoch");
    }

    #[test]
    fn follower_joins_isr_only_after_reaching_hw_and_epoch_start() {
        // The new leader's epoch 1 starts at 10; it knew the HW only up to 4.
        let mut leader = LeaderFixture::new(&[1, 2], 10, 4);
        assert_eq!(leader.partition.leader_epoch_start_offset(), Some(10));
        assert_eq!(leader.partition.high_watermark(), 4);
        assert!(proposed(&leader.read(F3, 3)).is_none(), "below the HW");
        assert!(
            proposed(&leader.read(F3, 6)).is_none(),
            "above the HW but below the epoch start: may lack acknowledged data"
        );
        let sent = proposed(&leader.read(F3, 10)).expect("at the epoch start");
        assert_eq!(ids(&sent), vec![1, 2, 3]);
        assert_eq!(
            sent.new_isr[2],
            IsrMember {
                broker_id: F3,
                broker_epoch: FOLLOWER_BROKER_EPOCH
            }
        );
        assert_eq!(
            sent.new_isr[0],
            IsrMember {
                broker_id: LEADER,
                broker_epoch: LOCAL_BROKER_EPOCH
            }
        );
        assert_eq!(
            sent.new_isr[1].broker_epoch, BROKER_EPOCH_UNKNOWN,
            "F2 has not fetched from this leader"
        );
    }

    #[test]
    fn follower_on_inactive_or_stale_broker_does_not_join_isr() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        let fetch = FollowerFetch {
            replica_id: F3,
            broker_epoch: FOLLOWER_BROKER_EPOCH,
            current_leader_epoch: Some(1),
            fetch_offset: 10,
            last_fetched_epoch: Some(0),
            log_start_offset: 0,
        };
        for liveness in [
            ReplicaLiveness::ShuttingDown {
                broker_epoch: FOLLOWER_BROKER_EPOCH,
            },
            ReplicaLiveness::Fenced,
        ] {
            match leader.fetch_as(fetch, liveness) {
                FollowerFetchDecision::Read { effects, .. } => {
                    assert!(proposed(&effects).is_none(), "{liveness:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        // The broker re-registered (newer epoch) and this fetch is from before.
        let restarted = ReplicaLiveness::Active {
            broker_epoch: FOLLOWER_BROKER_EPOCH + 1,
        };
        assert_eq!(
            leader.fetch_as(fetch, restarted),
            FollowerFetchDecision::Refused(FetchRefusal::StaleBrokerEpoch {
                requested: FOLLOWER_BROKER_EPOCH,
                registered: FOLLOWER_BROKER_EPOCH + 1
            })
        );
        assert!(leader.pending().is_none());
    }

    #[test]
    fn rejected_isr_change_clears_pending_state() {
        for error in [
            AlterPartitionError::IneligibleReplica,
            AlterPartitionError::OperationNotAttempted,
        ] {
            let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
            leader.read(F2, 10);
            assert!(proposed(&leader.read(F3, 10)).is_some());
            assert_eq!(leader.reject(error), vec![]);
            assert!(leader.pending().is_none(), "{error:?}");
            assert_eq!(leader.committed_isr(), vec![1, 2]);
            assert_eq!(
                leader.partition.isr().unwrap().maximal_len(),
                2,
                "F3 no longer holds the HW"
            );
            assert!(
                proposed(&leader.read(F3, 10)).is_some(),
                "a new proposal may follow"
            );
        }
    }

    #[test]
    fn isr_change_that_may_have_been_applied_stays_pending_until_new_metadata() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        leader.read(F2, 10);
        leader.read(F3, 10);
        for error in [
            AlterPartitionError::FencedLeaderEpoch,
            AlterPartitionError::InvalidPartitionEpoch,
        ] {
            assert_eq!(leader.reject(error), vec![]);
            assert!(
                matches!(
                    leader.pending(),
                    Some(PendingIsrChange::PendingExpand { added: F3, .. })
                ),
                "{error:?}"
            );
        }
        // A replay of the registration already applied changes nothing...
        let log = offsets(&leader.log);
        let same = registration(Some(LEADER), 1, 1, &[1, 2]);
        assert_eq!(leader.partition.become_leader(&same, log, 0), Ok(vec![]));
        assert!(leader.pending().is_some());
        // ...newer metadata supersedes the change.
        let newer = registration(Some(LEADER), 1, 3, &[1, 2, 3]);
        leader.partition.become_leader(&newer, log, 0).unwrap();
        assert!(leader.pending().is_none());
        assert_eq!(leader.committed_isr(), vec![1, 2, 3]);
        assert_eq!(leader.partition.partition_epoch(), 3);
    }

    #[test]
    fn answer_for_a_superseded_proposal_is_ignored() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        leader.read(F2, 10);
        let sent = proposed(&leader.read(F3, 10)).unwrap();
        let log = offsets(&leader.log);
        leader
            .partition
            .become_leader(&registration(Some(LEADER), 1, 2, &[1, 2]), log, 0)
            .unwrap();
        let late = AlterPartitionResult::Committed {
            leader_epoch: 1,
            partition_epoch: 2,
            isr: vec![1, 2, 3],
        };
        assert_eq!(
            leader.partition.on_isr_change_result(&sent, late),
            Err(IsrResultIgnored::NotTheProposalInFlight)
        );
        assert_eq!(leader.committed_isr(), vec![1, 2]);
    }

    #[test]
    fn committed_isr_without_the_leader_is_ignored() {
        let mut leader = LeaderFixture::new(&[1, 2], 10, 0);
        leader.read(F2, 10);
        let sent = proposed(&leader.read(F3, 10)).unwrap();
        let bogus = AlterPartitionResult::Committed {
            leader_epoch: 1,
            partition_epoch: 2,
            isr: vec![2, 3],
        };
        assert!(matches!(
            leader.partition.on_isr_change_result(&sent, bogus),
            Err(IsrResultIgnored::InvalidIsr(_))
        ));
        assert!(leader.pending().is_some());
    }

    // --- Fetch validation and divergence (leader side) ---------------------------------------

    #[test]
    fn diverging_fetch_is_answered_with_epoch_end_offset() {
        // Epoch 0 wrote [0, 8), epoch 2 wrote [8, 12); this broker now leads epoch 3.
        let log = history(&[(0, 0, 8), (2, 8, 12)]);
        let mut leader = LeaderFixture::with_log(log, 3, &[1, 2, 3], 0);
        let fetch = |fetch_offset, last_fetched_epoch| FollowerFetch {
            replica_id: F2,
            broker_epoch: FOLLOWER_BROKER_EPOCH,
            current_leader_epoch: Some(3),
            fetch_offset,
            last_fetched_epoch: Some(last_fetched_epoch),
            log_start_offset: 0,
        };
        // F2 has epoch-1 records the leader never had: epoch 1 "ended" where epoch 2 began,
        // and the leader names the largest epoch it knows below 1.
        assert_eq!(
            leader.fetch_as(fetch(10, 1), ACTIVE),
            FollowerFetchDecision::Diverging(EpochEndOffset {
                epoch: 0,
                end_offset: 8
            })
        );
        // F2 has more epoch-0 records than the leader.
        assert_eq!(
            leader.fetch_as(fetch(9, 0), ACTIVE),
            FollowerFetchDecision::Diverging(EpochEndOffset {
                epoch: 0,
                end_offset: 8
            })
        );
        assert_eq!(
            leader.partition.followers().unwrap().log_end_offset(F2),
            UNKNOWN_OFFSET,
            "diverging fetches record no progress"
        );
        // Same epoch, within its range: no divergence.
        assert!(matches!(
            leader.fetch_as(fetch(10, 2), ACTIVE),
            FollowerFetchDecision::Read { from: 10, .. }
        ));
        assert_eq!(leader.partition.followers().unwrap().log_end_offset(F2), 10);
    }

    #[test]
    fn fetch_offset_outside_the_log_is_out_of_range() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        let ahead = FollowerFetch {
            replica_id: F2,
            broker_epoch: FOLLOWER_BROKER_EPOCH,
            current_leader_epoch: Some(1),
            fetch_offset: 11,
            last_fetched_epoch: None,
            log_start_offset: 0,
        };
        let decision = leader.fetch_as(ahead, ACTIVE);
        assert!(
            matches!(decision, FollowerFetchDecision::Refused(refusal) if refusal.error_code() == ErrorCode::OffsetOutOfRange),
            "{decision:?}"
        );
    }

    #[test]
    fn fetch_in_another_leader_epoch_or_from_a_stranger_is_refused() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        let mut fetch = FollowerFetch {
            replica_id: F2,
            broker_epoch: FOLLOWER_BROKER_EPOCH,
            current_leader_epoch: Some(0),
            fetch_offset: 10,
            last_fetched_epoch: Some(0),
            log_start_offset: 0,
        };
        let refusal = |decision| match decision {
            FollowerFetchDecision::Refused(refusal) => refusal.error_code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refusal(leader.fetch_as(fetch, ACTIVE)),
            ErrorCode::FencedLeaderEpoch
        );
        fetch.current_leader_epoch = Some(2);
        assert_eq!(
            refusal(leader.fetch_as(fetch, ACTIVE)),
            ErrorCode::UnknownLeaderEpoch
        );
        fetch.current_leader_epoch = Some(1);
        fetch.replica_id = 9;
        assert_eq!(
            refusal(leader.fetch_as(fetch, ACTIVE)),
            ErrorCode::UnknownLeaderEpoch
        );
        assert_eq!(leader.partition.followers().unwrap().len(), 2);
    }

    // --- Follower side ---------------------------------------------------------------------

    #[test]
    fn follower_truncates_to_diverging_end_not_hw() {
        // Epoch 0 [0, 10), epoch 1 [10, 12); HW 5.
        let log = history(&[(0, 0, 10), (1, 10, 12)]);
        let mut partition = follower(&log, 5, 2);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        assert_eq!(sent.fetch_offset, 12);
        assert_eq!(sent.last_fetched_epoch, Some(1));
        let response = FetchedPartition {
            high_watermark: 5,
            diverging_epoch: Some(EpochEndOffset {
                epoch: 1,
                end_offset: 11,
            }),
            records_end_offset: None,
        };
        let actions = partition
            .on_fetch_response(&sent, &response, offsets(&log), &log)
            .unwrap();
        assert_eq!(actions, vec![FollowerAction::TruncateTo(11)]);
        assert_eq!(partition.high_watermark(), 5);
    }

    #[test]
    fn follower_lacking_the_leaders_epoch_truncates_to_its_own_epoch_end() {
        // The leader says epoch 1 ended at 9; this log never had epoch 1: its epoch 0 ended
        // at 6, so everything from 6 is suspect. The next fetch (last epoch 0) narrows it.
        let log = history(&[(0, 0, 6), (2, 6, 12)]);
        let mut partition = follower(&log, 3, 3);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        let diverging = |epoch, end_offset| FetchedPartition {
            high_watermark: 3,
            diverging_epoch: Some(EpochEndOffset { epoch, end_offset }),
            records_end_offset: None,
        };
        assert_eq!(
            partition.on_fetch_response(&sent, &diverging(1, 9), offsets(&log), &log),
            Ok(vec![FollowerAction::TruncateTo(6)])
        );
        // Knowing the epoch, it takes the smaller of the two end offsets.
        let log = history(&[(0, 0, 4), (1, 4, 7), (3, 7, 12)]);
        let mut partition = follower(&log, 3, 4);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        assert_eq!(
            partition.on_fetch_response(&sent, &diverging(1, 9), offsets(&log), &log),
            Ok(vec![FollowerAction::TruncateTo(7)])
        );
    }

    #[test]
    fn follower_truncation_below_its_hw_lowers_the_hw() {
        let log = history(&[(0, 0, 10)]);
        let mut partition = follower(&log, 8, 2);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        let response = FetchedPartition {
            high_watermark: 6,
            diverging_epoch: Some(EpochEndOffset {
                epoch: 0,
                end_offset: 6,
            }),
            records_end_offset: None,
        };
        assert_eq!(
            partition.on_fetch_response(&sent, &response, offsets(&log), &log),
            Ok(vec![
                FollowerAction::TruncateTo(6),
                FollowerAction::UpdateHighWatermark(6)
            ])
        );
    }

    #[test]
    fn follower_hw_is_leader_hw_clamped_to_own_log_end() {
        let log = history(&[(0, 0, 5)]);
        let mut partition = follower(&log, 0, 1);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        let response = FetchedPartition {
            high_watermark: 20,
            diverging_epoch: None,
            records_end_offset: Some(8),
        };
        assert_eq!(
            partition.on_fetch_response(&sent, &response, offsets(&log), &log),
            Ok(vec![
                FollowerAction::Append,
                FollowerAction::UpdateHighWatermark(8)
            ])
        );
        assert_eq!(partition.high_watermark(), 8);
    }

    #[test]
    fn response_to_a_fetch_from_an_older_epoch_is_refused() {
        let log = history(&[(0, 0, 5)]);
        let mut partition = follower(&log, 0, 1);
        let sent = partition
            .next_fetch(offsets(&log), log.latest_epoch())
            .unwrap();
        partition
            .become_follower(&registration(Some(F3), 2, 2, &[2, 3]), offsets(&log))
            .unwrap();
        let response = FetchedPartition {
            high_watermark: 5,
            diverging_epoch: None,
            records_end_offset: Some(9),
        };
        assert_eq!(
            partition.on_fetch_response(&sent, &response, offsets(&log), &log),
            Err(FetchResponseRefusal::StaleLeaderEpoch {
                sent: Some(1),
                current: 2
            })
        );
        assert_eq!(partition.high_watermark(), 0);
    }

    // --- Epochs and roles --------------------------------------------------------------------

    #[test]
    fn stale_leader_epoch_is_ignored() {
        let log = history(&[(0, 0, 5)]);
        let mut partition = follower(&log, 0, 3);
        let before = partition.clone();
        assert_eq!(
            partition.become_follower(&registration(Some(F3), 2, 2, &[1, 2, 3]), offsets(&log)),
            Err(MetadataRefusal::StaleLeaderEpoch {
                received: 2,
                current: 3
            })
        );
        assert_eq!(
            partition.apply_registration(&registration(Some(F2), 2, 5, &[2]), offsets(&log), 0),
            Err(MetadataRefusal::StaleLeaderEpoch {
                received: 2,
                current: 3
            }),
            "not even to make this broker leader"
        );
        partition
            .become_follower(&registration(Some(LEADER), 3, 4, &[1, 2]), offsets(&log))
            .unwrap();
        assert_eq!(
            partition.become_follower(&registration(Some(F3), 4, 3, &[1, 3]), offsets(&log)),
            Err(MetadataRefusal::StalePartitionEpoch {
                received: 3,
                current: 4
            })
        );
        assert_eq!(partition.leader_epoch(), 3);
        assert_eq!(partition.leader_id(), Some(LEADER));
        assert_ne!(partition, before, "only the valid update was applied");
    }

    #[test]
    fn invalid_registration_is_refused() {
        let log = history(&[(0, 0, 5)]);
        let mut partition = Partition::new(config(LEADER), offsets(&log), 0);
        let not_in_isr = registration(Some(LEADER), 1, 1, &[2, 3]);
        let isr_outside_replicas = registration(Some(LEADER), 1, 1, &[1, 7]);
        for bad in [not_in_isr, isr_outside_replicas] {
            assert!(matches!(
                partition.apply_registration(&bad, offsets(&log), 0),
                Err(MetadataRefusal::Invalid(_))
            ));
        }
        assert!(!partition.is_leader());
    }

    #[test]
    fn new_leader_starts_with_unknown_followers_and_keeps_its_hw() {
        let mut log = history(&[(0, 0, 10)]);
        let mut partition = follower(&log, 5, 1);
        // Broker 2 is elected in epoch 2.
        let effects = partition
            .become_leader(
                &registration(Some(F2), 2, 2, &[1, 2, 3]),
                offsets(&log),
                100,
            )
            .unwrap();
        assert_eq!(
            effects,
            vec![
                Effect::StopFetching,
                Effect::AssignEpochStart {
                    leader_epoch: 2,
                    start_offset: 10
                }
            ]
        );
        log.assign(2, 10);
        assert_eq!(partition.high_watermark(), 5);
        let followers = partition.followers().unwrap();
        assert_eq!(followers.log_end_offset(LEADER), UNKNOWN_OFFSET);
        assert_eq!(followers.log_end_offset(F3), UNKNOWN_OFFSET);
        assert!(partition.followers().unwrap().get(F2).is_none());
        for replica_id in [LEADER, F3] {
            let fetch = FollowerFetch {
                replica_id,
                broker_epoch: FOLLOWER_BROKER_EPOCH,
                current_leader_epoch: Some(2),
                fetch_offset: 10,
                last_fetched_epoch: Some(0),
                log_start_offset: 0,
            };
            partition.on_follower_fetch(&fetch, offsets(&log), &log, ACTIVE, 100);
        }
        assert_eq!(partition.high_watermark(), 10);
    }

    #[test]
    fn reelected_leader_relearns_follower_progress() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 10, 0);
        leader.read(F2, 10);
        leader.read(F3, 7);
        assert_eq!(leader.partition.high_watermark(), 7);
        let log = offsets(&leader.log);
        let effects = leader
            .partition
            .become_leader(&registration(Some(LEADER), 2, 2, &[1, 2, 3]), log, 50)
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::AssignEpochStart {
                leader_epoch: 2,
                start_offset: 10
            }]
        );
        let followers = leader.partition.followers().unwrap();
        assert_eq!(followers.log_end_offset(F2), UNKNOWN_OFFSET);
        assert_eq!(followers.log_end_offset(F3), UNKNOWN_OFFSET);
        assert_eq!(leader.partition.high_watermark(), 7, "the HW stays");
        leader.log.assign(2, 10);
        leader.read(F2, 10);
        assert_eq!(advanced(&leader.read(F3, 10)), Some(10));
    }

    // --- acks=all ----------------------------------------------------------------------------

    #[test]
    fn acks_all_refused_below_min_isr() {
        let leader = LeaderFixture::new(&[1], 0, 0);
        let refusal = leader.partition.check_acks_all_admission().unwrap_err();
        assert_eq!(
            refusal,
            AcksAllRefusal::NotEnoughReplicas {
                isr_size: 1,
                min_insync_replicas: 2
            }
        );
        assert_eq!(refusal.error_code(), ErrorCode::NotEnoughReplicas);
        let leader = LeaderFixture::new(&[1, 2], 0, 0);
        assert_eq!(leader.partition.check_acks_all_admission(), Ok(()));
        let log = history(&[(0, 0, 3)]);
        assert_eq!(
            follower(&log, 0, 1).check_acks_all_admission(),
            Err(AcksAllRefusal::NotLeader)
        );
    }

    #[test]
    fn acks_all_waits_for_hw() {
        let mut leader = LeaderFixture::new(&[1, 2, 3], 0, 0);
        leader.append(10);
        let wait = AcksAllWait {
            leader_epoch: 1,
            required_offset: 10,
        };
        leader.read(F2, 10);
        assert_eq!(
            leader.partition.acks_all_status(wait),
            AcksAllStatus::Pending
        );
        leader.read(F3, 10);
        assert_eq!(leader.partition.acks_all_status(wait), AcksAllStatus::Done);
    }

    #[test]
    fn acks_all_after_append_reports_shrink() {
        let mut leader = LeaderFixture::new(&[1, 2], 0, 0);
        assert_eq!(leader.partition.check_acks_all_admission(), Ok(()));
        leader.append(10);
        let wait = AcksAllWait {
            leader_epoch: 1,
            required_offset: 10,
        };
        assert_eq!(advanced(&leader.read(F2, 10)), Some(10));
        leader.append(5);
        let later = AcksAllWait {
            leader_epoch: 1,
            required_offset: 15,
        };
        // Before the purgatory looks, F2 lags out and the controller confirms.
        leader.now_ms = LAG_MS + 1;
        assert!(proposed(&leader.partition.tick(leader.now_ms)).is_some());
        assert_eq!(
            leader.partition.acks_all_status(wait),
            AcksAllStatus::Done,
            "a pending shrink still counts F2"
        );
        leader.commit();
        assert_eq!(leader.committed_isr(), vec![1]);
        assert_eq!(
            leader.partition.acks_all_status(wait),
            AcksAllStatus::NotEnoughReplicasAfterAppend
        );
        // A produce the HW has not reached waits (strict min ISR holds the HW still).
        assert_eq!(
            leader.partition.acks_all_status(later),
            AcksAllStatus::Pending
        );
    }

    #[test]
    fn leadership_ended_fails_parked_produces() {
        let mut leader = LeaderFixture::new(&[1, 2], 0, 0);
        leader.append(10);
        let wait = AcksAllWait {
            leader_epoch: 1,
            required_offset: 10,
        };
        let log = offsets(&leader.log);
        let effects = leader
            .partition
            .become_follower(&registration(Some(F2), 2, 2, &[1, 2]), log)
            .unwrap();
        assert_eq!(
            effects,
            vec![
                Effect::LeadershipEnded,
                Effect::StartFetching {
                    leader_id: F2,
                    leader_epoch: 2
                }
            ]
        );
        assert_eq!(
            leader.partition.acks_all_status(wait),
            AcksAllStatus::NotLeaderOrFollower
        );
        // Leading again later does not revive it: the log may have been truncated between.
        leader
            .partition
            .become_leader(&registration(Some(LEADER), 3, 3, &[1]), log, 0)
            .unwrap();
        leader.partition.set_min_insync_replicas(1);
        assert!(leader.partition.high_watermark() >= 10);
        assert_eq!(
            leader.partition.acks_all_status(wait),
            AcksAllStatus::NotLeaderOrFollower
        );
    }
}
