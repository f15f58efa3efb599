//! Sluice's own group consumer rebalancing incrementally against the real `sluiced`: with
//! the consumer protocol (KIP-848, `GroupProtocol::Consumer`), and with the classic
//! protocol and `cooperative-sticky` (KIP-429), which shares the handover test. With the
//! consumer protocol, three members split a
//! 6-partition topic by the coordinator's assignment and consume every record exactly
//! once, committing with their member epochs; when one closes, the others take its
//! partitions over from its commits *incrementally* (a member that stays keeps what it
//! had, without a revoke); a member the coordinator fences (its session expired while it
//! did not heartbeat) loses its partitions without committing and joins again with the
//! same member id; a bad assignor name is a fatal error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, Assignor, GroupConsumer, GroupConsumerConfig, GroupProtocol, OffsetReset, TopicPartition,
};
use sluice_tests::group_members::*;
use sluice_tests::{Broker, BrokerOptions};

/// A broker whose consumer groups heartbeat every 200 ms and expire sessions after 3 s.
fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: [
            "--group-consumer-heartbeat-interval-ms",
            "200",
            "--group-consumer-session-timeout-ms",
            "3000",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
}

fn consumer_protocol(bootstrap: &str, group: &str, index: usize) -> GroupConsumerConfig {
    let mut config = member_config(bootstrap, group, index);
    config.group_protocol = GroupProtocol::Consumer;
    config
}

/// Member `member`'s callbacks, in order: ("revoked" | "assigned", partitions).
fn callbacks(shared: &Shared, member: usize) -> Vec<(&'static str, Vec<TopicPartition>)> {
    shared
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| *m == member)
        .map(|(_, what, partitions)| (*what, partitions.clone()))
        .collect()
}

#[test]
fn members_split_by_the_coordinator_and_a_closing_members_partitions_move_incrementally() {
    incremental_handover("kip848", consumer_protocol);
}

/// The classic protocol with `cooperative-sticky` (KIP-429): the same incremental
/// handover, the leader member assigning.
#[test]
fn cooperative_sticky_members_keep_their_partitions_when_one_closes() {
    incremental_handover("cooperative", |bootstrap, group, index| {
        let mut config = member_config(bootstrap, group, index);
        config.assignors = vec![Assignor::CooperativeSticky];
        config
    });
}

/// Three members split six partitions and consume every record once; member 0 closes and
/// the other two take its partitions without giving up any of theirs.
fn incremental_handover(tag: &str, config: fn(&str, &str, usize) -> GroupConsumerConfig) {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let mut run = Handover::start(&bootstrap, &format!("{tag}-group"), config).await;
        let shared = run.shared.clone();
        // (While the group formed, members gave up partitions to those joining.)
        // The member epochs (or generations) the members report are > 0.
        let generations = shared.generations.lock().unwrap().clone();
        assert!(
            generations.values().all(|g| g.is_some_and(|g| g > 0)),
            "{generations:?}"
        );
        let kept: Vec<BTreeSet<TopicPartition>> = [1, 2]
            .iter()
            .map(|m| shared.assignments()[m].iter().cloned().collect())
            .collect();

        // Member 0 closes (committing, then leaving): the others get its two partitions and
        // keep their own, without giving any up.
        let events_before: Vec<usize> = [1, 2].map(|m| callbacks(&shared, m).len()).to_vec();
        run.close_member_0().await;
        for (i, member) in [1, 2].into_iter().enumerate() {
            let now: BTreeSet<TopicPartition> =
                shared.assignments()[&member].iter().cloned().collect();
            assert!(
                now.is_superset(&kept[i]),
                "member {member}: {now:?} ⊉ {:?}",
                kept[i]
            );
            let revoked: Vec<_> = callbacks(&shared, member)
                .into_iter()
                .skip(events_before[i])
                .filter(|(what, partitions)| *what == "revoked" && !partitions.is_empty())
                .collect();
            assert!(revoked.is_empty(), "member {member} revoked {revoked:?}");
        }
        // Member 0's commits on close cover what it consumed.
        let committed_now = committed(&bootstrap, &run.group, &run.group).await;
        for (_, partition) in &run.closed_partitions {
            assert_eq!(
                committed_now[partition],
                Some(run.ends[partition]),
                "{committed_now:?}"
            );
        }
        let second_ends = run.consume_second().await;
        run.finish(&second_ends).await;
    });
}

