//! Shared set-up and checks of the follower-read (KIP-392) tests: three brokers in racks
//! `rack-1..3`, a one-partition topic with replication factor 3, records produced by the
//! test, a follower's rack as clients learn it from Metadata, and each broker's
//! consumer-fetch bytes before and after an external consumer reads.

use std::process::Command;
use std::time::Duration;

use crate::raw::{http_get, metric_sum};
use crate::{run_program, Cluster, ClusterOptions, ProgramOutput};

/// Bytes each broker served to consumers (as leader or follower).
pub const CONSUMER_BYTES: &str = "sluice_fetch_bytes_out_total{fetcher=\"consumer\"}";

/// The rack broker `id` is started in.
pub fn rack_of(id: i32) -> String {
    format!("rack-{id}")
}

/// `n` brokers, broker `i` in `rack-i`, with fast failure detection.
pub fn racked_cluster(n: i32) -> Cluster {
    Cluster::start(
        n as usize,
        ClusterOptions {
            racks: (1..=n).map(rack_of).collect(),
            ..ClusterOptions::fast(2_000, 2_000)
        },
    )
}

/// Broker `node`'s consumer-fetch bytes; panics if its metrics cannot be read.
pub fn consumer_bytes(cluster: &Cluster, node: i32) -> f64 {
    http_get(&cluster.broker(node).metrics_address(), "/metrics")
        .map(|text| metric_sum(&text, CONSUMER_BYTES))
        .unwrap_or_else(|e| panic!("metrics of node {node}: {e}"))
}

/// A `SUMMARY` line's field `name=value`.
pub fn summary_field<'a>(summary: &'a str, name: &str) -> Option<&'a str> {
    summary
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}

/// A topic ready for a rack-aware consumer, and what the checks compare against.
#[derive(Debug, Clone)]
pub struct RackReadTopic {
    pub leader: i32,
    /// The follower whose rack the consumer is given.
    pub follower: i32,
    /// That follower's rack, as Metadata reports it.
    pub rack: String,
    /// Records produced: record `i` is `value(i)` at offset `i`.
    pub count: usize,
    /// Size of the leader's log holding them.
    pub records_bytes: f64,
    /// Every node's consumer bytes before the read, by node id order.
    pub before: Vec<f64>,
}

/// Create `topic` (RF 3, min ISR 2), produce `batches` acked batches of `per_batch`
/// records whose values are `value(i)`, each at offset `i`, and wait until they are
/// committed.
pub fn prepare(
    cluster: &mut Cluster,
    topic: &str,
    batches: usize,
    per_batch: usize,
    value: impl Fn(usize) -> String,
) -> RackReadTopic {
    let state = cluster.create_one_partition_topic(topic, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    let follower = state.followers()[0];

    // The follower's rack, as a client learns it: from Metadata.
    let metadata = cluster
        .metadata_from(leader, Some(&[topic]))
        .expect("metadata");
    let rack = metadata
        .brokers
        .iter()
        .find(|b| b.node_id.0 == follower)
        .and_then(|b| b.rack.as_ref())
        .map(|r| r.to_string())
        .unwrap_or_else(|| panic!("broker {follower} has no rack in Metadata: {metadata:?}"));
    assert_eq!(rack, rack_of(follower));

    let count = batches * per_batch;
    for b in 0..batches {
        let values: Vec<String> = (b * per_batch..(b + 1) * per_batch).map(&value).collect();
        let batch = cluster.produce_acked_batch(topic, 0, values);
        assert_eq!(
            batch.base_offset,
            (b * per_batch) as i64,
            "record i at offset i (no retried duplicate)"
        );
    }
    cluster.wait_for_high_watermark(topic, 0, count as i64, Duration::from_secs(30));
    let records_bytes = cluster.log_bytes(leader, topic, 0).len() as f64;
    let before = cluster
        .ids()
        .into_iter()
        .map(|id| consumer_bytes(cluster, id))
        .collect();
    RackReadTopic {
        leader,
        follower,
        rack,
        count,
        records_bytes,
        before,
    }
}

impl RackReadTopic {
    /// Run the interop `program` (`command`), which reads this topic and prints one
    /// `SUMMARY ...` line; with `show`, its whole output is printed too. Returns the output
    /// and that line, or panics with the output, the placement and the cluster's logs.
    pub fn run_reader(
        &self,
        cluster: &Cluster,
        program: &str,
        command: &mut Command,
        timeout: Duration,
        show: bool,
    ) -> (ProgramOutput, String) {
        let output = run_program(command, None, timeout);
        if show {
            eprintln!("{}", output.describe());
        }
        let stdout = output.stdout_lossy();
        match stdout.lines().find(|l| l.starts_with("SUMMARY")) {
            Some(summary) if output.success() => {
                let summary = summary.to_string();
                (output, summary)
            }
            _ => panic!(
                "{program} failed (leader {}, follower {} in {})\n{}\n{}",
                self.leader,
                self.follower,
                self.rack,
                output.describe(),
                cluster.logs()
            ),
        }
    }

    /// After the consumer's read: the follower in its rack served every record, the leader
    /// at most a tenth (it only redirected). Returns each node's growth (by node id order)
    /// and a description for further assertions.
    pub fn assert_read_from_follower(
        &self,
        cluster: &Cluster,
        summary: &str,
    ) -> (Vec<f64>, String) {
        let grown: Vec<f64> = cluster
            .ids()
            .into_iter()
            .zip(&self.before)
            .map(|(id, before)| consumer_bytes(cluster, id) - before)
            .collect();
        let grown_on = |id: i32| grown[(id - 1) as usize];
        let (leader, follower) = (self.leader, self.follower);
        let context = format!(
            "leader {leader}, follower {follower} ({}); records {} bytes; consumer bytes served per node {grown:?}; {summary}",
            self.rack, self.records_bytes
        );
        eprintln!("{context}");
        assert!(
            grown_on(follower) >= self.records_bytes,
            "the follower in the consumer's rack served every record: {context}\n{}",
            cluster.logs()
        );
        assert!(
            grown_on(leader) < self.records_bytes / 10.0,
            "the leader only redirected the consumer: {context}\n{}",
            cluster.logs()
        );
        (grown, context)
    }
}
