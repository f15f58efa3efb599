//! Pattern subscriptions of Sluice's group consumer against the real `sluiced`, with both
//! group protocols: the member gets the partitions of the topics whose whole name matches
//! (resolved by the client with the classic protocol, by the coordinator's
//! `SubscribedTopicRegex` with the consumer protocol), a matching topic created later is
//! assigned and consumed too, and a topic that only contains a match is not.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_client::{Admin, GroupConsumer, GroupProtocol, OffsetReset, TopicPartition};
use sluice_tests::group_members::{member_config, produce, runtime, WAIT};
use sluice_tests::{Broker, BrokerOptions};

fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: [
            "--group-initial-rebalance-delay-ms",
            "0",
            "--group-consumer-heartbeat-interval-ms",
            "200",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
}

/// Poll until the assignment is exactly `expected`; fail after `WAIT`.
async fn wait_for_assignment(consumer: &mut GroupConsumer, expected: &BTreeSet<TopicPartition>) {
    let deadline = Instant::now() + WAIT;
    loop {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
        let now: BTreeSet<TopicPartition> = consumer.assignment().into_iter().collect();
        if &now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "assignment {now:?}, expected {expected:?}"
        );
    }
}

fn partitions(topics: &[&str]) -> BTreeSet<TopicPartition> {
    topics
        .iter()
        .flat_map(|t| (0..6).map(move |p| (t.to_string(), p)))
        .collect()
}

fn a_pattern_subscription_follows_the_matching_topics(protocol: GroupProtocol) {
    let tag = format!("{protocol:?}").to_lowercase();
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        let (one, two, three) = (
            format!("{tag}-orders-1"),
            format!("{tag}-orders-2"),
            format!("{tag}-orders-3"),
        );
        let other = format!("old-{tag}-orders-9");
        for topic in [&one, &two, &other] {
            admin.create_topic(topic, 6, 1, &[]).await.unwrap();
        }
        let mut config = member_config(&bootstrap, &format!("{tag}-pattern"), 0);
        config.group_protocol = protocol;
        config.metadata_max_age_ms = 300;
        config.consumer.auto_offset_reset = OffsetReset::Earliest;
        let mut consumer = GroupConsumer::new(config).await.unwrap();
        assert!(consumer.subscribe_pattern("orders-(").is_err());
        consumer
            .subscribe_pattern(&format!("{tag}-orders-.*"))
            .unwrap();
        assert_eq!(
            consumer.subscription_pattern(),
            Some(format!("{tag}-orders-.*").as_str())
        );
        wait_for_assignment(&mut consumer, &partitions(&[&one, &two])).await;

        // A matching topic created now is assigned, and what is produced to it consumed.
        admin.create_topic(&three, 6, 1, &[]).await.unwrap();
        wait_for_assignment(&mut consumer, &partitions(&[&one, &two, &three])).await;
        produce(&bootstrap, &three, "late", 60).await;
        let deadline = Instant::now() + WAIT;
        let mut consumed = 0;
        while consumed < 60 {
            let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
            assert!(records.iter().all(|r| *r.topic == *three), "{records:?}");
            consumed += records.len();
            assert!(Instant::now() < deadline, "{consumed} of 60 consumed");
        }
        consumer.close().await.unwrap();
    });
}

#[test]
fn classic_protocol_pattern_subscription_follows_the_matching_topics() {
    a_pattern_subscription_follows_the_matching_topics(GroupProtocol::Classic);
}

#[test]
fn consumer_protocol_pattern_subscription_follows_the_matching_topics() {
    a_pattern_subscription_follows_the_matching_topics(GroupProtocol::Consumer);
}
