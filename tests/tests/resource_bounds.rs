//! Hostile load stays within bounds (issue 13, "resource bounds"): the broker's memory
//! (RSS) is measured around each load and must stay under the bound `docs/reliability.md`
//! documents, and the broker keeps answering others throughout.
//!
//! - 10,000 idle connections: memory per connection;
//! - request bytes in flight across connections (`--queued-max-request-bytes`): once the
//!   pool is taken, sockets are not read, so nothing is buffered without limit;
//! - a flood of tiny produce requests from pipelining clients that never wait;
//! - a consumer asking for the most bytes allowed from thousands of partitions, and
//!   consumer fetch responses paid for from the same pool as requests.
//!
//! Each prints what it measured (`cargo test --test resource_bounds -- --nocapture`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsResponse, FetchRequest,
    FetchResponse, ProduceRequest, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::header;
use sluice_tests::raw::{
    self, http_get, metric_sum, metric_value, value_batch, wait_for_metrics, RawConnection,
};
use sluice_tests::{Broker, BrokerOptions};

const MIB: u64 = 1 << 20;

/// The broker's resident memory now, from /proc.
fn rss_bytes(broker: &Broker) -> u64 {
    let pid = broker.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn answers_api_versions(address: &str) -> bool {
    let Ok(mut conn) = RawConnection::connect(address) else {
        return false;
    };
    conn.request::<_, ApiVersionsResponse>(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .is_ok_and(|response| response.error_code == 0)
}

/// One request frame, length prefix included.
fn request_frame<Req: kafka_protocol::protocol::Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("resource-bounds")));
    header::encode_request(api_key, &header, request)
        .expect("encode")
        .to_vec()
}

fn create_topic(address: &str, name: &str, partitions: i32) {
    let mut conn = RawConnection::connect(address).unwrap();
    conn.set_read_timeout(Duration::from_secs(120)).unwrap();
    let response: CreateTopicsResponse = conn
        .request(
            ApiKey::CreateTopics,
            5,
            &raw::create_topics_request(name, partitions, 1, &[]).with_timeout_ms(120_000),
        )
        .unwrap();
    assert_eq!(response.topics[0].error_code, 0, "create {name}");
    // Metadata names the leader a moment before the partition leads here: produce a first
    // record to each partition until it is accepted.
    let deadline = Instant::now() + Duration::from_secs(120);
    for partition in 0..partitions {
        loop {
            let (error, _) =
                raw::try_produce_values(&mut conn, name, partition, &[b"first"], 1, 30_000)
                    .expect("produce answer");
            if error == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}-{partition} never led: error {error}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Raise this process's soft limit on open files to `needed` (the broker it starts inherits
/// it); panics, saying so, if the hard limit is lower.
fn raise_open_files_limit(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current >= needed) || limit.current.is_none() {
        return;
    }
    assert!(
        limit.maximum.is_none_or(|maximum| maximum >= needed),
        "this test needs {needed} open files; the hard limit is {:?} (raise it with ulimit -Hn)",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .expect("raise the open-files limit");
}

/// A consumer's Fetch of partitions `0..partitions` of `topic` from offset 0, asking for the
/// most bytes per partition and per response, answered at once.
fn fetch_everything(topic: &str, partitions: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(raw::topic_name(topic))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(i32::MAX)
                    })
                    .collect(),
            )])
}

