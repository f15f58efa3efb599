//! Consumer groups with franz-go (Go: `kgo` with a consumer group, its default
//! cooperative-sticky balancer, and `kadm`) against a real `sluiced`: three members of one
//! group share a 6-partition topic, every record is consumed exactly once, the offsets each
//! member commits read back with OffsetFetch as the log end offsets, and ListGroups and
//! DescribeGroups show the group Stable with its three members: the scenario of
//! `tests/interop/group_consume.py`. The program is `tests/go/cmd/group-consume`, which
//! `scripts/test.sh` builds with the pinned franz-go of `tests/go/go.mod` into
//! `tests/go/bin/group-consume`. `SLUICE_FRANZ_LOG=debug` prints franz-go's log.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{assert_interop_program, interop_broker, repo_root, BrokerOptions};

/// The program's own waits are 90 s each (`--timeout`); this bounds the whole run.
const PROGRAM_DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn franz_go_group_members_share_a_topic_and_commit() {
    let program = repo_root().join("tests/go/bin/group-consume");
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
    assert_interop_program("franz-go", &mut command, &broker, PROGRAM_DEADLINE);
}
