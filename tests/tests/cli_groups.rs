//! `sluice group` against a real `sluiced`, checked through the client's group admin API:
//! a group made by a simple commit (OffsetCommit with generation -1) is listed and described
//! with its committed offsets, log end offsets and lag; `reset-offsets --dry-run` changes
//! nothing, and `--execute` with `--to-earliest`, `--to-offset`, `--shift-by` (clamped to
//! the log), `--to-datetime` and `--to-latest` commits what each promises; `delete-offsets`
//! removes one partition's offset; `delete` removes the group. A group with a live member
//! (a raw JoinGroup and SyncGroup) is described with its member and assignment, and is
//! refused by `reset-offsets`, `delete` and the admin API's commit, each with a clear
//! error and a non-zero exit.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::{Acks, Admin, NewOffset, Producer, ProducerRecord};
use sluice_protocol::consumer_protocol::{
    encode_assignment, encode_subscription, AssignedPartitions, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
};
use sluice_tests::raw::{topic_name, RawConnection};
use sluice_tests::workload::{producer_config, runtime};
use sluice_tests::{run_program, sluice_binary, Broker, BrokerOptions, ProgramOutput};

const TOPIC: &str = "orders";
/// Records produced to partitions 0 and 1.
const RECORDS: [i64; 2] = [10, 6];
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--auto-create-topics".into(),
            "false".into(),
            "--group-initial-rebalance-delay-ms".into(),
            "0".into(),
        ],
        ..Default::default()
    })
}

fn sluice(broker: &Broker, args: &[&str]) -> ProgramOutput {
    let mut command = Command::new(sluice_binary());
    command
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(args);
    run_program(&mut command, None, RUN_TIMEOUT)
}

/// `sluice ARGS` that must succeed; its stdout.
fn ok(broker: &Broker, args: &[&str]) -> String {
    let output = sluice(broker, args);
    assert!(
        output.success(),
        "sluice {args:?} failed:\n{}\n{}",
        output.describe(),
        broker.log_tail(8192)
    );
    output.stdout_lossy()
}

