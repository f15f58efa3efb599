//! Pattern subscriptions of a [`GroupConsumer`] (Kafka's `subscribe(Pattern)` and
//! `subscribe(SubscriptionPattern)`): the member subscribes to every topic whose whole
//! name the regular expression matches (RE2 syntax, the `regex` crate).
//!
//! - Classic protocol: the client resolves the pattern, as Kafka's classic consumer does:
//!   against all topics in metadata, internal topics left out (Kafka's
//!   `exclude.internal.topics=true`), first at the next `poll` and then every
//!   `metadata_max_age_ms`; when the matching set changes, the subscription becomes it and
//!   the member rejoins.
//! - Consumer protocol (KIP-848): the expression goes to the coordinator
//!   (`SubscribedTopicRegex`, ConsumerGroupHeartbeat v1), which resolves it, internal
//!   topics included, as Kafka's coordinator does.

use std::collections::BTreeSet;
use std::time::Instant;

use regex::Regex;

use crate::error::{Error, Result};
use crate::group::config::GroupProtocol;
use crate::group::consumer::GroupConsumer;

/// A subscription pattern: the expression as given, and compiled for whole names.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub source: String,
    regex: Regex,
    /// Classic protocol: when to resolve it against metadata next.
    pub next_check: Instant,
}

impl Pattern {
    fn new(source: &str) -> Result<Pattern> {
        let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| {
            Error::InvalidConfig(format!("'{source}' is not a valid regular expression: {e}"))
        })?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
            next_check: Instant::now(),
        })
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }
}

impl GroupConsumer {
    /// Subscribe to every topic whose whole name `pattern` matches (replacing any earlier
    /// subscription), now and as topics come and go. Refused if `pattern` is not a valid
    /// regular expression (RE2 syntax). Takes effect at the next `poll`.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let pattern = Pattern::new(pattern)?;
        if self.config.group_protocol == GroupProtocol::Consumer {
            let mut state = self.member.lock();
            state.kip848.set_regex(Some(pattern.source.clone()));
            drop(state);
            self.member.wake.notify_one();
        }
        self.pattern = Some(pattern);
        Ok(())
    }

    /// The subscription pattern, if the member subscribed with one.
    pub fn subscription_pattern(&self) -> Option<&str> {
        self.pattern.as_ref().map(|p| p.source.as_str())
    }

    /// Classic protocol, when due: resolve the pattern against all topics and, if the
    /// matching set changed, make it the subscription (rejoining if in a generation).
    pub(super) async fn maybe_resolve_pattern(&mut self) -> Result<()> {
        let due = self
            .pattern
            .as_ref()
            .is_some_and(|p| Instant::now() >= p.next_check);
        if !due || self.config.group_protocol != GroupProtocol::Classic {
            return Ok(());
        }
        let metadata = self.consumer.cluster().refresh_all_topics().await?;
        let Some(pattern) = self.pattern.as_mut() else {
            return Ok(());
        };
        pattern.next_check = Instant::now() + self.config.metadata_max_age();
        let matched: BTreeSet<String> = metadata
            .topics
            .values()
            .filter(|topic| !topic.is_internal && pattern.matches(&topic.name))
            .map(|topic| topic.name.clone())
            .collect();
        if matched != self.subscription {
            tracing::info!(
                group = self.coordinator.group_id(),
                pattern = %pattern.source,
                topics = ?matched,
                "the pattern's topics changed"
            );
            self.consumer
                .cluster()
                .add_interest(matched.iter().map(String::as_str));
            self.subscription = matched;
            if self.member.stable_identity().is_some() {
                self.member
                    .request_rejoin("the subscribed pattern matches other topics");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_names_and_a_bad_one_is_refused() {
        let pattern = Pattern::new("orders-.*").unwrap();
        assert!(pattern.matches("orders-eu"));
        assert!(!pattern.matches("old-orders-eu"));
        assert!(matches!(
            Pattern::new("orders-("),
            Err(Error::InvalidConfig(_))
        ));
    }
}
