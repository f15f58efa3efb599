//! Consumer groups with real client libraries against a real `sluiced`: three members of
//! one group share a 6-partition topic, every record is consumed exactly once, the
//! committed offsets read back with OffsetFetch are what was consumed, and ListGroups and
//! DescribeGroups show the group Stable with its three members. The program is
//! `tests/interop/group_consume.py`; each test runs it with one client library.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{assert_interop_program, interop_broker, repo_root, venv_python, BrokerOptions};

fn run_group_program(client: &str) {
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new(venv_python());
    command
        .arg(repo_root().join("tests/interop/group_consume.py"))
        .arg("--client")
        .arg(client)
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    assert_interop_program(client, &mut command, &broker, Duration::from_secs(180));
}

#[test]
fn confluent_kafka_group_members_share_a_topic_and_commit() {
    run_group_program("confluent-kafka");
}

#[test]
fn kafka_python_group_members_share_a_topic_and_commit() {
    run_group_program("kafka-python");
}
