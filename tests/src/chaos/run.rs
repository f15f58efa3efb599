//! A bounded chaos run: a cluster (3 nodes unless the spec says more; on loopback, or in a
//! network lab of namespaces),
//! producers appending unique values with acks=all to every partition of a replicated
//! topic while a seeded nemesis crashes (`kill -9`), pauses (SIGSTOP past the broker
//! session), cleanly restarts or (in the lab) isolates a node, splits it from the other
//! nodes while clients still reach it, drops what it sends, or partitions the nodes into a
//! minority and a majority, two sides with a bridge, or a ring, or (nodes run as
//! `sluiced-faults`) cuts the power of one node or of all ([`Nemesis`]), then a final
//! drain of every partition; the history is written as JSON lines and checked
//! ([`super::checker`]). Each node runs with the spec's `--durability`.
//!
//! The producers are Sluice's client, which is not idempotent yet: each sends one record at
//! a time with no retries, so an error is recorded as an unknown outcome and the next value
//! is sent, and no client retry can write a value twice.
//!
//! Reproducible from the seed: the nemesis's choices (which fault, which node: random, a
//! partition's leader or the active controller, when, for how long) come from it; the
//! timing of the workload around them, and so which node leads, does not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sluice_client::{Acks, Producer, ProducerRecord};

use super::checker::{check, Report};
use super::groups::{group_member, Recorder};
use super::history::{write_history, Event, SendOutcome};
use super::java_producer::{value_of, JavaProducer};
use super::target::ChaosTarget;
use crate::netns::NetLab;
use crate::workload::{consume_partition, producer_config, runtime};
use crate::{Cluster, ClusterOptions};

const TOPIC: &str = "chaos";
/// Segment size of runs over the power-loss file system, whose unsynced bytes are in memory.
const POWER_LOSS_SEGMENT_BYTES: u64 = 1 << 20;

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's name (`crash`, `partition`, ...), in file names and the summary.
    pub name: String,
    pub seed: u64,
    /// Cluster nodes (3 by default; the topic has 3 replicas either way).
    pub nodes: usize,
    pub partitions: i32,
    /// How long the producers run while the nemesis acts.
    pub duration: Duration,
    /// The faults to draw from.
    pub nemeses: Vec<Nemesis>,
    /// Run the nodes in a network lab of namespaces (root only), which
    /// [`Nemesis::Isolate`] needs.
    pub in_lab: bool,
    /// `--durability` of every node: `replicated` (the default) or `fsync`.
    pub durability: &'static str,
    /// Run the nodes as `sluiced-faults` in this mode (`lose` or `tear`): a `kill -9`
    /// then loses the node's unsynced writes, as a power cut would. [`Nemesis::PowerCut`]
    /// and [`Nemesis::PowerCutAll`] need it.
    pub power_loss: Option<&'static str>,
    /// Idempotent Java producers (Kafka's VerifiableProducer, retrying) writing to every
    /// partition beside the one-at-a-time producers, at about 500 records a second each.
    pub idempotent_producers: u32,
    /// Members of a consumer group reading the topic while the nemesis acts (0: none);
    /// their reads, rewinds and commits go into the history.
    pub group_members: u32,
    /// Start the nodes with libfaketime, so [`Nemesis::ClockJump`] can move their wall
    /// clocks.
    pub clock_jumps: bool,
    /// How long the final drain waits for a partition's high watermark to pass every
    /// acknowledged offset before it reads what there is (a run that lost writes may never
    /// get that far).
    pub drain_wait: Duration,
    /// Where the history goes.
    pub history: PathBuf,
}

/// What a run found.
#[derive(Debug)]
pub struct RunOutcome {
    /// `sluice` or `kafka`.
    pub target: &'static str,
    pub report: Report,
    pub events: usize,
    /// Acknowledged commits of the group members.
    pub commits: usize,
    /// The faults the nemesis injected, in order.
    pub faults: Vec<String>,
}

