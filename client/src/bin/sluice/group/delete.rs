//! `group delete` (whole groups) and `group delete-offsets` (a group's committed offsets of
//! one topic).

use std::io::Write;

use anyhow::bail;
use sluice_client::Admin;

use crate::output::Table;

pub(super) async fn delete(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let ids: Vec<&str> = groups.iter().map(String::as_str).collect();
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (group, result) in admin.delete_groups(&ids).await {
        match result {
            Ok(()) => writeln!(out, "Deleted group {group}.")?,
            Err(error) => {
                failed += 1;
                eprintln!("error: {error}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} groups could not be deleted", groups.len());
    }
    Ok(())
}

pub(super) async fn delete_offsets(
    admin: &Admin,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<()> {
    let targets: Vec<(String, i32)> = if partitions.is_empty() {
        admin
            .list_group_offsets(group, None)
            .await?
            .into_iter()
            .filter(|o| o.topic == topic)
            .map(|o| (o.topic, o.partition))
            .collect()
    } else {
        partitions.iter().map(|p| (topic.to_string(), *p)).collect()
    };
    if targets.is_empty() {
        bail!("group '{group}' has no committed offsets for topic '{topic}'");
    }
    let results = admin.delete_group_offsets(group, &targets).await?;
    let mut table = Table::new(&["TOPIC", "PARTITION", "STATUS"]);
    let mut failures = Vec::new();
    for result in &results {
        let status = match &result.result {
            Ok(()) => "deleted".to_string(),
            Err(error) => {
                failures.push(error.to_string());
                format!("failed: {error}")
            }
        };
        table.row(vec![
            result.topic.clone(),
            result.partition.to_string(),
            status,
        ]);
    }
    std::io::stdout()
        .lock()
        .write_all(table.render().as_bytes())?;
    if !failures.is_empty() {
        bail!(
            "the offsets of {} of {} partitions could not be deleted: {}",
            failures.len(),
            results.len(),
            failures.join("; ")
        );
    }
    Ok(())
}
