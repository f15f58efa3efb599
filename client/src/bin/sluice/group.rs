//! `sluice group`: consumer groups, as `kafka-consumer-groups` manages them: `list`,
//! `describe` (state, members and their assignments, and per partition the committed
//! offset, the log end offset and the lag), `delete`, `delete-offsets` and `reset-offsets`.
//!
//! Everything goes through the library's group admin API (`sluice_client::admin`, file
//! `admin/groups.rs`); the log end offsets are ListOffsets "latest" from each partition's
//! leader, as a consumer reads them. `reset-offsets` is planned by [`plan_offset`], a pure
//! function: the target per partition, clamped to the partition's earliest and latest
//! offsets as Kafka clamps it (with a note), then printed (`--dry-run`) or committed
//! (`--execute`). Like Kafka's tool it refuses a group that is not inactive (Empty, or no
//! group yet); the coordinator would refuse the commit anyway while the group has members.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use sluice_client::offsets::{self, IsolationLevel, OffsetSpec};
use sluice_client::{
    Admin, CommittedOffset, Error, GroupDescription, GroupState, ListGroupsFilter,
    MemberAssignment, NewOffset,
};

use crate::output::{or_dash, Table};
use crate::CLI_METADATA_WAIT;

/// Kafka's GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the cluster's groups (every broker is asked for the groups it coordinates):
    /// GROUP, STATE, TYPE (classic or consumer), PROTOCOL TYPE ("consumer" for consumers,
    /// "-" for groups that only ever had offsets committed from outside) and COORDINATOR.
    /// Exits non-zero if some broker could not be asked (its groups are missing).
    List {
        /// Only groups in this state (repeatable): Empty, Stable, PreparingRebalance,
        /// CompletingRebalance, Assigning, Reconciling, Dead; case-insensitive.
        #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
        states: Vec<GroupState>,
        /// Only groups of this type (repeatable): classic or consumer.
        #[arg(long = "type", value_name = "TYPE", value_parser = ["classic", "consumer"])]
        types: Vec<String>,
    },
    /// Show a group: its state, protocol type, assignor and coordinator; per partition
    /// (those with a committed offset and those assigned to a member) the committed offset
    /// (CURRENT-OFFSET), the log end offset (ListOffsets latest from the partition's leader,
    /// i.e. the high watermark a consumer reads up to), the LAG between them and the member
    /// it is assigned to; then each member with its client id, host and assignment. "-"
    /// where a value is unknown (nothing committed; the topic no longer exists). Exits
    /// non-zero if the group does not exist.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete groups and their committed offsets. A group with members cannot be deleted
    /// (NON_EMPTY_GROUP): stop its consumers first. Exits non-zero if any deletion failed.
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete a group's committed offsets of one topic: every partition it has committed,
    /// or only the --partition ones. Refused per partition (GROUP_SUBSCRIBED_TO_TOPIC) while
    /// the group's members subscribe to the topic. Prints one row per partition; exits
    /// non-zero if any failed.
    DeleteOffsets {
        /// Group id.
        group: String,
        /// The topic whose offsets to delete.
        #[arg(long)]
        topic: String,
        /// Only this partition (repeatable).
        #[arg(long = "partition", value_name = "P")]
        partitions: Vec<i32>,
    },
    /// Change a group's committed offsets, as kafka-consumer-groups --reset-offsets does.
    /// The group must be inactive (Empty, or not existing yet: it is created); a group with
    /// members is refused, since its consumers would overwrite the offsets. Prints a plan,
    /// GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET; --dry-run stops there, --execute
    /// commits it. A target below a partition's earliest offset or above its log end offset
    /// is clamped to it, with a note.
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["topics", "all_topics"])))]
#[command(group(ArgGroup::new("to").required(true).args([
    "to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"
])))]
#[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "execute"])))]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// A topic to reset: all its partitions, or TOPIC:P,P,... for some (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", value_parser = parse_topic_partitions)]
    topics: Vec<(String, Vec<i32>)>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To each partition's earliest offset (its log start).
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's log end offset (skip everything there is).
    #[arg(long)]
    to_latest: bool,
    /// To this offset.
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record whose timestamp is at or after this time, or the log end
    /// offset if there is none: YYYY-MM-DDTHH:MM:SS[.mmm] followed by Z or +HH:MM / -HH:MM
    /// (no zone: UTC), e.g. 2026-12-07T10:00:00Z.
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// Move each committed offset by N (negative: back). Every partition must have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Print the plan only; commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Commit the plan.
    #[arg(long)]
    execute: bool,
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// ms since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    fn reset_to(&self) -> ResetTo {
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

