//! `sluice-bench`: produce throughput and acknowledgement latency per ack mode.
//!
//! `sluice-bench produce` starts a release `sluiced` on loopback with a fresh data dir (or
//! uses `--bootstrap` to measure a running broker, e.g. Apache Kafka for comparison),
//! creates one topic per scenario, produces with Sluice's own client, and prints
//! records/s, MB/s and p50/p99/p99.9 ack latency for each combination of acks (0, 1, all),
//! record size and partition count. `--results FILE` writes the table as Markdown with the
//! command line and the machine description.
//!
//! Latency is measured per record from `send` to its delivery future resolving, observed
//! by a collector task that awaits futures in send order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use sluice_client::{Acks, Compression, Producer, ProducerConfig, ProducerRecord};
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
    /// Producer linger in milliseconds
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch size limit in bytes
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Compression codec: none, gzip, snappy, lz4, zstd
    #[arg(long, default_value = "none")]
    compression: String,
    /// Measure an already running broker at this address instead of starting sluiced
    #[arg(long)]
    bootstrap: Option<String>,
    /// The sluiced binary to start (default: target/release/sluiced beside this binary)
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Extra flags for the started sluiced, e.g. "--durability fsync"
    #[arg(long, allow_hyphen_values = true)]
    broker_args: Option<String>,
    /// Write the results table (Markdown) to this file
    #[arg(long)]
    results: Option<PathBuf>,
}

struct Scenario {
    acks: Acks,
    acks_label: String,
    size: usize,
    partitions: i32,
}

struct Outcome {
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
    }
}

async fn produce_bench(args: ProduceArgs) -> Result<()> {
    let compression = Compression::parse(&args.compression)
        .with_context(|| format!("unknown compression '{}'", args.compression))?;
    let mut scenarios = Vec::new();
    for acks_label in &args.acks {
        let acks = Acks::parse(acks_label).with_context(|| format!("bad acks '{acks_label}'"))?;
        for &size in &args.sizes {
            for &partitions in &args.partitions {
                scenarios.push(Scenario {
                    acks,
                    acks_label: acks_label.clone(),
                    size,
                    partitions,
                });
            }
        }
    }

    let data_dir = tempfile::tempdir()?;
    let (bootstrap, mut broker) = match &args.bootstrap {
        Some(b) => (b.clone(), None),
        None => {
            let (child, bootstrap) = start_broker(&args, data_dir.path())?;
            (bootstrap, Some(child))
        }
    };

    let mut rows = Vec::new();
    let run_id = std::process::id();
    for scenario in &scenarios {
        let topic = format!(
            "bench-{run_id}-acks{}-{}b-{}p",
            scenario.acks_label, scenario.size, scenario.partitions
        );
        let admin = sluice_client::Admin::new(&bootstrap).await?;
        admin
            .create_topic(&topic, scenario.partitions, 1, Default::default())
            .await
            .with_context(|| format!("creating {topic}"))?;
        let outcome = run_scenario(&args, &bootstrap, &topic, scenario, compression).await?;
        println!(
            "acks={:<3} size={:>5}B partitions={:<2} {:>12.0} records/s {:>8.1} MB/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms",
            scenario.acks_label,
            scenario.size,
            scenario.partitions,
            outcome.records_per_second,
            outcome.megabytes_per_second,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.p999_ms
        );
        rows.push((scenario, outcome));
    }

    if let Some(child) = broker.as_mut() {
        stop_broker(child);
    }
    if let Some(path) = &args.results {
        write_results(path, &args, &rows)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn run_scenario(
    args: &ProduceArgs,
    bootstrap: &str,
    topic: &str,
    scenario: &Scenario,
    compression: Compression,
) -> Result<Outcome> {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = scenario.acks;
    config.linger_ms = args.linger_ms;
    config.batch_bytes_max = args.batch_bytes;
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
        let mut last = Instant::now();
        while let Some((sent, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(_) => {
                    last = Instant::now();
                    let micros = last.duration_since(sent).as_micros() as u64;
                    histogram.saturating_record(micros.max(1));
                }
                Err(_) => failures += 1,
            }
        }
        (histogram, failures, last)
    });

    let started = Instant::now();
    for i in 0..args.records {
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
    let (histogram, failures, last) = collector.await?;
    producer.close().await;
    if failures > 0 {
        bail!("{failures} records failed in {topic}");
    }
    let elapsed = last.duration_since(started).as_secs_f64().max(1e-9);
    let records_per_second = args.records as f64 / elapsed;
    Ok(Outcome {
        records_per_second,
        megabytes_per_second: records_per_second * scenario.size as f64 / 1e6,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        p999_ms: histogram.value_at_quantile(0.999) as f64 / 1000.0,
    })
}

fn start_broker(args: &ProduceArgs, data_dir: &Path) -> Result<(Child, String)> {
    let binary = match &args.broker_bin {
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
    let port = free_port()?;
    let metrics_port = free_port()?;
    let bootstrap = format!("127.0.0.1:{port}");
    let mut command = Command::new(&binary);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(&bootstrap)
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(extra) = &args.broker_args {
        command.args(extra.split_whitespace());
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        if Instant::now() > deadline {
            bail!("sluiced did not start listening on {bootstrap}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, bootstrap))
}

fn stop_broker(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn machine_description() -> String {
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
    format!(
        "{cpus} cores ({model}), {memory} RAM; broker and producer on the same machine, loopback"
    )
}

fn write_results(path: &Path, args: &ProduceArgs, rows: &[(&Scenario, Outcome)]) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let mut table = String::new();
    table.push_str(&format!(
        "### Produce, {} records per scenario, compression {}, linger {} ms, batch {} bytes\n\n",
        args.records, args.compression, args.linger_ms, args.batch_bytes
    ));
    table.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    table.push_str(&format!("Machine: {}\n\n", machine_description()));
    table.push_str(&format!(
        "Broker: {}\n\n",
        args.bootstrap
            .as_deref()
            .map(|b| format!("existing broker at {b}"))
            .unwrap_or_else(|| format!(
                "sluiced started by the harness{}",
                args.broker_args
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
