//! The nemesis of a chaos run ([`super::run`]): the kinds of fault ([`Nemesis`]), the loop
//! that injects one every 1-3 s on a node chosen from the run's seed (a random node, a
//! partition's leader or the active controller), and how each kind is injected and healed,
//! on loopback or in a network lab of namespaces. Each fault is recorded in the history as
//! a start and an end event with its timestamp.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::history::Event;
use super::run::{record, Clock, RunSpec, TOPIC};
use super::target::ChaosTarget;
use crate::netns::LabNodes;

/// A kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nemesis {
    /// `kill -9` a node, keep it down 1-3 s, restart it.
    Kill,
    /// SIGSTOP a node for 3-5 s (longer than the 2 s broker session: it is fenced, and its
    /// leaderships move while it cannot notice), then SIGCONT.
    Pause,
    /// SIGTERM a node (a controlled shutdown), wait for its exit, restart it.
    Restart,
    /// Restart every node in turn (SIGTERM, exit, start), the chosen one first, waiting
    /// for each to answer before the next: an upgrade's rolling restart.
    RollingRestart,
    /// Cut a node off from the others and from the clients for 3-5 s (longer than the
    /// broker session), then heal: it may still believe it leads meanwhile. Needs
    /// [`RunSpec::in_lab`].
    Isolate,
    /// Cut a node off from the other nodes, both ways, for 3-5 s, while clients still
    /// reach it (a minority of one that clients keep writing to). Needs the lab.
    Split,
    /// Drop what a node sends to the other nodes for 3-5 s (they still send to it).
    /// Needs the lab.
    OneWay,
    /// Split the nodes in two, a minority (with the chosen node) and a majority, both
    /// ways, for 3-5 s; clients reach every node. Needs the lab.
    Halves,
    /// Split the other nodes in two groups that cannot reach each other, with the chosen
    /// node still reaching both (a bridge), for 3-5 s. Needs the lab.
    Bridge,
    /// Arrange the nodes in a ring where each reaches only its two neighbours, for 3-5 s
    /// (with 3 nodes that cuts nothing). Needs the lab.
    Ring,
    /// Cut a node's power: `kill -9` a node whose unsynced writes die with it, keep it down
    /// 1-3 s, restart it. Needs [`RunSpec::power_loss`].
    PowerCut,
    /// Cut every node's power at once (each loses its unsynced writes), keep them down
    /// 1-3 s, restart them all. Needs [`RunSpec::power_loss`].
    PowerCutAll,
    /// Drop 10-50% of the packets between a node and every other node, both ways, for 3-5 s
    /// (nftables; clients reach every node unharmed). Needs the lab.
    Loss,
    /// Hold everything a node sends to the other nodes 50-400 ms, plus as much again at
    /// random (so its packets overtake each other), for 3-5 s (NFQUEUE and `sluice-netem`,
    /// as this kernel has no netem). Needs the lab.
    Delay,
    /// Send 10-50% of what a node sends to the other nodes twice, for 3-5 s (an iptables
    /// TEE rule). Needs the lab.
    Duplicate,
    /// Reassign a random partition to a new replica order (a new replica set when the
    /// cluster has more nodes than replicas) and elect its preferred leader, as an operator
    /// would during an incident; the reassignment completes while the run goes on.
    Reassign,
    /// Step a node's wall clock 30 s to 1 h forward or back (its monotonic clock runs on,
    /// as when NTP steps a real clock), for 3-5 s, then step it back. Needs
    /// [`RunSpec::clock_jumps`].
    ClockJump,
}

/// The crash run's faults (`chaos_crash.rs`), which `chaos_kafka.rs` runs on Kafka too: one
/// list, so the two stay comparable.
pub const PROCESS_FAULTS: [Nemesis; 5] = [
    Nemesis::Kill,
    Nemesis::Pause,
    Nemesis::Restart,
    Nemesis::RollingRestart,
    Nemesis::Reassign,
];

/// The partition run's faults (`chaos_partition.rs`), which `chaos_kafka_partition.rs` runs
/// on Kafka in the same kind of network lab.
pub const NETWORK_FAULTS: [Nemesis; 7] = [
    Nemesis::Isolate,
    Nemesis::Split,
    Nemesis::OneWay,
    Nemesis::Bridge,
    Nemesis::Loss,
    Nemesis::Delay,
    Nemesis::Kill,
];

