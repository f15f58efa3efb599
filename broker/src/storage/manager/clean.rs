//! A compaction pass over every hosted partition whose cleaning is due (Kafka's
//! `LogCleanerManager` choice, without its thread: the caller decides when to run it).

use std::sync::Arc;
use std::time::Instant;

use super::LogManager;
use crate::metrics as m;
use crate::storage::{CleanLimits, PartitionLog};

/// What [`LogManager::clean_pass`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanPassStats {
    /// Partitions a pass ran over (and completed).
    pub partitions_cleaned: usize,
    /// Partitions whose pass failed (logged; counted in
    /// `sluice_log_cleaner_uncleanable_total`).
    pub partitions_uncleanable: usize,
    /// Segments replaced by cleaned copies, over all partitions.
    pub segments_cleaned: usize,
    /// The largest dirty ratio among the compacted partitions before the pass.
    pub max_dirty_ratio: f64,
}

impl LogManager {
    /// Clean every compacted partition whose cleaning is due at `now_ms`
    /// ([`PartitionLog::cleaning_due`]), dirtiest first, each below `limit(log)` (the
    /// high watermark) and with `limits`' offset map and I/O rate (its
    /// `first_uncleanable_offset` is replaced by `limit(log)`). Errors are logged, the
    /// partition is marked uncleanable until a pass over it succeeds, and the pass goes on
    /// with the next partition. Exports the cleaner's gauges (max dirty ratio, uncleanable
    /// partitions) and the time of each partition's pass.
    pub fn clean_pass(
        &self,
        now_ms: i64,
        limit: &dyn Fn(&PartitionLog) -> i64,
        limits: CleanLimits,
    ) -> CleanPassStats {
        let logs: Vec<Arc<PartitionLog>> = self
            .read_topics()
            .values()
            .flat_map(|topic| topic.partitions.values().cloned())
            .collect();
        let limits = |log: &PartitionLog| CleanLimits {
            first_uncleanable_offset: limit(log),
            ..limits
        };
        let mut due: Vec<(f64, Arc<PartitionLog>)> = logs
            .iter()
            .filter_map(|log| match log.cleaning_due(&limits(log), now_ms) {
                Ok(ratio) => ratio.map(|ratio| (ratio, log.clone())),
                Err(error) => {
                    tracing::warn!(partition = log.name(), %error, "cannot tell whether cleaning is due");
                    None
                }
            })
            .collect();
        due.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut stats = CleanPassStats {
            max_dirty_ratio: logs
                .iter()
                .filter_map(|log| log.dirty_ratio())
                .fold(0.0, f64::max),
            ..CleanPassStats::default()
        };
        for (_, log) in due {
            let started = Instant::now();
            let result = log.clean(&limits(&log), now_ms);
            metrics::histogram!(m::LOG_CLEANER_CLEAN_SECONDS)
                .record(started.elapsed().as_secs_f64());
            log.set_uncleanable(result.is_err());
            match result {
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
        let uncleanable = logs.iter().filter(|log| log.uncleanable()).count();
        metrics::gauge!(m::LOG_CLEANER_UNCLEANABLE_PARTITIONS).set(uncleanable as f64);
        metrics::gauge!(m::LOG_CLEANER_MAX_DIRTY_RATIO).set(stats.max_dirty_ratio);
        stats
    }
}
