//! An fsync failure end to end (issue 13's disk faults): a 3-node cluster with
//! `--durability fsync` whose nodes run as `sluiced-faults`; the partition leader's fsyncs
//! start failing (a failing disk). The write in flight is not acknowledged (refused with
//! KAFKA_STORAGE_ERROR, or cut off by the halt), the leader's
//! log is poisoned and its data directory marked failed, and the broker halts, as Kafka
//! halts a broker whose only log directory went offline. The others elect a new leader and
//! go on acknowledging; once the disk works again the broker restarts, recovers from what
//! its disk holds, and rejoins the ISR. Every acknowledged record is read back where its
//! acknowledgement said, and the three replicas agree.

use std::time::Duration;

use sluice_tests::raw;
use sluice_tests::{AckedBatch, Cluster, ClusterOptions};

const TOPIC: &str = "fsync-failure";
/// Exit status of a broker that halts because its data directory failed.
const DIR_FAILURE_EXIT_CODE: i32 = 3;

fn batch(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

#[test]
fn a_failed_fsync_halts_the_leader_loses_nothing_acknowledged_and_the_cluster_goes_on() {
    let options = ClusterOptions {
        extra_args: vec!["--durability".into(), "fsync".into()],
        power_loss: Some("lose"),
        ..ClusterOptions::fast(2_000, 2_000)
    };
    let mut cluster = Cluster::start(3, options);
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = before.leader.expect("create_topic waits for a leader");
    let mut acked: Vec<AckedBatch> = (0..5)
        .map(|round| cluster.produce_acked_batch(TOPIC, 0, batch(&format!("before-{round}"), 20)))
        .collect();

    cluster.fail_fsyncs(leader, true);
    // Refused with KAFKA_STORAGE_ERROR (56), or the connection closes because the broker
    // halted before the answer went out (Kafka halts asynchronously too): never acknowledged.
    let answer = cluster.connect(leader).and_then(|mut conn| {
        conn.set_read_timeout(Duration::from_secs(20))?;
        raw::try_produce_values(&mut conn, TOPIC, 0, &batch("during", 20), -1, 5_000)
    });
    assert!(
        matches!(answer, Ok((56, _)) | Err(_)),
        "an acks=all write whose fsync failed must not be acknowledged: {answer:?}\n{}",
        cluster.logs()
    );
    let status = cluster.wait_exit(leader, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(DIR_FAILURE_EXIT_CODE),
        "the broker whose data directory failed must halt\n{}",
        cluster.logs()
    );
    let log = cluster.broker(leader).log();
    assert!(
        log.contains("the data directory failed; halting"),
        "the halt must say why:\n{log}"
    );

    let after =
        cluster.wait_for_partition(TOPIC, 0, "a new leader", Duration::from_secs(30), |s| {
            s.leader.is_some_and(|l| l != leader) && s.leader_epoch > before.leader_epoch
        });
    let new_leader = after.leader.expect("waited for a leader");
    for round in 0..5 {
        acked.push(cluster.produce_acked_batch(TOPIC, 0, batch(&format!("after-{round}"), 20)));
    }

    cluster.fail_fsyncs(leader, false);
    cluster.restart(leader);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the restarted broker back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full(),
    );
    let (high_watermark, records) =
        cluster.assert_batches_committed(new_leader, TOPIC, 0, &acked, Duration::from_secs(30));
    cluster.assert_replicas_identical(TOPIC, 0, &cluster.ids(), high_watermark);
    let values: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .collect();
    let during = values.iter().filter(|v| v.starts_with("during")).count();
    assert!(
        during == 0 || during == 20,
        "the refused batch is absent or whole, never torn: {values:?}"
    );
}
