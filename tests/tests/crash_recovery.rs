//! `kill -9` of the broker in the middle of a produce stream, then a restart on the same
//! data dir: every acknowledged record is read back, in order, at its original offset.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, Record};
use sluice_tests::raw::RawConnection;
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "crash";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// Produce numbered batches of 50 records with acks=1 until the connection fails; return
/// (first value number, base offset) of every acknowledged batch.
fn produce_until_failure(
    address: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, i64)>>>,
) {
    let Ok(mut conn) = RawConnection::connect(&address) else {
        return;
    };
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let records: Vec<Record> = (next..next + 50)
            .map(|n| Record {
                key: Some(Bytes::from(format!("k{n}"))),
                value: Some(Bytes::from(format!("value-{n:010}"))),
                headers: vec![("n".into(), Some(Bytes::from(n.to_string())))],
                timestamp: 1_700_000_000_000 + n as i64,
            })
            .collect();
        let batch = encode_batch(&records, Compression::Lz4).unwrap();
        let partition = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch));
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name())
                .with_partition_data(vec![partition])]);
        match conn.request::<_, ProduceResponse>(ApiKey::Produce, 9, &request) {
            Ok(response) => {
                let p = &response.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0, "produce failed before the kill");
                acked.lock().unwrap().push((next, p.base_offset));
                next += 50;
            }
            Err(_) => return,
        }
    }
}

fn fetch_everything(address: &str) -> Vec<(i64, String)> {
    let mut conn = RawConnection::connect(address).unwrap();
    let mut out = Vec::new();
    let mut offset = 0i64;
    for _ in 0..10_000 {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(8 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(4 << 20)])]);
        let response: FetchResponse = conn.request(ApiKey::Fetch, 11, &request).unwrap();
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = decode_records(p.records.as_ref().unwrap()).unwrap();
        let fresh: Vec<_> = records.into_iter().filter(|r| r.offset >= offset).collect();
        if fresh.is_empty() {
            break;
        }
        for r in fresh {
            assert_eq!(r.offset, offset, "offsets must be contiguous");
            offset += 1;
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let mut broker = Broker::start_with(BrokerOptions {
        // Small segments so the crash lands near segment rolls too.
        extra_args: vec!["--segment-bytes".into(), "65536".into()],
        ..Default::default()
    });
    let address = broker.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producer = {
        let (address, stop, acked) = (address.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || produce_until_failure(address, stop, acked))
    };

    // Kill once a good amount has been acknowledged, mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 400 {
        assert!(
            Instant::now() < deadline,
            "producer too slow\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    broker.restart();
    let stored = fetch_everything(&broker.bootstrap());
    for (first, base_offset) in &acked {
        for i in 0..50u64 {
            let offset = base_offset + i as i64;
            let (found_offset, value) = stored.get(offset as usize).unwrap_or_else(|| {
                panic!(
                    "acknowledged offset {offset} missing after restart ({} stored)",
                    stored.len()
                )
            });
            assert_eq!(*found_offset, offset);
            assert_eq!(
                value,
                &format!("value-{:010}", first + i),
                "wrong record at offset {offset}"
            );
        }
    }
    assert!(stored.len() >= acked.len() * 50);
    // The log keeps accepting writes after recovery, at the next offset.
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let batch = encode_batch(
        &[Record {
            value: Some(Bytes::from_static(b"after")),
            ..Default::default()
        }],
        Compression::None,
    )
    .unwrap();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response: ProduceResponse = conn.request(ApiKey::Produce, 9, &request).unwrap();
    assert_eq!(
        response.responses[0].partition_responses[0].base_offset,
        stored.len() as i64
    );
}
