//! `sluice`: the command-line client.
//!
//! Owns argument parsing (clap derive) and the text formats of the commands; every
//! operation is a thin wrapper over the library's [`Admin`], [`Producer`] and [`Consumer`].
//! Errors end the program with one line on stderr and a non-zero exit code. Logs go to
//! stderr, filtered by `RUST_LOG` (default: warnings only).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_client::health::{self, now_ms};
use sluice_client::reassignment::{
    decommission_plan, ids, plan_progress, PartitionProgress, PartitionReplicas, PlannedMove,
    PlannedPartition, ReassignmentPlan,
};
use sluice_client::scrape::Endpoint;
use sluice_client::views::{self, OutputFormat};
use sluice_client::{
    Acks, Admin, Cluster, ClusterConfig, Compression, Consumer, ConsumerConfig, DeliveryFuture,
    ElectionOutcome, ElectionResult, ElectionType, OngoingReassignment, Producer, ProducerConfig,
    ProducerRecord, ReassignmentOutcome, ReassignmentResult, SeekTo,
};
use tokio::io::AsyncBufReadExt;

/// How long produce and consume wait for a topic to appear in metadata (it may have just
/// been created) before reporting that it does not exist.
const CLI_METADATA_WAIT: Duration = Duration::from_secs(5);
/// How often `broker decommission --wait` asks how far the moves have got.
const REASSIGNMENT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How many polls in a row must see a partition failed (not moving, not where the plan
/// puts it) before `--wait` gives up early: one answer may come from a broker whose
/// metadata lags the controller's.
const FAILED_POLLS_TO_GIVE_UP: u32 = 6;
/// ANSI: cursor home, clear the screen (between `top` refreshes on a terminal).
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Command-line client for Sluice and any Kafka-protocol broker.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
struct Cli {
    /// Brokers to bootstrap from, comma-separated.
    #[arg(
        long,
        global = true,
        env = "SLUICE_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    bootstrap: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, grow and delete topics.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Produce stdin to a topic, one record per line.
    Produce(ProduceArgs),
    /// Print a topic's records to stdout, one value per line.
    Consume(ConsumeArgs),
    /// Cluster health: brokers, the controller quorum, partition counts (`cluster` alone is
    /// `cluster status`).
    Cluster(ClusterArgs),
    /// A live view of produce rates and replication lag, refreshed every --interval-ms.
    ///
    /// Per topic: records produced per second (from partition log end offsets, so it works
    /// on Kafka too), bytes in/out per second (from the brokers' /metrics given with
    /// --metrics; these need per-topic metrics on, Sluice's --metrics-per-partition, the
    /// default, and show "-" when no endpoint exports them), under-replicated and offline
    /// partitions, the largest replica lag and the unreachable replicas; then the
    /// partitions that need attention most (offline, under-replicated, most lagging).
    /// Clears the screen between refreshes on a terminal; one JSON object per refresh with
    /// --output json. Runs until interrupted, or for --iterations refreshes.
    Top(TopArgs),
    /// Partition administration: leader elections, reassignments.
    Partition {
        #[command(subcommand)]
        command: PartitionCommand,
    },
    /// Broker administration: moving every replica off a broker.
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
}

/// How a view is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum Output {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

impl Output {
    fn format(self) -> OutputFormat {
        match self {
            Output::Table => OutputFormat::Table,
            Output::Json => OutputFormat::Json,
        }
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ClusterArgs {
    #[command(subcommand)]
    command: Option<ClusterCommand>,
    #[command(flatten)]
    status: StatusArgs,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Brokers, the controller quorum and partition counts.
    ///
    /// The brokers (id, address, rack, fenced?, controller?), the controller quorum
    /// (leader, epoch, high watermark, and each voter's and observer's log end offset, lag
    /// = high watermark - log end offset, and when it last held everything the leader had,
    /// "-" where the leader does not know; a Sluice leader knows it only of itself) and
    /// the counts of topics, partitions,
    /// under-replicated (fewer in-sync replicas than replicas) and offline (no leader)
    /// partitions. "fenced": as DescribeCluster v2 reports it (Kafka 4.0+); otherwise a
    /// broker the cluster knows (a partition replica, a quorum member) that is not listed
    /// as a live broker. What a cluster does not answer (DescribeQuorum before Kafka 3.3)
    /// shows as "-". DescribeQuorum goes to the controller DescribeCluster names (the
    /// quorum leader, in Sluice), and only if that fails to any broker and the leader it
    /// names.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// table, or json: one pretty-printed object {cluster_id, controller_id, brokers: [{id,
    /// address, rack, fenced, controller}], fenced_source ("reported" or "derived"), quorum:
    /// {leader_id, leader_epoch, high_watermark, voters and observers: [{id,
    /// log_end_offset, lag, last_fetch_timestamp, last_caught_up_timestamp}]} or null,
    /// quorum_error (why the quorum is null, or null), partitions: {topics, partitions,
    /// under_replicated, offline}}; unknown values are null.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// How long one broker may take to connect and answer one request (DescribeCluster,
    /// Metadata, each DescribeQuorum).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct TopArgs {
    /// Time between refreshes.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval_ms: u64,
    /// Stop after this many refreshes (default: run until interrupted).
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
    /// Brokers' Prometheus endpoints (Sluice's --metrics-listen), each HOST:PORT,
    /// http://HOST:PORT (both read /metrics) or http://HOST:PORT/PATH, for bytes in/out per
    /// topic (sluice_topic_bytes_in_total / _out_total, summed over them). The brokers
    /// must export per-topic series (--metrics-per-partition, on by default); where none
    /// does, the byte rates show "-".
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ENDPOINT[,ENDPOINT...]",
        value_parser = parse_endpoint
    )]
    metrics: Vec<Endpoint>,
    /// Only these topics (repeatable; default: every topic but internal ones).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Partitions shown per refresh in the table (JSON has them all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    partitions_max: usize,
    /// How long one broker may take to answer before its replicas count as unreachable.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
    /// table, or json: one object per refresh, one per line (JSON lines): {iteration,
    /// time_ms, elapsed_ms, topics: [{topic, partitions, records_per_sec,
    /// bytes_in_per_sec, bytes_out_per_sec, under_replicated_partitions,
    /// offline_partitions, max_lag, unreachable_replicas}], partitions (every one, not
    /// only --partitions-max): [{topic, partition, leader, replicas, isr,
    /// under_replicated, records_per_sec, max_lag, max_lag_replica,
    /// unavailable_replicas}], metrics_errors: {endpoint: error}}; unknown values are null.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum BrokerCommand {
    /// Move every replica off broker N: in each partition that has N as a replica, N is
    /// replaced (in the same position) by the live broker that is not already a replica and
    /// has the fewest replicas so far. Prints the moves, one line per partition, and the
    /// plan as kafka-reassign-partitions JSON (for `partition reassign --status --plan`).
    /// Refuses, moving nothing, if some partition has no live broker to go to.
    Decommission {
        /// The broker id to empty.
        broker: i32,
        /// Wait until every move is complete (the partition is on its target replicas and no
        /// reassignment runs), at most --timeout-secs.
        #[arg(long, conflicts_with = "dry_run")]
        wait: bool,
        /// How long --wait waits before it fails.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout_secs: u64,
        /// Print the plan without submitting it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PartitionCommand {
    /// Move leadership back to each partition's preferred replica (the first in its replica
    /// list) where that replica is in sync; with --unclean, give each partition that has no
    /// leader any live replica instead. Prints one line per partition; exits non-zero if any
    /// election failed (a partition already led as asked is not a failure).
    ElectLeaders {
        /// Only this topic's partitions (default: every partition of every topic).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Unclean election: a leaderless partition gets a replica that may lack
        /// acknowledged records, which are then lost.
        #[arg(long)]
        unclean: bool,
    },
    /// Move partitions to new replicas (KIP-455) as a kafka-reassign-partitions JSON plan
    /// says: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4]}]}.
    /// A longer or shorter replica list changes the replication factor. New replicas copy
    /// the log from the leader and join the ISR, then the removed ones are dropped and
    /// delete their copy. Prints one line per partition; exits non-zero if any was refused.
    /// With --status, shows the running reassignments instead, and with --plan whether
    /// each of its partitions is complete, in progress or failed.
    Reassign {
        /// The plan file (kafka-reassign-partitions JSON).
        #[arg(long, value_name = "FILE", required_unless_present = "status")]
        plan: Option<PathBuf>,
        /// Cancel the running reassignments of the plan's partitions (they go back to their
        /// original replicas).
        #[arg(long, requires = "plan", conflicts_with = "status")]
        cancel: bool,
        /// Show running reassignments (every partition's, or the plan's progress with
        /// --plan) instead of submitting anything. Exits non-zero if a planned partition
        /// failed (does not exist, or is on other replicas with nothing running).
        #[arg(long)]
        status: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic; returns once every partition has a leader.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 1)]
        replication_factor: i16,
        /// Topic config override, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics (internal topics are left out).
    List,
    /// Show a topic's partitions, replicas and their lag, and its config overrides.
    ///
    /// The config overrides, and per partition: leader, leader epoch, replicas,
    /// in-sync replicas (ISR), high watermark, and per replica its log end offset (asked of
    /// that replica's broker; "unreachable" if it cannot be asked), its lag in offsets (the
    /// leader's log end offset - its own) and its lag in ms: the age of the oldest record it
    /// lacks, i.e. now - the timestamp of the leader's record at the replica's log end
    /// offset (0 when caught up; "-" when that record is not yet below the high watermark,
    /// so not readable, or cannot be read). Under-replicated partitions (fewer in-sync
    /// replicas than replicas) are marked "!" and counted on the last line.
    Describe {
        /// Topic name.
        name: String,
        /// Show every config, not only the ones set on this topic.
        #[arg(long)]
        all_configs: bool,
        /// table, or json: one pretty-printed object {topic, internal, partition_count,
        /// replication_factor, configs: {name: value}, under_replicated_partitions,
        /// partitions: [{partition, leader, leader_epoch, replicas, isr, offline_replicas,
        /// high_watermark, under_replicated, replica_states: [{broker, leader, in_isr,
        /// log_end_offset, lag, lag_ms, unavailable: null or {kind: "unreachable" or
        /// "error", detail}}]}]}; unknown values are null.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// How long one broker may take to answer before its replicas count as unreachable.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Grow a topic to a larger number of partitions.
    Alter {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        partitions: i32,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP are errors).
    /// Without it, records have no key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgement: 0 (none), 1 (leader) or all (every in-sync replica).
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    acks: Acks,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Write every record to this partition (default: by key hash; keyless records stick
    /// to one partition per batch).
    #[arg(long)]
    partition: Option<i32>,
    /// Header added to every record, e.g. --header source=cli (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// How long a batch waits for more records before it is sent.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Largest batch in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes_max: usize,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Start at the earliest retained record (default: only records produced from now on).
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition (default: all partitions).
    #[arg(long)]
    partition: Option<i32>,
    /// Exit after printing this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Exit once no record has arrived for this long (default: run until interrupted).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print the key (or "null") and the key separator before each value.
    #[arg(long)]
    print_key: bool,
    /// Separator printed between key and value with --print-key.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    key_separator: String,
    /// Consumer group (not supported yet: the command fails with a message saying so).
    #[arg(long)]
    group: Option<String>,
    /// The rack this consumer runs in (Kafka's client.rack): lets the partition leader
    /// point it at an in-sync replica in the same rack (follower reads, KIP-392).
    #[arg(long, value_name = "RACK")]
    client_rack: Option<String>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text)
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    Acks::parse(text).ok_or_else(|| format!("expected 0, 1 or all, got '{text}'"))
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::parse(text)
        .ok_or_else(|| format!("expected none, gzip, snappy, lz4 or zstd, got '{text}'"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let bootstrap = cli.bootstrap;
    match cli.command {
        Command::Topic { command } => topic(&bootstrap, command).await,
        Command::Produce(args) => produce(&bootstrap, args).await,
        Command::Consume(args) => consume(&bootstrap, args).await,
        Command::Cluster(args) => {
            let status = match args.command {
                Some(ClusterCommand::Status(status)) => status,
                None => args.status,
            };
            cluster_status(&bootstrap, status).await
        }
        Command::Top(args) => top(&bootstrap, args).await,
        Command::Partition { command } => partition(&bootstrap, command).await,
        Command::Broker { command } => broker(&bootstrap, command).await,
    }
}

async fn partition(bootstrap: &str, command: PartitionCommand) -> anyhow::Result<()> {
    let admin = Admin::new(bootstrap).await?;
    match command {
        PartitionCommand::ElectLeaders {
            topic,
            partition,
            unclean,
        } => {
            let election = if unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            let partitions = match (topic, partition) {
                (None, _) => None,
                (Some(topic), Some(partition)) => Some(vec![(topic, partition)]),
                (Some(topic), None) => {
                    let info = admin.cluster().topic(&topic, CLI_METADATA_WAIT).await?;
                    Some(
                        (0..info.partition_count())
                            .map(|p| (topic.clone(), p))
                            .collect(),
                    )
                }
            };
            let results = admin.elect_leaders(election, partitions).await?;
            let mut out = std::io::stdout().lock();
            for result in &results {
                writeln!(out, "{}", election_line(election, result))?;
            }
            let failed = results.iter().filter(|r| r.outcome.is_failure()).count();
            if failed > 0 {
                bail!(
                    "{} leader election failed for {failed} of {} partitions",
                    election.name(),
                    results.len()
                );
            }
        }
        PartitionCommand::Reassign {
            plan,
            cancel,
            status,
        } => {
            let plan = plan.as_deref().map(read_plan).transpose()?;
            match (plan, status) {
                (None, _) => reassignment_status(&admin).await?,
                (Some(plan), true) => plan_status(&admin, &plan).await?,
                (Some(plan), false) => submit_plan(&admin, &plan, cancel).await?,
            }
        }
    }
    Ok(())
}

/// Read and validate a kafka-reassign-partitions JSON file.
fn read_plan(path: &Path) -> anyhow::Result<ReassignmentPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan {}", path.display()))?;
    ReassignmentPlan::from_json(&text).with_context(|| format!("the plan {}", path.display()))
}

/// `partition reassign --plan FILE [--cancel]`: one line per partition, an error if any
/// was refused.
async fn submit_plan(admin: &Admin, plan: &ReassignmentPlan, cancel: bool) -> anyhow::Result<()> {
    let requests = if cancel {
        plan.cancellations()
    } else {
        plan.reassignments()
    };
    let results = admin.alter_partition_reassignments(requests).await?;
    let targets: HashMap<(&str, i32), &[i32]> = plan
        .partitions
        .iter()
        .map(|p| ((p.topic.as_str(), p.partition), p.replicas.as_slice()))
        .collect();
    let mut out = std::io::stdout().lock();
    for result in &results {
        let target = (!cancel)
            .then(|| targets.get(&(result.topic.as_str(), result.partition)))
            .flatten()
            .copied();
        writeln!(out, "{}", reassignment_line(result, target))?;
    }
    fail_if_refused(&results, if cancel { "cancelling" } else { "reassignment" })
}

/// An error naming how many partitions were refused, if any.
fn fail_if_refused(results: &[ReassignmentResult], what: &str) -> anyhow::Result<()> {
    let failed = results.iter().filter(|r| r.outcome.is_failure()).count();
    if failed > 0 {
        bail!("{what} failed for {failed} of {} partitions", results.len());
    }
    Ok(())
}

/// One partition's line of `partition reassign`: the target (when one was asked for) and
/// what the controller did.
fn reassignment_line(result: &ReassignmentResult, target: Option<&[i32]>) -> String {
    let outcome = match &result.outcome {
        ReassignmentOutcome::Accepted => "accepted".to_string(),
        ReassignmentOutcome::Cancelled => "cancelled".to_string(),
        ReassignmentOutcome::NoneInProgress => {
            "no reassignment in progress (NO_REASSIGNMENT_IN_PROGRESS)".to_string()
        }
        ReassignmentOutcome::Failed(error) => format!("failed: {error}"),
    };
    let replicas = target.map_or(String::new(), |t| format!("Replicas: {}\t", ids(t)));
    format!(
        "Topic: {}\tPartition: {}\t{replicas}Outcome: {outcome}",
        result.topic, result.partition
    )
}

/// One running reassignment's line of `partition reassign --status`.
fn ongoing_line(ongoing: &OngoingReassignment) -> String {
    format!(
        "Topic: {}\tPartition: {}\tReplicas: {}\tAdding: {}\tRemoving: {}",
        ongoing.topic,
        ongoing.partition,
        ids(&ongoing.replicas),
        ids(&ongoing.adding),
        ids(&ongoing.removing)
    )
}

/// One planned partition's line of `partition reassign --status --plan`.
fn progress_line(planned: &PlannedPartition, progress: &PartitionProgress) -> String {
    format!(
        "Topic: {}\tPartition: {}\tReplicas: {}\tStatus: {progress}",
        planned.topic,
        planned.partition,
        ids(&planned.replicas)
    )
}

/// `partition reassign --status`: every running reassignment.
async fn reassignment_status(admin: &Admin) -> anyhow::Result<()> {
    let ongoing = admin.list_partition_reassignments(None).await?;
    let mut out = std::io::stdout().lock();
    if ongoing.is_empty() {
        writeln!(out, "No partition reassignment is in progress.")?;
    }
    for o in &ongoing {
        writeln!(out, "{}", ongoing_line(o))?;
    }
    Ok(())
}

/// Where each partition of `plan` stands, asking metadata (for the replicas) and the
/// controller (for what runs).
async fn plan_progresses(
    admin: &Admin,
    plan: &[PlannedPartition],
) -> anyhow::Result<Vec<PartitionProgress>> {
    let mut topics: Vec<String> = Vec::new();
    for p in plan {
        if !topics.contains(&p.topic) {
            topics.push(p.topic.clone());
        }
    }
    let ongoing = admin
        .list_partition_reassignments(Some(topics.clone()))
        .await?;
    admin
        .cluster()
        .add_interest(topics.iter().map(String::as_str));
    let metadata = admin.cluster().refresh().await?;
    Ok(plan
        .iter()
        .map(|planned| {
            let replicas = metadata
                .topic(&planned.topic)
                .and_then(|t| t.partition(planned.partition))
                .map(|p| p.replicas.as_slice());
            let running = ongoing
                .iter()
                .find(|o| o.topic == planned.topic && o.partition == planned.partition);
            plan_progress(planned, replicas, running)
        })
        .collect())
}

/// `partition reassign --status --plan FILE`: one line per planned partition; an error if
/// any failed.
async fn plan_status(admin: &Admin, plan: &ReassignmentPlan) -> anyhow::Result<()> {
    let progresses = plan_progresses(admin, &plan.partitions).await?;
    let mut out = std::io::stdout().lock();
    for (planned, progress) in plan.partitions.iter().zip(&progresses) {
        writeln!(out, "{}", progress_line(planned, progress))?;
    }
    let failed = progresses
        .iter()
        .filter(|p| matches!(p, PartitionProgress::Failed(_)))
        .count();
    if failed > 0 {
        bail!("{failed} of {} planned partitions failed", progresses.len());
    }
    Ok(())
}

async fn broker(bootstrap: &str, command: BrokerCommand) -> anyhow::Result<()> {
    let admin = Admin::new(bootstrap).await?;
    match command {
        BrokerCommand::Decommission {
            broker,
            wait,
            timeout_secs,
            dry_run,
        } => {
            decommission(
                &admin,
                broker,
                wait,
                Duration::from_secs(timeout_secs),
                dry_run,
            )
            .await
        }
    }
}

/// `broker decommission N`: plan from metadata, submit, and with `wait` poll until done.
async fn decommission(
    admin: &Admin,
    broker: i32,
    wait: bool,
    timeout: Duration,
    dry_run: bool,
) -> anyhow::Result<()> {
    let metadata = admin.cluster().refresh_all_topics().await?;
    // A partition that is already moving counts by where it is going.
    let ongoing = admin.list_partition_reassignments(None).await?;
    let mut partitions: Vec<PartitionReplicas> = Vec::new();
    for topic in metadata.topics.values() {
        for p in &topic.partitions {
            let running = ongoing
                .iter()
                .find(|o| o.topic == topic.name && o.partition == p.partition);
            partitions.push(PartitionReplicas {
                topic: topic.name.clone(),
                partition: p.partition,
                replicas: running.map_or_else(|| p.replicas.clone(), OngoingReassignment::target),
            });
        }
    }
    let live: Vec<i32> = metadata.brokers.keys().copied().collect();
    let moves = decommission_plan(broker, &live, &partitions)
        .with_context(|| format!("decommissioning broker {broker}"))?;
    let mut out = std::io::stdout().lock();
    if moves.is_empty() {
        writeln!(out, "Broker {broker} holds no replicas: nothing to move.")?;
        return Ok(());
    }
    let plan = ReassignmentPlan::new(moves.iter().map(PlannedMove::planned).collect())
        .context("the decommission plan")?;
    if dry_run {
        for m in &moves {
            writeln!(out, "{}\tOutcome: not submitted (--dry-run)", move_line(m))?;
        }
        writeln!(out, "Plan: {}", plan.to_json())?;
        return Ok(());
    }
    let results = admin
        .alter_partition_reassignments(plan.reassignments())
        .await?;
    for m in &moves {
        let outcome = results
            .iter()
            .find(|r| r.topic == m.topic && r.partition == m.partition)
            .map_or("failed: no answer".to_string(), |r| match &r.outcome {
                ReassignmentOutcome::Failed(error) => format!("failed: {error}"),
                _ => "accepted".to_string(),
            });
        writeln!(out, "{}\tOutcome: {outcome}", move_line(m))?;
    }
    writeln!(out, "Plan: {}", plan.to_json())?;
    out.flush()?;
    fail_if_refused(
        &results,
        &format!("decommissioning broker {broker}: reassignment"),
    )?;
    if !wait {
        return Ok(());
    }
    drop(out);
    wait_for_plan(admin, &plan, timeout).await?;
    writeln!(
        std::io::stdout().lock(),
        "Broker {broker} holds no replicas any more: {} partitions moved.",
        moves.len()
    )?;
    Ok(())
}

/// One move's line of `broker decommission`.
fn move_line(m: &PlannedMove) -> String {
    format!(
        "Topic: {}\tPartition: {}\tReplicas: {} -> {}",
        m.topic,
        m.partition,
        ids(&m.from),
        ids(&m.to)
    )
}

/// Poll until every partition of `plan` is complete, at most `timeout`. Gives up early when
/// a partition stays failed for [`FAILED_POLLS_TO_GIVE_UP`] polls in a row. Prints a
/// progress line whenever the number of complete partitions changes.
async fn wait_for_plan(
    admin: &Admin,
    plan: &ReassignmentPlan,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let total = plan.partitions.len();
    let mut reported = None;
    let mut failed_polls = vec![0u32; total];
    loop {
        let progresses = match plan_progresses(admin, &plan.partitions).await {
            Ok(progresses) => Some(progresses),
            Err(error) => {
                tracing::warn!(%error, "asking how far the reassignment has got");
                None
            }
        };
        if let Some(progresses) = &progresses {
            let complete = progresses
                .iter()
                .filter(|p| **p == PartitionProgress::Complete)
                .count();
            if reported != Some(complete) {
                writeln!(
                    std::io::stdout().lock(),
                    "Progress: {complete} of {total} partitions complete"
                )?;
                reported = Some(complete);
            }
            if complete == total {
                return Ok(());
            }
            for (count, progress) in failed_polls.iter_mut().zip(progresses) {
                *count = match progress {
                    PartitionProgress::Failed(_) => *count + 1,
                    _ => 0,
                };
            }
            let given_up: Vec<String> = plan
                .partitions
                .iter()
                .zip(progresses)
                .zip(&failed_polls)
                .filter(|(_, count)| **count >= FAILED_POLLS_TO_GIVE_UP)
                .map(|((planned, progress), _)| progress_line(planned, progress))
                .collect();
            if !given_up.is_empty() {
                bail!("the reassignment failed:\n{}", given_up.join("\n"));
            }
        }
        if Instant::now() >= deadline {
            let unfinished: Vec<String> = match &progresses {
                Some(progresses) => plan
                    .partitions
                    .iter()
                    .zip(progresses)
                    .filter(|(_, p)| **p != PartitionProgress::Complete)
                    .map(|(planned, p)| progress_line(planned, p))
                    .collect(),
                None => vec!["(the cluster did not answer)".to_string()],
            };
            bail!(
                "the reassignment did not complete within {}s:\n{}",
                timeout.as_secs(),
                unfinished.join("\n")
            );
        }
        tokio::time::sleep(
            REASSIGNMENT_POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// One partition's line of `partition elect-leaders`.
fn election_line(election: ElectionType, result: &ElectionResult) -> String {
    let outcome = match &result.outcome {
        ElectionOutcome::Elected => format!("elected ({} leader)", election.name()),
        ElectionOutcome::NotNeeded => "not needed (ELECTION_NOT_NEEDED)".to_string(),
        ElectionOutcome::Failed(error) => format!("failed: {error}"),
    };
    format!(
        "Topic: {}\tPartition: {}\tOutcome: {outcome}",
        result.topic, result.partition
    )
}

async fn topic(bootstrap: &str, command: TopicCommand) -> anyhow::Result<()> {
    let admin = match &command {
        TopicCommand::Describe { timeout_ms, .. } => {
            view_admin(bootstrap, Duration::from_millis(*timeout_ms)).await?
        }
        _ => Admin::new(bootstrap).await?,
    };
    let mut out = std::io::stdout().lock();
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            admin
                .create_topic(&name, partitions, replication_factor, &configs)
                .await?;
            writeln!(out, "Created topic {name}.")?;
        }
        TopicCommand::List => {
            for name in admin.list_topics().await? {
                writeln!(out, "{name}")?;
            }
        }
        TopicCommand::Describe {
            name,
            all_configs,
            output,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis(timeout_ms);
            let topic = health::topic_health(&admin, &name, all_configs, timeout).await?;
            out.write_all(views::topic_health(&topic, output.format()).as_bytes())?;
        }
        TopicCommand::Alter { name, partitions } => {
            admin.create_partitions(&name, partitions).await?;
            writeln!(out, "Topic {name} now has {partitions} partitions.")?;
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            writeln!(out, "Deleted topic {name}.")?;
        }
    }
    Ok(())
}

/// An admin client for an operator view: connecting to a broker and each request to it
/// (metadata included) take at most `timeout`, so a stopped broker costs that.
async fn view_admin(bootstrap: &str, timeout: Duration) -> anyhow::Result<Admin> {
    let mut config = ClusterConfig::new(bootstrap)?;
    config.connection.client_id = "sluice-admin".to_string();
    config.connection.connect_timeout = timeout;
    config.connection.request_timeout = timeout;
    Ok(Admin::with_cluster(Cluster::connect(config).await?))
}

/// `cluster status`.
async fn cluster_status(bootstrap: &str, args: StatusArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let admin = view_admin(bootstrap, timeout).await?;
    let status = health::cluster_status(&admin, timeout).await?;
    let text = views::cluster_status(&status, args.output.format(), now_ms());
    if let Err(error) = std::io::stdout().lock().write_all(text.as_bytes()) {
        return quiet_on_broken_pipe(error);
    }
    Ok(())
}

/// `top`: a baseline sample, then one refresh per interval, each from the last two samples.
/// A failed sample prints its error (stderr) and counts as a refresh.
async fn top(bootstrap: &str, args: TopArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let admin = view_admin(bootstrap, timeout).await?;
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let format = args.output.format();
    let clear = format == OutputFormat::Table && std::io::stdout().is_terminal();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut previous = health::sample(&admin, &args.topics, &args.metrics, timeout).await?;
    let mut refreshes: u64 = 0;
    let mut next = previous.taken + interval;
    while args.iterations.is_none_or(|n| refreshes < n) {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = &mut interrupted => return Ok(()),
        }
        next = Instant::now() + interval;
        refreshes += 1;
        let current = tokio::select! {
            current = health::sample(&admin, &args.topics, &args.metrics, timeout) => current,
            _ = &mut interrupted => return Ok(()),
        };
        let current = match current {
            Ok(current) => current,
            Err(error) => {
                eprintln!("error: refresh {refreshes}: {error}");
                continue;
            }
        };
        let view = health::top_view(&previous, &current, refreshes, now_ms());
        let mut text = views::top(&view, format, args.interval_ms, args.partitions_max);
        if clear {
            text.insert_str(0, CLEAR_SCREEN);
        } else if format == OutputFormat::Table && refreshes > 1 {
            text.insert(0, '\n');
        }
        let mut out = std::io::stdout().lock();
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            return quiet_on_broken_pipe(error);
        }
        previous = current;
    }
    Ok(())
}

/// Outcome of waiting on every delivery future, in send order.
struct DeliveryTally {
    delivered: u64,
    failed: u64,
    first_error: Option<sluice_client::Error>,
}

async fn produce(bootstrap: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(bootstrap);
    config.client_id = "sluice-cli".to_string();
    config.acks = args.acks;
    config.compression = args.compression;
    config.linger_ms = args.linger_ms;
    config.batch_bytes_max = args.batch_bytes_max;
    config.metadata_wait_ms = CLI_METADATA_WAIT.as_millis() as u64;
    let producer = Producer::new(config).await?;

    // Delivery futures are awaited by a second task, in order, so reading stdin never
    // waits for acknowledgements; the bounded channel keeps memory bounded.
    let (futures_tx, mut futures_rx) = tokio::sync::mpsc::channel::<DeliveryFuture>(64 * 1024);
    let waiter = tokio::spawn(async move {
        let mut tally = DeliveryTally {
            delivered: 0,
            failed: 0,
            first_error: None,
        };
        while let Some(future) = futures_rx.recv().await {
            match future.await {
                Ok(_) => tally.delivered += 1,
                Err(error) => {
                    tally.failed += 1;
                    tally.first_error.get_or_insert(error);
                }
            }
        }
        tally
    });

    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::copy_from_slice(v.as_bytes()))))
        .collect();
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    let read_result: anyhow::Result<()> = async {
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            line_number += 1;
            let text = strip_line_end(&line);
            let (key, value) = match separator {
                None => (None, text),
                Some(separator) => match split_at_separator(text, separator) {
                    Some((key, value)) => (Some(Bytes::copy_from_slice(key)), value),
                    None => bail!("line {line_number} has no key separator"),
                },
            };
            let record = ProducerRecord {
                topic: args.topic.clone(),
                partition: args.partition,
                key,
                value: Some(Bytes::copy_from_slice(value)),
                headers: headers.clone(),
                timestamp: None,
            };
            let future = producer
                .send(record)
                .await
                .with_context(|| format!("producing line {line_number}"))?;
            if futures_tx.send(future).await.is_err() {
                bail!("delivery reporting stopped unexpectedly");
            }
        }
    }
    .await;
    drop(futures_tx);
    producer.close().await;
    let tally = waiter.await.context("delivery reporting task failed")?;
    read_result?;
    if let Some(error) = tally.first_error {
        bail!(
            "{} of {} records were not delivered; first error: {error}",
            tally.failed,
            tally.failed + tally.delivered
        );
    }
    tracing::info!(records = tally.delivered, "produced");
    Ok(())
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn split_at_separator<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() {
        return None;
    }
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

