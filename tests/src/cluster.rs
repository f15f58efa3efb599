//! Several `sluiced` processes forming one replicated cluster on 127.0.0.1, for the
//! `tests/cluster_*.rs` fault tests.
//!
//! What it owns:
//! - [`Cluster::start`]: ports for every node (Kafka listener, metrics, internal
//!   controller/Raft listener) picked before any node starts, the `--controller-voters`
//!   string naming every node's internal listener (or only the first
//!   [`ClusterOptions::voters`] nodes'; the others join as metadata learners), one data
//!   directory per node. All processes are spawned first and only then waited for (a node
//!   may answer only once a quorum runs); start-up is over when every node answers a
//!   Metadata request listing all brokers and naming a controller. A node that exits
//!   during start-up (a port taken between our probe and its bind) makes the whole cluster
//!   start again on new ports.
//! - Faults on one node by id: [`Cluster::kill9`], [`Cluster::sigterm`],
//!   [`Cluster::sigstop`] / [`Cluster::sigcont`] (the node is alive but runs no code: cut
//!   off from everyone), [`Cluster::restart`] on the same ports and data directory, and
//!   [`Cluster::restart_all`] (every node at once).
//! - Questions asked over the Kafka protocol of a live node: [`Cluster::partition_state`]
//!   (leader, leader epoch, replicas, ISR), [`Cluster::controller_id`],
//!   [`Cluster::high_watermark`], [`Cluster::create_topic`] (CreateTopics, then waits until
//!   every live node agrees on a leader for each partition and the leaders serve it).
//! - Scenario steps the fault tests share: [`Cluster::create_one_partition_topic`] (the
//!   topic and its agreed state), [`Cluster::produce_once`] (one raw Produce to a given
//!   node), [`Cluster::produce_acked_batch`] (an acks=all batch retried until acknowledged,
//!   kept as an [`AckedBatch`]), [`Cluster::assert_batches_committed`] (every acknowledged
//!   batch committed and read back at its offsets), [`Cluster::wait_for_follower_elected`]
//!   and [`Cluster::wait_for_high_watermark`].
//! - [`Cluster::wait_for`]: poll a condition against a deadline; on timeout, panic with
//!   what was awaited, the last state seen and every node's log.
//! - The replicas' bytes: [`Cluster::log_bytes`] reads a partition's segment files from a
//!   node's data directory, [`Cluster::assert_replicas_identical`] compares them up to the
//!   high watermark, [`Cluster::assert_no_log_contains`] checks that records meant to be
//!   gone are gone from every node.
//!
//! Dropping a cluster kills the processes it started (and nothing else).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchResponse, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::BatchHeader;
use sluice_protocol::records::{decode_records, ConsumedRecord};

use crate::netns::NetLab;
use crate::raw::{self, fetch_request, topic_name, RawConnection};
use crate::{free_port, Broker, BrokerOptions, POLL_INTERVAL};

/// How long [`Cluster::start`] waits for every node to list every broker.
pub const CLUSTER_START_DEADLINE: Duration = Duration::from_secs(60);
/// Whole-cluster start attempts when a node exits during start-up.
const CLUSTER_START_ATTEMPTS_MAX: usize = 3;
/// Connect and read timeout of the harness's own questions to one node, so that a stopped
/// node costs a bounded wait.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`Cluster::create_topic`] may take, leaders included.
const CREATE_TOPIC_DEADLINE: Duration = Duration::from_secs(60);
/// How long [`Cluster::produce_acked_batch`] retries a batch until it is acknowledged.
pub const ACKED_BATCH_DEADLINE: Duration = Duration::from_secs(30);
/// How much of each node's log goes into a failure message.
const NODE_LOG_TAIL_BYTES: u64 = 24 * 1024;
/// The CreateTopics version the harness sends (flexible, configs in the response).
const CREATE_TOPICS_VERSION: i16 = 5;
/// Kafka error codes the harness reacts to.
const NOT_CONTROLLER: i16 = 41;
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// How a test wants its cluster started. The typed fields become the flags of the
/// replication contract when set; `extra_args` go to every node after them.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Flags for every node, after the harness's own.
    pub extra_args: Vec<String>,
    /// Environment variables for every node (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// `--broker-heartbeat-interval-ms`.
    pub heartbeat_interval_ms: Option<u64>,
    /// `--broker-session-timeout-ms`.
    pub session_timeout_ms: Option<u64>,
    /// `--replica-lag-time-max-ms`.
    pub replica_lag_time_max_ms: Option<u64>,
    /// `--min-insync-replicas` (the broker default for topics).
    pub min_insync_replicas: Option<u32>,
    /// `--default-replication-factor`.
    pub default_replication_factor: Option<u32>,
    /// How many nodes are controller voters: nodes `1..=k` are named in
    /// `--controller-voters` (which every node gets), the others join the metadata quorum
    /// as learners. `None`: every node is a voter.
    pub voters: Option<usize>,
    /// `--rack` per node: node `i` gets `racks[i - 1]`; nodes past the end get none.
    pub racks: Vec<String>,
    /// Run node `i` in namespace `i - 1` of this lab, on its address (ports 9092 Kafka,
    /// 9093 internal, 9644 metrics), instead of on 127.0.0.1: the lab's faults then cut
    /// nodes off ([`Cluster::isolate`]).
    pub lab: Option<Arc<NetLab>>,
}

