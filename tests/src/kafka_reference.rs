//! A real Apache Kafka 4.1.1 broker (KRaft, broker and controller in one JVM) for tests
//! that compare Sluice with it: started from the jars `tests/java` provisions (Kafka's core
//! jar and its dependencies), on free loopback ports and a fresh temporary directory, and
//! killed (by its PID) when dropped. The configuration matches
//! `scripts/kafka-reference.sh`: one node, one offsets partition, no rebalance delay.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{free_port, java_classpath};

/// How long the JVM may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(120);

/// A running reference broker.
pub struct KafkaReference {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl KafkaReference {
    /// Format a fresh storage directory and start the broker; panics (with its log) if it
    /// does not accept connections within two minutes.
    pub fn start() -> KafkaReference {
        let dir = tempfile::tempdir().unwrap();
        let (port, controller_port) = (free_port(), free_port());
        let props = dir.path().join("server.properties");
        std::fs::write(&props, properties(dir.path(), port, controller_port)).unwrap();
        format_storage(&props, "q1Sh-9_ISia_zwGINzRvyQ");
        let log = std::fs::File::create(dir.path().join("kafka.log")).unwrap();
        let child = kafka_java(HEAP_MAX)
            .arg("kafka.Kafka")
            .arg(&props)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut reference = KafkaReference { child, port, dir };
        reference.wait_accepting();
        reference
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The last `bytes` of its log.
    pub fn log_tail(&self, bytes: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default();
        let start = text.len().saturating_sub(bytes);
        text.get(start..).unwrap_or(&text).to_string()
    }

    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the reference broker exited ({status}) during start-up:\n{}",
                    self.log_tail(4096)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the reference broker did not accept connections in {START_DEADLINE:?}:\n{}",
                self.log_tail(4096)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for KafkaReference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference broker's heap limit.
const HEAP_MAX: &str = "-Xmx512m";

/// `java` with the Kafka jars on its class path, a small heap up to `heap_max` (`-Xmx...`)
/// and quiet logging: the command line of every Kafka JVM the tests start.
pub(crate) fn kafka_java(heap_max: &str) -> Command {
    let mut java = Command::new("java");
    java.args([
        "-Xms128m",
        heap_max,
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
    ])
    .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
    .arg("-cp")
    .arg(java_classpath());
    java
}

/// Format a KRaft node's storage for `props` (its `log.dirs`) with `cluster_id`.
pub(crate) fn format_storage(props: &Path, cluster_id: &str) {
    let format = kafka_java(HEAP_MAX)
        .args(["kafka.tools.StorageTool", "format", "--config"])
        .arg(props)
        .args(["--cluster-id", cluster_id])
        .output()
        .expect("run kafka's StorageTool");
    assert!(
        format.status.success(),
        "formatting kafka storage failed: {}",
        String::from_utf8_lossy(&format.stderr)
    );
}

fn properties(dir: &Path, port: u16, controller_port: u16) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
        dir.join("data").display()
    )
}
