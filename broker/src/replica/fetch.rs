//! Reading from hosted partitions: [`ReplicaManager::fetch_records`], Kafka's
//! `ReplicaManager.fetchMessages`, for consumers and for followers, with the long poll.
//!
//! - Consumers read from the partition leader (NOT_LEADER_OR_FOLLOWER elsewhere;
//!   FENCED_/UNKNOWN_LEADER_EPOCH when their `current_leader_epoch` is stale or ahead) and
//!   never see records at or above the high watermark. A consumer naming its rack is pointed
//!   at the in-sync replica in that rack (KIP-392, Kafka's `RackAwareReplicaSelector`), and a
//!   follower serves consumers while the metadata has it in the ISR.
//! - Followers fetch as replication: the leader's state machine checks the fetch
//!   ([`Partition::on_follower_fetch`](crate::replication::Partition::on_follower_fetch):
//!   epochs, broker epoch, divergence) and records the follower's progress, which moves the
//!   ISR and the high watermark; the answer carries records up to the log end, the leader's
//!   high watermark, and a diverging epoch when the follower must truncate. A replica that a
//!   reassignment is adding, or that its topic's `leader.replication.throttled.replicas`
//!   names, copies at the replication throttle's rate (the dynamic
//!   `leader.replication.throttled.rate`, else `--reassignment-throttle-bytes-per-sec`).
//! - Each partition reads at most its own `max_bytes`, the whole fetch at most the
//!   request's, except that the first batch of the first non-empty partition is always
//!   returned whole so a consumer can make progress.
//! - A consumer's read is also bounded by a [`ResponseBudget`], the broker-wide pool of
//!   request and response bytes (`server::request_memory`): each pass takes what it may
//!   use from the pool without waiting (less than `max_bytes` when the pool is short, down
//!   to nothing, and then the first batch alone), and the bytes stay taken until the
//!   response is written. A pass that does not answer gives its bytes back before it
//!   waits, so a long poll holds no memory. Followers' reads (replication) are not bounded
//!   by it.
//! - Long poll: if fewer than `min_bytes` are ready the fetch waits in the fetch purgatory,
//!   up to `max_wait`, for the visible end of any requested partition to move (an append, or
//!   with fsync durability a completed fsync; for a follower, any append), then reads again. An error or a redirect to a
//!   preferred replica answers at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use sluice_protocol::batch::Batches;
use sluice_protocol::clock::monotonic_ms;
use sluice_protocol::error::ErrorCode;
use tokio::time::Instant;

use super::purgatory::{check_leader_epoch, Purgatory, RemoteTime};
use super::{offsets, storage_error_code, Replica, ReplicaManager};
use crate::metrics as m;
use crate::replication::{FollowerFetch, FollowerFetchDecision};
use crate::storage::{PartitionLog, StorageError};

/// Who is fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOrigin {
    /// A consumer, in `rack` (empty: none given).
    Consumer { rack: String },
    /// A follower replica (Fetch with a replica id >= 0).
    Follower { replica_id: i32, broker_epoch: i64 },
}

impl FetchOrigin {
    pub fn is_consumer(&self) -> bool {
        matches!(self, FetchOrigin::Consumer { .. })
    }
}

/// What a fetch asks for as a whole.
#[derive(Debug, Clone)]
pub struct FetchParams {
    pub origin: FetchOrigin,
    /// The whole fetch's byte limit (the caller caps it by the broker's).
    pub max_bytes: usize,
    pub min_bytes: usize,
    pub max_wait: Duration,
}

/// One partition of a fetch, as the request gives it (-1 for "not given").
#[derive(Debug, Clone)]
pub struct PartitionFetch {
    pub topic: String,
    pub partition: i32,
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// A follower's log start offset.
    pub log_start_offset: i64,
    pub max_bytes: usize,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRead {
    pub error: ErrorCode,
    /// Whole batches; empty (never absent) when there is nothing to send.
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// KIP-392: the replica the consumer should read from instead (-1: none).
    pub preferred_read_replica: i32,
    /// KIP-320: the follower must truncate to `end_offset` of `epoch`.
    pub diverging_epoch: Option<(i32, i64)>,
}

impl Default for PartitionRead {
    fn default() -> PartitionRead {
        PartitionRead {
            error: ErrorCode::None,
            records: Bytes::new(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            preferred_read_replica: -1,
            diverging_epoch: None,
        }
    }
}

type Watch = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a consumer fetch's record bytes come from (see the module documentation).
pub trait ResponseBudget {
    /// Holds the bytes taken; they go back when it is dropped.
    type Grant: Send + 'static;
    /// Take up to `bytes` without waiting: how many were taken, and their grant.
    fn take_up_to(&self, bytes: usize) -> (usize, Self::Grant);
}

/// No pool: every fetch may read its whole `max_bytes`.
impl ResponseBudget for () {
    type Grant = ();
    fn take_up_to(&self, bytes: usize) -> (usize, ()) {
        (bytes, ())
    }
}

/// Batches read from a partition this broker leads, for a coordinator loading its state.
#[derive(Debug)]
pub struct LocalRead {
    /// Whole batches from the requested offset on (empty at the log end).
    pub records: bytes::Bytes,
    /// The log end offset when the read was made.
    pub log_end_offset: i64,
    pub log_start_offset: i64,
}

impl ReplicaManager {
    /// Read the local log of a partition this broker leads from `offset` (up to
    /// `max_bytes`, the first batch whole): how a coordinator loads its partition. Not for
    /// client fetches, which see only what is below the high watermark.
    pub fn read_led_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<LocalRead, ErrorCode> {
        let replica = self.leader_replica(topic, partition)?;
        let log_end_offset = replica.log.log_end_offset();
        let log_start_offset = replica.log.log_start_offset();
        let records = if offset >= log_end_offset {
            bytes::Bytes::new()
        } else {
            replica
                .log
                .read(offset.max(log_start_offset), max_bytes)
                .map_err(|error| storage_error_code(&error))?
        };
        Ok(LocalRead {
            records,
            log_end_offset,
            log_start_offset,
        })
    }

