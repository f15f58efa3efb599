//! Altering topic configs (`configs.rs`): Kafka's four operations, the checks, and the
//! unclean election a newly allowed topic gets.

use std::collections::BTreeMap;

use super::Harness;
use crate::controller::delta::TopicChange;
use crate::controller::metadata::{
    CommandOutcome, Election, MetadataCommand, MetadataError, UNCLEAN_LEADER_ELECTION_CONFIG,
};
use crate::storage::ConfigChange;

fn set(name: &str, value: &str) -> ConfigChange {
    ConfigChange::Set {
        name: name.into(),
        value: value.into(),
    }
}

fn alter(topic_id: uuid::Uuid, changes: Vec<ConfigChange>) -> MetadataCommand {
    MetadataCommand::AlterTopicConfigs {
        topic_id,
        changes,
        replace: false,
    }
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn incremental_changes_set_delete_append_and_subtract_as_kafka() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let t = h.create_topic("t", 1, 1);
    h.state.take_last_changes();
    h.apply(alter(
        t,
        vec![set("retention.ms", "1000"), set("segment.bytes", "2048")],
    ))
    .unwrap();
    assert_eq!(h.state.take_last_changes(), vec![TopicChange::Changed(t)]);
    let append = ConfigChange::Append {
        name: "cleanup.policy".into(),
        value: "compact".into(),
    };
    let delete = ConfigChange::Delete {
        name: "segment.bytes".into(),
    };
    h.apply(alter(t, vec![append, delete])).unwrap();
    let topic = h.state.topic(&t).unwrap();
    // APPEND starts from Kafka's default ("delete") when the topic has no override.
    assert_eq!(
        topic.configs,
        configs(&[
            ("cleanup.policy", "delete,compact"),
            ("retention.ms", "1000")
        ])
    );
    let subtract = ConfigChange::Subtract {
        name: "cleanup.policy".into(),
        value: "delete".into(),
    };
    h.apply(alter(t, vec![subtract])).unwrap();
    assert_eq!(
        h.state.topic(&t).unwrap().configs.get("cleanup.policy"),
        Some(&"compact".to_string())
    );
    // AlterConfigs replaces the whole set.
    h.apply(MetadataCommand::AlterTopicConfigs {
        topic_id: t,
        changes: vec![set("retention.bytes", "10")],
        replace: true,
    })
    .unwrap();
    assert_eq!(
        h.state.topic(&t).unwrap().configs,
        configs(&[("retention.bytes", "10")])
    );
    // Changing nothing reports no change.
    h.state.take_last_changes();
    h.apply(alter(t, vec![set("retention.bytes", "10")]))
        .unwrap();
    assert!(h.state.take_last_changes().is_empty());
}

#[test]
fn bad_changes_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let t = h.create_topic_with("t", 1, 1, configs(&[("durability", "fsync")]));
    let before = h.state.topic(&t).unwrap().configs.clone();
    let append_to_long = ConfigChange::Append {
        name: "retention.ms".into(),
        value: "5".into(),
    };
    for (change, why) in [
        (set("retention.ms", "soon"), "expected an integer"),
        (set("no.such.config", "1"), "unknown topic config"),
        (set("segment.bytes", "1"), "outside"),
        (
            set("durability", "replicated"),
            "fixed when the topic is created",
        ),
        (
            ConfigChange::Delete {
                name: "durability".into(),
            },
            "fixed when the topic is created",
        ),
        (set(UNCLEAN_LEADER_ELECTION_CONFIG, "yes"), "true or false"),
        (append_to_long, "append is not allowed"),
    ] {
        match h.apply(alter(t, vec![change.clone()])) {
            Err(MetadataError::InvalidConfig(reason)) => {
                assert!(reason.contains(why), "{change:?}: {reason}")
            }
            other => panic!("{change:?} gave {other:?}"),
        }
    }
    assert_eq!(h.state.topic(&t).unwrap().configs, before);
    assert!(matches!(
        h.apply(alter(
            uuid::Uuid::from_u128(77),
            vec![set("retention.ms", "1")]
        )),
        Err(MetadataError::UnknownTopicId(_))
    ));
}

