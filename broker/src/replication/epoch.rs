//! Leader epochs: the one question replication asks of a log's epoch history.
//!
//! Every batch carries the leader epoch under which it was first appended, and every log keeps
//! a small history of epochs: for each one, the offset of its first batch (Kafka's
//! `leader-epoch-checkpoint`). The *end offset* of an epoch is the start offset of the next
//! epoch the log knows of, or the log end offset for the latest epoch. Comparing end offsets
//! is how a follower finds where its log diverges from its leader's (KIP-101, KIP-279,
//! KIP-320) without ever truncating to a high watermark.
//!
//! [`EpochLookup`] is that question as a trait: the storage log answers it from its
//! checkpointed cache, and [`EpochHistory`] answers it from a plain vector, for tests and for
//! deterministic simulation. Both must follow Kafka's `LeaderEpochFileCache.endOffsetFor`
//! rules exactly, spelled out on [`EpochLookup::end_offset_for`].

/// An epoch and the offset at which it ended: the answer to [`EpochLookup::end_offset_for`],
/// and what a leader sends as `DivergingEpoch` in a fetch response. The storage layer's type,
/// so a log's answer needs no conversion.
pub use crate::storage::EpochEndOffset;

/// The leader-epoch history of one log, as replication needs it.
pub trait EpochLookup {
    /// The largest epoch `<= epoch` this log knows of and where it ended, by Kafka's rules:
    ///
    /// - `epoch` is the log's latest epoch: `(epoch, log end offset)`.
    /// - some known epoch is larger than `epoch`: the end offset is the start offset of the
    ///   first known epoch larger than `epoch`, paired with the largest known epoch
    ///   `<= epoch` or, when every known epoch is larger, with `epoch` itself.
    /// - `None` when `epoch` is negative, larger than every known epoch, or the log knows no
    ///   epochs at all (Kafka's `UNDEFINED_EPOCH`/`UNDEFINED_EPOCH_OFFSET`).
    fn end_offset_for(&self, epoch: i32) -> Option<EpochEndOffset>;
}

/// One entry of an epoch history: `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// A log's epoch history as a value, with the same rules as the storage log's cache.
///
/// Entries are strictly increasing in both epoch and start offset: [`EpochHistory::assign`]
/// drops any entry a new one makes stale, as Kafka's `LeaderEpochFileCache.assign` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpochHistory {
    entries: Vec<EpochStart>,
    log_end_offset: i64,
}

impl EpochHistory {
    /// An empty history over a log that ends at `log_end_offset`.
    pub fn new(log_end_offset: i64) -> EpochHistory {
        assert!(log_end_offset >= 0, "log end offset {log_end_offset} < 0");
        EpochHistory {
            entries: Vec::new(),
            log_end_offset,
        }
    }

    pub fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// The epoch of the newest entry: what a follower sends as `last_fetched_epoch`.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Record that `epoch` starts at `start_offset` (a new leader does this at its log end
    /// offset before appending; a follower when it appends the first batch of an epoch).
    /// Entries with an epoch `>= epoch` or a start `>= start_offset` are dropped first. An
    /// assignment that says nothing new (the latest epoch again, starting no earlier) is a
    /// no-op.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "invalid epoch entry {epoch}@{start_offset}"
        );
        if let Some(latest) = self.entries.last() {
            if latest.epoch == epoch && latest.start_offset <= start_offset {
                return;
            }
        }
        self.entries
            .retain(|entry| entry.epoch < epoch && entry.start_offset < start_offset);
        self.entries.push(EpochStart {
            epoch,
            start_offset,
        });
    }

    /// Append a batch stamped with `epoch` covering `base_offset..next_offset`: the log end
    /// moves and, if the batch opens a new epoch, the epoch is assigned at `base_offset`.
    pub fn append(&mut self, epoch: i32, base_offset: i64, next_offset: i64) {
        assert_eq!(
            base_offset, self.log_end_offset,
            "append at {base_offset} to a log ending at {}",
            self.log_end_offset
        );
        assert!(next_offset > base_offset, "empty batch at {base_offset}");
        if self.latest_epoch() != Some(epoch) {
            self.assign(epoch, base_offset);
        }
        self.log_end_offset = next_offset;
    }

    /// Cut the log back to end at `offset` (or at its current end, if that is smaller);
    /// epochs that start at or after the new end are forgotten (Kafka's `truncateFromEnd`).
    ///
    /// Even a truncation at or past the end drops entries that start at the end: a broker
    /// that led briefly assigned its epoch at its log end and appended nothing, and as a
    /// follower it must stop naming that epoch as its last fetched one, or its leader would
    /// answer the same divergence forever (Kafka's `UnifiedLog.truncateTo` does the same).
    pub fn truncate_to(&mut self, offset: i64) {
        assert!(offset >= 0, "truncate to {offset} < 0");
        let end = offset.min(self.log_end_offset);
        self.entries.retain(|entry| entry.start_offset < end);
        self.log_end_offset = end;
    }
}

