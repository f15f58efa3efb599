//! DescribeConfigs for topics (resource type 2) and this broker (resource type 4).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::{storage_error_code, AutoCreate, Broker};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One config entry: name, value, Kafka ConfigSource.
type Entry = (String, Option<String>, i8);

pub fn handle(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let entries: Result<Vec<Entry>, (ErrorCode, String)> = match resource.resource_type {
            RESOURCE_TOPIC => broker
                .logs
                .describe_configs(&resource.resource_name)
                .map(|entries| {
                    entries
                        .into_iter()
                        .map(|e| {
                            let source = if e.is_default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_DYNAMIC_TOPIC
                            };
                            (e.name, e.value, source)
                        })
                        .collect()
                })
                .map_err(|e| (storage_error_code(&e), e.to_string())),
            RESOURCE_BROKER => {
                if resource.resource_name.as_str() == broker.identity.node_id.to_string()
                    || resource.resource_name.is_empty()
                {
                    Ok(broker_configs(broker))
                } else {
                    Err((
                        ErrorCode::InvalidRequest,
                        format!("unknown broker '{}'", &*resource.resource_name),
                    ))
                }
            }
            other => Err((
                ErrorCode::InvalidRequest,
                format!("unsupported resource type {other}"),
            )),
        };
        match entries {
            Ok(entries) => {
                result.configs = entries
                    .into_iter()
                    .filter(|(name, _, _)| match &resource.configuration_keys {
                        None => true,
                        Some(keys) => keys.iter().any(|k| k.as_str() == name),
                    })
                    .map(|(name, value, source)| {
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = str_bytes(name);
                        c.value = value.map(str_bytes);
                        c.config_source = source;
                        c.read_only = source != SOURCE_DYNAMIC_TOPIC
                            && resource.resource_type == RESOURCE_BROKER;
                        c
                    })
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = count_error("DescribeConfigs", code);
                result.error_message = Some(str_bytes(message));
            }
        }
        response.results.push(result);
    }
    response
}

fn broker_configs(broker: &Broker) -> Vec<Entry> {
    let (auto_create, partitions) = match broker.auto_create {
        AutoCreate::Enabled { partitions } => (true, partitions),
        AutoCreate::Disabled => (false, 1),
    };
    vec![
        (
            "broker.id".into(),
            Some(broker.identity.node_id.to_string()),
            SOURCE_STATIC_BROKER,
        ),
        (
            "auto.create.topics.enable".into(),
            Some(auto_create.to_string()),
            SOURCE_STATIC_BROKER,
        ),
        (
            "num.partitions".into(),
            Some(partitions.to_string()),
            SOURCE_STATIC_BROKER,
        ),
        (
            "socket.request.max.bytes".into(),
            Some(broker.limits.frame_bytes_max.to_string()),
            SOURCE_STATIC_BROKER,
        ),
        (
            "fetch.max.bytes".into(),
            Some(broker.limits.fetch_bytes_max.to_string()),
            SOURCE_STATIC_BROKER,
        ),
    ]
}
