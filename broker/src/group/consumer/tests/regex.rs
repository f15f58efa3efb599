//! Regex subscriptions: members subscribed by expression get the matching topics (whole
//! names), topics created later join at the next heartbeat, a changed or cleared
//! expression bumps the group epoch, an invalid one is refused, and the records replay.

use super::*;

fn by_regex(member_id: &str, regex: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some(regex.to_string()),
        ..join(member_id, &[])
    }
}

fn topics_of(assignment: &Partitions) -> BTreeSet<Uuid> {
    assignment.keys().copied().collect()
}

#[test]
fn a_member_subscribed_by_regex_gets_the_topics_whose_whole_name_matches() {
    let mut h = Harness::new();
    let response = h.heartbeat(by_regex("m1", "f.."));
    let assigned = response.assignment.unwrap();
    assert_eq!(topics_of(&assigned), BTreeSet::from([FOO]), "{assigned:?}");
    assert_eq!(assigned[&FOO].len(), 6);
    // "fo" would match "foo" only by prefix: nothing.
    let response = h.heartbeat(by_regex("m2", "fo"));
    assert_eq!(
        h.member("m2").metadata.subscribed_topic_regex.as_deref(),
        Some("fo")
    );
    assert!(response.assignment.unwrap().is_empty());
    assert!(h.group.is_subscribed_to_topic("foo"));
    assert!(!h.group.is_subscribed_to_topic("bar"));
    h.assert_replay_matches();
}

#[test]
fn a_topic_created_later_joins_the_subscription_at_the_next_heartbeat() {
    let mut h = Harness::new();
    let mut client = Client::new("m1");
    client.accept(&h.heartbeat(by_regex("m1", "foo|new.*")));
    let epoch = h.group.group_epoch();
    assert_eq!(topics_of(&client.owned), BTreeSet::from([FOO]));
    let new = Uuid::from_u128(0x2e3);
    let mut with_new: Vec<(String, TopicInfo)> = ["foo", "bar"]
        .iter()
        .map(|n| (n.to_string(), h.topics.get(n).unwrap()))
        .collect();
    with_new.push((
        "new-orders".to_string(),
        TopicInfo {
            topic_id: new,
            partition_count: 2,
        },
    ));
    h.topics = TopicsSnapshot::new(with_new);
    client.beat(&mut h);
    assert!(h.group.group_epoch() > epoch);
    assert_eq!(topics_of(&client.owned), BTreeSet::from([FOO, new]));
    h.assert_replay_matches();
}

#[test]
fn changing_or_clearing_the_regex_bumps_the_group_epoch() {
    let mut h = Harness::new();
    let mut client = Client::new("m1");
    client.accept(&h.heartbeat(by_regex("m1", "foo")));
    let epoch = h.group.group_epoch();
    let response = h.heartbeat(HeartbeatRequest {
        subscribed_topic_regex: Some("bar".into()),
        ..beat("m1", client.epoch, client.owned.clone())
    });
    client.accept(&response);
    assert!(h.group.group_epoch() > epoch);
    let epoch = h.group.group_epoch();
    // An empty expression is none: the member subscribes to nothing.
    let response = h.heartbeat(HeartbeatRequest {
        subscribed_topic_regex: Some(String::new()),
        ..beat("m1", client.epoch, client.owned.clone())
    });
    client.accept(&response);
    assert!(h.group.group_epoch() > epoch);
    assert_eq!(h.member("m1").metadata.subscribed_topic_regex, None);
    for _ in 0..3 {
        client.beat(&mut h);
    }
    assert!(client.owned.is_empty(), "{:?}", client.owned);
    h.assert_replay_matches();
}

#[test]
fn an_invalid_regex_is_refused_and_nothing_is_stored() {
    let mut h = Harness::new();
    let error = h.error(by_regex("m1", "foo("));
    assert_eq!(error.code(), 128);
    assert!(
        error
            .message()
            .starts_with("SubscribedTopicRegex `foo(` is not a valid regular expression: "),
        "{}",
        error.message()
    );
    assert_eq!(h.group.member_ids().count(), 0);
    assert!(h.records.is_empty());
}
