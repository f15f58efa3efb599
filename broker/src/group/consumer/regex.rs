//! Regex subscriptions (KIP-848's `SubscribedTopicRegex`): a member subscribes to the
//! topics it names and to every topic whose whole name its regular expression matches.
//!
//! Kafka compiles the expression with RE2/J; the `regex` crate has RE2's syntax and
//! guarantees (linear time, no backreferences or lookaround), so an expression is valid
//! here exactly when it is there, but for RE2/J's few Java-only escapes. A regex that does
//! not compile is refused with INVALID_REGULAR_EXPRESSION before anything is stored.
//!
//! Resolution is a pure function of the expression and the topic names: the group matches
//! its members' expressions against the caller's topic snapshot on every heartbeat (when it
//! refreshes its subscription metadata), so topics created later join the subscription at
//! the next heartbeat, and a reloaded group resolves the same way without stored
//! resolutions. Kafka instead resolves asynchronously, at most every few seconds, and
//! persists the result in `ConsumerGroupRegularExpression` records; Sluice neither writes
//! nor needs them.

use std::collections::BTreeSet;

use regex::Regex;

use super::member::MemberMetadata;
use super::types::GroupError;
use super::ConsumerGroup;

/// A member's expression, compiled to match whole topic names (Java's `matches()`).
pub(super) fn compile(expression: &str) -> Result<Regex, GroupError> {
    Regex::new(&format!("^(?:{expression})$")).map_err(|error| {
        let reason = match error {
            regex::Error::Syntax(text) => text.lines().last().unwrap_or_default().to_string(),
            other => other.to_string(),
        };
        GroupError::InvalidRegularExpression(format!(
            "SubscribedTopicRegex `{expression}` is not a valid regular expression: {reason}."
        ))
    })
}

/// The member's expression, if it has one that compiles (stored ones were validated).
fn member_regex(metadata: &MemberMetadata) -> Option<Regex> {
    compile(metadata.subscribed_topic_regex.as_deref()?).ok()
}

/// Whether the member subscribes to `topic`, by name or by its expression.
pub(super) fn subscribes(metadata: &MemberMetadata, topic: &str) -> bool {
    metadata.subscribed_topic_names.iter().any(|t| t == topic)
        || member_regex(metadata).is_some_and(|regex| regex.is_match(topic))
}

/// The topics among `names` the member subscribes to.
pub(super) fn member_topics<'a>(
    metadata: &'a MemberMetadata,
    names: impl Iterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    let regex = member_regex(metadata);
    let mut topics: BTreeSet<&str> = metadata
        .subscribed_topic_names
        .iter()
        .map(String::as_str)
        .collect();
    if let Some(regex) = regex {
        topics.extend(names.filter(|name| regex.is_match(name)));
    }
    topics
}

impl ConsumerGroup {
    /// Every topic among `names` some member subscribes to, by name or by expression (each
    /// distinct expression compiled once). Names a member gives that are not in `names` are
    /// included too: the caller looks each one up.
    pub(super) fn subscribed_topics<'a>(
        &'a self,
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> BTreeSet<&'a str> {
        let members = self.data.members.values();
        let mut topics: BTreeSet<&str> = members
            .clone()
            .flat_map(|m| m.metadata.subscribed_topic_names.iter().map(String::as_str))
            .collect();
        let expressions: BTreeSet<&str> = members
            .filter_map(|m| m.metadata.subscribed_topic_regex.as_deref())
            .collect();
        for regex in expressions.into_iter().filter_map(|e| compile(e).ok()) {
            topics.extend(names.clone().filter(|name| regex.is_match(name)));
        }
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(names: &[&str], regex: Option<&str>) -> MemberMetadata {
        MemberMetadata {
            subscribed_topic_names: names.iter().map(|n| n.to_string()).collect(),
            subscribed_topic_regex: regex.map(str::to_string),
            ..MemberMetadata::default()
        }
    }

    #[test]
    fn an_expression_matches_whole_names_only() {
        let regex = compile("orders-.*").unwrap();
        assert!(regex.is_match("orders-eu"));
        assert!(!regex.is_match("old-orders-eu"), "a prefix is not enough");
        let regex = compile("a|b").unwrap();
        assert!(
            regex.is_match("b") && !regex.is_match("ab"),
            "alternation is anchored too"
        );
    }

    #[test]
    fn an_invalid_expression_is_invalid_regular_expression_with_the_reason() {
        let error = compile("orders-(").unwrap_err();
        assert_eq!(error.code(), 128);
        assert!(
            error
                .message()
                .starts_with("SubscribedTopicRegex `orders-(` is not a valid regular expression: "),
            "{}",
            error.message()
        );
        // RE2 refuses backreferences, as RE2/J does.
        assert!(compile(r"(a)\1").is_err());
    }

    #[test]
    fn a_member_subscribes_by_name_and_by_expression() {
        let names = ["orders-eu", "orders-us", "payments"];
        let m = member(&["payments"], Some("orders-.*"));
        let topics = member_topics(&m, names.iter().copied());
        assert_eq!(
            topics,
            BTreeSet::from(["orders-eu", "orders-us", "payments"])
        );
        assert!(subscribes(&m, "orders-new") && subscribes(&m, "payments"));
        assert!(!subscribes(&m, "refunds"));
        let by_name = member(&["missing"], None);
        assert_eq!(
            member_topics(&by_name, names.iter().copied()),
            BTreeSet::from(["missing"])
        );
    }
}
