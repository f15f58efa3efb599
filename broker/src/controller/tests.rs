//! The controller's storage against openraft's own test suite, and in-process clusters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{BasicNode, ServerState, StorageError};
use tempfile::TempDir;
use uuid::Uuid;

use super::network::LocalRouter;
use super::*;
use crate::storage::StdFileSystem;

/// Fresh stores in a temporary directory, for openraft's suite.
struct TempStoreBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let log = RaftLogStore::open(fs.clone(), dir.path()).expect("open log");
        let state_machine = StateMachineStore::open(fs, dir.path()).expect("open state machine");
        Ok((dir, log, state_machine))
    }
}

#[test]
fn storage_passes_the_openraft_suite() {
    Suite::test_all(TempStoreBuilder).unwrap();
}

const WAIT: Duration = Duration::from_secs(10);

/// Fast elections for tests; the TCP transport's tests use it too.
pub(super) fn test_config() -> ControllerConfig {
    ControllerConfig {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 200,
        election_timeout_max_ms: 400,
        ..ControllerConfig::default()
    }
}

/// In-process controller nodes, each with its own data directory, wired by a router.
struct Cluster {
    router: LocalRouter,
    root: TempDir,
    config: ControllerConfig,
    nodes: BTreeMap<NodeId, Controller>,
}

impl Cluster {
    fn new(config: ControllerConfig) -> Cluster {
        Cluster {
            router: LocalRouter::new(),
            root: tempfile::tempdir().unwrap(),
            config,
            nodes: BTreeMap::new(),
        }
    }

    fn data_dir(&self, id: NodeId) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    async fn start(&mut self, id: NodeId) -> Controller {
        let controller = Controller::open(
            id,
            Arc::new(StdFileSystem),
            &self.data_dir(id),
            &self.config,
            self.router.factory_for(id),
        )
        .await
        .unwrap();
        self.router.register(id, controller.raft().clone());
        self.nodes.insert(id, controller.clone());
        controller
    }

    async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        self.router.remove(id);
        node.shutdown().await.unwrap();
    }

    /// Start nodes `1..=count` and initialize them as one quorum.
    async fn start_quorum(config: ControllerConfig, count: u64) -> Cluster {
        let mut cluster = Cluster::new(config);
        let voters: BTreeMap<NodeId, BasicNode> = (1..=count)
            .map(|id| (id, BasicNode::new(format!("node-{id}"))))
            .collect();
        for id in 1..=count {
            cluster.start(id).await;
        }
        cluster.nodes[&1].initialize(voters.clone()).await.unwrap();
        // Initializing twice is harmless.
        cluster.nodes[&1].initialize(voters).await.unwrap();
        cluster
    }

    /// Wait until every running node agrees on one leader, and return it.
    async fn leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let leaders: Vec<Option<NodeId>> = self
                .nodes
                .values()
                .map(Controller::current_leader)
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                let agreed = leaders.iter().all(|l| *l == Some(*leader));
                if agreed
                    && self.nodes.contains_key(leader)
                    && self.nodes[leader].raft().metrics().borrow().state == ServerState::Leader
                {
                    return *leader;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader within {WAIT:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Propose on the leader, retrying while leadership moves (a loaded test machine can
    /// miss a heartbeat).
    async fn submit(&self, command: MetadataCommand) -> (u64, CommandOutcome) {
        submit_among(self.nodes.values(), command).await
    }

    /// Wait until every running node applied `index`, then return their (equal) metadata.
    async fn converged(&self, index: u64) -> MetadataState {
        for node in self.nodes.values() {
            node.raft()
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "applied")
                .await
                .unwrap();
        }
        let states: Vec<MetadataState> = self
            .nodes
            .values()
            .map(|node| node.metadata().read(Clone::clone))
            .collect();
        for state in &states[1..] {
            assert_eq!(state, &states[0], "nodes disagree on the metadata");
        }
        states[0].check_invariants().unwrap();
        states.into_iter().next().unwrap()
    }
}

/// Propose `command` on whichever of `nodes` leads, retrying on NOT_CONTROLLER until
/// [`WAIT`] runs out. The command must succeed.
async fn submit_among<'a>(
    nodes: impl Iterator<Item = &'a Controller> + Clone,
    command: MetadataCommand,
) -> (u64, CommandOutcome) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leader = nodes
            .clone()
            .find(|node| node.raft().metrics().borrow().state == ServerState::Leader);
        if let Some(leader) = leader {
            match leader.submit(command.clone()).await {
                Ok((index, result)) => return (index, result.unwrap()),
                Err(ControllerError::NotController { .. }) => {}
                Err(error) => panic!("submitting {command:?}: {error}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader took {command:?} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) fn register(id: BrokerId) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        id,
        incarnation: Uuid::from_u128(id as u128),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
        }],
        rack: None,
        cluster_id: None,
    }
}

fn create_topic(name: &str, id: u128, partitions: i32, factor: i16) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(id),
        partitions,
        replication_factor: factor,
        configs: BTreeMap::new(),
    }
}

