//! Replication factor changes and broker decommissioning through the `sluice` CLI, on four
//! brokers. A two-partition topic created with one replica per partition gets acknowledged
//! records, then `sluice partition reassign --plan` (kafka-reassign-partitions JSON) grows
//! each partition to three replicas: the new replicas copy the leader's log, and once the
//! reassignment is complete (`--status --plan` says so, metadata lists the plan's replicas
//! with a full ISR) every replica holds the leader's bytes up to the high watermark and the
//! records read back. Then `sluice broker decommission N --wait` moves every replica off a
//! broker that holds both partitions: afterwards no partition lists it, its copies are
//! deleted, the partitions keep three identical replicas, and every record still reads back.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use sluice_tests::workload::{read_back, runtime};
use sluice_tests::{
    run_program, sluice_binary, AckedBatch, Cluster, ClusterOptions, PartitionState, ProgramOutput,
};

const TOPIC: &str = "grow-rf";
const PARTITIONS: i32 = 2;
const BATCHES_PER_PARTITION: usize = 5;
const RECORDS_PER_BATCH: usize = 200;
/// How long one CLI command may run (decommission --wait included).
const CLI_TIMEOUT: Duration = Duration::from_secs(180);
/// What `broker decommission --wait` is given.
const DECOMMISSION_WAIT_SECS: u64 = 120;
/// How long a reassignment may take to complete, and the cluster to agree on it.
const REASSIGNMENT_DEADLINE: Duration = Duration::from_secs(90);
/// How long a removed broker may take to delete its copy.
const DELETE_DEADLINE: Duration = Duration::from_secs(30);

fn sluice(cluster: &Cluster, args: &[&str]) -> ProgramOutput {
    let mut command = Command::new(sluice_binary());
    command
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .args(args);
    run_program(&mut command, None, CLI_TIMEOUT)
}

fn ok(cluster: &Cluster, output: ProgramOutput, what: &str) -> String {
    assert!(
        output.success(),
        "{what} failed:\n{}\n{}",
        output.describe(),
        cluster.logs()
    );
    output.stdout_lossy()
}

/// The CLI's line for one partition (`Topic: t\tPartition: N\t...`).
fn line_for<'a>(stdout: &'a str, topic: &str, partition: i32) -> Option<&'a str> {
    let prefix = format!("Topic: {topic}\tPartition: {partition}\t");
    stdout.lines().find(|l| l.starts_with(&prefix))
}

/// Kafka's reassignment JSON for (topic, partition, replicas).
fn plan_json(entries: &[(&str, i32, &[i32])]) -> String {
    let partitions: Vec<String> = entries
        .iter()
        .map(|(topic, partition, replicas)| {
            format!(
                r#"{{"topic":"{topic}","partition":{partition},"replicas":[{}]}}"#,
                id_list(replicas)
            )
        })
        .collect();
    format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(","))
}