    /// Read every requested partition, long-polling for `min_bytes` (parked in the fetch
    /// purgatory, its time added to `remote`). One answer per partition, in order, the
    /// record bytes they carry, and (for a consumer) the grant of `budget` holding them.
    pub async fn fetch_records<B: ResponseBudget>(
        &self,
        params: &FetchParams,
        partitions: &[PartitionFetch],
        remote: &mut RemoteTime,
        budget: &B,
    ) -> (Vec<PartitionRead>, usize, Option<B::Grant>) {
        let deadline = Instant::now() + params.max_wait;
        loop {
            // Subscribe before reading so an append between the read and the wait wakes us.
            let watches = self.subscribe(&params.origin, partitions);
            let (max_bytes, grant) = take_budget(params, budget);
            let (reads, bytes, answer_now) = self.read_once(params, max_bytes, partitions);
            if bytes >= params.min_bytes
                || answer_now
                || Instant::now() >= deadline
                || watches.is_empty()
            {
                return (reads, bytes, grant);
            }
            // Hold no memory while waiting.
            drop((reads, grant));
            let changed = tokio::time::timeout_at(deadline, select_all(watches));
            if remote.park(Purgatory::Fetch, changed).await.is_err() {
                // Deadline: answer with whatever is there now.
                let (max_bytes, grant) = take_budget(params, budget);
                let (reads, bytes, _) = self.read_once(params, max_bytes, partitions);
                return (reads, bytes, grant);
            }
        }
    }

    /// Armed futures per requested partition hosted here: its end moving (the visible end
    /// for a consumer; the log end for a follower, which copies records before the fsync
    /// that makes them visible, and whose progress is what lets acks=all complete), and its
    /// high watermark or leadership changing.
    fn subscribe(&self, origin: &FetchOrigin, partitions: &[PartitionFetch]) -> Vec<Watch> {
        let mut watches: Vec<Watch> = Vec::new();
        for fetch in partitions {
            if let Some(replica) = self.replica(&fetch.topic, fetch.partition) {
                if origin.is_consumer() {
                    watches.push(Box::pin(replica.log.durable_end_changed()));
                } else {
                    watches.push(Box::pin(replica.log.log_end_changed()));
                }
                let mut changes = replica.subscribe();
                watches.push(Box::pin(async move {
                    let _ = changes.changed().await;
                }));
            }
        }
        watches
    }

    /// One pass over the partitions: the answers, their record bytes, and whether one of
    /// them must be answered at once (an error, a redirect).
    fn read_once(
        &self,
        params: &FetchParams,
        max_bytes: usize,
        partitions: &[PartitionFetch],
    ) -> (Vec<PartitionRead>, usize, bool) {
        let mut reads = Vec::with_capacity(partitions.len());
        let mut total = 0usize;
        let mut answer_now = false;
        for fetch in partitions {
            // The first bytes of a response may exceed the limits by one batch.
            let budget = if total == 0 {
                fetch.max_bytes.min(max_bytes).max(1)
            } else {
                fetch.max_bytes.min(max_bytes.saturating_sub(total))
            };
            let mut read = PartitionRead::default();
            let outcome = match &params.origin {
                FetchOrigin::Consumer { rack } => {
                    self.read_for_consumer(fetch, rack, budget, &mut read)
                }
                FetchOrigin::Follower {
                    replica_id,
                    broker_epoch,
                } => self.read_for_follower(fetch, *replica_id, *broker_epoch, budget, &mut read),
            };
            match outcome {
                Ok(records) => {
                    total += records.len();
                    read.records = records;
                    // A redirect to a preferred read replica is answered at once, like an
                    // error: waiting here would only delay the consumer's move.
                    answer_now |= read.preferred_read_replica >= 0;
                }
                Err(code) => {
                    read.error = code;
                    answer_now = true;
                }
            }
            reads.push(read);
        }
        (reads, total, answer_now)
    }

