//! `group describe`: a group's state, protocol type, assignor and coordinator; per
//! partition (committed or assigned) the committed offset, the log end offset and the lag;
//! then the members and their assignments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::time::Duration;

use sluice_client::offsets::OffsetSpec;
use sluice_client::{Admin, CommittedOffset, Error, GroupDescription, MemberAssignment};

use super::offsets_at;
use crate::output::{or_dash, Table};

/// One row of `describe`'s partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PartitionRow {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) committed: Option<i64>,
    pub(super) log_end: Option<i64>,
    /// (member id, host, client id) of the member it is assigned to.
    pub(super) member: Option<(String, String, String)>,
}

impl PartitionRow {
    fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

pub(super) async fn describe(admin: &Admin, group_id: &str) -> anyhow::Result<()> {
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
pub(super) fn partition_rows(
    group: &GroupDescription,
    committed: &[CommittedOffset],
) -> Vec<PartitionRow> {
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

pub(super) fn render_description(
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
