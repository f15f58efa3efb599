//! Malformed input against the real broker: every kind gets the right error code or a
//! closed connection, the broker stays up, and data written before is intact.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, Record};
use sluice_tests::raw::{
    fetch, fetch_request, http_get, metric_sum, produce_batch, produce_request, RawConnection,
    PRODUCE_VERSION,
};
use sluice_tests::Broker;

const TOPIC: &str = "malformed-safe";

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"v")))],
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

/// Produce to partition 0 with acks=all; (error code, base offset).
fn produce(conn: &mut RawConnection, topic: &str, records: Bytes) -> (i16, i64) {
    produce_batch(conn, topic, 0, records, -1)
}

/// Everything in partition 0, which must fit in one fetch.
fn fetch_all(conn: &mut RawConnection, topic: &str) -> Bytes {
    let response = fetch(conn, &fetch_request(topic, 0, 0, 10 << 20));
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch error");
    p.records.clone().unwrap_or_default()
}

fn assert_alive(broker: &Broker) {
    let mut conn = RawConnection::connect(&broker.bootstrap()).expect("broker accepts connections");
    let response: ApiVersionsResponse = conn
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap_or_else(|e| panic!("broker stopped answering: {e}\n{}", broker.log()));
    assert_eq!(response.error_code, 0);
}

/// A valid uncompressed batch whose bytes the test then breaks, with the CRC fixed up so
/// only the intended defect remains.
fn batch_with(mutate: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut batch = encode_batch(&records(3), Compression::None)
        .unwrap()
        .to_vec();
    mutate(&mut batch);
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

fn crc32c(bytes: &[u8]) -> u32 {
    // The same checksum Kafka uses; recomputed through the protocol crate's validator
    // would hide a bug, so compute it independently.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn malformed_input_gets_errors_and_never_hurts_stored_data() {
    let broker = Broker::start_with(sluice_tests::BrokerOptions {
        extra_args: vec!["--message-max-bytes".into(), "4096".into()],
        ..Default::default()
    });
    let address = broker.bootstrap();
    let mut conn = RawConnection::connect(&address).unwrap();

    // Data that must survive everything below.
    let good = encode_batch(&records(10), Compression::None).unwrap();
    let (code, base) = produce(&mut conn, TOPIC, good.clone());
    assert_eq!((code, base), (0, 0), "{}", broker.log());
    let before = fetch_all(&mut conn, TOPIC);
    assert_eq!(decode_records(&before).unwrap().len(), 10);

    // Bad CRC: CORRUPT_MESSAGE (2).
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(
        produce(&mut conn, TOPIC, Bytes::from(bad_crc)).0,
        2,
        "bad CRC"
    );

    // Record count that disagrees with lastOffsetDelta: CORRUPT_MESSAGE.
    let count_mismatch = batch_with(|b| b[57..61].copy_from_slice(&7i32.to_be_bytes()));
    assert_eq!(
        produce(&mut conn, TOPIC, count_mismatch).0,
        2,
        "count mismatch"
    );

    // gzip attribute over a payload that is not gzip: CORRUPT_MESSAGE.
    let bad_codec = batch_with(|b| b[22] = (b[22] & !0x07) | 1);
    assert_eq!(
        produce(&mut conn, TOPIC, bad_codec).0,
        2,
        "bad compression payload"
    );

    // A batch cut short inside the records buffer: CORRUPT_MESSAGE.
    let truncated_batch = good.slice(..good.len() - 5);
    assert_eq!(
        produce(&mut conn, TOPIC, truncated_batch).0,
        2,
        "truncated batch"
    );

    // Larger than message.max.bytes: MESSAGE_TOO_LARGE (10).
    let big: Vec<Record> = (0..4)
        .map(|i| Record {
            value: Some(Bytes::from(vec![b'x'; 2000])),
            timestamp: i,
            ..Default::default()
        })
        .collect();
    let big = encode_batch(&big, Compression::None).unwrap();
    assert_eq!(produce(&mut conn, TOPIC, big).0, 10, "oversized batch");

    // Unknown API key, and a known API at a version above ours (Fetch v99): no response
    // schema fits, so the connection is closed, as Kafka closes it.
    for body in [
        [0x03u8, 0xe7, 0, 0, 0, 0, 0, 42, 0xff, 0xff],
        [0u8, 1, 0, 99, 0, 0, 0, 42, 0xff, 0xff],
    ] {
        let mut c = RawConnection::connect(&address).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        c.write_raw(&frame).unwrap();
        assert!(c.is_closed_by_peer(), "{body:?} must close the connection");
    }

    // ApiVersions at a version above ours: a v0 response with UNSUPPORTED_VERSION and the
    // versions this broker has, so the client can retry lower.
    let mut frame = Vec::new();
    let body = [0u8, 18, 0, 99, 0, 0, 0, 43, 0xff, 0xff];
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    conn.write_raw(&frame).unwrap();
    let response = conn.read_frame().unwrap();
    assert_eq!(&response[..4], &43i32.to_be_bytes());
    let mut body = bytes::Bytes::copy_from_slice(&response[4..]);
    let versions = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(versions.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        versions.api_keys.iter().any(|k| k.api_key == 18),
        "{versions:?}"
    );
    // The connection stays usable after it.
    let again: ApiVersionsResponse = conn
        .request(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .unwrap();
    assert_eq!(again.error_code, 0);

    // Negative frame length: connection closed.
    let mut c = RawConnection::connect(&address).unwrap();
    c.write_raw(&(-1i32).to_be_bytes()).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "negative length must close the connection"
    );

    // Huge frame length: connection closed, without the broker allocating it.
    let mut c = RawConnection::connect(&address).unwrap();
    c.write_raw(&i32::MAX.to_be_bytes()).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "oversized length must close the connection"
    );

    // A garbage body for a known API: connection closed.
    let mut c = RawConnection::connect(&address).unwrap();
    let body = [
        0u8, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    c.write_raw(&frame).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "undecodable body must close the connection"
    );

    // A frame shorter than a request header: closed.
    let mut c = RawConnection::connect(&address).unwrap();
    c.write_raw(&[0, 0, 0, 3, 0, 1, 2]).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "truncated header must close the connection"
    );

    // A truncated frame followed by a hang-up: the broker just drops the connection.
    let mut c = RawConnection::connect(&address).unwrap();
    c.write_raw(&[0, 0, 0, 100, 0, 1, 0, 11]).unwrap();
    drop(c);

    // acks=0 with a corrupt batch: no response, connection closed.
    let mut c = RawConnection::connect(&address).unwrap();
    let mut corrupt = good.to_vec();
    corrupt[70] ^= 0x01;
    c.send(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(TOPIC, 0, Bytes::from(corrupt), 0),
    )
    .unwrap();
    assert!(c.is_closed_by_peer(), "acks=0 error closes the connection");

    // The broker is up and the stored data is byte-for-byte what it was.
    assert_alive(&broker);
    let mut conn = RawConnection::connect(&address).unwrap();
    let after = fetch_all(&mut conn, TOPIC);
    assert_eq!(before, after, "stored data changed");

    // Every malformed input was counted.
    let metrics = http_get(&broker.metrics_address(), "/metrics").unwrap();
    let malformed = metric_sum(&metrics, "sluice_malformed_requests_total");
    assert!(malformed >= 8.0, "malformed counter {malformed}\n{metrics}");
    assert!(metric_sum(&metrics, "sluice_unsupported_requests_total") >= 3.0);
    assert!(
        metric_sum(
            &metrics,
            "sluice_limit_exceeded_total{limit=\"message_max_bytes\""
        ) >= 1.0
    );
}
