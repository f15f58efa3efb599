//! Every topic config Apache Kafka 4.1.1 lists for a topic (DescribeConfigs of a fresh topic
//! on the reference broker, 2026-12-07): its name, the broker config it falls back to
//! (Kafka's first synonym), Kafka's default, its type, and whether Sluice honours it.
//!
//! Sluice honours the configs its storage and replication implement (`topic_config.rs`
//! parses those). The others are listed at Kafka's default so that tools see Kafka's full
//! set; a topic may set one only to that default (Kafka Streams, for one, passes
//! `message.timestamp.type=CreateTime` explicitly), and any other value is refused with
//! INVALID_CONFIG rather than stored and ignored.

/// Kafka's `ConfigEntry.ConfigType` values on the wire (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One of Kafka's topic configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaTopicConfig {
    pub name: &'static str,
    /// The broker config a topic without an override takes its value from.
    pub broker_synonym: Option<&'static str>,
    pub kafka_default: &'static str,
    pub config_type: ConfigType,
    /// Whether Sluice implements it (else only Kafka's default is accepted).
    pub honoured: bool,
}

const fn config(
    name: &'static str,
    broker_synonym: Option<&'static str>,
    kafka_default: &'static str,
    config_type: ConfigType,
    honoured: bool,
) -> KafkaTopicConfig {
    KafkaTopicConfig {
        name,
        broker_synonym,
        kafka_default,
        config_type,
        honoured,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

/// Kafka 4.1.1's topic configs, in name order (as Kafka lists them).
#[rustfmt::skip]
pub const KAFKA_TOPIC_CONFIGS: &[KafkaTopicConfig] = &[
    config("cleanup.policy", Some("log.cleanup.policy"), "delete", List, true),
    config("compression.gzip.level", Some("compression.gzip.level"), "-1", Int, false),
    config("compression.lz4.level", Some("compression.lz4.level"), "9", Int, false),
    config("compression.type", Some("compression.type"), "producer", Str, false),
    config("compression.zstd.level", Some("compression.zstd.level"), "3", Int, false),
    config("delete.retention.ms", Some("log.cleaner.delete.retention.ms"), "86400000", Long, true),
    config("file.delete.delay.ms", Some("log.segment.delete.delay.ms"), "60000", Long, false),
    config("flush.messages", Some("log.flush.interval.messages"), "9223372036854775807", Long, false),
    config("flush.ms", None, "9223372036854775807", Long, false),
    config("follower.replication.throttled.replicas", None, "", List, true),
    config("index.interval.bytes", Some("log.index.interval.bytes"), "4096", Int, false),
    config("leader.replication.throttled.replicas", None, "", List, true),
    config("local.retention.bytes", Some("log.local.retention.bytes"), "-2", Long, false),
    config("local.retention.ms", Some("log.local.retention.ms"), "-2", Long, false),
    config("max.compaction.lag.ms", Some("log.cleaner.max.compaction.lag.ms"), "9223372036854775807", Long, true),
    config("max.message.bytes", Some("message.max.bytes"), "1048588", Int, true),
    config("message.timestamp.after.max.ms", Some("log.message.timestamp.after.max.ms"), "3600000", Long, false),
    config("message.timestamp.before.max.ms", Some("log.message.timestamp.before.max.ms"), "9223372036854775807", Long, false),
    config("message.timestamp.type", Some("log.message.timestamp.type"), "CreateTime", Str, false),
    config("min.cleanable.dirty.ratio", Some("log.cleaner.min.cleanable.ratio"), "0.5", Double, true),
    config("min.compaction.lag.ms", Some("log.cleaner.min.compaction.lag.ms"), "0", Long, true),
    config("min.insync.replicas", Some("min.insync.replicas"), "1", Int, true),
    config("preallocate", Some("log.preallocate"), "false", Boolean, false),
    config("remote.log.copy.disable", None, "false", Boolean, false),
    config("remote.log.delete.on.disable", None, "false", Boolean, false),
    config("remote.storage.enable", None, "false", Boolean, false),
    config("retention.bytes", Some("log.retention.bytes"), "-1", Long, true),
    // No synonym, as Kafka lists none: log.retention.ms has no value by default.
    config("retention.ms", None, "604800000", Long, true),
    config("segment.bytes", Some("log.segment.bytes"), "1073741824", Int, true),
    config("segment.index.bytes", Some("log.index.size.max.bytes"), "10485760", Int, false),
    config("segment.jitter.ms", None, "0", Long, false),
    config("segment.ms", None, "604800000", Long, true),
    config("unclean.leader.election.enable", Some("unclean.leader.election.enable"), "false", Boolean, true),
];

/// Kafka's entry for `name`, if it is one of Kafka's topic configs.
pub fn kafka_topic_config(name: &str) -> Option<&'static KafkaTopicConfig> {
    KAFKA_TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Whether `value` is Kafka's default for a config Sluice does not honour (the only value a
/// topic may set it to). Enumerations compare without case, as Kafka parses them.
pub fn is_kafka_default(config: &KafkaTopicConfig, value: &str) -> bool {
    let value = value.trim();
    match config.config_type {
        Str | Boolean => value.eq_ignore_ascii_case(config.kafka_default),
        _ => value == config.kafka_default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_thirty_three_topic_configs_in_name_order() {
        assert_eq!(KAFKA_TOPIC_CONFIGS.len(), 33);
        let names: Vec<&str> = KAFKA_TOPIC_CONFIGS.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        // Every config Sluice parses is one of Kafka's, marked honoured, but its own
        // `durability`.
        for name in super::super::topic_config::SUPPORTED_TOPIC_CONFIGS {
            if *name == "durability" {
                continue;
            }
            assert!(
                kafka_topic_config(name).is_some_and(|c| c.honoured),
                "{name}"
            );
        }
        let honoured = KAFKA_TOPIC_CONFIGS.iter().filter(|c| c.honoured).count();
        assert_eq!(
            honoured,
            super::super::topic_config::SUPPORTED_TOPIC_CONFIGS.len() - 1
        );
    }

    #[test]
    fn only_kafkas_default_is_accepted_for_what_sluice_does_not_implement() {
        let timestamp_type = kafka_topic_config("message.timestamp.type").unwrap();
        assert!(is_kafka_default(timestamp_type, "CreateTime"));
        assert!(is_kafka_default(timestamp_type, "createtime"));
        assert!(!is_kafka_default(timestamp_type, "LogAppendTime"));
        let preallocate = kafka_topic_config("preallocate").unwrap();
        assert!(is_kafka_default(preallocate, "FALSE"));
        assert!(!is_kafka_default(preallocate, "true"));
    }
}
