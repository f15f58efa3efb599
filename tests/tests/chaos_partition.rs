//! A seeded chaos run in the network lab (each node in its own namespace; needs root, as
//! CI runs): the nemesis isolates random nodes (a leader cut off keeps believing it leads
//! until it hears otherwise), splits one from the other nodes while clients still reach it,
//! drops what one sends, bridges two nodes that cannot reach each other, loses a share of
//! the packets between one node and the others (nftables), delays and reorders what one
//! sends (NFQUEUE and sluice-netem), and kills nodes,
//! with acks=all producers on 3 partitions and two members of a consumer group; the
//! history (in `target/chaos`) must show no anomaly. `SLUICE_CHAOS_SEED` /
//! `SLUICE_CHAOS_SECONDS` as in `chaos_crash.rs`.

use sluice_tests::chaos::nemesis::NETWORK_FAULTS;
use sluice_tests::chaos::run::{run_and_check, RunSpec};

#[test]
fn acknowledged_writes_survive_isolated_nodes() {
    let nemeses = NETWORK_FAULTS.to_vec();
    run_and_check(&RunSpec {
        group_members: 2,
        ..RunSpec::from_env("partition", 21, 20, nemeses, true)
    });
}
