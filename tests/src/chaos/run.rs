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

use sluice_client::{Acks, Producer, ProducerRecord};

use super::checker::{check, Report};
use super::groups::{group_member, Recorder};
use super::history::{write_history, Event, SendOutcome};
use super::java_producer::{value_of, JavaProducer};
use super::nemesis::nemesis;
pub use super::nemesis::Nemesis;
use super::target::ChaosTarget;
use crate::netns::NetLab;
use crate::workload::{consume_partition, producer_config, runtime};
use crate::{Cluster, ClusterOptions};

pub(super) const TOPIC: &str = "chaos";
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
pub(super) struct Clock(Instant);

impl Clock {
    pub(super) fn ms(self) -> u64 {
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

pub(super) fn record(events: &Mutex<Vec<Event>>, event: Event) {
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
        let (outcome, error) = match producer.send(message).await {
            Ok(delivery) => match delivery.await {
                Ok(metadata) => (
                    SendOutcome::Acked {
                        offset: metadata.offset,
                    },
                    None,
                ),
                Err(e) => (SendOutcome::Unknown, Some(e.to_string())),
            },
            Err(e) => (SendOutcome::Unknown, Some(e.to_string())),
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
                error,
            },
        );
    }
    producer.close().await;
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
