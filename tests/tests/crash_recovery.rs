//! `kill -9` of the broker in the middle of a produce stream, then a restart on the same
//! data dir: every acknowledged record is read back, in order, at its original offset.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, Record};
use sluice_tests::raw::{
    fetch, fetch_request, metadata, produce_batch, produce_request, RawConnection, PRODUCE_VERSION,
};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "crash";

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
    conn.ensure_topic(TOPIC);
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
        let request = produce_request(TOPIC, 0, batch, 1);
        match conn.request::<_, ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION, &request) {
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
        let response = fetch(&mut conn, &fetch_request(TOPIC, 0, offset, 4 << 20));
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
    let (_, base_offset) = produce_batch(&mut conn, TOPIC, 0, batch, 1);
    assert_eq!(base_offset, stored.len() as i64);
}

/// A data dir written before the controller existed (topics and logs, no `controller/`
/// directory) keeps its topics, ids, records and cluster id: a single-node broker registers
/// them with its new controller on start.
#[test]
fn topics_of_a_data_dir_without_a_controller_are_adopted() {
    let mut broker = Broker::start();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let records: Vec<Record> = (0..20)
        .map(|n| Record {
            value: Some(Bytes::from(format!("value-{n:010}"))),
            ..Default::default()
        })
        .collect();
    let (_, base_offset) = produce_batch(
        &mut conn,
        TOPIC,
        0,
        encode_batch(&records, Compression::None).unwrap(),
        1,
    );
    assert_eq!(base_offset, 0);
    let cluster_id = cluster_id_of(&mut conn);
    let cluster_id_file = broker.data_dir().join("cluster.id");
    assert_eq!(
        std::fs::read_to_string(&cluster_id_file).unwrap().trim(),
        cluster_id
    );
    drop(conn);
    broker.sigterm();
    broker.wait_exit(Duration::from_secs(20));
    let controller_dir = broker.data_dir().join("controller");
    assert!(
        controller_dir.is_dir(),
        "the broker keeps its metadata log in {controller_dir:?}"
    );
    std::fs::remove_dir_all(&controller_dir).unwrap();

    broker.restart();
    let stored = fetch_everything(&broker.bootstrap());
    assert_eq!(
        stored.len(),
        20,
        "records of the adopted topic\n{}",
        broker.log()
    );
    assert_eq!(stored[19], (19, format!("value-{:010}", 19)));
    assert!(
        broker
            .log()
            .contains("registered an existing local topic with the controller"),
        "{}",
        broker.log()
    );
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        cluster_id_of(&mut conn),
        cluster_id,
        "the data dir's cluster id is kept\n{}",
        broker.log()
    );
    assert_eq!(
        std::fs::read_to_string(&cluster_id_file).unwrap().trim(),
        cluster_id
    );
}

/// The cluster id a broker answers Metadata with.
fn cluster_id_of(conn: &mut RawConnection) -> String {
    let response = metadata(conn, Some(&[])).expect("metadata");
    response
        .cluster_id
        .map(|id| id.to_string())
        .unwrap_or_default()
}
