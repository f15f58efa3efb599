use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::controller::delta::TopicChange;

mod configs;

/// Drives a [`MetadataState`] with growing log indexes, as the Raft log would.
struct Harness {
    state: MetadataState,
    next_index: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            state: MetadataState::new(),
            next_index: 1,
        }
    }

    fn apply(&mut self, command: MetadataCommand) -> CommandResult {
        let index = self.next_index;
        self.next_index += 1;
        let result = self.state.apply(index, &command);
        if let Err(broken) = self.state.check_invariants() {
            panic!("invariant broken after {command:?}: {broken}");
        }
        result
    }

    fn register(&mut self, id: BrokerId) -> BrokerEpoch {
        let command = MetadataCommand::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(id as u128 + 1000 * self.next_index as u128),
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092 + id as u16,
            }],
            rack: None,
            cluster_id: Some(format!("cluster-proposed-by-{id}")),
        };
        match self.apply(command) {
            Ok(CommandOutcome::BrokerRegistered { broker_epoch, .. }) => broker_epoch,
            other => panic!("registration failed: {other:?}"),
        }
    }

    /// Register and unfence brokers `0..count`.
    fn live_brokers(&mut self, count: BrokerId) {
        for id in 0..count {
            let epoch = self.register(id);
            self.apply(MetadataCommand::UnfenceBroker { id, epoch })
                .unwrap();
        }
    }

    fn epoch(&self, id: BrokerId) -> BrokerEpoch {
        self.state.broker(id).unwrap().epoch
    }

    fn create_topic(&mut self, name: &str, partitions: i32, factor: i16) -> Uuid {
        self.create_topic_with(name, partitions, factor, BTreeMap::new())
    }

    fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Uuid {
        let id = Uuid::from_u128(0xAB00 + self.next_index as u128);
        self.apply(MetadataCommand::CreateTopic {
            name: name.into(),
            id,
            partitions,
            replication_factor: factor,
            configs,
        })
        .unwrap();
        id
    }

    fn fence(&mut self, id: BrokerId) -> CommandResult {
        let epoch = self.epoch(id);
        self.apply(MetadataCommand::FenceBroker { id, epoch })
    }

    fn unfence(&mut self, id: BrokerId) -> CommandResult {
        let epoch = self.epoch(id);
        self.apply(MetadataCommand::UnfenceBroker { id, epoch })
    }

    fn partition(&self, topic: Uuid, partition: i32) -> Partition {
        self.state.partition(&topic, partition).unwrap().clone()
    }

    fn alter(&mut self, topic: Uuid, partition: i32, new_isr: Vec<BrokerId>) -> CommandResult {
        let current = self.partition(topic, partition);
        let leader = current.leader.expect("partition has a leader");
        let request = AlterPartition {
            leader_id: leader,
            broker_epoch: self.epoch(leader),
            topic_id: topic,
            partition,
            leader_epoch: current.leader_epoch,
            partition_epoch: current.partition_epoch,
            new_isr,
            leader_recovery_state: current.leader_recovery_state,
        };
        self.apply(MetadataCommand::AlterPartition(request))
    }
}

fn unclean_allowed() -> BTreeMap<String, String> {
    BTreeMap::from([(
        UNCLEAN_LEADER_ELECTION_CONFIG.to_string(),
        "true".to_string(),
    )])
}

#[test]
fn registration_assigns_the_log_index_as_broker_epoch() {
    let mut h = Harness::new();
    h.next_index = 7;
    assert_eq!(h.register(3), 7);
    let broker = h.state.broker(3).unwrap();
    assert_eq!(broker.status, BrokerStatus::Fenced);
    assert_eq!(broker.endpoints[0].port, 9095);
    h.next_index = 12;
    assert_eq!(h.register(3), 12, "re-registration takes the new index");
}

fn register_proposing(id: BrokerId, cluster_id: Option<&str>) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        id,
        incarnation: Uuid::from_u128(id as u128),
        endpoints: vec![],
        rack: None,
        cluster_id: cluster_id.map(str::to_string),
    }
}

#[test]
fn the_first_proposed_cluster_id_wins_and_later_proposals_are_ignored() {
    let mut h = Harness::new();
    assert_eq!(h.state.cluster_id(), None);
    // Entries written before the id was replicated propose none: nothing is kept.
    h.apply(register_proposing(1, None)).unwrap();
    assert_eq!(h.state.cluster_id(), None);
    h.apply(register_proposing(2, Some("first"))).unwrap();
    assert_eq!(h.state.cluster_id(), Some("first"));
    h.apply(register_proposing(3, Some("second"))).unwrap();
    h.apply(register_proposing(2, Some("third"))).unwrap();
    h.apply(register_proposing(1, None)).unwrap();
    assert_eq!(h.state.cluster_id(), Some("first"));
    let restored: MetadataState =
        serde_json::from_slice(&serde_json::to_vec(&h.state).unwrap()).unwrap();
    assert_eq!(restored.cluster_id(), Some("first"));
}

#[test]
fn a_malformed_cluster_id_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let too_long = "x".repeat(CLUSTER_ID_BYTES_MAX + 1);
    for bad in ["", "has space", "tab\t", too_long.as_str()] {
        let before = h.state.clone();
        let result = h.apply(register_proposing(1, Some(bad)));
        assert!(
            matches!(result, Err(MetadataError::InvalidRequest(_))),
            "{bad:?}: {result:?}"
        );
        assert_eq!(h.state.broker(1), before.broker(1));
        assert_eq!(h.state.cluster_id(), None);
    }
    let longest = "x".repeat(CLUSTER_ID_BYTES_MAX);
    h.apply(register_proposing(1, Some(&longest))).unwrap();
    assert_eq!(h.state.cluster_id(), Some(longest.as_str()));
}

#[test]
fn state_and_registrations_without_a_cluster_id_still_load() {
    let state: MetadataState = serde_json::from_str(
        r#"{"brokers":{},"topics":{},"topic_ids":{},"placement_cursor":0,"last_command_index":4}"#,
    )
    .unwrap();
    assert_eq!(state.cluster_id(), None);
    assert_eq!(state.last_command_index(), Some(4));
    let command: MetadataCommand = serde_json::from_str(
        r#"{"RegisterBroker":{"id":1,"incarnation":"00000000-0000-0000-0000-000000000001","endpoints":[],"rack":null}}"#,
    )
    .unwrap();
    assert_eq!(command, register_proposing(1, None));
}

#[test]
fn unfence_with_a_stale_epoch_is_rejected() {
    let mut h = Harness::new();
    let old = h.register(1);
    let new = h.register(1);
    assert_eq!(
        h.apply(MetadataCommand::UnfenceBroker { id: 1, epoch: old }),
        Err(MetadataError::StaleBrokerEpoch {
            broker: 1,
            requested: old,
            current: new
        })
    );
    assert_eq!(h.state.broker(1).unwrap().status, BrokerStatus::Fenced);
    assert!(matches!(
        h.apply(MetadataCommand::UnfenceBroker { id: 9, epoch: 1 }),
        Err(MetadataError::BrokerNotRegistered(9))
    ));
}