impl Nemesis {
    fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Restart => "restart",
            Nemesis::RollingRestart => "rolling-restart",
            Nemesis::Isolate => "isolate",
            Nemesis::Split => "split",
            Nemesis::OneWay => "one-way",
            Nemesis::Halves => "halves",
            Nemesis::Bridge => "bridge",
            Nemesis::Ring => "ring",
            Nemesis::PowerCut => "power-cut",
            Nemesis::PowerCutAll => "power-cut-all",
            Nemesis::ClockJump => "clock-jump",
            Nemesis::Loss => "loss",
            Nemesis::Reassign => "reassign",
            Nemesis::Delay => "delay",
            Nemesis::Duplicate => "duplicate",
        }
    }

    pub(super) fn needs_power_loss(self) -> bool {
        matches!(self, Nemesis::PowerCut | Nemesis::PowerCutAll)
    }

    pub(super) fn needs_lab(self) -> bool {
        !matches!(
            self,
            Nemesis::Kill
                | Nemesis::Pause
                | Nemesis::Restart
                | Nemesis::RollingRestart
                | Nemesis::PowerCut
                | Nemesis::PowerCutAll
                | Nemesis::ClockJump
                | Nemesis::Reassign
        )
    }

    /// The links (from, to) this network fault cuts, around `node`; empty for the others.
    fn cut_links(self, node: i32, ids: &[i32], rng: &mut StdRng) -> Vec<(i32, i32)> {
        let mut others: Vec<i32> = ids.iter().copied().filter(|&o| o != node).collect();
        others.shuffle(rng);
        let both = |a: &[i32], b: &[i32]| {
            a.iter()
                .flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)]))
                .collect::<Vec<_>>()
        };
        match self {
            Nemesis::Split => both(&[node], &others),
            Nemesis::OneWay => others.iter().map(|&o| (node, o)).collect(),
            Nemesis::Halves => {
                let mut minority = vec![node];
                minority.extend(others.drain(..(ids.len() / 2).saturating_sub(1)));
                both(&minority, &others)
            }
            Nemesis::Bridge => {
                let half = others.len() / 2;
                both(&others[..half], &others[half..])
            }
            Nemesis::Ring => {
                let mut ring = vec![node];
                ring.extend(others);
                let n = ring.len();
                let mut cut = Vec::new();
                for i in 0..n {
                    for j in (i + 1)..n {
                        let adjacent = j == i + 1 || (i == 0 && j == n - 1);
                        if !adjacent {
                            cut.extend([(ring[i], ring[j]), (ring[j], ring[i])]);
                        }
                    }
                }
                cut
            }
            Nemesis::Kill
            | Nemesis::Pause
            | Nemesis::Restart
            | Nemesis::RollingRestart
            | Nemesis::Isolate
            | Nemesis::PowerCut
            | Nemesis::PowerCutAll
            | Nemesis::ClockJump
            | Nemesis::Loss
            | Nemesis::Delay
            | Nemesis::Duplicate
            | Nemesis::Reassign => Vec::new(),
        }
    }
}

/// Every 1-3 s, one of `spec.nemeses` (drawn from the seed) on a node [`pick_node`]
/// chooses, until the run's duration is over. Returns the faults, as logged.
pub(super) fn nemesis(
    cluster: &mut impl ChaosTarget,
    spec: &RunSpec,
    clock: Clock,
    events: &Mutex<Vec<Event>>,
) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut faults = Vec::new();
    let end = Instant::now() + spec.duration;
    while Instant::now() < end && !spec.nemeses.is_empty() {
        // The nemesis's schedule is its own timing, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(rng.random_range(1_000..3_000)));
        let kind = spec.nemeses[rng.random_range(0..spec.nemeses.len())];
        let (node, role) = pick_node(cluster, spec.partitions, &mut rng);
        let amount = match kind {
            Nemesis::ClockJump => {
                let seconds: i64 = rng.random_range(30..3_600);
                if rng.random_bool(0.5) {
                    seconds
                } else {
                    -seconds
                }
            }
            Nemesis::Loss | Nemesis::Duplicate => rng.random_range(10..=50),
            Nemesis::Delay => rng.random_range(50..=400),
            _ => 0,
        };
        let mut detail = match kind {
            Nemesis::ClockJump => format!("node {node} ({role}), clock {amount:+} s"),
            Nemesis::Loss => format!("node {node} ({role}), {amount}% of packets lost"),
            Nemesis::Duplicate => format!("node {node} ({role}), {amount}% of packets sent twice"),
            Nemesis::Delay => format!(
                "node {node} ({role}), packets held {amount}-{} ms",
                2 * amount
            ),
            _ => format!("node {node} ({role})"),
        };
        record(events, fault(clock, kind, true, &detail));
        if let Some(done) = inject(cluster, spec, kind, node, amount, &mut rng) {
            detail = format!("{detail}: {done}");
        }
        record(events, fault(clock, kind, false, &detail));
        faults.push(format!("{} ms: {} {detail}", clock.ms(), kind.name()));
    }
    faults
}

