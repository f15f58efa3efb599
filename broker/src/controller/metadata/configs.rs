//! Altering a topic's config overrides (Kafka's IncrementalAlterConfigs and AlterConfigs),
//! and dynamic broker configs (a broker's or the cluster default's, checked by
//! `storage::check_broker_configs`). For topics:
//! the changes are applied to the stored overrides as Kafka's controller applies them
//! (`storage::apply_config_changes`), the result checked as at creation, and stored. A
//! topic that starts allowing unclean elections gets one at once for each of its
//! leaderless partitions, as Kafka's controller does when that config changes.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::broker_config_key;
use super::placement::validate_configs;
use super::{
    BrokerId, CommandOutcome, CommandResult, ElectionType, MetadataError, MetadataState,
    UNCLEAN_LEADER_ELECTION_CONFIG,
};
use crate::storage::{
    apply_changes, apply_config_changes, check_broker_configs, ConfigChange, StorageError,
};

impl MetadataState {
    pub(super) fn alter_topic_configs(
        &mut self,
        topic_id: &Uuid,
        changes: &[ConfigChange],
        replace: bool,
    ) -> CommandResult {
        let topic = self
            .topics
            .get(topic_id)
            .ok_or(MetadataError::UnknownTopicId(*topic_id))?;
        let after = apply_config_changes(&topic.configs, changes, replace)
            .map_err(|error| MetadataError::InvalidConfig(reason(error)))?;
        validate_configs(&after)?;
        let unclean_before = topic.configs.get(UNCLEAN_LEADER_ELECTION_CONFIG).cloned();
        let partitions = topic.partitions.len();
        if after == topic.configs {
            return Ok(CommandOutcome::ConfigsAltered {
                changes: Vec::new(),
            });
        }
        let unclean_now = after.get(UNCLEAN_LEADER_ELECTION_CONFIG).cloned();
        self.topic_mut(topic_id).expect("checked above").configs = after;
        self.last_changes.changed(*topic_id);
        let mut changes = Vec::new();
        if unclean_now.as_deref() == Some("true") && unclean_before != unclean_now {
            for number in 0..i32::try_from(partitions).expect("partition count is bounded") {
                let leaderless = self
                    .partition(topic_id, number)
                    .is_some_and(|p| p.leader.is_none());
                if leaderless {
                    let elected = self.elect_leaders(ElectionType::Unclean, &[(*topic_id, number)]);
                    if let CommandOutcome::LeadersElected { results } = elected {
                        changes.extend(results.into_iter().filter_map(|(_, _, r)| r.ok()));
                    }
                }
            }
        }
        Ok(CommandOutcome::ConfigsAltered { changes })
    }
}

impl MetadataState {
    /// Kafka's IncrementalAlterConfigs (or AlterConfigs, `replace`) of a broker resource:
    /// one broker's dynamic configs, or the cluster default's (`None`); checked by
    /// `storage::check_broker_configs`.
    pub(super) fn alter_broker_configs(
        &mut self,
        broker: Option<BrokerId>,
        changes: &[ConfigChange],
        replace: bool,
    ) -> CommandResult {
        let key = broker_config_key(broker);
        let before = self.broker_configs.get(&key).cloned().unwrap_or_default();
        let after = broker_configs_after(&before, changes, replace)?;
        if after.is_empty() {
            self.broker_configs.remove(&key);
        } else {
            self.broker_configs.insert(key, after);
        }
        Ok(CommandOutcome::ConfigsAltered {
            changes: Vec::new(),
        })
    }
}

/// A broker resource's dynamic configs after `changes` (with `replace`, the SETs alone),
/// checked by `storage::check_broker_configs`: a name that cannot change at run time is
/// [`MetadataError::NotDynamic`], a bad value [`MetadataError::InvalidConfig`].
pub fn broker_configs_after(
    before: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
) -> Result<BTreeMap<String, String>, MetadataError> {
    // Broker configs hold no lists.
    let after = apply_changes(before, changes, replace, |_, name, _| {
        Err(StorageError::InvalidConfig(format!(
            "Config value append or subtract is not allowed for config key: {name}"
        )))
    })
    .map_err(|error| MetadataError::InvalidConfig(reason(error)))?;
    check_broker_configs(&after).map_err(|(not_dynamic, reason)| {
        if not_dynamic {
            MetadataError::NotDynamic(reason)
        } else {
            MetadataError::InvalidConfig(reason)
        }
    })?;
    Ok(after)
}

/// The reason an INVALID_CONFIG carries.
fn reason(error: StorageError) -> String {
    match error {
        StorageError::InvalidConfig(reason) => reason,
        other => other.to_string(),
    }
}
