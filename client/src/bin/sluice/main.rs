//! `sluice`: the command-line client.
//!
//! Owns argument parsing (clap derive) and the text formats of the commands; every
//! operation is a thin wrapper over the library's [`Admin`], `Producer` and `Consumer`.
//! Errors end the program with one line on stderr and a non-zero exit code. Logs go to
//! stderr, filtered by `RUST_LOG` (default: warnings only).
//!
//! This file has the top-level command line ([`Cli`], [`Command`]), `main` and the dispatch
//! to the command groups, and what several of them share (the metadata wait, the admin
//! client of the operator views, `KEY=VALUE` arguments). One module per command group, each
//! with its arguments, its handler and their tests:
//!
//! - `topic`: `topic create | list | describe | alter | delete`.
//! - `produce`, `consume`: stdin to a topic, a topic to stdout.
//! - `cluster`: `cluster status` (also `cluster` alone).
//! - `top`: the live view of rates and lag.
//! - `partition`: `partition elect-leaders` (`partition/elect.rs`) and `partition reassign`
//!   (`partition/reassign.rs`).
//! - `broker`: `broker decommission`.
//! - `group`: `group list | describe | delete | delete-offsets | reset-offsets` (consumer
//!   groups, as kafka-consumer-groups manages them).
//!
//! Behind the operator views (`cluster status`, `topic describe`, `top`):
//!
//! - `health`: what is gathered and how lag and rates are defined.
//! - `views`: their tables and JSON.
//! - `scrape`: reading brokers' Prometheus `/metrics`.
//! - `output`: the `--output` format, aligned tables, JSON, and writing to stdout.

mod broker;
mod cluster;
mod consume;
mod group;
mod health;
mod output;
mod partition;
mod produce;
mod scrape;
mod top;
mod topic;
mod views;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_client::{Admin, Cluster, ClusterConfig};

/// How long produce and consume wait for a topic to appear in metadata (it may have just
/// been created) before reporting that it does not exist.
const CLI_METADATA_WAIT: Duration = Duration::from_secs(5);

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
        command: topic::TopicCommand,
    },
    /// Produce stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records to stdout, one value per line.
    Consume(consume::ConsumeArgs),
    /// Cluster health: brokers, the controller quorum, partition counts (`cluster` alone is
    /// `cluster status`).
    Cluster(cluster::ClusterArgs),
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
    Top(top::TopArgs),
    /// Partition administration: leader elections, reassignments.
    Partition {
        #[command(subcommand)]
        command: partition::PartitionCommand,
    },
    /// Broker administration: moving every replica off a broker.
    Broker {
        #[command(subcommand)]
        command: broker::BrokerCommand,
    },
    /// Consumer groups: list, describe (committed offsets, log end offsets, lag, members),
    /// delete, delete offsets, reset offsets (as kafka-consumer-groups).
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
}

/// A `KEY=VALUE` argument (`--config`, `--header`).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
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
        Command::Topic { command } => topic::run(&bootstrap, command).await,
        Command::Produce(args) => produce::run(&bootstrap, args).await,
        Command::Consume(args) => consume::run(&bootstrap, args).await,
        Command::Cluster(args) => cluster::run(&bootstrap, args).await,
        Command::Top(args) => top::run(&bootstrap, args).await,
        Command::Partition { command } => partition::run(&bootstrap, command).await,
        Command::Broker { command } => broker::run(&bootstrap, command).await,
        Command::Group { command } => group::run(&bootstrap, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `args` parsed, or a panic with clap's error.
    pub(crate) fn parse(args: &[&str]) -> Cli {
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
                command: topic::TopicCommand::List
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
            &["sluice", "group", "--help"],
            &["sluice", "group", "list", "--help"],
            &["sluice", "group", "describe", "--help"],
            &["sluice", "group", "delete", "--help"],
            &["sluice", "group", "delete-offsets", "--help"],
            &["sluice", "group", "reset-offsets", "--help"],
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

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
