//! Configured limits refuse work visibly: a connection over `--connections-max` is closed
//! at once and counted, and the broker keeps serving the connections it has; a connection
//! idle past `--connections-max-idle-ms` (or holding half a frame that long) is closed and
//! counted.

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use sluice_tests::raw::{http_get, metric_sum, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

#[test]
fn connections_over_the_limit_are_closed_and_counted() {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--connections-max".into(), "2".into()],
        ..Default::default()
    });
    let address = broker.bootstrap();
    // The harness's readiness probe holds a slot until the broker sees it hang up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric_sum(
        &http_get(&broker.metrics_address(), "/metrics").unwrap(),
        "sluice_connections_active",
    ) > 0.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "probe connection never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut first = RawConnection::connect(&address).unwrap();
    let mut second = RawConnection::connect(&address).unwrap();
    // Make sure both are accepted and counted before the third arrives.
    for conn in [&mut first, &mut second] {
        let response: ApiVersionsResponse = conn
            .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .unwrap();
        assert_eq!(response.error_code, 0);
    }
    let mut third = RawConnection::connect(&address).unwrap();
    assert!(
        third.is_closed_by_peer(),
        "a third connection must be closed"
    );

    // The accepted connections still work.
    let response: ApiVersionsResponse = first
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap();
    assert_eq!(response.error_code, 0);

    let metrics = http_get(&broker.metrics_address(), "/metrics").unwrap();
    assert!(
        metric_sum(
            &metrics,
            "sluice_limit_exceeded_total{limit=\"connections_max\""
        ) >= 1.0,
        "{metrics}"
    );

    // Closing one frees a slot for a newcomer.
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut conn = RawConnection::connect(&address).unwrap();
        let answered = conn
            .request::<_, ApiVersionsResponse>(
                ApiKey::ApiVersions,
                3,
                &ApiVersionsRequest::default(),
            )
            .is_ok();
        if answered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `--connections-max-idle-ms`: a connection that completes no request for that long is
/// closed, also one holding half a frame (a slow client), and counted; one that keeps
/// sending requests stays open.
#[test]
fn idle_connections_and_half_frames_are_closed_and_counted() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--connections-max-idle-ms".into(), "600".into()],
        ..Default::default()
    });
    let address = broker.bootstrap();
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    let mut half = std::net::TcpStream::connect(&address).unwrap();
    // A frame length of 100 bytes, then only 3 of them.
    half.write_all(&[0, 0, 0, 100, 0, 18, 0]).unwrap();
    let mut busy = RawConnection::connect(&address).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        let response: ApiVersionsResponse = busy
            .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .expect("a connection that keeps sending requests stays open");
        assert_eq!(response.error_code, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    for (what, stream) in [("idle", &mut idle), ("half a frame", &mut half)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || read.is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
            "the {what} connection must have been closed by the broker"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = http_get(&broker.metrics_address(), "/metrics").unwrap();
        let closed = metric_sum(
            &metrics,
            "sluice_limit_exceeded_total{limit=\"connections_max_idle_ms\"}",
        );
        if closed >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle closes not counted: {closed}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