#[test]
fn create_topic_spreads_leaders_round_robin_on_distinct_brokers() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("orders", 6, 2);
    let mut leaders = BTreeMap::new();
    for p in 0..6 {
        let partition = h.partition(topic, p);
        assert_eq!(partition.replicas.len(), 2);
        assert_ne!(partition.replicas[0], partition.replicas[1]);
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!(partition.leader, Some(partition.replicas[0]));
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
        *leaders.entry(partition.replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
}

#[test]
fn placement_starts_where_the_last_topic_ended() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let first = h.create_topic("a", 1, 1);
    let second = h.create_topic("b", 1, 1);
    assert_eq!(h.partition(first, 0).leader, Some(0));
    assert_eq!(h.partition(second, 0).leader, Some(1));
}

#[test]
fn create_topic_only_places_on_unfenced_brokers() {
    let mut h = Harness::new();
    h.live_brokers(3);
    h.fence(1).unwrap();
    let topic = h.create_topic("t", 4, 2);
    for p in 0..4 {
        assert!(!h.partition(topic, p).replicas.contains(&1));
    }
}

#[test]
fn create_topic_rejects_a_replication_factor_above_the_live_brokers() {
    let mut h = Harness::new();
    h.live_brokers(2);
    h.register(5); // registered but fenced: does not count
    let result = h.apply(MetadataCommand::CreateTopic {
        name: "t".into(),
        id: Uuid::from_u128(1),
        partitions: 1,
        replication_factor: 3,
        configs: BTreeMap::new(),
    });
    assert_eq!(
        result,
        Err(MetadataError::InvalidReplicationFactor {
            requested: 3,
            available: 2
        })
    );
    assert_eq!(
        result.unwrap_err().code(),
        ErrorCode::InvalidReplicationFactor
    );
    assert!(h.state.topic_by_name("t").is_none());
}

#[test]
fn create_topic_rejects_duplicates_bad_names_and_bad_counts() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let id = h.create_topic("t", 1, 1);
    let create = |name: &str, id: Uuid, partitions: i32| MetadataCommand::CreateTopic {
        name: name.into(),
        id,
        partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
    };
    assert!(matches!(
        h.apply(create("t", Uuid::from_u128(99), 1)),
        Err(MetadataError::TopicAlreadyExists(_))
    ));
    assert!(matches!(
        h.apply(create("u", id, 1)),
        Err(MetadataError::TopicIdInUse(_))
    ));
    assert!(matches!(
        h.apply(create("bad name", Uuid::from_u128(98), 1)),
        Err(MetadataError::InvalidTopicName { .. })
    ));
    assert!(matches!(
        h.apply(create("u", Uuid::from_u128(98), 0)),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    assert!(matches!(
        h.apply(create("u", Uuid::from_u128(98), TOPIC_PARTITIONS_MAX + 1)),
        Err(MetadataError::InvalidPartitions { .. })
    ));
    let mut bad_config = BTreeMap::new();
    bad_config.insert(
        UNCLEAN_LEADER_ELECTION_CONFIG.to_string(),
        "yes".to_string(),
    );
    assert!(matches!(
        h.apply(MetadataCommand::CreateTopic {
            name: "u".into(),
            id: Uuid::from_u128(98),
            partitions: 1,
            replication_factor: 1,
            configs: bad_config,
        }),
        Err(MetadataError::InvalidConfig(_))
    ));
    assert_eq!(h.state.topics().count(), 1);
}

#[test]
fn delete_topic_frees_the_name() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let id = h.create_topic("t", 2, 1);
    assert_eq!(
        h.apply(MetadataCommand::DeleteTopic { id }),
        Ok(CommandOutcome::TopicDeleted { name: "t".into() })
    );
    assert!(h.state.topic_by_name("t").is_none());
    assert!(matches!(
        h.apply(MetadataCommand::DeleteTopic { id }),
        Err(MetadataError::UnknownTopicId(_))
    ));
    h.create_topic("t", 1, 1);
}

#[test]
fn create_partitions_grows_a_topic_with_the_same_replication_factor() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 2, 2);
    let outcome = h
        .apply(MetadataCommand::CreatePartitions {
            topic_id: topic,
            count: 5,
            assignment: None,
        })
        .unwrap();
    let CommandOutcome::PartitionsCreated { assignment } = outcome else {
        panic!("unexpected {outcome:?}");
    };
    assert_eq!(assignment.len(), 3);
    assert_eq!(h.state.topic(&topic).unwrap().partitions.len(), 5);
    assert!(assignment.iter().all(|replicas| replicas.len() == 2));
    assert!(matches!(
        h.apply(MetadataCommand::CreatePartitions {
            topic_id: topic,
            count: 5,
            assignment: None,
        }),
        Err(MetadataError::InvalidPartitions { .. })
    ));
}

#[test]
fn fencing_a_follower_shrinks_the_isr_and_bumps_only_the_partition_epoch() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let follower = before.replicas[2];
    let outcome = h.fence(follower).unwrap();
    let after = h.partition(topic, 0);
    assert!(!after.isr.contains(&follower));
    assert_eq!(after.leader, before.leader);
    assert_eq!(after.leader_epoch, before.leader_epoch);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    assert_eq!(outcome.changes().len(), 1);
    assert_eq!(outcome.changes()[0].election, None);
}

#[test]
fn fencing_the_leader_elects_the_first_live_isr_member_in_replica_order() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let [leader, second, third] = before.replicas[..] else {
        panic!()
    };
    // The second replica is fenced first: the election must skip it.
    h.fence(second).unwrap();
    let epoch_before = h.partition(topic, 0).leader_epoch;
    let outcome = h.fence(leader).unwrap();
    let after = h.partition(topic, 0);
    assert_eq!(after.leader, Some(third));
    assert_eq!(after.isr, vec![third]);
    assert_eq!(after.leader_epoch, epoch_before + 1);
    assert_eq!(outcome.changes()[0].election, Some(Election::Clean));
}

#[test]
fn fencing_the_last_isr_member_leaves_the_partition_offline_with_that_member_in_the_isr() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic("t", 1, 2);
    let [leader, follower] = h.partition(topic, 0).replicas[..] else {
        panic!()
    };
    h.fence(follower).unwrap();
    h.fence(leader).unwrap();
    let after = h.partition(topic, 0);
    assert_eq!(after.leader, None);
    assert_eq!(after.leader_id(), -1);
    assert_eq!(after.isr, vec![leader], "the ISR never becomes empty");
    // The follower coming back is not in the ISR: no clean election.
    h.unfence(follower).unwrap();
    assert_eq!(h.partition(topic, 0).leader, None);
    // The last ISR member coming back leads again, with a new epoch.
    let offline_epoch = h.partition(topic, 0).leader_epoch;
    let outcome = h.unfence(leader).unwrap();
    let back = h.partition(topic, 0);
    assert_eq!(back.leader, Some(leader));
    assert_eq!(back.leader_epoch, offline_epoch + 1);
    assert_eq!(outcome.changes()[0].election, Some(Election::Clean));
}

