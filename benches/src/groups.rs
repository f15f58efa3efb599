//! The `groups` subcommand: how fast one group coordinator takes offset commits, with Apache
//! Kafka measured the same way in the same run (`--kafka-bootstrap`).
//!
//! `--committers` clients each commit for their own group (so the groups spread over the
//! `__consumer_offsets` partitions, as real groups do), over their own connection, one
//! OffsetCommit at a time as a consumer's `commitSync` does (simple commits: generation -1,
//! `--partitions` partitions per commit, the offsets growing), for `--seconds`. Printed:
//! commits acknowledged per second (requests and partitions) and the median and p99
//! latency of one commit.
//!
//! Then, with the client crate's consumers (`group_consume.rs`): the time for `--members`
//! consumers to become a stable group on `--stable-partitions` partitions (classic
//! protocol), and consuming through a group against consuming assigned partitions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::{Connection, ConnectionConfig};
use sluice_client::{Admin, GroupProtocol};

use crate::group_consume::{group_vs_assign, stable_group_seconds};
use crate::process::{broker_binary, free_ports, spawn_sluiced};
use crate::report::{machine_description, splice_section};
use crate::BrokerSettings;

const SECTION_BEGIN: &str =
    "<!-- sluice-bench groups: begin (`sluice-bench groups --results` replaces this section up to the end marker) -->";
const SECTION_END: &str = "<!-- sluice-bench groups: end -->";
/// Errors a committer retries after (the coordinator is being created or loads).
const RETRIABLE: [i16; 3] = [14, 15, 16];

#[derive(Parser, Clone)]
pub(crate) struct GroupsArgs {
    /// Concurrent committers, each with its own group and connection
    #[arg(long, default_value_t = 16)]
    committers: usize,
    /// Partitions in each commit
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// How long to commit, in seconds
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Measure a running broker instead of starting sluiced
    #[arg(long)]
    bootstrap: Option<String>,
    /// Also measure this broker (e.g. Apache Kafka from scripts/kafka-reference.sh)
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// Members of the group whose time to become stable is measured
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Partitions of that group's topic
    #[arg(long, default_value_t = 100)]
    stable_partitions: i32,
    /// Records read through a group and assigned, to compare
    #[arg(long, default_value_t = 200_000)]
    consume_records: usize,
    /// Write the table to this Markdown file (replacing its groups section)
    #[arg(long)]
    results: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerSettings,
}

/// What one broker measured.
struct Figures {
    name: String,
    commits_per_sec: f64,
    partitions_per_sec: f64,
    median_ms: f64,
    p99_ms: f64,
    stable_seconds: f64,
    stable_consumer_seconds: f64,
    assigned_records_per_sec: f64,
    group_records_per_sec: f64,
}

