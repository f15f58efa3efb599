//! Preferred-leader election after a failover restores the original leader distribution.
//!
//! Three brokers, one topic of six partitions with replication factor 3: each partition
//! starts led by its preferred replica (the first of its replicas), two per broker. One
//! broker is `kill -9`ed; its partitions move to other replicas. It comes back and catches
//! up into every ISR, but leads nothing until a preferred-leader election moves its
//! partitions back:
//!
//! - with `--auto-leader-rebalance false`, nothing moves by itself; `sluice partition
//!   elect-leaders` (the CLI binary) does it. While the broker is still dead the same
//!   command fails (exit non-zero, PREFERRED_LEADER_NOT_AVAILABLE for its partitions);
//!   afterwards a second run finds nothing to do and succeeds (ELECTION_NOT_NEEDED is no
//!   failure).
//! - with the automatic rebalance on and checked every 500 ms, the original distribution
//!   comes back with no request at all. There the killed broker is the active controller,
//!   so it is the newly elected controller that runs the rebalance.
//!
//! Either way the records acknowledged before the kill are still there, read from the
//! preferred leaders; the automatic rebalance is also counted in
//! `sluice_preferred_leader_elections_total`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sluice_tests::raw::{http_get, metric_sum};
use sluice_tests::workload::numbered_values;
use sluice_tests::{
    run_program, sluice_binary, AckedBatch, Cluster, ClusterOptions, PartitionState, ProgramOutput,
};

const PARTITIONS: i32 = 6;
/// Failure detection: a broker is fenced (and loses its leaderships) 2 s after its last
/// heartbeat.
const SESSION_TIMEOUT_MS: u64 = 2_000;
const REPLICA_LAG_TIME_MAX_MS: u64 = 2_000;
/// How long a failover, a restarted broker's catch-up, or an election may take.
const STEP_DEADLINE: Duration = Duration::from_secs(60);
/// How long the automatic rebalance (checked every 500 ms) may take to restore every
/// preferred leader once the broker is back in every ISR.
const AUTO_REBALANCE_DEADLINE: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Leaders the automatic rebalance moved, counted by the controller that moved them.
const PREFERRED_ELECTIONS: &str = "sluice_preferred_leader_elections_total";

/// Every partition's state, if every live node agrees on each one.
fn all_partitions(cluster: &mut Cluster, topic: &str) -> Option<Vec<PartitionState>> {
    (0..PARTITIONS)
        .map(|p| cluster.partition_state_agreed(topic, p))
        .collect()
}

/// Partition -> leader.
fn leaders(states: &[PartitionState]) -> BTreeMap<i32, Option<i32>> {
    states
        .iter()
        .enumerate()
        .map(|(p, s)| (p as i32, s.leader))
        .collect()
}

/// What the scenarios share up to the point where a preferred-leader election is due: the
/// topic created and written to, the original leaders recorded, `victim` killed, its
/// partitions led by others, `victim` restarted and back in every ISR. Returns the
/// original leaders (each partition's preferred replica) and the acknowledged batches.
struct Failover {
    original: BTreeMap<i32, Option<i32>>,
    victim_partitions: Vec<i32>,
    batches: Vec<(i32, AckedBatch)>,
}