#[test]
fn health_counts_offline_partitions_and_fenced_brokers() {
    let mut h = Harness::new();
    assert_eq!(h.state.health(), ClusterHealth::default());
    h.live_brokers(3);
    let single = h.create_topic("single", 3, 1);
    h.create_topic("pair", 2, 2);
    let healthy = ClusterHealth {
        registered_brokers: 3,
        fenced_brokers: 0,
        topics: 2,
        partitions: 5,
        offline_partitions: 0,
    };
    assert_eq!(h.state.health(), healthy);
    // Fencing one broker takes offline exactly the single-replica partitions it led.
    let lost = (0..3)
        .filter(|&p| h.partition(single, p).leader == Some(0))
        .count();
    assert!(lost > 0);
    h.fence(0).unwrap();
    assert_eq!(
        h.state.health(),
        ClusterHealth {
            fenced_brokers: 1,
            offline_partitions: lost,
            ..healthy
        }
    );
    // A broker in controlled shutdown is registered but not fenced.
    let epoch = h.epoch(1);
    h.apply(MetadataCommand::ControlledShutdown { id: 1, epoch })
        .unwrap();
    let health = h.state.health();
    assert_eq!((health.registered_brokers, health.fenced_brokers), (3, 1));
    h.unfence(0).unwrap();
    assert_eq!(h.state.health().fenced_brokers, 0);
}

#[test]
fn unclean_election_picks_a_live_replica_when_the_topic_allows_it() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic_with("t", 1, 2, unclean_allowed());
    let [leader, follower] = h.partition(topic, 0).replicas[..] else {
        panic!()
    };
    let shrunk = h.alter(topic, 0, vec![leader]).unwrap();
    assert!(matches!(shrunk, CommandOutcome::PartitionAltered { .. }));
    let outcome = h.fence(leader).unwrap();
    let after = h.partition(topic, 0);
    assert_eq!(after.leader, Some(follower));
    assert_eq!(after.isr, vec![follower]);
    assert_eq!(after.leader_recovery_state, LeaderRecoveryState::Recovering);
    assert_eq!(outcome.changes()[0].election, Some(Election::Unclean));
}

#[test]
fn unclean_election_is_off_by_default() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic("t", 1, 2);
    let [leader, _] = h.partition(topic, 0).replicas[..] else {
        panic!()
    };
    h.alter(topic, 0, vec![leader]).unwrap();
    h.fence(leader).unwrap();
    assert_eq!(h.partition(topic, 0).leader, None);
}

#[test]
fn an_offline_partition_elects_uncleanly_when_a_replica_is_unfenced() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic_with("t", 1, 2, unclean_allowed());
    let [leader, follower] = h.partition(topic, 0).replicas[..] else {
        panic!()
    };
    h.fence(follower).unwrap();
    h.fence(leader).unwrap();
    assert_eq!(h.partition(topic, 0).leader, None);
    let outcome = h.unfence(follower).unwrap();
    assert_eq!(h.partition(topic, 0).leader, Some(follower));
    assert_eq!(outcome.changes()[0].election, Some(Election::Unclean));
}

#[test]
fn fencing_twice_or_with_an_old_epoch_changes_nothing() {
    let mut h = Harness::new();
    h.live_brokers(2);
    h.create_topic("t", 2, 2);
    let old_epoch = h.epoch(1);
    h.fence(1).unwrap();
    let before = h.state.clone();
    assert_eq!(
        h.fence(1),
        Ok(CommandOutcome::BrokerFenced { changes: vec![] })
    );
    h.register(1);
    let before_stale = h.state.clone();
    assert!(matches!(
        h.apply(MetadataCommand::FenceBroker {
            id: 1,
            epoch: old_epoch
        }),
        Err(MetadataError::StaleBrokerEpoch { .. })
    ));
    assert_eq!(h.state.topics().count(), before.topics().count());
    assert_eq!(
        h.state.topics().collect::<Vec<_>>(),
        before_stale.topics().collect::<Vec<_>>()
    );
}

#[test]
fn reregistration_fences_the_old_incarnation() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic("t", 1, 2);
    let leader = h.partition(topic, 0).leader.unwrap();
    let outcome = h
        .apply(MetadataCommand::RegisterBroker {
            id: leader,
            incarnation: Uuid::from_u128(4242),
            endpoints: vec![],
            rack: Some("r1".into()),
            cluster_id: None,
        })
        .unwrap();
    assert_eq!(outcome.changes().len(), 1);
    let after = h.partition(topic, 0);
    assert_ne!(after.leader, Some(leader));
    assert!(!after.isr.contains(&leader));
    let broker = h.state.broker(leader).unwrap();
    assert_eq!(broker.status, BrokerStatus::Fenced);
    assert_eq!(broker.rack.as_deref(), Some("r1"));
}

#[test]
fn alter_partition_with_current_epochs_changes_the_isr_and_bumps_the_partition_epoch() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let leader = before.leader.unwrap();
    let outcome = h.alter(topic, 0, vec![leader]).unwrap();
    let CommandOutcome::PartitionAltered { partition } = outcome else {
        panic!()
    };
    assert_eq!(partition.isr, vec![leader]);
    assert_eq!(partition.partition_epoch, before.partition_epoch + 1);
    assert_eq!(partition.leader_epoch, before.leader_epoch);
    assert_eq!(h.partition(topic, 0), partition);
    // Growing it back works the same way.
    let grown = h.alter(topic, 0, before.replicas.clone()).unwrap();
    let CommandOutcome::PartitionAltered { partition } = grown else {
        panic!()
    };
    assert_eq!(partition.isr, before.replicas);
    assert_eq!(partition.partition_epoch, before.partition_epoch + 2);
}

#[test]
fn alter_partition_that_changes_nothing_keeps_the_epoch() {
    let mut h = Harness::new();
    h.live_brokers(2);
    let topic = h.create_topic("t", 1, 2);
    let before = h.partition(topic, 0);
    let outcome = h.alter(topic, 0, before.isr.clone()).unwrap();
    assert_eq!(
        outcome,
        CommandOutcome::PartitionAltered { partition: before }
    );
}

/// A valid AlterPartition for the partition's current state, to be spoiled by each case.
fn valid_request(h: &Harness, topic: Uuid) -> AlterPartition {
    let current = h.partition(topic, 0);
    let leader = current.leader.unwrap();
    AlterPartition {
        leader_id: leader,
        broker_epoch: h.epoch(leader),
        topic_id: topic,
        partition: 0,
        leader_epoch: current.leader_epoch,
        partition_epoch: current.partition_epoch,
        new_isr: vec![leader],
        leader_recovery_state: LeaderRecoveryState::Recovered,
    }
}

#[test]
fn alter_partition_from_a_deposed_leader_fails_with_fenced_leader_epoch() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let stale = valid_request(&h, topic);
    // The controller moves leadership (the old leader's session expired and it came back).
    h.fence(stale.leader_id).unwrap();
    let result = h.apply(MetadataCommand::AlterPartition(AlterPartition {
        broker_epoch: h.epoch(stale.leader_id),
        ..stale.clone()
    }));
    let error = result.unwrap_err();
    assert!(matches!(error, MetadataError::FencedLeaderEpoch { .. }));
    assert_eq!(error.code(), ErrorCode::FencedLeaderEpoch);
}

#[test]
fn alter_partition_with_an_old_partition_epoch_fails_with_invalid_update_version() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let first = valid_request(&h, topic);
    h.apply(MetadataCommand::AlterPartition(first.clone()))
        .unwrap();
    let before = h.partition(topic, 0);
    let replay = AlterPartition {
        new_isr: vec![first.leader_id, before.replicas[1]],
        ..first
    };
    let error = h
        .apply(MetadataCommand::AlterPartition(replay))
        .unwrap_err();
    assert_eq!(
        error,
        MetadataError::InvalidUpdateVersion {
            requested: 0,
            current: 1
        }
    );
    assert_eq!(error.code(), ErrorCode::InvalidUpdateVersion);
    assert_eq!(h.partition(topic, 0), before);
}

