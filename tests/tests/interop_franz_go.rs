//! The Go clients against a real `sluiced`: Sarama and franz-go's admin client and clients
//! through daily operations (`tests/go/cmd/sarama-check` and `admin-check`, below), and
//! franz-go's consumer groups (`kgo` with a consumer group, its default cooperative-sticky
//! balancer, and `kadm`): three members of one group share a 6-partition topic, every record is consumed exactly once, the offsets each
//! member commits read back with OffsetFetch as the log end offsets, and ListGroups and
//! DescribeGroups show the group Stable with its three members, the consumers fetching in
//! incremental fetch sessions (KIP-227): the scenario of
//! `tests/interop/group_consume.py`. The program is `tests/go/cmd/group-consume`, which
//! `scripts/test.sh` builds with the pinned franz-go of `tests/go/go.mod` into
//! `tests/go/bin/group-consume`. `SLUICE_FRANZ_LOG=debug` prints franz-go's log.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{
    assert_interop_program, interop_broker, repo_root, BrokerOptions, InteropBroker,
};

/// The program's own waits are 90 s each (`--timeout`); this bounds the whole run.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(180);

/// Run `tests/go/bin/<program>` against a fresh broker; it must print its SUMMARY line.
/// The broker, for checks after the run.
fn run_go_program(program: &str, client: &str) -> InteropBroker {
    let program = repo_root().join("tests/go/bin").join(program);
    assert!(
        program.exists(),
        "{} is missing: run ./scripts/test.sh to build the Go interop programs",
        program.display()
    );
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new(&program);
    command
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(["--timeout", "90s"]);
    assert_interop_program(client, &mut command, &broker, PROGRAM_DEADLINE);
    broker
}

#[test]
fn franz_go_group_members_share_a_topic_and_commit() {
    let broker = run_go_program("group-consume", "franz-go");
    // franz-go's consumers fetch in incremental fetch sessions (KIP-227).
    if let Some(incremental) = broker.incremental_fetches() {
        assert!(incremental > 0.0, "franz-go never fetched incrementally");
    }
}

/// franz-go's admin client and clients through a day of operations (the program
/// `tests/go/cmd/admin-check`): kadm creates a topic, alters and describes its configs,
/// lists offsets by time, deletes records; kgo produces idempotently with every codec and
/// consumes by assignment and in a group; kadm reads the group's committed offsets and
/// deletes the topic. Checked against Apache Kafka 4.1.1 too.
#[test]
fn franz_go_admin_produce_and_consume_as_on_kafka() {
    run_go_program("admin-check", "franz-go");
}

/// Sarama (IBM/sarama, the other Go client, `tests/go/cmd/sarama-check`): ClusterAdmin
/// creates a topic, alters and describes its configs, deletes records and reads a group's
/// offsets; an idempotent SyncProducer sends with every codec; a partition consumer and a
/// consumer group read the records; offsets by time. Checked against Apache Kafka 4.1.1 too.
#[test]
fn sarama_admin_produce_and_consume_as_on_kafka() {
    run_go_program("sarama-check", "sarama");
}
