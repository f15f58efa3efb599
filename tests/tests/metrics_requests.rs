//! Request and network metrics against real brokers: every request moves its API's and
//! version's counters, time histograms and byte counters; a parked request (acks=all
//! waiting for the ISR, a fetch long poll) shows in its purgatory's gauge and in the remote
//! time, and leaves both when answered; a malformed request moves the error counters;
//! connections are counted as they open and close, per listener.
//!
//! Each assertion compares a scrape before with a scrape after, so a metric that does not
//! move fails it.

use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchResponse, ProduceResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::header;
use sluice_protocol::records::decode_records;
use sluice_tests::raw::{
    self, fetch, fetch_request, http_get, metric_sum, metric_value, produce_batch, produce_request,
    value_batch, RawConnection, FETCH_VERSION, PRODUCE_VERSION,
};
use sluice_tests::{Broker, Cluster, ClusterOptions};

/// How long a test waits for a metric to reach a value.
const METRIC_DEADLINE: Duration = Duration::from_secs(10);

/// The broker's `/metrics` text.
fn scrape(metrics_address: &str) -> String {
    http_get(metrics_address, "/metrics").expect("scrape /metrics")
}

/// The value of one series (name and labels exactly as the exporter prints them; 0 when
/// absent, as a counter not yet moved is) in a scrape. For deltas and values that must be
/// above 0 only: a check that a value *is* 0 asks [`metric_value`] for `Some(0.0)`, or a
/// missing (renamed) series would pass it.
fn value(text: &str, series: &str) -> f64 {
    metric_sum(text, &format!("{series} "))
}

/// A series of a per-request metric for `api` at `version`.
fn series(name: &str, api: &str, version: i16) -> String {
    format!("{name}{{api=\"{api}\",version=\"{version}\"}}")
}

/// How much `series` grew from `before` to `after`.
fn delta(before: &str, after: &str, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

/// Scrape the broker at `metrics_address` until `done` holds for the text; the last scrape.
fn wait_until(metrics_address: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    raw::wait_for_metrics(metrics_address, METRIC_DEADLINE, done)
        .unwrap_or_else(|text| panic!("no {what} within {METRIC_DEADLINE:?}:\n{text}"))
}

/// Wait until `series` is present with `wanted` on the broker at `metrics_address`; the
/// last scrape.
fn wait_for_value(metrics_address: &str, series: &str, wanted: f64) -> String {
    wait_until(metrics_address, &format!("{series} {wanted}"), |text| {
        metric_value(text, series) == Some(wanted)
    })
}

/// Send `request` as one frame of our own encoding and read the response frame; returns
/// the request frame's and the response frame's sizes (length prefixes included, as the
/// broker counts them) and the decoded response.
fn exchange<Req: Encodable, Resp: Decodable>(
    conn: &mut RawConnection,
    api_key: ApiKey,
    version: i16,
    request: &Req,
) -> (usize, usize, Resp) {
    let correlation_id = 7;
    let request_header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("metrics-requests")));
    let frame = header::encode_request(api_key, &request_header, request).expect("encode");
    conn.write_raw(&frame).expect("send the request");
    let mut response = conn.read_frame().expect("a response");
    let response_bytes = response.len() + 4;
    let (answered_id, decoded) =
        header::decode_response::<Resp>(api_key, version, &mut response).expect("decode");
    assert_eq!(answered_id, correlation_id);
    (frame.len(), response_bytes, decoded)
}