#[test]
fn alter_partition_adding_a_fenced_broker_fails_with_ineligible_replica() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let replicas = h.partition(topic, 0).replicas;
    h.fence(replicas[2]).unwrap();
    let request = AlterPartition {
        new_isr: replicas.clone(),
        ..valid_request(&h, topic)
    };
    let error = h
        .apply(MetadataCommand::AlterPartition(request))
        .unwrap_err();
    assert_eq!(error, MetadataError::IneligibleReplica(replicas[2]));
    assert_eq!(error.code(), ErrorCode::IneligibleReplica);
}

#[test]
fn alter_partition_without_the_leader_in_the_isr_is_an_invalid_request() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let replicas = h.partition(topic, 0).replicas;
    let request = AlterPartition {
        new_isr: vec![replicas[1], replicas[2]],
        ..valid_request(&h, topic)
    };
    let error = h
        .apply(MetadataCommand::AlterPartition(request))
        .unwrap_err();
    assert!(matches!(error, MetadataError::InvalidRequest(_)));
    assert_eq!(error.code(), ErrorCode::InvalidRequest);
}

#[test]
fn alter_partition_rejects_non_replicas_duplicates_and_non_leaders() {
    let mut h = Harness::new();
    h.live_brokers(4);
    let topic = h.create_topic("t", 1, 2);
    let current = h.partition(topic, 0);
    let outsider = (0..4).find(|b| !current.replicas.contains(b)).unwrap();
    let base = valid_request(&h, topic);
    let with_outsider = AlterPartition {
        new_isr: vec![base.leader_id, outsider],
        ..base.clone()
    };
    let duplicated = AlterPartition {
        new_isr: vec![base.leader_id, base.leader_id],
        ..base.clone()
    };
    let follower = current.replicas[1];
    let from_follower = AlterPartition {
        leader_id: follower,
        broker_epoch: h.epoch(follower),
        new_isr: vec![follower],
        ..base.clone()
    };
    for request in [with_outsider, duplicated, from_follower] {
        assert!(matches!(
            h.apply(MetadataCommand::AlterPartition(request)),
            Err(MetadataError::InvalidRequest(_))
        ));
    }
    let stale_broker = AlterPartition {
        broker_epoch: base.broker_epoch - 1,
        ..base.clone()
    };
    assert!(matches!(
        h.apply(MetadataCommand::AlterPartition(stale_broker)),
        Err(MetadataError::StaleBrokerEpoch { .. })
    ));
    let missing = AlterPartition {
        partition: 7,
        ..base
    };
    assert!(matches!(
        h.apply(MetadataCommand::AlterPartition(missing)),
        Err(MetadataError::UnknownPartition { .. })
    ));
    assert_eq!(h.partition(topic, 0), current);
}

#[test]
fn a_recovering_partition_recovers_before_its_isr_grows() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic_with("t", 1, 3, unclean_allowed());
    let [leader, second, third] = h.partition(topic, 0).replicas[..] else {
        panic!()
    };
    h.alter(topic, 0, vec![leader]).unwrap();
    h.fence(leader).unwrap();
    let recovering = h.partition(topic, 0);
    assert_eq!(recovering.leader, Some(second));
    assert_eq!(
        recovering.leader_recovery_state,
        LeaderRecoveryState::Recovering
    );
    let grow_early = AlterPartition {
        new_isr: vec![second, third],
        leader_recovery_state: LeaderRecoveryState::Recovering,
        ..valid_request(&h, topic)
    };
    assert!(matches!(
        h.apply(MetadataCommand::AlterPartition(grow_early)),
        Err(MetadataError::InvalidRequest(_))
    ));
    let recovered = AlterPartition {
        new_isr: vec![second],
        leader_recovery_state: LeaderRecoveryState::Recovered,
        ..valid_request(&h, topic)
    };
    h.apply(MetadataCommand::AlterPartition(recovered)).unwrap();
    let after = h.partition(topic, 0);
    assert_eq!(after.leader_recovery_state, LeaderRecoveryState::Recovered);
    assert_eq!(after.partition_epoch, recovering.partition_epoch + 1);
    h.alter(topic, 0, vec![second, third]).unwrap();
}

#[test]
fn controlled_shutdown_moves_every_leadership_away() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 6, 2);
    let leaving = 0;
    let led_before: Vec<i32> = (0..6)
        .filter(|&p| h.partition(topic, p).leader == Some(leaving))
        .collect();
    assert!(!led_before.is_empty());
    let epoch = h.epoch(leaving);
    let outcome = h
        .apply(MetadataCommand::ControlledShutdown { id: leaving, epoch })
        .unwrap();
    assert!(matches!(outcome, CommandOutcome::ShutdownControlled { .. }));
    for p in 0..6 {
        let partition = h.partition(topic, p);
        assert_ne!(partition.leader, Some(leaving));
        assert!(
            !partition.isr.contains(&leaving),
            "others remain in every ISR"
        );
        assert!(partition.leader.is_some());
    }
    for p in led_before {
        assert_eq!(h.partition(topic, p).leader_epoch, 1);
    }
    assert_eq!(
        h.state.broker(leaving).unwrap().status,
        BrokerStatus::ShuttingDown
    );
    // A broker shutting down is not placed on and cannot be unfenced without registering.
    assert!(matches!(
        h.unfence(leaving),
        Err(MetadataError::InvalidRequest(_))
    ));
    let later = h.create_topic("later", 4, 2);
    for p in 0..4 {
        assert!(!h.partition(later, p).replicas.contains(&leaving));
    }
}

#[test]
fn controlled_shutdown_of_the_only_isr_member_takes_the_partition_offline() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let topic = h.create_topic("t", 1, 1);
    let epoch = h.epoch(0);
    h.apply(MetadataCommand::ControlledShutdown { id: 0, epoch })
        .unwrap();
    let partition = h.partition(topic, 0);
    assert_eq!(partition.leader, None);
    assert_eq!(partition.isr, vec![0]);
    // After a restart (a new registration) the broker leads again once unfenced.
    let epoch = h.register(0);
    h.apply(MetadataCommand::UnfenceBroker { id: 0, epoch })
        .unwrap();
    assert_eq!(h.partition(topic, 0).leader, Some(0));
}

#[test]
fn failed_commands_change_nothing_but_the_applied_index() {
    let mut h = Harness::new();
    h.live_brokers(2);
    h.create_topic("t", 2, 2);
    let mut before = h.state.clone();
    h.apply(MetadataCommand::CreateTopic {
        name: "x".into(),
        id: Uuid::from_u128(5),
        partitions: 1,
        replication_factor: 3,
        configs: BTreeMap::new(),
    })
    .unwrap_err();
    before.last_command_index = h.state.last_command_index;
    assert_eq!(h.state, before);
}

#[test]
fn snapshot_serialisation_round_trips_the_whole_state() {
    let mut h = Harness::new();
    h.live_brokers(3);
    h.create_topic_with("t", 3, 3, unclean_allowed());
    h.fence(2).unwrap();
    let bytes = serde_json::to_vec(&h.state).unwrap();
    let restored: MetadataState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(restored, h.state);
    restored.check_invariants().unwrap();
}