#[test]
fn allowing_unclean_elections_elects_a_leader_for_a_leaderless_partition() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let t = h.create_topic("t", 1, 2);
    let replicas = h.partition(t, 0).replicas.clone();
    let (first, second) = (replicas[0], replicas[1]);
    // The second replica leaves the ISR, then the first (the last ISR member) is fenced:
    // no leader. The second comes back, but it is not in the ISR.
    h.fence(second).unwrap();
    h.fence(first).unwrap();
    h.unfence(second).unwrap();
    assert_eq!(h.partition(t, 0).leader, None);
    let outcome = h
        .apply(alter(t, vec![set(UNCLEAN_LEADER_ELECTION_CONFIG, "true")]))
        .unwrap();
    let CommandOutcome::ConfigsAltered { changes } = outcome else {
        panic!("unexpected outcome {outcome:?}");
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].election, Some(Election::Unclean));
    assert_eq!(h.partition(t, 0).leader, Some(second));
}

#[test]
fn a_cluster_default_allowing_unclean_elections_elects_leaderless_partitions_of_topics_without_their_own(
) {
    let mut h = Harness::new();
    h.live_brokers(2);
    let follows_default = h.create_topic("t", 1, 2);
    let refuses = h.create_topic("u", 1, 2);
    h.apply(alter(
        refuses,
        vec![set(UNCLEAN_LEADER_ELECTION_CONFIG, "false")],
    ))
    .unwrap();
    // Both partitions lose their leader the same way; only the replica outside the ISR
    // is left.
    let replicas = h.partition(follows_default, 0).replicas.clone();
    let (first, second) = (replicas[0], replicas[1]);
    h.fence(second).unwrap();
    h.fence(first).unwrap();
    h.unfence(second).unwrap();
    assert_eq!(h.partition(follows_default, 0).leader, None);
    let leaderless_u = h.partition(refuses, 0).leader.is_none();
    let outcome = h
        .apply(MetadataCommand::AlterBrokerConfigs {
            broker: None,
            changes: vec![set(UNCLEAN_LEADER_ELECTION_CONFIG, "true")],
            replace: false,
        })
        .unwrap();
    let CommandOutcome::ConfigsAltered { changes } = outcome else {
        panic!("unexpected outcome {outcome:?}");
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].election, Some(Election::Unclean));
    assert_eq!(h.partition(follows_default, 0).leader, Some(second));
    assert_eq!(
        h.partition(refuses, 0).leader.is_none(),
        leaderless_u,
        "a topic's own false wins over the cluster default"
    );
}

#[test]
fn broker_configs_are_kept_per_broker_and_for_the_cluster_checked_as_kafka() {
    let mut h = Harness::new();
    let alter = |broker, changes| MetadataCommand::AlterBrokerConfigs {
        broker,
        changes,
        replace: false,
    };
    h.apply(alter(None, vec![set("log.retention.ms", "1000")]))
        .unwrap();
    h.apply(alter(
        Some(2),
        vec![set("leader.replication.throttled.rate", "500")],
    ))
    .unwrap();
    assert_eq!(
        h.state.broker_configs(None),
        Some(&configs(&[("log.retention.ms", "1000")]))
    );
    assert_eq!(
        h.state.broker_configs(Some(2)),
        Some(&configs(&[("leader.replication.throttled.rate", "500")]))
    );
    assert!(matches!(
        h.apply(alter(None, vec![set("log.dirs", "/x")])),
        Err(MetadataError::InvalidBrokerConfig(_))
    ));
    // Bad values are INVALID_REQUEST for a broker resource, as Kafka answers them.
    assert_eq!(
        h.apply(alter(None, vec![set("log.segment.bytes", "tiny")])),
        Err(MetadataError::InvalidBrokerConfig(
            "Invalid value tiny for configuration log.segment.bytes: segment.bytes: expected an integer, got \"tiny\"".into()
        ))
    );
    assert!(matches!(
        h.apply(alter(
            None,
            vec![set("leader.replication.throttled.rate", "-1")]
        )),
        Err(MetadataError::InvalidBrokerConfig(_))
    ));
    // min.insync.replicas is cluster-wide: refused for one broker (INVALID_CONFIG, as Kafka
    // 4.1), taken for the cluster.
    assert!(matches!(
        h.apply(alter(Some(2), vec![set("min.insync.replicas", "2")])),
        Err(MetadataError::InvalidConfig(_))
    ));
    assert!(matches!(
        h.apply(alter(None, vec![set("min.insync.replicas", "0")])),
        Err(MetadataError::InvalidBrokerConfig(_))
    ));
    let delete = ConfigChange::Delete {
        name: "log.retention.ms".into(),
    };
    h.apply(alter(None, vec![delete])).unwrap();
    assert_eq!(h.state.broker_configs(None), None);
    // Kept in snapshots, which stay as before while there are none.
    let bytes = serde_json::to_vec(&h.state).unwrap();
    let restored: crate::controller::MetadataState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        restored.broker_configs(Some(2)),
        h.state.broker_configs(Some(2))
    );
}