#[test]
fn produce_and_fetch_move_their_request_counts_times_and_bytes() {
    const TOPIC: &str = "request-metrics";
    const PRODUCES: usize = 3;
    let broker = Broker::start();
    let metrics = broker.metrics_address();
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    // The first produce auto-creates the topic (the controller's time is local time).
    let (code, _) = produce_batch(&mut conn, TOPIC, 0, value_batch(&["warm-up"]), -1);
    assert_eq!(code, 0);

    let before = scrape(&metrics);
    let batch = value_batch(&["a", "bb", "ccc"]);
    let (mut produce_request_bytes, mut produce_response_bytes) = (0, 0);
    for _ in 0..PRODUCES {
        let request = produce_request(TOPIC, 0, batch.clone(), -1);
        let (sent, received, response): (_, _, ProduceResponse) =
            exchange(&mut conn, ApiKey::Produce, PRODUCE_VERSION, &request);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        produce_request_bytes += sent;
        produce_response_bytes += received;
    }
    let request = fetch_request(TOPIC, 0, 0, 1 << 20);
    let (fetch_request_bytes, fetch_response_bytes, response): (_, _, FetchResponse) =
        exchange(&mut conn, ApiKey::Fetch, FETCH_VERSION, &request);
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert_eq!(decode_records(&records).unwrap().len(), 1 + 3 * PRODUCES);
    // A request is recorded once its response is written, which may be a moment after the
    // client has read it: wait (bounded) until the Fetch is in, then compare exactly.
    let fetch_count = series("sluice_requests_total", "Fetch", FETCH_VERSION);
    let after = wait_until(&metrics, "the Fetch recorded", |text| {
        delta(&before, text, &fetch_count) >= 1.0
    });

    let produce = |name: &str| delta(&before, &after, &series(name, "Produce", PRODUCE_VERSION));
    let fetched = |name: &str| delta(&before, &after, &series(name, "Fetch", FETCH_VERSION));
    let produces = PRODUCES as f64;
    assert_eq!(produce("sluice_requests_total"), produces, "{after}");
    assert_eq!(fetched("sluice_requests_total"), 1.0, "{after}");
    for histogram in [
        "sluice_request_total_time_seconds",
        "sluice_request_queue_time_seconds",
        "sluice_request_local_time_seconds",
        "sluice_request_remote_time_seconds",
        "sluice_response_send_time_seconds",
    ] {
        assert_eq!(
            produce(&format!("{histogram}_count")),
            produces,
            "{histogram}:\n{after}"
        );
        assert_eq!(
            fetched(&format!("{histogram}_count")),
            1.0,
            "{histogram}:\n{after}"
        );
    }
    // Total time is the sum of its parts, request by request.
    let sum = |name: &str| produce(&format!("{name}_sum"));
    let total = sum("sluice_request_total_time_seconds");
    let parts = sum("sluice_request_queue_time_seconds")
        + sum("sluice_request_local_time_seconds")
        + sum("sluice_request_remote_time_seconds")
        + sum("sluice_response_send_time_seconds");
    assert!(total > 0.0, "{after}");
    assert!(
        (total - parts).abs() < 1e-6,
        "total {total} s vs parts {parts} s:\n{after}"
    );
    assert!(sum("sluice_request_local_time_seconds") > 0.0, "{after}");

    assert_eq!(
        produce("sluice_request_bytes_total"),
        produce_request_bytes as f64
    );
    assert_eq!(
        produce("sluice_response_bytes_total"),
        produce_response_bytes as f64
    );
    assert_eq!(
        fetched("sluice_request_bytes_total"),
        fetch_request_bytes as f64
    );
    assert_eq!(
        fetched("sluice_response_bytes_total"),
        fetch_response_bytes as f64
    );

    // Per topic (on by default).
    let topic = |name: &str| delta(&before, &after, &format!("{name}{{topic=\"{TOPIC}\"}}"));
    assert_eq!(
        topic("sluice_topic_bytes_in_total"),
        (PRODUCES * batch.len()) as f64,
        "{after}"
    );
    assert_eq!(
        topic("sluice_topic_messages_in_total"),
        3.0 * produces,
        "{after}"
    );
    assert_eq!(topic("sluice_topic_produce_requests_total"), produces);
    assert_eq!(topic("sluice_topic_fetch_requests_total"), 1.0);
    assert_eq!(
        topic("sluice_topic_bytes_out_total"),
        records.len() as f64,
        "{after}"
    );
    assert_eq!(
        metric_value(&after, "sluice_produce_purgatory_size"),
        Some(0.0),
        "{after}"
    );
}

