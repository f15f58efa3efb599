//! The cleaner's topic configs: Kafka's `cleanup.policy`, `delete.retention.ms`,
//! `min.cleanable.dirty.ratio`, `min.compaction.lag.ms` and `max.compaction.lag.ms`, their
//! defaults (Kafka's) and their parsing.

use std::fmt;

use crate::storage::{StorageError, DAY_MS};

/// What happens to old records (Kafka `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole segments are deleted by time and size retention (Kafka's default).
    Delete,
    /// Only the latest record of each key is kept; retention deletes nothing.
    Compact,
    /// Both: compaction, and retention on top of it.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Whether the log cleaner compacts the log.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }

    /// Whether time and size retention delete segments (Kafka: only with `delete`).
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }

    /// Kafka's list form, as describe prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactAndDelete => "compact,delete",
        }
    }

    /// Parse Kafka's comma-separated list of `compact` and `delete` (either order, spaces
    /// and repeats allowed, as Kafka's `ValidList` takes them; case-sensitive like Kafka).
    pub fn parse(value: &str) -> Result<CleanupPolicy, StorageError> {
        let (mut compact, mut delete) = (false, false);
        for item in value.split(',').map(str::trim) {
            match item {
                "compact" => compact = true,
                "delete" => delete = true,
                other => {
                    return Err(StorageError::InvalidConfig(format!(
                        "cleanup.policy: invalid value {other:?} in {value:?}: each item must be one of compact, delete"
                    )))
                }
            }
        }
        Ok(match (compact, delete) {
            (true, true) => CleanupPolicy::CompactAndDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        })
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ratio in `[0, 1]` (Kafka `min.cleanable.dirty.ratio`). Never NaN, so it is `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct DirtyRatio(f64);

impl Eq for DirtyRatio {}

impl DirtyRatio {
    /// `None` unless `ratio` lies in `[0, 1]`.
    pub fn new(ratio: f64) -> Option<DirtyRatio> {
        (0.0..=1.0).contains(&ratio).then_some(DirtyRatio(ratio))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for DirtyRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Java prints doubles with at least one decimal ("0.5", "1.0").
        if self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// How a compacted log is cleaned (Kafka's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone (a record with a null value) survives once a cleaning pass has
    /// seen it (Kafka `delete.retention.ms`).
    pub delete_retention_ms: u64,
    /// Clean a log only once this share of its cleanable bytes is dirty (Kafka
    /// `min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// Records younger than this are not cleaned (Kafka `min.compaction.lag.ms`).
    pub min_compaction_lag_ms: u64,
    /// Dirty records older than this make a log due for cleaning whatever its dirty ratio
    /// (Kafka `max.compaction.lag.ms`).
    pub max_compaction_lag_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> CleanerConfig {
        CleanerConfig {
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
            min_cleanable_dirty_ratio: DirtyRatio(0.5),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
        }
    }
}

impl CleanerConfig {
    /// Kafka's cross-field check (`LogConfig.validateValues`).
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(StorageError::InvalidConfig(format!(
                "min.compaction.lag.ms ({}) must not exceed max.compaction.lag.ms ({})",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            )));
        }
        Ok(())
    }
}

/// Parse `min.cleanable.dirty.ratio` as Kafka does (a double in `[0, 1]`).
pub fn parse_dirty_ratio(key: &str, value: &str) -> Result<DirtyRatio, StorageError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|ratio| ratio.is_finite())
        .and_then(DirtyRatio::new)
        .ok_or_else(|| {
            StorageError::InvalidConfig(format!(
                "{key}: expected a number between 0 and 1, got {value:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_parses_kafka_lists() {
        for (value, policy) in [
            ("delete", CleanupPolicy::Delete),
            ("compact", CleanupPolicy::Compact),
            ("compact,delete", CleanupPolicy::CompactAndDelete),
            ("delete, compact", CleanupPolicy::CompactAndDelete),
            ("compact,compact", CleanupPolicy::Compact),
        ] {
            assert_eq!(CleanupPolicy::parse(value).unwrap(), policy, "{value}");
        }
        for value in ["", "Compact", "compact,", "shred"] {
            let error = CleanupPolicy::parse(value).unwrap_err();
            assert!(error.to_string().contains("cleanup.policy"), "{error}");
        }
        assert!(!CleanupPolicy::Compact.deletes());
        assert!(CleanupPolicy::CompactAndDelete.deletes());
        assert!(!CleanupPolicy::Delete.compacts());
    }

    #[test]
    fn dirty_ratio_is_a_number_between_zero_and_one() {
        assert_eq!(parse_dirty_ratio("r", "0.25").unwrap().get(), 0.25);
        assert_eq!(parse_dirty_ratio("r", "1").unwrap().to_string(), "1.0");
        assert_eq!(
            CleanerConfig::default()
                .min_cleanable_dirty_ratio
                .to_string(),
            "0.5"
        );
        for value in ["-0.1", "1.01", "NaN", "inf", "half"] {
            assert!(parse_dirty_ratio("r", value).is_err(), "{value}");
        }
    }
}
