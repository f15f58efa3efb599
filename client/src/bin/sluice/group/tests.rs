//! Unit tests of `sluice group`: argument parsing, reset plans and the describe table.

use clap::Parser;
use sluice_client::{CommittedOffset, GroupDescription, GroupMember, GroupState, MemberAssignment};

use super::args::{parse_datetime, parse_state, parse_topic_partitions};
use super::describe::{partition_rows, render_description};
use super::reset::{plan_offset, ResetTo};
use super::{GroupCommand, ResetArgs};
use crate::tests::parse;
use crate::{Cli, Command};

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
