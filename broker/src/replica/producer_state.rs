//! Idempotent-producer state: for each partition, which producers wrote to it, at which
//! epoch, and where their last few batches went. Kafka's `ProducerStateManager`, without
//! transactions and without snapshots.
//!
//! An idempotent producer (one that got a producer id from InitProducerId) numbers the
//! records it sends to each partition: a batch carries `producerId`, `producerEpoch` and
//! `baseSequence`, and its last sequence is `baseSequence + lastOffsetDelta` (wrapping to 0
//! after `i32::MAX`). Before such a batch is appended, [`PartitionProducers::check`] decides:
//!
//! | incoming batch | verdict |
//! |---|---|
//! | producer unknown on this partition | append, whatever its sequence |
//! | epoch older than the producer's | refuse: INVALID_PRODUCER_EPOCH (fenced) |
//! | epoch newer than the producer's | append if its sequence is 0, else OUT_OF_ORDER_SEQUENCE_NUMBER |
//! | same epoch, same first and last sequence as one of the last [`BATCH_METADATA_MAX`] batches | duplicate: not appended; answered with that batch's offsets |
//! | same epoch, first sequence = last sequence + 1 | append |
//! | anything else | refuse: OUT_OF_ORDER_SEQUENCE_NUMBER |
//!
//! After a successful append the server calls [`PartitionProducers::record`] with the offsets
//! the log gave the batch. Check, append and record must happen under one lock per partition
//! (the server's [`PartitionSlot`]), or two retries of one batch could both be appended.
//!
//! This module is sans-IO: it sees batch headers and offsets, never a log or a socket. The
//! server rebuilds a partition's state after a restart by feeding the headers of the log's
//! tail to [`PartitionProducers::observe`].
//!
//! # Invariants
//! - A producer's retained batches are in the order they were appended: offsets strictly
//!   increase (asserted in `record`), and there are at most [`BATCH_METADATA_MAX`] of them.
//! - A producer's epoch on a partition never goes back.
//! - At most `producers_max` producers are tracked per partition; the one whose last batch is
//!   oldest is forgotten first. A forgotten producer is unknown again: its next batch is
//!   accepted whatever its sequence, so only its duplicate detection is lost.
//!
//! # Left out on purpose
//! Transactions (no transactional batches reach this module), producer-id expiry by time
//! (`producer.id.expiration.ms`; the count bound stands in for it) and on-disk snapshots.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_protocol::batch::BatchHeader;
use sluice_protocol::error::ErrorCode;

/// Batches remembered per producer and partition (Kafka's `NUM_BATCHES_TO_RETAIN`). Clients
/// keep at most 5 requests in flight with idempotence on for the same reason: any retry is
/// then one of the last 5 batches.
pub const BATCH_METADATA_MAX: usize = 5;

/// Producers tracked per partition before the least recently active one is forgotten.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 2048;

/// The producer fields of one incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// The batch's largest record timestamp (DescribeProducers' last timestamp).
    pub max_timestamp: i64,
}

impl ProducerBatch {
    /// The producer fields of `header`: `Ok(None)` for a batch without a producer id
    /// (producer id -1), an error for an idempotent batch whose epoch or sequence is negative.
    pub fn from_header(header: &BatchHeader) -> Result<Option<ProducerBatch>, String> {
        if header.producer_id < 0 {
            return Ok(None);
        }
        if header.producer_epoch < 0 || header.base_sequence < 0 || header.last_offset_delta < 0 {
            return Err(format!(
                "batch of producer {} has epoch {}, base sequence {} and last offset delta {}; \
                 none may be negative",
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_offset_delta
            ));
        }
        Ok(Some(ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: add_sequence(header.base_sequence, header.last_offset_delta),
            max_timestamp: header.max_timestamp,
        }))
    }
}