/// Register and unfence brokers; returns their epochs and the last index.
async fn live_brokers(cluster: &Cluster, ids: &[BrokerId]) -> (BTreeMap<BrokerId, i64>, u64) {
    let mut epochs = BTreeMap::new();
    let mut last = 0;
    for &id in ids {
        let (index, outcome) = cluster.submit(register(id)).await;
        let CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            broker_epoch, index as i64,
            "the broker epoch is the log index"
        );
        epochs.insert(id, broker_epoch);
        let (index, _) = cluster
            .submit(MetadataCommand::UnfenceBroker {
                id,
                epoch: broker_epoch,
            })
            .await;
        last = index;
    }
    (epochs, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_a_leader_and_fail_over_with_the_same_metadata() {
    let mut cluster = Cluster::start_quorum(test_config(), 3).await;
    let first_leader = cluster.leader().await;

    let (epochs, _) = live_brokers(&cluster, &[1, 2, 3]).await;
    let (index, outcome) = cluster.submit(create_topic("orders", 1, 6, 3)).await;
    assert!(matches!(outcome, CommandOutcome::TopicCreated { .. }));
    let before = cluster.converged(index).await;
    let orders = before.topic_by_name("orders").unwrap().clone();
    assert_eq!(orders.partitions.len(), 6);

    // A follower refuses proposals and names the leader.
    let follower = *cluster
        .nodes
        .keys()
        .find(|&&id| id != first_leader)
        .unwrap();
    let refused = cluster.nodes[&follower]
        .submit(register(7))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        ControllerError::NotController { leader: Some(l) } if l == first_leader
    ));
    assert!(refused.is_retriable());

    // The active controller dies; the other two elect a new one that has everything.
    cluster.stop(first_leader).await;
    let second_leader = cluster.leader().await;
    assert_ne!(second_leader, first_leader);
    let after_failover = cluster.converged(index).await;
    assert_eq!(after_failover.topic_by_name("orders"), Some(&orders));

    // The new controller fences the dead broker (its session expired) and carries on.
    let dead = BrokerId::try_from(first_leader).unwrap();
    let (_, fenced) = cluster
        .submit(MetadataCommand::FenceBroker {
            id: dead,
            epoch: epochs[&dead],
        })
        .await;
    assert!(!fenced.changes().is_empty());
    let (index, _) = cluster.submit(create_topic("later", 2, 2, 2)).await;
    let state = cluster.converged(index).await;
    for partition in &state.topic_by_name("orders").unwrap().partitions {
        assert_ne!(partition.leader, Some(dead));
        assert!(!partition.isr.contains(&dead));
    }
    assert_eq!(state.broker(dead).unwrap().status, BrokerStatus::Fenced);

    // The dead node restarts from its files and catches up.
    cluster.start(first_leader).await;
    let caught_up = cluster.converged(index).await;
    assert_eq!(caught_up, state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_is_replaced_and_catches_up_after_healing() {
    let cluster = Cluster::start_quorum(test_config(), 3).await;
    let (_, index) = live_brokers(&cluster, &[1, 2, 3]).await;
    cluster.converged(index).await;
    let old_leader = cluster.leader().await;
    cluster.router.isolate(old_leader);
    // The majority side elects a new leader and commits without the old one.
    let majority: Vec<NodeId> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|&id| id != old_leader)
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leader = cluster.nodes[&majority[0]].current_leader();
        if leader.is_some_and(|l| l != old_leader)
            && cluster.nodes[&majority[1]].current_leader() == leader
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let majority_nodes = majority.iter().map(|id| &cluster.nodes[id]);
    let (index, _) = submit_among(majority_nodes, create_topic("t", 3, 3, 3)).await;
    assert!(cluster.nodes[&old_leader]
        .metadata()
        .read(|m| m.topic_by_name("t").is_none()));
    cluster.router.heal(old_leader);
    let state = cluster.converged(index).await;
    assert!(state.topic_by_name("t").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_controller_restarts_from_its_snapshot_and_log() {
    let config = ControllerConfig {
        snapshot_entries_max: 5,
        entries_kept_after_snapshot: 2,
        ..test_config()
    };
    let mut cluster = Cluster::start_quorum(config, 1).await;
    let (epochs, _) = live_brokers(&cluster, &[1, 2, 3, 4]).await;
    cluster.submit(create_topic("t", 4, 8, 3)).await;
    // Take a snapshot now (the policy's own every-5-entries snapshot may be mid-build or
    // behind, which made this test flaky) and wait for it and for the log behind it to be
    // purged.
    cluster.nodes[&1].raft().trigger().snapshot().await.unwrap();
    cluster.nodes[&1]
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 5) && m.purged.is_some(),
            "snapshot and purge",
        )
        .await
        .unwrap();
    let (index, _) = cluster
        .submit(MetadataCommand::FenceBroker {
            id: 2,
            epoch: epochs[&2],
        })
        .await;
    let before = cluster.converged(index).await;
    cluster.stop(1).await;
    assert!(cluster
        .data_dir(1)
        .join(CONTROLLER_DIR_NAME)
        .join("snapshot")
        .exists());

    let restarted = cluster.start(1).await;
    restarted
        .raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "re-applied after restart")
        .await
        .unwrap();
    assert_eq!(restarted.metadata().read(Clone::clone), before);
    // And it keeps working: broker epochs stay log indexes after the restart.
    let (index, outcome) = cluster.submit(register(5)).await;
    assert!(matches!(
        outcome,
        CommandOutcome::BrokerRegistered { broker_epoch, .. } if broker_epoch == index as i64
    ));
}