fn create_and_write(
    cluster: &mut Cluster,
    topic: &str,
) -> (Vec<PartitionState>, Vec<(i32, AckedBatch)>) {
    cluster.create_topic(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")]);
    let states = all_partitions(cluster, topic).expect("create_topic waits for agreement");
    for (p, state) in states.iter().enumerate() {
        assert_eq!(
            state.leader,
            state.replicas.first().copied(),
            "partition {p} starts led by its preferred replica: {state:?}"
        );
    }
    // Preferred leaders are spread over the brokers: each one prefers some partition.
    for id in cluster.ids() {
        assert!(
            states.iter().any(|s| s.replicas[0] == id),
            "broker {id} is no partition's preferred replica: {states:?}"
        );
    }
    let batches = (0..PARTITIONS)
        .map(|p| {
            let values = numbered_values(&format!("{topic}-{p}-before"), 20);
            (p, cluster.produce_acked_batch(topic, p, values))
        })
        .collect();
    (states, batches)
}

/// Kill `victim`, wait until each partition it led has another leader, and return those
/// partitions.
fn kill_and_fail_over(
    cluster: &mut Cluster,
    topic: &str,
    states: &[PartitionState],
    victim: i32,
) -> Vec<i32> {
    let victim_partitions: Vec<i32> = (0..PARTITIONS)
        .filter(|&p| states[p as usize].leader == Some(victim))
        .collect();
    assert!(
        !victim_partitions.is_empty(),
        "broker {victim} leads nothing"
    );
    cluster.kill9(victim);
    for &p in &victim_partitions {
        let before = &states[p as usize];
        cluster.wait_for_follower_elected(topic, p, before, STEP_DEADLINE);
    }
    victim_partitions
}

/// Restart `victim` and wait until every live node shows it in the ISR of every partition.
fn restart_and_catch_up(cluster: &mut Cluster, topic: &str, victim: i32) {
    cluster.restart(victim);
    cluster.wait_for(
        &format!("broker {victim} back in the ISR of every partition of {topic}"),
        STEP_DEADLINE,
        |c| {
            let states = all_partitions(c, topic)?;
            states
                .iter()
                .all(|s| s.isr_is_full() && s.leader.is_some())
                .then_some(())
        },
    );
}

/// Wait until every live node agrees that every partition is led as in `original`.
fn wait_for_original_leaders(
    cluster: &mut Cluster,
    topic: &str,
    original: &BTreeMap<i32, Option<i32>>,
    what: &str,
    timeout: Duration,
) {
    let mut last = None;
    let restored = cluster.poll_until(std::time::Instant::now() + timeout, |c| {
        let states = all_partitions(c, topic)?;
        let now = leaders(&states);
        let ok = &now == original;
        last = Some(now);
        ok.then_some(())
    });
    if restored.is_none() {
        panic!(
            "timed out after {timeout:?} waiting for {what}: original leaders {original:?}, last seen {last:?}\n{}",
            cluster.logs()
        );
    }
}

fn assert_records_survived(cluster: &mut Cluster, topic: &str, failover: &Failover) {
    for (p, batch) in &failover.batches {
        let leader = failover.original[p].expect("a leader");
        cluster.assert_batches_committed(
            leader,
            topic,
            *p,
            std::slice::from_ref(batch),
            STEP_DEADLINE,
        );
    }
}

fn sluice(cluster: &Cluster, args: &[&str]) -> ProgramOutput {
    let mut command = Command::new(sluice_binary());
    command
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .args(args);
    run_program(&mut command, None, CLI_TIMEOUT)
}

/// The CLI's line for one partition, e.g. `Topic: t\tPartition: 3\tOutcome: ...`.
fn outcome_line<'a>(stdout: &'a str, topic: &str, partition: i32) -> Option<&'a str> {
    let prefix = format!("Topic: {topic}\tPartition: {partition}\t");
    stdout.lines().find(|l| l.starts_with(&prefix))
}

fn cluster_options(extra_args: &[&str]) -> ClusterOptions {
    ClusterOptions {
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        ..ClusterOptions::fast(SESSION_TIMEOUT_MS, REPLICA_LAG_TIME_MAX_MS)
    }
}

