//! Several `sluiced` processes forming one replicated cluster on 127.0.0.1, for the
//! `tests/cluster_*.rs` fault tests.
//!
//! What it owns:
//! - [`Cluster::start`]: ports for every node (Kafka listener, metrics, internal
//!   controller/Raft listener) picked before any node starts, the `--controller-voters`
//!   string naming every node's internal listener (or only the first
//!   [`ClusterOptions::voters`] nodes'; the others join as metadata learners), one data
//!   directory per node (or, with [`ClusterOptions::lab`], each node in its own network
//!   namespace on its lab address). All processes are spawned first and only then waited
//!   for (a node may answer only once a quorum runs); start-up is over when every node
//!   answers a Metadata request listing all brokers and DescribeQuorum names a leader. A node that exits
//!   during start-up (a port taken between our probe and its bind) makes the whole cluster
//!   start again on new ports.
//! - Faults on one node by id: [`Cluster::kill9`], [`Cluster::sigterm`],
//!   [`Cluster::sigstop`] / [`Cluster::sigcont`] (the node is alive but runs no code: cut
//!   off from everyone), [`Cluster::restart`] on the same ports and data directory, and
//!   [`Cluster::restart_all`] (every node at once); in a lab, [`Cluster::isolate`] /
//!   [`Cluster::heal`] and [`Cluster::set_link`] (`faults.rs`).
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
//!   gone are gone from every node (`disk.rs`).
//!
//! Produce, fetch and read-back helpers are in `traffic.rs`.
//!
//! Dropping a cluster kills the processes it started (and nothing else).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchResponse, MetadataResponse};

mod disk;
mod faults;
mod topics;
mod traffic;

pub use disk::{batch_headers, byte_position_of, describe_batches};

use crate::netns::NetLab;
use crate::raw::{self, RawConnection};
use crate::{free_port, Broker, BrokerOptions, POLL_INTERVAL};
use tempfile::TempDir;

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
    /// Run every node as `sluiced-faults` ([`crate::sluiced_faults_binary`]) in
    /// this mode, `lose` or `tear`: a node's unsynced writes die with its process, so
    /// [`Cluster::kill9`] cuts its power, and [`Cluster::fail_fsyncs`] can make its fsyncs
    /// fail. The torn prefixes' seed is `power_loss_seed` plus the node id.
    pub power_loss: Option<&'static str>,
    pub power_loss_seed: u64,
    /// Start every node with libfaketime preloaded ([`crate::faketime_library`]), its wall
    /// clock's offset read from a file, so [`Cluster::set_clock_offset`] can make it jump
    /// (the monotonic clock is left alone, as when NTP steps a real clock).
    pub clock_jumps: bool,
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
    /// Where the fsync-failure trigger files of `sluiced-faults` nodes
    /// ([`Cluster::fail_fsyncs`]) and the clock offset files ([`Cluster::set_clock_offset`])
    /// go; `None` unless [`ClusterOptions::power_loss`] or `clock_jumps` is set.
    faults_dir: Option<TempDir>,
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
        let faults_dir = match options.power_loss.is_some() || options.clock_jumps {
            true => Some(TempDir::new().map_err(|e| (format!("faults dir: {e}"), false))?),
            false => None,
        };
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
            let mut env = options.env.clone();
            if let Some(mode) = options.power_loss {
                let seed = options.power_loss_seed + i as u64 + 1;
                env.push(("SLUICE_POWER_LOSS".into(), mode.into()));
                env.push(("SLUICE_POWER_LOSS_SEED".into(), seed.to_string()));
            }
            if let (Some(dir), Some(_)) = (&faults_dir, options.power_loss) {
                let trigger = faults::fail_fsync_trigger(dir.path(), i as i32 + 1);
                env.push((
                    "SLUICE_FAIL_FSYNC_FILE".into(),
                    trigger.display().to_string(),
                ));
            }
            if let (Some(dir), true) = (&faults_dir, options.clock_jumps) {
                env.extend(faults::clock_env(dir.path(), i as i32 + 1).map_err(|e| (e, false))?);
            }
            let broker = Broker::spawn_unready(BrokerOptions {
                data_dir: None,
                extra_args,
                env,
                node_id: Some(i as i32 + 1),
                listen: Some(*listen),
                metrics_listen: Some(*metrics),
                netns: options.lab.as_ref().map(|lab| lab.node_ns(i)),
                binary: options.power_loss.map(|_| crate::sluiced_faults_binary()),
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
            faults_dir,
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
