//! Split brain, made with SIGSTOP: the leader is stopped (to everyone else it is cut off)
//! while clients still send it writes, which its socket accepts. The others elect a new
//! leader and take acks=all writes. When the old leader resumes it still believes, for a
//! moment, that it leads: no acks=all write it received may be acknowledged, neither those
//! sent while it was stopped nor those sent after it resumed, until it answers
//! NOT_LEADER_OR_FOLLOWER. Then it rejoins as a follower, none of its stale writes survive
//! anywhere, and the three replicas end byte-identical.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use sluice_tests::raw::{
    produce_request, produce_result, try_produce_values, value_batch, RawConnection,
    PRODUCE_VERSION,
};
use sluice_tests::workload::numbered_values;
use sluice_tests::{AckedBatch, Cluster, ClusterOptions};

const TOPIC: &str = "split-brain";
const PER_BATCH: usize = 10;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// The values of batch `b` of a kind: `<prefix>-<b>-<i>`.
fn batch(prefix: &str, b: usize) -> Vec<String> {
    numbered_values(&format!("{prefix}-{b}"), PER_BATCH)
}

/// Send a produce without reading its answer (the broker is stopped).
fn send_produce(conn: &mut RawConnection, values: &[String], acks: i16) {
    let request = produce_request(TOPIC, 0, value_batch(values), acks).with_timeout_ms(5_000);
    conn.send(ApiKey::Produce, PRODUCE_VERSION, &request)
        .expect("the stopped broker's socket accepts the request");
}

#[test]
fn a_stale_leader_never_acknowledges_acks_all_writes() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let old_leader = before.leader.expect("a leader");
    let followers = before.followers();

    let mut acked: Vec<AckedBatch> = vec![cluster.produce_acked_batch(TOPIC, 0, batch("base", 0))];

    // Connections opened while the leader runs; requests written while it is stopped.
    let mut to_old_all = cluster.connect(old_leader).expect("connect to the leader");
    let mut to_old_one = cluster.connect(old_leader).expect("connect to the leader");
    cluster.sigstop(old_leader);
    send_produce(&mut to_old_all, &batch("stale-all", 0), -1);
    send_produce(&mut to_old_one, &batch("stale-one", 0), 1);

    let elected = cluster.wait_for_follower_elected(TOPIC, 0, &before, Duration::from_secs(30));
    let new_leader = elected.leader.expect("checked above");
    eprintln!("old leader {old_leader} stopped; new leader {elected:?}");
    for b in 0..5 {
        acked.push(cluster.produce_acked_batch(TOPIC, 0, batch("new", b)));
    }

    cluster.sigcont(old_leader);
    // What the old leader answers to the writes it got while stopped.
    to_old_all
        .set_read_timeout(Duration::from_secs(30))
        .unwrap();
    match to_old_all.read_response::<ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION) {
        Ok(response) => {
            let (code, offset) = produce_result(&response).unwrap();
            assert_ne!(
                code, 0,
                "the stale leader acknowledged an acks=all write (at offset {offset}) it received while cut off\n{}",
                cluster.logs()
            );
            eprintln!("acks=all write sent to the stopped leader: error {code}");
        }
        Err(e) => eprintln!("acks=all write sent to the stopped leader: no answer ({e})"),
    }
    to_old_one
        .set_read_timeout(Duration::from_secs(30))
        .unwrap();
    let one = to_old_one
        .read_response::<ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION)
        .map(|r| produce_result(&r));
    // acks=1 promises only the leader's append, which a stale leader may do; it is lost.
    eprintln!("acks=1 write sent to the stopped leader: {one:?}");

    // Writes to the old leader after it resumed: never acknowledged, until it knows.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers: Vec<String> = Vec::new();
    for attempt in 0.. {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            Instant::now() < deadline,
            "the old leader did not answer NOT_LEADER_OR_FOLLOWER within 30 s of resuming (answers: {answers:?})\n{}",
            cluster.logs()
        );
        let mut conn = match cluster.connect(old_leader) {
            Ok(conn) => conn,
            Err(e) => {
                answers.push(format!("connect: {e}"));
                continue;
            }
        };
        conn.set_read_timeout(Duration::from_secs(10)).unwrap();
        let values = batch("stale-after", attempt);
        match try_produce_values(&mut conn, TOPIC, 0, &values, -1, 2_000) {
            Ok((code, offset)) => {
                assert_ne!(
                    code, 0,
                    "the stale leader acknowledged an acks=all write (at offset {offset}) after resuming\n{}",
                    cluster.logs()
                );
                answers.push(format!("error {code}"));
                if code == NOT_LEADER_OR_FOLLOWER {
                    break;
                }
            }
            Err(e) => answers.push(e.to_string()),
        }
    }
    eprintln!("old leader's answers after resuming: {answers:?}");

    cluster.wait_for_partition(
        TOPIC,
        0,
        "the old leader back in the ISR as a follower",
        Duration::from_secs(60),
        |s| s.isr_is_full() && s.leader == Some(new_leader),
    );
    let (high_watermark, records) =
        cluster.assert_batches_committed(new_leader, TOPIC, 0, &acked, Duration::from_secs(30));
    let stale: Vec<i64> = records
        .iter()
        .filter(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"stale-")))
        .map(|r| r.offset)
        .collect();
    assert!(
        stale.is_empty(),
        "writes taken by the stale leader are readable at offsets {stale:?}"
    );
    let third = followers
        .iter()
        .copied()
        .find(|&f| f != new_leader)
        .expect("two followers");
    let compared = cluster.assert_replicas_identical(
        TOPIC,
        0,
        &[new_leader, old_leader, third],
        high_watermark,
    );
    cluster.assert_no_log_contains(TOPIC, 0, b"stale-", "a write taken by the stale leader");
    eprintln!("high watermark {high_watermark}; {compared} bytes identical on all three replicas");
}