/// `sequence + delta`, wrapping past `i32::MAX` to 0 as Kafka does
/// (`DefaultRecordBatch.incrementSequence`). Both arguments are non-negative.
pub fn add_sequence(sequence: i32, delta: i32) -> i32 {
    debug_assert!(sequence >= 0 && delta >= 0);
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

/// One producer a partition knows (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// Where an appended batch went, as remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What to do with an incoming batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it, then [`PartitionProducers::record`] it.
    Append,
    /// A retry of a batch already in the log: do not append; answer with its offsets.
    Duplicate(AppendedBatch),
}

/// Why an incoming batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error(
        "producer {producer_id} sent epoch {epoch} but epoch {current_epoch} has written to \
         this partition: this producer instance is fenced"
    )]
    FencedEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error(
        "out of order sequence number for producer {producer_id} at epoch {epoch}: expected \
         {expected}, got {first_sequence}"
    )]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        expected: i32,
        first_sequence: i32,
    },
}

impl SequenceError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            SequenceError::FencedEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            SequenceError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequenceNumber,
        }
    }

    /// Label for the refusal metric.
    pub fn label(&self) -> &'static str {
        match self {
            SequenceError::FencedEpoch { .. } => "fenced_epoch",
            SequenceError::OutOfOrder { .. } => "out_of_order",
        }
    }
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; never empty.
    batches: VecDeque<AppendedBatch>,
    /// The largest timestamp of its last batch.
    last_timestamp: i64,
}

impl ProducerEntry {
    fn last(&self) -> &AppendedBatch {
        self.batches
            .back()
            .expect("a producer entry always holds at least one batch")
    }
}

/// The producers of one partition. See the module documentation.
#[derive(Debug, Clone)]
pub struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
    producers_max: usize,
}

impl Default for PartitionProducers {
    fn default() -> PartitionProducers {
        PartitionProducers::new(PRODUCERS_PER_PARTITION_MAX)
    }
}

impl PartitionProducers {
    /// No producers known; at most `producers_max` (at least 1) are tracked.
    pub fn new(producers_max: usize) -> PartitionProducers {
        PartitionProducers {
            producers: HashMap::new(),
            producers_max: producers_max.max(1),
        }
    }

