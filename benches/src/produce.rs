//! The `produce` subcommand: one broker (started here, or an existing one at
//! `--bootstrap`), one topic per scenario. Also the parts every subcommand measures
//! producing with: the scenarios (ack mode x record size x partition count), one timed
//! producer run ([`run_scenario`]: records/s, MB/s, ack latency percentiles) and its
//! console line.
//!
//! Latency is measured per record from `send` to its delivery future resolving, observed
//! by a collector task that awaits futures in send order.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use sluice_client::{Acks, Admin, Compression, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::process::start_single_broker;
use crate::report::write_results;
use crate::{BrokerSettings, ProducerSettings};

#[derive(Parser, Clone)]
pub(crate) struct ProduceArgs {
    /// Records per scenario
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) records: u64,
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
    pub(crate) producer: ProducerSettings,
    /// Measure an already running broker at this address instead of starting sluiced
    #[arg(long)]
    pub(crate) bootstrap: Option<String>,
    #[command(flatten)]
    pub(crate) broker: BrokerSettings,
    /// Write the results table (Markdown) to this file
    #[arg(long)]
    results: Option<PathBuf>,
}

pub(crate) struct Scenario {
    pub(crate) acks: Acks,
    pub(crate) acks_label: String,
    pub(crate) size: usize,
    pub(crate) partitions: i32,
}

pub(crate) struct Outcome {
    pub(crate) records: u64,
    pub(crate) records_per_second: f64,
    pub(crate) megabytes_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

/// Write back dirty pages before a scenario, so that it does not pay for the writeback of
/// the one before it (a 1 KiB scenario leaves gigabytes dirty, and the kernel throttles
/// writers while it flushes them).
pub(crate) fn settle_page_cache() {
    if let Err(error) = std::process::Command::new("sync").status() {
        eprintln!("sync failed ({error}); scenarios may pay for each other's writeback");
    }
}

/// Every combination of ack mode, size and partition count, in that nesting order.
pub(crate) fn scenarios(
    acks: &[String],
    sizes: &[usize],
    partitions: &[i32],
) -> Result<Vec<Scenario>> {
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

pub(crate) fn print_outcome(setup: &str, scenario: &Scenario, outcome: &Outcome) {
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

pub(crate) async fn produce_bench(args: ProduceArgs) -> Result<()> {
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

pub(crate) async fn run_scenario(
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

pub(crate) fn parse_compression(settings: &ProducerSettings) -> Result<Compression> {
    Compression::parse(&settings.compression)
        .with_context(|| format!("unknown compression '{}'", settings.compression))
}