/// Broker ids as the CLI prints them: `1,2,3`.
fn id_list(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Wait until every live node reports the partition on `replicas` (in order), with a
/// leader and a full ISR.
fn wait_for_replicas(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    replicas: &[i32],
    what: &str,
) -> PartitionState {
    cluster.wait_for(
        &format!("{what}: every live node listing {topic}-{partition} on {replicas:?} with a leader and a full ISR"),
        REASSIGNMENT_DEADLINE,
        |c| {
            c.partition_state_agreed(topic, partition).filter(|s| {
                s.replicas == replicas && s.isr_is_full() && s.leader.is_some()
            })
        },
    )
}

/// Poll `sluice partition reassign --status --plan FILE` until every planned partition is
/// complete.
fn wait_for_plan_complete(cluster: &mut Cluster, plan: &Path) -> String {
    let plan = plan.to_str().expect("a UTF-8 path").to_string();
    let mut last = String::new();
    let done = cluster.poll_until(std::time::Instant::now() + REASSIGNMENT_DEADLINE, |c| {
        let output = sluice(c, &["partition", "reassign", "--status", "--plan", &plan]);
        last = output.describe();
        let stdout = output.stdout_lossy();
        let complete = (0..PARTITIONS).all(|p| {
            line_for(&stdout, TOPIC, p).is_some_and(|l| l.ends_with("\tStatus: complete"))
        });
        (output.success() && complete).then_some(stdout)
    });
    done.unwrap_or_else(|| {
        panic!(
            "`partition reassign --status --plan` never reported every partition complete; last:\n{last}\n{}",
            cluster.logs()
        )
    })
}

/// Every acknowledged value is read back at the offset its acknowledgement implies.
fn assert_read_back(records: &[(i64, Option<Bytes>)], batches: &[AckedBatch], partition: i32) {
    for batch in batches {
        for (i, value) in batch.values.iter().enumerate() {
            let offset = batch.base_offset + i as i64;
            let found = records.iter().find(|(o, _)| *o == offset);
            assert_eq!(
                found.and_then(|(_, v)| v.as_deref()),
                Some(value.as_bytes()),
                "{TOPIC}-{partition}: acknowledged {value} at offset {offset}"
            );
        }
    }
}

/// Wait for each partition's high watermark to cover its acknowledged batches, assert that
/// every one of its `replicas` holds the same bytes up to it, and read the records back
/// with the consumer. Returns the bytes compared per partition.
fn assert_replicas_hold_everything(
    cluster: &mut Cluster,
    runtime: &tokio::runtime::Runtime,
    replicas: &[Vec<i32>],
    batches: &[Vec<AckedBatch>],
) -> Vec<usize> {
    let mut compared = Vec::new();
    for partition in 0..PARTITIONS {
        let p = partition as usize;
        let needed = AckedBatch::end_of(&batches[p]).expect("batches acknowledged");
        let (high_watermark, records) = read_back(runtime, cluster, TOPIC, partition, needed);
        compared.push(cluster.assert_replicas_identical(
            TOPIC,
            partition,
            &replicas[p],
            high_watermark,
        ));
        assert_read_back(&records, &batches[p], partition);
    }
    compared
}

/// Whether node `id` holds nothing of the partition: its directory is gone, and so is the
/// `-delete` directory it was renamed to.
fn holds_nothing(cluster: &Cluster, id: i32, topic: &str, partition: i32) -> bool {
    let name = format!("{topic}-{partition}");
    let renamed = format!("{name}.");
    !cluster
        .partition_dirs(id)
        .iter()
        .any(|dir| *dir == name || dir.starts_with(&renamed))
}

#[test]
fn replication_factor_grows_by_plan_and_a_broker_is_decommissioned() {
    let mut cluster = Cluster::start(4, ClusterOptions::fast(2_000, 2_000));
    let ids = cluster.ids();
    cluster.create_topic(TOPIC, PARTITIONS, 1, &[]);

    // Acknowledged records in both partitions while each has its single replica.
    let mut batches: Vec<Vec<AckedBatch>> = Vec::new();
    let mut original: Vec<i32> = Vec::new();
    for partition in 0..PARTITIONS {
        let state = cluster
            .partition_state_agreed(TOPIC, partition)
            .expect("create_topic waits for agreement");
        assert_eq!(state.replicas.len(), 1, "{state:?}");
        original.push(state.replicas[0]);
        let acked: Vec<AckedBatch> = (0..BATCHES_PER_PARTITION)
            .map(|b| {
                let values = (0..RECORDS_PER_BATCH)
                    .map(|i| format!("p{partition}-b{b}-r{i}-{}", "x".repeat(64)))
                    .collect();
                cluster.produce_acked_batch(TOPIC, partition, values)
            })
            .collect();
        batches.push(acked);
    }

    // RF 1 -> 3: each partition keeps its replica first (it stays preferred leader) and gets
    // two of the others, a different pair per partition.
    let grown: Vec<Vec<i32>> = original
        .iter()
        .enumerate()
        .map(|(p, &first)| {
            let others: Vec<i32> = ids.iter().copied().filter(|&id| id != first).collect();
            let mut target = vec![first];
            target.extend((0..2).map(|k| others[(p + k) % others.len()]));
            target
        })
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plan_path = dir.path().join("grow.json");
    let entries: Vec<(&str, i32, &[i32])> = grown
        .iter()
        .enumerate()
        .map(|(p, target)| (TOPIC, p as i32, target.as_slice()))
        .collect();
    std::fs::write(&plan_path, plan_json(&entries)).expect("write the plan");
    let plan_arg = plan_path.to_str().expect("a UTF-8 path");
    let submitted = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--plan", plan_arg]),
        "partition reassign --plan",
    );
    for (p, target) in grown.iter().enumerate() {
        let expected = format!(
            "Topic: {TOPIC}\tPartition: {p}\tReplicas: {}\tOutcome: accepted",
            id_list(target)
        );
        assert_eq!(
            line_for(&submitted, TOPIC, p as i32),
            Some(expected.as_str()),
            "{submitted}"
        );
    }

    let status = wait_for_plan_complete(&mut cluster, &plan_path);
    for (p, target) in grown.iter().enumerate() {
        let state = wait_for_replicas(&mut cluster, TOPIC, p as i32, target, "RF 3");
        assert_eq!(state.isr.len(), 3, "{state:?}");
    }
    let runtime = runtime();
    let compared = assert_replicas_hold_everything(&mut cluster, &runtime, &grown, &batches);
    eprintln!("RF 1 -> 3 complete:\n{status}bytes identical per partition: {compared:?}");

    // Decommission a broker on both partitions, a leader if one is.
    let on_both: Vec<i32> = ids
        .iter()
        .copied()
        .filter(|id| grown.iter().all(|t| t.contains(id)))
        .collect();
    let leaders: Vec<i32> = (0..PARTITIONS)
        .filter_map(|p| cluster.partition_state(TOPIC, p).and_then(|s| s.leader))
        .collect();
    let victim = on_both
        .iter()
        .copied()
        .find(|id| leaders.contains(id))
        .or_else(|| on_both.first().copied())
        .expect("with RF 3 of 4, some broker holds both partitions");
    let timeout = DECOMMISSION_WAIT_SECS.to_string();
    let victim_arg = victim.to_string();
    let decommissioned = ok(
        &cluster,
        sluice(
            &cluster,
            &[
                "broker",
                "decommission",
                &victim_arg,
                "--wait",
                "--timeout-secs",
                &timeout,
            ],
        ),
        "broker decommission --wait",
    );
    assert!(
        decommissioned.contains(&format!(
            "Broker {victim} holds no replicas any more: {PARTITIONS} partitions moved."
        )),
        "{decommissioned}"
    );
    // Each partition's only free broker takes the victim's place, in the same position.
    let moved: Vec<Vec<i32>> = grown
        .iter()
        .map(|target| {
            let free = ids
                .iter()
                .copied()
                .find(|id| !target.contains(id))
                .expect("RF 3 of 4 leaves one broker free");
            target
                .iter()
                .map(|&id| if id == victim { free } else { id })
                .collect()
        })
        .collect();
    for (p, target) in moved.iter().enumerate() {
        let line = line_for(&decommissioned, TOPIC, p as i32).unwrap_or_else(|| {
            panic!("no line for partition {p}:\n{decommissioned}");
        });
        assert_eq!(
            line,
            format!(
                "Topic: {TOPIC}\tPartition: {p}\tReplicas: {} -> {}\tOutcome: accepted",
                id_list(&grown[p]),
                id_list(target)
            ),
            "{decommissioned}"
        );
    }

    // No partition lists the victim; every live node agrees, with a full ISR of three.
    for (p, target) in moved.iter().enumerate() {
        let state = wait_for_replicas(&mut cluster, TOPIC, p as i32, target, "decommissioned");
        assert!(!state.replicas.contains(&victim), "{state:?}");
        assert_ne!(state.leader, Some(victim), "{state:?}");
    }
    // The plan the command printed reads back as complete, and nothing runs any more.
    let printed_plan = decommissioned
        .lines()
        .find_map(|l| l.strip_prefix("Plan: "))
        .unwrap_or_else(|| panic!("no Plan: line:\n{decommissioned}"));
    let decommission_plan_path = dir.path().join("decommission.json");
    std::fs::write(&decommission_plan_path, printed_plan).expect("write the printed plan");
    wait_for_plan_complete(&mut cluster, &decommission_plan_path);
    let listed = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--status"]),
        "partition reassign --status",
    );
    assert_eq!(
        listed.trim(),
        "No partition reassignment is in progress.",
        "{listed}"
    );

    // The victim deleted its copies.
    for partition in 0..PARTITIONS {
        cluster.wait_for(
            &format!("broker {victim} to delete its copy of {TOPIC}-{partition}"),
            DELETE_DEADLINE,
            |c| holds_nothing(c, victim, TOPIC, partition).then_some(()),
        );
    }

    // Three identical replicas, and every record still reads back.
    let compared = assert_replicas_hold_everything(&mut cluster, &runtime, &moved, &batches);
    eprintln!(
        "broker {victim} decommissioned: {grown:?} -> {moved:?}; bytes identical per partition: {compared:?}"
    );
}