#[test]
#[should_panic(expected = "applied after index")]
fn applying_an_index_twice_is_a_bug() {
    let mut state = MetadataState::new();
    let command = MetadataCommand::DeleteTopic {
        id: Uuid::from_u128(1),
    };
    let _ = state.apply(5, &command);
    let _ = state.apply(5, &command);
}

#[test]
fn placement_is_distinct_for_every_factor_and_broker_count() {
    for n in 1..7 {
        let brokers: Vec<BrokerId> = (0..n).map(|b| b * 10).collect();
        for factor in 1..=n as usize {
            for cursor in 0..10 {
                for replicas in assign_replicas(&brokers, 20, factor, cursor) {
                    assert_eq!(replicas.len(), factor);
                    assert!(!has_duplicates(&replicas), "{replicas:?}");
                }
            }
        }
    }
}

// ---- property tests: random command sequences keep every invariant ----

/// Turn random numbers into a command that makes sense against the current state often
/// enough to reach interesting states (right epochs most of the time, wrong ones sometimes).
fn command_from(h: &Harness, seed: (u8, u8, u8, u8, u8)) -> MetadataCommand {
    let (kind, a, b, c, d) = seed;
    let broker = BrokerId::from(a % 5);
    let epoch_of = |id: BrokerId| {
        let current = h.state.broker(id).map_or(1, |broker| broker.epoch);
        if b % 8 == 0 {
            current - 1
        } else {
            current
        }
    };
    let topics: Vec<&Topic> = h.state.topics().collect();
    let topic = (!topics.is_empty()).then(|| topics[usize::from(c) % topics.len()]);
    match kind % 9 {
        0 | 1 => MetadataCommand::RegisterBroker {
            id: broker,
            incarnation: Uuid::from_u128(u128::from(b)),
            endpoints: vec![],
            rack: None,
            cluster_id: (b % 2 == 0).then(|| format!("cluster-{c}")),
        },
        2 | 3 => MetadataCommand::UnfenceBroker {
            id: broker,
            epoch: epoch_of(broker),
        },
        4 => MetadataCommand::FenceBroker {
            id: broker,
            epoch: epoch_of(broker),
        },
        5 => MetadataCommand::ControlledShutdown {
            id: broker,
            epoch: epoch_of(broker),
        },
        6 => {
            let mut configs = BTreeMap::new();
            if d % 2 == 0 {
                configs.insert(UNCLEAN_LEADER_ELECTION_CONFIG.to_string(), "true".into());
            }
            MetadataCommand::CreateTopic {
                name: format!("t{}", c % 6),
                id: Uuid::from_u128(u128::from(c % 6) + 1),
                partitions: i32::from(b % 4) + 1,
                replication_factor: i16::from(d % 4) + 1,
                configs,
            }
        }
        7 => match topic {
            Some(topic) if d % 4 == 0 => MetadataCommand::DeleteTopic { id: topic.id },
            Some(topic) => MetadataCommand::CreatePartitions {
                topic_id: topic.id,
                count: i32::try_from(topic.partitions.len()).unwrap() + i32::from(b % 3),
                assignment: None,
            },
            None => MetadataCommand::DeleteTopic {
                id: Uuid::from_u128(1),
            },
        },
        _ => {
            let Some(topic) = topic else {
                return MetadataCommand::DeleteTopic {
                    id: Uuid::from_u128(1),
                };
            };
            let number = usize::from(b) % topic.partitions.len();
            let partition = &topic.partitions[number];
            let leader = partition.leader.unwrap_or(broker);
            // A random subset of the replicas, usually with the leader.
            let mut new_isr: Vec<BrokerId> = partition
                .replicas
                .iter()
                .enumerate()
                .filter(|(i, _)| d & (1 << i) != 0)
                .map(|(_, &r)| r)
                .collect();
            if d & 0x80 == 0 && !new_isr.contains(&leader) {
                new_isr.insert(0, leader);
            }
            let stale = |epoch: i32| if a % 7 == 0 { epoch - 1 } else { epoch };
            MetadataCommand::AlterPartition(AlterPartition {
                leader_id: leader,
                broker_epoch: epoch_of(leader),
                topic_id: topic.id,
                partition: i32::try_from(number).unwrap(),
                leader_epoch: stale(partition.leader_epoch),
                partition_epoch: if c % 5 == 0 {
                    partition.partition_epoch + 1
                } else {
                    partition.partition_epoch
                },
                new_isr,
                leader_recovery_state: if d & 0x40 == 0 {
                    LeaderRecoveryState::Recovered
                } else {
                    partition.leader_recovery_state
                },
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_command_sequences_keep_every_invariant(
        seeds in prop::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 1..150)
    ) {
        let mut h = Harness::new();
        for seed in seeds {
            let command = command_from(&h, seed);
            let before = h.state.clone();
            // `Harness::apply` checks the whole-state invariants after every command.
            let result = h.apply(command.clone());
            if result.is_err() {
                let mut unchanged = before.clone();
                unchanged.last_command_index = h.state.last_command_index;
                prop_assert_eq!(&unchanged, &h.state, "a failed {:?} changed the state", command);
            }
            for broker in before.brokers() {
                let now = h.state.broker(broker.id).expect("brokers are never removed");
                prop_assert!(now.epoch >= broker.epoch, "broker epoch went back");
            }
            for old_topic in before.topics() {
                let Some(topic) = h.state.topic(&old_topic.id) else { continue };
                for (old, new) in old_topic.partitions.iter().zip(&topic.partitions) {
                    prop_assert!(new.leader_epoch >= old.leader_epoch, "leader epoch went back");
                    prop_assert!(new.partition_epoch >= old.partition_epoch);
                    if new.differs_from(old) {
                        prop_assert_eq!(new.partition_epoch, old.partition_epoch + 1,
                            "a change without a partition epoch bump: {} -> {}", old, new);
                    } else {
                        prop_assert_eq!(new.partition_epoch, old.partition_epoch);
                    }
                    let leader_changed = new.leader != old.leader;
                    prop_assert_eq!(new.leader_epoch, old.leader_epoch + i32::from(leader_changed));
                    if let Some(leader) = new.leader {
                        prop_assert_eq!(h.state.broker(leader).unwrap().status, BrokerStatus::Unfenced);
                        prop_assert!(new.isr.contains(&leader));
                    }
                }
            }
        }
    }

    #[test]
    fn the_same_commands_give_the_same_state(
        seeds in prop::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 1..80)
    ) {
        let mut first = Harness::new();
        let mut commands = Vec::new();
        let mut results = Vec::new();
        for seed in seeds {
            let command = command_from(&first, seed);
            results.push(first.apply(command.clone()));
            commands.push(command);
        }
        let mut second = Harness::new();
        for (command, expected) in commands.into_iter().zip(results) {
            prop_assert_eq!(second.apply(command), expected);
        }
        prop_assert_eq!(first.state, second.state);
    }
}

#[test]
fn rack_aware_placement_puts_each_partitions_replicas_in_distinct_racks() {
    // Brokers 1..=6 in racks a, b, c (two each).
    let brokers = [1, 2, 3, 4, 5, 6];
    let racks = ["a", "b", "c", "a", "b", "c"];
    for cursor in 0..12 {
        let assignment = assign_replicas_rack_aware(&brokers, &racks, 6, 3, cursor);
        let mut leaders = BTreeMap::new();
        for replicas in &assignment {
            assert_eq!(replicas.len(), 3);
            assert!(!has_duplicates(replicas), "{replicas:?}");
            let mut used: Vec<&str> = replicas
                .iter()
                .map(|id| racks[(*id - 1) as usize])
                .collect();
            used.sort_unstable();
            used.dedup();
            assert_eq!(used.len(), 3, "replicas {replicas:?} share a rack");
            *leaders.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(
            leaders.len(),
            6,
            "leaders spread over every broker: {leaders:?}"
        );
    }
}

#[test]
fn rack_aware_placement_fills_up_once_every_rack_holds_a_replica() {
    // Two racks, replication factor 3: both racks used, three distinct brokers.
    let brokers = [1, 2, 3, 4];
    let racks = ["a", "a", "b", "b"];
    for replicas in assign_replicas_rack_aware(&brokers, &racks, 8, 3, 0) {
        assert!(!has_duplicates(&replicas), "{replicas:?}");
        let in_a = replicas.iter().filter(|id| **id <= 2).count();
        assert!(
            (1..=2).contains(&in_a),
            "both racks hold a replica: {replicas:?}"
        );
    }
}

#[test]
fn topics_on_brokers_with_racks_are_placed_across_racks() {
    let mut h = Harness::new();
    for (id, rack) in [
        (1, "r1"),
        (2, "r1"),
        (3, "r2"),
        (4, "r2"),
        (5, "r3"),
        (6, "r3"),
    ] {
        let epoch = match h
            .apply(MetadataCommand::RegisterBroker {
                id,
                incarnation: Uuid::from_u128(id as u128),
                endpoints: vec![],
                rack: Some(rack.to_string()),
                cluster_id: None,
            })
            .unwrap()
        {
            CommandOutcome::BrokerRegistered { broker_epoch, .. } => broker_epoch,
            other => panic!("{other:?}"),
        };
        h.apply(MetadataCommand::UnfenceBroker { id, epoch })
            .unwrap();
    }
    let assignment = match h
        .apply(MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(99),
            partitions: 6,
            replication_factor: 3,
            configs: BTreeMap::new(),
        })
        .unwrap()
    {
        CommandOutcome::TopicCreated { assignment, .. } => assignment,
        other => panic!("{other:?}"),
    };
    for replicas in assignment {
        let racks: std::collections::BTreeSet<i32> =
            replicas.iter().map(|id| (id + 1) / 2).collect();
        assert_eq!(racks.len(), 3, "one replica per rack: {replicas:?}");
    }
}

fn elect(
    h: &mut Harness,
    election: ElectionType,
    topic: Uuid,
    partition: i32,
) -> Result<PartitionChange, ElectionRefusal> {
    match h
        .apply(MetadataCommand::ElectLeaders {
            election,
            partitions: vec![(topic, partition)],
        })
        .unwrap()
    {
        CommandOutcome::LeadersElected { mut results } => results.remove(0).2,
        other => panic!("{other:?}"),
    }
}

#[test]
fn preferred_election_moves_leadership_back_to_the_first_replica() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let preferred = before.replicas[0];
    assert_eq!(
        elect(&mut h, ElectionType::Preferred, topic, 0),
        Err(ElectionRefusal::NotNeeded)
    );
    // Failover: the preferred leader is fenced, another replica leads.
    h.fence(preferred).unwrap();
    let moved = h.partition(topic, 0);
    assert_ne!(moved.leader, Some(preferred));
    assert_eq!(
        elect(&mut h, ElectionType::Preferred, topic, 0),
        Err(ElectionRefusal::PreferredLeaderNotAvailable),
        "fenced and out of the ISR"
    );
    // It comes back (unfenced) but is not in the ISR yet: still not available.
    h.unfence(preferred).unwrap();
    assert_eq!(
        elect(&mut h, ElectionType::Preferred, topic, 0),
        Err(ElectionRefusal::PreferredLeaderNotAvailable)
    );
    // Once the leader adds it back to the ISR, the election moves leadership to it.
    let current = h.partition(topic, 0);
    add_to_isr(&mut h, topic, preferred).unwrap();
    let change = elect(&mut h, ElectionType::Preferred, topic, 0).unwrap();
    assert_eq!(change.leader, Some(preferred));
    let after = h.partition(topic, 0);
    assert_eq!(after.leader, Some(preferred));
    assert_eq!(after.leader_epoch, current.leader_epoch + 1);
}

#[test]
fn unclean_election_by_request_only_for_a_leaderless_partition() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 3);
    assert_eq!(
        elect(&mut h, ElectionType::Unclean, topic, 0),
        Err(ElectionRefusal::NotNeeded)
    );
    let replicas = h.partition(topic, 0).replicas.clone();
    for id in &replicas {
        h.fence(*id).unwrap();
    }
    let offline = h.partition(topic, 0);
    assert_eq!(offline.leader, None);
    let last_in_isr = offline.isr[0];
    let comeback = *replicas.iter().find(|id| **id != last_in_isr).unwrap();
    h.unfence(comeback).unwrap();
    assert_eq!(
        h.partition(topic, 0).leader,
        None,
        "no clean candidate, topic forbids unclean"
    );
    let change = elect(&mut h, ElectionType::Unclean, topic, 0).unwrap();
    assert_eq!(change.leader, Some(comeback));
    assert_eq!(change.election, Some(Election::Unclean));
    assert_eq!(h.partition(topic, 0).isr, vec![comeback]);
    assert_eq!(
        elect(&mut h, ElectionType::Preferred, Uuid::from_u128(1), 0),
        Err(ElectionRefusal::UnknownTopicOrPartition)
    );
}