#[test]
fn a_long_poll_fetch_is_parked_in_the_fetch_purgatory_and_counted_as_remote_time() {
    const TOPIC: &str = "long-poll";
    const MAX_WAIT_MS: i32 = 300;
    let broker = Broker::start();
    let metrics = broker.metrics_address();
    let mut producer = RawConnection::connect(&broker.bootstrap()).unwrap();
    let (code, base_offset) = produce_batch(&mut producer, TOPIC, 0, value_batch(&["first"]), 1);
    assert_eq!(code, 0);
    let next_offset = base_offset + 1;
    let mut consumer = RawConnection::connect(&broker.bootstrap()).unwrap();
    let remote = series(
        "sluice_request_remote_time_seconds_sum",
        "Fetch",
        FETCH_VERSION,
    );
    let local = series(
        "sluice_request_local_time_seconds_sum",
        "Fetch",
        FETCH_VERSION,
    );

    // Nothing past the log end arrives: the fetch waits out max_wait_ms, all of it parked.
    let before = scrape(&metrics);
    let request = fetch_request(TOPIC, 0, next_offset, 1 << 20)
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1);
    let response = fetch(&mut consumer, &request);
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    let after = scrape(&metrics);
    let parked = delta(&before, &after, &remote);
    assert!(
        parked >= f64::from(MAX_WAIT_MS) / 1000.0 * 0.8,
        "a {MAX_WAIT_MS} ms long poll parked only {parked} s:\n{after}"
    );
    assert!(
        delta(&before, &after, &local) < parked,
        "the wait is remote time, not local:\n{after}"
    );
    assert_eq!(
        metric_value(&after, "sluice_fetch_purgatory_size"),
        Some(0.0),
        "{after}"
    );

    // A long poll is in the purgatory while it waits, and leaves it when a record arrives.
    let request = request.with_max_wait_ms(30_000);
    consumer
        .send(ApiKey::Fetch, FETCH_VERSION, &request)
        .unwrap();
    wait_for_value(&metrics, "sluice_fetch_purgatory_size", 1.0);
    let (code, _) = produce_batch(&mut producer, TOPIC, 0, value_batch(&["wake"]), 1);
    assert_eq!(code, 0);
    let response: FetchResponse = consumer
        .read_response(ApiKey::Fetch, FETCH_VERSION)
        .unwrap();
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert!(!records.is_empty(), "the woken fetch returns the record");
    let text = scrape(&metrics);
    assert_eq!(
        metric_value(&text, "sluice_fetch_purgatory_size"),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn a_malformed_request_moves_the_error_counters_and_connections_are_counted() {
    let broker = Broker::start();
    let metrics = broker.metrics_address();
    let active = "sluice_connections_active{listener=\"client\"}";
    let created = "sluice_connections_created_total{listener=\"client\"}";
    let closed = "sluice_connections_closed_total{listener=\"client\"}";
    // The harness's readiness probe has hung up once nothing is active.
    let before = wait_for_value(&metrics, active, 0.0);

    // An open connection is created and active.
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let response: ApiVersionsResponse = conn
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap();
    assert_eq!(response.error_code, 0);
    let open = scrape(&metrics);
    assert_eq!(delta(&before, &open, created), 1.0, "{open}");
    assert_eq!(metric_value(&open, active), Some(1.0), "{open}");
    // Both scrapes must have the counter: a delta of two missing series is 0 too.
    let closed_before = metric_value(&before, closed);
    assert!(closed_before.is_some(), "no {closed}:\n{before}");
    assert_eq!(metric_value(&open, closed), closed_before, "{open}");

    // A whole frame with a valid Produce v9 header and a body that does not decode: the
    // broker counts it and closes the connection.
    let mut body = vec![0u8, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x00];
    body.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.write_raw(&frame).unwrap();
    assert!(conn.is_closed_by_peer(), "a malformed body closes");
    let after = wait_for_value(&metrics, active, 0.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "sluice_request_errors_total{api=\"Produce\",error=\"INVALID_REQUEST\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "sluice_malformed_requests_total{reason=\"bad_body\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(delta(&before, &after, closed), 1.0, "{after}");

    // A client that hangs up is counted closed too.
    let conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    wait_for_value(&metrics, active, 1.0);
    drop(conn);
    let after = wait_for_value(&metrics, active, 0.0);
    assert_eq!(delta(&before, &after, created), 2.0, "{after}");
    assert_eq!(delta(&before, &after, closed), 2.0, "{after}");
}

#[test]
fn an_acks_all_produce_waiting_for_a_stopped_follower_is_parked_in_the_produce_purgatory() {
    const TOPIC: &str = "produce-purgatory";
    // The produce must reach the leader while the stopped follower is still in the ISR,
    // i.e. within LAG_MS of the follower's last fetch, on a loaded machine too: a lag of
    // seconds leaves room for a slow connect and send.
    const LAG_MS: u64 = 6_000;
    // Well above LAG_MS: the stopped follower is dropped from the ISR by the leader's lag
    // check, not fenced by the controller first (which would shrink the ISR too).
    const SESSION_TIMEOUT_MS: u64 = 20_000;
    // The produce's timeout outlasts the ISR shrink (LAG_MS) with margin.
    const PRODUCE_TIMEOUT_MS: i32 = 30_000;
    // A negative property (no connection per heartbeat) needs a window to watch; this one
    // spans several heartbeat intervals.
    const HEARTBEAT_WINDOW: Duration = Duration::from_secs(2);
    let options = ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS);
    let heartbeat_interval_ms = options
        .heartbeat_interval_ms
        .expect("fast options set the heartbeat interval");
    let mut cluster = Cluster::start(3, options);
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let leader = state.leader.expect("a leader");
    let controller = cluster.controller_id();
    let follower = cluster.follower_not_controller(&state);
    let metrics = cluster.broker(leader).metrics_address();

    // The internal listener: the Raft leader keeps a connection open to every other
    // voter, and every other broker's heartbeats come to the active controller on one
    // connection kept open between heartbeats (not one per heartbeat).
    let controller = controller.expect("an active controller");
    let voter = cluster
        .ids()
        .into_iter()
        .find(|id| *id != controller)
        .unwrap();
    let text = scrape(&cluster.broker(voter).metrics_address());
    assert!(
        value(&text, "sluice_connections_active{listener=\"internal\"}") >= 1.0,
        "node {voter}, a voter led by node {controller}:\n{text}"
    );
    let active = "sluice_connections_active{listener=\"internal\"}";
    let created = "sluice_connections_created_total{listener=\"internal\"}";
    let controller_metrics = cluster.broker(controller).metrics_address();
    let first = wait_until(&controller_metrics, "the heartbeat connections", |text| {
        value(text, active) >= 2.0
    });
    // Watch the connections created over a window of several heartbeats (a window, not a
    // condition to wait for: what is checked is that something does *not* happen). A
    // connection per heartbeat would create one per interval per other broker; a
    // reconnect after a slow heartbeat, or another request to the controller, may add a
    // few.
    std::thread::sleep(HEARTBEAT_WINDOW);
    let second = scrape(&controller_metrics);
    let other_brokers = (cluster.ids().len() - 1) as u128;
    let per_request =
        HEARTBEAT_WINDOW.as_millis() / u128::from(heartbeat_interval_ms) * other_brokers;
    let created_max = 4.0;
    assert!(
        created_max < per_request as f64 / 3.0,
        "the window must tell reuse from a connection per heartbeat"
    );
    let grown = metric_value(&second, created).unwrap_or_else(|| panic!("no {created}:\n{second}"))
        - metric_value(&first, created).unwrap_or_else(|| panic!("no {created}:\n{first}"));
    assert!(
        grown <= created_max,
        "{grown} internal connections created on the controller in {HEARTBEAT_WINDOW:?}, \
         at most {created_max} expected: heartbeats every {heartbeat_interval_ms} ms from \
         {other_brokers} other brokers reuse their connections (a connection per heartbeat \
         would create about {per_request}):\n{second}"
    );

    let before = scrape(&metrics);
    cluster.sigstop(follower);
    let mut conn = cluster.connect(leader).unwrap();
    conn.set_read_timeout(Duration::from_millis(PRODUCE_TIMEOUT_MS as u64 + 10_000))
        .unwrap();
    let request =
        produce_request(TOPIC, 0, value_batch(&["parked"]), -1).with_timeout_ms(PRODUCE_TIMEOUT_MS);
    conn.send(ApiKey::Produce, PRODUCE_VERSION, &request)
        .unwrap();
    // Parked until the leader drops the stopped follower from the ISR (LAG_MS).
    wait_for_value(&metrics, "sluice_produce_purgatory_size", 1.0);
    let response: ProduceResponse = conn
        .read_response(ApiKey::Produce, PRODUCE_VERSION)
        .unwrap_or_else(|e| panic!("no produce answer: {e}\n{}", cluster.logs()));
    let code = response.responses[0].partition_responses[0].error_code;
    cluster.sigcont(follower);
    let after = scrape(&metrics);
    assert_eq!(code, 0, "the produce is acknowledged once the ISR shrinks");
    assert_eq!(
        metric_value(&after, "sluice_produce_purgatory_size"),
        Some(0.0),
        "{after}"
    );
    let remote = delta(
        &before,
        &after,
        &series(
            "sluice_request_remote_time_seconds_sum",
            "Produce",
            PRODUCE_VERSION,
        ),
    );
    // The shrink comes LAG_MS after the follower's last fetch, which a long poll of at most
    // 500 ms puts before the stop.
    assert!(
        remote >= 0.5,
        "parked {remote} s waiting for the ISR:\n{after}"
    );
}
