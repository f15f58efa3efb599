//! DescribeTopicPartitions (KIP-966) on a real broker: pages of at most the requested
//! partition count in topic-name order with Kafka's cursor, unknown topics and bad cursors
//! answered with Kafka's errors, and Kafka's `kafka-topics --describe` (whose Admin uses
//! this API when the broker offers it) listing every partition.

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use sluice_tests::raw::{topic_name, RawConnection};
use sluice_tests::{kafka_tool, Broker};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;

fn describe(
    conn: &mut RawConnection,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(topic_name(topic))
                .with_partition_index(partition)
        }));
    conn.request(ApiKey::DescribeTopicPartitions, 0, &request)
        .unwrap()
}

/// A topic's partition, or a cursor.
type At = (String, i32);

/// (topic, partition) pairs of a page, and its next cursor.
fn page(response: &DescribeTopicPartitionsResponse) -> (Vec<At>, Option<At>) {
    let listed = response
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.as_ref().unwrap().0.to_string();
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index))
        })
        .collect();
    let next = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (listed, next)
}

#[test]
fn topics_are_described_in_pages_with_kafkas_cursor_and_errors() {
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = sluice_client::Admin::new(&broker.bootstrap())
            .await
            .unwrap();
        for (name, partitions) in [("b", 2), ("a", 3), ("c", 1)] {
            admin.create_topic(name, partitions, 1, &[]).await.unwrap();
        }
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let pair = |t: &str, p: i32| (t.to_string(), p);

    // Every topic, two partitions a page, in name order.
    let first = describe(&mut conn, &[], 2, None);
    assert_eq!(
        page(&first),
        (vec![pair("a", 0), pair("a", 1)], Some(pair("a", 2)))
    );
    let topic = &first.topics[0];
    assert_eq!(topic.error_code, 0);
    assert!(!topic.topic_id.is_nil());
    assert_eq!(topic.topic_authorized_operations, 3576);
    assert_eq!(topic.partitions[0].leader_id.0, 1);
    assert_eq!(topic.partitions[0].eligible_leader_replicas, Some(vec![]));
    let second = describe(&mut conn, &[], 2, Some(("a", 2)));
    assert_eq!(
        page(&second),
        (vec![pair("a", 2), pair("b", 0)], Some(pair("b", 1)))
    );
    let third = describe(&mut conn, &[], 2, Some(("b", 1)));
    assert_eq!(page(&third), (vec![pair("b", 1), pair("c", 0)], None));

    // Named topics, the unknown one answered with its error.
    let named = describe(&mut conn, &["c", "nope", "a"], 10, None);
    let codes: Vec<(String, i16)> = named
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("a".to_string(), 0),
            ("c".to_string(), 0),
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    // A cursor on a topic the request does not name.
    let bad = describe(&mut conn, &["a"], 10, Some(("b", 0)));
    assert_eq!(bad.topics[0].error_code, INVALID_REQUEST);

    // Kafka's kafka-topics --describe lists every partition.
    let output = kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &broker.bootstrap(),
        &["--describe", "--topic", "a"],
    );
    assert!(output.success(), "{}", output.describe());
    let text = output.stdout_lossy();
    assert!(text.contains("TopicId:"), "{text}");
    for partition in 0..3 {
        assert!(
            text.contains(&format!("Topic: a\tPartition: {partition}\tLeader: 1")),
            "{text}"
        );
    }
}