fn reassign(h: &mut Harness, topic: Uuid, target: Option<Vec<BrokerId>>) -> CommandResult {
    h.apply(MetadataCommand::ReassignPartition {
        topic_id: topic,
        partition: 0,
        target,
    })
}

/// The leader of partition 0 adds `member` to the ISR, as its AlterPartition would.
fn add_to_isr(h: &mut Harness, topic: Uuid, member: BrokerId) -> CommandResult {
    let mut isr = h.partition(topic, 0).isr;
    isr.push(member);
    h.alter(topic, 0, isr)
}

#[test]
fn reassignment_adds_replicas_first_and_drops_the_old_ones_once_they_are_in_sync() {
    let mut h = Harness::new();
    h.live_brokers(4);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let old_leader = before.leader.unwrap();
    // Move away from the leader and one other replica.
    let kept = *before.replicas.iter().find(|r| **r != old_leader).unwrap();
    let new_one = (0..4).find(|b| !before.replicas.contains(b)).unwrap();
    let spare = (0..4)
        .find(|b| *b != kept && *b != new_one && *b != old_leader)
        .unwrap();
    let target = vec![kept, new_one, spare];
    let started = reassign(&mut h, topic, Some(target.clone())).unwrap();
    let CommandOutcome::ReassignmentAltered { partition } = started else {
        panic!("{started:?}")
    };
    assert_eq!(partition.adding_replicas, vec![new_one]);
    assert_eq!(partition.removing_replicas, vec![old_leader]);
    assert_eq!(
        &partition.replicas[..3],
        &target[..],
        "target first, then the leaving ones"
    );
    assert_eq!(
        partition.leader,
        Some(old_leader),
        "the leader keeps leading while data copies"
    );
    assert_eq!(partition.isr, before.isr, "the ISR does not change yet");
    assert_eq!(partition.partition_epoch, before.partition_epoch + 1);

    // The new replica catches up and joins the ISR: the reassignment completes in the same
    // change, the removed leader hands over.
    add_to_isr(&mut h, topic, new_one).unwrap();
    let after = h.partition(topic, 0);
    assert_eq!(after.replicas, target);
    assert!(!after.is_reassigning());
    assert!(after.isr.iter().all(|r| target.contains(r)), "{after:?}");
    assert!(after.leader.is_some_and(|l| target.contains(&l)));
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(
        reassign(&mut h, topic, None),
        Err(MetadataError::NoReassignmentInProgress)
    );
}

