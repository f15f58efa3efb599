//! Altering a topic's configs (IncrementalAlterConfigs): set, delete, append to and
//! subtract from its overrides, as `kafka-configs --alter` does.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;

use super::{message, missing_from_response, Admin, UNKNOWN_TOPIC_OR_PARTITION};
use crate::error::{Error, Result};

/// IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// One change to a topic's config overrides (Kafka's `AlterConfigOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Override `name` with `value`.
    Set(String, String),
    /// Remove the override: the broker default applies again.
    Delete(String),
    /// Add comma-separated values to a list config (`cleanup.policy`).
    Append(String, String),
    /// Remove comma-separated values from a list config.
    Subtract(String, String),
}

impl ConfigOp {
    fn to_wire(&self) -> AlterableConfig {
        let (name, operation, value) = match self {
            ConfigOp::Set(name, value) => (name, 0, Some(value)),
            ConfigOp::Delete(name) => (name, 1, None),
            ConfigOp::Append(name, value) => (name, 2, Some(value)),
            ConfigOp::Subtract(name, value) => (name, 3, Some(value)),
        };
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.clone()))
            .with_config_operation(operation)
            .with_value(value.map(|v| StrBytes::from_string(v.clone())))
    }
}

impl Admin {
    /// Change topic `name`'s config overrides; every change applies, or none (the broker
    /// checks the result as at creation: INVALID_CONFIG names the bad one). With
    /// `validate_only` nothing changes.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[ConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(changes.iter().map(ConfigOp::to_wire).collect())])
            .with_validate_only(validate_only);
        let response = self.cluster.send_any(request).await?;
        let result = response
            .responses
            .iter()
            .find(|r| &*r.resource_name == name)
            .ok_or_else(|| missing_from_response("IncrementalAlterConfigs", name))?;
        match result.error_code {
            0 => Ok(()),
            UNKNOWN_TOPIC_OR_PARTITION => Err(Error::UnknownTopic(name.to_string())),
            code => Err(Error::broker(
                format!("altering the configs of topic '{name}'"),
                code,
                message(&result.error_message),
            )),
        }
    }
}