impl ClusterOptions {
    /// Failure detection fast enough for tests: heartbeats every 200 ms, a broker fenced
    /// after `session_timeout_ms` without one, a follower out of the ISR after
    /// `replica_lag_time_max_ms` without catching up.
    pub fn fast(session_timeout_ms: u64, replica_lag_time_max_ms: u64) -> ClusterOptions {
        ClusterOptions {
            heartbeat_interval_ms: Some(200),
            session_timeout_ms: Some(session_timeout_ms),
            replica_lag_time_max_ms: Some(replica_lag_time_max_ms),
            ..ClusterOptions::default()
        }
    }

    fn node_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(format!("--{name}"));
                args.push(value);
            }
        };
        flag(
            "broker-heartbeat-interval-ms",
            self.heartbeat_interval_ms.map(|v| v.to_string()),
        );
        flag(
            "broker-session-timeout-ms",
            self.session_timeout_ms.map(|v| v.to_string()),
        );
        flag(
            "replica-lag-time-max-ms",
            self.replica_lag_time_max_ms.map(|v| v.to_string()),
        );
        flag(
            "min-insync-replicas",
            self.min_insync_replicas.map(|v| v.to_string()),
        );
        flag(
            "default-replication-factor",
            self.default_replication_factor.map(|v| v.to_string()),
        );
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// One partition as a node's Metadata answer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// `None` while the partition has no leader (leader id -1).
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// The partition's error code (0, or e.g. LEADER_NOT_AVAILABLE).
    pub error_code: i16,
}

impl PartitionState {
    /// Whether `node` is in the ISR.
    pub fn in_isr(&self, node: i32) -> bool {
        self.isr.contains(&node)
    }

    /// Whether every replica is in the ISR.
    pub fn isr_is_full(&self) -> bool {
        let isr: BTreeSet<i32> = self.isr.iter().copied().collect();
        let replicas: BTreeSet<i32> = self.replicas.iter().copied().collect();
        !replicas.is_empty() && isr == replicas
    }

    /// The replicas other than the leader.
    pub fn followers(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| Some(*r) != self.leader)
            .collect()
    }
}

/// A batch of values the cluster acknowledged, and the base offset the acknowledgement
/// reported: where a consumer must find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedBatch {
    pub values: Vec<String>,
    pub base_offset: i64,
}

impl AckedBatch {
    /// The offset just past the batch's last record.
    pub fn end_offset(&self) -> i64 {
        self.base_offset + self.values.len() as i64
    }

    /// The offset just past the last record of any of `batches` (`None` for none): the
    /// high watermark that covers them all.
    pub fn end_of(batches: &[AckedBatch]) -> Option<i64> {
        batches.iter().map(AckedBatch::end_offset).max()
    }
}

struct Node {
    broker: Broker,
    internal: SocketAddr,
}

/// A cluster of `sluiced` nodes with ids `1..=n`, every node a controller voter unless
/// [`ClusterOptions::voters`] says fewer. Dropping it kills the processes it started.
pub struct Cluster {
    nodes: Vec<Node>,
    voters: String,
    lab: Option<Arc<NetLab>>,
}