/// Poll until `count` records came back (or fail after `WAIT`).
async fn consume(consumer: &mut GroupConsumer, count: usize) {
    let mut consumed = 0;
    let deadline = Instant::now() + WAIT;
    while consumed < count {
        consumed += consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
        assert!(Instant::now() < deadline, "{consumed} of {count} consumed");
    }
}

#[test]
fn a_fenced_member_loses_its_partitions_without_committing_and_joins_again() {
    const GROUP: &str = "kip848-fenced";
    const TOPIC: &str = "kip848-fenced";
    const RECORDS: usize = 60;
    let broker = broker();
    let bootstrap = broker.bootstrap();
    // One thread: blocking it stops the heartbeat task too.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 1, &[]).await.unwrap();
        produce(&bootstrap, TOPIC, "r", RECORDS).await;
        let mut config = consumer_protocol(&bootstrap, GROUP, 0);
        config.consumer.auto_offset_reset = OffsetReset::Earliest;
        config.enable_auto_commit = true;
        config.auto_commit_interval_ms = 3_600_000;
        let mut consumer = GroupConsumer::new(config).await.unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        let shared = Arc::new(Shared::default());
        consumer.set_rebalance_listener(Recorder {
            member: 0,
            shared: shared.clone(),
        });
        consume(&mut consumer, RECORDS).await;
        let (member_id, epoch) = consumer.member();
        assert!(epoch.is_some_and(|e| e > 0), "{epoch:?}");
        assert_eq!(consumer.assignment().len(), PARTITIONS as usize);

        // No heartbeat for longer than the 3 s session: the coordinator removes the member.
        std::thread::sleep(Duration::from_secs(5));
        // The next heartbeat is refused; poll drops the partitions without committing, the
        // member joins again with the same id and, nothing being committed, reads
        // everything again from the earliest offset.
        consume(&mut consumer, RECORDS).await;
        let (member_id_after, epoch_after) = consumer.member();
        assert_eq!(member_id_after, member_id);
        assert!(epoch_after.is_some_and(|e| e > 0), "{epoch_after:?}");
        let events = callbacks(&shared, 0);
        let lost = events
            .iter()
            .position(|(what, partitions)| *what == "revoked" && partitions.len() == 6);
        let lost = lost.unwrap_or_else(|| panic!("no revocation of all six: {events:?}"));
        assert!(
            events[lost + 1..]
                .iter()
                .any(|(what, partitions)| *what == "assigned" && partitions.len() == 6),
            "{events:?}"
        );
        let committed_now = committed(&bootstrap, GROUP, TOPIC).await;
        assert!(
            committed_now.values().all(Option::is_none),
            "{committed_now:?}"
        );
        consumer.close().await.unwrap();
        // Closing committed what the second round consumed.
        let committed_now = committed(&bootstrap, GROUP, TOPIC).await;
        let total: i64 = committed_now.values().map(|o| o.unwrap_or(0)).sum();
        assert_eq!(total, RECORDS as i64, "{committed_now:?}");
    });
}

#[test]
fn an_assignor_the_broker_lacks_is_a_fatal_error() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin
            .create_topic("kip848-assignor", 1, 1, &[])
            .await
            .unwrap();
        let mut config = consumer_protocol(&bootstrap, "kip848-assignor", 0);
        config.group_remote_assignor = Some("no-such-assignor".into());
        let mut consumer = GroupConsumer::new(config).await.unwrap();
        consumer.subscribe(&["kip848-assignor"]).unwrap();
        let deadline = Instant::now() + WAIT;
        let error = loop {
            match consumer.poll(Duration::from_millis(100)).await {
                Err(error) => break error,
                Ok(_) => assert!(Instant::now() < deadline, "poll never failed"),
            }
        };
        assert_eq!(
            error.kafka_code(),
            Some(112),
            "UNSUPPORTED_ASSIGNOR: {error}"
        );
        // And it stays failed.
        assert!(consumer.poll(Duration::from_millis(10)).await.is_err());
    });
}
