//! `__consumer_offsets`: the internal topic group state lives in, and which of its
//! partitions a group belongs to.
//!
//! A group maps to partition `abs(javaStringHashCode(group id)) % partitions`, exactly as
//! Kafka's `GroupCoordinatorShard.partitionFor` (`Utils.abs` of Java's `String.hashCode`
//! over the UTF-16 code units), so Kafka's tools and Sluice agree on where a group is. The
//! group's coordinator is that partition's leader.
//!
//! The topic is created on first use (the first FindCoordinator for a group) with
//! `offsets.topic.num.partitions` partitions (Kafka's default 50) and replication factor
//! `offsets.topic.replication.factor` (default 3) clamped to the brokers eligible at that
//! moment, so a one- or two-broker cluster gets a working topic rather than none. The
//! partition count must never change after creation: every group would move.

/// Kafka's name of the topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;
/// Kafka's `offsets.topic.replication.factor` default.
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// Kafka's `offsets.topic.segment.bytes` default (100 MiB).
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;

/// How the offsets topic is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetsTopicConfig {
    pub partitions: i32,
    pub replication_factor: i16,
    pub segment_bytes: u64,
}

impl Default for OffsetsTopicConfig {
    fn default() -> OffsetsTopicConfig {
        OffsetsTopicConfig {
            partitions: OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            replication_factor: OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT,
            segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES,
        }
    }
}

impl OffsetsTopicConfig {
    /// The replication factor to create the topic with when `eligible_brokers` brokers can
    /// host replicas: the configured one, or all of them if fewer (at least 1).
    pub fn replication_factor_for(&self, eligible_brokers: usize) -> i16 {
        let available = i16::try_from(eligible_brokers).unwrap_or(i16::MAX).max(1);
        self.replication_factor.min(available)
    }
}

/// The partition of a topic with `partitions` partitions that holds `group_id`.
///
/// # Panics
/// If `partitions` is not positive.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    java_abs(java_string_hash(group_id)) % partitions
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, with
/// 32-bit wrap-around.
fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: `Math.abs`, except that `i32::MIN` maps to 0 rather than to itself.
fn java_abs(value: i32) -> i32 {
    if value == i32::MIN {
        0
    } else {
        value.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_javas() {
        // Values of `"...".hashCode()`, printed by Java 17.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("console-consumer-12345"), 158_455_506);
        // Outside the BMP: two UTF-16 code units, as Java counts them.
        assert_eq!(java_string_hash("😀"), 1_772_899);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn groups_land_where_kafka_puts_them() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("😀", 50), 49);
        // i32::MIN hashes to partition 0, not to a negative one.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for group in ["a", "group-1", "my-app", "ünïcode"] {
            assert!((0..7).contains(&partition_for(group, 7)));
        }
    }

    #[test]
    fn the_replication_factor_is_clamped_to_the_brokers_there_are() {
        let config = OffsetsTopicConfig::default();
        assert_eq!(config.replication_factor_for(0), 1);
        assert_eq!(config.replication_factor_for(1), 1);
        assert_eq!(config.replication_factor_for(2), 2);
        assert_eq!(config.replication_factor_for(5), 3);
    }
}