impl Cluster {
    /// Start `n` nodes and wait until each answers Metadata listing `n` brokers and a
    /// controller (see the module doc).
    pub fn start(n: usize, options: ClusterOptions) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let mut last_error = String::new();
        for attempt in 1..=CLUSTER_START_ATTEMPTS_MAX {
            match Cluster::try_start(n, &options) {
                Ok(cluster) => return cluster,
                Err((error, retriable)) => {
                    if !retriable || attempt == CLUSTER_START_ATTEMPTS_MAX {
                        panic!("cluster of {n} did not start (attempt {attempt}): {error}");
                    }
                    eprintln!("[sluice-tests] cluster start attempt {attempt} failed, retrying on new ports: {}",
                        error.lines().next().unwrap_or_default());
                    last_error = error;
                }
            }
        }
        unreachable!("the last attempt returns or panics: {last_error}")
    }

    /// One start attempt: `Err((message with logs, whether new ports may help))`.
    fn try_start(n: usize, options: &ClusterOptions) -> Result<Cluster, (String, bool)> {
        let voter_count = options.voters.unwrap_or(n);
        assert!(
            (1..=n).contains(&voter_count),
            "between 1 and {n} of {n} nodes can be voters, not {voter_count}"
        );
        let addresses: Vec<(SocketAddr, SocketAddr, SocketAddr)> = (0..n)
            .map(|i| match &options.lab {
                Some(lab) => {
                    let ip = lab.node_addr(i);
                    let at = |port| SocketAddr::from((ip, port));
                    (at(9092), at(9644), at(9093))
                }
                None => (
                    localhost(free_port()),
                    localhost(free_port()),
                    localhost(free_port()),
                ),
            })
            .collect();
        let voters = addresses
            .iter()
            .take(voter_count)
            .enumerate()
            .map(|(i, (_, _, internal))| format!("{}@{internal}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(n);
        for (i, (listen, metrics, internal)) in addresses.iter().enumerate() {
            let mut extra_args = vec![
                "--internal-listen".to_string(),
                internal.to_string(),
                "--controller-voters".to_string(),
                voters.clone(),
            ];
            if let Some(rack) = options.racks.get(i) {
                extra_args.push("--rack".to_string());
                extra_args.push(rack.clone());
            }
            extra_args.extend(options.node_args());
            let broker = Broker::spawn_unready(BrokerOptions {
                data_dir: None,
                extra_args,
                env: options.env.clone(),
                node_id: Some(i as i32 + 1),
                listen: Some(*listen),
                metrics_listen: Some(*metrics),
                netns: options.lab.as_ref().map(|lab| lab.node_ns(i)),
            })
            .map_err(|e| (format!("node {}: {e}", i + 1), false))?;
            nodes.push(Node {
                broker,
                internal: *internal,
            });
        }
        let mut cluster = Cluster {
            nodes,
            voters,
            lab: options.lab.clone(),
        };
        let deadline = Instant::now() + CLUSTER_START_DEADLINE;
        for id in cluster.ids() {
            if let Err(e) = cluster.node(id).wait_ready(deadline) {
                let exited = !cluster.node(id).is_running();
                return Err((format!("node {id}: {e}\n{}", cluster.logs()), exited));
            }
        }
        let expected = n;
        let ready = cluster.poll_until(deadline, |cluster| {
            let mut all = true;
            for id in cluster.ids() {
                let listed = cluster
                    .metadata_from(id, Some(&[]))
                    .is_ok_and(|m| m.brokers.len() == expected);
                let controller = cluster.controller_id_from(id);
                all &= listed && controller.is_some_and(|c| (1..=voter_count as i32).contains(&c));
            }
            all.then_some(())
        });
        if ready.is_none() {
            let exited = cluster
                .ids()
                .into_iter()
                .any(|id| !cluster.node(id).is_running());
            let views: Vec<String> = cluster
                .ids()
                .into_iter()
                .map(|id| match cluster.metadata_from(id, Some(&[])) {
                    Ok(m) => format!(
                        "node {id}: brokers {:?}, controller {:?}",
                        m.brokers.iter().map(|b| b.node_id.0).collect::<Vec<_>>(),
                        cluster.controller_id_from(id)
                    ),
                    Err(e) => format!("node {id}: {e}"),
                })
                .collect();
            return Err((
                format!(
                    "not every node listed {n} brokers and a controller within {CLUSTER_START_DEADLINE:?}:\n{}\n{}",
                    views.join("\n"),
                    cluster.logs()
                ),
                exited,
            ));
        }
        Ok(cluster)
    }

    /// The node ids, `1..=n`.
    pub fn ids(&self) -> Vec<i32> {
        (1..=self.nodes.len() as i32).collect()
    }

    /// How many nodes the cluster has.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's Kafka address, comma-joined.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.broker.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `--controller-voters` value every node got (the voters' ids and internal
    /// listeners).
    pub fn voters(&self) -> &str {
        &self.voters
    }

    fn index(&self, id: i32) -> usize {
        assert!(
            id >= 1 && id as usize <= self.nodes.len(),
            "no node {id} in a cluster of {}",
            self.nodes.len()
        );
        (id - 1) as usize
    }

    /// The node with this id.
    pub fn node(&mut self, id: i32) -> &mut Broker {
        let i = self.index(id);
        &mut self.nodes[i].broker
    }

    /// The node with this id, for reading (addresses, data directory, log).
    pub fn broker(&self, id: i32) -> &Broker {
        &self.nodes[self.index(id)].broker
    }

    /// A node's Kafka address, `127.0.0.1:PORT`.
    pub fn address(&self, id: i32) -> String {
        self.broker(id).bootstrap()
    }

    /// A node's internal (controller/Raft) listener.
    pub fn internal_address(&self, id: i32) -> SocketAddr {
        self.nodes[self.index(id)].internal
    }

    /// A node's data directory.
    pub fn data_dir(&self, id: i32) -> PathBuf {
        self.broker(id).data_dir().to_path_buf()
    }

    /// SIGKILL a node and reap it.
    pub fn kill9(&mut self, id: i32) {
        self.node(id).kill9();
    }

    /// SIGTERM a node (controlled shutdown); pair with [`wait_exit`](Self::wait_exit).
    pub fn sigterm(&mut self, id: i32) {
        self.node(id).sigterm();
    }

    /// Wait for a node's process to exit (panics with its log after `timeout`).
    pub fn wait_exit(&mut self, id: i32, timeout: Duration) -> ExitStatus {
        self.node(id).wait_exit(timeout)
    }

    /// SIGSTOP a node: alive, its sockets accept, but it runs nothing.
    pub fn sigstop(&mut self, id: i32) {
        self.node(id).sigstop();
    }

    /// SIGCONT a node stopped by [`sigstop`](Self::sigstop).
    pub fn sigcont(&mut self, id: i32) {
        self.node(id).sigcont();
    }

    /// Cut node `id` off from every other node and from the test (a cluster started in a
    /// [`ClusterOptions::lab`] only).
    pub fn isolate(&mut self, id: i32) {
        let lab = self
            .lab
            .as_ref()
            .expect("isolate needs a cluster in a network lab");
        lab.isolate(self.index(id))
            .unwrap_or_else(|e| panic!("isolating node {id}: {e}"));
    }

    /// Undo [`isolate`](Self::isolate).
    pub fn heal(&mut self, id: i32) {
        let lab = self
            .lab
            .as_ref()
            .expect("heal needs a cluster in a network lab");
        lab.heal(self.index(id))
            .unwrap_or_else(|e| panic!("healing node {id}: {e}"));
    }

    /// Drop what node `from` sends to node `to` (`connected: false`), or stop dropping it
    /// (`true`); clients still reach both (a cluster in a [`ClusterOptions::lab`] only).
    pub fn set_link(&mut self, from: i32, to: i32, connected: bool) {
        let lab = self
            .lab
            .as_ref()
            .expect("links need a cluster in a network lab");
        let (a, b) = (self.index(from), self.index(to));
        let result = if connected {
            lab.unblock(a, b)
        } else {
            lab.block(a, b)
        };
        result.unwrap_or_else(|e| panic!("link {from} -> {to} connected={connected}: {e}"));
    }

    /// Start a node again on its ports and data directory (killing it first if it runs)
    /// and wait until it answers ApiVersions.
    pub fn restart(&mut self, id: i32) {
        self.node(id).restart();
    }

    /// Restart every node at once (killing the running ones) on its ports and data
    /// directory, and wait as [`start`](Self::start) does: until each answers Metadata
    /// listing every broker and naming a controller. One node alone cannot form a quorum,
    /// so the nodes are spawned first and waited for after.
    pub fn restart_all(&mut self) {
        for id in self.ids() {
            if let Err(e) = self.node(id).restart_unready() {
                panic!("node {id} did not restart: {e}\n{}", self.logs());
            }
        }
        let deadline = Instant::now() + CLUSTER_START_DEADLINE;
        for id in self.ids() {
            if let Err(e) = self.node(id).wait_ready(deadline) {
                panic!("node {id} did not restart: {e}\n{}", self.logs());
            }
        }
        let expected = self.size();
        let voter_count = self.voters.split(',').count() as i32;
        self.wait_for(
            "every node to list every broker and a controller after restarting all",
            CLUSTER_START_DEADLINE,
            |cluster| {
                cluster
                    .ids()
                    .into_iter()
                    .all(|id| {
                        let listed = cluster
                            .metadata_from(id, Some(&[]))
                            .is_ok_and(|m| m.brokers.len() == expected);
                        let controller = cluster.controller_id_from(id);
                        listed && controller.is_some_and(|c| (1..=voter_count).contains(&c))
                    })
                    .then_some(())
            },
        );
    }

    /// Whether a node is running and not stopped: one the harness may ask questions.
    pub fn is_live(&mut self, id: i32) -> bool {
        let broker = self.node(id);
        broker.is_running() && !broker.is_stopped()
    }

    /// The ids of the live nodes (see [`is_live`](Self::is_live)).
    pub fn live_ids(&mut self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|&id| self.is_live(id))
            .collect()
    }

    /// A short-timeout connection to a node.
    pub fn connect(&self, id: i32) -> std::io::Result<RawConnection> {
        RawConnection::connect_timeout(&self.address(id), QUESTION_TIMEOUT)
    }

    /// Metadata (brokers, controller, and `topics`, or all topics for `None`) as one node
    /// sees it.
    pub fn metadata_from(
        &self,
        id: i32,
        topics: Option<&[&str]>,
    ) -> std::io::Result<MetadataResponse> {
        let mut conn = self.connect(id)?;
        raw::metadata(&mut conn, topics)
    }

    /// The active controller as one node's quorum member knows it: the leader DescribeQuorum
    /// names, which a node that is not the leader names too, beside its
    /// NOT_LEADER_OR_FOLLOWER (`None` while it knows none). Metadata's controller id is the
    /// answering broker (KIP-590), not the active controller.
    pub fn controller_id_from(&self, id: i32) -> Option<i32> {
        let mut conn = self.connect(id).ok()?;
        raw::quorum_leader(&mut conn)
    }

    /// The active controller as the first live node that answers reports it.
    pub fn controller_id(&mut self) -> Option<i32> {
        self.live_ids()
            .into_iter()
            .find_map(|id| self.controller_id_from(id))
    }

    /// A follower of `state`'s partition that is not the active controller (if there is
    /// one): stopping it then tests replication alone, not a controller failover too.
    pub fn follower_not_controller(&mut self, state: &PartitionState) -> i32 {
        let controller = self.controller_id();
        let followers = state.followers();
        followers
            .iter()
            .copied()
            .find(|f| Some(*f) != controller)
            .unwrap_or(followers[0])
    }

    /// Node `id`'s `/metrics` text (empty when it does not answer).
    pub fn scrape(&self, id: i32) -> String {
        raw::http_get(&self.broker(id).metrics_address(), "/metrics").unwrap_or_default()
    }

    /// Scrape the nodes `ids` until `check` accepts every node's metrics text, at most
    /// `timeout`; returns each node's last text, or panics with them and the logs.
    pub fn wait_for_metrics(
        &mut self,
        ids: &[i32],
        what: &str,
        timeout: Duration,
        check: impl Fn(i32, &str) -> bool,
    ) -> Vec<String> {
        let mut last = Vec::new();
        let found = self.poll_until(Instant::now() + timeout, |cluster| {
            last = ids.iter().map(|&id| cluster.scrape(id)).collect();
            ids.iter()
                .zip(&last)
                .all(|(&id, text)| check(id, text))
                .then_some(())
        });
        if found.is_none() {
            let texts: Vec<String> = ids
                .iter()
                .zip(&last)
                .map(|(id, text)| format!("--- node {id} ---\n{text}"))
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}\n{}",
                texts.join("\n"),
                self.logs()
            );
        }
        last
    }

    /// The broker ids one node's Metadata lists.
    pub fn brokers_listed_by(&self, id: i32) -> Option<Vec<i32>> {
        let m = self.metadata_from(id, Some(&[])).ok()?;
        let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// A partition as one node's Metadata describes it (`None` if the node does not
    /// answer or does not know the partition).
    pub fn partition_state_from(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
    ) -> Option<PartitionState> {
        let m = self.metadata_from(id, Some(&[topic])).ok()?;
        partition_in(&m, topic, partition)
    }

    /// A partition as the first live node that answers describes it.
    pub fn partition_state(&mut self, topic: &str, partition: i32) -> Option<PartitionState> {
        self.live_ids()
            .into_iter()
            .find_map(|id| self.partition_state_from(id, topic, partition))
    }

    /// A partition's state if every live node reports the same one.
    pub fn partition_state_agreed(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Option<PartitionState> {
        let mut agreed: Option<PartitionState> = None;
        for id in self.live_ids() {
            let state = self.partition_state_from(id, topic, partition)?;
            match &agreed {
                Some(previous) if *previous != state => return None,
                _ => agreed = Some(state),
            }
        }
        agreed
    }

    /// Poll `check` every few milliseconds until it returns `Some` or `deadline` passes.
    pub fn poll_until<T>(
        &mut self,
        deadline: Instant,
        mut check: impl FnMut(&mut Cluster) -> Option<T>,
    ) -> Option<T> {
        loop {
            if let Some(value) = check(self) {
                return Some(value);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Poll `check` until it returns `Some`, at most `timeout`; on timeout panic naming
    /// `what`, with every node's log.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        check: impl FnMut(&mut Cluster) -> Option<T>,
    ) -> T {
        match self.poll_until(Instant::now() + timeout, check) {
            Some(value) => value,
            None => panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.logs()
            ),
        }
    }

    /// Wait until the partition's state (as the first live node that answers reports it)
    /// satisfies `condition`; panics with the last state seen and the logs on timeout.
    pub fn wait_for_partition(
        &mut self,
        topic: &str,
        partition: i32,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&PartitionState) -> bool,
    ) -> PartitionState {
        let mut last = None;
        let found = self.poll_until(Instant::now() + timeout, |cluster| {
            let state = cluster.partition_state(topic, partition)?;
            let ok = condition(&state);
            last = Some(state.clone());
            ok.then_some(state)
        });
        match found {
            Some(state) => state,
            None => panic!(
                "timed out after {timeout:?} waiting for {topic}-{partition}: {what}; last state seen: {last:?}\n{}",
                self.logs()
            ),
        }
    }

    /// The partition's leader, once it has one (waits at most `timeout`).
    pub fn wait_for_leader(&mut self, topic: &str, partition: i32, timeout: Duration) -> i32 {
        self.wait_for_partition(topic, partition, "a leader", timeout, |s| {
            s.leader.is_some()
        })
        .leader
        .expect("the condition asked for a leader")
    }

    /// Wait (at most `timeout`) until one of `before`'s followers leads the partition with
    /// a leader epoch above `before`'s; returns the new state.
    pub fn wait_for_follower_elected(
        &mut self,
        topic: &str,
        partition: i32,
        before: &PartitionState,
        timeout: Duration,
    ) -> PartitionState {
        let followers = before.followers();
        self.wait_for_partition(
            topic,
            partition,
            "a follower elected with a higher leader epoch",
            timeout,
            |s| {
                s.leader.is_some_and(|l| followers.contains(&l))
                    && s.leader_epoch > before.leader_epoch
            },
        )
    }

    /// Wait (at most `timeout`) until the high watermark the partition's leader reports is
    /// at least `at_least`; returns it.
    pub fn wait_for_high_watermark(
        &mut self,
        topic: &str,
        partition: i32,
        at_least: i64,
        timeout: Duration,
    ) -> i64 {
        self.wait_for(
            &format!("the high watermark of {topic}-{partition} to reach {at_least}"),
            timeout,
            |c| {
                c.high_watermark(topic, partition)
                    .filter(|&hw| hw >= at_least)
            },
        )
    }

    /// Create a topic through CreateTopics (sent to the controller, or another live node
    /// when that one refuses), then wait until every live node agrees on a leader for
    /// every partition, with the ISR equal to the replicas, and each leader answers a
    /// Fetch for it. `configs` are topic configs such as `("min.insync.replicas", "2")`.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) {
        let deadline = Instant::now() + CREATE_TOPIC_DEADLINE;
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(key, value)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(key.to_string()))
                                .with_value(Some(StrBytes::from_string(value.to_string())))
                        })
                        .collect(),
                )])
            .with_timeout_ms(30_000)
            .with_validate_only(false);
        let mut attempts = 0;
        let mut last_error = String::new();
        let created = self.poll_until(deadline, |cluster| {
            attempts += 1;
            // The controller first, then every other live node (KRaft brokers forward).
            let mut targets: Vec<i32> = cluster.controller_id().into_iter().collect();
            for id in cluster.live_ids() {
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
            for id in targets {
                let response: CreateTopicsResponse = match cluster
                    .connect(id)
                    .and_then(|mut conn| {
                        conn.set_read_timeout(Duration::from_secs(35))?;
                        conn.request(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)
                    }) {
                    Ok(response) => response,
                    Err(e) => {
                        last_error = format!("node {id}: {e}");
                        continue;
                    }
                };
                let Some(result) = response.topics.iter().find(|t| &*t.name.0 == name) else {
                    last_error = format!("node {id}: the topic is missing from the response");
                    continue;
                };
                match result.error_code {
                    0 => return Some(()),
                    // A retry of a creation whose first answer was lost.
                    TOPIC_ALREADY_EXISTS if attempts > 1 => return Some(()),
                    NOT_CONTROLLER => {
                        last_error = format!("node {id}: NOT_CONTROLLER");
                        continue;
                    }
                    code => panic!(
                        "creating topic {name} ({partitions} partitions, RF {replication_factor}, {configs:?}) on node {id}: error {code} {:?}\n{}",
                        result.error_message,
                        cluster.logs()
                    ),
                }
            }
            None
        });
        if created.is_none() {
            panic!(
                "creating topic {name}: no node accepted CreateTopics within {CREATE_TOPIC_DEADLINE:?}; last error: {last_error}\n{}",
                self.logs()
            );
        }
        let rf = replication_factor as usize;
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.wait_for(
            &format!("topic {name}: every live node agreeing on a leader and a full ISR of {rf} for each of its {partitions} partitions, each leader serving it"),
            timeout,
            |cluster| {
                for partition in 0..partitions {
                    let state = cluster.partition_state_agreed(name, partition)?;
                    let leader = state.leader?;
                    if state.replicas.len() != rf || !state.isr_is_full() {
                        return None;
                    }
                    let response = cluster.fetch_from(leader, name, partition, 0).ok()?;
                    if partition_error(&response) != Some(0) {
                        return None;
                    }
                }
                Some(())
            },
        );
    }

    /// [`create_topic`](Self::create_topic) with a single partition, then that
    /// partition's state as every live node reports it (leader, epoch, replicas, full ISR).
    pub fn create_one_partition_topic(
        &mut self,
        name: &str,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> PartitionState {
        self.create_topic(name, 1, replication_factor, configs);
        self.partition_state_agreed(name, 0)
            .expect("create_topic waits for agreement")
    }

    /// Produce `values` as one batch to the partition's leader (as the live nodes report
    /// it) until a response without error, retrying on any error or lost connection, at
    /// most `timeout`; returns (leader, base offset). A retry may duplicate the batch.
    pub fn produce_until_acked<V: AsRef<[u8]>>(
        &mut self,
        topic: &str,
        partition: i32,
        values: &[V],
        acks: i16,
        timeout: Duration,
    ) -> (i32, i64) {
        let mut last_error = String::from("no leader known");
        let deadline = Instant::now() + timeout;
        let acked = self.poll_until(deadline, |cluster| {
            let leader = cluster.partition_state(topic, partition)?.leader?;
            let mut conn = match cluster.connect(leader) {
                Ok(conn) => conn,
                Err(e) => {
                    last_error = format!("connect to node {leader}: {e}");
                    return None;
                }
            };
            // The produce's own timeout, then some slack for the answer.
            let _ = conn.set_read_timeout(Duration::from_secs(15));
            match raw::try_produce_values(&mut conn, topic, partition, values, acks, 10_000) {
                Ok((0, base_offset)) => Some((leader, base_offset)),
                Ok((code, _)) => {
                    last_error = format!("node {leader} answered error {code}");
                    None
                }
                Err(e) => {
                    last_error = format!("node {leader}: {e}");
                    None
                }
            }
        });
        acked.unwrap_or_else(|| {
            panic!(
                "producing {} records with acks={acks} to {topic}-{partition}: not acknowledged within {timeout:?}; last error: {last_error}\n{}",
                values.len(),
                self.logs()
            )
        })
    }

    /// [`produce_until_acked`](Self::produce_until_acked) of `values` with acks=all, at
    /// most [`ACKED_BATCH_DEADLINE`]; returns the batch with the base offset it was
    /// acknowledged at.
    pub fn produce_acked_batch(
        &mut self,
        topic: &str,
        partition: i32,
        values: Vec<String>,
    ) -> AckedBatch {
        let (_, base_offset) =
            self.produce_until_acked(topic, partition, &values, -1, ACKED_BATCH_DEADLINE);
        AckedBatch {
            values,
            base_offset,
        }
    }

    /// One Produce of `values` as a batch to node `id`, whatever it leads, without retry
    /// (5 s produce timeout, 20 s to answer); returns the partition's (error code, base
    /// offset). Panics with every node's log if the node does not answer.
    pub fn produce_once<V: AsRef<[u8]>>(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        values: &[V],
        acks: i16,
    ) -> (i16, i64) {
        let mut conn = self
            .connect(id)
            .unwrap_or_else(|e| panic!("connect to node {id}: {e}\n{}", self.logs()));
        conn.set_read_timeout(Duration::from_secs(20)).unwrap();
        raw::try_produce_values(&mut conn, topic, partition, values, acks, 5_000)
            .unwrap_or_else(|e| panic!("produce to node {id}: {e}\n{}", self.logs()))
    }

    /// A consumer's Fetch (replica id -1) of one partition from `offset`, sent to `id`.
    pub fn fetch_from(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> std::io::Result<FetchResponse> {
        let mut conn = self.connect(id)?;
        conn.request(
            ApiKey::Fetch,
            raw::FETCH_VERSION,
            &fetch_request(topic, partition, offset, 4 << 20),
        )
    }

    /// The high watermark the partition's leader reports (asking the current leader as
    /// metadata names it); `None` if no leader answers without an error.
    pub fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let leader = self.partition_state(topic, partition)?.leader?;
        let response = self.fetch_from(leader, topic, partition, 0).ok()?;
        let p = response.responses.first()?.partitions.first()?;
        (p.error_code == 0).then_some(p.high_watermark)
    }

    /// Every record a consumer can read from node `id` (which must lead the partition),
    /// from offset 0 to the high watermark, by raw Fetch requests.
    pub fn read_from_leader(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
    ) -> Result<(i64, Vec<ConsumedRecord>), String> {
        let mut conn = self
            .connect(id)
            .map_err(|e| format!("connect to node {id}: {e}"))?;
        conn.set_read_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut records: Vec<ConsumedRecord> = Vec::new();
        let mut offset = 0;
        // Bounded: every round either ends or moves the offset forward.
        for _ in 0..1_000_000 {
            let response = raw::fetch(&mut conn, &fetch_request(topic, partition, offset, 4 << 20));
            let p = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or("fetch response without the partition")?;
            if p.error_code != 0 {
                return Err(format!(
                    "fetch {topic}-{partition} at {offset} from node {id}: error {}",
                    p.error_code
                ));
            }
            let bytes = p.records.clone().unwrap_or_default();
            let batch: Vec<ConsumedRecord> = decode_records(&bytes)
                .map_err(|e| format!("decode records at {offset}: {e}"))?
                .into_iter()
                .filter(|r| r.offset >= offset)
                .collect();
            if batch.is_empty() {
                if offset < p.high_watermark {
                    return Err(format!(
                        "node {id} returned no records at {offset} below its high watermark {}",
                        p.high_watermark
                    ));
                }
                return Ok((p.high_watermark, records));
            }
            for r in batch {
                if r.offset >= p.high_watermark {
                    return Err(format!(
                        "node {id} returned offset {} at or above its high watermark {}",
                        r.offset, p.high_watermark
                    ));
                }
                offset = r.offset + 1;
                records.push(r);
            }
        }
        Err("fetch loop did not end".to_string())
    }

    /// Wait (at most `timeout`) until the partition's high watermark covers every batch of
    /// `batches`, then read the partition from node `leader` (see
    /// [`read_from_leader`](Self::read_from_leader)) and assert that every record of
    /// `batches` is at the offset its acknowledgement implies. Returns the high watermark
    /// waited for and the records read.
    pub fn assert_batches_committed(
        &mut self,
        leader: i32,
        topic: &str,
        partition: i32,
        batches: &[AckedBatch],
        timeout: Duration,
    ) -> (i64, Vec<ConsumedRecord>) {
        let needed = AckedBatch::end_of(batches).expect("batches acknowledged");
        let high_watermark = self.wait_for_high_watermark(topic, partition, needed, timeout);
        let (_, records) = self
            .read_from_leader(leader, topic, partition)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
        for batch in batches {
            for (i, value) in batch.values.iter().enumerate() {
                let offset = batch.base_offset + i as i64;
                let found = records.iter().find(|r| r.offset == offset);
                assert_eq!(
                    found.and_then(|r| r.value.as_deref()),
                    Some(value.as_bytes()),
                    "acknowledged {value} at offset {offset}\n{}",
                    self.logs()
                );
            }
        }
        (high_watermark, records)
    }

    /// The partition directories (`<topic>-<partition>`) in a node's data directory, sorted;
    /// directories being deleted (`...-delete`) are listed too, so a test can wait for them
    /// to go.
    pub fn partition_dirs(&self, id: i32) -> Vec<String> {
        let dir = self.data_dir(id);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("node {id}: cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                name.ends_with("-delete")
                    || name.rsplit_once('-').is_some_and(|(_, p)| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .collect();
        names.sort();
        names
    }

    /// The concatenated `*.log` segment files of a partition in a node's data directory
    /// (`<data_dir>/<topic>-<partition>/`), in base offset order.
    pub fn log_bytes(&self, id: i32, topic: &str, partition: i32) -> Vec<u8> {
        let dir = self.data_dir(id).join(format!("{topic}-{partition}"));
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("node {id}: cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "log")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        segments.sort();
        let mut bytes = Vec::new();
        for segment in segments {
            let data = std::fs::read(&segment)
                .unwrap_or_else(|e| panic!("node {id}: cannot read {}: {e}", segment.display()));
            bytes.extend_from_slice(&data);
        }
        bytes
    }

    /// Whether node `id`'s log of the partition (see [`log_bytes`](Self::log_bytes))
    /// contains `needle` anywhere, e.g. a value prefix.
    pub fn log_contains(&self, id: i32, topic: &str, partition: i32, needle: &[u8]) -> bool {
        self.log_bytes(id, topic, partition)
            .windows(needle.len())
            .any(|w| w == needle)
    }

    /// Assert that no node's log of the partition contains `needle`; a failure reads
    /// "node N still holds `what`".
    pub fn assert_no_log_contains(&self, topic: &str, partition: i32, needle: &[u8], what: &str) {
        for id in self.ids() {
            assert!(
                !self.log_contains(id, topic, partition, needle),
                "node {id} still holds {what}"
            );
        }
    }

    /// Assert that every node in `nodes` holds the same bytes for the partition up to the
    /// end of the batches below `high_watermark`, and that each holds at least that much.
    /// Returns the compared length.
    pub fn assert_replicas_identical(
        &self,
        topic: &str,
        partition: i32,
        nodes: &[i32],
        high_watermark: i64,
    ) -> usize {
        let logs: Vec<(i32, Vec<u8>)> = nodes
            .iter()
            .map(|&id| (id, self.log_bytes(id, topic, partition)))
            .collect();
        let (first_id, first) = &logs[0];
        let end = byte_position_of(first, high_watermark).unwrap_or_else(|| {
            panic!(
                "node {first_id}: its log of {topic}-{partition} ({} bytes, {}) does not reach the high watermark {high_watermark}",
                first.len(),
                describe_batches(first)
            )
        });
        for (id, log) in &logs {
            assert!(
                log.len() >= end,
                "node {id}: its log of {topic}-{partition} has {} bytes, fewer than the {end} up to the high watermark {high_watermark} ({})",
                log.len(),
                describe_batches(log)
            );
            if let Some(at) = (0..end).find(|&i| log[i] != first[i]) {
                panic!(
                    "{topic}-{partition}: node {id} differs from node {first_id} at byte {at} (of {end} up to the high watermark {high_watermark})\nnode {first_id}: {}\nnode {id}: {}",
                    describe_batches(&first[..end]),
                    describe_batches(&log[..end])
                );
            }
        }
        end
    }

    /// Every node's log tail, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            out.push_str(&format!(
                "--- node {} log ({}) ---\n{}\n",
                i + 1,
                node.broker.log_path().display(),
                node.broker.log_tail(NODE_LOG_TAIL_BYTES)
            ));
        }
        out
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The partition in a Metadata answer.
pub fn partition_in(m: &MetadataResponse, topic: &str, partition: i32) -> Option<PartitionState> {
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| &*n.0 == topic))?;
    if t.error_code != 0 {
        return None;
    }
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
    Some(PartitionState {
        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
        leader_epoch: p.leader_epoch,
        replicas: ids(&p.replica_nodes),
        isr: ids(&p.isr_nodes),
        offline_replicas: ids(&p.offline_replicas),
        error_code: p.error_code,
    })
}

