//! `sluice-bench`: produce throughput and acknowledgement latency per ack mode.
//!
//! `sluice-bench produce` starts a release `sluiced` on loopback with a fresh data dir (or
//! uses `--bootstrap` to measure a running broker, e.g. Apache Kafka for comparison),
//! creates one topic per scenario, produces with Sluice's own client, and prints
//! records/s, MB/s and p50/p99/p99.9 ack latency for each combination of acks (0, 1, all),
//! record size and partition count. `--results FILE` writes the table as Markdown with the
//! command line and the machine description.
//!
//! `sluice-bench cluster` does the same against three `sluiced` on loopback forming one
//! cluster (`--controller-voters`), with topics of replication factor 3 and
//! `min.insync.replicas` 2. In the same invocation it measures one standalone `sluiced` at
//! acks=1 with 100-byte records, and reports the ratio of the cluster's acks=all figure to
//! it. `--results FILE` writes (or, on a rerun, replaces) one marked section of the file.
//!
//! `sluice-bench consume-cluster` starts the same cluster with each broker in its own rack
//! (`--rack rack-N`), produces one replicated topic at acks=all, waits until every replica
//! has the whole log, and times reading it back from offset 0: one consumer without a rack
//! (served by the leader), several concurrent consumers without a rack (all served by the
//! leaders), and as many consumers each in one broker's rack (KIP-392: the leader points
//! them at the in-sync replica in their rack). It reports aggregate records/s and MB/s and
//! the consumer bytes each broker served, from its `/metrics`.
//!
//! Modules:
//!
//! - `main.rs` (this file): the command line (`Cli`, `BenchCommand`), the settings every
//!   subcommand shares (`ProducerSettings`, `BrokerSettings`), and dispatch.
//! - [`process`]: starting and stopping `sluiced` (one standalone broker or a local
//!   cluster), and reading a running broker from outside: `/metrics` over HTTP, CPU time
//!   from /proc.
//! - [`produce`]: the `produce` subcommand, and the scenarios and timed producer run that
//!   every subcommand measures with (how latency is measured is described there).
//! - [`cluster`]: the `cluster` subcommand, and creating a replicated topic and waiting
//!   until its replicas are in sync.
//! - [`consume`]: the `consume-cluster` subcommand.
//! - [`scale`]: the `scale` subcommand: topic creation, Metadata, memory, open files,
//!   produce and restart time with thousands of partitions, Kafka beside Sluice.
//! - [`report`]: writing results as Markdown (RESULTS.md and its marked sections), and
//!   formatting figures shared by the console and the results file.

mod cluster;
mod consume;
mod group_consume;
mod groups;
mod process;
mod produce;
mod report;
mod scale;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::cluster::{cluster_bench, ClusterArgs};
use crate::consume::{consume_cluster_bench, ConsumeClusterArgs};
use crate::groups::{groups_bench, GroupsArgs};
use crate::produce::{produce_bench, ProduceArgs};
use crate::scale::{scale_bench, ScaleArgs};

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    about = "Sluice throughput and latency benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Produce with each ack mode, record size and partition count; print a table
    Produce(ProduceArgs),
    /// Start a cluster on loopback (3 brokers by default) and produce to replicated topics
    /// with each ack mode, record size and partition count; compare with one broker at acks=1
    Cluster(ClusterArgs),
    /// Start a cluster on loopback with one rack per broker, produce one replicated topic,
    /// and time consumers reading all of it: from the leader only, and spread over the
    /// in-sync followers by rack (KIP-392)
    ConsumeCluster(ConsumeClusterArgs),
    /// Create many topics (1,000 x 10 partitions by default) in batches and time it per
    /// tenth; Metadata for all of them; RSS and open files; produce across every partition;
    /// restart after SIGTERM and kill -9. `--kafka-bootstrap` measures Apache Kafka too
    Scale(ScaleArgs),
    /// Offset commits per second on one group coordinator (many committers, each its own
    /// group, commitSync-style); `--kafka-bootstrap` measures Apache Kafka too
    Groups(GroupsArgs),
}

/// Producer settings shared by every subcommand.
#[derive(Args, Clone)]
struct ProducerSettings {
    /// Producer linger in milliseconds
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch size limit in bytes
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Compression codec: none, gzip, snappy, lz4, zstd
    #[arg(long, default_value = "none")]
    compression: String,
}

/// How the harness starts `sluiced`.
#[derive(Args, Clone)]
struct BrokerSettings {
    /// The sluiced binary to start (default: target/release/sluiced beside this binary)
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Extra flags for every started sluiced, e.g. "--durability fsync"
    #[arg(long, allow_hyphen_values = true)]
    broker_args: Option<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        BenchCommand::Produce(args) => runtime.block_on(produce_bench(args)),
        BenchCommand::Cluster(args) => runtime.block_on(cluster_bench(args)),
        BenchCommand::ConsumeCluster(args) => runtime.block_on(consume_cluster_bench(args)),
        BenchCommand::Scale(args) => runtime.block_on(scale_bench(args)),
        BenchCommand::Groups(args) => runtime.block_on(groups_bench(args)),
    }
}
