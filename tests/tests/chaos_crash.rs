//! A seeded chaos run (issue 13's harness, process faults on loopback): a 3-node cluster,
//! an acks=all producer on each of 3 partitions (replication factor 3, min ISR 2) while the
//! nemesis `kill -9`s, pauses (SIGSTOP past the broker session) and cleanly restarts nodes,
//! one or all in turn (a rolling restart), and reassigns partitions and elects their
//! preferred leaders meanwhile, with an idempotent Java producer retrying beside them (its
//! retries must not write a record twice) and two members of a consumer group reading and committing,
//! then a final drain; the history (JSON lines, in
//! `target/chaos`) must show no lost, duplicated, reordered or misplaced acknowledged write.
//! `SLUICE_CHAOS_SEED` and `SLUICE_CHAOS_SECONDS` override the seed and the duration
//! (`scripts/chaos.sh` runs longer and several seeds); a failing seed is kept as a
//! regression test here.

use sluice_tests::chaos::nemesis::PROCESS_FAULTS;
use sluice_tests::chaos::run::{run_and_check, RunSpec};

#[test]
fn acknowledged_writes_survive_kills_pauses_and_restarts() {
    let nemeses = PROCESS_FAULTS.to_vec();
    run_and_check(&RunSpec {
        group_members: 2,
        idempotent_producers: 1,
        ..RunSpec::from_env("crash", 13, 20, nemeses, false)
    });
}
