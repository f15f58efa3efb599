//! Altering a topic's config overrides (Kafka's IncrementalAlterConfigs and AlterConfigs),
//! and dynamic broker configs (a broker's or the cluster default's, checked by
//! `storage::check_broker_configs`). For topics:
//! the changes are applied to the stored overrides as Kafka's controller applies them
//! (`storage::apply_config_changes`), the result checked as at creation, and stored. A
//! topic that starts allowing unclean elections gets one at once for each of its
//! leaderless partitions, as Kafka's controller does when that config changes; so does
//! every topic without its own `unclean.leader.election.enable` when the cluster default
//! starts allowing them. `min.insync.replicas` is a cluster-wide broker config only: a
//! broker's own is refused (INVALID_CONFIG), as Kafka 4.1 refuses it.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::broker_config_key;
use super::election::UncleanElection;
use super::placement::validate_configs;
use super::{
    BrokerId, CommandOutcome, CommandResult, ElectionType, MetadataError, MetadataState,
    PartitionChange, MIN_INSYNC_REPLICAS_CONFIG,
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
        if after == topic.configs {
            return Ok(CommandOutcome::ConfigsAltered {
                changes: Vec::new(),
            });
        }
        let unclean_before = self.unclean_election(topic);
        self.topic_mut(topic_id).expect("checked above").configs = after;
        self.last_changes.changed(*topic_id);
        let changes = self.elect_if_now_unclean(&[(*topic_id, unclean_before)]);
        Ok(CommandOutcome::ConfigsAltered { changes })
    }

    /// Of `topics` (each with whether it allowed unclean elections before a change), those
    /// that allow them now get one for each leaderless partition.
    fn elect_if_now_unclean(&mut self, topics: &[(Uuid, UncleanElection)]) -> Vec<PartitionChange> {
        let mut changes = Vec::new();
        for (topic_id, before) in topics {
            let Some(topic) = self.topics.get(topic_id) else {
                continue;
            };
            if *before == UncleanElection::Allowed
                || self.unclean_election(topic) == UncleanElection::Forbidden
            {
                continue;
            }
            let leaderless: Vec<(Uuid, i32)> = (0..)
                .zip(&topic.partitions)
                .filter(|(_, p)| p.leader.is_none())
                .map(|(number, _)| (*topic_id, number))
                .collect();
            for partition in leaderless {
                let elected = self.elect_leaders(ElectionType::Unclean, &[partition]);
                if let CommandOutcome::LeadersElected { results } = elected {
                    changes.extend(results.into_iter().filter_map(|(_, _, r)| r.ok()));
                }
            }
        }
        changes
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
        if broker.is_some()
            && changes
                .iter()
                .any(|c| c.name() == MIN_INSYNC_REPLICAS_CONFIG)
        {
            return Err(MetadataError::InvalidConfig(format!(
                "Broker-level {MIN_INSYNC_REPLICAS_CONFIG} cannot be altered: set it for the cluster (the default resource) or per topic"
            )));
        }
        let key = broker_config_key(broker);
        let before = self.broker_configs.get(&key).cloned().unwrap_or_default();
        let after = broker_configs_after(&before, changes, replace)?;
        // The cluster default decides unclean elections of topics without their own.
        let unclean_before: Vec<(Uuid, UncleanElection)> = self
            .topics
            .values()
            .map(|topic| (topic.id, self.unclean_election(topic)))
            .collect();
        if after.is_empty() {
            self.broker_configs.remove(&key);
        } else {
            self.broker_configs.insert(key, after);
        }
        let changes = if broker.is_none() {
            self.elect_if_now_unclean(&unclean_before)
        } else {
            Vec::new()
        };
        Ok(CommandOutcome::ConfigsAltered { changes })
    }
}

/// A broker resource's dynamic configs after `changes` (with `replace`, the SETs alone),
/// checked by `storage::check_broker_configs`: a name that cannot change at run time or a
/// bad value is [`MetadataError::InvalidBrokerConfig`].
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
    check_broker_configs(&after).map_err(MetadataError::InvalidBrokerConfig)?;
    Ok(after)
}

/// The reason an INVALID_CONFIG carries.
fn reason(error: StorageError) -> String {
    match error {
        StorageError::InvalidConfig(reason) => reason,
        other => other.to_string(),
    }
}
