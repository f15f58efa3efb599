//! Controlled shutdown: SIGTERM to a partition's leader while an acks=all producer runs.
//! Leadership moves to another replica before the process exits, and the application
//! sees no failed produce: every record is acknowledged.
//!
//! The broker session timeout is set long (20 s), so a leadership move seen within a few
//! seconds of the SIGTERM can only be the controlled shutdown's doing, not the controller
//! noticing a dead broker.

use std::time::{Duration, Instant};

use sluice_client::Acks;
use sluice_tests::workload::{
    acked_end_offset, producer_config, read_back, runtime, verify_acked, BackgroundProducer,
    ProduceSpec,
};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "controlled-shutdown";
const PREFIX: &str = "rec";
const SESSION_TIMEOUT_MS: u64 = 20_000;

#[test]
fn sigterm_moves_leadership_before_exit_and_no_produce_fails() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, 3_000));
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = before.leader.expect("a leader");
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();

    let runtime = runtime();
    let config = producer_config(&cluster.bootstrap(), Acks::All);
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            records_per_second: Some(5_000),
            ..ProduceSpec::new(TOPIC, 0, PREFIX, 1_000_000, config)
        },
    );
    producer
        .wait_for_acked(5_000, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("before the shutdown: {e}\n{}", cluster.logs()));

    let sigterm_at = Instant::now();
    cluster.sigterm(leader);
    // Watch the other brokers' metadata and the process together; the process is checked
    // after each metadata answer, so "moved while running" is never a wrong claim.
    let mut exited_at: Option<Duration> = None;
    let mut moved: Option<(Duration, bool, i32)> = None;
    let deadline = sigterm_at + Duration::from_secs(30);
    while moved.is_none() && Instant::now() < deadline {
        for &id in &others {
            if let Some(s) = cluster.partition_state_from(id, TOPIC, 0) {
                if let Some(new_leader) = s.leader.filter(|&l| l != leader) {
                    if s.leader_epoch > before.leader_epoch {
                        let running = cluster.node(leader).is_running();
                        moved = Some((sigterm_at.elapsed(), running, new_leader));
                        break;
                    }
                }
            }
        }
        if exited_at.is_none() && !cluster.node(leader).is_running() {
            exited_at = Some(sigterm_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let Some((moved_after, still_running, new_leader)) = moved else {
        panic!(
            "leadership did not move within 30 s of SIGTERM to leader {leader} (process exited after {exited_at:?})\n{}",
            cluster.logs()
        );
    };
    eprintln!(
        "leadership moved {leader} -> {new_leader} {moved_after:?} after SIGTERM (leader still running: {still_running}; exit seen after {exited_at:?})"
    );
    assert!(
        still_running || moved_after < Duration::from_millis(SESSION_TIMEOUT_MS / 4),
        "leadership moved {moved_after:?} after SIGTERM, after the process had exited (seen after {exited_at:?}): that is a failover, not a controlled shutdown"
    );
    let status = cluster.wait_exit(leader, Duration::from_secs(30));
    assert!(
        status.success(),
        "sluiced exited with {status} on SIGTERM\n{}",
        cluster.logs()
    );

    // The producer goes on on the new leader without a single error reaching it.
    let acked_at_move = producer.acked();
    producer
        .wait_for_acked(acked_at_move + 5_000, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "after the shutdown ({acked_at_move} acked at the move): {e}\n{}",
                cluster.logs()
            )
        });
    producer.stop();
    let outcomes = producer
        .finish(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(
        producer.failed() == 0,
        "a produce failed during the controlled shutdown: {:?}",
        producer.first_errors(5)
    );

    cluster.restart(leader);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the restarted broker back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full(),
    );
    let needed = acked_end_offset(&outcomes).unwrap_or(0);
    let (high_watermark, records) = read_back(&runtime, &mut cluster, TOPIC, 0, needed);
    // A request in flight when leadership moved may be retried after it landed.
    let verified = verify_acked(PREFIX, &outcomes, &records, &[], 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let compared = cluster.assert_replicas_identical(TOPIC, 0, &[1, 2, 3], high_watermark);
    eprintln!("{verified:?}; {compared} bytes identical on all three replicas");
}

/// The last broker standing cannot commit its controlled shutdown (no quorum): SIGTERM
/// still ends it cleanly, and soon: once it has seen no majority for a moment it skips the
/// handover instead of waiting out `--shutdown-timeout-ms` (20 s here). Run with the quorum
/// leader left alone (it stays leader without acknowledgements) and with a follower left
/// alone (it knows no leader).
fn last_broker_stops_soon_without_a_quorum(keep_the_controller: bool) {
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            extra_args: vec!["--shutdown-timeout-ms".into(), "20000".into()],
            ..ClusterOptions::fast(2_000, 2_000)
        },
    );
    cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let controller = cluster.controller_id().expect("an active controller");
    let last = if keep_the_controller {
        controller
    } else {
        cluster
            .ids()
            .into_iter()
            .find(|&id| id != controller)
            .unwrap()
    };
    for id in cluster.ids() {
        if id != last {
            cluster.kill9(id);
        }
    }
    let sigterm_at = Instant::now();
    cluster.sigterm(last);
    let status = cluster.wait_exit(last, Duration::from_secs(30));
    let took = sigterm_at.elapsed();
    assert!(
        status.success(),
        "sluiced exited with {status}\n{}",
        cluster.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "the last broker took {took:?} to stop on SIGTERM (shutdown timeout 20 s)\n{}",
        cluster.logs()
    );
    assert!(
        cluster
            .node(last)
            .log()
            .contains("controlled shutdown skipped: the controller quorum has no majority"),
        "{}",
        cluster.logs()
    );
    eprintln!("the last broker stopped {took:?} after SIGTERM");
}

#[test]
fn the_quorum_leader_left_alone_stops_soon_on_sigterm() {
    last_broker_stops_soon_without_a_quorum(true);
}

#[test]
fn a_follower_left_alone_stops_soon_on_sigterm() {
    last_broker_stops_soon_without_a_quorum(false);
}
