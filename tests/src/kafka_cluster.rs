//! A cluster of real Apache Kafka 4.1.1 nodes (KRaft; each node a broker and a controller
//! voter in one JVM) on loopback, for running the fault harness against Kafka beside
//! Sluice (`tests/tests/chaos_kafka.rs`). Started from the jars `tests/java` provisions, on
//! free ports and fresh temporary directories; every process is killed (by its PID) when the
//! cluster is dropped. Failure detection is set as fast as the Sluice runs'
//! (`ClusterOptions::fast(2_000, 2_000)`): 2 s broker sessions, 2 s replica lag.
//!
//! Process faults (`kill -9`, restart, SIGSTOP/SIGCONT, SIGTERM) anywhere; started in a
//! network lab ([`KafkaCluster::start_in`]) each node runs in its namespace on its lab
//! address, so the lab's faults (isolation, cut links, loss, delay, duplication) hit Kafka as
//! they hit Sluice. Power cuts and clock jumps are Sluice-only (they need `sluiced-faults`
//! and its libfaketime set-up).

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, CreateTopicsResponse};
use tempfile::TempDir;

use crate::cluster::{partition_in, PartitionState};
use crate::kafka_reference::{format_storage, kafka_java};
use crate::netns::{command_in, LabNodes, NetLab};
use crate::raw::{self, fetch_request, RawConnection};
use crate::{free_port, read_tail};

/// How long a JVM may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// The cluster id every node's storage is formatted with.
const CLUSTER_ID: &str = "c2x1Y2UtY2hhb3MtMDAx";
const TOPIC_ALREADY_EXISTS: i16 = 36;

struct Node {
    id: i32,
    /// The address it listens on: 127.0.0.1, or its lab address.
    host: String,
    port: u16,
    child: Option<Child>,
    stopped: bool,
    props: PathBuf,
    log: PathBuf,
}

/// A running Kafka cluster; dropping it kills its processes.
pub struct KafkaCluster {
    nodes: Vec<Node>,
    lab: Option<Arc<NetLab>>,
    _dir: TempDir,
}

impl KafkaCluster {
    /// Format and start `n` nodes, and wait until every node accepts connections and
    /// Metadata lists all of them.
    pub fn start(n: usize) -> KafkaCluster {
        KafkaCluster::start_in(n, None)
    }

