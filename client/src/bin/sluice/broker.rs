//! `sluice broker decommission`: move every replica off a broker. The plan comes from
//! metadata (partitions already moving count by where they go), is submitted as partition
//! reassignments, and with `--wait` polled (as `partition reassign --status --plan` does)
//! until every partition is on its target replicas.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use sluice_client::reassignment::{
    decommission_plan, ids, PartitionProgress, PartitionReplicas, PlannedMove, ReassignmentPlan,
};
use sluice_client::{Admin, OngoingReassignment, ReassignmentOutcome, ReassignmentResult};

use crate::partition::reassign::{fail_if_refused, plan_progresses, progress_line};

/// How often `broker decommission --wait` asks how far the moves have got.
const REASSIGNMENT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How many polls in a row must see a partition failed (not moving, not where the plan
/// puts it) before `--wait` gives up early: one answer may come from a broker whose
/// metadata lags the controller's.
const FAILED_POLLS_TO_GIVE_UP: u32 = 6;

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
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

/// Run one `broker` subcommand.
pub async fn run(bootstrap: &str, command: BrokerCommand) -> anyhow::Result<()> {
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
    let moves = planned_moves(admin, broker).await?;
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
        writeln!(
            out,
            "{}\tOutcome: {}",
            move_line(m),
            move_outcome(m, &results)
        )?;
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

/// The moves that take every replica off `broker`, from metadata and the running
/// reassignments (a partition that is already moving counts by where it is going).
async fn planned_moves(admin: &Admin, broker: i32) -> anyhow::Result<Vec<PlannedMove>> {
    let metadata = admin.cluster().refresh_all_topics().await?;
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
    decommission_plan(broker, &live, &partitions)
        .with_context(|| format!("decommissioning broker {broker}"))
}

/// What the controller said of one move: "accepted", or why it failed.
fn move_outcome(m: &PlannedMove, results: &[ReassignmentResult]) -> String {
    results
        .iter()
        .find(|r| r.topic == m.topic && r.partition == m.partition)
        .map_or("failed: no answer".to_string(), |r| match &r.outcome {
            ReassignmentOutcome::Failed(error) => format!("failed: {error}"),
            _ => "accepted".to_string(),
        })
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
            let given_up = given_up_lines(plan, progresses, &mut failed_polls);
            if !given_up.is_empty() {
                bail!("the reassignment failed:\n{}", given_up.join("\n"));
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "the reassignment did not complete within {}s:\n{}",
                timeout.as_secs(),
                unfinished_lines(plan, progresses.as_deref()).join("\n")
            );
        }
        tokio::time::sleep(
            REASSIGNMENT_POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// Count one more poll for each partition that is failed (and start again at 0 for the
/// others); the progress lines of those failed for [`FAILED_POLLS_TO_GIVE_UP`] polls in a
/// row.
fn given_up_lines(
    plan: &ReassignmentPlan,
    progresses: &[PartitionProgress],
    failed_polls: &mut [u32],
) -> Vec<String> {
    for (count, progress) in failed_polls.iter_mut().zip(progresses) {
        *count = match progress {
            PartitionProgress::Failed(_) => *count + 1,
            _ => 0,
        };
    }
    plan.partitions
        .iter()
        .zip(progresses)
        .zip(failed_polls.iter())
        .filter(|(_, count)| **count >= FAILED_POLLS_TO_GIVE_UP)
        .map(|((planned, progress), _)| progress_line(planned, progress))
        .collect()
}

/// The progress lines of the partitions not yet complete (`None`: the last poll got no
/// answer).
fn unfinished_lines(
    plan: &ReassignmentPlan,
    progresses: Option<&[PartitionProgress]>,
) -> Vec<String> {
    match progresses {
        Some(progresses) => plan
            .partitions
            .iter()
            .zip(progresses)
            .filter(|(_, p)| **p != PartitionProgress::Complete)
            .map(|(planned, p)| progress_line(planned, p))
            .collect(),
        None => vec!["(the cluster did not answer)".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

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
    fn move_lines_name_the_partition_and_both_replica_lists() {
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
}
