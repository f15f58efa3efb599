//! DescribeConfigs for topics (resource type 2) and brokers (resource type 4): this
//! broker's settings and dynamic configs (its own over the cluster default's), or for the
//! default resource (`""`) the cluster default's dynamic configs.
//!
//! A topic lists Kafka 4.1.1's 33 topic configs and Sluice's `durability`
//! (`storage::manager::kafka_topic_configs`): honoured ones with their effective value,
//! the others at Kafka's default. Each has Kafka's source (1 topic override, 4 a broker
//! setting other than Kafka's default, 5 Kafka's default), its type, and, when asked
//! (`include_synonyms`), its synonyms: the override, then the broker config it falls back
//! to. Documentation is not served (null), a known difference.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::{storage_error_code, AutoCreate, Broker};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One config entry: name, value, Kafka ConfigSource, and for topics the broker synonym
/// (with its value) and Kafka's config type.
struct Entry {
    name: String,
    value: Option<String>,
    source: i8,
    synonym: Option<(&'static str, Option<String>, i8)>,
    config_type: i8,
    /// A dynamic broker config (not read-only).
    dynamic: bool,
}

impl Entry {
    fn broker(name: &str, value: String) -> Entry {
        Entry {
            name: name.to_string(),
            value: Some(value),
            source: SOURCE_STATIC_BROKER,
            synonym: None,
            config_type: 0,
            dynamic: false,
        }
    }

    fn dynamic(name: &str, value: &str, source: i8) -> Entry {
        Entry {
            name: name.to_string(),
            value: Some(value.to_string()),
            source,
            synonym: None,
            config_type: 0,
            dynamic: true,
        }
    }
}

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
                .map(|entries| entries.into_iter().map(topic_entry).collect())
                .map_err(|e| (storage_error_code(&e), e.to_string())),
            RESOURCE_BROKER => {
                if resource.resource_name.is_empty() {
                    Ok(dynamic_configs(broker, None))
                } else if resource.resource_name.as_str() == broker.identity.node_id.to_string() {
                    let mut entries = broker_configs(broker);
                    entries.extend(dynamic_configs(broker, Some(broker.identity.node_id)));
                    Ok(entries)
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
                let is_broker = resource.resource_type == RESOURCE_BROKER;
                result.configs = entries
                    .into_iter()
                    .filter(|e| match &resource.configuration_keys {
                        None => true,
                        Some(keys) => keys.iter().any(|k| k.as_str() == e.name),
                    })
                    .map(|e| config_result(e, is_broker, request.include_synonyms))
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

/// A topic's config as storage describes it.
fn topic_entry(e: crate::storage::ConfigEntry) -> Entry {
    let source = e.source();
    // A default's value is its broker synonym's; an override shadows it.
    let synonym = e.synonym.map(|name| {
        let broker_source = if source == SOURCE_DYNAMIC_TOPIC {
            SOURCE_DEFAULT
        } else {
            source
        };
        let value = if source == SOURCE_DYNAMIC_TOPIC {
            e.kafka_default.map(str::to_string)
        } else {
            e.value.clone()
        };
        (name, value, broker_source)
    });
    Entry {
        name: e.name,
        value: e.value,
        source,
        synonym,
        config_type: e.config_type,
        dynamic: false,
    }
}

fn config_result(
    e: Entry,
    is_broker: bool,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    if include_synonyms {
        if e.source == SOURCE_DYNAMIC_TOPIC {
            c.synonyms.push(synonym(&e.name, e.value.clone(), e.source));
        }
        if let Some((name, value, source)) = e.synonym {
            c.synonyms.push(synonym(name, value, source));
        }
    }
    c.name = str_bytes(e.name);
    c.value = e.value.map(str_bytes);
    c.config_source = e.source;
    c.config_type = e.config_type;
    c.read_only = is_broker && !e.dynamic;
    c
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = str_bytes(name.to_string());
    s.value = value.map(str_bytes);
    s.source = source;
    s
}

fn broker_configs(broker: &Broker) -> Vec<Entry> {
    let (auto_create, partitions) = match broker.auto_create {
        AutoCreate::Enabled { partitions } => (true, partitions),
        AutoCreate::Disabled => (false, 1),
    };
    vec![
        Entry::broker("broker.id", broker.identity.node_id.to_string()),
        Entry::broker("auto.create.topics.enable", auto_create.to_string()),
        Entry::broker("num.partitions", partitions.to_string()),
        Entry::broker(
            "socket.request.max.bytes",
            broker.limits.frame_bytes_max.to_string(),
        ),
        Entry::broker("fetch.max.bytes", broker.limits.fetch_bytes_max.to_string()),
    ]
}

/// The dynamic broker configs in force: the cluster default's (the default resource), or
/// for this broker its own over the cluster default's, each with Kafka's source.
fn dynamic_configs(broker: &Broker, id: Option<i32>) -> Vec<Entry> {
    broker.replicas.metadata().read(|state| {
        let mut entries: std::collections::BTreeMap<String, Entry> = state
            .broker_configs(None)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Entry::dynamic(k, v, SOURCE_DYNAMIC_DEFAULT_BROKER),
                )
            })
            .collect();
        if id.is_some() {
            for (k, v) in state.broker_configs(id).into_iter().flatten() {
                entries.insert(k.clone(), Entry::dynamic(k, v, SOURCE_DYNAMIC_BROKER));
            }
        }
        entries.into_values().collect()
    })
}