    /// Rebuild from the headers of the log's tail, oldest first (see [`Self::observe`]).
    pub fn rebuild<'a>(
        producers_max: usize,
        headers: impl IntoIterator<Item = &'a BatchHeader>,
    ) -> PartitionProducers {
        let mut producers = PartitionProducers::new(producers_max);
        for header in headers {
            producers.observe(header);
        }
        producers
    }

    /// Every producer tracked, by id: what DescribeProducers lists.
    pub fn describe(&self) -> Vec<ActiveProducer> {
        let mut producers: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(id, entry)| ActiveProducer {
                producer_id: *id,
                epoch: entry.epoch,
                last_sequence: entry.last().last_sequence,
                last_timestamp: entry.last_timestamp,
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        producers
    }

    /// Producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Decide what to do with an incoming batch. See the table in the module documentation.
    pub fn check(&self, batch: &ProducerBatch) -> Result<Verdict, SequenceError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown here (new producer, forgotten, or written before a restart beyond the
            // rebuilt tail): nothing to compare with, as Kafka does for a producer whose
            // state was removed.
            return Ok(Verdict::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(SequenceError::FencedEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current_epoch: entry.epoch,
            });
        }
        if batch.epoch > entry.epoch {
            // A bumped epoch restarts the sequence at 0 (KIP-360).
            if batch.first_sequence == 0 {
                return Ok(Verdict::Append);
            }
            return Err(SequenceError::OutOfOrder {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                expected: 0,
                first_sequence: batch.first_sequence,
            });
        }
        if let Some(previous) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Ok(Verdict::Duplicate(*previous));
        }
        let expected = add_sequence(entry.last().last_sequence, 1);
        if batch.first_sequence == expected {
            Ok(Verdict::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                expected,
                first_sequence: batch.first_sequence,
            })
        }
    }

    /// Remember a batch that [`Self::check`] allowed and the log appended at
    /// `base_offset..=last_offset`.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64) {
        assert!(
            base_offset <= last_offset,
            "appended batch has base offset {base_offset} after last offset {last_offset}"
        );
        let appended = AppendedBatch {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            base_offset,
            last_offset,
        };
        match self.producers.get_mut(&batch.producer_id) {
            Some(entry) if entry.epoch == batch.epoch => {
                entry.last_timestamp = batch.max_timestamp;
                let previous = entry.last().last_offset;
                assert!(
                    base_offset > previous,
                    "producer {} batch at offset {base_offset} recorded after one ending at {previous}",
                    batch.producer_id
                );
                entry.batches.push_back(appended);
                while entry.batches.len() > BATCH_METADATA_MAX {
                    entry.batches.pop_front();
                }
            }
            Some(entry) => {
                assert!(
                    batch.epoch > entry.epoch,
                    "producer {} epoch went back from {} to {}",
                    batch.producer_id,
                    entry.epoch,
                    batch.epoch
                );
                entry.epoch = batch.epoch;
                entry.last_timestamp = batch.max_timestamp;
                entry.batches.clear();
                entry.batches.push_back(appended);
            }
            None => {
                if self.producers.len() >= self.producers_max {
                    self.forget_least_recent();
                }
                self.producers.insert(
                    batch.producer_id,
                    ProducerEntry {
                        epoch: batch.epoch,
                        batches: VecDeque::from([appended]),
                        last_timestamp: batch.max_timestamp,
                    },
                );
            }
        }
    }

    /// Replay one batch already in the log (rebuilding after a restart). Control batches
    /// and batches without a producer id are skipped; so is a batch whose epoch is older
    /// than the producer's (the log may hold a fenced zombie's batches).
    pub fn observe(&mut self, header: &BatchHeader) {
        if header.is_control() {
            return;
        }
        let Ok(Some(batch)) = ProducerBatch::from_header(header) else {
            return;
        };
        let stale = self.producers.get(&batch.producer_id).is_some_and(|entry| {
            batch.epoch < entry.epoch || entry.last().last_offset >= header.base_offset
        });
        if !stale {
            self.record(&batch, header.base_offset, header.last_offset());
        }
    }

    /// Forget the producer whose last batch is oldest.
    fn forget_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, entry)| entry.last().last_offset)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
    }
}

/// One partition's producer state behind the lock that makes check + append + record
/// atomic. `None` until first used; the server then rebuilds it from the log's tail.
pub type PartitionSlot = Mutex<Option<PartitionProducers>>;

/// Lock a partition's slot. A panic while holding it means an invariant broke mid-update:
/// do not go on with that state.
pub fn lock_slot(slot: &PartitionSlot) -> MutexGuard<'_, Option<PartitionProducers>> {
    slot.lock()
        .expect("a producer state lock was poisoned by a panic")
}

/// Every partition's [`PartitionSlot`], keyed by topic id (so a topic deleted and created
/// again under the same name starts with no producers) and partition index.
#[derive(Debug, Default)]
pub struct ProducerStateRegistry {
    partitions: Mutex<SlotMap>,
}

/// Topic id and partition index -> that partition's slot.
/// The value also holds the leader epoch the slot's state was built in: a broker that led,
/// followed (and truncated) and leads again must rebuild its producers from the log.
type SlotMap = HashMap<([u8; 16], i32), (i32, Arc<PartitionSlot>)>;

impl ProducerStateRegistry {
    /// The slot of one partition, created empty (unloaded) on first use.
    pub fn partition(&self, topic_id: [u8; 16], partition: i32) -> Arc<PartitionSlot> {
        self.partition_in_epoch(topic_id, partition, 0)
    }