impl EpochLookup for EpochHistory {
    fn end_offset_for(&self, epoch: i32) -> Option<EpochEndOffset> {
        if epoch < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if latest.epoch == epoch {
            return Some(EpochEndOffset {
                epoch,
                end_offset: self.log_end_offset,
            });
        }
        // The first entry with a larger epoch: its start is where `epoch` (or the largest
        // epoch below it) ended.
        let higher = self.entries.partition_point(|entry| entry.epoch <= epoch);
        let next = self.entries.get(higher)?;
        let floor_epoch = higher
            .checked_sub(1)
            .map_or(epoch, |index| self.entries[index].epoch);
        Some(EpochEndOffset {
            epoch: floor_epoch,
            end_offset: next.start_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn history(entries: &[(i32, i64)], log_end_offset: i64) -> EpochHistory {
        let mut history = EpochHistory::new(0);
        history.log_end_offset = log_end_offset;
        for &(epoch, start) in entries {
            history.assign(epoch, start);
        }
        history
    }

    #[test]
    fn end_offset_of_latest_epoch_is_log_end() {
        let history = history(&[(1, 0), (3, 10)], 25);
        assert_eq!(
            history.end_offset_for(3),
            Some(EpochEndOffset {
                epoch: 3,
                end_offset: 25
            })
        );
    }

    #[test]
    fn end_offset_of_unknown_middle_epoch_is_floor_epoch_and_next_start() {
        let history = history(&[(1, 0), (3, 10), (5, 20)], 25);
        assert_eq!(
            history.end_offset_for(2),
            Some(EpochEndOffset {
                epoch: 1,
                end_offset: 10
            })
        );
        assert_eq!(
            history.end_offset_for(3),
            Some(EpochEndOffset {
                epoch: 3,
                end_offset: 20
            })
        );
    }

    #[test]
    fn end_offset_below_first_epoch_keeps_requested_epoch() {
        let history = history(&[(4, 7)], 9);
        assert_eq!(
            history.end_offset_for(2),
            Some(EpochEndOffset {
                epoch: 2,
                end_offset: 7
            })
        );
    }

    #[test]
    fn end_offset_is_undefined_above_latest_and_for_empty_history() {
        assert_eq!(history(&[(1, 0)], 5).end_offset_for(2), None);
        assert_eq!(EpochHistory::new(0).end_offset_for(0), None);
        assert_eq!(history(&[(1, 0)], 5).end_offset_for(-1), None);
    }

    #[test]
    fn assign_drops_entries_it_makes_stale() {
        let mut history = history(&[(1, 0), (2, 5), (3, 5)], 8);
        // Epoch 2 had an empty range: epoch 3 replaced it.
        assert_eq!(history.entries().len(), 2);
        history.assign(4, 3);
        assert_eq!(
            history.entries(),
            &[
                EpochStart {
                    epoch: 1,
                    start_offset: 0
                },
                EpochStart {
                    epoch: 4,
                    start_offset: 3
                }
            ]
        );
    }

    #[test]
    fn truncation_forgets_epochs_starting_at_or_after_the_cut() {
        let mut history = EpochHistory::new(0);
        history.append(1, 0, 5);
        history.append(2, 5, 9);
        history.truncate_to(5);
        assert_eq!(history.latest_epoch(), Some(1));
        assert_eq!(history.log_end_offset(), 5);
    }

    #[test]
    fn truncation_at_the_end_forgets_an_epoch_with_no_batches() {
        let mut history = EpochHistory::new(0);
        history.append(1, 0, 5);
        history.assign(2, 5); // led epoch 2 briefly, appended nothing
        history.truncate_to(5);
        assert_eq!(history.latest_epoch(), Some(1));
        assert_eq!(history.log_end_offset(), 5);
    }

    /// Per-offset epochs of a log: non-decreasing, as leaders stamp them.
    fn epochs_per_offset() -> impl Strategy<Value = Vec<i32>> {
        prop::collection::vec((0..3i32, 1..4usize), 0..8).prop_map(|runs| {
            let mut epoch = 0;
            let mut epochs = Vec::new();
            for (step, count) in runs {
                epoch += step;
                epochs.extend(std::iter::repeat_n(epoch, count));
            }
            epochs
        })
    }

    fn build(epochs: &[i32]) -> EpochHistory {
        let mut history = EpochHistory::new(0);
        for (offset, &epoch) in (0i64..).zip(epochs) {
            history.append(epoch, offset, offset + 1);
        }
        history
    }

    /// Kafka's end-offset rules, computed the slow way from every offset's epoch.
    fn model_end_offset_for(epochs: &[i32], requested: i32) -> Option<EpochEndOffset> {
        let latest = *epochs.last()?;
        if requested < 0 {
            return None;
        }
        if requested == latest {
            return Some(EpochEndOffset {
                epoch: requested,
                end_offset: epochs.len() as i64,
            });
        }
        let next = epochs.iter().position(|&epoch| epoch > requested)?;
        let floor = epochs
            .iter()
            .copied()
            .filter(|&epoch| epoch <= requested)
            .max();
        Some(EpochEndOffset {
            epoch: floor.unwrap_or(requested),
            end_offset: next as i64,
        })
    }

    proptest! {
        #[test]
        fn end_offset_for_matches_the_per_offset_model(
            epochs in epochs_per_offset(),
            requested in -1..12i32,
        ) {
            let history = build(&epochs);
            prop_assert_eq!(
                history.end_offset_for(requested),
                model_end_offset_for(&epochs, requested)
            );
        }

        #[test]
        fn truncation_leaves_the_history_of_the_shorter_log(
            epochs in epochs_per_offset(),
            cut in 0..30usize,
        ) {
            let mut history = build(&epochs);
            let cut = cut.min(epochs.len());
            history.truncate_to(cut as i64);
            prop_assert_eq!(history, build(&epochs[..cut]));
        }
    }
}

/// A partition's log answers from its persisted leader-epoch cache.
impl EpochLookup for crate::storage::PartitionLog {
    fn end_offset_for(&self, epoch: i32) -> Option<EpochEndOffset> {
        self.end_offset_for_epoch(epoch)
    }
}

#[cfg(test)]
mod log_agreement_tests {
    use proptest::prelude::*;

    use super::{EpochHistory, EpochLookup};
    use crate::storage::testing::{batch, open_log, std_fs, test_config};
    use crate::storage::ShutdownState;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The storage log's epoch cache and the value model replication is tested against
        /// give the same answer for every epoch, after leader appends across epochs and a
        /// truncation at a batch boundary: the simulation's guarantees carry over to the log.
        #[test]
        fn partition_log_answers_epoch_lookups_like_the_model(
            appends in proptest::collection::vec((0i32..3, 1i32..5), 1..25),
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
            let mut model = EpochHistory::new(0);
            let mut epoch = 0;
            let mut boundaries = vec![0i64];
            for (i, (epoch_step, records)) in appends.iter().enumerate() {
                epoch += epoch_step;
                let info = log.append(batch(*records, 1_000 + i as i64, 8, i as u64), epoch, 0).unwrap();
                model.append(epoch, info.base_offset, info.last_offset + 1);
                boundaries.push(info.last_offset + 1);
            }
            let highest = epoch + 2;
            for e in -1..=highest {
                prop_assert_eq!(log.end_offset_for(e), model.end_offset_for(e), "epoch {}", e);
            }
            let offset = boundaries[cut.index(boundaries.len())];
            log.truncate_to(offset).unwrap();
            model.truncate_to(offset);
            for e in -1..=highest {
                prop_assert_eq!(log.end_offset_for(e), model.end_offset_for(e), "after truncation to {}, epoch {}", offset, e);
            }
        }
    }
}
