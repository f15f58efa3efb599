//! The `cluster` subcommand: a single-broker acks=1 baseline, then a local cluster with
//! replicated topics, one per scenario, and the ratio of the cluster's acks=all figure to
//! the baseline. Also creating a replicated topic and waiting until every partition has a
//! leader and all its replicas in sync (used by `consume-cluster` too).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use sluice_client::{Acks, Admin, Compression};

use crate::process::{
    broker_binary, check_cluster_support, start_cluster, start_single_broker, LocalCluster,
};
use crate::produce::{
    parse_compression, print_outcome, run_scenario, scenarios, settle_page_cache, Outcome, Scenario,
};
use crate::report::write_cluster_results;
use crate::{BrokerSettings, ProducerSettings};

#[derive(Parser, Clone)]
pub(crate) struct ClusterArgs {
    /// Brokers in the cluster (each is also a controller voter)
    #[arg(long, default_value_t = 3)]
    pub(crate) brokers: i32,
    /// Replication factor of every topic
    #[arg(long, default_value_t = 3)]
    pub(crate) replication_factor: i16,
    /// min.insync.replicas of every topic
    #[arg(long, default_value_t = 2)]
    pub(crate) min_insync_replicas: i16,
    /// Records per scenario for record sizes below 1 KiB (and for the single-broker baseline)
    #[arg(long, default_value_t = 500_000)]
    pub(crate) records: u64,
    /// Records per scenario for record sizes of 1 KiB and more
    #[arg(long, default_value_t = 100_000)]
    pub(crate) records_large: u64,
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
    pub(crate) producer: ProducerSettings,
    #[command(flatten)]
    pub(crate) broker: BrokerSettings,
    /// Write the results (Markdown) to this file, replacing an earlier cluster section
    #[arg(long)]
    results: Option<PathBuf>,
}

/// Record size from which `cluster --records-large` applies.
pub(crate) const LARGE_RECORD_BYTES: usize = 1024;
/// Record size of the single-broker baseline the cluster's acks=all figure is compared with.
pub(crate) const BASELINE_RECORD_BYTES: usize = 100;
/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

pub(crate) async fn cluster_bench(args: ClusterArgs) -> Result<()> {
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
pub(crate) async fn create_replicated_topic(
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
pub(crate) struct Ratio {
    pub(crate) partitions: i32,
    pub(crate) single: f64,
    pub(crate) replicated: f64,
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
