//! confluent-kafka (librdkafka, from the venv that `scripts/test.sh` creates) producing
//! with acks=all to a 3-broker cluster while the partition's leader is `kill -9`ed: every
//! record it was told is acknowledged is read back at its offset. The program is
//! `tests/interop/confluent_cluster_failover.py`; it prints `PROGRESS` once a quarter of
//! its records are acknowledged, the test then kills the leader and creates the gate file
//! the program waits for before it sends its second half.
//!
//! And its AdminClient creating a topic 1 s after the active controller's node is
//! `kill -9`ed (`tests/interop/confluent_admin_controller_kill.py`): librdkafka sends admin
//! requests to the broker Metadata names as controller, which must be a live broker that
//! forwards them (KIP-590), so the creation completes within the election plus a few
//! seconds (issue 13; it did not complete in 40 s when Metadata named the dead node).

use std::process::Command;
use std::time::Duration;

use sluice_tests::{repo_root, spawn_program, venv_python, Cluster, ClusterOptions};

const TOPIC: &str = "confluent-failover";

#[test]
fn confluent_kafka_acks_all_survives_a_leader_kill() {
    let python = venv_python();
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let gate_dir = tempfile::tempdir().expect("temporary directory");
    let gate_file = gate_dir.path().join("leader-killed");
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/interop/confluent_cluster_failover.py"))
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .arg("--topic")
        .arg(TOPIC)
        .arg("--gate-file")
        .arg(&gate_file)
        .arg("--count")
        .arg("20000");
    let mut program = spawn_program(&mut command, None);

    let Some(progress) = program.wait_for_line("PROGRESS", Duration::from_secs(120)) else {
        let output = program.wait(Duration::from_secs(1));
        panic!(
            "the program never reported progress\n{}\n{}",
            output.describe(),
            cluster.logs()
        );
    };
    let leader = cluster.wait_for_leader(TOPIC, 0, Duration::from_secs(10));
    cluster.kill9(leader);
    std::fs::write(&gate_file, b"").expect("create the gate file");
    eprintln!("{progress}: killed leader {leader}");

    let output = program.wait(Duration::from_secs(300));
    let stdout = output.stdout_lossy();
    let summary = stdout.lines().find(|l| l.starts_with("SUMMARY"));
    match summary {
        Some(summary) if output.success() => {
            eprintln!("{summary} ({:.1}s)", output.elapsed.as_secs_f64())
        }
        _ => panic!(
            "confluent_cluster_failover.py failed\n{}\n{}",
            output.describe(),
            cluster.logs()
        ),
    }
}

#[test]
fn confluent_kafka_admin_creates_a_topic_right_after_the_controller_dies() {
    let python = venv_python();
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let gate_dir = tempfile::tempdir().expect("temporary directory");
    let gate_file = gate_dir.path().join("controller-killed");
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/interop/confluent_admin_controller_kill.py"))
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .arg("--topic")
        .arg("after-controller-kill")
        .arg("--gate-file")
        .arg(&gate_file)
        .args(["--deadline", "20"]);
    let mut program = spawn_program(&mut command, None);
    if program
        .wait_for_line("READY", Duration::from_secs(90))
        .is_none()
    {
        let output = program.wait(Duration::from_secs(1));
        panic!(
            "the program never got ready\n{}\n{}",
            output.describe(),
            cluster.logs()
        );
    }
    let controller = cluster.wait_for("an active controller", Duration::from_secs(30), |c| {
        c.controller_id()
    });
    cluster.kill9(controller);
    std::thread::sleep(Duration::from_secs(1)); // the scenario: the request 1 s after the kill
    std::fs::write(&gate_file, b"").expect("create the gate file");

    let output = program.wait(Duration::from_secs(60));
    let stdout = output.stdout_lossy();
    match stdout.lines().find(|l| l.starts_with("SUMMARY")) {
        Some(summary) if output.success() => eprintln!("{summary} (killed node {controller})"),
        _ => panic!(
            "confluent_admin_controller_kill.py failed (killed controller {controller})\n{}\n{}",
            output.describe(),
            cluster.logs()
        ),
    }
}