    /// The slot of one partition led in `leader_epoch`; a slot from another leadership is
    /// replaced by an empty (unloaded) one, rebuilt from the log on first use.
    pub fn partition_in_epoch(
        &self,
        topic_id: [u8; 16],
        partition: i32,
        leader_epoch: i32,
    ) -> Arc<PartitionSlot> {
        let mut slots = self.lock();
        let entry = slots
            .entry((topic_id, partition))
            .or_insert_with(|| (leader_epoch, Arc::default()));
        if entry.0 != leader_epoch {
            *entry = (leader_epoch, Arc::default());
        }
        entry.1.clone()
    }

    /// Drop the state of every partition of a deleted topic.
    pub fn forget_topic(&self, topic_id: [u8; 16]) {
        self.lock().retain(|(id, _), _| *id != topic_id);
    }

    fn lock(&self) -> MutexGuard<'_, SlotMap> {
        self.partitions
            .lock()
            .expect("the producer state registry lock was poisoned by a panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: i64 = 7;

    fn batch(epoch: i16, first_sequence: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: PID,
            epoch,
            first_sequence,
            last_sequence: add_sequence(first_sequence, records - 1),
            max_timestamp: 1_000 + i64::from(first_sequence),
        }
    }

    /// Check, and on `Append` record at the next offsets; returns the verdict.
    fn produce(
        state: &mut PartitionProducers,
        next_offset: &mut i64,
        b: ProducerBatch,
    ) -> Result<Verdict, SequenceError> {
        let verdict = state.check(&b)?;
        if verdict == Verdict::Append {
            // Sequences live in 0..=i32::MAX and wrap, so count modulo 2^31.
            let span = i64::from(b.last_sequence) - i64::from(b.first_sequence);
            let count = span.rem_euclid(i64::from(i32::MAX) + 1) + 1;
            state.record(&b, *next_offset, *next_offset + count - 1);
            *next_offset += count;
        }
        Ok(verdict)
    }

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        base_offset: i64,
        records: i32,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: records,
        }
    }

    #[test]
    fn unknown_producer_is_accepted_at_any_sequence() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        assert_eq!(
            produce(&mut state, &mut next, batch(3, 42, 2)),
            Ok(Verdict::Append)
        );
        assert_eq!(
            produce(&mut state, &mut next, batch(3, 44, 1)),
            Ok(Verdict::Append)
        );
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn in_order_batches_are_appended() {
        let mut state = PartitionProducers::default();
        let mut next = 100;
        for i in 0..10 {
            assert_eq!(
                produce(&mut state, &mut next, batch(0, i * 3, 3)),
                Ok(Verdict::Append)
            );
        }
        assert_eq!(next, 130);
    }

    #[test]
    fn retry_of_one_of_the_last_five_batches_is_a_duplicate_with_its_original_offsets() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        for i in 0..6 {
            produce(&mut state, &mut next, batch(0, i * 10, 10)).unwrap();
        }
        // Batches 1..=5 are retained (offsets 10..=59); batch 0 is not.
        assert_eq!(
            state.check(&batch(0, 10, 10)),
            Ok(Verdict::Duplicate(AppendedBatch {
                first_sequence: 10,
                last_sequence: 19,
                base_offset: 10,
                last_offset: 19,
            }))
        );
        assert_eq!(
            state.check(&batch(0, 50, 10)),
            Ok(Verdict::Duplicate(AppendedBatch {
                first_sequence: 50,
                last_sequence: 59,
                base_offset: 50,
                last_offset: 59,
            }))
        );
        assert!(matches!(
            state.check(&batch(0, 0, 10)),
            Err(SequenceError::OutOfOrder {
                expected: 60,
                first_sequence: 0,
                ..
            })
        ));
    }

    #[test]
    fn same_first_sequence_with_a_different_length_is_not_a_duplicate() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(0, 0, 5)).unwrap();
        let error = state.check(&batch(0, 0, 4)).unwrap_err();
        assert_eq!(error.code(), ErrorCode::OutOfOrderSequenceNumber);
    }

    #[test]
    fn gap_in_sequence_is_out_of_order() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(0, 0, 5)).unwrap();
        assert_eq!(
            produce(&mut state, &mut next, batch(0, 6, 1)),
            Err(SequenceError::OutOfOrder {
                producer_id: PID,
                epoch: 0,
                expected: 5,
                first_sequence: 6,
            })
        );
        // The refused batch changed nothing: the expected one still goes in.
        assert_eq!(
            produce(&mut state, &mut next, batch(0, 5, 1)),
            Ok(Verdict::Append)
        );
    }

    #[test]
    fn older_epoch_is_fenced() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(2, 0, 1)).unwrap();
        let error = produce(&mut state, &mut next, batch(1, 1, 1)).unwrap_err();
        assert_eq!(
            error,
            SequenceError::FencedEpoch {
                producer_id: PID,
                epoch: 1,
                current_epoch: 2
            }
        );
        assert_eq!(error.code(), ErrorCode::InvalidProducerEpoch);
    }

    #[test]
    fn newer_epoch_restarts_at_sequence_zero_and_fences_the_old_one() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(0, 0, 3)).unwrap();
        assert!(matches!(
            produce(&mut state, &mut next, batch(1, 3, 1)),
            Err(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(
            produce(&mut state, &mut next, batch(1, 0, 2)),
            Ok(Verdict::Append)
        );
        assert_eq!(
            produce(&mut state, &mut next, batch(1, 2, 1)),
            Ok(Verdict::Append)
        );
        // The old epoch's batches are forgotten: its retry is fenced, not a duplicate.
        assert!(matches!(
            state.check(&batch(0, 0, 3)),
            Err(SequenceError::FencedEpoch { .. })
        ));
    }

    #[test]
    fn sequence_wraps_to_zero_after_i32_max() {
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(add_sequence(5, 0), 5);

        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(0, i32::MAX - 9, 10)).unwrap();
        assert_eq!(
            produce(&mut state, &mut next, batch(0, 0, 4)),
            Ok(Verdict::Append)
        );
        // A batch that itself spans the wrap.
        let mut state = PartitionProducers::default();
        produce(&mut state, &mut next, batch(0, i32::MAX - 1, 4)).unwrap();
        assert_eq!(batch(0, i32::MAX - 1, 4).last_sequence, 1);
        assert_eq!(
            produce(&mut state, &mut next, batch(0, 2, 1)),
            Ok(Verdict::Append)
        );
        assert!(matches!(
            state.check(&batch(0, i32::MAX - 1, 4)),
            Ok(Verdict::Duplicate(_))
        ));
    }

    #[test]
    fn producers_are_tracked_independently() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        produce(&mut state, &mut next, batch(0, 0, 1)).unwrap();
        let other = ProducerBatch {
            producer_id: PID + 1,
            ..batch(0, 0, 1)
        };
        assert_eq!(produce(&mut state, &mut next, other), Ok(Verdict::Append));
        assert!(matches!(state.check(&other), Ok(Verdict::Duplicate(_))));
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn describe_lists_each_producers_epoch_last_sequence_and_timestamp() {
        let mut state = PartitionProducers::default();
        let mut next = 0;
        let other = |first_sequence| ProducerBatch {
            producer_id: PID - 1,
            ..batch(0, first_sequence, 2)
        };
        produce(&mut state, &mut next, batch(0, 0, 3)).unwrap();
        produce(&mut state, &mut next, other(0)).unwrap();
        produce(&mut state, &mut next, batch(0, 3, 2)).unwrap();
        produce(&mut state, &mut next, batch(1, 0, 1)).unwrap();
        let described = state.describe();
        let summary: Vec<(i64, i16, i32, i64)> = described
            .iter()
            .map(|p| (p.producer_id, p.epoch, p.last_sequence, p.last_timestamp))
            .collect();
        assert_eq!(summary, vec![(PID - 1, 0, 1, 1_000), (PID, 1, 0, 1_000)]);
    }

    #[test]
    fn least_recently_active_producer_is_forgotten_at_the_limit() {
        let mut state = PartitionProducers::new(2);
        let mut next = 0;
        let of = |producer_id, first_sequence| ProducerBatch {
            producer_id,
            ..batch(0, first_sequence, 1)
        };
        produce(&mut state, &mut next, of(1, 0)).unwrap();
        produce(&mut state, &mut next, of(2, 0)).unwrap();
        produce(&mut state, &mut next, of(1, 1)).unwrap();
        produce(&mut state, &mut next, of(3, 0)).unwrap();
        assert_eq!(state.len(), 2);
        // Producer 2 was least recently active: unknown again, so any sequence goes.
        assert_eq!(state.check(&of(2, 99)), Ok(Verdict::Append));
        assert!(matches!(
            state.check(&of(1, 5)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn batch_with_negative_producer_fields_is_invalid() {
        assert_eq!(
            ProducerBatch::from_header(&header(-1, -1, -1, 0, 1)),
            Ok(None)
        );
        assert!(ProducerBatch::from_header(&header(1, -1, 0, 0, 1)).is_err());
        assert!(ProducerBatch::from_header(&header(1, 0, -1, 0, 1)).is_err());
        let batch = ProducerBatch::from_header(&header(1, 0, 10, 0, 5))
            .unwrap()
            .unwrap();
        assert_eq!((batch.first_sequence, batch.last_sequence), (10, 14));
    }

    #[test]
    fn rebuild_from_log_tail_detects_duplicates_and_keeps_the_latest_epoch() {
        let headers = [
            header(PID, 0, 0, 0, 2),
            header(-1, -1, -1, 2, 3),
            header(PID, 0, 2, 5, 2),
            header(PID + 1, 4, 9, 7, 1),
            header(PID, 1, 0, 8, 1),
            // A fenced zombie's batch written before the bump reached this partition.
            header(PID, 0, 4, 9, 1),
        ];
        let state = PartitionProducers::rebuild(PRODUCERS_PER_PARTITION_MAX, &headers);
        assert_eq!(state.len(), 2);
        assert_eq!(
            state.check(&batch(1, 0, 1)),
            Ok(Verdict::Duplicate(AppendedBatch {
                first_sequence: 0,
                last_sequence: 0,
                base_offset: 8,
                last_offset: 8,
            }))
        );
        assert_eq!(state.check(&batch(1, 1, 1)), Ok(Verdict::Append));
        assert!(matches!(
            state.check(&batch(0, 4, 1)),
            Err(SequenceError::FencedEpoch { .. })
        ));
        let other = ProducerBatch {
            producer_id: PID + 1,
            ..batch(4, 10, 1)
        };
        assert_eq!(state.check(&other), Ok(Verdict::Append));
    }

    #[test]
    fn control_batches_are_not_producer_state() {
        let mut control = header(PID, 0, 0, 0, 1);
        control.attributes = 0x20;
        let state = PartitionProducers::rebuild(PRODUCERS_PER_PARTITION_MAX, [&control]);
        assert!(state.is_empty());
    }

    #[test]
    fn registry_forgets_deleted_topics_only() {
        let registry = ProducerStateRegistry::default();
        let slot = registry.partition([1; 16], 0);
        *lock_slot(&slot) = Some(PartitionProducers::default());
        assert!(Arc::ptr_eq(&slot, &registry.partition([1; 16], 0)));
        let other = registry.partition([2; 16], 0);
        *lock_slot(&other) = Some(PartitionProducers::default());
        registry.forget_topic([1; 16]);
        assert!(lock_slot(&registry.partition([1; 16], 0)).is_none());
        assert!(lock_slot(&registry.partition([2; 16], 0)).is_some());
    }
}