/// Run one `group` subcommand.
pub async fn run(bootstrap: &str, command: GroupCommand) -> anyhow::Result<()> {
    let admin = Admin::new(bootstrap).await?;
    match command {
        GroupCommand::List { states, types } => list(&admin, states, types).await,
        GroupCommand::Describe { group } => describe(&admin, &group).await,
        GroupCommand::Delete { groups } => delete(&admin, &groups).await,
        GroupCommand::DeleteOffsets {
            group,
            topic,
            partitions,
        } => delete_offsets(&admin, &group, &topic, &partitions).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(&admin, &args).await,
    }
}

async fn list(admin: &Admin, states: Vec<GroupState>, types: Vec<String>) -> anyhow::Result<()> {
    let listings = admin
        .list_groups(&ListGroupsFilter { states, types })
        .await?;
    let mut table = Table::new(&["GROUP", "STATE", "TYPE", "PROTOCOL TYPE", "COORDINATOR"]);
    for group in &listings.groups {
        table.row(vec![
            group.group_id.clone(),
            or_dash(group.state.as_ref()),
            or_dash(group.group_type.as_ref()),
            or_dash(Some(&group.protocol_type).filter(|t| !t.is_empty())),
            group.coordinator.to_string(),
        ]);
    }
    std::io::stdout()
        .lock()
        .write_all(table.render().as_bytes())?;
    if !listings.failures.is_empty() {
        let failures: Vec<String> = listings
            .failures
            .iter()
            .map(|(broker, error)| format!("broker {broker}: {error}"))
            .collect();
        bail!(
            "some brokers could not be asked, so their groups are missing: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

/// One row of `describe`'s partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    /// (member id, host, client id) of the member it is assigned to.
    member: Option<(String, String, String)>,
}

impl PartitionRow {
    fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

async fn describe(admin: &Admin, group_id: &str) -> anyhow::Result<()> {
    let group = admin.describe_group(group_id).await?;
    let committed = admin.list_group_offsets(group_id, None).await?;
    let mut rows = partition_rows(&group, &committed);
    let wanted: Vec<(String, i32)> = rows
        .iter()
        .map(|r| (r.topic.clone(), r.partition))
        .collect();
    let (log_ends, log_end_problem) = match latest_offsets(admin, &wanted).await {
        Ok(found) => (found, None),
        Err(error) => (HashMap::new(), Some(error)),
    };
    for row in &mut rows {
        row.log_end = log_ends.get(&(row.topic.clone(), row.partition)).copied();
    }
    let text = render_description(&group, &rows, log_end_problem.as_ref());
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The partitions to show: those with a committed offset and those assigned to a member,
/// sorted; log end offsets are filled in later.
fn partition_rows(group: &GroupDescription, committed: &[CommittedOffset]) -> Vec<PartitionRow> {
    let mut rows: BTreeMap<(String, i32), PartitionRow> = BTreeMap::new();
    for offset in committed {
        rows.insert(
            (offset.topic.clone(), offset.partition),
            PartitionRow {
                topic: offset.topic.clone(),
                partition: offset.partition,
                committed: offset.offset,
                log_end: None,
                member: None,
            },
        );
    }
    for member in &group.members {
        for (topic, partition) in member.assignment.partitions() {
            let row = rows
                .entry((topic.clone(), partition))
                .or_insert_with(|| PartitionRow {
                    topic,
                    partition,
                    committed: None,
                    log_end: None,
                    member: None,
                });
            row.member = Some((
                member.member_id.clone(),
                member.client_host.clone(),
                member.client_id.clone(),
            ));
        }
    }
    rows.into_values().collect()
}

fn render_description(
    group: &GroupDescription,
    rows: &[PartitionRow],
    log_end_problem: Option<&anyhow::Error>,
) -> String {
    let dash_if_empty = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = format!(
        "Group: {}  State: {}  Protocol type: {}  Assignor: {}  Coordinator: {} ({})  Members: {}\n\n",
        group.group_id,
        group.state,
        dash_if_empty(&group.protocol_type),
        dash_if_empty(&group.protocol),
        group.coordinator.id,
        group.coordinator.address(),
        group.members.len()
    );
    if rows.is_empty() {
        out.push_str("No committed offsets and no assigned partitions.\n");
    } else {
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]);
        for row in rows {
            let (member, host, client) = match &row.member {
                Some((member, host, client)) => (member.clone(), host.clone(), client.clone()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            table.row(vec![
                row.topic.clone(),
                row.partition.to_string(),
                or_dash(row.committed),
                or_dash(row.log_end),
                or_dash(row.lag()),
                member,
                host,
                client,
            ]);
        }
        out.push_str(&table.render());
    }
    if let Some(problem) = log_end_problem {
        out.push_str(&format!("Log end offsets unavailable: {problem:#}\n"));
    }
    out.push('\n');
    if group.members.is_empty() {
        out.push_str(&format!(
            "Group {} has no active members.\n",
            group.group_id
        ));
        return out;
    }
    let mut table = Table::new(&[
        "MEMBER-ID",
        "GROUP-INSTANCE-ID",
        "CLIENT-ID",
        "HOST",
        "ASSIGNMENT",
    ]);
    for member in &group.members {
        table.row(vec![
            member.member_id.clone(),
            or_dash(member.group_instance_id.as_ref()),
            dash_if_empty(&member.client_id),
            dash_if_empty(&member.client_host),
            assignment_text(&member.assignment),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// "orders:0,1 payments:2", "-" for none.
fn assignment_text(assignment: &MemberAssignment) -> String {
    match assignment {
        MemberAssignment::Partitions(topics) if topics.is_empty() => "-".to_string(),
        MemberAssignment::Partitions(topics) => topics
            .iter()
            .map(|(topic, partitions)| {
                let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
                format!("{topic}:{}", list.join(","))
            })
            .collect::<Vec<_>>()
            .join(" "),
        MemberAssignment::Opaque(bytes) => format!("({} bytes, not a consumer group)", bytes.len()),
        MemberAssignment::Unreadable(why) => format!("(unreadable: {why})"),
    }
}

/// The latest offset of each partition whose topic and partition exist, from the leaders.
/// Partitions of topics metadata does not know are left out.
async fn latest_offsets(
    admin: &Admin,
    partitions: &[(String, i32)],
) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    let mut known = BTreeMap::new();
    for topic in topics {
        match admin.cluster().topic(topic, Duration::ZERO).await {
            Ok(info) => {
                known.insert(topic.to_string(), info);
            }
            Err(Error::UnknownTopic(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let targets: Vec<(String, i32)> = partitions
        .iter()
        .filter(|(t, p)| {
            known
                .get(t)
                .is_some_and(|info| info.partition(*p).is_some())
        })
        .cloned()
        .collect();
    offsets_at(admin, &targets, OffsetSpec::Latest).await
}

/// The offset `spec` names in each of `partitions` (ListOffsets to the leaders).
async fn offsets_at(
    admin: &Admin,
    partitions: &[(String, i32)],
    spec: OffsetSpec,
) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let targets: Vec<_> = partitions
        .iter()
        .map(|(topic, partition)| ((Arc::from(topic.as_str()), *partition), spec))
        .collect();
    let found = offsets::list_offsets(admin.cluster(), IsolationLevel::ReadUncommitted, &targets)
        .await
        .context("looking up offsets")?;
    Ok(found
        .into_iter()
        .map(|((topic, partition), offset)| ((topic.to_string(), partition), offset))
        .collect())
}

async fn delete(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
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

async fn delete_offsets(
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

async fn reset_offsets(admin: &Admin, args: &ResetArgs) -> anyhow::Result<()> {
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
fn plan_offset(
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

fn parse_state(text: &str) -> Result<GroupState, String> {
    match GroupState::parse(text) {
        GroupState::Unknown(_) => {
            let known: Vec<&str> = GroupState::KNOWN.iter().map(GroupState::name).collect();
            Err(format!(
                "unknown group state '{text}' (expected one of {})",
                known.join(", ")
            ))
        }
        state => Ok(state),
    }
}

/// `TOPIC` or `TOPIC:P,P,...`.
fn parse_topic_partitions(text: &str) -> Result<(String, Vec<i32>), String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, Vec::new()),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| format!("'{p}' in '{text}' is not a partition number"))
                })
                .collect::<Result<Vec<i32>, String>>()?;
            (topic, partitions)
        }
    };
    if topic.is_empty() {
        return Err(format!(
            "no topic in '{text}' (expected TOPIC or TOPIC:P,P...)"
        ));
    }
    Ok((topic.to_string(), partitions))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` (no zone: UTC) as ms since the epoch.
fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("'{text}' is not a datetime like 2026-12-07T10:00:00Z (YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM])")
    };
    let number = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (date, rest) = text.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut date_parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    // The zone: Z, +HH:MM or -HH:MM at the end, or none (UTC).
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':').ok_or_else(bad)?;
        (time, sign * (number(hours)? * 60 + number(minutes)?))
    } else {
        (rest, 0)
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock_parts = clock.split(':');
    let (Some(hour), Some(minute), second, None) = (
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
    ) else {
        return Err(bad());
    };
    let (hour, minute) = (number(hour)?, number(minute)?);
    let second = second.map(number).transpose()?.unwrap_or(0);
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(&digits)?
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};
    use clap::Parser;
    use sluice_client::GroupMember;

    fn reset_args(args: &[&str]) -> ResetArgs {
        let mut full = vec!["sluice", "group", "reset-offsets"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Group {
                command: GroupCommand::ResetOffsets(args),
            } => args,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reset_offsets_needs_one_target_one_scope_and_one_mode() {
        let args = reset_args(&["g", "--topic", "t:0,2", "--shift-by", "-5", "--dry-run"]);
        assert_eq!(args.topics, vec![("t".to_string(), vec![0, 2])]);
        assert_eq!(args.reset_to(), ResetTo::ShiftBy(-5));
        assert!(args.dry_run && !args.execute);
        let args = reset_args(&[
            "g",
            "--all-topics",
            "--to-datetime",
            "2026-12-07T10:00:00Z",
            "--execute",
        ]);
        assert_eq!(args.reset_to(), ResetTo::Datetime(1_796_637_600_000));
        for bad in [
            &["g", "--topic", "t", "--to-earliest"][..],
            &["g", "--topic", "t", "--dry-run"],
            &["g", "--to-latest", "--dry-run"],
            &[
                "g",
                "--topic",
                "t",
                "--to-latest",
                "--to-earliest",
                "--execute",
            ],
            &["g", "--topic", "t", "--to-latest", "--dry-run", "--execute"],
            &["g", "--topic", "t:x", "--to-latest", "--dry-run"],
        ] {
            let mut full = vec!["sluice", "group", "reset-offsets"];
            full.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&full).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plans_clamp_to_the_logs_range_and_shift_needs_a_commit() {
        let range = (10, 100);
        assert_eq!(
            plan_offset(ResetTo::Earliest, Some(50), range, None),
            Ok((10, None))
        );
        assert_eq!(
            plan_offset(ResetTo::Latest, None, range, None),
            Ok((100, None))
        );
        assert_eq!(
            plan_offset(ResetTo::Offset(42), None, range, None),
            Ok((42, None))
        );
        let (offset, note) = plan_offset(ResetTo::Offset(500), None, range, None).unwrap();
        assert_eq!(offset, 100);
        assert!(note.unwrap().contains("above the log end offset 100"));
        let (offset, note) = plan_offset(ResetTo::ShiftBy(-45), Some(50), range, None).unwrap();
        assert_eq!(offset, 10);
        assert!(note.unwrap().contains("below the earliest offset 10"));
        assert_eq!(
            plan_offset(ResetTo::ShiftBy(5), Some(50), range, None),
            Ok((55, None))
        );
        assert!(plan_offset(ResetTo::ShiftBy(5), None, range, None).is_err());
        assert_eq!(
            plan_offset(ResetTo::Datetime(0), None, range, Some(70)),
            Ok((70, None))
        );
    }

    #[test]
    fn datetimes_parse_with_and_without_zones() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime("2026-12-07T10:00:00Z"),
            Ok(1_796_637_600_000)
        );
        assert_eq!(
            parse_datetime("2026-12-07T10:00:00.250Z"),
            Ok(1_796_637_600_250)
        );
        assert_eq!(
            parse_datetime("2026-12-07T11:30:00+01:30"),
            Ok(1_796_637_600_000)
        );
        assert_eq!(
            parse_datetime("2026-12-07T08:00:00-02:00"),
            Ok(1_796_637_600_000)
        );
        assert_eq!(parse_datetime("2026-12-07T10:00:00"), Ok(1_796_637_600_000));
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
        for bad in [
            "2026-12-07",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-07T25:00:00Z",
            "yesterday",
            "2026-12-07T10:00:00+0100",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_and_states_parse() {
        assert_eq!(
            parse_topic_partitions("orders"),
            Ok(("orders".to_string(), vec![]))
        );
        assert_eq!(
            parse_topic_partitions("orders:1, 2"),
            Ok(("orders".to_string(), vec![1, 2]))
        );
        assert!(parse_topic_partitions(":1").is_err());
        assert!(parse_topic_partitions("t:-1").is_err());
        assert_eq!(parse_state("stable"), Ok(GroupState::Stable));
        assert!(parse_state("sleepy").unwrap_err().contains("Empty"));
    }

    #[test]
    fn describe_shows_committed_log_end_lag_and_members() {
        let group = GroupDescription {
            group_id: "g".into(),
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![GroupMember {
                member_id: "m-1".into(),
                group_instance_id: None,
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                assignment: MemberAssignment::Partitions(vec![("t".into(), vec![1])]),
            }],
            coordinator: sluice_client::cluster::BrokerInfo {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            },
        };
        let committed = vec![CommittedOffset {
            topic: "t".into(),
            partition: 0,
            offset: Some(3),
            leader_epoch: None,
            metadata: String::new(),
        }];
        let mut rows = partition_rows(&group, &committed);
        assert_eq!(rows.len(), 2, "committed and assigned: {rows:?}");
        rows[0].log_end = Some(10);
        rows[1].log_end = Some(4);
        let text = render_description(&group, &rows, None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("State: Stable") && lines[0].contains("Assignor: range"));
        let row0: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row0, ["t", "0", "3", "10", "7", "-", "-", "-"]);
        let row1: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            row1,
            ["t", "1", "-", "4", "-", "m-1", "/127.0.0.1", "client"]
        );
        let member: Vec<&str> = lines[7].split_whitespace().collect();
        assert_eq!(
            member,
            ["m-1", "-", "client", "/127.0.0.1", "t:1"],
            "{text}"
        );
    }
}