/// 10,000 connections that send nothing cost the broker little memory each, are all
/// counted, and do not stop it serving a newcomer.
#[test]
fn ten_thousand_idle_connections_cost_little_memory() {
    const CONNECTIONS: usize = 10_000;
    raise_open_files_limit(CONNECTIONS as u64 + 1_000);
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--connections-max".into(), "11000".into()],
        ..Default::default()
    });
    let address = broker.bootstrap();
    assert!(answers_api_versions(&address));
    let before = rss_bytes(&broker);
    let mut idle = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        idle.push(TcpStream::connect(&address).expect("connect"));
    }
    let counted = format!("{CONNECTIONS}");
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(60), |text| {
        metric_value(text, "sluice_connections_active{listener=\"client\"}")
            .is_some_and(|open| open >= CONNECTIONS as f64)
    })
    .unwrap_or_else(|text| panic!("not all {counted} connections counted: {text}"));
    let after = rss_bytes(&broker);
    let per_connection = after.saturating_sub(before) / CONNECTIONS as u64;
    println!(
        "{CONNECTIONS} idle connections: RSS {} KiB -> {} KiB, {per_connection} bytes per connection",
        before / 1024,
        after / 1024
    );
    assert!(answers_api_versions(&address), "a newcomer is still served");
    // docs/reliability.md: under 16 KiB per idle connection.
    assert!(
        per_connection < 16 * 1024,
        "{per_connection} bytes per idle connection"
    );
    drop(idle);
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(60), |text| {
        metric_value(text, "sluice_connections_active{listener=\"client\"}")
            .is_some_and(|open| open <= 1.0)
    })
    .expect("closed connections are counted down");
}

/// `--queued-max-request-bytes`: a client that announces a frame as big as the whole pool
/// and sends only part of it holds the pool; every other connection's request then waits
/// unread (no answer, counted), and is answered once the pool is free again.
#[test]
fn request_bytes_in_flight_are_bounded_across_connections() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--frame-bytes-max".into(),
            "1048576".into(),
            "--queued-max-request-bytes".into(),
            "1048576".into(),
            "--message-max-bytes".into(),
            "1000000".into(),
        ],
        ..Default::default()
    });
    let address = broker.bootstrap();
    let mut hog = TcpStream::connect(&address).unwrap();
    // 4 + 1,048,572 bytes: the whole pool.
    hog.write_all(&1_048_572i32.to_be_bytes()).unwrap();
    hog.write_all(&[0; 100]).unwrap();
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(text, "sluice_queued_request_bytes") >= 1_048_576.0
    })
    .expect("the half-sent frame holds its bytes");

    let mut waiting = RawConnection::connect(&address).unwrap();
    waiting
        .set_read_timeout(Duration::from_millis(500))
        .unwrap();
    waiting
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap();
    let early = waiting.read_frame();
    assert!(
        early.is_err(),
        "a request was read with the pool of request bytes empty"
    );
    let metrics = http_get(&broker.metrics_address(), "/metrics").unwrap();
    assert!(
        metric_sum(
            &metrics,
            "sluice_limit_exceeded_total{limit=\"queued_max_request_bytes\""
        ) >= 1.0,
        "{metrics}"
    );

    drop(hog);
    waiting.set_read_timeout(Duration::from_secs(10)).unwrap();
    let response: ApiVersionsResponse = waiting
        .read_response(ApiKey::ApiVersions, 3)
        .expect("answered once the pool is free");
    assert_eq!(response.error_code, 0);
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(text, "sluice_queued_request_bytes") == 0.0
    })
    .expect("every request byte goes back to the pool");
}