#[test]
fn reassignment_can_be_cancelled_and_a_pure_removal_completes_at_once() {
    let mut h = Harness::new();
    h.live_brokers(4);
    let topic = h.create_topic("t", 1, 3);
    let before = h.partition(topic, 0);
    let new_one = (0..4).find(|b| !before.replicas.contains(b)).unwrap();
    let mut target = before.replicas.clone();
    target.push(new_one);
    reassign(&mut h, topic, Some(target)).unwrap();
    assert_eq!(h.partition(topic, 0).adding_replicas, vec![new_one]);
    reassign(&mut h, topic, None).unwrap();
    let cancelled = h.partition(topic, 0);
    assert_eq!(cancelled.replicas, before.replicas);
    assert!(!cancelled.is_reassigning());

    // Replication factor 3 -> 2: nothing to copy, done at once.
    let smaller = before.replicas[..2].to_vec();
    reassign(&mut h, topic, Some(smaller.clone())).unwrap();
    let shrunk = h.partition(topic, 0);
    assert_eq!(shrunk.replicas, smaller);
    assert!(!shrunk.is_reassigning());
    assert!(shrunk.isr.iter().all(|r| smaller.contains(r)));

    assert!(matches!(
        reassign(&mut h, topic, Some(vec![1, 1])),
        Err(MetadataError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        reassign(&mut h, topic, Some(vec![77])),
        Err(MetadataError::InvalidReplicaAssignment(_))
    ));
}

#[test]
fn create_topics_creates_each_topic_or_says_why_not() {
    let mut h = Harness::new();
    h.live_brokers(2);
    h.create_topic("taken", 1, 1);
    let new = |name: &str, id: u128, partitions: i32| NewTopic {
        name: name.into(),
        id: Uuid::from_u128(id),
        partitions,
        replication_factor: 2,
        configs: BTreeMap::new(),
        assignment: None,
    };
    let outcome = h
        .apply(MetadataCommand::CreateTopics {
            topics: vec![
                new("a", 1, 3),
                new("taken", 2, 1),
                new("bad name", 3, 1),
                new("b", 4, 0),
                new("c", 5, 2),
            ],
        })
        .unwrap();
    let CommandOutcome::TopicsCreated { results } = outcome else {
        panic!("unexpected outcome {outcome:?}");
    };
    assert_eq!(results.len(), 5);
    let (id, assignment) = results[0].clone().unwrap();
    assert_eq!(id, Uuid::from_u128(1));
    assert_eq!(assignment.len(), 3);
    assert!(matches!(
        results[1],
        Err(MetadataError::TopicAlreadyExists(_))
    ));
    assert!(matches!(
        results[2],
        Err(MetadataError::InvalidTopicName { .. })
    ));
    assert!(matches!(
        results[3],
        Err(MetadataError::InvalidPartitions { .. })
    ));
    assert!(results[4].is_ok());
    assert_eq!(h.state.topic_by_name("a").unwrap().partitions.len(), 3);
    assert_eq!(h.state.topic_by_name("c").unwrap().partitions.len(), 2);
    assert!(h.state.topic_by_name("b").is_none());
    assert_eq!(h.state.topics().count(), 3);
}

/// CreateTopics with a manual assignment (`kafka-topics --replica-assignment`): the
/// replicas as given, the first eligible one leading, fenced ones out of the ISR; and
/// Kafka's INVALID_REPLICA_ASSIGNMENT for what its controller refuses.
#[test]
fn a_manual_assignment_places_replicas_as_given_or_says_why_not() {
    let mut h = Harness::new();
    h.live_brokers(4);
    h.fence(3).unwrap();
    let manual = |name: &str, id: u128, lists: Vec<Vec<BrokerId>>| NewTopic {
        name: name.into(),
        id: Uuid::from_u128(id),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignment: Some(lists),
    };
    let outcome = h
        .apply(MetadataCommand::CreateTopics {
            topics: vec![
                manual("placed", 1, vec![vec![2, 1], vec![3, 2]]),
                manual("twice", 2, vec![vec![1, 1]]),
                manual("ragged", 3, vec![vec![1], vec![1, 2]]),
                manual("unknown", 4, vec![vec![1, 9]]),
                manual("fenced", 5, vec![vec![3]]),
                manual("empty", 6, vec![vec![]]),
            ],
        })
        .unwrap();
    let CommandOutcome::TopicsCreated { results } = outcome else {
        panic!("unexpected outcome {outcome:?}");
    };
    let (id, assignment) = results[0].clone().unwrap();
    assert_eq!(assignment, vec![vec![2, 1], vec![3, 2]]);
    let (p0, p1) = (h.partition(id, 0), h.partition(id, 1));
    assert_eq!((p0.leader, p0.isr.clone()), (Some(2), vec![2, 1]));
    assert_eq!(
        (p1.replicas.clone(), p1.leader, p1.isr.clone()),
        (vec![3, 2], Some(2), vec![2])
    );
    for refused in &results[1..] {
        assert!(
            matches!(refused, Err(MetadataError::InvalidReplicaAssignment(_))),
            "{refused:?}"
        );
    }
    assert_eq!(h.state.topics().count(), 1);
}

#[test]
fn create_partitions_takes_a_manual_assignment_of_the_topics_replication_factor() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 1, 2);
    let grow = |count, lists: Vec<Vec<BrokerId>>| MetadataCommand::CreatePartitions {
        topic_id: topic,
        count,
        assignment: Some(lists),
    };
    for refused in [
        grow(3, vec![vec![1, 2]]),
        grow(2, vec![vec![0, 1, 2]]),
        grow(2, vec![vec![2, 2]]),
        grow(2, vec![vec![2, 7]]),
    ] {
        assert!(
            matches!(
                h.apply(refused),
                Err(MetadataError::InvalidReplicaAssignment(_))
            ),
            "a bad manual assignment was accepted"
        );
    }
    let outcome = h.apply(grow(3, vec![vec![2, 0], vec![1, 2]])).unwrap();
    let CommandOutcome::PartitionsCreated { assignment } = outcome else {
        panic!("unexpected outcome {outcome:?}");
    };
    assert_eq!(assignment, vec![vec![2, 0], vec![1, 2]]);
    let (p1, p2) = (h.partition(topic, 1), h.partition(topic, 2));
    assert_eq!((p1.replicas.clone(), p1.leader), (vec![2, 0], Some(2)));
    assert_eq!((p2.replicas.clone(), p2.leader), (vec![1, 2], Some(1)));
}

