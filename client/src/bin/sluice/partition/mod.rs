//! `sluice partition`: partition administration. Each subcommand has its own file:
//!
//! - `elect.rs`: `partition elect-leaders` (preferred or unclean leader elections).
//! - `reassign.rs`: `partition reassign` (submit or cancel a kafka-reassign-partitions
//!   plan, or show running reassignments and a plan's progress); `broker decommission`
//!   uses its progress lines.

mod elect;
pub mod reassign;

use std::path::PathBuf;

use clap::Subcommand;
use sluice_client::Admin;

#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
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

/// Run one `partition` subcommand.
pub async fn run(bootstrap: &str, command: PartitionCommand) -> anyhow::Result<()> {
    let admin = Admin::new(bootstrap).await?;
    match command {
        PartitionCommand::ElectLeaders {
            topic,
            partition,
            unclean,
        } => elect::run(&admin, topic, partition, unclean).await,
        PartitionCommand::Reassign {
            plan,
            cancel,
            status,
        } => reassign::run(&admin, plan.as_deref(), cancel, status).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

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
}
