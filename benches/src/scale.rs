//! The `scale` subcommand: what a broker's costs do as the number of topics and partitions
//! grows, with Apache Kafka measured the same way in the same run.
//!
//! Scenarios, against one broker (a `sluiced` the harness starts with a fresh data dir, or
//! `--bootstrap`; and `--kafka-bootstrap` for the peer):
//!
//! - **create**: `--topics` topics of `--partitions` partitions, in CreateTopics requests of
//!   `--batch` topics (as an AdminClient sends them), timed per tenth of the topics, so the
//!   last tenth can be compared with the first (flat means linear creation cost). Both
//!   brokers answer CreateTopics once the topics are in the metadata and create the logs
//!   right after, so the time until every partition answers ListOffsets (its leader has its
//!   log) is measured too.
//! - **metadata**: one Metadata request for every topic (best of three).
//! - **memory and files**: the broker's RSS and open descriptors, from /proc (`--pid` /
//!   `--kafka-pid` for brokers the harness did not start).
//! - **produce**: `--records` records of 100 bytes, acks=1, spread evenly over every
//!   partition of every topic.
//! - **restart**: SIGTERM, start again on the same data dir, time until it listens and
//!   every partition has a leader; then the same after `kill -9`. For a harness-started
//!   `sluiced`, and with `--kafka-restart` for a Kafka started by
//!   `scripts/kafka-reference.sh` (stopped and started again through that script, which
//!   keeps its data with `start --keep-data`). The clock starts once the old process has
//!   exited, so a slow shutdown is not counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use sluice_client::{
    Acks, Admin, Cluster, ClusterConfig, NewTopic, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord,
};

use crate::process::{broker_binary, free_ports, spawn_sluiced, BrokerProcess};
use crate::report::{machine_description, splice_section};
use crate::BrokerSettings;

const SECTION_BEGIN: &str =
    "<!-- sluice-bench scale: begin (`sluice-bench scale --results` replaces this section up to the end marker) -->";
const SECTION_END: &str = "<!-- sluice-bench scale: end -->";

#[derive(Parser, Clone)]
pub(crate) struct ScaleArgs {
    /// Topics to create
    #[arg(long, default_value_t = 1_000)]
    topics: usize,
    /// Partitions per topic
    #[arg(long, default_value_t = 10)]
    partitions: i32,
    /// Topics per CreateTopics request
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Records produced across all partitions (100 bytes each, acks=1)
    #[arg(long, default_value_t = 500_000)]
    records: usize,
    /// Measure a running broker instead of starting sluiced
    #[arg(long)]
    bootstrap: Option<String>,
    /// The pid of the `--bootstrap` broker (for RSS and open files)
    #[arg(long)]
    pid: Option<u32>,
    /// Also measure this broker (e.g. Apache Kafka from scripts/kafka-reference.sh) in the
    /// same run (restarts too with --kafka-restart)
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// The pid of the `--kafka-bootstrap` broker (scripts/kafka-reference.sh writes it to
    /// target/kafka-reference/kafka.pid)
    #[arg(long)]
    kafka_pid: Option<u32>,
    /// Skip the restart scenarios
    #[arg(long)]
    no_restart: bool,
    /// Also time restarts of the `--kafka-bootstrap` broker, which must have been started by
    /// scripts/kafka-reference.sh (the bench stops and starts it through that script)
    #[arg(long, requires = "kafka_bootstrap")]
    kafka_restart: bool,
    /// Write the table to this Markdown file (replacing its scale section)
    #[arg(long)]
    results: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerSettings,
}

/// What one broker measured.
#[derive(Debug, Default, Clone)]
struct Figures {
    name: String,
    /// Seconds per tenth of the topics, in creation order.
    create_tenths: Vec<f64>,
    create_total: f64,
    /// From the first CreateTopics until every partition answers ListOffsets (its leader
    /// has its log and serves it).
    ready_total: f64,
    metadata_seconds: f64,
    metadata_topics: usize,
    rss_mib: Option<f64>,
    open_files: Option<usize>,
    produce_records_per_sec: f64,
    restart_sigterm: Option<f64>,
    restart_kill9: Option<f64>,
}

