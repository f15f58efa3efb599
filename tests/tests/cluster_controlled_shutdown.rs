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
    consume_partition, producer_config, runtime, verify_acked, BackgroundProducer, Outcome,
    ProduceSpec,
};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "controlled-shutdown";
const PREFIX: &str = "rec";
const SESSION_TIMEOUT_MS: u64 = 20_000;

#[test]
fn sigterm_moves_leadership_before_exit_and_no_produce_fails() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, 3_000));
    cluster.create_topic(TOPIC, 1, 3, &[("min.insync.replicas", "2")]);
    let before = cluster
        .partition_state_agreed(TOPIC, 0)
        .expect("create_topic waits for agreement");
    let leader = before.leader.expect("a leader");
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();

    let runtime = runtime();
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            topic: TOPIC.to_string(),
            partition: 0,
            prefix: PREFIX.to_string(),
            count: 1_000_000,
            gate_at: None,
            records_per_second: Some(5_000),
            config: producer_config(&cluster.bootstrap(), Acks::All),
        },
    );
    assert!(
        producer.wait_until(Duration::from_secs(30), |acked, failed| acked >= 5_000
            || failed > 0)
            && producer.failed() == 0,
        "before the shutdown: {} acked, first errors {:?}\n{}",
        producer.acked(),
        producer.first_errors(5),
        cluster.logs()
    );

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
    assert!(
        producer.wait_until(Duration::from_secs(30), |acked, failed| acked
            >= acked_at_move + 5_000
            || failed > 0)
            && producer.failed() == 0,
        "after the shutdown: {} more acked, first errors {:?}\n{}",
        producer.acked() - acked_at_move,
        producer.first_errors(5),
        cluster.logs()
    );
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
    let needed = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Acked(offset) => Some(offset + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let high_watermark = cluster.wait_for(
        "the high watermark to cover every acknowledged record",
        Duration::from_secs(30),
        |c| c.high_watermark(TOPIC, 0).filter(|&hw| hw >= needed),
    );
    let records = runtime
        .block_on(consume_partition(
            &cluster.bootstrap(),
            TOPIC,
            0,
            high_watermark,
            Duration::from_secs(120),
        ))
        .unwrap_or_else(|e| panic!("reading {TOPIC}-0 back: {e}\n{}", cluster.logs()));
    // A request in flight when leadership moved may be retried after it landed.
    let verified = verify_acked(PREFIX, &outcomes, &records, &[], 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let compared = cluster.assert_replicas_identical(TOPIC, 0, &[1, 2, 3], high_watermark);
    eprintln!("{verified:?}; {compared} bytes identical on all three replicas");
}
