//! The group consumer's settings, with Kafka's names and defaults.

use std::time::Duration;

use crate::consumer::ConsumerConfig;
use crate::error::{Error, Result};
use crate::group::assignor::Assignor;

/// Kafka's `group.protocol`: how the member takes part in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat; the group's leader member runs the assignor
    /// (`assignors`); eager rebalances (everything revoked, then reassigned).
    #[default]
    Classic,
    /// KIP-848 (ConsumerGroupHeartbeat): the coordinator assigns (`group_remote_assignor`)
    /// and moves partitions incrementally: a member only gives up the partitions that
    /// move. The session timeout and heartbeat interval are the broker's
    /// (`group.consumer.*`); `session_timeout_ms`, `heartbeat_interval_ms` and `assignors`
    /// do not apply.
    Consumer,
}

impl GroupProtocol {
    /// Kafka's names: `classic`, `consumer` (any case).
    pub fn from_name(name: &str) -> Option<GroupProtocol> {
        match name.to_ascii_lowercase().as_str() {
            "classic" => Some(GroupProtocol::Classic),
            "consumer" => Some(GroupProtocol::Consumer),
            _ => None,
        }
    }
}

/// Settings of a [`GroupConsumer`](crate::group::GroupConsumer).
/// [`GroupConsumerConfig::new`] gives Kafka's defaults.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// Bootstrap, `client_id`, fetch sizes, `auto_offset_reset` (used when the group has no
    /// committed offset for a partition), request timeout.
    pub consumer: ConsumerConfig,
    /// Kafka's `group.id`.
    pub group_id: String,
    /// Kafka's `group.protocol` (default classic).
    pub group_protocol: GroupProtocol,
    /// Kafka's `group.remote.assignor`: with the consumer protocol, the server-side
    /// assignor to ask for (`uniform`, `range`); None leaves the choice to the broker.
    pub group_remote_assignor: Option<String>,
    /// Kafka's `group.instance.id`: set, the member is static (KIP-345): it keeps its
    /// partitions across restarts within the session timeout, and `close` does not leave
    /// the group. Default None (dynamic).
    pub group_instance_id: Option<String>,
    /// Kafka's `session.timeout.ms` (default 45 000): the coordinator drops a member it has
    /// not heard a heartbeat from for this long.
    pub session_timeout_ms: u64,
    /// Kafka's `heartbeat.interval.ms` (default 3 000); must be below the session timeout.
    pub heartbeat_interval_ms: u64,
    /// Kafka's `max.poll.interval.ms` (default 300 000), also sent as the rebalance timeout:
    /// how long the coordinator waits for members to rejoin, and how long the application
    /// may go without calling `poll` before the member leaves the group.
    pub max_poll_interval_ms: u64,
    /// Kafka's `enable.auto.commit` (default true): commit what `poll` returned every
    /// `auto_commit_interval_ms`, before a rebalance and on close.
    pub enable_auto_commit: bool,
    /// Kafka's `auto.commit.interval.ms` (default 5 000).
    pub auto_commit_interval_ms: u64,
    /// Kafka's `partition.assignment.strategy`, in preference order (default range). The
    /// coordinator picks the first one every member offers.
    pub assignors: Vec<Assignor>,
    /// Kafka's `retry.backoff.ms` (default 100): pause between retries of coordinator
    /// lookups, joins and commits.
    pub retry_backoff_ms: u64,
    /// Kafka's `metadata.max.age.ms` (default 300 000): how often the group's leader
    /// refreshes metadata to notice subscribed topics that gained partitions (or appeared),
    /// which makes it rejoin so that the new partitions get assigned.
    pub metadata_max_age_ms: u64,
}

impl GroupConsumerConfig {
    pub fn new(bootstrap: impl Into<String>, group_id: impl Into<String>) -> GroupConsumerConfig {
        GroupConsumerConfig {
            consumer: ConsumerConfig::new(bootstrap),
            group_id: group_id.into(),
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            group_instance_id: None,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            assignors: vec![Assignor::Range],
            retry_backoff_ms: 100,
            metadata_max_age_ms: 300_000,
        }
    }

    /// Refuse settings Kafka's consumer refuses, before anything is sent.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidConfig(why));
        if self.group_id.is_empty() {
            return invalid("group_id must not be empty".into());
        }
        if self.group_instance_id.as_deref() == Some("") {
            return invalid("group_instance_id must not be empty when set".into());
        }
        if self.group_remote_assignor.as_deref() == Some("") {
            return invalid("group_remote_assignor must not be empty when set".into());
        }
        if self.assignors.is_empty() {
            return invalid("assignors must name at least one assignor".into());
        }
        for (name, value) in [
            ("session_timeout_ms", self.session_timeout_ms),
            ("max_poll_interval_ms", self.max_poll_interval_ms),
        ] {
            if value == 0 || i32::try_from(value).is_err() {
                return invalid(format!("{name} must be between 1 and {}", i32::MAX));
            }
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.session_timeout_ms
        {
            return invalid(format!(
                "heartbeat_interval_ms ({}) must be above 0 and below session_timeout_ms ({})",
                self.heartbeat_interval_ms, self.session_timeout_ms
            ));
        }
        if self.enable_auto_commit && self.auto_commit_interval_ms == 0 {
            return invalid("auto_commit_interval_ms must be above 0".into());
        }
        Ok(())
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub(crate) fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    pub(crate) fn max_poll_interval(&self) -> Duration {
        Duration::from_millis(self.max_poll_interval_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.consumer.request_timeout_ms)
    }

    pub(crate) fn metadata_max_age(&self) -> Duration {
        Duration::from_millis(self.metadata_max_age_ms)
    }

    pub(crate) fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = GroupConsumerConfig::new("127.0.0.1:9092", "g");
        assert_eq!(config.session_timeout_ms, 45_000);
        assert_eq!(config.heartbeat_interval_ms, 3_000);
        assert_eq!(config.max_poll_interval_ms, 300_000);
        assert!(config.enable_auto_commit);
        assert_eq!(config.auto_commit_interval_ms, 5_000);
        assert_eq!(config.assignors, [Assignor::Range]);
        config.validate().unwrap();
    }

    #[test]
    fn a_heartbeat_interval_not_below_the_session_timeout_is_refused() {
        let mut config = GroupConsumerConfig::new("127.0.0.1:9092", "g");
        config.heartbeat_interval_ms = config.session_timeout_ms;
        assert!(matches!(config.validate(), Err(Error::InvalidConfig(_))));
        let mut config = GroupConsumerConfig::new("127.0.0.1:9092", "");
        assert!(config.validate().is_err());
        config.group_id = "g".into();
        config.assignors.clear();
        assert!(config.validate().is_err());
    }
}
