//! `sluice partition elect-leaders`: move leadership back to preferred replicas, or give
//! leaderless partitions any live replica (unclean); one line per partition.

use std::io::Write;

use anyhow::bail;
use sluice_client::{Admin, ElectionOutcome, ElectionResult, ElectionType};

use crate::CLI_METADATA_WAIT;

/// Elect leaders for every partition, `topic`'s, or one of its partitions; an error if any
/// election failed (a partition already led as asked is not a failure).
pub async fn run(
    admin: &Admin,
    topic: Option<String>,
    partition: Option<i32>,
    unclean: bool,
) -> anyhow::Result<()> {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
