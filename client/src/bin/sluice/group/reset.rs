//! `group reset-offsets`: which partitions, where each one goes ([`plan_offset`], a pure
//! function that clamps the target to the log's range as Kafka's tool does), the printed
//! plan and, with `--execute`, the commit. A group that is not inactive is refused.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use sluice_client::offsets::OffsetSpec;
use sluice_client::{Admin, Error, NewOffset};

use super::{offsets_at, ResetArgs};
use crate::output::{or_dash, Table};
use crate::CLI_METADATA_WAIT;

/// Kafka's GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;
/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// ms since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    pub(super) fn reset_to(&self) -> ResetTo {
        if self.to_earliest {
            ResetTo::Earliest
        } else if self.to_latest {
            ResetTo::Latest
        } else if let Some(offset) = self.to_offset {
            ResetTo::Offset(offset)
        } else if let Some(timestamp) = self.to_datetime {
            ResetTo::Datetime(timestamp)
        } else {
            // clap requires one of the "to" group.
            ResetTo::ShiftBy(self.shift_by.unwrap_or(0))
        }
    }
}
/// One partition of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedOffset {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
    /// Why `new` is not what was asked (clamped to the log's range).
    note: Option<String>,
}

pub(super) async fn reset_offsets(admin: &Admin, args: &ResetArgs) -> anyhow::Result<()> {
    let group_id = args.group.as_str();
    match admin.describe_group(group_id).await {
        Ok(group) if !group.state.is_inactive() => bail!(
            "cannot reset the offsets of group '{group_id}': it is {} with {} member(s); \
             offsets can only be reset while the group is inactive (Empty). Stop its \
             consumers first",
            group.state,
            group.members.len()
        ),
        Ok(_) => {}
        // No group yet: the commit creates it, as with Kafka's tool.
        Err(error) if error.kafka_code() == Some(GROUP_ID_NOT_FOUND) => {}
        Err(error) => return Err(error.into()),
    }
    let partitions = reset_partitions(admin, args).await?;
    let current: HashMap<(String, i32), Option<i64>> = admin
        .list_group_offsets(group_id, Some(&partitions))
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    let earliest = offsets_at(admin, &partitions, OffsetSpec::Earliest).await?;
    let latest = offsets_at(admin, &partitions, OffsetSpec::Latest).await?;
    let to = args.reset_to();
    let by_time = match to {
        ResetTo::Datetime(timestamp) => {
            offsets_at(admin, &partitions, OffsetSpec::Timestamp(timestamp)).await?
        }
        _ => HashMap::new(),
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for key in &partitions {
        let range = match (earliest.get(key), latest.get(key)) {
            (Some(&earliest), Some(&latest)) => (earliest, latest),
            _ => bail!("no offsets known for {}-{}", key.0, key.1),
        };
        let current = current.get(key).copied().flatten();
        let (new, note) = plan_offset(to, current, range, by_time.get(key).copied())
            .map_err(|why| anyhow::anyhow!("{}-{}: {why}", key.0, key.1))?;
        plan.push(PlannedOffset {
            topic: key.0.clone(),
            partition: key.1,
            current,
            new,
            note,
        });
    }
    let mut out = std::io::stdout().lock();
    out.write_all(render_plan(group_id, &plan).as_bytes())?;
    if args.dry_run {
        writeln!(
            out,
            "Dry run: nothing was committed. Run again with --execute to commit these offsets."
        )?;
        return Ok(());
    }
    let offsets: Vec<NewOffset> = plan
        .iter()
        .map(|p| NewOffset {
            topic: p.topic.clone(),
            partition: p.partition,
            offset: p.new,
        })
        .collect();
    let results = admin.alter_group_offsets(group_id, &offsets).await?;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|e| e.to_string()))
        .collect();
    if !failures.is_empty() {
        bail!(
            "{} of {} offsets were not committed: {}",
            failures.len(),
            results.len(),
            failures.join("; ")
        );
    }
    writeln!(
        out,
        "Committed the new offsets of {} partition(s) for group {group_id}.",
        results.len()
    )?;
    Ok(())
}

/// The partitions `reset-offsets` covers: the --topic ones (checked against metadata) or,
/// with --all-topics, every partition the group has committed; sorted.
async fn reset_partitions(admin: &Admin, args: &ResetArgs) -> anyhow::Result<Vec<(String, i32)>> {
    let mut partitions = BTreeSet::new();
    if args.all_topics {
        for offset in admin.list_group_offsets(&args.group, None).await? {
            partitions.insert((offset.topic, offset.partition));
        }
        if partitions.is_empty() {
            bail!(
                "group '{}' has no committed offsets, so --all-topics names no partition; \
                 name them with --topic",
                args.group
            );
        }
        let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
        for topic in topics {
            match admin.cluster().topic(topic, Duration::ZERO).await {
                Ok(_) => {}
                Err(Error::UnknownTopic(_)) => bail!(
                    "group '{}' has committed offsets for topic '{topic}', which does not \
                     exist any more; name the topics to reset with --topic, or delete those \
                     offsets with `sluice group delete-offsets {} --topic {topic}`",
                    args.group,
                    args.group
                ),
                Err(error) => return Err(error.into()),
            }
        }
    }
    for (topic, wanted) in &args.topics {
        let info = admin.cluster().topic(topic, CLI_METADATA_WAIT).await?;
        if wanted.is_empty() {
            partitions.extend(info.partitions.iter().map(|p| (topic.clone(), p.partition)));
        }
        for &partition in wanted {
            if info.partition(partition).is_none() {
                bail!(
                    "topic '{topic}' has no partition {partition} (it has {})",
                    info.partition_count()
                );
            }
            partitions.insert((topic.clone(), partition));
        }
    }
    for (topic, _) in &partitions {
        admin.cluster().add_interest([topic.as_str()]);
    }
    Ok(partitions.into_iter().collect())
}

/// The new offset of one partition and, when it differs from what was asked, why: a target
/// outside [earliest, latest] is clamped into it, as Kafka's tool does. `by_time` is the
/// ListOffsets answer for a datetime (already the log end when no record is that recent).
pub(super) fn plan_offset(
    to: ResetTo,
    current: Option<i64>,
    (earliest, latest): (i64, i64),
    by_time: Option<i64>,
) -> Result<(i64, Option<String>), String> {
    let wanted = match to {
        ResetTo::Earliest => earliest,
        ResetTo::Latest => latest,
        ResetTo::Offset(offset) => offset,
        ResetTo::Datetime(_) => by_time.ok_or("no offset found for the datetime")?,
        ResetTo::ShiftBy(delta) => {
            let current = current.ok_or(
                "no committed offset to shift (use --to-offset, --to-earliest or --to-latest)",
            )?;
            current.saturating_add(delta)
        }
    };
    if wanted < earliest {
        return Ok((
            earliest,
            Some(format!(
                "{wanted} is below the earliest offset {earliest}; using {earliest}"
            )),
        ));
    }
    if wanted > latest {
        return Ok((
            latest,
            Some(format!(
                "{wanted} is above the log end offset {latest}; using {latest}"
            )),
        ));
    }
    Ok((wanted, None))
}

fn render_plan(group_id: &str, plan: &[PlannedOffset]) -> String {
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]);
    let mut notes = String::new();
    for p in plan {
        table.row(vec![
            group_id.to_string(),
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(p.current),
            p.new.to_string(),
        ]);
        if let Some(note) = &p.note {
            notes.push_str(&format!("Note: {}-{}: {note}\n", p.topic, p.partition));
        }
    }
    let mut out = table.render();
    out.push_str(&notes);
    out
}
