//! A seeded chaos run of 5 nodes in the network lab (needs root, as CI runs), for the
//! partitions that need more than 3: a minority of 2 against a majority of 3, two sides
//! joined by a bridge node, and a ring where each node reaches only its neighbours, and
//! partitions reassigned to other nodes (their logs copied meanwhile) and led anew; with
//! acks=all producers on 3 partitions (replication factor 3, min ISR 2). The history (in
//! `target/chaos`) must show no anomaly. `SLUICE_CHAOS_SEED` / `SLUICE_CHAOS_SECONDS` as in
//! `chaos_crash.rs`.

use sluice_tests::chaos::run::{run_and_check, Nemesis, RunSpec};

#[test]
fn acknowledged_writes_survive_majority_bridge_and_ring_partitions() {
    let nemeses = vec![
        Nemesis::Halves,
        Nemesis::Bridge,
        Nemesis::Ring,
        Nemesis::Reassign,
    ];
    run_and_check(&RunSpec {
        nodes: 5,
        ..RunSpec::from_env("partition-five", 35, 20, nemeses, true)
    });
}