/// A CLI command that must fail: its stdout and stderr.
fn refused(cluster: &Cluster, output: ProgramOutput, what: &str) -> (String, String) {
    assert!(
        !output.success() && output.status.is_some(),
        "{what} should have failed (and exited):\n{}\n{}",
        output.describe(),
        cluster.logs()
    );
    (
        output.stdout_lossy(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write_plan(dir: &Path, name: &str, entries: &[(&str, i32, &[i32])]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, plan_json(entries)).expect("write the plan");
    path.to_str().expect("a UTF-8 path").to_string()
}

/// The refusals and the in-between states: a plan the controller refuses in part, a cancel
/// with nothing running, a reassignment held in progress by the leader's throttle (100
/// bytes/s: the new replica gets one batch, then waits minutes) as `--status` and
/// `--status --plan` show it, a decommission refused because a partition has nowhere to
/// go, a dry run that plans from the running reassignment's target, and a cancel that puts
/// the partition back on its original replica (the plan then reads as failed, and the
/// cancelled replica deletes what it had copied).
#[test]
fn refusals_status_dry_run_and_cancel() {
    const MOVING: &str = "moving";
    const FULL: &str = "full";
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            extra_args: vec![
                "--reassignment-throttle-bytes-per-sec".to_string(),
                "100".to_string(),
            ],
            ..ClusterOptions::fast(2_000, 2_000)
        },
    );
    let home = cluster.create_one_partition_topic(MOVING, 1, &[]).replicas[0];
    let batches: Vec<AckedBatch> = (0..BATCHES_PER_PARTITION)
        .map(|b| {
            let values = (0..RECORDS_PER_BATCH)
                .map(|i| format!("b{b}-r{i}-{}", "y".repeat(64)))
                .collect();
            cluster.produce_acked_batch(MOVING, 0, values)
        })
        .collect();
    cluster.create_one_partition_topic(FULL, 3, &[]);
    let others: Vec<i32> = cluster.ids().into_iter().filter(|&id| id != home).collect();
    let (other, third) = (others[0], others[1]);
    let dir = tempfile::tempdir().expect("a temporary directory");

    // A plan refused in part: an unregistered broker, a topic that does not exist.
    let bad = write_plan(
        dir.path(),
        "bad.json",
        &[(MOVING, 0, &[home, 9]), ("missing", 0, &[home])],
    );
    let (stdout, stderr) = refused(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--plan", &bad]),
        "a plan with an unregistered broker and an unknown topic",
    );
    let moving_line = line_for(&stdout, MOVING, 0).unwrap_or_default();
    assert!(
        moving_line.starts_with(&format!(
            "Topic: {MOVING}\tPartition: 0\tReplicas: {home},9\tOutcome: failed: "
        )) && moving_line.ends_with("(INVALID_REPLICA_ASSIGNMENT)"),
        "{stdout}"
    );
    assert!(
        line_for(&stdout, "missing", 0)
            .is_some_and(|l| l.ends_with("(UNKNOWN_TOPIC_OR_PARTITION)")),
        "{stdout}"
    );
    assert!(
        stderr.contains("reassignment failed for 2 of 2 partitions"),
        "{stderr}"
    );

    // Cancelling where nothing runs is not an error.
    let grow = write_plan(dir.path(), "grow.json", &[(MOVING, 0, &[home, other])]);
    let cancelled = ok(
        &cluster,
        sluice(
            &cluster,
            &["partition", "reassign", "--plan", &grow, "--cancel"],
        ),
        "cancel with nothing running",
    );
    assert_eq!(
        line_for(&cancelled, MOVING, 0),
        Some(
            format!(
                "Topic: {MOVING}\tPartition: 0\tOutcome: no reassignment in progress (NO_REASSIGNMENT_IN_PROGRESS)"
            )
            .as_str()
        ),
        "{cancelled}"
    );

    // Growing is accepted and, throttled, stays in progress.
    let submitted = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--plan", &grow]),
        "partition reassign --plan",
    );
    assert_eq!(
        line_for(&submitted, MOVING, 0),
        Some(
            format!("Topic: {MOVING}\tPartition: 0\tReplicas: {home},{other}\tOutcome: accepted")
                .as_str()
        ),
        "{submitted}"
    );
    let running_line = format!(
        "Topic: {MOVING}\tPartition: 0\tReplicas: {home},{other}\tAdding: {other}\tRemoving: none"
    );
    let listed = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--status"]),
        "partition reassign --status",
    );
    assert_eq!(listed.trim(), running_line, "{listed}");
    let progress = ok(
        &cluster,
        sluice(
            &cluster,
            &["partition", "reassign", "--status", "--plan", &grow],
        ),
        "partition reassign --status --plan, in progress",
    );
    assert_eq!(
        progress.trim(),
        format!(
            "Topic: {MOVING}\tPartition: 0\tReplicas: {home},{other}\tStatus: in progress (replicas {home},{other}, adding {other}, removing none)"
        ),
        "{progress}"
    );

    // Decommissioning `home` is refused while `full` is on every broker: nothing is
    // submitted.
    let home_arg = home.to_string();
    let (_, stderr) = refused(
        &cluster,
        sluice(&cluster, &["broker", "decommission", &home_arg]),
        "decommissioning a broker when a partition has nowhere to go",
    );
    assert!(
        stderr.contains(&format!(
            "no live broker can take broker {home}'s place in {FULL}-0"
        )) && stderr.contains("nothing was reassigned"),
        "{stderr}"
    );
    let listed = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--status"]),
        "partition reassign --status after the refused decommission",
    );
    assert_eq!(listed.trim(), running_line, "{listed}");

    // Without `full`, a dry run plans `moving` from where it is going, and submits nothing.
    ok(
        &cluster,
        sluice(&cluster, &["topic", "delete", FULL]),
        "topic delete",
    );
    cluster.wait_for(
        &format!("every live node to forget {FULL}"),
        REASSIGNMENT_DEADLINE,
        |c| {
            c.live_ids()
                .into_iter()
                .all(|id| {
                    c.metadata_from(id, Some(&[FULL])).is_ok()
                        && c.partition_state_from(id, FULL, 0).is_none()
                })
                .then_some(())
        },
    );
    let dry = ok(
        &cluster,
        sluice(
            &cluster,
            &["broker", "decommission", &home_arg, "--dry-run"],
        ),
        "broker decommission --dry-run",
    );
    assert_eq!(
        line_for(&dry, MOVING, 0),
        Some(
            format!(
                "Topic: {MOVING}\tPartition: 0\tReplicas: {home},{other} -> {third},{other}\tOutcome: not submitted (--dry-run)"
            )
            .as_str()
        ),
        "{dry}"
    );
    assert!(
        dry.lines().any(|l| l
            == format!(
                r#"Plan: {{"version":1,"partitions":[{{"topic":"{MOVING}","partition":0,"replicas":[{third},{other}]}}]}}"#
            )),
        "{dry}"
    );
    let listed = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--status"]),
        "partition reassign --status after the dry run",
    );
    assert_eq!(listed.trim(), running_line, "{listed}");

    // Cancel: back on `home` alone, nothing runs, and the plan reads as failed.
    let cancelled = ok(
        &cluster,
        sluice(
            &cluster,
            &["partition", "reassign", "--plan", &grow, "--cancel"],
        ),
        "cancel",
    );
    assert_eq!(
        line_for(&cancelled, MOVING, 0),
        Some(format!("Topic: {MOVING}\tPartition: 0\tOutcome: cancelled").as_str()),
        "{cancelled}"
    );
    wait_for_replicas(&mut cluster, MOVING, 0, &[home], "cancelled");
    let listed = ok(
        &cluster,
        sluice(&cluster, &["partition", "reassign", "--status"]),
        "partition reassign --status after the cancel",
    );
    assert_eq!(
        listed.trim(),
        "No partition reassignment is in progress.",
        "{listed}"
    );
    let (stdout, stderr) = refused(
        &cluster,
        sluice(
            &cluster,
            &["partition", "reassign", "--status", "--plan", &grow],
        ),
        "the status of a cancelled plan",
    );
    assert_eq!(
        stdout.trim(),
        format!(
            "Topic: {MOVING}\tPartition: 0\tReplicas: {home},{other}\tStatus: failed: its replicas are {home}, not the plan's {home},{other}, and no reassignment is running"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of 1 planned partitions failed"),
        "{stderr}"
    );

    // The cancelled replica drops its partial copy; every record reads back.
    cluster.wait_for(
        &format!("broker {other} to delete its partial copy of {MOVING}-0"),
        DELETE_DEADLINE,
        |c| holds_nothing(c, other, MOVING, 0).then_some(()),
    );
    let runtime = runtime();
    let needed = AckedBatch::end_of(&batches).expect("batches acknowledged");
    let (_, records) = read_back(&runtime, &mut cluster, MOVING, 0, needed);
    assert_read_back(&records, &batches, 0);
}
