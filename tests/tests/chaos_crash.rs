//! A seeded chaos run (issue 13's harness, process faults on loopback for now): a 3-node
//! cluster, an acks=all producer on each of 3 partitions (replication factor 3, min ISR 2)
//! while the nemesis `kill -9`s, pauses (SIGSTOP past the broker session) and cleanly
//! restarts random nodes, then a final drain; the history
//! (JSON lines, kept under the target directory) must show no lost, duplicated, reordered or
//! misplaced acknowledged write. `SLUICE_CHAOS_SEED` and `SLUICE_CHAOS_SECONDS` override
//! the seed and the duration (`scripts/chaos.sh` runs longer and several seeds); a failing
//! seed is kept as a regression test here.

use std::time::Duration;

use sluice_tests::chaos::run::{crash_run, Nemesis, RunSpec};
use sluice_tests::repo_root;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn acknowledged_writes_survive_kills_pauses_and_restarts() {
    let seed = env_or("SLUICE_CHAOS_SEED", 13);
    let seconds = env_or("SLUICE_CHAOS_SECONDS", 20);
    let dir = repo_root().join("target/chaos");
    std::fs::create_dir_all(&dir).expect("create target/chaos");
    let history = dir.join(format!("crash-seed-{seed}.jsonl"));
    let outcome = crash_run(&RunSpec {
        seed,
        partitions: 3,
        duration: Duration::from_secs(seconds),
        nemeses: vec![Nemesis::Kill, Nemesis::Pause, Nemesis::Restart],
        history: history.clone(),
    });
    let report = &outcome.report;
    eprintln!(
        "seed {seed}: {} events, {} acknowledged, {} read, longest without an acknowledgement {} ms (by fault: {:?} ms); faults: {:?}",
        outcome.events,
        report.acked,
        report.read,
        report.longest_unavailable_ms,
        report.unavailable_by_fault,
        outcome.faults
    );
    assert!(!outcome.faults.is_empty(), "the nemesis injected no fault");
    assert!(report.acked > 0, "nothing was acknowledged: {report:?}");
    assert!(
        report.is_valid(),
        "seed {seed}: anomalies (history in {}):\n{report:#?}",
        history.display()
    );
}