pub(crate) async fn scale_bench(args: ScaleArgs) -> Result<()> {
    let prefix = format!(
        "scale-{}-{}-",
        std::process::id(),
        sluice_protocol::clock::now_ms() % 1_000_000
    );
    let mut rows = Vec::new();
    let sluice = match &args.bootstrap {
        Some(bootstrap) => {
            measure(&args, "Sluice (--bootstrap)", bootstrap, args.pid, &prefix).await?
        }
        None => measure_started_sluiced(&args, &prefix).await?,
    };
    print_figures(&sluice);
    rows.push(sluice);
    if let Some(bootstrap) = &args.kafka_bootstrap {
        let mut kafka = measure(&args, "Apache Kafka", bootstrap, args.kafka_pid, &prefix).await?;
        if args.kafka_restart && !args.no_restart {
            (kafka.restart_sigterm, kafka.restart_kill9) =
                restart_kafka(bootstrap, &prefix, args.topics).await?;
        }
        print_figures(&kafka);
        rows.push(kafka);
    }
    let table = table(&args, &rows);
    println!("\n{table}");
    if let Some(path) = &args.results {
        write_results(path, &args, &table)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Start a `sluiced` on a fresh data dir, measure it, restart it twice.
async fn measure_started_sluiced(args: &ScaleArgs, prefix: &str) -> Result<Figures> {
    let binary = broker_binary(&args.broker)?;
    let dir = tempfile::tempdir().context("creating a data dir")?;
    let ports = free_ports(2)?;
    let log = dir.path().join("sluiced.log");
    let data_dir = dir.path().join("data");
    let start = |log_name: &str| -> Result<BrokerProcess> {
        spawn_sluiced(
            &binary,
            &args.broker,
            &data_dir,
            ports[0],
            ports[1],
            None,
            Some(&dir.path().join(log_name)),
        )
    };
    let mut broker = start("sluiced.log")?;
    broker.wait_listening(Instant::now() + Duration::from_secs(30))?;
    let bootstrap = broker.bootstrap.clone();
    let mut figures = measure(args, "Sluice", &bootstrap, Some(broker.pid()), prefix)
        .await
        .with_context(|| format!("broker log: {}", log.display()))?;
    if !args.no_restart {
        let expected = args.topics;
        broker.stop();
        figures.restart_sigterm = Some(
            restart(
                &mut broker,
                &start,
                "restart-term.log",
                &bootstrap,
                prefix,
                expected,
            )
            .await?,
        );
        broker.kill();
        figures.restart_kill9 = Some(
            restart(
                &mut broker,
                &start,
                "restart-kill.log",
                &bootstrap,
                prefix,
                expected,
            )
            .await?,
        );
    }
    broker.stop();
    Ok(figures)
}

/// Start the broker again and time it until it listens and leads every partition.
async fn restart(
    broker: &mut BrokerProcess,
    start: &dyn Fn(&str) -> Result<BrokerProcess>,
    log_name: &str,
    bootstrap: &str,
    prefix: &str,
    topics: usize,
) -> Result<f64> {
    let started = Instant::now();
    *broker = start(log_name)?;
    broker.wait_listening(started + Duration::from_secs(120))?;
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Ok(led) = partitions_led(bootstrap, prefix).await {
            if led.0 == topics && led.1 {
                return Ok(started.elapsed().as_secs_f64());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not lead every partition within 120 s of a restart",
                broker.label()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Restart the reference Kafka after SIGTERM, then after SIGKILL, through
/// scripts/kafka-reference.sh; seconds from launch until every partition is led.
async fn restart_kafka(
    bootstrap: &str,
    prefix: &str,
    topics: usize,
) -> Result<(Option<f64>, Option<f64>)> {
    let mut times = Vec::new();
    for stop in ["stop", "kill"] {
        kafka_reference(&[stop])?;
        let started = Instant::now();
        kafka_reference(&["start", "--keep-data"])?;
        let deadline = started + Duration::from_secs(300);
        loop {
            if let Ok((seen, led)) = partitions_led(bootstrap, prefix).await {
                if seen == topics && led {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("Kafka did not lead every partition within 300 s of a restart ({stop})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("  Kafka restart after {stop}: {seconds:.2} s");
        times.push(seconds);
    }
    Ok((times.first().copied(), times.get(1).copied()))
}

/// Run scripts/kafka-reference.sh with `args`, failing on a non-zero exit.
fn kafka_reference(args: &[&str]) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-reference.sh");
    let status = std::process::Command::new(&script)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} {} failed: {status}", script.display(), args.join(" "));
    }
    Ok(())
}

/// The benchmark's topics in a fresh Metadata answer, and whether all have every leader.
async fn partitions_led(bootstrap: &str, prefix: &str) -> Result<(usize, bool)> {
    let cluster = connect(bootstrap).await?;
    let metadata = cluster.refresh_all_topics().await?;
    let ours: Vec<_> = metadata
        .topics
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    let all_led = ours.iter().all(|(_, topic)| topic.all_leaders_known());
    Ok((ours.len(), all_led))
}

async fn connect(bootstrap: &str) -> Result<std::sync::Arc<Cluster>> {
    let mut config = ClusterConfig::new(bootstrap)?;
    config.connection.client_id = "sluice-bench-scale".to_string();
    config.connection.request_timeout = Duration::from_secs(120);
    Ok(Cluster::connect(config).await?)
}

async fn measure(
    args: &ScaleArgs,
    name: &str,
    bootstrap: &str,
    pid: Option<u32>,
    prefix: &str,
) -> Result<Figures> {
    println!("== {name} at {bootstrap}");
    let mut figures = Figures {
        name: name.to_string(),
        ..Figures::default()
    };
    let admin = Admin::with_cluster(connect(bootstrap).await?);
    let started = Instant::now();
    (figures.create_tenths, figures.create_total) = create_topics(args, &admin, prefix).await?;
    wait_all_led(bootstrap, prefix, args.topics).await?;
    wait_all_serving(&admin, prefix, args.topics).await?;
    figures.ready_total = started.elapsed().as_secs_f64();
    (figures.metadata_seconds, figures.metadata_topics) = metadata_time(bootstrap).await?;
    if let Some(pid) = pid {
        figures.rss_mib = rss_mib(pid);
        figures.open_files = open_files(pid);
    }
    figures.produce_records_per_sec = produce(args, bootstrap, prefix).await?;
    Ok(figures)
}

/// Create the topics in batches; seconds per tenth and in total.
async fn create_topics(args: &ScaleArgs, admin: &Admin, prefix: &str) -> Result<(Vec<f64>, f64)> {
    let tenth = args.topics.div_ceil(10).max(1);
    let mut tenths = Vec::new();
    let started = Instant::now();
    let mut tenth_started = Instant::now();
    let mut created = 0;
    while created < args.topics {
        let count = args
            .batch
            .min(args.topics - created)
            .min(tenth - created % tenth);
        let batch: Vec<NewTopic> = (created..created + count)
            .map(|i| NewTopic {
                name: format!("{prefix}{i}"),
                partitions: args.partitions,
                replication_factor: 1,
                configs: Vec::new(),
            })
            .collect();
        for (topic, result) in admin.create_topics(&batch).await? {
            result.with_context(|| format!("creating {topic}"))?;
        }
        created += count;
        if created % tenth == 0 || created == args.topics {
            let seconds = tenth_started.elapsed().as_secs_f64();
            println!("  created {created} topics: this tenth took {seconds:.2} s");
            tenths.push(seconds);
            tenth_started = Instant::now();
        }
    }
    Ok((tenths, started.elapsed().as_secs_f64()))
}

async fn wait_all_led(bootstrap: &str, prefix: &str, topics: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (seen, led) = partitions_led(bootstrap, prefix).await?;
        if seen == topics && led {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {seen} of {topics} topics visible (all led: {led}) after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until every partition of every topic answers ListOffsets.
async fn wait_all_serving(admin: &Admin, prefix: &str, topics: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    for i in 0..topics {
        let topic = format!("{prefix}{i}");
        while let Err(error) = admin.list_offsets(&topic, OffsetSpec::Latest).await {
            if Instant::now() > deadline {
                bail!("{topic} not served 300 s after its creation: {error}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// The best of three Metadata requests for every topic: seconds, and how many topics.
async fn metadata_time(bootstrap: &str) -> Result<(f64, usize)> {
    let cluster = connect(bootstrap).await?;
    let mut best = f64::MAX;
    let mut topics = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let metadata = cluster.refresh_all_topics().await?;
        best = best.min(started.elapsed().as_secs_f64());
        topics = metadata.topics.len();
    }
    Ok((best, topics))
}

/// Records/s producing `--records` 100-byte records round-robin over every partition.
async fn produce(args: &ScaleArgs, bootstrap: &str, prefix: &str) -> Result<f64> {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = Acks::Leader;
    config.linger_ms = 5;
    let producer = Producer::new(config).await?;
    let value = bytes::Bytes::from(vec![b'x'; 100]);
    let partitions = args.topics * usize::try_from(args.partitions).unwrap_or(0);
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(args.records);
    for i in 0..args.records {
        let target = i % partitions.max(1);
        let topic = format!("{prefix}{}", target / args.partitions as usize);
        let partition = (target % args.partitions as usize) as i32;
        let record = ProducerRecord::new(topic, value.clone()).with_partition(partition);
        deliveries.push(producer.send(record).await?);
    }
    let mut failed = BTreeMap::new();
    for delivery in deliveries {
        if let Err(error) = delivery.await {
            *failed.entry(error.to_string()).or_insert(0usize) += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    producer.close().await;
    if !failed.is_empty() {
        bail!("produce across all partitions failed: {failed:?}");
    }
    Ok(args.records as f64 / seconds)
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn print_figures(figures: &Figures) {
    println!(
        "  {}: create {:.2} s (first tenth {:.2} s, last tenth {:.2} s), all served after {:.2} s, metadata {:.3} s for {} topics, RSS {}, open files {}, produce {:.0} records/s, restart {} (SIGTERM) / {} (kill -9)",
        figures.name,
        figures.create_total,
        figures.create_tenths.first().copied().unwrap_or(0.0),
        figures.create_tenths.last().copied().unwrap_or(0.0),
        figures.ready_total,
        figures.metadata_seconds,
        figures.metadata_topics,
        optional(figures.rss_mib, |v| format!("{v:.0} MiB")),
        optional(figures.open_files, |v| v.to_string()),
        figures.produce_records_per_sec,
        optional(figures.restart_sigterm, |v| format!("{v:.2} s")),
        optional(figures.restart_kill9, |v| format!("{v:.2} s")),
    );
}

fn optional<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "n/a".to_string(), show)
}

/// One Markdown table, a column per broker.
fn table(args: &ScaleArgs, rows: &[Figures]) -> String {
    let partitions = args.topics * usize::try_from(args.partitions).unwrap_or(0);
    let mut out = format!(
        "| {} x {} partitions ({partitions}) |",
        args.topics, args.partitions
    );
    let mut rule = "|---|".to_string();
    for row in rows {
        out.push_str(&format!(" {} |", row.name));
        rule.push_str("---|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let line = |label: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = rows.iter().map(cell).collect();
        format!("| {label} | {} |\n", cells.join(" | "))
    };
    out.push_str(&line(
        &format!("create all, batches of {}", args.batch),
        &|f| format!("{:.2} s", f.create_total),
    ));
    out.push_str(&line("create: first tenth of the topics", &|f| {
        optional(f.create_tenths.first().copied(), |v| format!("{v:.2} s"))
    }));
    out.push_str(&line("create: last tenth of the topics", &|f| {
        optional(f.create_tenths.last().copied(), |v| format!("{v:.2} s"))
    }));
    out.push_str(&line("until every partition answers ListOffsets", &|f| {
        format!("{:.2} s", f.ready_total)
    }));
    out.push_str(&line("Metadata for all topics", &|f| {
        format!("{:.3} s ({} topics)", f.metadata_seconds, f.metadata_topics)
    }));
    out.push_str(&line("RSS", &|f| {
        optional(f.rss_mib, |v| format!("{v:.0} MiB"))
    }));
    out.push_str(&line("open files", &|f| {
        optional(f.open_files, |v| v.to_string())
    }));
    out.push_str(&line(
        &format!(
            "produce {} x 100 B over all partitions, acks=1",
            args.records
        ),
        &|f| format!("{:.0} records/s", f.produce_records_per_sec),
    ));
    out.push_str(&line(
        "restart after SIGTERM until every partition is led",
        &|f| optional(f.restart_sigterm, |v| format!("{v:.2} s")),
    ));
    out.push_str(&line(
        "restart after kill -9 until every partition is led",
        &|f| optional(f.restart_kill9, |v| format!("{v:.2} s")),
    ));
    out
}

fn write_results(path: &Path, args: &ScaleArgs, table: &str) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let section = format!(
        "{SECTION_BEGIN}\n## Scale: {} topics x {} partitions on one broker\n\nCommand: `{}`\n\nMachine: {}\n\n{table}\n{SECTION_END}\n\n",
        args.topics,
        args.partitions,
        command.join(" "),
        machine_description("the broker(s) and the client on the same machine, loopback"),
    );
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let updated = splice_section(&existing, &section, SECTION_BEGIN, SECTION_END);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}
