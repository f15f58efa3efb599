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
//! Latency is measured per record from `send` to its delivery future resolving, observed
//! by a collector task that awaits futures in send order.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use sluice_client::{
    Acks, Admin, Cluster, ClusterConfig, Compression, Consumer, ConsumerConfig, Producer,
    ProducerConfig, ProducerRecord, SeekTo,
};
use tokio::sync::mpsc;

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

#[derive(Parser, Clone)]
struct ProduceArgs {
    /// Records per scenario
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Record value sizes in bytes, comma separated
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Ack modes, comma separated: 0, 1, all
    #[arg(long, value_delimiter = ',', default_value = "0,1,all")]
    acks: Vec<String>,
    /// Partition counts, comma separated
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    partitions: Vec<i32>,
    #[command(flatten)]
    producer: ProducerSettings,
    /// Measure an already running broker at this address instead of starting sluiced
    #[arg(long)]
    bootstrap: Option<String>,
    #[command(flatten)]
    broker: BrokerSettings,
    /// Write the results table (Markdown) to this file
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Parser, Clone)]
struct ClusterArgs {
    /// Brokers in the cluster (each is also a controller voter)
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Replication factor of every topic
    #[arg(long, default_value_t = 3)]
    replication_factor: i16,
    /// min.insync.replicas of every topic
    #[arg(long, default_value_t = 2)]
    min_insync_replicas: i16,
    /// Records per scenario for record sizes below 1 KiB (and for the single-broker baseline)
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    /// Records per scenario for record sizes of 1 KiB and more
    #[arg(long, default_value_t = 100_000)]
    records_large: u64,
    /// Record value sizes in bytes, comma separated
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Ack modes, comma separated: 0, 1, all
    #[arg(long, value_delimiter = ',', default_value = "0,1,all")]
    acks: Vec<String>,
    /// Partition counts, comma separated
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    partitions: Vec<i32>,
    /// Skip the single-broker acks=1 100-byte baseline (and so the ratio)
    #[arg(long)]
    no_baseline: bool,
    /// Seconds to wait for the cluster to form, and for each topic's replicas to be in sync
    #[arg(long, default_value_t = 60)]
    startup_timeout_secs: u64,
    #[command(flatten)]
    producer: ProducerSettings,
    #[command(flatten)]
    broker: BrokerSettings,
    /// Write the results (Markdown) to this file, replacing an earlier cluster section
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Parser, Clone)]
struct ConsumeClusterArgs {
    /// Brokers in the cluster (each a controller voter); broker N is in rack `rack-N`
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Replication factor of the topic
    #[arg(long, default_value_t = 3)]
    replication_factor: i16,
    /// min.insync.replicas of the topic
    #[arg(long, default_value_t = 2)]
    min_insync_replicas: i16,
    /// Records produced (acks=all) and then read by every consumer
    #[arg(long, default_value_t = 3_000_000)]
    records: u64,
    /// Record value size in bytes
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partition counts, comma separated: one topic (and one set of scenarios) per count
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    partitions: Vec<i32>,
    /// Concurrent consumers in the multi-consumer scenarios; consumer i (from 1) of the
    /// rack scenario is in broker i's rack (round robin past the broker count)
    #[arg(long, default_value_t = 3)]
    consumers: usize,
    /// Timed runs of every scenario (interleaved); the table shows the median run
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Consumer bytes per partition per Fetch
    #[arg(long, default_value_t = 1024 * 1024)]
    partition_max_bytes: i32,
    /// Consumer bytes per Fetch response
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    fetch_max_bytes: i32,
    /// Seconds to wait for the cluster to form, the topic's replicas to be in sync, and
    /// every replica to hold the whole log
    #[arg(long, default_value_t = 60)]
    startup_timeout_secs: u64,
    /// Seconds one consumer may take to read the topic
    #[arg(long, default_value_t = 300)]
    consume_timeout_secs: u64,
    #[command(flatten)]
    producer: ProducerSettings,
    #[command(flatten)]
    broker: BrokerSettings,
    /// Write the results (Markdown) to this file, replacing an earlier consume-cluster section
    #[arg(long)]
    results: Option<PathBuf>,
}

/// Record size from which `cluster --records-large` applies.
const LARGE_RECORD_BYTES: usize = 1024;
/// Record size of the single-broker baseline the cluster's acks=all figure is compared with.
const BASELINE_RECORD_BYTES: usize = 100;
/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

struct Scenario {
    acks: Acks,
    acks_label: String,
    size: usize,
    partitions: i32,
}

struct Outcome {
    records: u64,
    records_per_second: f64,
    megabytes_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
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
    }
}

/// Write back dirty pages before a scenario, so that it does not pay for the writeback of
/// the one before it (a 1 KiB scenario leaves gigabytes dirty, and the kernel throttles
/// writers while it flushes them).
fn settle_page_cache() {
    if let Err(error) = std::process::Command::new("sync").status() {
        eprintln!("sync failed ({error}); scenarios may pay for each other's writeback");
    }
}

/// Every combination of ack mode, size and partition count, in that nesting order.
fn scenarios(acks: &[String], sizes: &[usize], partitions: &[i32]) -> Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    for acks_label in acks {
        let acks = Acks::parse(acks_label).with_context(|| format!("bad acks '{acks_label}'"))?;
        for &size in sizes {
            for &partitions in partitions {
                scenarios.push(Scenario {
                    acks,
                    acks_label: acks_label.clone(),
                    size,
                    partitions,
                });
            }
        }
    }
    Ok(scenarios)
}

fn print_outcome(setup: &str, scenario: &Scenario, outcome: &Outcome) {
    println!(
        "{setup}acks={:<3} size={:>5}B partitions={:<2} {:>12.0} records/s {:>8.1} MB/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms",
        scenario.acks_label,
        scenario.size,
        scenario.partitions,
        outcome.records_per_second,
        outcome.megabytes_per_second,
        outcome.p50_ms,
        outcome.p99_ms,
        outcome.p999_ms
    );
}

