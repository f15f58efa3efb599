//! Consumer groups with real client libraries against a real `sluiced`: three members of
//! one group share a 6-partition topic, every record is consumed exactly once, the
//! committed offsets read back with OffsetFetch are what was consumed, and ListGroups and
//! DescribeGroups show the group Stable with its three members. The program is
//! `tests/interop/group_consume.py`; each test runs it with one client library (and
//! librdkafka also with the KIP-848 protocol, `group.protocol=consumer`, and with a regex
//! subscription under both protocols).
//!
//! Members failing (`tests/interop/group_failover.py`, confluent-kafka, one process per
//! member): one leaves and one is killed with SIGKILL while records flow, and the last takes
//! over from the committed offsets (nothing lost, only the killed member's uncommitted
//! records redelivered); a static member killed and restarted within its session timeout
//! gets its partitions back without a rebalance.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{assert_interop_program, interop_broker, repo_root, venv_python, BrokerOptions};

fn run_group_program(client: &str, protocol: &str, extra: &[&str]) {
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new(venv_python());
    command
        .arg(repo_root().join("tests/interop/group_consume.py"))
        .arg("--client")
        .arg(client)
        .arg("--protocol")
        .arg(protocol)
        .args(extra)
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    assert_interop_program(client, &mut command, &broker, Duration::from_secs(180));
}

#[test]
fn confluent_kafka_group_members_share_a_topic_and_commit() {
    run_group_program("confluent-kafka", "classic", &[]);
}

/// The KIP-848 protocol (`group.protocol=consumer`): the broker assigns (uniform), the
/// members reconcile incrementally.
#[test]
fn confluent_kafka_consumer_protocol_members_share_a_topic_and_commit() {
    run_group_program("confluent-kafka", "consumer", &[]);
}

/// KIP-848 with a regex subscription: librdkafka sends it to the coordinator
/// (`SubscribedTopicRegex`), which resolves it; and the classic protocol, where librdkafka
/// resolves it against metadata itself.
#[test]
fn confluent_kafka_regex_subscriptions_with_both_protocols() {
    run_group_program("confluent-kafka", "consumer", &["--regex"]);
    run_group_program("confluent-kafka", "classic", &["--regex"]);
}

#[test]
fn kafka_python_group_members_share_a_topic_and_commit() {
    run_group_program("kafka-python", "classic", &[]);
}

fn run_failover_scenario(scenario: &str) {
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new(venv_python());
    command
        .arg(repo_root().join("tests/interop/group_failover.py"))
        .arg("--scenario")
        .arg(scenario)
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    assert_interop_program(scenario, &mut command, &broker, Duration::from_secs(240));
}

#[test]
fn the_last_member_takes_over_from_committed_offsets_after_a_leave_and_a_crash() {
    run_failover_scenario("leave-and-crash");
}

#[test]
fn a_static_member_restarted_within_its_session_timeout_causes_no_rebalance() {
    run_failover_scenario("static-restart");
}