    fn read_for_consumer(
        &self,
        fetch: &PartitionFetch,
        client_rack: &str,
        budget: usize,
        read: &mut PartitionRead,
    ) -> Result<Bytes, ErrorCode> {
        let Some(replica) = self.replica(&fetch.topic, fetch.partition) else {
            // Not hosted here: the error leader_replica gives (unknown topic or not leader).
            return self
                .leader_replica(&fetch.topic, fetch.partition)
                .map(|_| Bytes::new());
        };
        let (is_leader, leader_epoch, preferred) = {
            let state = replica.lock();
            let preferred = if state.is_leader() && !client_rack.is_empty() {
                self.preferred_read_replica(&state, client_rack)
            } else {
                None
            };
            (state.is_leader(), state.leader_epoch(), preferred)
        };
        if !is_leader && !self.serves_consumers_as_follower(&replica) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        check_leader_epoch(fetch.current_leader_epoch, leader_epoch)?;
        let log = &replica.log;
        let visible_end = replica.visible_end();
        read.high_watermark = visible_end;
        read.last_stable_offset = visible_end;
        read.log_start_offset = log.log_start_offset();
        if let Some(preferred) = preferred {
            // KIP-392: point the consumer at the in-sync replica in its rack, send no records.
            read.preferred_read_replica = preferred;
            return Ok(Bytes::new());
        }
        if budget == 0 {
            return Ok(Bytes::new());
        }
        if !is_leader && fetch.fetch_offset > log.log_end_offset() {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        read_visible(log, fetch.fetch_offset, budget, visible_end)
            .map_err(|e| storage_error_code(&e))
    }

    /// On the leader: the in-sync replica a consumer in `client_rack` should read from, if it
    /// is not this broker (Kafka's `RackAwareReplicaSelector`): none when the leader itself is
    /// in that rack or no in-sync replica is.
    fn preferred_read_replica(
        &self,
        state: &crate::replication::Partition,
        client_rack: &str,
    ) -> Option<i32> {
        let local = self.local_id;
        let isr = state.isr()?;
        self.metadata.read(|metadata| {
            let in_rack = |id: i32| {
                metadata
                    .broker(id)
                    .and_then(|b| b.rack.as_deref())
                    .is_some_and(|rack| rack == client_rack)
            };
            if in_rack(local) {
                return None;
            }
            state
                .replicas()
                .iter()
                .copied()
                .filter(|id| *id != local && isr.committed_isr().contains(id))
                .find(|id| in_rack(*id))
        })
    }

    /// A follower serves consumers (KIP-392) only while the metadata has it in the ISR: once
    /// it falls out, consumers get NOT_LEADER_OR_FOLLOWER and go back to the leader.
    fn serves_consumers_as_follower(&self, replica: &Replica) -> bool {
        let local = self.local_id;
        self.metadata.read(|metadata| {
            metadata
                .partition(&replica.topic_id, replica.index)
                .is_some_and(|p| {
                    p.leader.is_some() && p.leader != Some(local) && p.isr.contains(&local)
                })
        })
    }

    fn read_for_follower(
        &self,
        fetch: &PartitionFetch,
        replica_id: i32,
        broker_epoch: i64,
        budget: usize,
        read: &mut PartitionRead,
    ) -> Result<Bytes, ErrorCode> {
        let Some(replica) = self.replica(&fetch.topic, fetch.partition) else {
            let known = self
                .metadata
                .read(|state| state.topic_by_name(&fetch.topic).is_some());
            return Err(if known {
                ErrorCode::NotLeaderOrFollower
            } else {
                ErrorCode::UnknownTopicOrPartition
            });
        };
        let follower_fetch = FollowerFetch {
            replica_id,
            broker_epoch,
            current_leader_epoch: (fetch.current_leader_epoch >= 0)
                .then_some(fetch.current_leader_epoch),
            fetch_offset: fetch.fetch_offset,
            last_fetched_epoch: (fetch.last_fetched_epoch >= 0).then_some(fetch.last_fetched_epoch),
            log_start_offset: fetch.log_start_offset,
        };
        let liveness = self.liveness(replica_id);
        let log = &replica.log;
        let decision = {
            let mut state = replica.lock();
            let decision = state.on_follower_fetch(
                &follower_fetch,
                offsets(log),
                &**log,
                liveness,
                monotonic_ms(),
            );
            if let FollowerFetchDecision::Read { effects, .. } = &decision {
                if let Err(error) = replica.apply_effects(&mut state, effects.clone(), &self.sink())
                {
                    tracing::warn!(partition = log.name(), %error, "follower fetch effects failed");
                }
            }
            decision
        };
        read.log_start_offset = log.log_start_offset();
        match decision {
            FollowerFetchDecision::Read {
                from,
                high_watermark,
                ..
            } => {
                read.high_watermark = high_watermark;
                read.last_stable_offset = high_watermark;
                if budget == 0 || from >= log.log_end_offset() {
                    return Ok(Bytes::new());
                }
                self.read_for_replica_copy(&replica, replica_id, from, budget)
            }
            FollowerFetchDecision::Diverging(end) => {
                read.high_watermark = replica.high_watermark();
                read.diverging_epoch = Some((end.epoch, end.end_offset));
                tracing::info!(
                    partition = log.name(),
                    follower = replica_id,
                    fetch_offset = follower_fetch.fetch_offset,
                    last_fetched_epoch = ?follower_fetch.last_fetched_epoch,
                    diverging_epoch = end.epoch,
                    diverging_end_offset = end.end_offset,
                    "follower diverges; answering with its divergence point"
                );
                Ok(Bytes::new())
            }
            FollowerFetchDecision::Refused(refusal) => {
                tracing::debug!(partition = log.name(), follower = replica_id, %refusal, "follower fetch refused");
                Err(refusal.error_code())
            }
        }
    }

    /// A follower's records from `from`: a replica that a reassignment is adding copies at
    /// the throttled rate (KIP-455's throttle: the dynamic `leader.replication.throttled.rate`,
    /// else `--reassignment-throttle-bytes-per-sec`), as does one the topic's
    /// `leader.replication.throttled.replicas` names.
    fn read_for_replica_copy(
        &self,
        replica: &Arc<Replica>,
        replica_id: i32,
        from: i64,
        budget: usize,
    ) -> Result<Bytes, ErrorCode> {
        let throttle = self.throttle().filter(|_| {
            self.metadata.read(|state| {
                let adding = state
                    .partition(&replica.topic_id, replica.index)
                    .is_some_and(|p| p.adding_replicas.contains(&replica_id));
                let listed = state.topic(&replica.topic_id).is_some_and(|topic| {
                    throttled_replica(
                        topic.configs.get(LEADER_THROTTLED_REPLICAS),
                        replica.index,
                        replica_id,
                    )
                });
                adding || listed
            })
        });
        let budget = match &throttle {
            Some(rate) => budget.min(rate.available()),
            None => budget,
        };
        if budget == 0 {
            metrics::counter!(m::REASSIGNMENT_THROTTLED_TOTAL).increment(1);
            return Ok(Bytes::new());
        }
        let records = replica
            .log
            .read(from, budget)
            .map_err(|e| storage_error_code(&e))?;
        if let Some(rate) = throttle {
            rate.consume(records.len());
        }
        Ok(records)
    }
}

/// The topic config naming the replicas a leader throttles (Kafka's).
const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";

/// Whether a topic's `leader.replication.throttled.replicas` (`*`, or `partition:broker`
/// pairs) names this replica.
fn throttled_replica(list: Option<&String>, partition: i32, replica_id: i32) -> bool {
    let Some(list) = list else {
        return false;
    };
    list.split(',').map(str::trim).any(|item| {
        item == "*"
            || item
                .split_once(':')
                .is_some_and(|(p, b)| p.parse() == Ok(partition) && b.parse() == Ok(replica_id))
    })
}

/// Whole batches from `offset`, at most `budget` bytes (or one batch), none at or above the
/// high watermark.
fn read_visible(
    log: &PartitionLog,
    offset: i64,
    budget: usize,
    high_watermark: i64,
) -> Result<Bytes, StorageError> {
    if offset > high_watermark {
        // Beyond what consumers may see: Kafka answers OFFSET_OUT_OF_RANGE past the log
        // end, and nothing (yet) between the high watermark and the log end.
        if offset > log.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
            });
        }
        return Ok(Bytes::new());
    }
    if offset == high_watermark {
        return Ok(Bytes::new());
    }
    let data = log.read(offset, budget)?;
    // Trim batches at or above the high watermark (only possible with fsync durability).
    let mut visible = 0;
    for (header, batch) in Batches::new(&data).flatten() {
        if header.last_offset() >= high_watermark {
            break;
        }
        visible += batch.len();
    }
    Ok(data.slice(..visible))
}

/// What one read pass may use: a consumer's bytes come from `budget`; a follower's do not.
fn take_budget<B: ResponseBudget>(params: &FetchParams, budget: &B) -> (usize, Option<B::Grant>) {
    if params.origin.is_consumer() {
        let (bytes, grant) = budget.take_up_to(params.max_bytes);
        (bytes, Some(grant))
    } else {
        (params.max_bytes, None)
    }
}
