//! KafkaJS (Node.js) against a real `sluiced`: its admin client and clients through daily
//! operations (`tests/node/admin_check.js`, below), and consumer groups: three members of one
//! group share a 6-partition topic, every record is consumed exactly once, the offsets
//! each member commits read back with OffsetFetch as the log end offsets, and ListGroups
//! and DescribeGroups show the group Stable with its three members: the scenario of
//! `tests/interop/group_consume.py`. The program is `tests/node/group_consume.js`, run with
//! the machine's `node` and the pinned kafkajs that `scripts/test.sh` installs into
//! `tests/node/node_modules` (`npm ci`). `SLUICE_KAFKAJS_LOG=debug` prints KafkaJS's log.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{assert_interop_program, interop_broker, repo_root, BrokerOptions};

/// The program's own waits are 90 s each (`--timeout`); this bounds the whole run.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(180);

/// Run `tests/node/<script>` with the pinned kafkajs against a fresh broker; it must print
/// its SUMMARY line.
fn run_node_program(script: &str) {
    let node_dir = repo_root().join("tests/node");
    assert!(
        node_dir.join("node_modules/kafkajs/package.json").exists(),
        "{} has no kafkajs: run ./scripts/test.sh to provision the interop clients",
        node_dir.display()
    );
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new("node");
    command
        .current_dir(&node_dir)
        .arg(node_dir.join(script))
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(["--timeout", "90"]);
    assert_interop_program("kafkajs", &mut command, &broker, PROGRAM_DEADLINE);
}

#[test]
fn kafkajs_group_members_share_a_topic_and_commit() {
    run_node_program("group_consume.js");
}

/// KafkaJS's admin client and clients through daily operations (`tests/node/admin_check.js`):
/// topic creation, legacy AlterConfigs and DescribeConfigs, an idempotent producer
/// (uncompressed and gzip), offsets by time, DeleteRecords, a group consumer's commit and
/// the group's offsets, topic deletion. Checked against Apache Kafka 4.1.1 too.
#[test]
fn kafkajs_admin_produce_and_consume_as_on_kafka() {
    run_node_program("admin_check.js");
}