/// A fault's whole course on `node`: inject, hold, heal. `amount` is the clock jump's
/// seconds or the loss's percentage. Returns what the admin nemesis did.
fn inject(
    cluster: &mut impl ChaosTarget,
    spec: &RunSpec,
    kind: Nemesis,
    node: i32,
    amount: i64,
    rng: &mut StdRng,
) -> Option<String> {
    let hold = |rng: &mut StdRng, range: std::ops::Range<u64>| {
        std::thread::sleep(Duration::from_millis(rng.random_range(range)));
    };
    match kind {
        Nemesis::Kill | Nemesis::PowerCut => {
            cluster.kill9(node);
            hold(rng, 1_000..3_000);
            cluster.restart(node);
        }
        Nemesis::PowerCutAll => {
            for id in cluster.ids() {
                cluster.kill9(id);
            }
            hold(rng, 1_000..3_000);
            cluster.restart_all();
        }
        Nemesis::Reassign => {
            let partition = rng.random_range(0..spec.partitions);
            return Some(super::admin::reassign_and_elect(
                cluster, TOPIC, partition, rng,
            ));
        }
        Nemesis::Pause => {
            cluster.sigstop(node);
            hold(rng, 3_000..5_000);
            cluster.sigcont(node);
        }
        Nemesis::Restart => {
            cluster.sigterm(node);
            cluster.wait_exit(node, Duration::from_secs(30));
            cluster.restart(node);
        }
        Nemesis::RollingRestart => {
            let mut order = vec![node];
            order.extend(cluster.ids().into_iter().filter(|&o| o != node));
            for id in order {
                cluster.sigterm(id);
                cluster.wait_exit(id, Duration::from_secs(30));
                cluster.restart(id);
            }
        }
        Nemesis::ClockJump => {
            let sluice = cluster
                .sluice()
                .unwrap_or_else(|| panic!("the {} nemesis needs a Sluice cluster", kind.name()));
            sluice.set_clock_offset(node, amount);
            hold(rng, 3_000..5_000);
            sluice.set_clock_offset(node, 0);
        }
        _ => {
            let lab = cluster.lab_nodes().unwrap_or_else(|| {
                panic!(
                    "the {} nemesis needs a cluster in a network lab",
                    kind.name()
                )
            });
            inject_in_lab(&lab, kind, node, amount, rng);
        }
    }
    None
}

/// The network lab's faults, on whatever runs in its namespaces.
fn inject_in_lab(lab: &LabNodes<'_>, kind: Nemesis, node: i32, amount: i64, rng: &mut StdRng) {
    let hold = |rng: &mut StdRng| {
        std::thread::sleep(Duration::from_millis(rng.random_range(3_000..5_000)));
    };
    match kind {
        Nemesis::Loss => {
            let percent = u32::try_from(amount).unwrap_or(0);
            let others: Vec<i32> = lab.ids.iter().copied().filter(|&o| o != node).collect();
            for (loss, pause) in [(percent, true), (0, false)] {
                for &other in &others {
                    lab.set_loss(node, other, loss);
                    lab.set_loss(other, node, loss);
                }
                if pause {
                    hold(rng);
                }
            }
        }
        Nemesis::Duplicate => {
            lab.set_duplication(node, u32::try_from(amount).unwrap_or(0));
            hold(rng);
            lab.set_duplication(node, 0);
        }
        Nemesis::Delay => {
            let delay_ms = u64::try_from(amount).unwrap_or(0);
            lab.set_delay(node, Some((delay_ms, delay_ms)));
            hold(rng);
            lab.set_delay(node, None);
        }
        Nemesis::Isolate => {
            lab.isolate(node);
            hold(rng);
            lab.heal(node);
        }
        _ => {
            let links = kind.cut_links(node, &lab.ids, rng);
            for &(from, to) in &links {
                lab.set_link(from, to, false);
            }
            hold(rng);
            for &(from, to) in &links {
                lab.set_link(from, to, true);
            }
        }
    }
}

/// The node a fault hits: a third of the time a random live node, a third the leader of a
/// random partition, a third the active controller (as the live nodes report them; a
/// random node when none is known). With its role, for the log.
fn pick_node(cluster: &mut impl ChaosTarget, partitions: i32, rng: &mut StdRng) -> (i32, String) {
    let ids = cluster.live_ids();
    let random = ids[rng.random_range(0..ids.len())];
    match rng.random_range(0..3) {
        0 => {
            let partition = rng.random_range(0..partitions);
            match cluster
                .partition_state(TOPIC, partition)
                .and_then(|s| s.leader)
            {
                Some(leader) if ids.contains(&leader) => (leader, format!("leader of {partition}")),
                _ => (random, "random".to_string()),
            }
        }
        1 => match cluster.controller_id() {
            Some(controller) if ids.contains(&controller) => (controller, "controller".to_string()),
            _ => (random, "random".to_string()),
        },
        _ => (random, "random".to_string()),
    }
}

fn fault(clock: Clock, kind: Nemesis, start: bool, detail: &str) -> Event {
    Event::Fault {
        time_ms: clock.ms(),
        nemesis: kind.name().to_string(),
        start,
        detail: detail.to_string(),
    }
}