/// Consumer fetch responses come out of the same pool: with the pool almost all taken
/// (two clients holding half-sent frames), a fetch asking for everything gets about what
/// is left (the first batch at least), counted; once the pool is free, the same fetch gets
/// a full response.
#[test]
fn fetch_responses_take_their_bytes_from_the_request_pool() {
    const POOL: i32 = 2 << 20;
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--frame-bytes-max".into(),
            "1048576".into(),
            "--queued-max-request-bytes".into(),
            POOL.to_string(),
            "--message-max-bytes".into(),
            "1000000".into(),
        ],
        ..Default::default()
    });
    let address = broker.bootstrap();
    create_topic(&address, "pooled", 4);
    let mut conn = RawConnection::connect(&address).unwrap();
    let value = vec![b'p'; 16 * 1024];
    for partition in 0..4 {
        for _ in 0..32 {
            let (error, _) =
                raw::try_produce_values(&mut conn, "pooled", partition, &[&value[..]], 1, 30_000)
                    .unwrap();
            assert_eq!(error, 0);
        }
    }
    let response_bytes = |conn: &mut RawConnection| {
        conn.send(
            ApiKey::Fetch,
            raw::FETCH_VERSION,
            &fetch_everything("pooled", 4),
        )
        .unwrap();
        conn.read_frame().expect("a fetch response").len()
    };
    let free = response_bytes(&mut conn);
    assert!(free > 1 << 20, "a {free}-byte response with the pool free");

    // Take all of the pool but 64 KiB: a whole 1 MiB frame and one 64 KiB short of it.
    let mut hogs = Vec::new();
    for length in [1_048_572i32, 1_048_572 - 65_536] {
        let mut hog = TcpStream::connect(&address).unwrap();
        hog.write_all(&length.to_be_bytes()).unwrap();
        hog.write_all(&[0; 16]).unwrap();
        hogs.push(hog);
    }
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(text, "sluice_queued_request_bytes") >= f64::from(POOL - 65_536)
    })
    .expect("the half-sent frames hold their bytes");
    let short = response_bytes(&mut conn);
    println!(
        "fetch of everything: {free} bytes with the pool free, {short} with 64 KiB of it left"
    );
    assert!(
        short < 100 * 1024,
        "a {short}-byte response with 64 KiB of the pool left"
    );
    assert!(short > 16 * 1024, "at least the first batch: {short} bytes");
    let metrics = http_get(&broker.metrics_address(), "/metrics").unwrap();
    assert!(
        metric_sum(
            &metrics,
            "sluice_limit_exceeded_total{limit=\"queued_max_request_bytes_fetch\""
        ) >= 1.0,
        "{metrics}"
    );
    drop(hogs);
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(text, "sluice_queued_request_bytes") == 0.0
    })
    .expect("every byte back in the pool");
    let again = response_bytes(&mut conn);
    assert!(
        again > 1 << 20,
        "a {again}-byte response with the pool free again"
    );
}

/// Clients pipelining tiny produce requests as fast as they can write, reading answers on
/// another thread: every request is answered in order and without error, the broker's
/// memory stays bounded (reads stop at `--in-flight-requests-max` per connection), and a
/// newcomer is served during the flood.
#[test]
fn a_flood_of_tiny_produces_is_answered_in_bounded_memory() {
    const CLIENTS: usize = 8;
    const REQUESTS: i32 = 4_000;
    let broker = Broker::start();
    let address = broker.bootstrap();
    create_topic(&address, "flood", 4);
    let before = rss_bytes(&broker);
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let address = address.clone();
            std::thread::spawn(move || flood(&address, client as i32 % 4, REQUESTS))
        })
        .collect();
    let mut peak = before;
    let mut served_during = false;
    while !clients.iter().all(|c| c.is_finished()) {
        peak = peak.max(rss_bytes(&broker));
        served_during |= answers_api_versions(&address);
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the flood did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for client in clients {
        client.join().expect("a flooding client");
    }
    println!(
        "{} tiny produces from {CLIENTS} pipelining clients in {:?}: RSS {} KiB, peak {} KiB",
        CLIENTS as i32 * REQUESTS,
        started.elapsed(),
        before / 1024,
        peak / 1024
    );
    assert!(served_during || answers_api_versions(&address));
    assert!(
        peak < before + 128 * MIB,
        "RSS grew from {} to {} KiB",
        before / 1024,
        peak / 1024
    );
}

