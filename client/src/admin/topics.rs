//! Topics: create (one or a batch), delete, list, describe (partitions and configs) and
//! grow them, and list the offsets of every partition of a topic.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{
    message, missing_from_response, topic_name, Admin, NewTopic, TOPIC_ALREADY_EXISTS,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::cluster::PartitionInfo;
use crate::error::{Error, Result};
use crate::offsets::{self, IsolationLevel, OffsetSpec};

/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// Where a config value comes from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on this topic.
    TopicOverride,
    /// Set for brokers dynamically.
    DynamicBroker,
    /// From the broker's configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
    Other(i8),
}

impl ConfigSource {
    fn from_wire(value: i8) -> ConfigSource {
        match value {
            1 => ConfigSource::TopicOverride,
            2..=3 => ConfigSource::DynamicBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

/// One topic config as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// None for sensitive values.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

/// A topic's partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
    pub configs: Vec<ConfigEntry>,
}

/// How often [`Admin::create_topic`] asks whether a new topic's leaders serve it yet.
const SERVING_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

impl Admin {
    /// Create a topic and wait until every partition has a leader.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<()> {
        let topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: configs.to_vec(),
        };
        let mut results = self.create_topics(std::slice::from_ref(&topic)).await?;
        let (_, result) = results.pop().expect("one result per topic");
        result?;
        let info = self.cluster.topic(name, self.timeout).await?;
        if !info.all_leaders_known() {
            tracing::warn!(
                topic = name,
                "topic created but not every partition has a leader yet"
            );
            return Ok(());
        }
        // The controller answers once the topic is in the metadata (as Kafka's does); the
        // leaders create the partitions' logs right after. A ListOffsets answered by every
        // leader shows they serve (an acks=0 produce sent before would be dropped silently).
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.list_offsets(name, OffsetSpec::Latest).await {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(topic = name, %error, "topic created but its leaders are not serving yet");
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(SERVING_POLL_INTERVAL).await,
            }
        }
    }

    /// Create several topics in one CreateTopics request (the broker decides each on its
    /// own); one result per topic, in order. Returns when the controller has them, without
    /// waiting for leaders to serve (see [`Admin::create_topic`] for that).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<Vec<(String, Result<()>)>> {
        let request = CreateTopicsRequest::default()
            .with_topics(topics.iter().map(NewTopic::to_wire).collect())
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(false);
        let response = self.send_to_controller(request).await?;
        let results = topics
            .iter()
            .map(|topic| {
                let name = topic.name.as_str();
                let result = match response.topics.iter().find(|t| &*t.name.0 == name) {
                    None => Err(missing_from_response("CreateTopics", name)),
                    Some(result) => match result.error_code {
                        0 => Ok(()),
                        TOPIC_ALREADY_EXISTS => Err(Error::broker(
                            format!("topic '{name}' already exists"),
                            TOPIC_ALREADY_EXISTS,
                            None,
                        )),
                        code => Err(Error::broker(
                            format!("creating topic '{name}'"),
                            code,
                            message(&result.error_message),
                        )),
                    },
                };
                (topic.name.clone(), result)
            })
            .collect();
        Ok(results)
    }

    /// The offset `spec` names in every partition of a topic, by partition.
    pub async fn list_offsets(&self, topic: &str, spec: OffsetSpec) -> Result<Vec<(i32, i64)>> {
        let info = self.cluster.topic(topic, self.timeout).await?;
        let name: Arc<str> = Arc::from(topic);
        let targets: Vec<_> = info
            .partitions
            .iter()
            .map(|p| ((name.clone(), p.partition), spec))
            .collect();
        let resolved =
            offsets::list_offsets(&self.cluster, IsolationLevel::ReadUncommitted, &targets).await?;
        let mut offsets: Vec<(i32, i64)> = resolved
            .into_iter()
            .map(|((_, partition), offset)| (partition, offset))
            .collect();
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// Delete a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let response = self
            .with_controller(|connection| async move {
                let version = connection.version(ApiKey::DeleteTopics)?;
                let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
                if version >= 6 {
                    request.topics =
                        vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
                } else {
                    request.topic_names = vec![topic_name(name)];
                }
                connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await
            })
            .await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| &*n.0 == name))
            .or(response.responses.first())
            .ok_or_else(|| missing_from_response("DeleteTopics", name))?;
        self.topic_changed(name, result.error_code, &result.error_message, || {
            format!("deleting topic '{name}'")
        })
        .await
    }

    /// Names of all topics except internal ones, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let metadata = self.cluster.refresh_all_topics().await?;
        let mut names: Vec<String> = metadata
            .topics
            .values()
            .filter(|t| !t.is_internal)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partitions (leader, replicas, ISR) and configs of a topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.cluster.add_interest([name]);
        let metadata = self.cluster.refresh().await?;
        let Some(info) = metadata.topic(name) else {
            return Err(Error::UnknownTopic(name.to_string()));
        };
        if info.error_code != 0 {
            return Err(Error::broker(
                format!("describing topic '{name}'"),
                info.error_code,
                None,
            ));
        }
        let configs = self.describe_topic_configs(name).await?;
        Ok(TopicDescription {
            name: info.name.clone(),
            is_internal: info.is_internal,
            partitions: info.partitions.clone(),
            configs,
        })
    }

    /// A topic's configs via DescribeConfigs.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = self.cluster.send_any(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| &*r.resource_name == name)
            .ok_or_else(|| missing_from_response("DescribeConfigs", name))?;
        if result.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return Err(Error::UnknownTopic(name.to_string()));
        }
        if result.error_code != 0 {
            return Err(Error::broker(
                format!("describing the configs of topic '{name}'"),
                result.error_code,
                message(&result.error_message),
            ));
        }
        let mut configs: Vec<ConfigEntry> = result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: ConfigSource::from_wire(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(configs)
    }

    /// Grow a topic to `total_partitions` partitions.
    pub async fn create_partitions(&self, name: &str, total_partitions: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total_partitions)
                .with_assignments(None)])
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(false);
        let response = self.send_to_controller(request).await?;
        let result = response
            .results
            .iter()
            .find(|r| &*r.name.0 == name)
            .ok_or_else(|| missing_from_response("CreatePartitions", name))?;
        self.topic_changed(name, result.error_code, &result.error_message, || {
            format!("growing topic '{name}' to {total_partitions} partitions")
        })
        .await
    }

    /// The outcome of a change to topic `name` from its result in the controller's answer:
    /// on success the metadata cache is refreshed (a failed refresh only leaves a stale
    /// entry); an unknown topic is [`Error::UnknownTopic`]; any other code is a broker
    /// error while `doing` the change.
    async fn topic_changed(
        &self,
        name: &str,
        error_code: i16,
        error_message: &Option<StrBytes>,
        doing: impl FnOnce() -> String,
    ) -> Result<()> {
        match error_code {
            0 => {
                let _ = self.cluster.refresh().await;
                Ok(())
            }
            UNKNOWN_TOPIC_OR_PARTITION => Err(Error::UnknownTopic(name.to_string())),
            code => Err(Error::broker(doing(), code, message(error_message))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_map_from_the_wire() {
        assert_eq!(ConfigSource::from_wire(1), ConfigSource::TopicOverride);
        assert_eq!(ConfigSource::from_wire(5), ConfigSource::Default);
        assert_eq!(ConfigSource::from_wire(9), ConfigSource::Other(9));
    }

    #[test]
    fn topic_already_exists_reads_as_kafka_names_it() {
        let error = Error::broker("topic 'x' already exists", TOPIC_ALREADY_EXISTS, None);
        assert_eq!(
            error.to_string(),
            "topic 'x' already exists (TOPIC_ALREADY_EXISTS)"
        );
    }
}
