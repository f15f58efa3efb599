//! What topics and their partition directories may be called, and how many partitions a
//! topic may have: Kafka's rules, checked before anything is written.

use super::{StorageError, TOPIC_NAME_BYTES_MAX, TOPIC_PARTITIONS_MAX};

/// Kafka's topic name rules: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
    let invalid = |why: &str| Err(StorageError::InvalidTopic(format!("{name:?} {why}")));
    if name.is_empty() {
        return invalid("is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid(&format!("is longer than {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if name == "." || name == ".." {
        return invalid("is not allowed");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(&format!(
            "contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

pub(super) fn validate_partition_count(partitions: i32) -> Result<(), StorageError> {
    if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
        return Err(StorageError::InvalidPartitions(format!(
            "{partitions}: a topic has 1 to {TOPIC_PARTITIONS_MAX} partitions"
        )));
    }
    Ok(())
}

/// `<topic>-<partition>` back into its parts, if the name is a partition directory's.
pub(super) fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    validate_topic_name(topic).ok()?;
    Some((topic, partition.parse().ok()?))
}
