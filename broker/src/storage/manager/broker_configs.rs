//! Dynamic broker configs (Kafka's `kafka-configs --entity-type brokers`): the topic
//! defaults a broker's flags set, changed at run time for one broker or for the whole
//! cluster (the default resource), and the replication throttle. Kept in the replicated
//! metadata; each broker applies the cluster default, then its own, over its flags
//! ([`LogManager::set_dynamic_defaults`]), so every topic without an override of its own
//! takes the new value at once.
//!
//! The dynamic configs Sluice honours are Kafka's names for a topic's defaults
//! ([`DYNAMIC_LOG_CONFIGS`], each the broker synonym of a topic config: the log's settings,
//! `min.insync.replicas` and `unclean.leader.election.enable`; the controller decides which
//! resource may set which, and elections) and the leader's
//! replication throttle ([`LEADER_THROTTLE_RATE`], Sluice's reassignment throttle). Kafka's
//! `follower.replication.throttled.rate` is accepted and has no effect: the leader's rate
//! bounds the same traffic. Any other name is refused as Kafka refuses a config that is not
//! dynamic ("Cannot update these configs dynamically").

use std::collections::BTreeMap;

use super::super::{LogConfig, StorageError};
use super::topic_config::{parse_overrides, TopicSettings};
use super::LogManager;

/// (dynamic broker config, the topic config it is the default of).
pub const DYNAMIC_LOG_CONFIGS: &[(&str, &str)] = &[
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.roll.ms", "segment.ms"),
    ("log.segment.bytes", "segment.bytes"),
    ("message.max.bytes", "max.message.bytes"),
    ("min.insync.replicas", "min.insync.replicas"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// The leader's replication throttle, bytes per second.
pub const LEADER_THROTTLE_RATE: &str = "leader.replication.throttled.rate";
/// Accepted for `kafka-reassign-partitions --throttle`; the leader's rate does the work.
pub const FOLLOWER_THROTTLE_RATE: &str = "follower.replication.throttled.rate";

/// The topic config a dynamic broker config is the default of.
pub fn topic_synonym(broker_config: &str) -> Option<&'static str> {
    DYNAMIC_LOG_CONFIGS
        .iter()
        .find(|(name, _)| *name == broker_config)
        .map(|(_, topic)| *topic)
}

/// Check a broker resource's dynamic configs: known dynamic names, values as the topic
/// config they stand for (or a non-negative rate). Either refusal is Kafka's
/// INVALID_REQUEST: a name Sluice cannot change at run time ("Cannot update these configs
/// dynamically"), or a bad value ("Invalid value .. for configuration ..").
pub fn check_broker_configs(configs: &BTreeMap<String, String>) -> Result<(), String> {
    let fixed: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|name| {
            topic_synonym(name).is_none()
                && *name != LEADER_THROTTLE_RATE
                && *name != FOLLOWER_THROTTLE_RATE
        })
        .collect();
    if !fixed.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: Set({}); Sluice's dynamic broker configs are {}, {LEADER_THROTTLE_RATE} and {FOLLOWER_THROTTLE_RATE}",
            fixed.join(", "),
            DYNAMIC_LOG_CONFIGS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let invalid = |name: &str, value: &str, reason: String| {
        format!("Invalid value {value} for configuration {name}: {reason}")
    };
    for (name, value) in configs {
        let checked = match topic_synonym(name) {
            Some(topic_config) => {
                let single = BTreeMap::from([(topic_config.to_string(), value.clone())]);
                as_topic_overrides_of(&single).map_err(|error| match error {
                    StorageError::InvalidConfig(reason) => reason,
                    other => other.to_string(),
                })
            }
            None => value
                .trim()
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| "expected a non-negative number of bytes per second".to_string()),
        };
        checked.map_err(|reason| invalid(name, value, reason))?;
    }
    Ok(())
}

/// The topic overrides a broker's dynamic configs (cluster default, then its own) stand
/// for: what the topics that do not override them get.
fn as_topic_overrides(
    configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StorageError> {
    let overrides: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|(name, value)| Some((topic_synonym(name)?.to_string(), value.clone())))
        .collect();
    as_topic_overrides_of(&overrides)?;
    Ok(overrides)
}

/// Check topic overrides as the defaults of every topic.
fn as_topic_overrides_of(overrides: &BTreeMap<String, String>) -> Result<(), StorageError> {
    parse_overrides(&TopicSettings::new(LogConfig::default()), overrides).map(|_| ())
}

/// The configs in force on one broker: the cluster default's, then its own over them.
pub fn effective_broker_configs(
    cluster_default: Option<&BTreeMap<String, String>>,
    own: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut configs = cluster_default.cloned().unwrap_or_default();
    configs.extend(own.cloned().unwrap_or_default());
    configs
}

impl LogManager {
    /// Apply this broker's dynamic configs (see the module docs) over its flags: every
    /// topic without its own override takes the new defaults, its hosted logs at once.
    /// Returns whether anything changed.
    pub fn set_dynamic_defaults(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<bool, StorageError> {
        let overrides = as_topic_overrides(configs)?;
        let (defaults, _) = parse_overrides(&self.static_defaults, &overrides)?;
        {
            let mut current = self.defaults.write().unwrap_or_else(|e| e.into_inner());
            if *current == defaults {
                return Ok(false);
            }
            *current = defaults.clone();
        }
        let mut topics = self.write_topics();
        for (name, topic) in topics.iter_mut() {
            match parse_overrides(&defaults, &topic.info.configs) {
                Ok((settings, _)) => {
                    for log in topic.partitions.values() {
                        log.set_config(settings.log.clone());
                    }
                    topic.settings = settings;
                }
                Err(error) => {
                    tracing::error!(topic = %name, %error, "a topic's overrides do not apply over the new broker defaults; it keeps its settings");
                }
            }
        }
        tracing::info!(configs = ?configs, "dynamic broker configs applied");
        Ok(true)
    }
}
