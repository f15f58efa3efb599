//! Topic configs: Kafka's names, their validation, and a topic's effective settings (the
//! broker's defaults with the topic's overrides applied).

use std::collections::BTreeMap;

use super::super::cleaner::{parse_dirty_ratio, CleanupPolicy};
use super::super::{LogConfig, StorageError};
use super::kafka_topic_configs::{is_kafka_default, kafka_topic_config, KAFKA_TOPIC_CONFIGS};

/// The topic config keys [`LogManager::create_topic`](super::LogManager::create_topic) accepts, in the order
/// [`LogManager::describe_configs`](super::LogManager::describe_configs) lists them.
pub const SUPPORTED_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "durability",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// One line of a topic's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// True when the value is the broker default rather than a topic override.
    pub is_default: bool,
    /// The broker config it falls back to (Kafka's synonym), if any.
    pub synonym: Option<&'static str>,
    /// Kafka's `ConfigType` (1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list).
    pub config_type: i8,
    /// Kafka's default (`None` for Sluice's own configs).
    pub kafka_default: Option<&'static str>,
}

impl ConfigEntry {
    /// Kafka's `ConfigSource`: 1 a topic override, 5 Kafka's default, 4 a broker setting
    /// (a value other than Kafka's default that the topic does not override).
    pub fn source(&self) -> i8 {
        if !self.is_default {
            1
        } else if self
            .kafka_default
            .is_none_or(|d| Some(d) == self.value.as_deref())
        {
            5
        } else {
            4
        }
    }
}

/// Kafka's smallest `segment.bytes`.
const SEGMENT_BYTES_MIN: u64 = 14;
/// A topic's effective settings: broker defaults with its overrides applied. Also the
/// defaults themselves (the flags, with the dynamic broker configs applied).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TopicSettings {
    pub(super) log: LogConfig,
    pub(super) min_insync_replicas: i32,
    pub(super) unclean_leader_election: bool,
}

impl TopicSettings {
    /// `log` with Kafka's replication defaults (min ISR 1, no unclean elections).
    pub(super) fn new(log: LogConfig) -> TopicSettings {
        TopicSettings {
            log,
            min_insync_replicas: 1,
            unclean_leader_election: false,
        }
    }
}

/// Apply overrides to the defaults. Returns the settings and the overrides with normalised
/// values; an unknown key or a bad value is `InvalidConfig` naming the key.
pub(super) fn parse_overrides(
    defaults: &TopicSettings,
    overrides: &BTreeMap<String, String>,
) -> Result<(TopicSettings, BTreeMap<String, String>), StorageError> {
    let mut settings = defaults.clone();
    for (key, value) in overrides {
        let value = value.trim();
        match key.as_str() {
            "cleanup.policy" => {
                settings.log.cleaner.cleanup_policy = CleanupPolicy::parse(value)?;
            }
            "delete.retention.ms" => {
                settings.log.cleaner.delete_retention_ms =
                    parse_in_range(key, value, 0, i64::MAX)? as u64;
            }
            "max.compaction.lag.ms" => {
                settings.log.cleaner.max_compaction_lag_ms =
                    parse_in_range(key, value, 1, i64::MAX)? as u64;
            }
            "min.cleanable.dirty.ratio" => {
                settings.log.cleaner.min_cleanable_dirty_ratio = parse_dirty_ratio(key, value)?;
            }
            "min.compaction.lag.ms" => {
                settings.log.cleaner.min_compaction_lag_ms =
                    parse_in_range(key, value, 0, i64::MAX)? as u64;
            }
            "durability" => {
                settings.log.durability = value.parse()?;
            }
            "max.message.bytes" => {
                settings.log.batch_bytes_max =
                    parse_in_range(key, value, 0, i64::from(i32::MAX))? as usize;
            }
            "min.insync.replicas" => {
                settings.min_insync_replicas =
                    parse_in_range(key, value, 1, i64::from(i32::MAX))? as i32;
            }
            "retention.bytes" => settings.log.retention_bytes = parse_limit(key, value)?,
            "retention.ms" => settings.log.retention_ms = parse_limit(key, value)?,
            "segment.bytes" => {
                settings.log.segment_bytes_max =
                    parse_in_range(key, value, SEGMENT_BYTES_MIN as i64, i64::from(i32::MAX))?
                        as u64;
            }
            "segment.ms" => {
                settings.log.segment_ms_max = parse_in_range(key, value, 1, i64::MAX)? as u64
            }
            "unclean.leader.election.enable" => {
                settings.unclean_leader_election = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(StorageError::InvalidConfig(format!(
                            "{key}: expected true or false, got {value:?}"
                        )))
                    }
                }
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                check_throttled_replicas(key, value)?;
            }
            _ => match kafka_topic_config(key) {
                // One of Kafka's that Sluice does not implement: its default only.
                Some(config) if is_kafka_default(config, value) => {}
                Some(config) => {
                    return Err(StorageError::InvalidConfig(format!(
                        "{key}: Sluice implements only Kafka's default, {:?}; {value:?} is not supported",
                        config.kafka_default
                    )))
                }
                None => {
                    return Err(StorageError::InvalidConfig(format!(
                        "{key}: unknown topic config; implemented: {}",
                        SUPPORTED_TOPIC_CONFIGS.join(", ")
                    )))
                }
            },
        }
    }
    settings.log.cleaner.validate()?;
    let normalised = overrides
        .iter()
        .map(|(key, value)| {
            let normal = match key.as_str() {
                // A list keeps the order it was given in, as Kafka shows it.
                "cleanup.policy" => list_in_order(value),
                "leader.replication.throttled.replicas"
                | "follower.replication.throttled.replicas" => list_in_order(value),
                _ => config_value(&settings, key),
            };
            (key.clone(), normal)
        })
        .collect();
    Ok((settings, normalised))
}

