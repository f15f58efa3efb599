//! A compaction pass over every hosted partition whose cleaning is due (Kafka's
//! `LogCleanerManager` choice, without its thread: the caller decides when to run it).

use std::sync::Arc;

use super::LogManager;
use crate::metrics as m;
use crate::storage::{CleanLimits, PartitionLog};

/// What [`LogManager::clean_pass`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanPassStats {
    /// Partitions a pass ran over (and completed).
    pub partitions_cleaned: usize,
    /// Partitions whose pass failed (logged; counted in
    /// `sluice_log_cleaner_uncleanable_total`).
    pub partitions_uncleanable: usize,
    /// Segments replaced by cleaned copies, over all partitions.
    pub segments_cleaned: usize,
}

impl LogManager {
    /// Clean every compacted partition whose cleaning is due at `now_ms`
    /// ([`PartitionLog::cleaning_due`]), dirtiest first, each below `limit(log)` (the
    /// high watermark) and with an offset map of `offset_map_bytes_max`. Errors are logged
    /// and the pass goes on with the next partition.
    pub fn clean_pass(
        &self,
        now_ms: i64,
        limit: &dyn Fn(&PartitionLog) -> i64,
        offset_map_bytes_max: usize,
    ) -> CleanPassStats {
        let logs: Vec<Arc<PartitionLog>> = self
            .read_topics()
            .values()
            .flat_map(|topic| topic.partitions.values().cloned())
            .collect();
        let limits = |log: &PartitionLog| CleanLimits {
            first_uncleanable_offset: limit(log),
            offset_map_bytes_max,
        };
        let mut due: Vec<(f64, Arc<PartitionLog>)> = logs
            .into_iter()
            .filter_map(|log| match log.cleaning_due(&limits(&log), now_ms) {
                Ok(ratio) => ratio.map(|ratio| (ratio, log)),
                Err(error) => {
                    tracing::warn!(partition = log.name(), %error, "cannot tell whether cleaning is due");
                    None
                }
            })
            .collect();
        due.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut stats = CleanPassStats::default();
        for (_, log) in due {
            match log.clean(&limits(&log), now_ms) {
                Ok(cleaned) => {
                    stats.partitions_cleaned += 1;
                    stats.segments_cleaned += cleaned.segments_cleaned;
                }
                Err(error) => {
                    metrics::counter!(m::LOG_CLEANER_UNCLEANABLE_TOTAL).increment(1);
                    tracing::warn!(partition = log.name(), %error, "cleaning failed");
                    stats.partitions_uncleanable += 1;
                }
            }
        }
        stats
    }
}