pub(crate) async fn groups_bench(args: GroupsArgs) -> Result<()> {
    let mut rows = Vec::new();
    match &args.bootstrap {
        Some(bootstrap) => rows.push(measure(&args, "Sluice (--bootstrap)", bootstrap).await?),
        None => {
            let binary = broker_binary(&args.broker)?;
            let dir = tempfile::tempdir().context("creating a data dir")?;
            let ports = free_ports(2)?;
            let mut broker = spawn_sluiced(
                &binary,
                &args.broker,
                &dir.path().join("data"),
                ports[0],
                ports[1],
                None,
                Some(&dir.path().join("sluiced.log")),
            )?;
            broker.wait_listening(Instant::now() + Duration::from_secs(30))?;
            let bootstrap = broker.bootstrap.clone();
            rows.push(measure(&args, "Sluice", &bootstrap).await?);
            broker.stop();
        }
    }
    if let Some(bootstrap) = &args.kafka_bootstrap {
        rows.push(measure(&args, "Apache Kafka", bootstrap).await?);
    }
    let table = table(&args, &rows);
    println!("\n{table}");
    if let Some(path) = &args.results {
        write_results(path, &table)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn measure(args: &GroupsArgs, name: &str, bootstrap: &str) -> Result<Figures> {
    println!("== {name} at {bootstrap}");
    let topic = format!("bench-commits-{}", std::process::id());
    let admin = Admin::new(bootstrap).await?;
    admin
        .create_topic(&topic, args.partitions, 1, &[])
        .await
        .with_context(|| format!("creating {topic}"))?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.committers)
        .map(|i| {
            let (bootstrap, topic) = (bootstrap.to_string(), topic.clone());
            let group = format!("bench-group-{}-{i}", std::process::id());
            let partitions = args.partitions;
            tokio::spawn(async move {
                commit_until(&bootstrap, &group, &topic, partitions, deadline).await
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        bail!("no commit was acknowledged");
    }
    latencies.sort_unstable();
    let quantile =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let (median_ms, p99_ms) = (quantile(0.5), quantile(0.99));
    let commits_per_sec = latencies.len() as f64 / seconds;
    println!("  {commits_per_sec:.0} commits/s, median {median_ms:.2} ms, p99 {p99_ms:.2} ms");
    let tag = format!(
        "{}-{}",
        std::process::id(),
        sluice_protocol::clock::now_ms()
    );
    let group = (args.members, args.stable_partitions);
    let stable_seconds =
        stable_group_seconds(bootstrap, &tag, group, GroupProtocol::Classic).await?;
    let stable_consumer_seconds =
        stable_group_seconds(bootstrap, &tag, group, GroupProtocol::Consumer).await?;
    println!(
        "  a group of {} stable after {stable_seconds:.2} s (classic), {stable_consumer_seconds:.2} s (consumer)",
        args.members
    );
    let (assigned, grouped) = group_vs_assign(bootstrap, &tag, args.consume_records).await?;
    println!("  consuming: {assigned:.0} records/s assigned, {grouped:.0} through a group");
    Ok(Figures {
        name: name.to_string(),
        commits_per_sec,
        partitions_per_sec: commits_per_sec * f64::from(args.partitions),
        median_ms,
        p99_ms,
        stable_seconds,
        stable_consumer_seconds,
        assigned_records_per_sec: assigned,
        group_records_per_sec: grouped,
    })
}

/// One committer: find the group's coordinator, then commit until `deadline`; the latency
/// of every acknowledged commit (after the coordinator answered the first).
async fn commit_until(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) -> Result<Vec<Duration>> {
    let config = ConnectionConfig {
        client_id: "sluice-bench-groups".to_string(),
        ..ConnectionConfig::default()
    };
    let connection = coordinator(bootstrap, group, &config).await?;
    let mut latencies = Vec::new();
    let mut offset = 0i64;
    while Instant::now() < deadline {
        offset += 1;
        let request = commit_request(group, topic, partitions, offset);
        let sent = Instant::now();
        let response = connection
            .send_versioned(request, 8, Duration::from_secs(30))
            .await?;
        let codes: Vec<i16> = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        match codes.iter().copied().find(|&code| code != 0) {
            None => latencies.push(sent.elapsed()),
            Some(code) if RETRIABLE.contains(&code) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Some(code) => bail!("commit for {group} failed with error code {code}"),
        }
    }
    Ok(latencies)
}

/// A connection to `group`'s coordinator, waiting while it is created or loads.
async fn coordinator(
    bootstrap: &str,
    group: &str,
    config: &ConnectionConfig,
) -> Result<Connection> {
    let any = Connection::connect(bootstrap.split(',').next().unwrap_or(bootstrap), config).await?;
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let request =
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
        let response = any
            .send_versioned(request, 3, Duration::from_secs(30))
            .await?;
        if response.error_code == 0 {
            let address = format!("{}:{}", response.host.as_str(), response.port);
            return Ok(Connection::connect(&address, config).await?);
        }
        if Instant::now() > give_up {
            bail!(
                "no coordinator for {group} after 60 s (error code {})",
                response.error_code
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn commit_request(group: &str, topic: &str, partitions: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                    })
                    .collect(),
            )])
}

fn table(args: &GroupsArgs, rows: &[Figures]) -> String {
    let mut out = format!(
        "| offset commits, {} committers x {} partition(s), {} s |",
        args.committers, args.partitions, args.seconds
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
    out.push_str(&line("commits/s", &|f| format!("{:.0}", f.commits_per_sec)));
    out.push_str(&line("partitions committed/s", &|f| {
        format!("{:.0}", f.partitions_per_sec)
    }));
    out.push_str(&line("commit latency, median", &|f| {
        format!("{:.2} ms", f.median_ms)
    }));
    out.push_str(&line("commit latency, p99", &|f| {
        format!("{:.2} ms", f.p99_ms)
    }));
    out.push_str(&line(
        &format!(
            "{} consumers on {} partitions stable after (classic)",
            args.members, args.stable_partitions
        ),
        &|f| format!("{:.2} s", f.stable_seconds),
    ));
    out.push_str(&line("the same, consumer protocol (KIP-848)", &|f| {
        format!("{:.2} s", f.stable_consumer_seconds)
    }));
    out.push_str(&line(
        &format!(
            "consume {} x 100 B, assigned partitions",
            args.consume_records
        ),
        &|f| format!("{:.0} records/s", f.assigned_records_per_sec),
    ));
    out.push_str(&line("the same through a group", &|f| {
        format!(
            "{:.0} records/s ({:+.0}%)",
            f.group_records_per_sec,
            (f.group_records_per_sec / f.assigned_records_per_sec - 1.0) * 100.0
        )
    }));
    out
}

fn write_results(path: &Path, table: &str) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let section = format!(
        "{SECTION_BEGIN}\n## Groups: offset commits on one coordinator\n\nCommand: `{}`\n\nMachine: {}\n\n{table}\n{SECTION_END}\n\n",
        command.join(" "),
        machine_description("the broker(s) and the client on the same machine, loopback"),
    );
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let updated = splice_section(&existing, &section, SECTION_BEGIN, SECTION_END);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}
