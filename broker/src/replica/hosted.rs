//! One hosted partition replica: its log, its replication state machine, and the high
//! watermark consumers may read up to.
//!
//! [`Replica`] is the shell around [`replication::Partition`]: every call into the state
//! machine happens under `state`'s lock, together with the storage operation it decides
//! (an append, a truncation, an epoch start), so that no other step interleaves between
//! the decision and its effect. The lock is a `std` mutex and is never held across an
//! `.await`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use tokio::sync::watch;
use uuid::Uuid;

use crate::replication::{self, Effect, LogOffsets, Partition, PartitionConfig};
use crate::storage::{PartitionLog, StorageError};

/// What a replica asks of its surroundings when an effect needs more than storage: the
/// ISR proposal goes to the controller, fetching starts or stops.
pub trait EffectSink: Send + Sync {
    fn propose_isr(&self, replica: &Arc<Replica>, proposal: replication::AlterPartition);
    fn start_fetching(&self, replica: &Arc<Replica>, leader_id: i32);
    fn stop_fetching(&self, replica: &Arc<Replica>);
}

/// A partition this broker holds a replica of.
pub struct Replica {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: Arc<PartitionLog>,
    state: Mutex<Partition>,
    /// Mirror of the state machine's high watermark, readable without the lock.
    high_watermark: AtomicI64,
    /// Bumped on every high-watermark advance and leadership change: wakes parked acks=all
    /// produces and consumer long polls.
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replica({}-{})", self.topic, self.index)
    }
}

/// The log's current start and end offsets, as the state machine takes them.
pub fn offsets(log: &PartitionLog) -> LogOffsets {
    LogOffsets {
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
    }
}

impl Replica {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        log: Arc<PartitionLog>,
        config: PartitionConfig,
    ) -> Replica {
        let checkpoint = log.high_watermark_checkpoint().unwrap_or(0);
        let state = Partition::new(config, offsets(&log), checkpoint);
        let high_watermark = state.high_watermark();
        Replica {
            topic,
            topic_id,
            index,
            log,
            state: Mutex::new(state),
            high_watermark: AtomicI64::new(high_watermark),
            changed: watch::channel(0).0,
        }
    }

    /// The state machine, locked. Never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Partition> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The offset below which records are visible to consumers: the replication high
    /// watermark, and with fsync durability no further than what is on disk.
    pub fn visible_end(&self) -> i64 {
        self.high_watermark
            .load(Ordering::Acquire)
            .min(self.log.durable_offset())
            .min(self.log.log_end_offset())
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// A receiver that sees every later high-watermark advance or leadership change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Take the state machine's high watermark as the visible one.
    pub fn publish_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.store(high_watermark, Ordering::Release);
        self.notify();
    }

    /// Carry out `effects` (from a step taken under `state`, still held) in order.
    pub fn apply_effects(
        self: &Arc<Self>,
        state: &mut Partition,
        effects: Vec<Effect>,
        sink: &dyn EffectSink,
    ) -> Result<(), StorageError> {
        for effect in effects {
            match effect {
                Effect::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } => {
                    let started = self.log.begin_leader_epoch(leader_epoch)?;
                    if started != start_offset {
                        tracing::warn!(
                            partition = self.log.name(),
                            leader_epoch,
                            expected = start_offset,
                            started,
                            "leader epoch start differs from the state machine's"
                        );
                    }
                }
                Effect::ProposeIsr(proposal) => sink.propose_isr(self, proposal),
                Effect::HighWatermarkAdvanced(high_watermark) => {
                    self.publish_high_watermark(high_watermark)
                }
                Effect::StartFetching { leader_id, .. } => {
                    sink.start_fetching(self, leader_id);
                    self.publish_high_watermark(state.high_watermark());
                }
                Effect::StopFetching => sink.stop_fetching(self),
                Effect::LeadershipEnded => {
                    self.publish_high_watermark(state.high_watermark());
                }
            }
        }
        Ok(())
    }

    /// Append a producer's records as leader, stamped with the current leader epoch, and let
    /// the high watermark move. Returns the append and the epoch it happened in.
    pub fn append_as_leader(
        self: &Arc<Self>,
        records: BytesMut,
        now_ms: i64,
        sink: &dyn EffectSink,
    ) -> Result<(crate::storage::AppendInfo, i32), AppendRefusal> {
        let mut state = self.lock();
        if !state.is_leader() {
            return Err(AppendRefusal::NotLeader);
        }
        let leader_epoch = state.leader_epoch();
        let appended = self
            .log
            .append(records, leader_epoch, now_ms)
            .map_err(AppendRefusal::Storage)?;
        let effects = state.on_leader_append(self.log.log_end_offset());
        self.apply_effects(&mut state, effects, sink)
            .map_err(AppendRefusal::Storage)?;
        Ok((appended, leader_epoch))
    }
}

/// Why a leader append did not happen.
#[derive(Debug)]
pub enum AppendRefusal {
    NotLeader,
    Storage(StorageError),
}