async fn produce_bench(args: ProduceArgs) -> Result<()> {
    let compression = parse_compression(&args.producer)?;
    let scenarios = scenarios(&args.acks, &args.sizes, &args.partitions)?;

    let data_dir = tempfile::tempdir()?;
    let mut broker = None;
    let bootstrap = match &args.bootstrap {
        Some(b) => b.clone(),
        None => {
            let started = start_single_broker(&args.broker, data_dir.path())?;
            let bootstrap = started.bootstrap.clone();
            broker = Some(started);
            bootstrap
        }
    };

    let mut rows = Vec::new();
    let run_id = std::process::id();
    for scenario in &scenarios {
        settle_page_cache();
        let topic = format!(
            "bench-{run_id}-acks{}-{}b-{}p",
            scenario.acks_label, scenario.size, scenario.partitions
        );
        let admin = Admin::new(&bootstrap).await?;
        admin
            .create_topic(&topic, scenario.partitions, 1, Default::default())
            .await
            .with_context(|| format!("creating {topic}"))?;
        let outcome = run_scenario(
            &args.producer,
            args.records,
            &bootstrap,
            &topic,
            scenario,
            compression,
        )
        .await?;
        print_outcome("", scenario, &outcome);
        rows.push((scenario, outcome));
    }

    if let Some(mut broker) = broker {
        broker.stop();
    }
    if let Some(path) = &args.results {
        write_results(path, &args, &rows)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn cluster_bench(args: ClusterArgs) -> Result<()> {
    let compression = parse_compression(&args.producer)?;
    if args.brokers < 1 {
        bail!("--brokers must be at least 1");
    }
    if args.replication_factor < 1 || i32::from(args.replication_factor) > args.brokers {
        bail!(
            "--replication-factor {} needs 1..={} (the number of --brokers)",
            args.replication_factor,
            args.brokers
        );
    }
    if args.min_insync_replicas < 1 || args.min_insync_replicas > args.replication_factor {
        bail!(
            "--min-insync-replicas {} needs 1..={} (the replication factor)",
            args.min_insync_replicas,
            args.replication_factor
        );
    }
    let scenarios = scenarios(&args.acks, &args.sizes, &args.partitions)?;
    let binary = broker_binary(&args.broker)?;
    check_cluster_support(&binary)?;
    let timeout = Duration::from_secs(args.startup_timeout_secs);
    let run_id = std::process::id();

    // The baseline runs first, alone on the machine, so the cluster's brokers do not
    // compete with it for the cores.
    let mut baseline = Vec::new();
    if !args.no_baseline {
        let data_dir = tempfile::tempdir()?;
        let mut broker = start_single_broker(&args.broker, data_dir.path())?;
        for &partitions in &args.partitions {
            let scenario = Scenario {
                acks: Acks::Leader,
                acks_label: "1".to_string(),
                size: BASELINE_RECORD_BYTES,
                partitions,
            };
            let topic =
                format!("bench-{run_id}-single-acks1-{BASELINE_RECORD_BYTES}b-{partitions}p");
            let admin = Admin::new(&broker.bootstrap).await?;
            admin
                .create_topic(&topic, partitions, 1, &[])
                .await
                .with_context(|| format!("creating {topic}"))?;
            let outcome = run_scenario(
                &args.producer,
                args.records,
                &broker.bootstrap,
                &topic,
                &scenario,
                compression,
            )
            .await?;
            print_outcome("1 broker  RF 1  ", &scenario, &outcome);
            baseline.push((scenario, outcome));
        }
        broker.stop();
    }

    let data_dir = tempfile::tempdir()?;
    let mut cluster = start_cluster(
        &binary,
        &args.broker,
        args.brokers,
        data_dir.path(),
        timeout,
        false,
    )
    .await?;
    println!(
        "{} brokers formed a cluster: {}",
        args.brokers,
        cluster.bootstrap()
    );
    let rows = match run_cluster_scenarios(&args, &cluster, &scenarios, compression, timeout).await
    {
        Ok(rows) => rows,
        Err(error) => return Err(cluster.with_log_tails(error)),
    };
    cluster.stop();

    let ratios = ratios(&baseline, &rows);
    for ratio in &ratios {
        println!(
            "partitions={:<2} acks=all RF {} / single-broker acks=1 ({BASELINE_RECORD_BYTES} B records): {:.0} / {:.0} records/s = {:.2}",
            ratio.partitions,
            args.replication_factor,
            ratio.replicated,
            ratio.single,
            ratio.replicated / ratio.single
        );
    }
    if let Some(path) = &args.results {
        write_cluster_results(path, &args, &baseline, &rows, &ratios)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn run_cluster_scenarios<'a>(
    args: &ClusterArgs,
    cluster: &LocalCluster,
    scenarios: &'a [Scenario],
    compression: Compression,
    timeout: Duration,
) -> Result<Vec<(&'a Scenario, Outcome)>> {
    let bootstrap = cluster.bootstrap();
    let run_id = std::process::id();
    let configs = vec![(
        "min.insync.replicas".to_string(),
        args.min_insync_replicas.to_string(),
    )];
    let setup = format!("{} brokers RF {} ", args.brokers, args.replication_factor);
    let mut rows = Vec::new();
    for scenario in scenarios {
        settle_page_cache();
        let topic = format!(
            "bench-{run_id}-rf{}-acks{}-{}b-{}p",
            args.replication_factor, scenario.acks_label, scenario.size, scenario.partitions
        );
        let leaders = create_replicated_topic(
            &bootstrap,
            &topic,
            scenario.partitions,
            args.replication_factor,
            &configs,
            timeout,
        )
        .await?;
        let records = if scenario.size >= LARGE_RECORD_BYTES {
            args.records_large
        } else {
            args.records
        };
        let outcome = run_scenario(
            &args.producer,
            records,
            &bootstrap,
            &topic,
            scenario,
            compression,
        )
        .await?;
        print_outcome(&setup, scenario, &outcome);
        println!("    partition leaders by broker: {leaders}");
        rows.push((scenario, outcome));
        // Each scenario starts from the same state: no earlier topics for the followers to
        // keep fetching, no earlier data on disk.
        if let Err(error) = Admin::new(&bootstrap).await?.delete_topic(&topic).await {
            eprintln!(
                "deleting {topic} failed ({error}); later scenarios share the cluster with it"
            );
        }
    }
    Ok(rows)
}

/// Create a topic with `replication_factor` replicas and wait until every partition has a
/// leader and all its replicas in sync, both bounded by `timeout`. Returns how many
/// partitions each broker leads, for the log.
async fn create_replicated_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let admin = Admin::new(bootstrap).await?;
    loop {
        match admin
            .create_topic(topic, partitions, replication_factor, configs)
            .await
        {
            Ok(()) => break,
            // An earlier attempt whose answer was lost created it.
            Err(error) if error.kafka_code() == Some(TOPIC_ALREADY_EXISTS) => break,
            Err(error) if error.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("creating {topic}")),
        }
    }
    let replicas = usize::try_from(replication_factor).unwrap_or(0);
    loop {
        let last_seen = match admin.cluster().refresh().await {
            Ok(metadata) => match metadata.topic(topic) {
                Some(info) => {
                    let ready = info.partition_count() == partitions
                        && info.partitions.iter().all(|p| {
                            p.leader.is_some()
                                && p.replicas.len() == replicas
                                && p.isr.len() == replicas
                        });
                    if ready {
                        let mut led = std::collections::BTreeMap::<i32, u32>::new();
                        for p in &info.partitions {
                            *led.entry(p.leader.unwrap_or(-1)).or_default() += 1;
                        }
                        return Ok(led
                            .iter()
                            .map(|(broker, count)| format!("{broker}: {count}"))
                            .collect::<Vec<_>>()
                            .join(", "));
                    }
                    info.partitions
                        .iter()
                        .map(|p| {
                            format!(
                                "partition {} leader {:?} replicas {:?} isr {:?}",
                                p.partition, p.leader, p.replicas, p.isr
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                }
                None => "no metadata for the topic".to_string(),
            },
            Err(error) => format!("metadata request failed: {error}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{topic}: not every partition has a leader and {replicas} in-sync replicas after {:?} (last seen: {last_seen})",
                timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cluster's acks=all figure beside the single broker's acks=1 figure, for one
/// partition count.
struct Ratio {
    partitions: i32,
    single: f64,
    replicated: f64,
}

fn ratios(baseline: &[(Scenario, Outcome)], rows: &[(&Scenario, Outcome)]) -> Vec<Ratio> {
    baseline
        .iter()
        .filter_map(|(base, base_outcome)| {
            rows.iter()
                .find(|(s, _)| {
                    s.acks == Acks::All && s.size == base.size && s.partitions == base.partitions
                })
                .map(|(_, outcome)| Ratio {
                    partitions: base.partitions,
                    single: base_outcome.records_per_second,
                    replicated: outcome.records_per_second,
                })
        })
        .collect()
}

/// The rack of broker `id` in a cluster started with racks.
fn rack_of(id: i32) -> String {
    format!("rack-{id}")
}

/// One way of reading the topic back.
struct ConsumeScenario {
    /// Short name for the table: (a), (b), (c).
    label: &'static str,
    consumers: usize,
    /// Whether consumer i (from 1) has `client_rack` = the rack of broker i.
    racks: bool,
}

/// One timed run of a [`ConsumeScenario`].
struct ConsumeRun {
    /// Records read, by all consumers together.
    records: u64,
    /// Record value bytes read, by all consumers together.
    value_bytes: u64,
    /// From the moment all consumers were set up until the last one reached the end.
    seconds: f64,
    /// Consumer bytes each broker served during the run (its `/metrics` before and after),
    /// in broker order.
    served: Vec<f64>,
    /// CPU seconds used during the run by this process (the consumers) and by each broker,
    /// in that order, from /proc; None where it could not be read.
    cpu: Vec<Option<f64>>,
    /// The brokers each consumer read from at the end, per consumer.
    read_from: Vec<BTreeSet<i32>>,
}

impl ConsumeRun {
    fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    fn megabytes_per_second(&self) -> f64 {
        self.value_bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// A scenario's runs for one partition count.
struct ConsumeRow {
    partitions: i32,
    scenario_index: usize,
    runs: Vec<ConsumeRun>,
}

impl ConsumeRow {
    fn median(&self) -> &ConsumeRun {
        let rates: Vec<f64> = self
            .runs
            .iter()
            .map(ConsumeRun::records_per_second)
            .collect();
        &self.runs[median_index(&rates)]
    }

    fn range(&self) -> (f64, f64) {
        self.runs
            .iter()
            .map(ConsumeRun::records_per_second)
            .fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }
}

/// Index of the (lower) median of `values`.
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[(order.len().saturating_sub(1)) / 2]
}

/// What was produced before the reads, per partition count.
struct ProducedTopic {
    partitions: i32,
    produce: Outcome,
    /// Leader of each partition, in partition order.
    leaders: Vec<i32>,
}

fn consume_scenarios(consumers: usize) -> Vec<ConsumeScenario> {
    vec![
        ConsumeScenario {
            label: "(a)",
            consumers: 1,
            racks: false,
        },
        ConsumeScenario {
            label: "(b)",
            consumers,
            racks: false,
        },
        ConsumeScenario {
            label: "(c)",
            consumers,
            racks: true,
        },
    ]
}

async fn consume_cluster_bench(args: ConsumeClusterArgs) -> Result<()> {
    let compression = parse_compression(&args.producer)?;
    if args.brokers < 1 {
        bail!("--brokers must be at least 1");
    }
    if args.replication_factor < 1 || i32::from(args.replication_factor) > args.brokers {
        bail!(
            "--replication-factor {} needs 1..={} (the number of --brokers)",
            args.replication_factor,
            args.brokers
        );
    }
    if args.min_insync_replicas < 1 || args.min_insync_replicas > args.replication_factor {
        bail!(
            "--min-insync-replicas {} needs 1..={} (the replication factor)",
            args.min_insync_replicas,
            args.replication_factor
        );
    }
    if args.consumers < 1 || args.runs < 1 || args.records < 1 {
        bail!("--consumers, --runs and --records must be at least 1");
    }
    let binary = broker_binary(&args.broker)?;
    check_cluster_support(&binary)?;
    check_rack_support(&binary)?;
    let timeout = Duration::from_secs(args.startup_timeout_secs);

    let data_dir = tempfile::tempdir()?;
    let mut cluster = start_cluster(
        &binary,
        &args.broker,
        args.brokers,
        data_dir.path(),
        timeout,
        true,
    )
    .await?;
    println!(
        "{} brokers in racks {} formed a cluster: {}",
        args.brokers,
        (1..=args.brokers)
            .map(rack_of)
            .collect::<Vec<_>>()
            .join(", "),
        cluster.bootstrap()
    );
    let outcome = match run_consume_scenarios(&args, &cluster, compression, timeout).await {
        Ok(outcome) => outcome,
        Err(error) => return Err(cluster.with_log_tails(error)),
    };
    cluster.stop();
    let (topics, rows) = outcome;
    if let Some(path) = &args.results {
        write_consume_results(path, &args, &topics, &rows)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn run_consume_scenarios(
    args: &ConsumeClusterArgs,
    cluster: &LocalCluster,
    compression: Compression,
    timeout: Duration,
) -> Result<(Vec<ProducedTopic>, Vec<ConsumeRow>)> {
    let bootstrap = cluster.bootstrap();
    let run_id = std::process::id();
    let configs = vec![(
        "min.insync.replicas".to_string(),
        args.min_insync_replicas.to_string(),
    )];
    let scenarios = consume_scenarios(args.consumers);
    let mut topics = Vec::new();
    let mut rows = Vec::new();
    for &partitions in &args.partitions {
        settle_page_cache();
        let topic = format!(
            "bench-{run_id}-consume-rf{}-{}b-{partitions}p",
            args.replication_factor, args.size
        );
        create_replicated_topic(
            &bootstrap,
            &topic,
            partitions,
            args.replication_factor,
            &configs,
            timeout,
        )
        .await?;
        let produce_scenario = Scenario {
            acks: Acks::All,
            acks_label: "all".to_string(),
            size: args.size,
            partitions,
        };
        let produce = run_scenario(
            &args.producer,
            args.records,
            &bootstrap,
            &topic,
            &produce_scenario,
            compression,
        )
        .await?;
        print_outcome(
            &format!("produce RF {} ", args.replication_factor),
            &produce_scenario,
            &produce,
        );
        let ends = wait_for_replicas(cluster, &topic, partitions, args.records, timeout).await?;
        let leaders = partition_leaders(&bootstrap, &topic, partitions).await?;
        println!("    every replica holds offsets up to {ends:?}; partition leaders {leaders:?}");
        // Data written moments ago is still in the page cache, so no warm-up read is needed;
        // the runs of the scenarios are interleaved so that noise hits all of them alike.
        let mut runs: Vec<Vec<ConsumeRun>> = scenarios.iter().map(|_| Vec::new()).collect();
        for run in 1..=args.runs {
            for (scenario, done) in scenarios.iter().zip(runs.iter_mut()) {
                let result = consume_run(args, cluster, &topic, &ends, scenario).await?;
                println!(
                    "{} partitions={partitions} consumers={} racks={:<5} run {run}: {:>12.0} records/s {:>8.1} MB/s  {:.2} s  consumer MB served by broker: {}  read from: {}  CPU s (consumers / brokers): {}",
                    scenario.label,
                    scenario.consumers,
                    scenario.racks,
                    result.records_per_second(),
                    result.megabytes_per_second(),
                    result.seconds,
                    served_text(&result.served, " / "),
                    read_from_text(&result.read_from),
                    cpu_text(&result.cpu),
                );
                done.push(result);
            }
        }
        for (scenario_index, runs) in runs.into_iter().enumerate() {
            rows.push(ConsumeRow {
                partitions,
                scenario_index,
                runs,
            });
        }
        topics.push(ProducedTopic {
            partitions,
            produce,
            leaders,
        });
        if let Err(error) = Admin::new(&bootstrap).await?.delete_topic(&topic).await {
            eprintln!(
                "deleting {topic} failed ({error}); later scenarios share the cluster with it"
            );
        }
    }
    Ok((topics, rows))
}

/// The leader of each partition of `topic`, in partition order.
async fn partition_leaders(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<i32>> {
    let admin = Admin::new(bootstrap).await?;
    admin.cluster().add_interest([topic]);
    let metadata = admin.cluster().refresh().await?;
    let info = metadata
        .topic(topic)
        .with_context(|| format!("no metadata for {topic}"))?;
    (0..partitions)
        .map(|p| {
            info.partitions
                .iter()
                .find(|m| m.partition == p)
                .and_then(|m| m.leader)
                .with_context(|| format!("{topic}-{p} has no leader"))
        })
        .collect()
}

/// Wait until every broker's high watermark and log end offset of every partition of
/// `topic` are equal and add up to `records` (every replica holds, and may serve, the whole
/// log), per the `sluice_partition_*` gauges on each broker's `/metrics`. Returns each
/// partition's end offset.
async fn wait_for_replicas(
    cluster: &LocalCluster,
    topic: &str,
    partitions: i32,
    records: u64,
    timeout: Duration,
) -> Result<Vec<i64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut ends: Option<Vec<i64>> = None;
        let mut waiting = Vec::new();
        for broker in &cluster.brokers {
            let text = match http_get(&broker.metrics, "/metrics").await {
                Ok(text) => text,
                Err(error) => {
                    waiting.push(format!("{}: /metrics failed: {error}", broker.label()));
                    continue;
                }
            };
            let mut these = Vec::new();
            for p in 0..partitions {
                let partition = p.to_string();
                let labels = [("topic", topic), ("partition", partition.as_str())];
                let high_watermark = metric_value(&text, HIGH_WATERMARK_METRIC, &labels);
                let log_end = metric_value(&text, LOG_END_OFFSET_METRIC, &labels);
                match (high_watermark, log_end) {
                    (Some(hw), Some(leo)) if hw == leo => these.push(hw as i64),
                    (hw, leo) => waiting.push(format!(
                        "{} partition {p}: high watermark {hw:?}, log end {leo:?}",
                        broker.label()
                    )),
                }
            }
            if these.len() as i32 == partitions {
                let total: i64 = these.iter().sum();
                if total != records as i64 {
                    waiting.push(format!("{}: {total} of {records} records", broker.label()));
                } else if ends.as_ref().is_some_and(|e| *e != these) {
                    waiting.push(format!("{}: ends {these:?} differ", broker.label()));
                } else {
                    ends = Some(these);
                }
            }
        }
        if waiting.is_empty() {
            if let Some(ends) = ends {
                return Ok(ends);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "{topic}: the replicas did not all hold {records} records with the high watermark at the log end after {timeout:?}: {}",
                waiting.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Per hosted partition, on every replica (the broker's `/metrics`).
const HIGH_WATERMARK_METRIC: &str = "sluice_partition_high_watermark";
const LOG_END_OFFSET_METRIC: &str = "sluice_partition_log_end_offset";

/// Bytes served to consumers, per the broker's `/metrics`.
const CONSUMER_BYTES_METRIC: &str = "sluice_fetch_bytes_out_total";

/// Each broker's consumer-fetch byte counter (0 before its first consumer fetch).
async fn consumer_bytes_served(cluster: &LocalCluster) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for broker in &cluster.brokers {
        let text = http_get(&broker.metrics, "/metrics")
            .await
            .with_context(|| format!("reading /metrics of {}", broker.label()))?;
        out.push(
            metric_value(&text, CONSUMER_BYTES_METRIC, &[("fetcher", "consumer")]).unwrap_or(0.0),
        );
    }
    Ok(out)
}

/// One timed run: set up every consumer (assign every partition, seek to the earliest
/// offset), start them together, and wait for the last to reach `ends`.
async fn consume_run(
    args: &ConsumeClusterArgs,
    cluster: &LocalCluster,
    topic: &str,
    ends: &[i64],
    scenario: &ConsumeScenario,
) -> Result<ConsumeRun> {
    let bootstrap = cluster.bootstrap();
    let consume_timeout = Duration::from_secs(args.consume_timeout_secs);
    let start = Arc::new(tokio::sync::Barrier::new(scenario.consumers + 1));
    let mut tasks = Vec::new();
    for i in 0..scenario.consumers {
        let mut config = ConsumerConfig::new(bootstrap.clone());
        config.client_id = format!("sluice-bench-consumer-{}", i + 1);
        config.partition_max_bytes = args.partition_max_bytes;
        config.fetch_max_bytes = args.fetch_max_bytes;
        if scenario.racks {
            let broker = (i as i32) % args.brokers + 1;
            config.client_rack = Some(rack_of(broker));
        }
        let topic = topic.to_string();
        let ends = ends.to_vec();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            read_topic(config, &topic, &ends, start, consume_timeout).await
        }));
    }
    let before = consumer_bytes_served(cluster).await?;
    let cpu_before = cpu_seconds_used(cluster);
    start.wait().await;
    let started = Instant::now();
    let mut records = 0;
    let mut value_bytes = 0;
    let mut last = started;
    let mut read_from = Vec::new();
    let mut first_error = None;
    for task in tasks {
        match task.await? {
            Ok(read) => {
                records += read.records;
                value_bytes += read.value_bytes;
                last = last.max(read.finished);
                read_from.push(read.read_from);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let cpu_after = cpu_seconds_used(cluster);
    let after = consumer_bytes_served(cluster).await?;
    let expected = ends.iter().sum::<i64>() as u64 * scenario.consumers as u64;
    if records != expected {
        bail!("the consumers read {records} records, expected {expected}");
    }
    Ok(ConsumeRun {
        records,
        value_bytes,
        seconds: last.duration_since(started).as_secs_f64(),
        served: after.iter().zip(&before).map(|(a, b)| a - b).collect(),
        cpu: cpu_after
            .iter()
            .zip(&cpu_before)
            .map(|(a, b)| Some(a.as_ref()? - b.as_ref()?))
            .collect(),
        read_from,
    })
}

/// CPU seconds (user + system) used so far by this process and by each broker.
fn cpu_seconds_used(cluster: &LocalCluster) -> Vec<Option<f64>> {
    std::iter::once(std::process::id())
        .chain(cluster.brokers.iter().map(|b| b.child.id()))
        .map(process_cpu_seconds)
        .collect()
}

/// CPU seconds (user + system, all threads) a process has used, from /proc/PID/stat
/// (Linux; clock ticks taken as 100 per second, the kernel's USER_HZ).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on:
    // utime is field 14 and stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU seconds per process, e.g. "1.2 / 0.5 / 0.4 / 0.4" ("?" where unknown).
fn cpu_text(cpu: &[Option<f64>]) -> String {
    cpu.iter()
        .map(|c| c.map_or_else(|| "?".to_string(), |c| format!("{c:.2}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// What one consumer read.
struct TopicRead {
    records: u64,
    value_bytes: u64,
    finished: Instant,
    read_from: BTreeSet<i32>,
}

/// Create a consumer, assign every partition of `topic`, seek to the earliest offset,
/// wait at `start`, then poll until every partition's position reaches its end in `ends`
/// (unassigning each partition once it has). `read_from`: the broker each partition was
/// read from when it reached its end (its preferred read replica, else its leader).
async fn read_topic(
    config: ConsumerConfig,
    topic: &str,
    ends: &[i64],
    start: Arc<tokio::sync::Barrier>,
    timeout: Duration,
) -> Result<TopicRead> {
    // Set up before the barrier; an error must still reach the barrier so the others and
    // the timer are not left waiting.
    let setup = async {
        let mut consumer = Consumer::new(config).await?;
        let partitions: Vec<(String, i32)> = (0..ends.len() as i32)
            .map(|p| (topic.to_string(), p))
            .collect();
        consumer.assign(partitions).await?;
        for p in 0..ends.len() as i32 {
            consumer.seek(topic, p, SeekTo::Earliest).await?;
        }
        anyhow::Ok(consumer)
    }
    .await;
    start.wait().await;
    let mut consumer = setup.context("setting up a consumer")?;
    let deadline = Instant::now() + timeout;
    let mut records = 0u64;
    let mut value_bytes = 0u64;
    let mut read_from = BTreeSet::new();
    // A partition read to its end is unassigned: otherwise every later fetch round would
    // include it, and the broker would hold that fetch for up to fetch_max_wait_ms waiting
    // for records that never come, stalling the partitions still being read.
    let mut remaining: Vec<i32> = (0..ends.len() as i32).collect();
    while !remaining.is_empty() {
        if Instant::now() >= deadline {
            bail!(
                "consumed only up to {:?} of {ends:?} within {timeout:?}",
                (0..ends.len() as i32)
                    .map(|p| consumer.position(topic, p))
                    .collect::<Vec<_>>()
            );
        }
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(batch) => {
                records += batch.len() as u64;
                value_bytes += batch
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
                    .sum::<u64>();
            }
            Err(error) if error.is_retriable() => continue,
            Err(error) => return Err(error).context("poll"),
        }
        let (done, still): (Vec<i32>, Vec<i32>) = remaining.iter().partition(|&&p| {
            consumer.position(topic, p).unwrap_or(0) >= ends[usize::try_from(p).unwrap_or(0)]
        });
        if done.is_empty() {
            continue;
        }
        let metadata = consumer.cluster().metadata();
        read_from.extend(done.iter().filter_map(|&p| {
            consumer
                .preferred_read_replica(topic, p)
                .or_else(|| metadata.leader(topic, p))
        }));
        remaining = still;
        if !remaining.is_empty() {
            consumer
                .assign(remaining.iter().map(|&p| (topic.to_string(), p)).collect())
                .await?;
        }
    }
    let finished = Instant::now();
    Ok(TopicRead {
        records,
        value_bytes,
        finished,
        read_from,
    })
}

/// GET `path` from the HTTP server at `address` (HOST:PORT) and return the body; enough
/// HTTP/1.0 for the brokers' metrics endpoint.
async fn http_get(address: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("GET {path} from {address}: no answer in 10 s"))??;
    Ok(match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => response,
    })
}

/// The value of the Prometheus sample of metric `name` whose labels include every pair of
/// `labels`, if there is one.
fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let matches = labels.iter().all(|(key, value)| {
                label_text
                    .split(',')
                    .any(|l| l == format!("{key}=\"{value}\""))
            });
            if !matches {
                return None;
            }
            value.trim().parse::<f64>().ok()
        })
}

/// Per-broker bytes in MB, joined by `separator`.
fn served_text(served: &[f64], separator: &str) -> String {
    served
        .iter()
        .map(|bytes| format!("{:.0}", bytes / 1e6))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The brokers each consumer read from, e.g. "1 / 2 / 3".
fn read_from_text(read_from: &[BTreeSet<i32>]) -> String {
    read_from
        .iter()
        .map(|brokers| {
            brokers
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// First line of the consume-cluster section; a rerun replaces everything from here to
/// [`CONSUME_SECTION_END`].
const CONSUME_SECTION_BEGIN: &str = "<!-- sluice-bench consume-cluster: begin";
const CONSUME_SECTION_END: &str = "<!-- sluice-bench consume-cluster: end -->";

fn write_consume_results(
    path: &Path,
    args: &ConsumeClusterArgs,
    topics: &[ProducedTopic],
    rows: &[ConsumeRow],
) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let scenarios = consume_scenarios(args.consumers);
    let broker_args = args
        .broker
        .broker_args
        .as_deref()
        .map(|a| format!(", with `{a}`"))
        .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "{CONSUME_SECTION_BEGIN} (`sluice-bench consume-cluster --results` replaces this section up to the end marker) -->\n"
    ));
    s.push_str(&format!(
        "## Consume: {} brokers, replication factor {}, leader only vs followers by rack (KIP-392)\n\n",
        args.brokers, args.replication_factor
    ));
    s.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    s.push_str(&format!(
        "Machine: {}\n\n",
        machine_description(&format!(
            "{} brokers, the producer and every consumer on the same machine, loopback",
            args.brokers
        ))
    ));
    s.push_str(&format!(
        "Brokers: {n} sluiced started by the harness{broker_args}, each a controller voter, broker N with \
         `--rack rack-N`. One topic per partition count, replication factor {rf}, \
         `min.insync.replicas={isr}`, {records} records of {size} bytes produced with acks=all \
         (compression {compression}); the reads start once every replica's high watermark and \
         log end offset cover all of them (per `sluice_partition_high_watermark` and \
         `sluice_partition_log_end_offset` on each broker's `/metrics`).\n\n",
        n = args.brokers,
        rf = args.replication_factor,
        isr = args.min_insync_replicas,
        records = args.records,
        size = args.size,
        compression = args.producer.compression,
    ));
    s.push_str(&format!(
        "Consumers: Sluice's own consumer, each assigned every partition, from the earliest \
         offset to the end; partition max bytes {}, fetch max bytes {}; run as tasks of one \
         process. Each consumer is set up (connected, assigned, seeked) before the clock starts; \
         the time is from the start until the last consumer reaches the end. records/s and MB/s \
         are aggregate: records (and value bytes) read by all consumers together over that time. \
         {runs} runs per scenario, interleaved; the table shows the median run and the range of \
         all runs. Consumer MB served: record-batch bytes each broker sent to consumers during \
         the run, from its `sluice_fetch_bytes_out_total{{fetcher=\"consumer\"}}`. CPU s: CPU \
         seconds (user + system, from /proc) used during the run by the harness process (the \
         consumers) and by each broker; their sum over the run's seconds is how many of the \
         machine's cores were busy.\n\n",
        args.partition_max_bytes,
        args.fetch_max_bytes,
        runs = args.runs,
    ));
    s.push_str("Scenarios:\n\n");
    for scenario in &scenarios {
        let what = match (scenario.consumers, scenario.racks) {
            (1, false) => "1 consumer, no rack: read from the leader".to_string(),
            (n, false) => format!("{n} consumers at once, no rack: all read from the leader"),
            (n, true) => format!(
                "{n} consumers at once, consumer i with `client_rack` = `rack-i`: the leader \
                 serves its own rack's consumer and redirects the others to the in-sync \
                 follower in their rack"
            ),
        };
        s.push_str(&format!("- {} {what}\n", scenario.label));
    }
    s.push('\n');
    s.push_str("| partitions | scenario | consumers | client rack | records read | seconds | records/s | MB/s | records/s range | consumer MB served by broker ");
    s.push_str(
        &(1..=args.brokers)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
    );
    s.push_str(" | brokers read from, per consumer | CPU s: consumers / broker ");
    s.push_str(
        &(1..=args.brokers)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
    );
    s.push_str(" |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let scenario = &scenarios[row.scenario_index];
        let run = row.median();
        let (low, high) = row.range();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.0}-{:.0} | {} | {} | {} |\n",
            row.partitions,
            scenario.label,
            scenario.consumers,
            if scenario.racks { "rack-i" } else { "none" },
            run.records,
            run.seconds,
            run.records_per_second(),
            run.megabytes_per_second(),
            low,
            high,
            served_text(&run.served, " / "),
            read_from_text(&run.read_from),
            cpu_text(&run.cpu),
        ));
    }
    s.push('\n');
    s.push_str("Produce before the reads (acks=all) and partition leaders:\n\n");
    s.push_str("| partitions | records | records/s | MB/s | p99 ms | leaders (partition 0..) |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for t in topics {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.2} | {} |\n",
            t.partitions,
            t.produce.records,
            t.produce.records_per_second,
            t.produce.megabytes_per_second,
            t.produce.p99_ms,
            t.leaders
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push('\n');
    s.push_str(CONSUME_SECTION_END);
    s.push_str("\n\n");

    let existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    std::fs::write(
        path,
        splice_section(&existing, &s, CONSUME_SECTION_BEGIN, CONSUME_SECTION_END),
    )?;
    Ok(())
}

/// Fail early, with the reason, if this `sluiced` has no `--rack`.
fn check_rack_support(binary: &Path) -> Result<()> {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .with_context(|| format!("running {} --help", binary.display()))?;
    if !String::from_utf8_lossy(&output.stdout).contains("--rack") {
        bail!(
            "{} has no --rack flag, so consumers cannot read from followers: rebuild it with \
             `cargo build --release --bins` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(())
}

async fn run_scenario(
    producer_settings: &ProducerSettings,
    records: u64,
    bootstrap: &str,
    topic: &str,
    scenario: &Scenario,
    compression: Compression,
) -> Result<Outcome> {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = scenario.acks;
    config.linger_ms = producer_settings.linger_ms;
    config.batch_bytes_max = producer_settings.batch_bytes;
    config.compression = compression;
    let producer = Producer::new(config).await?;

    // Payloads vary a little so compression has realistic work, and cost nothing to make.
    let payloads: Vec<bytes::Bytes> = (0..64u8)
        .map(|seed| {
            let v: Vec<u8> = (0..scenario.size)
                .map(|i| b'a' + ((i as u8).wrapping_mul(31) ^ seed) % 26)
                .collect();
            bytes::Bytes::from(v)
        })
        .collect();

    let (tx, mut rx) = mpsc::channel::<(Instant, sluice_client::DeliveryFuture)>(1 << 16);
    let collector = tokio::spawn(async move {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        let mut failures = 0u64;
        let mut first_failure = None;
        let mut last = Instant::now();
        while let Some((sent, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(_) => {
                    last = Instant::now();
                    let micros = last.duration_since(sent).as_micros() as u64;
                    histogram.saturating_record(micros.max(1));
                }
                Err(error) => {
                    failures += 1;
                    first_failure.get_or_insert_with(|| error.to_string());
                }
            }
        }
        (histogram, failures, first_failure, last)
    });

    let started = Instant::now();
    for i in 0..records {
        let value = payloads[(i % 64) as usize].clone();
        let record = ProducerRecord::new(topic.to_string(), value);
        let sent = Instant::now();
        let delivery = producer.send(record).await?;
        if tx.send((sent, delivery)).await.is_err() {
            bail!("latency collector stopped");
        }
    }
    drop(tx);
    producer.flush().await;
    let (histogram, failures, first_failure, last) = collector.await?;
    producer.close().await;
    if failures > 0 {
        bail!(
            "{failures} records failed in {topic}; the first: {}",
            first_failure.unwrap_or_default()
        );
    }
    let elapsed = last.duration_since(started).as_secs_f64().max(1e-9);
    let records_per_second = records as f64 / elapsed;
    Ok(Outcome {
        records,
        records_per_second,
        megabytes_per_second: records_per_second * scenario.size as f64 / 1e6,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        p999_ms: histogram.value_at_quantile(0.999) as f64 / 1000.0,
    })
}

fn parse_compression(settings: &ProducerSettings) -> Result<Compression> {
    Compression::parse(&settings.compression)
        .with_context(|| format!("unknown compression '{}'", settings.compression))
}

/// One `sluiced` the harness started; stopped (SIGTERM, then SIGKILL after 15 s) by
/// [`BrokerProcess::stop`] or when dropped, so an error does not leave it running.
struct BrokerProcess {
    child: Child,
    /// `--node-id` for a cluster member.
    node_id: Option<i32>,
    bootstrap: String,
    /// Its Prometheus listener (HOST:PORT), serving `/metrics`.
    metrics: String,
    /// Where its stdout and stderr go, for cluster members.
    log: Option<PathBuf>,
    stopped: bool,
}

impl BrokerProcess {
    fn label(&self) -> String {
        match self.node_id {
            Some(id) => format!("sluiced node {id} ({})", self.bootstrap),
            None => format!("sluiced ({})", self.bootstrap),
        }
    }

    /// Whether the process has exited, and how.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait until the Kafka listener accepts connections.
    fn wait_listening(&mut self, deadline: Instant) -> Result<()> {
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            if let Some(status) = self.exit_status() {
                bail!(
                    "{} exited ({status}) before listening{}",
                    self.label(),
                    self.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening{}",
                    self.label(),
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Ask it to shut down (SIGTERM to its pid) without waiting.
    fn signal_stop(&mut self) {
        if self.stopped || self.exit_status().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Wait for it to exit after [`Self::signal_stop`]; kill it if it takes over 15 s.
    fn wait_stopped(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) {
        self.signal_stop();
        self.wait_stopped();
    }

    /// The last `lines` lines of its log, as a suffix for an error message.
    fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        format!(
            "\n--- last {} lines of {} ---\n{}",
            tail.len(),
            path.display(),
            tail.join("\n")
        )
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The brokers of a cluster the harness started.
struct LocalCluster {
    brokers: Vec<BrokerProcess>,
}

impl LocalCluster {
    /// Every broker's Kafka listener, comma separated.
    fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.bootstrap.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stop all brokers: signal every one first, so none waits on a peer that is already
    /// gone, then wait for each.
    fn stop(&mut self) {
        for broker in &mut self.brokers {
            broker.signal_stop();
        }
        for broker in &mut self.brokers {
            broker.wait_stopped();
        }
    }

    /// `error` with the end of every broker's log attached.
    fn with_log_tails(&self, error: anyhow::Error) -> anyhow::Error {
        let tails: String = self.brokers.iter().map(|b| b.log_tail(15)).collect();
        error.context(format!(
            "cluster benchmark failed; broker logs:{tails}\n---"
        ))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn broker_binary(settings: &BrokerSettings) -> Result<PathBuf> {
    let binary = match &settings.broker_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bench binary has no parent directory")?
            .join("sluiced"),
    };
    if !binary.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bin sluiced` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(binary)
}

/// Fail early, with the reason, if this `sluiced` cannot form a cluster.
fn check_cluster_support(binary: &Path) -> Result<()> {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .with_context(|| format!("running {} --help", binary.display()))?;
    let help = String::from_utf8_lossy(&output.stdout);
    if !help.contains("--controller-voters") || !help.contains("--internal-listen") {
        bail!(
            "{} has no --controller-voters/--internal-listen flags, so it cannot form a cluster: \
             rebuild it with `cargo build --release --bins` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(())
}

/// Start one `sluiced` without waiting for it. `log`: file for its stdout and stderr
/// (discarded when None).
fn spawn_sluiced(
    binary: &Path,
    settings: &BrokerSettings,
    data_dir: &Path,
    port: u16,
    metrics_port: u16,
    node: Option<(i32, &[String])>,
    log: Option<&Path>,
) -> Result<BrokerProcess> {
    let bootstrap = format!("127.0.0.1:{port}");
    let mut command = Command::new(binary);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(&bootstrap)
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"));
    if let Some((node_id, flags)) = node {
        command
            .arg("--node-id")
            .arg(node_id.to_string())
            .args(flags);
    }
    match log {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    if let Some(extra) = &settings.broker_args {
        command.args(extra.split_whitespace());
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(BrokerProcess {
        child,
        node_id: node.map(|(id, _)| id),
        bootstrap,
        metrics: format!("127.0.0.1:{metrics_port}"),
        log: log.map(Path::to_path_buf),
        stopped: false,
    })
}

/// Start a standalone `sluiced` and wait until it listens.
fn start_single_broker(settings: &BrokerSettings, data_dir: &Path) -> Result<BrokerProcess> {
    let binary = broker_binary(settings)?;
    let ports = free_ports(2)?;
    let mut broker = spawn_sluiced(&binary, settings, data_dir, ports[0], ports[1], None, None)?;
    broker.wait_listening(Instant::now() + Duration::from_secs(30))?;
    Ok(broker)
}

/// Start `count` brokers, each a controller voter with its own data dir under `root` (and,
/// with `racks`, broker N in rack [`rack_of`]`(N)`), and wait until every one of them lists
/// all `count` brokers in its Metadata.
async fn start_cluster(
    binary: &Path,
    settings: &BrokerSettings,
    count: i32,
    root: &Path,
    timeout: Duration,
    racks: bool,
) -> Result<LocalCluster> {
    let size = usize::try_from(count).context("broker count")?;
    let ports = free_ports(3 * size)?;
    // (node id, Kafka port, metrics port, internal port)
    let nodes: Vec<(i32, u16, u16, u16)> = (1..=count)
        .zip(ports.chunks(3))
        .map(|(id, p)| (id, p[0], p[1], p[2]))
        .collect();
    let voters = nodes
        .iter()
        .map(|(id, _, _, internal)| format!("{id}@127.0.0.1:{internal}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cluster = LocalCluster {
        brokers: Vec::new(),
    };
    for &(id, port, metrics_port, internal) in &nodes {
        let data_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir)?;
        let log = root.join(format!("node-{id}.log"));
        let mut flags = vec![
            "--internal-listen".to_string(),
            format!("127.0.0.1:{internal}"),
            "--controller-voters".to_string(),
            voters.clone(),
        ];
        if racks {
            flags.extend(["--rack".to_string(), rack_of(id)]);
        }
        cluster.brokers.push(spawn_sluiced(
            binary,
            settings,
            &data_dir,
            port,
            metrics_port,
            Some((id, &flags)),
            Some(&log),
        )?);
    }
    let deadline = Instant::now() + timeout;
    for broker in &mut cluster.brokers {
        broker.wait_listening(deadline)?;
    }
    if let Err(error) = wait_for_brokers(&mut cluster.brokers, size, deadline).await {
        return Err(cluster.with_log_tails(error));
    }
    Ok(cluster)
}

/// Poll Metadata from each broker (through a connection to that broker alone) until each
/// lists `expected` brokers, or fail at `deadline` with what each one last said.
async fn wait_for_brokers(
    brokers: &mut [BrokerProcess],
    expected: usize,
    deadline: Instant,
) -> Result<()> {
    let mut last_seen: Vec<Option<String>> = vec![Some("not asked yet".to_string()); brokers.len()];
    loop {
        for (broker, seen) in brokers.iter_mut().zip(last_seen.iter_mut()) {
            if seen.is_none() {
                continue;
            }
            if let Some(status) = broker.exit_status() {
                bail!("{} exited ({status})", broker.label());
            }
            let asked = tokio::time::timeout(
                Duration::from_secs(3),
                metadata_broker_ids(&broker.bootstrap),
            )
            .await;
            *seen = match asked {
                Ok(Ok(ids)) if ids.len() >= expected => None,
                Ok(Ok(ids)) => Some(format!("Metadata lists brokers {ids:?}")),
                Ok(Err(error)) => Some(format!("Metadata failed: {error}")),
                Err(_) => Some("Metadata got no answer within 3 s".to_string()),
            };
        }
        if last_seen.iter().all(Option::is_none) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let state: Vec<String> = brokers
                .iter()
                .zip(&last_seen)
                .filter_map(|(b, seen)| seen.as_ref().map(|s| format!("{}: {s}", b.label())))
                .collect();
            bail!(
                "the brokers did not all list {expected} brokers in time: {}",
                state.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The broker ids in the Metadata answer of the broker at `address`.
async fn metadata_broker_ids(address: &str) -> Result<Vec<i32>> {
    let mut config = ClusterConfig::new(address)?;
    config.connection.client_id = "sluice-bench".to_string();
    config.connection.connect_timeout = Duration::from_secs(2);
    config.connection.request_timeout = Duration::from_secs(2);
    let cluster = Cluster::connect(config).await?;
    Ok(cluster.metadata().brokers.keys().copied().collect())
}

/// `count` distinct free loopback ports (each listener is held until all are found).
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// CPUs, CPU model and memory, then `setup` (who runs where).
fn machine_description(setup: &str) -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpus} cores ({model}), {memory} RAM; {setup}")
}

fn write_results(path: &Path, args: &ProduceArgs, rows: &[(&Scenario, Outcome)]) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let mut table = String::new();
    table.push_str(&format!(
        "### Produce, {} records per scenario, compression {}, linger {} ms, batch {} bytes\n\n",
        args.records, args.producer.compression, args.producer.linger_ms, args.producer.batch_bytes
    ));
    table.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    table.push_str(&format!(
        "Machine: {}\n\n",
        machine_description("broker and producer on the same machine, loopback")
    ));
    table.push_str(&format!(
        "Broker: {}\n\n",
        args.bootstrap
            .as_deref()
            .map(|b| format!("existing broker at {b}"))
            .unwrap_or_else(|| format!(
                "sluiced started by the harness{}",
                args.broker
                    .broker_args
                    .as_deref()
                    .map(|a| format!(" with `{a}`"))
                    .unwrap_or_default()
            ))
    ));
    table.push_str(
        "| acks | record bytes | partitions | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n",
    );
    table.push_str("|---|---|---|---|---|---|---|---|\n");
    for (s, o) in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
            s.acks_label,
            s.size,
            s.partitions,
            o.records_per_second,
            o.megabytes_per_second,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms
        ));
    }
    table.push('\n');
    let mut existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    existing.push_str(&table);
    std::fs::write(path, existing)?;
    Ok(())
}

/// First line of the cluster section; a rerun replaces everything from here to
/// [`CLUSTER_SECTION_END`].
const CLUSTER_SECTION_BEGIN: &str = "<!-- sluice-bench cluster: begin";
const CLUSTER_SECTION_END: &str = "<!-- sluice-bench cluster: end -->";
/// The first cluster section goes before this heading (the appended `produce` tables), or
/// at the end of the file when it is missing.
const RAW_RESULTS_HEADING: &str = "## Raw results";

fn write_cluster_results(
    path: &Path,
    args: &ClusterArgs,
    baseline: &[(Scenario, Outcome)],
    rows: &[(&Scenario, Outcome)],
    ratios: &[Ratio],
) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let broker_args = args
        .broker
        .broker_args
        .as_deref()
        .map(|a| format!(", with `{a}`"))
        .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "{CLUSTER_SECTION_BEGIN} (`sluice-bench cluster --results` replaces this section up to the end marker) -->\n"
    ));
    s.push_str(&format!(
        "## Cluster: {} brokers, replication factor {}, min.insync.replicas {}\n\n",
        args.brokers, args.replication_factor, args.min_insync_replicas
    ));
    s.push_str(&format!(
        "Produce, {} records per scenario ({} for records of {} bytes and more), compression {}, linger {} ms, batch {} bytes\n\n",
        args.records,
        args.records_large,
        LARGE_RECORD_BYTES,
        args.producer.compression,
        args.producer.linger_ms,
        args.producer.batch_bytes
    ));
    s.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    s.push_str(&format!(
        "Machine: {}\n\n",
        machine_description(&format!(
            "{} brokers and the producer on the same machine, loopback",
            args.brokers
        ))
    ));
    s.push_str(&format!(
        "Brokers: {n} sluiced started by the harness{broker_args}, each a controller voter \
         (`--controller-voters`) with its own data dir; one topic per scenario with replication \
         factor {rf} and `min.insync.replicas={isr}`, produced to once every partition has a \
         leader and {rf} in-sync replicas. Baseline: one standalone sluiced started by the \
         harness{broker_args}, replication factor 1, run before the cluster starts.\n\n",
        n = args.brokers,
        rf = args.replication_factor,
        isr = args.min_insync_replicas,
    ));
    s.push_str("| brokers | RF | acks | record bytes | partitions | records | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let baseline_rows = baseline.iter().map(|(sc, o)| (1, 1, sc, o));
    let cluster_rows = rows
        .iter()
        .map(|(sc, o)| (args.brokers, args.replication_factor, *sc, o));
    for (brokers, rf, sc, o) in baseline_rows.chain(cluster_rows) {
        s.push_str(&format!(
            "| {brokers} | {rf} | {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
            sc.acks_label,
            sc.size,
            sc.partitions,
            o.records,
            o.records_per_second,
            o.megabytes_per_second,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms
        ));
    }
    s.push('\n');
    if !ratios.is_empty() {
        s.push_str(&format!(
            "acks=all on {} brokers with replication factor {} relative to one broker at acks=1, \
             {BASELINE_RECORD_BYTES}-byte records:\n\n",
            args.brokers, args.replication_factor
        ));
        s.push_str(&format!(
            "| partitions | 1 broker acks=1 records/s | {} brokers RF {} acks=all records/s | ratio |\n",
            args.brokers, args.replication_factor
        ));
        s.push_str("|---|---|---|---|\n");
        for r in ratios {
            s.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.2} |\n",
                r.partitions,
                r.single,
                r.replicated,
                r.replicated / r.single
            ));
        }
        s.push('\n');
    }
    s.push_str(CLUSTER_SECTION_END);
    s.push_str("\n\n");

    let existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    std::fs::write(path, splice_cluster_section(&existing, &s))?;
    Ok(())
}

/// `existing` with its cluster section replaced by `section`; without one, `section` goes
/// before the raw results heading, or at the end.
fn splice_cluster_section(existing: &str, section: &str) -> String {
    splice_section(
        existing,
        section,
        CLUSTER_SECTION_BEGIN,
        CLUSTER_SECTION_END,
    )
}

/// `existing` with the section from `begin` to `end` (markers included) replaced by
/// `section`; without one, `section` goes before the raw results heading, or at the end.
fn splice_section(existing: &str, section: &str, begin: &str, end: &str) -> String {
    if let Some(start) = existing.find(begin) {
        if let Some(length) = existing[start..].find(end) {
            let rest = &existing[start + length + end.len()..];
            return format!(
                "{}{section}{}",
                &existing[..start],
                rest.trim_start_matches('\n')
            );
        }
    }
    let heading = existing
        .match_indices(RAW_RESULTS_HEADING)
        .find(|&(at, _)| at == 0 || existing[..at].ends_with('\n'))
        .map(|(at, _)| at);
    match heading {
        Some(at) => format!("{}{section}{}", &existing[..at], &existing[at..]),
        None => {
            let mut out = existing.to_string();
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
            }
            out.push_str(section);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(body: &str) -> String {
        format!("{CLUSTER_SECTION_BEGIN} x -->\n## Cluster\n\n{body}\n\n{CLUSTER_SECTION_END}\n\n")
    }

    #[test]
    fn first_cluster_section_goes_before_the_raw_results() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let out = splice_cluster_section(existing, &section("one"));
        assert_eq!(
            out,
            format!(
                "# Benchmark results\n\n## Summary\n\ntext\n\n{}## Raw results\n\n### Produce\n",
                section("one")
            )
        );
    }

    #[test]
    fn a_rerun_replaces_only_the_cluster_section() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let once = splice_cluster_section(existing, &section("one"));
        let twice = splice_cluster_section(&once, &section("two"));
        assert_eq!(twice, once.replace("one", "two"));
        assert_eq!(twice.matches(CLUSTER_SECTION_BEGIN).count(), 1);
    }

    #[test]
    fn without_raw_results_the_section_is_appended() {
        let out = splice_cluster_section("# Benchmark results\n", &section("one"));
        assert_eq!(out, format!("# Benchmark results\n\n{}", section("one")));
        let again = splice_cluster_section(&out, &section("two"));
        assert_eq!(again, format!("# Benchmark results\n\n{}", section("two")));
    }

    #[test]
    fn the_consume_section_sits_beside_the_cluster_section() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let cluster = splice_cluster_section(existing, &section("one"));
        let consume =
            format!("{CONSUME_SECTION_BEGIN} x -->\n## Consume\n\nc1\n\n{CONSUME_SECTION_END}\n\n");
        let both = splice_section(
            &cluster,
            &consume,
            CONSUME_SECTION_BEGIN,
            CONSUME_SECTION_END,
        );
        assert_eq!(
            both,
            format!(
                "# Benchmark results\n\n## Summary\n\ntext\n\n{}{consume}## Raw results\n\n### Produce\n",
                section("one")
            )
        );
        let rerun = splice_section(
            &both,
            &consume.replace("c1", "c2"),
            CONSUME_SECTION_BEGIN,
            CONSUME_SECTION_END,
        );
        assert_eq!(rerun, both.replace("c1", "c2"));
        assert_eq!(
            splice_cluster_section(&rerun, &section("two")),
            rerun.replace("one", "two")
        );
    }

    #[test]
    fn metric_samples_are_parsed_with_their_labels() {
        let text = "# TYPE sluice_fetch_bytes_out_total counter\n\
            sluice_fetch_bytes_out_total{fetcher=\"consumer\"} 1200\n\
            sluice_fetch_bytes_out_total{fetcher=\"follower\"} 34\n\
            sluice_partition_high_watermark{topic=\"t\",partition=\"2\"} 3000000\n\
            sluice_partition_high_watermark_other 5\n";
        assert_eq!(
            metric_value(
                text,
                "sluice_fetch_bytes_out_total",
                &[("fetcher", "consumer")]
            ),
            Some(1200.0)
        );
        assert_eq!(
            metric_value(
                text,
                "sluice_partition_high_watermark",
                &[("topic", "t"), ("partition", "2")]
            ),
            Some(3e6)
        );
        assert_eq!(
            metric_value(
                text,
                "sluice_partition_high_watermark",
                &[("topic", "t"), ("partition", "1")]
            ),
            None
        );
    }

    #[test]
    fn median_run_is_the_middle_by_throughput() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), 2);
        assert_eq!(median_index(&[5.0]), 0);
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), 3);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let used = process_cpu_seconds(std::process::id()).expect("/proc/self/stat");
        assert!(used > 0.0, "{used}");
        assert_eq!(cpu_text(&[Some(1.234), None]), "1.23 / ?");
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(9).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 9);
    }
}