#[test]
fn elect_leaders_cli_restores_the_original_leader_distribution() {
    const TOPIC: &str = "balance-cli";
    let mut cluster = Cluster::start(3, cluster_options(&["--auto-leader-rebalance", "false"]));
    let (states, batches) = create_and_write(&mut cluster, TOPIC);
    let original = leaders(&states);
    // A broker that is not the active controller: this scenario is about leaders only.
    let controller = cluster.controller_id().expect("a controller");
    let victim = cluster
        .ids()
        .into_iter()
        .find(|&id| id != controller)
        .expect("three brokers");
    let victim_partitions = kill_and_fail_over(&mut cluster, TOPIC, &states, victim);
    let failover = Failover {
        original,
        victim_partitions,
        batches,
    };

    // While the victim is dead its partitions' preferred replica is unavailable: the
    // command says so for them, and fails.
    let refused = sluice(&cluster, &["partition", "elect-leaders", "--topic", TOPIC]);
    assert!(
        !refused.success(),
        "electing preferred leaders while broker {victim} is dead must fail\n{}",
        refused.describe()
    );
    eprintln!(
        "elect-leaders while broker {victim} is dead:\n{}",
        refused.describe()
    );
    let stdout = refused.stdout_lossy();
    for p in 0..PARTITIONS {
        let line = outcome_line(&stdout, TOPIC, p)
            .unwrap_or_else(|| panic!("no line for partition {p}\n{}", refused.describe()));
        if failover.victim_partitions.contains(&p) {
            assert!(line.contains("PREFERRED_LEADER_NOT_AVAILABLE"), "{line}");
        } else {
            assert!(line.contains("ELECTION_NOT_NEEDED"), "{line}");
        }
    }

    restart_and_catch_up(&mut cluster, TOPIC, victim);
    // No automatic rebalance: the restarted broker leads nothing.
    let states = all_partitions(&mut cluster, TOPIC).expect("agreement after catch-up");
    assert!(
        states.iter().all(|s| s.leader != Some(victim)),
        "broker {victim} leads again without an election: {states:?}"
    );

    // Every partition of every topic (no --topic): the victim's partitions move back.
    let elected = sluice(&cluster, &["partition", "elect-leaders"]);
    assert!(
        elected.success(),
        "sluice partition elect-leaders failed\n{}\n{}",
        elected.describe(),
        cluster.logs()
    );
    let stdout = elected.stdout_lossy();
    for p in 0..PARTITIONS {
        let line = outcome_line(&stdout, TOPIC, p)
            .unwrap_or_else(|| panic!("no line for partition {p}\n{}", elected.describe()));
        if failover.victim_partitions.contains(&p) {
            assert!(line.contains("Outcome: elected"), "{line}");
        } else {
            assert!(line.contains("ELECTION_NOT_NEEDED"), "{line}");
        }
    }
    eprintln!("elect-leaders:\n{stdout}");
    wait_for_original_leaders(
        &mut cluster,
        TOPIC,
        &failover.original,
        "the original leaders after elect-leaders",
        STEP_DEADLINE,
    );
    // The interim leaders lead no more: their leader-only gauges of those partitions say
    // so (ISR size 0, follower lag -1) instead of keeping their last values.
    for &p in &failover.victim_partitions {
        let interim = states[p as usize].leader.expect("an interim leader");
        let partition = format!("topic=\"{TOPIC}\",partition=\"{p}\"");
        cluster.wait_for_metrics(
            &[interim],
            &format!("node {interim}'s gauges of partition {p} it no longer leads"),
            STEP_DEADLINE,
            |_, text| {
                let lags: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("sluice_replica_lag_") && l.contains(&partition))
                    .collect();
                text.lines()
                    .any(|l| l == format!("sluice_partition_isr_size{{{partition}}} 0"))
                    && !lags.is_empty()
                    && lags.iter().all(|l| l.ends_with(" -1"))
            },
        );
    }

    // Nothing left to do: a second run succeeds and says so.
    let again = sluice(
        &cluster,
        &[
            "partition",
            "elect-leaders",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    assert!(again.success(), "{}", again.describe());
    let stdout = again.stdout_lossy();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        outcome_line(&stdout, TOPIC, 0).is_some_and(|l| l.contains("ELECTION_NOT_NEEDED")),
        "{stdout}"
    );

    assert_records_survived(&mut cluster, TOPIC, &failover);
}

#[test]
fn automatic_rebalance_restores_the_original_leader_distribution() {
    const TOPIC: &str = "balance-auto";
    let mut cluster = Cluster::start(
        3,
        cluster_options(&[
            "--auto-leader-rebalance",
            "true",
            "--leader-imbalance-check-interval-ms",
            "500",
        ]),
    );
    let (states, batches) = create_and_write(&mut cluster, TOPIC);
    let original = leaders(&states);
    // The active controller: the rebalance must go on under the controller elected next.
    let victim = cluster.controller_id().expect("a controller");
    let victim_partitions = kill_and_fail_over(&mut cluster, TOPIC, &states, victim);
    let failover = Failover {
        original,
        victim_partitions,
        batches,
    };
    cluster.wait_for("a new active controller", STEP_DEADLINE, |c| {
        c.controller_id().filter(|&id| id != victim)
    });

    restart_and_catch_up(&mut cluster, TOPIC, victim);
    wait_for_original_leaders(
        &mut cluster,
        TOPIC,
        &failover.original,
        "the automatic rebalance to restore the original leaders",
        AUTO_REBALANCE_DEADLINE,
    );
    // The controller counted the leaders it moved back (a node's counter starts at zero
    // when it starts, so the sum over the nodes is at least what the current one did).
    let moved: f64 = cluster
        .ids()
        .into_iter()
        .map(|id| {
            http_get(&cluster.broker(id).metrics_address(), "/metrics")
                .map(|text| metric_sum(&text, PREFERRED_ELECTIONS))
                .unwrap_or(0.0)
        })
        .sum();
    assert!(
        moved >= failover.victim_partitions.len() as f64,
        "{PREFERRED_ELECTIONS} sums to {moved} over the nodes, fewer than the {} partitions moved back",
        failover.victim_partitions.len()
    );

    assert_records_survived(&mut cluster, TOPIC, &failover);
}
