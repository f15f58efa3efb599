//! confluent-kafka (librdkafka, from the venv that `scripts/test.sh` creates) producing
//! with acks=all to a 3-broker cluster while the partition's leader is `kill -9`ed: every
//! record it was told is acknowledged is read back at its offset. The program is
//! `tests/interop/confluent_cluster_failover.py`; it prints `PROGRESS` once a quarter of
//! its records are acknowledged, the test then kills the leader and creates the gate file
//! the program waits for before it sends its second half.

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