/// Write `requests` one-record acks=1 produces to `partition` without waiting, reading
/// the answers on another thread; each must come back in order with no error.
fn flood(address: &str, partition: i32, requests: i32) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answers = std::thread::spawn(move || {
        for expected in 0..requests {
            let mut length = [0u8; 4];
            reader.read_exact(&mut length).expect("a produce answer");
            let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
            reader.read_exact(&mut body).unwrap();
            let mut body = bytes::Bytes::from(body);
            let (correlation_id, response) = header::decode_response::<
                kafka_protocol::messages::ProduceResponse,
            >(
                ApiKey::Produce, raw::PRODUCE_VERSION, &mut body
            )
            .unwrap();
            assert_eq!(correlation_id, expected, "answers in request order");
            let (error, _) = raw::produce_result(&response).unwrap();
            assert_eq!(error, 0, "produce {expected}");
        }
    });
    for correlation_id in 0..requests {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(raw::topic_name("flood"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(value_batch(&[b"x"])))])]);
        let frame = request_frame(
            ApiKey::Produce,
            raw::PRODUCE_VERSION,
            correlation_id,
            &request,
        );
        stream.write_all(&frame).expect("the broker keeps reading");
    }
    answers.join().expect("every answer");
}

/// A consumer fetching 2,000 partitions that hold 160 MiB between them, asking for the
/// most bytes per partition and per response: the answer is capped near
/// `--fetch-bytes-max` (55 MiB), every partition is in it, and the broker's memory grows
/// by about one response, not by what was asked for.
#[test]
fn a_fetch_of_thousands_of_partitions_is_capped() {
    const PARTITIONS: i32 = 2_000;
    const VALUE_BYTES: usize = 16 * 1024;
    const VALUES: usize = 5;
    let broker = Broker::start();
    let address = broker.bootstrap();
    create_topic(&address, "wide", PARTITIONS);
    let mut conn = RawConnection::connect(&address).unwrap();
    conn.set_read_timeout(Duration::from_secs(120)).unwrap();
    let value = vec![b'v'; VALUE_BYTES];
    let values = vec![&value[..]; VALUES];
    let batch = value_batch(&values);
    for chunk in (0..PARTITIONS).collect::<Vec<_>>().chunks(100) {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(60_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(raw::topic_name("wide"))
                .with_partition_data(
                    chunk
                        .iter()
                        .map(|&p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(batch.clone()))
                        })
                        .collect(),
                )]);
        let response: kafka_protocol::messages::ProduceResponse = conn
            .request(ApiKey::Produce, raw::PRODUCE_VERSION, &request)
            .unwrap();
        for partition in &response.responses[0].partition_responses {
            assert_eq!(partition.error_code, 0, "produce to {}", partition.index);
        }
    }
    let before = rss_bytes(&broker);
    let request = fetch_everything("wide", PARTITIONS);
    let mut largest = 0;
    for _ in 0..3 {
        conn.send(ApiKey::Fetch, raw::FETCH_VERSION, &request)
            .unwrap();
        let frame = conn.read_frame().unwrap();
        largest = largest.max(frame.len());
        let mut body = frame;
        let (_, response) =
            header::decode_response::<FetchResponse>(ApiKey::Fetch, raw::FETCH_VERSION, &mut body)
                .unwrap();
        assert_eq!(response.error_code, 0);
        let partitions = &response.responses[0].partitions;
        assert_eq!(
            partitions.len(),
            PARTITIONS as usize,
            "every partition answered"
        );
        assert!(partitions.iter().all(|p| p.error_code == 0));
    }
    let after = rss_bytes(&broker);
    println!(
        "fetch of {PARTITIONS} partitions ({} MiB stored): largest response {} KiB, RSS {} KiB -> {} KiB",
        PARTITIONS as u64 * (VALUE_BYTES * VALUES) as u64 / MIB,
        largest / 1024,
        before / 1024,
        after / 1024
    );
    assert!(
        largest as u64 <= 55 * MIB + 2 * MIB,
        "a {largest}-byte fetch response"
    );
    assert!(
        after < before + 200 * MIB,
        "RSS grew from {} to {} KiB",
        before / 1024,
        after / 1024
    );
}