#[test]
fn each_command_reports_only_the_topics_it_changed() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let a = h.create_topic("a", 4, 3);
    assert_eq!(h.state.take_last_changes(), vec![TopicChange::Changed(a)]);
    let b = h.create_topic("b", 2, 2);
    let _ = h.state.take_last_changes();
    let leader = h.partition(a, 0).leader.unwrap();
    let followers: Vec<BrokerId> = h
        .partition(a, 0)
        .isr
        .into_iter()
        .filter(|r| *r != leader)
        .collect();
    let mut isr = vec![leader];
    isr.push(followers[0]);
    h.alter(a, 0, isr).unwrap();
    assert_eq!(
        h.state.take_last_changes(),
        vec![TopicChange::Changed(a)],
        "an AlterPartition of one partition touches one topic"
    );
    // A refused command changes nothing.
    assert!(h.alter(a, 0, vec![42]).is_err());
    assert!(h.state.take_last_changes().is_empty());
    // Fencing a broker touches the topics it has replicas of, each once.
    h.fence(leader).unwrap();
    let mut changed = h.state.take_last_changes();
    changed.sort_by_key(|change| format!("{change:?}"));
    let touches_b = (0..2).any(|p| h.partition(b, p).replicas.contains(&leader));
    let mut expected = vec![TopicChange::Changed(a)];
    if touches_b {
        expected.push(TopicChange::Changed(b));
    }
    expected.sort_by_key(|change| format!("{change:?}"));
    assert_eq!(changed, expected);
    h.apply(MetadataCommand::CreatePartitions {
        topic_id: b,
        count: 3,
        assignment: None,
    })
    .unwrap();
    assert_eq!(h.state.take_last_changes(), vec![TopicChange::Changed(b)]);
    h.apply(MetadataCommand::DeleteTopic { id: b }).unwrap();
    assert_eq!(
        h.state.take_last_changes(),
        vec![TopicChange::Deleted {
            id: b,
            name: "b".into()
        }]
    );
}

/// The snapshot format, as the code before copy-on-write wrote it (plain maps, no `Arc`):
/// captured from that code for this state, so that a change to the format fails here.
const PLAIN_MAPS_JSON: &str = concat!(
    r#"{"cluster_id":"cluster-proposed-by-0","brokers":{"0":{"id":0,"#,
    r#""incarnation":"00000000-0000-0000-0000-0000000003e8","epoch":1,"#,
    r#""endpoints":[{"listener":"PLAINTEXT","host":"127.0.0.1","port":9092}],"#,
    r#""rack":null,"status":"Unfenced"}},"#,
    r#""topics":{"00000000-0000-0000-0000-00000000ab03":{"name":"a","#,
    r#""id":"00000000-0000-0000-0000-00000000ab03","configs":{},"#,
    r#""partitions":[{"replicas":[0],"isr":[0],"leader":0,"leader_epoch":0,"#,
    r#""partition_epoch":0,"leader_recovery_state":"Recovered","#,
    r#""adding_replicas":[],"removing_replicas":[]}]},"#,
    r#""00000000-0000-0000-0000-00000000ab04":{"name":"b","#,
    r#""id":"00000000-0000-0000-0000-00000000ab04","#,
    r#""configs":{"unclean.leader.election.enable":"true"},"#,
    r#""partitions":[{"replicas":[0],"isr":[0],"leader":0,"leader_epoch":0,"#,
    r#""partition_epoch":0,"leader_recovery_state":"Recovered","#,
    r#""adding_replicas":[],"removing_replicas":[]},"#,
    r#"{"replicas":[0],"isr":[0],"leader":0,"leader_epoch":0,"#,
    r#""partition_epoch":0,"leader_recovery_state":"Recovered","#,
    r#""adding_replicas":[],"removing_replicas":[]}]}},"#,
    r#""topic_ids":{"a":"00000000-0000-0000-0000-00000000ab03","#,
    r#""b":"00000000-0000-0000-0000-00000000ab04"},"#,
    r#""placement_cursor":3,"last_command_index":4}"#,
);

#[test]
fn shared_topics_serialise_exactly_as_the_plain_maps_did() {
    let mut h = Harness::new();
    h.live_brokers(1);
    h.create_topic("a", 1, 1);
    h.create_topic_with("b", 2, 1, unclean_allowed());
    let bytes = serde_json::to_vec(&h.state).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), PLAIN_MAPS_JSON);
    let restored: MetadataState = serde_json::from_str(PLAIN_MAPS_JSON).unwrap();
    assert_eq!(restored, h.state);
    restored.check_invariants().unwrap();
}

#[test]
fn a_partition_change_copies_only_its_topic_and_leaves_a_held_image_alone() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let changed = h.create_topic("changed", 2, 3);
    let others = [h.create_topic("x", 3, 2), h.create_topic("y", 1, 1)];
    // A reader's image: the state shared, as the state machine shares it.
    let image = h.state.clone();
    let old = h.partition(changed, 0);
    let leader = old.leader.unwrap();
    h.alter(changed, 0, vec![leader]).unwrap();

    assert_eq!(
        image.partition(&changed, 0),
        Some(&old),
        "the image did not change"
    );
    assert_eq!(h.state.partition(&changed, 0).unwrap().isr, vec![leader]);
    let arc = |state: &MetadataState, id: Uuid| state.topic_arc(&id).unwrap().clone();
    assert!(!Arc::ptr_eq(&arc(&image, changed), &arc(&h.state, changed)));
    for other in others {
        assert!(
            Arc::ptr_eq(&arc(&image, other), &arc(&h.state, other)),
            "an unchanged topic was copied"
        );
    }
    assert!(Arc::ptr_eq(&image.topic_ids, &h.state.topic_ids));
}

#[test]
fn an_unshared_topic_is_changed_in_place() {
    let mut h = Harness::new();
    h.live_brokers(3);
    let topic = h.create_topic("t", 2, 3);
    let before = Arc::as_ptr(h.state.topic_arc(&topic).unwrap());
    let leader = h.partition(topic, 1).leader.unwrap();
    h.alter(topic, 1, vec![leader]).unwrap();
    assert_eq!(h.state.partition(&topic, 1).unwrap().isr, vec![leader]);
    assert_eq!(Arc::as_ptr(h.state.topic_arc(&topic).unwrap()), before);
}

#[test]
fn creating_and_deleting_topics_leaves_a_held_image_alone() {
    let mut h = Harness::new();
    h.live_brokers(1);
    let kept = h.create_topic("kept", 1, 1);
    let deleted = h.create_topic("deleted", 1, 1);
    let image = h.state.clone();
    h.apply(MetadataCommand::DeleteTopic { id: deleted })
        .unwrap();
    let created = h.create_topic("created", 1, 1);

    assert_eq!(image.topics().count(), 2);
    assert!(image.topic_by_name("deleted").is_some());
    assert!(image.topic_by_name("created").is_none());
    assert!(h.state.topic_by_name("deleted").is_none());
    assert_eq!(h.state.topic(&created).unwrap().name, "created");
    let arc = |state: &MetadataState| state.topic_arc(&kept).unwrap().clone();
    assert!(Arc::ptr_eq(&arc(&image), &arc(&h.state)));
    image.check_invariants().unwrap();
}
