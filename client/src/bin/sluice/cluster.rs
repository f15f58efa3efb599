//! `sluice cluster status` (also `cluster` alone): brokers, the controller quorum and
//! partition counts, gathered by [`crate::health::cluster::cluster_status`] and printed by
//! [`crate::views::cluster_status`].

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use sluice_protocol::clock::now_ms;

use crate::output::{quiet_on_broken_pipe, Output};
use crate::{health, view_admin, views};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClusterArgs {
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

/// `cluster status`, or `cluster` alone with the same options.
pub async fn run(bootstrap: &str, args: ClusterArgs) -> anyhow::Result<()> {
    let status = match args.command {
        Some(ClusterCommand::Status(status)) => status,
        None => args.status,
    };
    cluster_status(bootstrap, status).await
}

/// `cluster status`.
async fn cluster_status(bootstrap: &str, args: StatusArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let admin = view_admin(bootstrap, timeout).await?;
    let status = health::cluster::cluster_status(&admin, timeout).await?;
    let text = views::cluster_status(&status, args.output, now_ms());
    if let Err(error) = std::io::stdout().lock().write_all(text.as_bytes()) {
        return quiet_on_broken_pipe(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

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
}
