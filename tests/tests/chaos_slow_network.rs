//! A seeded chaos run on a bad network rather than a cut one (the network lab; needs root,
//! as CI runs): the nemesis drops 10-50% of the packets between a node and the others
//! (nftables), or holds what a node sends 50-400 ms plus as much again at random, so its
//! packets overtake each other (NFQUEUE and `sluice-netem`: this kernel has no `tc netem`),
//! or sends 10-50% of them twice (iptables TEE), and sometimes kills a node; acks=all producers on 3 partitions and two members of a
//! consumer group. The history (in `target/chaos`) must show no anomaly.
//! `SLUICE_CHAOS_SEED` / `SLUICE_CHAOS_SECONDS` as in `chaos_crash.rs`.

use sluice_tests::chaos::run::{run_and_check, Nemesis, RunSpec};

#[test]
fn acknowledged_writes_survive_packet_loss_delay_and_reordering() {
    let nemeses = vec![
        Nemesis::Loss,
        Nemesis::Delay,
        Nemesis::Duplicate,
        Nemesis::Kill,
    ];
    run_and_check(&RunSpec {
        group_members: 2,
        ..RunSpec::from_env("slow-network", 8, 20, nemeses, true)
    });
}
