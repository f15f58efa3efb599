//! A topic's configs as clients see them: described ([`LogManager::describe_configs`]), checked, and altered after creation (AlterConfigs,
//! IncrementalAlterConfigs):
//! [`apply_config_changes`] computes the new overrides from the old ones as Kafka's
//! controller does (SET, DELETE, APPEND and SUBTRACT, the last two on list configs only),
//! checked as at creation; [`LogManager::alter_topic_configs`] then rewrites the metadata
//! file and switches every hosted log of the topic to the new settings at once.
//!
//! `durability` is the one config fixed at creation ([`check_config_change`]): switching a
//! live log between `replicated` and `fsync` would move the offset its high watermark
//! counts from backwards.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::{LogConfig, StorageError};
use super::kafka_topic_configs::{kafka_topic_config, ConfigType};
use super::topic_config::{parse_overrides, topic_entries, ConfigEntry, TopicSettings};
use super::{LogManager, TopicInfo};

/// One change of an IncrementalAlterConfigs resource (Kafka's `AlterConfigOp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    Set {
        name: String,
        value: String,
    },
    Delete {
        name: String,
    },
    /// Add the comma-separated values to a list config (those not there yet).
    Append {
        name: String,
        value: String,
    },
    /// Remove the comma-separated values from a list config.
    Subtract {
        name: String,
        value: String,
    },
}

impl ConfigChange {
    pub fn name(&self) -> &str {
        match self {
            ConfigChange::Set { name, .. }
            | ConfigChange::Delete { name }
            | ConfigChange::Append { name, .. }
            | ConfigChange::Subtract { name, .. } => name,
        }
    }
}

/// The overrides `changes` make of `before` (with `replace`, AlterConfigs: only the SETs
/// remain), checked as [`check_config_change`] checks them.
pub fn apply_config_changes(
    before: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
) -> Result<BTreeMap<String, String>, StorageError> {
    let after = apply_changes(before, changes, replace, list_value)?;
    check_config_change(before, &after)?;
    Ok(after)
}

/// Kafka's four operations applied in order to a resource's configs (with `replace`,
/// starting from none). `list_value(configs, name, op)` gives the current value of a list
/// config APPEND or SUBTRACT (`op`) changes, or why that config takes neither.
pub fn apply_changes(
    before: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
    list_value: impl Fn(&BTreeMap<String, String>, &str, &str) -> Result<String, StorageError>,
) -> Result<BTreeMap<String, String>, StorageError> {
    let mut after = if replace {
        BTreeMap::new()
    } else {
        before.clone()
    };
    for change in changes {
        match change {
            ConfigChange::Set { name, value } => {
                after.insert(name.clone(), value.clone());
            }
            ConfigChange::Delete { name } => {
                after.remove(name);
            }
            ConfigChange::Append { name, value } | ConfigChange::Subtract { name, value } => {
                let append = matches!(change, ConfigChange::Append { .. });
                let op = if append { "append" } else { "subtract" };
                let mut items: Vec<String> = split_list(&list_value(&after, name, op)?);
                let given = split_list(value);
                if append {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|item| !given.contains(item));
                }
                after.insert(name.clone(), items.join(","));
            }
        }
    }
    Ok(after)
}

/// A list config's current value: its override, else Kafka's default. Kafka refuses
/// APPEND and SUBTRACT on any other type (INVALID_CONFIG).
fn list_value(
    overrides: &BTreeMap<String, String>,
    name: &str,
    op: &str,
) -> Result<String, StorageError> {
    match kafka_topic_config(name) {
        Some(config) if config.config_type == ConfigType::List => Ok(overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| config.kafka_default.to_string())),
        Some(_) => Err(StorageError::InvalidConfig(format!(
            "Config value {op} is not allowed for config key: {name}"
        ))),
        None => Err(StorageError::InvalidConfig(format!(
            "{name}: unknown topic config"
        ))),
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// The config fixed when a topic is created.
const FIXED_AT_CREATION: &str = "durability";

/// Check a topic's new overrides (Kafka names) as creation would, and that they keep what
/// is fixed at creation. The broker defaults do not change what is valid.
pub fn check_config_change(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Result<(), StorageError> {
    parse_overrides(&TopicSettings::new(LogConfig::default()), after)?;
    if before.get(FIXED_AT_CREATION) != after.get(FIXED_AT_CREATION) {
        return Err(StorageError::InvalidConfig(format!(
            "{FIXED_AT_CREATION}: fixed when the topic is created; it cannot be set, changed or removed later"
        )));
    }
    Ok(())
}

impl LogManager {
    /// Every supported config key of a topic with its effective value.
    pub fn describe_configs(&self, name: &str) -> Result<Vec<ConfigEntry>, StorageError> {
        let topics = self.read_topics();
        let topic = topics
            .get(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        Ok(topic_entries(&topic.settings, &topic.info.configs))
    }

    /// What [`LogManager::describe_configs`] would list for a topic with these overrides
    /// (for a topic the metadata has and this broker has not recorded yet).
    pub fn describe_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vec<ConfigEntry>, StorageError> {
        let (settings, overrides) = parse_overrides(&self.topic_defaults(), overrides)?;
        Ok(topic_entries(&settings, &overrides))
    }

    /// Check config overrides (Kafka names) as topic creation would, without creating.
    pub fn validate_configs(&self, configs: &BTreeMap<String, String>) -> Result<(), StorageError> {
        parse_overrides(&self.topic_defaults(), configs).map(|_| ())
    }

    /// The topic's `min.insync.replicas` (1 for an unknown topic).
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        self.read_topics()
            .get(topic)
            .map_or(1, |topic| topic.settings.min_insync_replicas)
    }

    /// Make `configs` the topic's overrides (the controller's, already checked there):
    /// rewrite its metadata file and apply the settings to its hosted logs. Returns whether
    /// anything changed (the same overrides, normalised, change nothing).
    pub fn alter_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<bool, StorageError> {
        let (settings, configs) = parse_overrides(&self.topic_defaults(), configs)?;
        let mut topics = self.write_topics();
        let topic = topics
            .get_mut(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        if topic.info.configs == configs {
            return Ok(false);
        }
        let info = TopicInfo {
            configs,
            ..topic.info.clone()
        };
        self.write_metadata(&info)?;
        for log in topic.partitions.values() {
            log.set_config(settings.log.clone());
        }
        tracing::info!(topic = name, configs = ?info.configs, "topic configs changed");
        topic.info = info;
        topic.settings = settings;
        Ok(true)
    }
}