/// The error code of the (single) partition in a Fetch response.
pub fn partition_error(response: &FetchResponse) -> Option<i16> {
    Some(response.responses.first()?.partitions.first()?.error_code)
}

/// The batches of a log, parsed from their headers: (base offset, last offset, leader
/// epoch, byte position), stopping at the first incomplete one.
pub fn batch_headers(log: &[u8]) -> Vec<(i64, i64, i32, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(header) = BatchHeader::parse(&log[at..]) {
        let size = header.size_bytes();
        if size < 12 || at + size > log.len() {
            break;
        }
        out.push((
            header.base_offset,
            header.last_offset(),
            header.partition_leader_epoch,
            at,
        ));
        at += size;
    }
    out
}

/// The byte position just past every batch that starts below `offset`; `None` if the log
/// does not hold every offset below it.
pub fn byte_position_of(log: &[u8], offset: i64) -> Option<usize> {
    if offset <= 0 {
        return Some(0);
    }
    let mut at = 0;
    loop {
        let header = BatchHeader::parse(&log[at..]).ok()?;
        let size = header.size_bytes();
        if size < 12 || at + size > log.len() {
            return None;
        }
        if header.base_offset >= offset {
            return Some(at);
        }
        at += size;
        if header.next_offset() >= offset {
            return Some(at);
        }
    }
}

