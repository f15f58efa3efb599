//! The client crate reports its producer and consumer metrics through the `metrics`
//! facade: an application that installs a recorder (here the Prometheus one, as an
//! application would) sees records sent, batch sizes, queue time, failed records by error,
//! fetches and records consumed.

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sluice_client::metrics::PRODUCER_RETRIES_TOTAL;
use sluice_client::{
    Acks, Admin, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use sluice_tests::raw::{metric_sum, metric_value};
use sluice_tests::{Broker, BrokerOptions};

const RECORDS: u64 = 500;

#[test]
fn producer_and_consumer_report_their_metrics_through_the_installed_recorder() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle: PrometheusHandle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
    sluice_client::metrics::describe();

    // Batches above 1 KiB are refused by the broker (MESSAGE_TOO_LARGE), not by the client.
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--message-max-bytes".into(), "1024".into()],
        ..Default::default()
    });
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic("client-metrics", 1, 1, &[]).await.unwrap();

        let mut config = ProducerConfig::new(&bootstrap);
        config.acks = Acks::Leader;
        // Small batches stay under the broker's 1 KiB limit.
        config.batch_bytes_max = 512;
        let producer = Producer::new(config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..RECORDS {
            let record = ProducerRecord::new("client-metrics", format!("value-{i}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for delivery in deliveries {
            delivery.await.expect("small records are delivered");
        }
        let too_large = producer
            .send(ProducerRecord::new("client-metrics", vec![b'x'; 4096]))
            .await
            .unwrap();
        let error = too_large.await.expect_err("the broker refuses a 4 KiB batch");
        producer.close().await;

        let mut consumer_config = ConsumerConfig::new(&bootstrap);
        consumer_config.auto_offset_reset = OffsetReset::Earliest;
        let mut consumer = Consumer::new(consumer_config).await.unwrap();
        consumer
            .assign(vec![("client-metrics".to_string(), 0)])
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut consumed = 0;
        while consumed < RECORDS {
            assert!(Instant::now() < deadline, "consumed only {consumed} records");
            consumed += consumer.poll(Duration::from_millis(500)).await.unwrap().len() as u64;
        }

        let text = handle.render();
        let value = |name: &str| metric_sum(&text, name);
        assert_eq!(
            value("sluice_client_producer_records_sent_total"),
            (RECORDS + 1) as f64,
            "every record is sent once (the refused one too, no retry for MESSAGE_TOO_LARGE)\n{text}"
        );
        let batches = value("sluice_client_producer_batches_sent_total");
        assert!(batches >= 2.0, "{text}");
        assert_eq!(
            value("sluice_client_producer_batch_size_bytes_count"),
            batches,
            "one size sample per batch sent\n{text}"
        );
        assert!(value("sluice_client_producer_batch_size_bytes_sum") > 4096.0, "{text}");
        assert_eq!(
            value("sluice_client_producer_record_queue_time_seconds_count"),
            batches,
            "one queue-time sample per batch sent\n{text}"
        );
        assert_eq!(
            value("sluice_client_producer_errors_total{error=\"MESSAGE_TOO_LARGE\"}"),
            1.0,
            "the refused record is counted under its Kafka error ({error})\n{text}"
        );
        // No retries. The client crate does not register its counters up front (the
        // `metrics` facade creates a series on its first increment; `describe()` only
        // attaches help texts), so a counter never moved is legitimately absent: absent or
        // 0, both mean none. The name comes from the crate, so a rename cannot make a
        // missing series pass by accident.
        let retries = metric_value(&text, PRODUCER_RETRIES_TOTAL);
        assert!(
            matches!(retries, None | Some(0.0)),
            "{PRODUCER_RETRIES_TOTAL} is {retries:?}, no retry expected\n{text}"
        );
        assert_eq!(
            value("sluice_client_consumer_records_consumed_total"),
            consumed as f64,
            "{text}"
        );
        assert!(
            value("sluice_client_consumer_bytes_consumed_total") > (RECORDS * 7) as f64,
            "{text}"
        );
        let fetches = value("sluice_client_consumer_fetch_requests_total");
        assert!(fetches >= 1.0, "{text}");
        assert_eq!(
            value("sluice_client_consumer_fetch_latency_seconds_count"),
            fetches,
            "{text}"
        );
        assert!(
            text.contains("# HELP sluice_client_producer_records_sent_total"),
            "describe() attaches help texts\n{text}"
        );
    });
}