    /// [`start`](Self::start), node `i` in namespace `i - 1` of `lab` when given (ports
    /// 9092 and 9093 on its lab address), on 127.0.0.1 otherwise.
    pub fn start_in(n: usize, lab: Option<Arc<NetLab>>) -> KafkaCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listeners: Vec<(String, u16, u16)> = (0..n)
            .map(|i| match &lab {
                Some(lab) => (lab.node_addr(i).to_string(), 9092, 9093),
                None => ("127.0.0.1".to_string(), free_port(), free_port()),
            })
            .collect();
        let voters = listeners
            .iter()
            .enumerate()
            .map(|(i, (host, _, controller))| format!("{}@{host}:{controller}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (host, port, controller_port)) in listeners.into_iter().enumerate() {
            let id = i as i32 + 1;
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).expect("node directory");
            let props = node_dir.join("server.properties");
            let text = properties(&node_dir, id, &host, (port, controller_port), &voters);
            std::fs::write(&props, text).expect("server.properties");
            format_storage(&props, CLUSTER_ID);
            nodes.push(Node {
                id,
                host,
                port,
                child: None,
                stopped: false,
                props,
                log: node_dir.join("kafka.log"),
            });
        }
        let mut cluster = KafkaCluster {
            nodes,
            lab,
            _dir: dir,
        };
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        for id in cluster.ids() {
            cluster.wait_accepting(id);
        }
        cluster.wait_for_brokers();
        cluster
    }

    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_ref(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Running and not stopped.
    pub fn live_ids(&mut self) -> Vec<i32> {
        let mut live = Vec::new();
        for node in &mut self.nodes {
            let running = node
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            if running && !node.stopped {
                live.push(node.id);
            }
        }
        live
    }

    pub fn connect(&self, id: i32) -> std::io::Result<RawConnection> {
        RawConnection::connect_timeout(
            &format!("{}:{}", self.node_ref(id).host, self.node_ref(id).port),
            Duration::from_secs(2),
        )
    }

    /// The nodes by id in the cluster's network lab, if it runs in one.
    pub fn lab_nodes(&self) -> Option<LabNodes<'_>> {
        self.lab.as_deref().map(|lab| LabNodes {
            lab,
            ids: self.ids(),
        })
    }

    fn spawn(&mut self, id: i32) {
        let namespace = self.lab.as_ref().map(|lab| lab.node_ns(id as usize - 1));
        let node = self.node(id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("kafka.log");
        let java = kafka_java(HEAP_MAX);
        let mut command = command_in(namespace.as_deref(), java.get_program());
        command
            .args(java.get_args())
            .arg("kafka.Kafka")
            .arg(&node.props);
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start java");
        node.child = Some(child);
        node.stopped = false;
    }

    fn wait_accepting(&mut self, id: i32) {
        let deadline = Instant::now() + START_DEADLINE;
        let (host, port) = (self.node(id).host.clone(), self.node(id).port);
        while TcpStream::connect((host.as_str(), port)).is_err() {
            let exited = self
                .node(id)
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "kafka node {id} exited ({status}) during start-up\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "kafka node {id} did not accept connections in {START_DEADLINE:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for_brokers(&mut self) {
        let expected = self.nodes.len();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let listed = self.live_ids().into_iter().all(|id| {
                self.connect(id)
                    .and_then(|mut conn| raw::metadata(&mut conn, Some(&[])))
                    .is_ok_and(|m| m.brokers.len() == expected)
            });
            if listed && self.controller_id().is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the kafka cluster did not form\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill9(&mut self, id: i32) {
        let node = self.node(id);
        if let Some(child) = node.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.stopped = false;
    }

    fn signal(&mut self, id: i32, signal: &str) {
        let node = self.node(id);
        if let Some(child) = &node.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    pub fn sigstop(&mut self, id: i32) {
        self.signal(id, "-STOP");
        self.node(id).stopped = true;
    }

    pub fn sigcont(&mut self, id: i32) {
        self.signal(id, "-CONT");
        self.node(id).stopped = false;
    }

    pub fn sigterm(&mut self, id: i32) {
        self.signal(id, "-TERM");
    }

    /// Wait for node `id`'s process to exit (panics with the logs after `timeout`).
    pub fn wait_exit(&mut self, id: i32, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .node(id)
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = status {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kafka node {id} did not exit within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start node `id` again (killing it first if it runs) and wait until it accepts
    /// connections.
    pub fn restart(&mut self, id: i32) {
        self.kill9(id);
        if let Ok(mut log) = File::options().append(true).open(&self.node(id).log) {
            let _ = writeln!(log, "[sluice-tests] ---- restart ----");
        }
        self.spawn(id);
        self.wait_accepting(id);
    }

    /// Restart every node (killing the running ones) and wait until the cluster forms.
    pub fn restart_all(&mut self) {
        for id in self.ids() {
            self.kill9(id);
            self.spawn(id);
        }
        for id in self.ids() {
            self.wait_accepting(id);
        }
        self.wait_for_brokers();
    }

    /// The active controller, as DescribeQuorum on the first live node that answers names it.
    pub fn controller_id(&mut self) -> Option<i32> {
        self.live_ids().into_iter().find_map(|id| {
            let mut conn = self.connect(id).ok()?;
            raw::quorum_leader(&mut conn)
        })
    }

    /// A partition as the first live node that answers Metadata describes it.
    pub fn partition_state(&mut self, topic: &str, partition: i32) -> Option<PartitionState> {
        self.live_ids().into_iter().find_map(|id| {
            let mut conn = self.connect(id).ok()?;
            let m = raw::metadata(&mut conn, Some(&[topic])).ok()?;
            partition_in(&m, topic, partition)
        })
    }

    /// The high watermark the partition's leader reports.
    pub fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let leader = self.partition_state(topic, partition)?.leader?;
        let mut conn = self.connect(leader).ok()?;
        let response = conn
            .request::<_, kafka_protocol::messages::FetchResponse>(
                ApiKey::Fetch,
                raw::FETCH_VERSION,
                &fetch_request(topic, partition, 0, 1024),
            )
            .ok()?;
        let p = response.responses.first()?.partitions.first()?;
        (p.error_code == 0).then_some(p.high_watermark)
    }

    /// Create a topic (CreateTopics to a live node, retried) and wait until every partition
    /// has a leader and a full ISR.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) {
        let request = raw::create_topics_request(name, partitions, replication_factor, configs);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        'created: loop {
            for id in self.live_ids() {
                let answer = self.connect(id).and_then(|mut conn| {
                    conn.set_read_timeout(Duration::from_secs(35))?;
                    conn.request::<_, CreateTopicsResponse>(ApiKey::CreateTopics, 5, &request)
                });
                match answer.map(|r| r.topics.first().map(|t| t.error_code)) {
                    Ok(Some(0 | TOPIC_ALREADY_EXISTS)) => break 'created,
                    other => last = format!("node {id}: {other:?}"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "creating {name} on kafka: {last}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        loop {
            let ready = (0..partitions).all(|p| {
                self.partition_state(name, p).is_some_and(|s| {
                    s.leader.is_some() && s.isr.len() == usize::from(replication_factor as u16)
                })
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kafka topic {name}: partitions without a leader and a full ISR\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The tails of every node's log.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- kafka node {} log ({}) ---\n{}\n",
                    n.id,
                    n.log.display(),
                    read_tail(&n.log, 16 * 1024)
                )
            })
            .collect()
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if node.stopped {
                    let _ = Command::new("kill")
                        .args(["-CONT", &child.id().to_string()])
                        .status();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Each node's heap limit (three nodes and a producer JVM share the machine).
const HEAP_MAX: &str = "-Xmx384m";

fn properties(
    dir: &Path,
    id: i32,
    host: &str,
    (port, controller_port): (u16, u16),
    voters: &str,
) -> String {
    format!(
        "process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
broker.heartbeat.interval.ms=200
broker.session.timeout.ms=2000
replica.lag.time.max.ms=2000
",
        dir.join("data").display()
    )
}
