//! DescribeConfigs for topics (resource type 2) and brokers (resource type 4): this
//! broker's settings and dynamic configs (its own over the cluster default's), or for the
//! default resource (`""`) the cluster default's dynamic configs.
//!
//! A topic lists Kafka 4.1.1's 33 topic configs and Sluice's `durability`
//! (`storage::manager::kafka_topic_configs`): honoured ones with their effective value,
//! the others at Kafka's default. Each has Kafka's source (1 topic override, 2 this
//! broker's dynamic config, 3 the cluster default's dynamic config, 4 a broker setting
//! other than Kafka's default, 5 Kafka's default), its type, and, when asked
//! (`include_synonyms`), its synonyms in Kafka's order of precedence: the override, the
//! dynamic broker config, the dynamic cluster default, then the static broker config or
//! Kafka's default it falls back to. Documentation is not served (null), a known
//! difference.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use sluice_protocol::error::ErrorCode;

use std::collections::BTreeMap;

use super::{count_error, str_bytes};
use crate::server::{storage_error_code, AutoCreate, Broker};
use crate::storage::{ConfigEntry, StorageError, DYNAMIC_LOG_CONFIGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One config entry: name, value, Kafka ConfigSource, for topics its synonyms (name,
/// value, source; the entry itself first when it is an override) and Kafka's config type.
struct Entry {
    name: String,
    value: Option<String>,
    source: i8,
    synonyms: Vec<(String, Option<String>, i8)>,
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
            synonyms: Vec::new(),
            config_type: 0,
            dynamic: false,
        }
    }

    fn dynamic(name: &str, value: &str, source: i8) -> Entry {
        Entry {
            name: name.to_string(),
            value: Some(value.to_string()),
            source,
            synonyms: Vec::new(),
            config_type: 0,
            dynamic: true,
        }
    }
}

/// Topic configs whose broker default Kafka keeps in hours: (topic config, the hours
/// config, its default). Kafka lists the hours config as the last synonym only under a
/// dynamic broker config (not alone, not under a topic override alone).
const HOURS_SYNONYMS: &[(&str, &str, &str)] = &[
    ("retention.ms", "log.retention.hours", "168"),
    ("segment.ms", "log.roll.hours", "168"),
];

/// The dynamic broker configs a topic's defaults may come from: this broker's, then the
/// cluster default's.
struct DynamicDefaults {
    broker: BTreeMap<String, String>,
    cluster: BTreeMap<String, String>,
}

impl DynamicDefaults {
    fn of(broker: &Broker) -> DynamicDefaults {
        broker.replicas.metadata().read(|state| DynamicDefaults {
            broker: state
                .broker_configs(Some(broker.identity.node_id))
                .cloned()
                .unwrap_or_default(),
            cluster: state.broker_configs(None).cloned().unwrap_or_default(),
        })
    }

    /// The dynamic broker configs that set topic config `topic_config`'s default, in
    /// precedence order, with their sources.
    fn synonyms_of(&self, topic_config: &str) -> Vec<(String, Option<String>, i8)> {
        let Some((name, _)) = DYNAMIC_LOG_CONFIGS.iter().find(|(_, t)| *t == topic_config) else {
            return Vec::new();
        };
        [
            (&self.broker, SOURCE_DYNAMIC_BROKER),
            (&self.cluster, SOURCE_DYNAMIC_DEFAULT_BROKER),
        ]
        .into_iter()
        .filter_map(|(configs, source)| {
            configs
                .get(*name)
                .map(|value| (name.to_string(), Some(value.clone()), source))
        })
        .collect()
    }
}

/// A topic's configs as this broker's logs record them, or, for a topic the metadata has
/// and this broker has not recorded (it hosts none of its partitions, or has not applied
/// the creation yet), from the metadata's overrides: Kafka answers for any topic its
/// metadata knows.
fn topic_configs(broker: &Broker, name: &str) -> Result<Vec<ConfigEntry>, StorageError> {
    match broker.logs.describe_configs(name) {
        Err(StorageError::UnknownTopic(_)) => {
            let overrides = broker
                .replicas
                .metadata()
                .read(|state| state.topic_by_name(name).map(|t| t.configs.clone()));
            match overrides {
                Some(overrides) => broker.logs.describe_overrides(&overrides),
                None => Err(StorageError::UnknownTopic(name.to_string())),
            }
        }
        other => other,
    }
}

pub fn handle(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let entries: Result<Vec<Entry>, (ErrorCode, String)> = match resource.resource_type {
            RESOURCE_TOPIC => topic_configs(broker, &resource.resource_name)
                .map(|entries| {
                    let dynamic = DynamicDefaults::of(broker);
                    entries
                        .into_iter()
                        .map(|e| topic_entry(e, &dynamic))
                        .collect()
                })
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

/// A topic's config as storage describes it, its source and synonyms as Kafka gives them.
fn topic_entry(e: crate::storage::ConfigEntry, dynamic: &DynamicDefaults) -> Entry {
    let mut synonyms = Vec::new();
    if !e.is_default {
        synonyms.push((e.name.clone(), e.value.clone(), SOURCE_DYNAMIC_TOPIC));
    }
    let dynamic_synonyms = dynamic.synonyms_of(&e.name);
    let under_dynamic = !dynamic_synonyms.is_empty();
    synonyms.extend(dynamic_synonyms);
    if let Some((_, name, value)) = HOURS_SYNONYMS.iter().find(|(t, _, _)| *t == e.name) {
        if under_dynamic {
            synonyms.push((name.to_string(), Some(value.to_string()), SOURCE_DEFAULT));
        }
    }
    // Under the dynamic configs: the static broker config or Kafka's default. The
    // effective value shows it only when nothing above shadows it.
    let static_source = e.source();
    if let Some(name) = e.synonym {
        let (value, source) = if synonyms.is_empty() {
            (e.value.clone(), static_source)
        } else {
            (e.kafka_default.map(str::to_string), SOURCE_DEFAULT)
        };
        synonyms.push((name.to_string(), value, source));
    }
    // The first in precedence is where the value comes from.
    let source = synonyms
        .first()
        .map_or(static_source, |(_, _, source)| *source);
    Entry {
        name: e.name,
        value: e.value,
        source,
        synonyms,
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
        c.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| synonym(&name, value, source))
            .collect();
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