impl RunSpec {
    /// A spec for the test `name`: seed and duration from `SLUICE_CHAOS_SEED` and
    /// `SLUICE_CHAOS_SECONDS` when set (`scripts/chaos.sh`), else the defaults; the history
    /// goes to `target/chaos/<name>-seed-<seed>.jsonl`.
    pub fn from_env(
        name: &str,
        seed: u64,
        seconds: u64,
        nemeses: Vec<Nemesis>,
        in_lab: bool,
    ) -> RunSpec {
        let env_or = |var: &str, default: u64| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let seed = env_or("SLUICE_CHAOS_SEED", seed);
        let dir = crate::repo_root().join("target/chaos");
        std::fs::create_dir_all(&dir).expect("create target/chaos");
        RunSpec {
            name: name.to_string(),
            seed,
            nodes: 3,
            partitions: 3,
            duration: Duration::from_secs(env_or("SLUICE_CHAOS_SECONDS", seconds)),
            nemeses,
            in_lab,
            durability: "replicated",
            power_loss: None,
            clock_jumps: false,
            group_members: 0,
            idempotent_producers: 0,
            drain_wait: Duration::from_secs(60),
            history: dir.join(format!("{name}-seed-{seed}.jsonl")),
        }
    }
}

/// Run `spec` ([`crash_run`]), print what it found, and panic unless faults were injected,
/// something was acknowledged and the history shows no anomaly.
pub fn run_and_check(spec: &RunSpec) {
    assert_clean(spec, &crash_run(spec));
}

/// Print what a run found, and panic unless faults were injected, something was
/// acknowledged (and committed, with group members) and the history shows no anomaly.
pub fn assert_clean(spec: &RunSpec, outcome: &RunOutcome) {
    let report = &outcome.report;
    append_summary(spec, outcome);
    eprintln!(
        "{} seed {}: {} events, {} acknowledged, {} read, {} group commits, longest without an acknowledgement {} ms (by fault: {:?} ms); faults: {:?}",
        outcome.target,
        spec.seed,
        outcome.events,
        report.acked,
        report.read,
        outcome.commits,
        report.longest_unavailable_ms,
        report.unavailable_by_fault,
        outcome.faults
    );
    assert!(!outcome.faults.is_empty(), "the nemesis injected no fault");
    assert!(report.acked > 0, "nothing was acknowledged: {report:?}");
    assert!(
        spec.group_members == 0 || outcome.commits > 0,
        "the group members committed nothing"
    );
    assert!(
        report.is_valid(),
        "seed {}: anomalies (history in {}):\n{report:#?}",
        spec.seed,
        spec.history.display()
    );
}

