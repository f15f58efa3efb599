//! `sluice group`: consumer groups, as `kafka-consumer-groups` manages them: `list`,
//! `describe` (state, members and their assignments, and per partition the committed
//! offset, the log end offset and the lag), `delete`, `delete-offsets` and `reset-offsets`.
//!
//! Everything goes through the library's group admin API (`sluice_client::admin`, file
//! `admin/groups/`); the log end offsets are ListOffsets "latest" from each partition's
//! leader, as a consumer reads them. `reset-offsets` is planned by [`plan_offset`], a pure
//! function: the target per partition, clamped to the partition's earliest and latest
//! offsets as Kafka clamps it (with a note), then printed (`--dry-run`) or committed
//! (`--execute`). Like Kafka's tool it refuses a group that is not inactive (Empty, or no
//! group yet); the coordinator would refuse the commit anyway while the group has members.
//!
//! # Files
//!
//! This file has the clap types of the subcommands, the dispatch, `group list` and the
//! offset lookups several subcommands share; each other subcommand has its own file:
//!
//! - `describe.rs`: `group describe` (the partition table with lag, and the members).
//! - `delete.rs`: `group delete` and `group delete-offsets`.
//! - `reset.rs`: `group reset-offsets`: the plan ([`plan_offset`]) and its execution.
//! - `args.rs`: parsing of argument values: group states, `TOPIC:P,P`, datetimes.
//! - `tests.rs`: the unit tests.

mod args;
mod delete;
mod describe;
mod reset;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use sluice_client::offsets::{self, IsolationLevel, OffsetSpec};
use sluice_client::{Admin, GroupState, ListGroupsFilter};

use crate::output::{or_dash, Table};
use args::{parse_datetime, parse_state, parse_topic_partitions};
use delete::{delete, delete_offsets};
use describe::describe;
#[cfg(doc)]
use reset::plan_offset;
use reset::reset_offsets;

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