/// A short description of a log's batches for failure messages.
pub fn describe_batches(log: &[u8]) -> String {
    let batches = batch_headers(log);
    let shown: Vec<String> = batches
        .iter()
        .rev()
        .take(8)
        .rev()
        .map(|(base, last, epoch, at)| format!("[{base}..={last} epoch {epoch} @{at}]"))
        .collect();
    format!(
        "{} batches, last: {}",
        batches.len(),
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(" ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::value_batch;

    #[test]
    fn byte_positions_follow_batch_boundaries() {
        // Offsets 0..3 and 3..5 (base offsets as a leader would stamp them).
        let first = value_batch(&["a", "b", "c"]).to_vec();
        let mut second = value_batch(&["d", "e"]).to_vec();
        second[..8].copy_from_slice(&3i64.to_be_bytes());
        let log = [first.clone(), second.clone()].concat();

        assert_eq!(byte_position_of(&log, 0), Some(0));
        assert_eq!(byte_position_of(&log, 3), Some(first.len()));
        // Inside a batch: the whole batch counts.
        assert_eq!(byte_position_of(&log, 1), Some(first.len()));
        assert_eq!(byte_position_of(&log, 5), Some(log.len()));
        assert_eq!(byte_position_of(&log, 6), None);
        assert_eq!(byte_position_of(&log[..log.len() - 1], 5), None);
        let batches = batch_headers(&log);
        assert_eq!(
            batches
                .iter()
                .map(|(base, last, _, at)| (*base, *last, *at))
                .collect::<Vec<_>>(),
            vec![(0, 2, 0), (3, 4, first.len())]
        );
    }
}