/// Kafka's throttled-replicas list: empty, `*`, or `partition:broker` pairs.
fn check_throttled_replicas(key: &str, value: &str) -> Result<(), StorageError> {
    let valid = value.trim().is_empty()
        || value.trim() == "*"
        || value.split(',').all(|item| {
            item.trim()
                .split_once(':')
                .is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        });
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidConfig(format!(
            "{key}: expected *, or partition:broker pairs separated by commas, got {value:?}"
        )))
    }
}

/// A list value's items, trimmed, lower-cased and without repeats, in the order given.
fn list_in_order(value: &str) -> String {
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(|i| i.trim().to_ascii_lowercase()) {
        if !item.is_empty() && !items.contains(&item) {
            items.push(item);
        }
    }
    items.join(",")
}

fn parse_in_range(key: &str, value: &str, min: i64, max: i64) -> Result<i64, StorageError> {
    let parsed: i64 = value.parse().map_err(|_| {
        StorageError::InvalidConfig(format!("{key}: expected an integer, got {value:?}"))
    })?;
    if !(min..=max).contains(&parsed) {
        return Err(StorageError::InvalidConfig(format!(
            "{key}: {parsed} is outside {min}..={max}"
        )));
    }
    Ok(parsed)
}

/// A limit where -1 means "none".
fn parse_limit(key: &str, value: &str) -> Result<Option<u64>, StorageError> {
    match parse_in_range(key, value, -1, i64::MAX)? {
        -1 => Ok(None),
        limit => Ok(Some(limit as u64)),
    }
}

/// Every config DescribeConfigs lists for a topic, in name order: Kafka's 33 and Sluice's
/// own `durability`, each with its value and whether the topic overrides it.
pub(super) fn topic_entries(
    settings: &TopicSettings,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let entry = |name: &str, synonym, config_type, kafka_default| ConfigEntry {
        name: name.to_string(),
        // An override as stored (normalised), else the effective value.
        value: Some(
            overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| config_value(settings, name)),
        ),
        is_default: !overrides.contains_key(name),
        synonym,
        config_type,
        kafka_default,
    };
    let mut entries: Vec<ConfigEntry> = KAFKA_TOPIC_CONFIGS
        .iter()
        .map(|c| {
            entry(
                c.name,
                c.broker_synonym,
                c.config_type as i8,
                Some(c.kafka_default),
            )
        })
        .collect();
    // Sluice's own: where its durability mode is set per topic (a string).
    entries.push(entry("durability", Some("durability"), 2, None));
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// A setting's value as Kafka prints it.
pub(super) fn config_value(settings: &TopicSettings, key: &str) -> String {
    let limit =
        |limit: Option<u64>| limit.map_or_else(|| "-1".to_string(), |limit| limit.to_string());
    match key {
        "cleanup.policy" => settings.log.cleaner.cleanup_policy.to_string(),
        "delete.retention.ms" => settings.log.cleaner.delete_retention_ms.to_string(),
        "max.compaction.lag.ms" => settings.log.cleaner.max_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => settings.log.cleaner.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => settings.log.cleaner.min_compaction_lag_ms.to_string(),
        "durability" => settings.log.durability.to_string(),
        "max.message.bytes" => settings.log.batch_bytes_max.to_string(),
        "min.insync.replicas" => settings.min_insync_replicas.to_string(),
        "retention.bytes" => limit(settings.log.retention_bytes),
        "retention.ms" => limit(settings.log.retention_ms),
        "segment.bytes" => settings.log.segment_bytes_max.to_string(),
        "segment.ms" => settings.log.segment_ms_max.to_string(),
        "unclean.leader.election.enable" => settings.unclean_leader_election.to_string(),
        other => match kafka_topic_config(other) {
            Some(config) => config.kafka_default.to_string(),
            None => unreachable!("config_value of unknown key {other}"),
        },
    }
}