/// `sluice ARGS` that must fail; its stderr.
fn fails(broker: &Broker, args: &[&str]) -> String {
    let output = sluice(broker, args);
    assert!(
        !output.success() && output.status.is_some(),
        "sluice {args:?} should have failed:\n{}",
        output.describe()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The rows of `describe`'s partition table for `TOPIC`, split into cells.
fn partition_rows(describe: &str) -> Vec<Vec<String>> {
    describe
        .lines()
        .filter(|line| line.starts_with(&format!("{TOPIC} ")))
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The group's committed offsets of partitions 0 and 1 (`None`: nothing committed), as the
/// admin API reads them.
fn committed(admin: &Admin, rt: &tokio::runtime::Runtime, group: &str) -> [Option<i64>; 2] {
    let partitions = [(TOPIC.to_string(), 0), (TOPIC.to_string(), 1)];
    let offsets = rt
        .block_on(admin.list_group_offsets(group, Some(&partitions)))
        .expect("list group offsets");
    let find = |p: i32| {
        offsets
            .iter()
            .find(|o| o.topic == TOPIC && o.partition == p)
            .unwrap_or_else(|| panic!("partition {p} missing: {offsets:?}"))
            .offset
    };
    [find(0), find(1)]
}

/// Create `TOPIC` (2 partitions) and produce `RECORDS` records to its partitions, the
/// record at offset i of each partition with timestamp `base_ms + i * 1000`.
fn topic_with_records(broker: &Broker, rt: &tokio::runtime::Runtime, base_ms: i64) {
    ok(broker, &["topic", "create", TOPIC, "--partitions", "2"]);
    rt.block_on(async {
        let producer = Producer::new(producer_config(&broker.bootstrap(), Acks::All))
            .await
            .unwrap();
        // One record per batch (each is acknowledged before the next is sent): Sluice
        // answers a timestamp lookup with the first *batch* at or after it (Kafka: the first
        // record), so only one-record batches make both agree.
        for (partition, &count) in RECORDS.iter().enumerate() {
            for i in 0..count {
                let record = ProducerRecord {
                    topic: TOPIC.to_string(),
                    partition: Some(partition as i32),
                    value: Some(Bytes::from(format!("record {i}"))),
                    timestamp: Some(base_ms + i * 1000),
                    ..ProducerRecord::default()
                };
                let delivery = producer.send(record).await.unwrap();
                assert_eq!(delivery.await.expect("delivered").offset, i);
            }
        }
        producer.close().await;
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

#[test]
fn group_commands_list_describe_reset_and_delete_a_groups_offsets() {
    let broker = broker();
    let rt = runtime();
    let base_ms = now_ms() - 60_000;
    topic_with_records(&broker, &rt, base_ms);
    let admin = rt.block_on(Admin::new(&broker.bootstrap())).unwrap();
    let group = "cli-reset-group";

    // A group made by a simple commit, as kafka-consumer-groups would make it.
    let new = |partition: i32, offset: i64| NewOffset {
        topic: TOPIC.to_string(),
        partition,
        offset,
    };
    let results = rt
        .block_on(admin.alter_group_offsets(group, &[new(0, 3), new(1, 2)]))
        .expect("simple commit");
    assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
    assert_eq!(committed(&admin, &rt, group), [Some(3), Some(2)]);

    // list: the group, Empty, with no protocol type (only simple commits).
    let list = ok(&broker, &["group", "list"]);
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(group))
        .unwrap_or_else(|| panic!("{group} not listed:\n{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "Empty", "{list}");
    let stable_only = ok(&broker, &["group", "list", "--state", "stable"]);
    assert!(!stable_only.contains(group), "{stable_only}");

    // describe: committed, log end and lag per partition.
    let describe = ok(&broker, &["group", "describe", group]);
    assert!(describe.contains("State: Empty"), "{describe}");
    assert!(describe.contains("has no active members"), "{describe}");
    let rows = partition_rows(&describe);
    let cells = |row: &[String]| row[..5].to_vec();
    assert_eq!(
        rows.iter().map(|r| cells(r)).collect::<Vec<_>>(),
        vec![
            vec![TOPIC, "0", "3", "10", "7"],
            vec![TOPIC, "1", "2", "6", "4"],
        ],
        "{describe}"
    );

    // --dry-run prints the plan and commits nothing.
    let plan = ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert!(plan.contains("Dry run"), "{plan}");
    let planned: Vec<Vec<&str>> = plan
        .lines()
        .filter(|l| l.starts_with(group))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        planned,
        vec![
            vec![group, TOPIC, "0", "3", "0"],
            vec![group, TOPIC, "1", "2", "0"],
        ],
        "{plan}"
    );
    assert_eq!(committed(&admin, &rt, group), [Some(3), Some(2)]);

    let reset = |args: &[&str]| {
        let mut full = vec!["group", "reset-offsets", group];
        full.extend_from_slice(args);
        full.push("--execute");
        ok(&broker, &full)
    };
    reset(&["--topic", TOPIC, "--to-earliest"]);
    assert_eq!(committed(&admin, &rt, group), [Some(0), Some(0)]);

    // One partition only.
    reset(&["--topic", &format!("{TOPIC}:0"), "--to-offset", "5"]);
    assert_eq!(committed(&admin, &rt, group), [Some(5), Some(0)]);

    reset(&["--topic", TOPIC, "--shift-by", "2"]);
    assert_eq!(committed(&admin, &rt, group), [Some(7), Some(2)]);

    // Beyond the log: clamped, with a note.
    let clamped = reset(&["--all-topics", "--shift-by", "-100"]);
    assert!(clamped.contains("below the earliest offset 0"), "{clamped}");
    assert_eq!(committed(&admin, &rt, group), [Some(0), Some(0)]);

    // The first record at or after base + 4.5 s is offset 5 in both partitions; after the
    // last record of partition 1 (offset 5, base + 5 s) there is none: the log end.
    reset(&["--topic", TOPIC, "--to-datetime", &rfc3339(base_ms + 4_500)]);
    assert_eq!(committed(&admin, &rt, group), [Some(5), Some(5)]);
    reset(&["--topic", TOPIC, "--to-datetime", &rfc3339(base_ms + 7_500)]);
    assert_eq!(committed(&admin, &rt, group), [Some(8), Some(6)]);

    reset(&["--topic", TOPIC, "--to-earliest"]);
    reset(&["--topic", TOPIC, "--to-latest"]);
    assert_eq!(committed(&admin, &rt, group), [Some(10), Some(6)]);
    let describe = ok(&broker, &["group", "describe", group]);
    let lags: Vec<String> = partition_rows(&describe)
        .iter()
        .map(|r| r[4].clone())
        .collect();
    assert_eq!(lags, ["0", "0"], "{describe}");

    // delete-offsets: partition 1's offset is gone, partition 0's stays.
    let deleted = ok(
        &broker,
        &[
            "group",
            "delete-offsets",
            group,
            "--topic",
            TOPIC,
            "--partition",
            "1",
        ],
    );
    assert!(deleted.contains("deleted"), "{deleted}");
    assert_eq!(committed(&admin, &rt, group), [Some(10), None]);
    let describe = ok(&broker, &["group", "describe", group]);
    assert_eq!(partition_rows(&describe).len(), 1, "{describe}");

    // delete: the group is gone.
    let deleted = ok(&broker, &["group", "delete", group]);
    assert!(
        deleted.contains(&format!("Deleted group {group}.")),
        "{deleted}"
    );
    let missing = fails(&broker, &["group", "describe", group]);
    assert!(
        missing.contains("does not exist") && missing.contains("GROUP_ID_NOT_FOUND"),
        "{missing}"
    );
    assert_eq!(committed(&admin, &rt, group), [None, None]);
    let list = ok(&broker, &["group", "list"]);
    assert!(!list.contains(group), "{list}");
    let again = fails(&broker, &["group", "delete", group]);
    assert!(again.contains("does not exist"), "{again}");
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Join `group` as the only member (session 60 s, so it stays without heartbeats for the
/// test) and hand itself both partitions of `TOPIC`; its member id.
fn join_and_sync(conn: &mut RawConnection, group: &str) -> String {
    let subscription = ConsumerProtocolSubscription::default().with_topics(vec![str(TOPIC)]);
    let join = |member_id: &str, conn: &mut RawConnection| -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str(group)))
            .with_session_timeout_ms(60_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str(member_id))
            .with_protocol_type(str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str("range"))
                .with_metadata(encode_subscription(&subscription, 3).unwrap())]);
        conn.request(ApiKey::JoinGroup, 9, &request)
            .expect("JoinGroup")
    };
    // The coordinator may still be loading its partition: ask again until it serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let first = join("", conn);
        if ![COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE].contains(&first.error_code) {
            break first;
        }
        assert!(Instant::now() < deadline, "{first:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let member_id = first.member_id.to_string();
    let joined = join(&member_id, conn);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![0, 1]),
    ]);
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(str(&member_id))
        .with_protocol_type(Some(str("consumer")))
        .with_protocol_name(Some(str("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(str(&member_id))
            .with_assignment(encode_assignment(&assignment, 3).unwrap())]);
    let synced: SyncGroupResponse = conn.request(ApiKey::SyncGroup, 5, &request).unwrap();
    assert_eq!(synced.error_code, 0, "{synced:?}");
    member_id
}

#[test]
fn group_commands_refuse_to_change_a_group_with_members() {
    let broker = broker();
    let rt = runtime();
    topic_with_records(&broker, &rt, now_ms());
    let admin = rt.block_on(Admin::new(&broker.bootstrap())).unwrap();
    let group = "cli-active-group";

    // The admin API finds the coordinator (creating __consumer_offsets, retrying until it
    // has a leader) before the raw JoinGroup.
    rt.block_on(admin.find_group_coordinator(group))
        .expect("a coordinator");
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let member_id = join_and_sync(&mut conn, group);

    // describe: Stable, the member, its client and assignment; assigned partitions are
    // shown without a committed offset.
    let describe = ok(&broker, &["group", "describe", group]);
    for expected in [
        "State: Stable",
        "Protocol type: consumer",
        "Assignor: range",
        "Members: 1",
        "sluice-raw-test",
        "orders:0,1",
    ] {
        assert!(describe.contains(expected), "{expected}:\n{describe}");
    }
    let rows = partition_rows(&describe);
    assert_eq!(rows.len(), 2, "{describe}");
    for (row, log_end) in rows.iter().zip(RECORDS) {
        assert_eq!(row[2], "-", "nothing committed: {describe}");
        assert_eq!(row[3], log_end.to_string(), "{describe}");
        assert_eq!(row[5], member_id, "{describe}");
    }
    let list = ok(&broker, &["group", "list", "--state", "Stable"]);
    assert!(list.contains(group), "{list}");
    let list = ok(&broker, &["group", "list", "--type", "consumer"]);
    assert!(!list.contains(group), "a classic group: {list}");

    // reset-offsets refuses, dry run or not, naming the state.
    for mode in ["--dry-run", "--execute"] {
        let refused = fails(
            &broker,
            &[
                "group",
                "reset-offsets",
                group,
                "--topic",
                TOPIC,
                "--to-earliest",
                mode,
            ],
        );
        assert!(
            refused.contains("Stable") && refused.contains("inactive"),
            "{refused}"
        );
    }
    // The admin API's commit is refused by the coordinator, said so.
    let error = rt
        .block_on(admin.alter_group_offsets(
            group,
            &[NewOffset {
                topic: TOPIC.to_string(),
                partition: 0,
                offset: 1,
            }],
        ))
        .expect_err("a simple commit to a group with members");
    let text = error.to_string();
    assert!(
        text.contains("active members") && text.contains("UNKNOWN_MEMBER_ID"),
        "{text}"
    );

    let refused = fails(&broker, &["group", "delete", group]);
    assert!(refused.contains("NON_EMPTY_GROUP"), "{refused}");
    let refused = fails(
        &broker,
        &[
            "group",
            "delete-offsets",
            group,
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    assert!(refused.contains("GROUP_SUBSCRIBED_TO_TOPIC"), "{refused}");

    // Unknown groups and bad arguments: clear errors, non-zero exits.
    let missing = fails(&broker, &["group", "describe", "no-such-group"]);
    assert!(
        missing.contains("group 'no-such-group' does not exist"),
        "{missing}"
    );
    let usage = fails(
        &broker,
        &["group", "reset-offsets", group, "--topic", TOPIC],
    );
    assert!(usage.contains("--to-earliest"), "{usage}");
}

#[test]
fn group_help_explains_each_command() {
    let broker_less = |args: &[&str]| {
        let mut command = Command::new(sluice_binary());
        command.args(args);
        let output = run_program(&mut command, None, RUN_TIMEOUT);
        assert!(output.success(), "{args:?}: {}", output.describe());
        output.stdout_lossy()
    };
    let help = broker_less(&["group", "--help"]);
    for command in [
        "list",
        "describe",
        "delete",
        "delete-offsets",
        "reset-offsets",
    ] {
        assert!(help.contains(command), "{help}");
    }
    let help = broker_less(&["group", "reset-offsets", "--help"]);
    for flag in [
        "--to-earliest",
        "--to-latest",
        "--to-offset",
        "--to-datetime",
        "--shift-by",
        "--dry-run",
        "--execute",
        "--all-topics",
    ] {
        assert!(help.contains(flag), "{flag}:\n{help}");
    }
}

/// `sluice consume --group`: a member of the group reads from the group's committed
/// offsets and commits what it printed, so a second run prints only what came after; with
/// either group protocol.
#[test]
fn consume_with_a_group_resumes_where_the_group_left_off() {
    let broker = broker();
    let rt = runtime();
    topic_with_records(&broker, &rt, 1_700_000_000_000);
    let total = (RECORDS[0] + RECORDS[1]) as usize;
    let admin = rt.block_on(Admin::new(&broker.bootstrap())).unwrap();
    for protocol in ["classic", "consumer"] {
        let group = format!("cli-consumers-{protocol}");
        let consume = |extra: &[&str]| {
            let mut args = vec![
                "consume",
                TOPIC,
                "--group",
                &group,
                "--group-protocol",
                protocol,
                "--from-beginning",
            ];
            args.extend_from_slice(extra);
            ok(&broker, &args)
        };
        let count = total.to_string();
        let printed = consume(&["--count", &count, "--timeout-ms", "15000"]);
        assert_eq!(printed.lines().count(), total, "{protocol}");
        assert_eq!(
            committed(&admin, &rt, &group),
            [Some(RECORDS[0]), Some(RECORDS[1])],
            "{protocol}: what was printed is committed"
        );
        // Nothing new: the next member starts at the commits and prints nothing.
        let again = consume(&["--timeout-ms", "3000"]);
        assert_eq!(
            again, "",
            "{protocol}: records already consumed by the group"
        );
    }
    // --partition and --group do not go together.
    let refused = fails(
        &broker,
        &["consume", TOPIC, "--group", "g", "--partition", "0"],
    );
    assert!(refused.contains("--partition"), "{refused}");
}
