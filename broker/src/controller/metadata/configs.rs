//! Altering a topic's config overrides (Kafka's IncrementalAlterConfigs and AlterConfigs):
//! the changes are applied to the stored overrides as Kafka's controller applies them
//! (`storage::apply_config_changes`), the result checked as at creation, and stored. A
//! topic that starts allowing unclean elections gets one at once for each of its
//! leaderless partitions, as Kafka's controller does when that config changes.

use uuid::Uuid;

use super::placement::validate_configs;
use super::{
    CommandOutcome, CommandResult, ElectionType, MetadataError, MetadataState,
    UNCLEAN_LEADER_ELECTION_CONFIG,
};
use crate::storage::{apply_config_changes, ConfigChange, StorageError};

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
        let after = apply_config_changes(&topic.configs, changes, replace).map_err(|error| {
            MetadataError::InvalidConfig(match error {
                StorageError::InvalidConfig(reason) => reason,
                other => other.to_string(),
            })
        })?;
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