/// One JSON line per checked run in `target/chaos/runs.jsonl`, which `scripts/chaos.sh`
/// sums up for `docs/reliability.md`.
fn append_summary(spec: &RunSpec, outcome: &RunOutcome) {
    use std::io::Write;
    let report = &outcome.report;
    let anomalies = report.lost.len()
        + report.unobserved.len()
        + report.duplicated.len()
        + report.inconsistent_offsets.len()
        + report.reordered.len()
        + report.non_monotonic_reads.len()
        + report.commits_backwards.len();
    let faults: Vec<&str> = outcome
        .faults
        .iter()
        .filter_map(|f| f.split_whitespace().nth(2))
        .collect();
    let line = serde_json::json!({
        "run": spec.name,
        "target": outcome.target,
        "seed": spec.seed,
        "seconds": spec.duration.as_secs(),
        "acked": report.acked,
        "read": report.read,
        "commits": outcome.commits,
        "faults": faults,
        "anomalies": anomalies,
        "longest_unavailable_ms": report.longest_unavailable_ms,
        "unavailable_by_fault": report.unavailable_by_fault,
    });
    let path = crate::repo_root().join("target/chaos/runs.jsonl");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Milliseconds since the run began.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Run `spec` on a fresh 3-node cluster; panics (with the logs) only if the cluster cannot
/// be started or drained, not for anomalies, which are the report's.
pub fn crash_run(spec: &RunSpec) -> RunOutcome {
    assert!(
        spec.in_lab || !spec.nemeses.iter().any(|n| n.needs_lab()),
        "network faults need a run in the network lab"
    );
    assert!(
        spec.power_loss.is_some() || !spec.nemeses.iter().any(|n| n.needs_power_loss()),
        "power cuts need a run with power_loss set"
    );
    assert!(
        spec.clock_jumps || !spec.nemeses.contains(&Nemesis::ClockJump),
        "clock jumps need a run with clock_jumps set"
    );
    let lab = spec.in_lab.then(|| {
        Arc::new(NetLab::create(spec.nodes).expect("create the network lab (needs root)"))
    });
    let mut extra_args = vec!["--durability".to_string(), spec.durability.to_string()];
    if spec.group_members > 0 {
        // Groups that settle between faults: no initial rebalance delay, short sessions
        // (the members ask for 3 s, groups.rs).
        extra_args.extend(
            [
                "--group-initial-rebalance-delay-ms",
                "0",
                "--group-min-session-timeout-ms",
                "1000",
            ]
            .map(String::from),
        );
    }
    if spec.power_loss.is_some() {
        // Unsynced bytes live in memory, and replicated durability syncs at segment rolls.
        extra_args.extend([
            "--segment-bytes".to_string(),
            POWER_LOSS_SEGMENT_BYTES.to_string(),
        ]);
    }
    let options = ClusterOptions {
        lab,
        extra_args,
        power_loss: spec.power_loss,
        power_loss_seed: spec.seed,
        clock_jumps: spec.clock_jumps,
        ..ClusterOptions::fast(2_000, 2_000)
    };
    let mut cluster = Cluster::start(spec.nodes, options);
    run_on(&mut cluster, spec)
}

/// The run itself on a started cluster, Sluice's or Kafka's ([`ChaosTarget`]): the topic,
/// the workload and the nemesis, the drain, the history written and checked.
pub fn run_on(cluster: &mut impl ChaosTarget, spec: &RunSpec) -> RunOutcome {
    cluster.create_topic(TOPIC, spec.partitions, 3, &[("min.insync.replicas", "2")]);
    let clock = Clock(Instant::now());
    let events = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = runtime();
    let producers: Vec<_> = (0..spec.partitions)
        .map(|partition| {
            runtime.spawn(produce(
                cluster.bootstrap(),
                partition,
                clock,
                events.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let recorder = Recorder {
        events: events.clone(),
        clock: Arc::new(move || clock.ms()),
    };
    let members: Vec<_> = (0..spec.group_members)
        .map(|member| {
            let bootstrap = cluster.bootstrap();
            runtime.spawn(group_member(
                bootstrap,
                TOPIC,
                member,
                recorder.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let java: Vec<JavaProducer> = (0..spec.idempotent_producers)
        .map(|i| {
            let clock = Arc::new(move || clock.ms());
            JavaProducer::start(&cluster.bootstrap(), TOPIC, i, 500, events.clone(), clock)
        })
        .collect();
    let faults = nemesis(cluster, spec, clock, &events);
    for producer in java {
        producer.stop();
    }
    stop.store(true, Ordering::Release);
    for producer in producers.into_iter().chain(members) {
        let _ = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), producer).await });
    }
    drain(cluster, &runtime, spec, clock, &events);
    let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
    let mut file = std::fs::File::create(&spec.history).expect("create the history file");
    write_history(&mut file, &events).expect("write the history");
    // The nodes' logs (their tails) beside the history, to explain what the checker finds.
    let _ = std::fs::write(spec.history.with_extension("logs"), cluster.logs());
    RunOutcome {
        target: cluster.name(),
        report: check(&events),
        events: events.len(),
        commits: events
            .iter()
            .filter(|e| matches!(e, Event::Commit { .. }))
            .count(),
        faults,
    }
}

fn record(events: &Mutex<Vec<Event>>, event: Event) {
    events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
}

/// One producer process: unique values (its partition in the high bits) to its partition,
/// one at a time, until `stop`.
async fn produce(
    bootstrap: String,
    partition: i32,
    clock: Clock,
    events: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
) {
    let mut config = producer_config(&bootstrap, Acks::All);
    config.retries = 0;
    config.linger_ms = 0;
    config.request_timeout_ms = 5_000;
    config.delivery_timeout_ms = 10_000;
    let Ok(producer) = Producer::new(config).await else {
        return;
    };
    let process = u32::try_from(partition).unwrap_or(0);
    let mut next = (u64::from(process) << 32) + 1;
    while !stop.load(Ordering::Acquire) {
        let value = next;
        next += 1;
        let invoked_ms = clock.ms();
        let message = ProducerRecord::new(TOPIC, value.to_string()).with_partition(partition);
        let outcome = match producer.send(message).await {
            Ok(delivery) => match delivery.await {
                Ok(metadata) => SendOutcome::Acked {
                    offset: metadata.offset,
                },
                Err(_) => SendOutcome::Unknown,
            },
            Err(_) => SendOutcome::Unknown,
        };
        if outcome == SendOutcome::Unknown {
            // Not a retry of the same value: a short pause so a dead leader is not hammered.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        record(
            &events,
            Event::Send {
                process,
                partition,
                value,
                invoked_ms,
                completed_ms: clock.ms(),
                outcome,
                order: None,
            },
        );
    }
    producer.close().await;
}

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

    fn needs_power_loss(self) -> bool {
        matches!(self, Nemesis::PowerCut | Nemesis::PowerCutAll)
    }

    fn needs_lab(self) -> bool {
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
fn nemesis(
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
        _ => {
            let sluice = cluster
                .sluice()
                .unwrap_or_else(|| panic!("the {} nemesis needs a Sluice cluster", kind.name()));
            inject_in_lab(sluice, kind, node, amount, rng);
        }
    }
    None
}

/// The faults only Sluice's harness can inject: the network lab's, clock jumps.
fn inject_in_lab(cluster: &mut Cluster, kind: Nemesis, node: i32, amount: i64, rng: &mut StdRng) {
    let hold = |rng: &mut StdRng| {
        std::thread::sleep(Duration::from_millis(rng.random_range(3_000..5_000)));
    };
    match kind {
        Nemesis::Loss => {
            let percent = u32::try_from(amount).unwrap_or(0);
            let others: Vec<i32> = cluster.ids().into_iter().filter(|&o| o != node).collect();
            for (loss, pause) in [(percent, true), (0, false)] {
                for &other in &others {
                    cluster.set_loss(node, other, loss);
                    cluster.set_loss(other, node, loss);
                }
                if pause {
                    hold(rng);
                }
            }
        }
        Nemesis::Duplicate => {
            cluster.set_duplication(node, u32::try_from(amount).unwrap_or(0));
            hold(rng);
            cluster.set_duplication(node, 0);
        }
        Nemesis::Delay => {
            let delay_ms = u64::try_from(amount).unwrap_or(0);
            cluster.set_delay(node, Some((delay_ms, delay_ms)));
            hold(rng);
            cluster.set_delay(node, None);
        }
        Nemesis::ClockJump => {
            cluster.set_clock_offset(node, amount);
            hold(rng);
            cluster.set_clock_offset(node, 0);
        }
        Nemesis::Isolate => {
            cluster.isolate(node);
            hold(rng);
            cluster.heal(node);
        }
        _ => {
            let links = kind.cut_links(node, &cluster.ids(), rng);
            for &(from, to) in &links {
                cluster.set_link(from, to, false);
            }
            hold(rng);
            for &(from, to) in &links {
                cluster.set_link(from, to, true);
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

/// The high watermark once it passes `acked_end` (every acknowledged offset), or after
/// `wait` whatever it is: a run that lost acknowledged writes may never get that far, and
/// the checker then reports the values past it as unobserved.
fn drain_end(
    cluster: &mut impl ChaosTarget,
    partition: i32,
    acked_end: i64,
    wait: Duration,
) -> i64 {
    let deadline = Instant::now() + wait;
    loop {
        let high_watermark = cluster.high_watermark(TOPIC, partition);
        match high_watermark {
            Some(hw) if hw >= acked_end || Instant::now() >= deadline => return hw,
            None if Instant::now() >= deadline => {
                panic!(
                    "{TOPIC}-{partition} has no high watermark after {wait:?}\n{}",
                    cluster.logs()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Read every partition from its start to its high watermark, once every acknowledged
/// value's offset is below it.
fn drain(
    cluster: &mut impl ChaosTarget,
    runtime: &tokio::runtime::Runtime,
    spec: &RunSpec,
    clock: Clock,
    events: &Mutex<Vec<Event>>,
) {
    for partition in 0..spec.partitions {
        let acked_end = events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|e| match e {
                Event::Send {
                    partition: p,
                    outcome: SendOutcome::Acked { offset },
                    ..
                } if *p == partition => Some(offset + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let high_watermark = drain_end(cluster, partition, acked_end, spec.drain_wait);
        let records = runtime
            .block_on(consume_partition(
                &cluster.bootstrap(),
                TOPIC,
                partition,
                high_watermark,
                Duration::from_secs(120),
            ))
            .unwrap_or_else(|e| panic!("draining {TOPIC}-{partition}: {e}\n{}", cluster.logs()));
        let records = records
            .into_iter()
            .map(|(offset, value)| {
                let value = value
                    .and_then(|v| Some(value_of(std::str::from_utf8(&v).ok()?)))
                    .unwrap_or(0);
                (offset, value)
            })
            .collect();
        record(
            events,
            Event::Read {
                process: 1_000 + u32::try_from(partition).unwrap_or(0),
                partition,
                time_ms: clock.ms(),
                records,
            },
        );
    }
}