async fn consume(bootstrap: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.group {
        bail!(
            "consumer groups are not supported yet (--group {group}); omit --group to read \
             all partitions, or pick one with --partition"
        );
    }
    let mut config = ConsumerConfig::new(bootstrap);
    config.client_id = "sluice-cli".to_string();
    config.client_rack = args.client_rack.clone();
    let mut consumer = Consumer::new(config).await?;
    let info = consumer
        .cluster()
        .topic(&args.topic, CLI_METADATA_WAIT)
        .await?;
    let partitions: Vec<i32> = match args.partition {
        Some(partition) => vec![partition],
        None => (0..info.partition_count()).collect(),
    };
    consumer
        .assign(
            partitions
                .iter()
                .map(|p| (args.topic.clone(), *p))
                .collect(),
        )
        .await?;
    let start = if args.from_beginning {
        SeekTo::Earliest
    } else {
        SeekTo::Latest
    };
    for partition in &partitions {
        consumer.seek(&args.topic, *partition, start).await?;
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
        let poll_timeout = match idle_limit {
            Some(limit) => limit
                .saturating_sub(last_record.elapsed())
                .min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        let records = tokio::select! {
            records = consumer.poll(poll_timeout) => records?,
            _ = &mut interrupted => break,
        };
        if records.is_empty() {
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for record in records {
            if args.count.is_some_and(|count| printed >= count) {
                break;
            }
            let written = (|| -> std::io::Result<()> {
                if args.print_key {
                    match &record.key {
                        Some(key) => out.write_all(key)?,
                        None => out.write_all(b"null")?,
                    }
                    out.write_all(args.key_separator.as_bytes())?;
                }
                if let Some(value) = &record.value {
                    out.write_all(value)?;
                }
                out.write_all(b"\n")
            })();
            if let Err(error) = written {
                return quiet_on_broken_pipe(error);
            }
            printed += 1;
        }
        if let Err(error) = out.flush() {
            return quiet_on_broken_pipe(error);
        }
    }
    if let Err(error) = out.flush() {
        return quiet_on_broken_pipe(error);
    }
    Ok(())
}

/// A reader that went away (`| head`) is a normal end, not an error.
fn quiet_on_broken_pipe(error: std::io::Error) -> anyhow::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error).context("writing to stdout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn bootstrap_is_accepted_before_or_after_the_subcommand() {
        let before = parse(&["sluice", "--bootstrap", "x:1", "topic", "list"]);
        let after = parse(&["sluice", "topic", "list", "--bootstrap", "x:1"]);
        assert_eq!(before.bootstrap, "x:1");
        assert_eq!(after.bootstrap, "x:1");
        assert!(matches!(
            after.command,
            Command::Topic {
                command: TopicCommand::List
            }
        ));
    }

    #[test]
    fn bootstrap_defaults_to_local_broker() {
        if std::env::var_os("SLUICE_BOOTSTRAP").is_some() {
            return; // The environment overrides the default; nothing to check here.
        }
        assert_eq!(
            parse(&["sluice", "topic", "list"]).bootstrap,
            "127.0.0.1:9092"
        );
    }

    #[test]
    fn topic_create_takes_partitions_replication_and_configs() {
        let cli = parse(&[
            "sluice",
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "2",
            "--config",
            "retention.ms=1000",
            "--config",
            "cleanup.policy=compact",
        ]);
        match cli.command {
            Command::Topic {
                command:
                    TopicCommand::Create {
                        name,
                        partitions,
                        replication_factor,
                        configs,
                    },
            } => {
                assert_eq!(name, "orders");
                assert_eq!(partitions, 3);
                assert_eq!(replication_factor, 2);
                assert_eq!(
                    configs,
                    vec![
                        ("retention.ms".to_string(), "1000".to_string()),
                        ("cleanup.policy".to_string(), "compact".to_string())
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["sluice", "topic", "create", "t", "--config", "novalue"]).is_err()
        );
    }

    #[test]
    fn produce_parses_acks_compression_and_partition() {
        let cli = parse(&[
            "sluice",
            "produce",
            "t",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--partition",
            "2",
            "--key-separator",
            ":",
        ]);
        let Command::Produce(args) = cli.command else {
            panic!("not produce");
        };
        assert_eq!(args.acks, Acks::All);
        assert_eq!(args.compression, Compression::Zstd);
        assert_eq!(args.partition, Some(2));
        assert_eq!(args.key_separator.as_deref(), Some(":"));
        let defaults = parse(&["sluice", "produce", "t"]);
        let Command::Produce(args) = defaults.command else {
            panic!("not produce");
        };
        assert_eq!(args.acks, Acks::Leader);
        assert_eq!(args.compression, Compression::None);
        assert!(Cli::try_parse_from(["sluice", "produce", "t", "--acks", "2"]).is_err());
        assert!(
            Cli::try_parse_from(["sluice", "produce", "t", "--compression", "brotli"]).is_err()
        );
    }

    #[test]
    fn consume_parses_its_options() {
        let cli = parse(&[
            "sluice",
            "consume",
            "t",
            "--from-beginning",
            "--partition",
            "1",
            "--count",
            "10",
            "--timeout-ms",
            "500",
            "--print-key",
            "--group",
            "g",
            "--client-rack",
            "eu-1a",
        ]);
        let Command::Consume(args) = cli.command else {
            panic!("not consume");
        };
        assert_eq!(args.client_rack.as_deref(), Some("eu-1a"));
        assert!(args.from_beginning && args.print_key);
        assert_eq!(args.partition, Some(1));
        assert_eq!(args.count, Some(10));
        assert_eq!(args.timeout_ms, Some(500));
        assert_eq!(args.group.as_deref(), Some("g"));
        assert_eq!(args.key_separator, "\t");
        let Command::Consume(args) = parse(&["sluice", "consume", "t"]).command else {
            panic!("not consume");
        };
        assert_eq!(args.client_rack, None);
    }

    #[test]
    fn partition_elect_leaders_parses_its_options() {
        let elect = |args: &[&str]| match parse(args).command {
            Command::Partition {
                command:
                    PartitionCommand::ElectLeaders {
                        topic,
                        partition,
                        unclean,
                    },
            } => (topic, partition, unclean),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            elect(&["sluice", "partition", "elect-leaders"]),
            (None, None, false)
        );
        assert_eq!(
            elect(&[
                "sluice",
                "partition",
                "elect-leaders",
                "--topic",
                "t",
                "--partition",
                "2",
                "--unclean"
            ]),
            (Some("t".to_string()), Some(2), true)
        );
        assert_eq!(
            elect(&["sluice", "partition", "elect-leaders", "--topic", "t"]),
            (Some("t".to_string()), None, false)
        );
        // A partition means nothing without its topic.
        assert!(
            Cli::try_parse_from(["sluice", "partition", "elect-leaders", "--partition", "1"])
                .is_err()
        );
    }

    #[test]
    fn election_lines_name_the_partition_and_the_outcome() {
        let line = |outcome| {
            election_line(
                ElectionType::Preferred,
                &ElectionResult {
                    topic: "t".to_string(),
                    partition: 4,
                    outcome,
                },
            )
        };
        assert_eq!(
            line(ElectionOutcome::Elected),
            "Topic: t\tPartition: 4\tOutcome: elected (preferred leader)"
        );
        assert_eq!(
            line(ElectionOutcome::NotNeeded),
            "Topic: t\tPartition: 4\tOutcome: not needed (ELECTION_NOT_NEEDED)"
        );
        assert_eq!(
            line(ElectionOutcome::Failed(sluice_client::Error::broker(
                "preferred leader election for t-4",
                80,
                None
            ))),
            "Topic: t\tPartition: 4\tOutcome: failed: preferred leader election for t-4 (PREFERRED_LEADER_NOT_AVAILABLE)"
        );
    }

    fn reassign(args: &[&str]) -> (Option<PathBuf>, bool, bool) {
        match parse(args).command {
            Command::Partition {
                command:
                    PartitionCommand::Reassign {
                        plan,
                        cancel,
                        status,
                    },
            } => (plan, cancel, status),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn partition_reassign_parses_plan_cancel_and_status() {
        let plan = Some(PathBuf::from("p.json"));
        assert_eq!(
            reassign(&["sluice", "partition", "reassign", "--plan", "p.json"]),
            (plan.clone(), false, false)
        );
        assert_eq!(
            reassign(&[
                "sluice",
                "partition",
                "reassign",
                "--plan",
                "p.json",
                "--cancel"
            ]),
            (plan.clone(), true, false)
        );
        assert_eq!(
            reassign(&["sluice", "partition", "reassign", "--status"]),
            (None, false, true)
        );
        assert_eq!(
            reassign(&[
                "sluice",
                "partition",
                "reassign",
                "--status",
                "--plan",
                "p.json"
            ]),
            (plan, false, true)
        );
        // A plan or --status is needed; --cancel needs a plan and is not a status query.
        for bad in [
            &["sluice", "partition", "reassign"][..],
            &["sluice", "partition", "reassign", "--cancel"],
            &[
                "sluice",
                "partition",
                "reassign",
                "--status",
                "--cancel",
                "--plan",
                "p.json",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn broker_decommission_parses_its_options() {
        let decommission = |args: &[&str]| match parse(args).command {
            Command::Broker {
                command:
                    BrokerCommand::Decommission {
                        broker,
                        wait,
                        timeout_secs,
                        dry_run,
                    },
            } => (broker, wait, timeout_secs, dry_run),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            decommission(&["sluice", "broker", "decommission", "3"]),
            (3, false, 300, false)
        );
        assert_eq!(
            decommission(&[
                "sluice",
                "broker",
                "decommission",
                "2",
                "--wait",
                "--timeout-secs",
                "60"
            ]),
            (2, true, 60, false)
        );
        assert_eq!(
            decommission(&["sluice", "broker", "decommission", "2", "--dry-run"]),
            (2, false, 300, true)
        );
        assert!(Cli::try_parse_from(["sluice", "broker", "decommission"]).is_err());
        assert!(Cli::try_parse_from(["sluice", "broker", "decommission", "x"]).is_err());
        assert!(Cli::try_parse_from([
            "sluice",
            "broker",
            "decommission",
            "2",
            "--wait",
            "--dry-run"
        ])
        .is_err());
    }

    #[test]
    fn reassignment_lines_name_the_partition_target_and_outcome() {
        let result = |outcome| ReassignmentResult {
            topic: "t".to_string(),
            partition: 1,
            outcome,
        };
        assert_eq!(
            reassignment_line(&result(ReassignmentOutcome::Accepted), Some(&[2, 3, 4])),
            "Topic: t\tPartition: 1\tReplicas: 2,3,4\tOutcome: accepted"
        );
        assert_eq!(
            reassignment_line(&result(ReassignmentOutcome::Cancelled), None),
            "Topic: t\tPartition: 1\tOutcome: cancelled"
        );
        assert_eq!(
            reassignment_line(&result(ReassignmentOutcome::NoneInProgress), None),
            "Topic: t\tPartition: 1\tOutcome: no reassignment in progress (NO_REASSIGNMENT_IN_PROGRESS)"
        );
        assert_eq!(
            reassignment_line(
                &result(ReassignmentOutcome::Failed(sluice_client::Error::broker(
                    "reassigning t-1 to [9]",
                    39,
                    Some("broker 9 is not registered".to_string())
                ))),
                Some(&[9])
            ),
            "Topic: t\tPartition: 1\tReplicas: 9\tOutcome: failed: reassigning t-1 to [9]: broker 9 is not registered (INVALID_REPLICA_ASSIGNMENT)"
        );
        let ongoing = OngoingReassignment {
            topic: "t".to_string(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            adding: vec![4],
            removing: vec![1],
        };
        assert_eq!(
            ongoing_line(&ongoing),
            "Topic: t\tPartition: 0\tReplicas: 2,3,4,1\tAdding: 4\tRemoving: 1"
        );
        let planned = PlannedPartition {
            topic: "t".to_string(),
            partition: 0,
            replicas: vec![2, 3, 4],
        };
        assert_eq!(
            progress_line(&planned, &PartitionProgress::Complete),
            "Topic: t\tPartition: 0\tReplicas: 2,3,4\tStatus: complete"
        );
        assert_eq!(
            progress_line(&planned, &PartitionProgress::InProgress(ongoing)),
            "Topic: t\tPartition: 0\tReplicas: 2,3,4\tStatus: in progress (replicas 2,3,4,1, adding 4, removing 1)"
        );
        assert_eq!(
            move_line(&PlannedMove {
                topic: "t".to_string(),
                partition: 0,
                from: vec![1, 2, 3],
                to: vec![4, 2, 3],
            }),
            "Topic: t\tPartition: 0\tReplicas: 1,2,3 -> 4,2,3"
        );
    }

    #[test]
    fn plan_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4]}]}"#,
        )
        .unwrap();
        assert_eq!(
            read_plan(&good).unwrap().partitions,
            vec![PlannedPartition {
                topic: "t".to_string(),
                partition: 0,
                replicas: vec![2, 3, 4]
            }]
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,2]}]}"#,
        )
        .unwrap();
        let error = format!("{:#}", read_plan(&bad).unwrap_err());
        assert!(
            error.contains("bad.json") && error.contains("t-0 lists broker 2 twice"),
            "{error}"
        );
        let missing = format!(
            "{:#}",
            read_plan(&dir.path().join("none.json")).unwrap_err()
        );
        assert!(missing.contains("reading the plan"), "{missing}");
    }

    #[test]
    fn cluster_alone_is_cluster_status() {
        let status_args = |args: &[&str]| match parse(args).command {
            Command::Cluster(ClusterArgs {
                command: Some(ClusterCommand::Status(status)),
                ..
            }) => ("status", status),
            Command::Cluster(ClusterArgs {
                command: None,
                status,
            }) => ("default", status),
            other => panic!("unexpected {other:?}"),
        };
        let output = |args: &[&str]| {
            let (which, status) = status_args(args);
            (which, status.output)
        };
        assert_eq!(output(&["sluice", "cluster"]), ("default", Output::Table));
        assert_eq!(
            output(&["sluice", "cluster", "--output", "json"]),
            ("default", Output::Json)
        );
        assert_eq!(
            output(&["sluice", "cluster", "status", "--output", "json"]),
            ("status", Output::Json)
        );
        assert_eq!(
            output(&["sluice", "cluster", "status"]),
            ("status", Output::Table)
        );
        assert!(Cli::try_parse_from(["sluice", "cluster", "status", "--output", "xml"]).is_err());
    }

    #[test]
    fn cluster_status_takes_a_timeout_like_the_other_views() {
        let timeout = |args: &[&str]| {
            let Command::Cluster(ClusterArgs { command, status }) = parse(args).command else {
                panic!("not cluster");
            };
            match command {
                Some(ClusterCommand::Status(status)) => status.timeout_ms,
                None => status.timeout_ms,
            }
        };
        assert_eq!(timeout(&["sluice", "cluster", "status"]), 5000);
        assert_eq!(
            timeout(&["sluice", "cluster", "status", "--timeout-ms", "1000"]),
            1000
        );
        assert_eq!(timeout(&["sluice", "cluster", "--timeout-ms", "250"]), 250);
        assert!(
            Cli::try_parse_from(["sluice", "cluster", "status", "--timeout-ms", "soon"]).is_err()
        );
    }

    /// The long help of the command at `path`.
    fn long_help(path: &[&str]) -> String {
        let mut command = Cli::command_for_tests();
        let mut at = &mut command;
        for name in path {
            at = at
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no {name}"));
        }
        at.render_long_help().to_string()
    }

    #[test]
    fn each_views_json_help_describes_its_own_json() {
        let status = long_help(&["cluster", "status"]);
        let describe = long_help(&["topic", "describe"]);
        let top = long_help(&["top"]);
        assert!(status.contains("quorum_error"), "{status}");
        assert!(describe.contains("replica_states"), "{describe}");
        assert!(top.contains("one object per refresh"), "{top}");
        for (help, other_view) in [(&status, "refresh"), (&describe, "refresh")] {
            assert!(!help.contains(other_view), "{help}");
            assert!(!help.contains("`top`"), "{help}");
        }
        assert!(top.contains("--metrics-per-partition"), "{top}");
    }

    #[test]
    fn topic_describe_takes_output_and_timeout() {
        let describe = |args: &[&str]| match parse(args).command {
            Command::Topic {
                command:
                    TopicCommand::Describe {
                        name,
                        all_configs,
                        output,
                        timeout_ms,
                    },
            } => (name, all_configs, output, timeout_ms),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            describe(&["sluice", "topic", "describe", "t"]),
            ("t".to_string(), false, Output::Table, 5000)
        );
        assert_eq!(
            describe(&[
                "sluice",
                "topic",
                "describe",
                "t",
                "--output",
                "json",
                "--all-configs",
                "--timeout-ms",
                "200"
            ]),
            ("t".to_string(), true, Output::Json, 200)
        );
    }

    #[test]
    fn top_parses_its_options() {
        let Command::Top(args) = parse(&[
            "sluice",
            "top",
            "--interval-ms",
            "250",
            "--iterations",
            "2",
            "--metrics",
            "127.0.0.1:9644,127.0.0.1:9645",
            "--topic",
            "a",
            "--topic",
            "b",
            "--output",
            "json",
        ])
        .command
        else {
            panic!("not top");
        };
        assert_eq!(args.interval_ms, 250);
        assert_eq!(args.iterations, Some(2));
        let metrics: Vec<String> = args.metrics.iter().map(Endpoint::to_string).collect();
        assert_eq!(
            metrics,
            vec![
                "http://127.0.0.1:9644/metrics",
                "http://127.0.0.1:9645/metrics"
            ]
        );
        assert_eq!(args.topics, vec!["a", "b"]);
        assert_eq!(args.output, Output::Json);
        let Command::Top(defaults) = parse(&["sluice", "top"]).command else {
            panic!("not top");
        };
        assert_eq!(defaults.interval_ms, 1000);
        assert_eq!(defaults.iterations, None);
        assert!(defaults.metrics.is_empty());
        assert_eq!(defaults.partitions_max, 20);
        assert_eq!(defaults.output, Output::Table);
    }

    #[test]
    fn top_takes_metrics_urls_and_refuses_malformed_ones_before_starting() {
        let metrics = |value: &str| match parse(&["sluice", "top", "--metrics", value]).command {
            Command::Top(args) => args
                .metrics
                .into_iter()
                .map(|e| (e.address, e.path))
                .collect::<Vec<_>>(),
            other => panic!("unexpected {other:?}"),
        };
        let at = |address: &str, path: &str| (address.to_string(), path.to_string());
        assert_eq!(
            metrics("http://127.0.0.1:29644/metrics,http://127.0.0.1:29645,127.0.0.1:29646"),
            vec![
                at("127.0.0.1:29644", "/metrics"),
                at("127.0.0.1:29645", "/metrics"),
                at("127.0.0.1:29646", "/metrics")
            ]
        );
        assert_eq!(
            metrics("http://b1:9644/custom"),
            vec![at("b1:9644", "/custom")]
        );
        // A parse error is clap's: a message naming the value, exit code 2.
        for bad in ["https://127.0.0.1:29644/metrics", "127.0.0.1", "b1:port"] {
            let error = Cli::try_parse_from(["sluice", "top", "--metrics", bad]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}"
            );
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn every_command_has_help() {
        for args in [
            &["sluice", "--help"][..],
            &["sluice", "topic", "--help"],
            &["sluice", "topic", "create", "--help"],
            &["sluice", "produce", "--help"],
            &["sluice", "consume", "--help"],
            &["sluice", "partition", "--help"],
            &["sluice", "partition", "elect-leaders", "--help"],
            &["sluice", "partition", "reassign", "--help"],
            &["sluice", "broker", "--help"],
            &["sluice", "broker", "decommission", "--help"],
            &["sluice", "cluster", "--help"],
            &["sluice", "cluster", "status", "--help"],
            &["sluice", "topic", "describe", "--help"],
            &["sluice", "top", "--help"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "{args:?}"
            );
        }
        Cli::command_for_tests().debug_assert();
    }

    #[test]
    fn lines_split_at_the_first_separator_and_lose_their_line_end() {
        assert_eq!(strip_line_end(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_end(b"abc"), b"abc");
        assert_eq!(
            split_at_separator(b"k::v::w", b"::"),
            Some((&b"k"[..], &b"v::w"[..]))
        );
        assert_eq!(split_at_separator(b"nosep", b":"), None);
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
