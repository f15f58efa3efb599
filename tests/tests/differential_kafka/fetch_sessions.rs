//! The differential test's fetch session step (KIP-227): one session's life, from the full
//! fetch that creates it to the sessionless fetch that closes it, with each error on
//! purpose. Session ids are random on both brokers, so the view keeps only whether one
//! was given.

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::*;
use sluice_protocol::batch::Compression;
use sluice_tests::raw::{topic_id, topic_name, RawConnection};

use super::{batch, create_topics, produce, topic, wait_for_leaders};

const TOPIC: &str = "sessions";

fn partition(index: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(index)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
}

fn request(session_id: i32, epoch: i32, partitions: Vec<FetchPartition>) -> FetchRequest {
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(partitions)]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// Top-level error, whether a session id came back, and per partition answered: index,
/// error, high watermark, records.
fn view(response: &FetchResponse) -> String {
    let partitions: Vec<_> = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let records = p.records.as_ref().map_or(0, |r| {
                sluice_protocol::batch::Batches::new(r)
                    .flatten()
                    .map(|(h, _)| i64::from(h.last_offset_delta) + 1)
                    .sum::<i64>()
            });
            (p.partition_index, p.error_code, p.high_watermark, records)
        })
        .collect();
    format!(
        "{:?}",
        (response.error_code, response.session_id != 0, partitions)
    )
}

/// Send `request` at `version`; the answer and its view.
fn send(c: &mut RawConnection, version: i16, request: &FetchRequest) -> (FetchResponse, String) {
    let response: FetchResponse = c.request(ApiKey::Fetch, version, request).unwrap();
    let view = view(&response);
    (response, view)
}

/// The step: create a two-partition topic, then walk one session through its life.
pub fn session_life(c: &mut RawConnection) -> String {
    create_topics(c, vec![topic(TOPIC, 2, 1, &[])]);
    wait_for_leaders(c, TOPIC);
    wait_until_served(c);
    produce(c, TOPIC, 0, batch(3, Compression::None), 1);
    let mut lines = Vec::new();

    let full = request(0, 0, vec![partition(0, 0), partition(1, 0)]);
    let (response, line) = send(c, 12, &full);
    lines.push(format!("full: {line}"));
    let id = response.session_id;

    // Nothing new: the moved fetch offset of partition 0 is not news to the fetcher.
    let (_, line) = send(c, 12, &request(id, 1, vec![partition(0, 3)]));
    lines.push(format!("nothing new: {line}"));

    produce(c, TOPIC, 1, batch(2, Compression::None), 1);
    let (_, line) = send(c, 12, &request(id, 2, vec![]));
    lines.push(format!("records on 1: {line}"));

    let (_, line) = send(c, 12, &request(id, 2, vec![]));
    lines.push(format!("epoch 2 again: {line}"));

    let forget = request(id, 3, vec![]).with_forgotten_topics_data(vec![ForgottenTopic::default()
        .with_topic(topic_name(TOPIC))
        .with_partitions(vec![1])]);
    let (_, line) = send(c, 12, &forget);
    lines.push(format!("forget 1: {line}"));

    produce(c, TOPIC, 1, batch(1, Compression::None), 1);
    let (_, line) = send(c, 12, &request(id, 4, vec![]));
    lines.push(format!("records on forgotten 1: {line}"));

    let by_id = request(id, 5, vec![]);
    let (_, line) = send(c, 13, &by_id);
    lines.push(format!("v13 on a v12 session: {line}"));

    let (_, line) = send(c, 12, &request(id.wrapping_add(1).max(1), 1, vec![]));
    lines.push(format!("unknown session: {line}"));

    let (_, line) = send(c, 12, &request(id, -1, vec![partition(0, 3)]));
    lines.push(format!("close (epoch -1): {line}"));
    let (_, line) = send(c, 12, &request(id, 5, vec![]));
    lines.push(format!("closed session: {line}"));

    lines.push(format!("by id: {}", session_by_id(c)));
    lines.join("; ")
}

/// Wait until both partitions answer a sessionless fetch without error: the metadata
/// names a leader a moment before that leader serves the partition.
fn wait_until_served(c: &mut RawConnection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = request(0, -1, vec![partition(0, 0), partition(1, 0)]);
        let (response, line) = send(c, 12, &probe);
        let served = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.error_code == 0);
        if served {
            return;
        }
        assert!(Instant::now() < deadline, "{TOPIC} not served: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A v17 session by topic id: an unknown id stays in the answer with UNKNOWN_TOPIC_ID.
fn session_by_id(c: &mut RawConnection) -> String {
    let id = topic_id(c, TOPIC);
    let unknown = uuid::Uuid::from_u128(0x5eed);
    let topic = |id, partitions| {
        FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(partitions)
    };
    let full = request(0, 0, vec![]).with_topics(vec![
        topic(id, vec![partition(0, 0)]),
        topic(unknown, vec![partition(0, 0)]),
    ]);
    let (response, first) = send(c, 17, &full);
    let session = response.session_id;
    let (_, second) = send(c, 17, &request(session, 1, vec![]));
    let forget =
        request(session, 2, vec![]).with_forgotten_topics_data(vec![ForgottenTopic::default()
            .with_topic_id(unknown)
            .with_partitions(vec![0])]);
    let (_, third) = send(c, 17, &forget);
    format!("{first} / {second} / {third}")
}
