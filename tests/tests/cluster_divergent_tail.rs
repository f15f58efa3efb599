//! A replica with a divergent tail truncates it when it rejoins (KIP-101/279/320).
//!
//! The tail is made with SIGSTOP, no network tricks: both followers are stopped, the
//! leader takes acks=1 writes only it has, then the leader is stopped and the followers
//! resumed (three brokers: the two followers are a controller quorum). One of them is elected (leader epoch + 1) and takes acks=all writes at the same
//! offsets. When the old leader resumes it must find out it diverged, truncate its tail,
//! fetch the new leader's records and end byte-identical to the others; the tail's records
//! (acknowledged with acks=1, which promises no more) are gone everywhere.

use std::time::Duration;

use sluice_tests::raw::{http_get, metric_value};
use sluice_tests::workload::numbered_values;
use sluice_tests::{AckedBatch, Cluster, ClusterOptions};

const TOPIC: &str = "divergent-tail";
const BATCHES: usize = 5;
const PER_BATCH: usize = 20;

/// The values of batch `b` of a kind: `<prefix>-<b>-<i>`.
fn batch(prefix: &str, b: usize) -> Vec<String> {
    numbered_values(&format!("{prefix}-{b}"), PER_BATCH)
}

#[test]
fn a_returning_leader_truncates_its_divergent_tail() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let old_leader = before.leader.expect("a leader");
    let followers = before.followers();

    // Committed on all three (acks=all with the full ISR).
    let mut acked: Vec<AckedBatch> = (0..BATCHES)
        .map(|b| cluster.produce_acked_batch(TOPIC, 0, batch("base", b)))
        .collect();

    // The tail: acks=1 writes that only the leader gets.
    for &f in &followers {
        cluster.sigstop(f);
    }
    let mut conn = cluster
        .connect(old_leader)
        .unwrap_or_else(|e| panic!("connect to the leader: {e}"));
    conn.set_read_timeout(Duration::from_secs(10)).unwrap();
    // A follower's fetch may have been parked at the leader (a long poll) when it stopped;
    // the leader answers it at its next append, into the stopped follower's socket, and
    // the follower appends that answer when it resumes. This first batch is that answer,
    // so the tail after it reaches no follower: a stopped follower sends no new fetch.
    let (code, _) =
        sluice_tests::raw::try_produce_values(&mut conn, TOPIC, 0, &batch("drain", 0), 1, 5_000)
            .unwrap_or_else(|e| panic!("acks=1 produce to the leader: {e}\n{}", cluster.logs()));
    assert_eq!(code, 0, "acks=1 to the leader\n{}", cluster.logs());
    // The drain append wakes a parked fetch, which then reads on its own schedule: under
    // load it could read after the tail below was appended. Wait until the leader's fetch
    // purgatory is empty: a woken fetch leaves it in the same step in which it reads, so
    // from then on no stopped follower has a read of the tail coming.
    cluster.wait_for_metrics(
        &[old_leader],
        "the leader's parked follower fetches to be answered",
        Duration::from_secs(10),
        // No series yet: no fetch was ever parked there.
        |_, text| {
            !text.is_empty()
                && metric_value(text, "sluice_fetch_purgatory_size").unwrap_or(0.0) == 0.0
        },
    );
    let mut tail_start = None;
    for b in 0..BATCHES {
        let (code, offset) =
            sluice_tests::raw::try_produce_values(&mut conn, TOPIC, 0, &batch("tail", b), 1, 5_000)
                .unwrap_or_else(|e| {
                    panic!("acks=1 produce to the leader: {e}\n{}", cluster.logs())
                });
        assert_eq!(code, 0, "acks=1 to the leader\n{}", cluster.logs());
        tail_start.get_or_insert(offset);
    }
    let tail_start = tail_start.expect("tail written");

    // Swap: the old leader is cut off, the followers come back and elect one of them.
    cluster.sigstop(old_leader);
    for &f in &followers {
        cluster.sigcont(f);
    }
    let elected = cluster.wait_for_follower_elected(TOPIC, 0, &before, Duration::from_secs(30));
    let new_leader = elected.leader.expect("checked above");
    eprintln!(
        "old leader {old_leader} stopped with a tail at {tail_start}; new leader {elected:?}"
    );
    assert!(
        !cluster.log_contains(new_leader, TOPIC, 0, b"tail-"),
        "test set-up: the new leader {new_leader} has records of the tail, so nothing diverges \
         (a fetch parked at the old leader was answered only after the tail was appended?)"
    );

    for b in 0..BATCHES {
        acked.push(cluster.produce_acked_batch(TOPIC, 0, batch("new", b)));
    }

    cluster.sigcont(old_leader);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the old leader back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full() && s.leader == Some(new_leader),
    );
    let (high_watermark, records) =
        cluster.assert_batches_committed(new_leader, TOPIC, 0, &acked, Duration::from_secs(30));
    // The new leader's own records took the tail's offsets.
    let at_tail_start = records
        .iter()
        .find(|r| r.offset == tail_start)
        .and_then(|r| r.value.clone());
    assert!(
        at_tail_start
            .as_deref()
            .is_some_and(|v| v.starts_with(b"new-")),
        "offset {tail_start} (where the old leader's tail began) holds {at_tail_start:?}, expected a record of the new leader"
    );

    let compared = cluster.assert_replicas_identical(
        TOPIC,
        0,
        &[
            new_leader,
            old_leader,
            followers
                .iter()
                .copied()
                .find(|&f| f != new_leader)
                .unwrap(),
        ],
        high_watermark,
    );
    cluster.assert_no_log_contains(TOPIC, 0, b"tail-", "records of the divergent tail");
    eprintln!("high watermark {high_watermark}; {compared} bytes identical on all three replicas");

    // The old leader counted the truncation and the records it removed: the whole tail.
    let metrics = http_get(&cluster.broker(old_leader).metrics_address(), "/metrics").unwrap();
    let truncated = metric_value(&metrics, "sluice_replica_truncated_records_total");
    assert!(
        metric_value(&metrics, "sluice_replica_truncations_total").is_some_and(|n| n >= 1.0)
            && truncated.is_some_and(|n| n >= (BATCHES * PER_BATCH) as f64),
        "truncated records {truncated:?}, expected at least the tail's {}\n{metrics}",
        BATCHES * PER_BATCH
    );
}
