//! `sluice partition reassign`: submit a kafka-reassign-partitions JSON plan (or cancel
//! its partitions' running reassignments), list the running reassignments, or show how far
//! a plan has got. The progress of a plan (`plan_progresses`, `progress_line`) and the
//! refusal check (`fail_if_refused`) serve `broker decommission` too.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use sluice_client::reassignment::{
    ids, plan_progress, PartitionProgress, PlannedPartition, ReassignmentPlan,
};
use sluice_client::{Admin, OngoingReassignment, ReassignmentOutcome, ReassignmentResult};

/// With a plan: submit it (`--cancel`: cancel its partitions' reassignments), or with
/// `--status` show its progress; without: show every running reassignment.
pub async fn run(
    admin: &Admin,
    plan: Option<&Path>,
    cancel: bool,
    status: bool,
) -> anyhow::Result<()> {
    let plan = plan.map(read_plan).transpose()?;
    match (plan, status) {
        (None, _) => reassignment_status(admin).await,
        (Some(plan), true) => plan_status(admin, &plan).await,
        (Some(plan), false) => submit_plan(admin, &plan, cancel).await,
    }
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
pub fn fail_if_refused(results: &[ReassignmentResult], what: &str) -> anyhow::Result<()> {
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
pub fn progress_line(planned: &PlannedPartition, progress: &PartitionProgress) -> String {
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
pub async fn plan_progresses(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
