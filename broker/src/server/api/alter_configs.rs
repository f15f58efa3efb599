//! IncrementalAlterConfigs (v0-1) and AlterConfigs (v0-2, which replaces a resource's whole
//! override set): topic config overrides, through the controller, which applies the
//! changes to the replicated overrides and checks the result as at creation
//! (`storage::apply_config_changes`). Every broker then applies the new settings live to
//! its logs and replicas (retention, segment size and age, cleanup policy and compaction
//! lags, message size, min ISR, unclean election), see `replica::reconcile`.
//!
//! Kafka's errors: UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist,
//! INVALID_CONFIG with the reason for a value or name storage refuses (and for
//! `durability`, fixed at creation), INVALID_REQUEST for a request Kafka refuses before
//! looking at values (a key twice, a missing value, an unknown operation, the default
//! topic resource, a resource type other than topic and broker). With `validate_only` the same checks
//! run on this broker's copy of the metadata and nothing changes.
//!
//! Broker resources (dynamic broker configs, one broker's or the cluster default's): the
//! topic defaults Sluice's storage honours under Kafka's broker names (`log.retention.ms`,
//! `log.segment.bytes`, `message.max.bytes`, ...) and the replication throttle rates, kept
//! in the replicated metadata and applied live by every broker they concern
//! (`storage::manager::broker_configs`). Any other name is refused as Kafka refuses a
//! static config: INVALID_REQUEST "Cannot update these configs dynamically".

use std::collections::BTreeSet;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::controller::{broker_configs_after, MetadataCommand};
use crate::server::{metadata_error_code, Broker};
use crate::storage::{apply_config_changes, ConfigChange, StorageError};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// What one resource asks for, in Sluice's terms.
struct ResourceChange {
    resource_type: i8,
    name: String,
    changes: Vec<ConfigChange>,
    /// AlterConfigs: the SETs become the whole override set.
    replace: bool,
}

type Outcome = Result<(), (ErrorCode, String)>;

pub async fn handle_incremental(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let configs = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.config_operation, c.value.clone()));
        let outcome = match incremental_changes(configs) {
            Ok(changes) => {
                let change = ResourceChange {
                    resource_type: resource.resource_type,
                    name: resource.resource_name.to_string(),
                    changes,
                    replace: false,
                };
                alter(broker, change, request.validate_only).await
            }
            Err(refusal) => Err(refusal),
        };
        let mut result = IncrementalResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        (result.error_code, result.error_message) =
            error_fields("IncrementalAlterConfigs", outcome);
        response.responses.push(result);
    }
    response
}

pub async fn handle(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in request.resources {
        let configs = resource.configs.iter().map(|c| {
            // AlterConfigs knows only SET (0).
            (c.name.to_string(), 0, c.value.clone())
        });
        let outcome = match incremental_changes(configs) {
            Ok(changes) => {
                let change = ResourceChange {
                    resource_type: resource.resource_type,
                    name: resource.resource_name.to_string(),
                    changes,
                    replace: true,
                };
                alter(broker, change, request.validate_only).await
            }
            Err(refusal) => Err(refusal),
        };
        let mut result =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        (result.error_code, result.error_message) = error_fields("AlterConfigs", outcome);
        response.responses.push(result);
    }
    response
}

fn error_fields(api: &'static str, outcome: Outcome) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (count_error(api, code), Some(str_bytes(message))),
    }
}

/// The request's (name, operation, value) triples as changes, refused as Kafka refuses
/// them before looking at values.
fn incremental_changes(
    configs: impl Iterator<Item = (String, i8, Option<StrBytes>)>,
) -> Result<Vec<ConfigChange>, (ErrorCode, String)> {
    let mut seen = BTreeSet::new();
    let mut changes = Vec::new();
    for (name, operation, value) in configs {
        if !seen.insert(name.clone()) {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
        let value = value.map(|v| v.to_string());
        let needs_value = || {
            value.clone().ok_or_else(|| {
                (
                    ErrorCode::InvalidRequest,
                    format!("Null value not supported for : {name}"),
                )
            })
        };
        changes.push(match operation {
            0 => ConfigChange::Set {
                value: needs_value()?,
                name,
            },
            1 => ConfigChange::Delete { name },
            2 => ConfigChange::Append {
                value: needs_value()?,
                name,
            },
            3 => ConfigChange::Subtract {
                value: needs_value()?,
                name,
            },
            other => {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Unknown config operation {other} for {name}"),
                ))
            }
        });
    }
    Ok(changes)
}

async fn alter(broker: &Broker, change: ResourceChange, validate_only: bool) -> Outcome {
    match change.resource_type {
        RESOURCE_TOPIC if change.name.is_empty() => Err((
            ErrorCode::InvalidRequest,
            "Default topic resources are not allowed.".to_string(),
        )),
        RESOURCE_TOPIC => alter_topic(broker, change, validate_only).await,
        RESOURCE_BROKER => alter_broker(broker, change, validate_only).await,
        other => Err((
            ErrorCode::InvalidRequest,
            format!("resource type {other} has no configs Sluice can alter"),
        )),
    }
}

/// A broker resource: `""` for the cluster default, else a broker id.
async fn alter_broker(broker: &Broker, change: ResourceChange, validate_only: bool) -> Outcome {
    let id = match change.name.as_str() {
        "" => None,
        name => match name.parse::<i32>() {
            Ok(id) => Some(id),
            Err(_) => {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Invalid broker id {name:?}"),
                ))
            }
        },
    };
    let before = broker
        .replicas
        .metadata()
        .read(|state| state.broker_configs(id).cloned().unwrap_or_default());
    broker_configs_after(&before, &change.changes, change.replace)
        .map_err(|error| (metadata_error_code(&error), error.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let index = broker
        .controller_command(MetadataCommand::AlterBrokerConfigs {
            broker: id,
            changes: change.changes,
            replace: change.replace,
        })
        .await?;
    broker.caught_up_to(index).await;
    tracing::info!(broker = %change.name, "dynamic broker configs altered");
    Ok(())
}

async fn alter_topic(broker: &Broker, change: ResourceChange, validate_only: bool) -> Outcome {
    let name = change.name;
    let Some((topic_id, before)) = broker.replicas.metadata().read(|state| {
        state
            .topic_by_name(&name)
            .map(|topic| (topic.id, topic.configs.clone()))
    }) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        ));
    };
    // Refused here, without a trip to the controller, what the controller would refuse.
    apply_config_changes(&before, &change.changes, change.replace).map_err(|error| {
        let reason = match error {
            StorageError::InvalidConfig(reason) => reason,
            other => other.to_string(),
        };
        (ErrorCode::InvalidConfig, reason)
    })?;
    if validate_only {
        return Ok(());
    }
    let index = broker
        .controller_command(MetadataCommand::AlterTopicConfigs {
            topic_id,
            changes: change.changes,
            replace: change.replace,
        })
        .await?;
    broker.caught_up_to(index).await;
    tracing::info!(topic = %name, "topic configs altered");
    Ok(())
}
