//! The `consume-cluster` subcommand: a local cluster with one rack per broker, one
//! replicated topic per partition count produced at acks=all, then timed runs of consumers
//! reading it all back: from the leader only, and spread over the in-sync followers by
//! rack (KIP-392). Includes waiting until every replica holds the whole log, and the
//! per-run figures (throughput, consumer bytes each broker served, CPU seconds).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use sluice_client::{Acks, Admin, Compression, Consumer, ConsumerConfig, SeekTo};

use crate::cluster::create_replicated_topic;
use crate::process::{
    broker_binary, check_cluster_support, check_rack_support, cpu_seconds_used, http_get,
    metric_value, rack_of, start_cluster, LocalCluster,
};
use crate::produce::{
    parse_compression, print_outcome, run_scenario, settle_page_cache, Outcome, Scenario,
};
use crate::report::{cpu_text, read_from_text, served_text, write_consume_results};
use crate::{BrokerSettings, ProducerSettings};

#[derive(Parser, Clone)]
pub(crate) struct ConsumeClusterArgs {
    /// Brokers in the cluster (each a controller voter); broker N is in rack `rack-N`
    #[arg(long, default_value_t = 3)]
    pub(crate) brokers: i32,
    /// Replication factor of the topic
    #[arg(long, default_value_t = 3)]
    pub(crate) replication_factor: i16,
    /// min.insync.replicas of the topic
    #[arg(long, default_value_t = 2)]
    pub(crate) min_insync_replicas: i16,
    /// Records produced (acks=all) and then read by every consumer
    #[arg(long, default_value_t = 3_000_000)]
    pub(crate) records: u64,
    /// Record value size in bytes
    #[arg(long, default_value_t = 100)]
    pub(crate) size: usize,
    /// Partition counts, comma separated: one topic (and one set of scenarios) per count
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    partitions: Vec<i32>,
    /// Concurrent consumers in the multi-consumer scenarios; consumer i (from 1) of the
    /// rack scenario is in broker i's rack (round robin past the broker count)
    #[arg(long, default_value_t = 3)]
    pub(crate) consumers: usize,
    /// Timed runs of every scenario (interleaved); the table shows the median run
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Consumer bytes per partition per Fetch
    #[arg(long, default_value_t = 1024 * 1024)]
    pub(crate) partition_max_bytes: i32,
    /// Consumer bytes per Fetch response
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub(crate) fetch_max_bytes: i32,
    /// Seconds to wait for the cluster to form, the topic's replicas to be in sync, and
    /// every replica to hold the whole log
    #[arg(long, default_value_t = 60)]
    startup_timeout_secs: u64,
    /// Seconds one consumer may take to read the topic
    #[arg(long, default_value_t = 300)]
    consume_timeout_secs: u64,
    #[command(flatten)]
    pub(crate) producer: ProducerSettings,
    #[command(flatten)]
    pub(crate) broker: BrokerSettings,
    /// Write the results (Markdown) to this file, replacing an earlier consume-cluster section
    #[arg(long)]
    results: Option<PathBuf>,
}

/// One way of reading the topic back.
pub(crate) struct ConsumeScenario {
    /// Short name for the table: (a), (b), (c).
    pub(crate) label: &'static str,
    pub(crate) consumers: usize,
    /// Whether consumer i (from 1) has `client_rack` = the rack of broker i.
    pub(crate) racks: bool,
}

/// One timed run of a [`ConsumeScenario`].
pub(crate) struct ConsumeRun {
    /// Records read, by all consumers together.
    pub(crate) records: u64,
    /// Record value bytes read, by all consumers together.
    value_bytes: u64,
    /// From the moment all consumers were set up until the last one reached the end.
    pub(crate) seconds: f64,
    /// Consumer bytes each broker served during the run (its `/metrics` before and after),
    /// in broker order.
    pub(crate) served: Vec<f64>,
    /// CPU seconds used during the run by this process (the consumers) and by each broker,
    /// in that order, from /proc; None where it could not be read.
    pub(crate) cpu: Vec<Option<f64>>,
    /// The brokers each consumer read from at the end, per consumer.
    pub(crate) read_from: Vec<BTreeSet<i32>>,
}

impl ConsumeRun {
    pub(crate) fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    pub(crate) fn megabytes_per_second(&self) -> f64 {
        self.value_bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// A scenario's runs for one partition count.
pub(crate) struct ConsumeRow {
    pub(crate) partitions: i32,
    pub(crate) scenario_index: usize,
    runs: Vec<ConsumeRun>,
}

impl ConsumeRow {
    pub(crate) fn median(&self) -> &ConsumeRun {
        let rates: Vec<f64> = self
            .runs
            .iter()
            .map(ConsumeRun::records_per_second)
            .collect();
        &self.runs[median_index(&rates)]
    }

    pub(crate) fn range(&self) -> (f64, f64) {
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
pub(crate) struct ProducedTopic {
    pub(crate) partitions: i32,
    pub(crate) produce: Outcome,
    /// Leader of each partition, in partition order.
    pub(crate) leaders: Vec<i32>,
}

pub(crate) fn consume_scenarios(consumers: usize) -> Vec<ConsumeScenario> {
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

pub(crate) async fn consume_cluster_bench(args: ConsumeClusterArgs) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_run_is_the_middle_by_throughput() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), 2);
        assert_eq!(median_index(&[5.0]), 0);
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), 3);
    }
}
