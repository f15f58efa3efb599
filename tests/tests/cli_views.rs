//! The operator views of the `sluice` CLI against real clusters of 3 (or 4) brokers:
//! `cluster status` names three brokers, one controller and the quorum; `topic describe`
//! shows the high watermark and every replica's log end offset and lag, then, after kill -9
//! of a follower, the partition under-replicated with that replica unreachable (and the
//! broker fenced in `cluster status`), then healthy again after a restart; while a
//! throttled reassignment copies the log to a new replica, `topic describe` shows that
//! replica behind in offsets and in ms (no more than the age of the produce); `top` reports
//! a produce rate and byte rates while a producer runs, and (against one broker) times each
//! sample from when its requests go out, so a metrics endpoint that never answers does not
//! stretch it. The leader's `/metrics` follows the kill and restart too: under-replicated 1
//! and an ISR shrink within the lag timeout, then 0 and an ISR expand. Every step reads the
//! `--output json` form and polls it against a deadline; the table form is checked for its
//! under-replicated marks.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_client::{Acks, Admin};
use sluice_tests::raw::metric_value;
use sluice_tests::workload::{
    numbered_values, producer_config, runtime, BackgroundProducer, ProduceSpec,
};
use sluice_tests::{run_program, sluice_binary, Broker, Cluster, ClusterOptions};

const SESSION_TIMEOUT_MS: u64 = 4_000;
const LAG_MS: u64 = 2_000;
/// How long one `sluice` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a view may take to show a change.
const VIEW_DEADLINE: Duration = Duration::from_secs(30);

/// How much later than the event itself the once-a-second gauges may show it.
const METRICS_SLACK: Duration = Duration::from_secs(5);

/// A series' value in a metrics text (NaN when absent, which no comparison accepts).
fn counter(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or(f64::NAN)
}

/// Run `sluice --bootstrap B ARGS...`; its stdout, or a panic with its output.
fn sluice(cluster: &Cluster, args: &[&str]) -> String {
    let mut command = Command::new(sluice_binary());
    command
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .args(args);
    let output = run_program(&mut command, None, RUN_TIMEOUT);
    assert!(
        output.success(),
        "sluice {args:?} failed:\n{}\n{}",
        output.describe(),
        cluster.logs()
    );
    output.stdout_lossy()
}

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let text = sluice(cluster, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("sluice {args:?}: {e}:\n{text}"))
}

/// Run a view until `check` accepts its JSON, at most [`VIEW_DEADLINE`]; panics with the
/// last JSON seen and the logs.
fn wait_for_view(
    cluster: &Cluster,
    args: &[&str],
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + VIEW_DEADLINE;
    loop {
        let view = json(cluster, args);
        if check(&view) {
            return view;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {VIEW_DEADLINE:?} waiting for {what}; last `sluice {args:?}`:\n{view:#}\n{}",
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ids(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The replica entry of broker `broker` in a `topic describe` partition.
fn replica(partition: &Value, broker: i32) -> &Value {
    partition["replica_states"]
        .as_array()
        .and_then(|states| states.iter().find(|r| r["broker"] == broker))
        .unwrap_or_else(|| panic!("no replica {broker} in {partition:#}"))
}

/// Every one of `replicas` replicas holds exactly the high watermark `end` and lags by
/// nothing.
fn fully_replicated(partition: &Value, end: i64, replicas: usize) -> bool {
    partition["high_watermark"] == end
        && partition["under_replicated"] == false
        && ids(&partition["isr"]).len() == replicas
        && partition["replica_states"]
            .as_array()
            .is_some_and(|states| {
                states.len() == replicas
                    && states
                        .iter()
                        .all(|r| r["log_end_offset"] == end && r["lag"] == 0 && r["lag_ms"] == 0)
            })
}

#[test]
fn cluster_status_and_topic_describe_follow_a_follower_kill_and_restart() {
    const TOPIC: &str = "views";
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS));
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    cluster.produce_acked_batch(TOPIC, 0, numbered_values("a", 100));

    // cluster status: three unfenced brokers, one of them the controller, which leads the
    // quorum of three voters.
    let status = json(&cluster, &["cluster", "status", "--output", "json"]);
    let brokers = status["brokers"].as_array().expect("brokers");
    assert_eq!(
        brokers
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{status:#}"
    );
    assert!(
        brokers
            .iter()
            .all(|b| b["fenced"] == false && b["address"].is_string()),
        "{status:#}"
    );
    assert_eq!(status["fenced_source"], "reported", "{status:#}");
    let controllers: Vec<&Value> = brokers.iter().filter(|b| b["controller"] == true).collect();
    assert_eq!(controllers.len(), 1, "{status:#}");
    assert_eq!(controllers[0]["id"], status["controller_id"]);
    let quorum = &status["quorum"];
    assert_eq!(quorum["leader_id"], status["controller_id"], "{status:#}");
    assert!(
        quorum["leader_epoch"].as_i64().is_some_and(|e| e >= 1),
        "{status:#}"
    );
    assert!(
        quorum["high_watermark"].as_i64().is_some_and(|hw| hw > 0),
        "{status:#}"
    );
    let voters: Vec<i64> = quorum["voters"]
        .as_array()
        .expect("voters")
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(voters, vec![1, 2, 3], "{status:#}");
    assert_eq!(status["partitions"]["partitions"], 1, "{status:#}");
    assert_eq!(status["partitions"]["under_replicated"], 0, "{status:#}");
    assert_eq!(status["partitions"]["offline"], 0, "{status:#}");
    // `cluster` alone is `cluster status`; the table names the quorum.
    let table = sluice(&cluster, &["cluster"]);
    assert!(table.contains("Quorum: leader "), "{table}");

    // topic describe: the high watermark is what was produced, and every replica has it.
    let describe = ["topic", "describe", TOPIC, "--output", "json"];
    let view = wait_for_view(&cluster, &describe, "every replica at 100", |v| {
        fully_replicated(&v["partitions"][0], 100, 3)
    });
    assert_eq!(view["under_replicated_partitions"], 0);
    assert_eq!(view["configs"]["min.insync.replicas"], "2");
    let leader = state.leader.expect("a leader");
    assert_eq!(view["partitions"][0]["leader"], leader);
    assert_eq!(replica(&view["partitions"][0], leader)["leader"], true);

    // kill -9 a follower that is not the controller: within the lag timeout the partition
    // is under-replicated, that replica unreachable, the others at the new high watermark.
    let follower = cluster.follower_not_controller(&state);
    let before = cluster.scrape(leader);
    assert_eq!(
        counter(&before, "sluice_under_replicated_partitions"),
        0.0,
        "{before}"
    );
    let shrinks = counter(&before, "sluice_isr_shrinks_total");
    let expands = counter(&before, "sluice_isr_expands_total");
    cluster.kill9(follower);
    let killed_at = Instant::now();
    cluster.produce_acked_batch(TOPIC, 0, numbered_values("b", 50));
    let view = wait_for_view(&cluster, &describe, "the partition under-replicated", |v| {
        let p = &v["partitions"][0];
        p["under_replicated"] == true
            && ids(&p["isr"]).len() == 2
            && p["high_watermark"] == 150
            && replica(p, follower)["unavailable"]["kind"] == "unreachable"
            && replica(p, follower)["log_end_offset"].is_null()
            && p["replica_states"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["broker"] != follower)
                .all(|r| r["log_end_offset"] == 150 && r["lag"] == 0)
    });
    eprintln!(
        "follower {follower} killed; describe shows it unreachable, ISR {:?}, after {:?}",
        ids(&view["partitions"][0]["isr"]),
        killed_at.elapsed()
    );
    assert_eq!(view["under_replicated_partitions"], 1);
    assert_eq!(replica(&view["partitions"][0], follower)["in_isr"], false);
    // The leader's /metrics says the same: one under-replicated partition, one ISR shrink
    // (by its lag check: the session timeout is longer than the lag timeout).
    cluster.wait_for_metrics(
        &[leader],
        "the leader's under-replicated gauge and ISR shrink counter",
        Duration::from_millis(LAG_MS) + METRICS_SLACK,
        |_, text| {
            counter(text, "sluice_under_replicated_partitions") == 1.0
                && counter(text, "sluice_isr_shrinks_total") == shrinks + 1.0
                && text.contains(&format!(
                    "sluice_partition_isr_size{{topic=\"{TOPIC}\",partition=\"0\"}} 2"
                ))
        },
    );
    eprintln!(
        "the leader's metrics show the shrink {:?} after the kill",
        killed_at.elapsed()
    );
    let table = sluice(&cluster, &["topic", "describe", TOPIC]);
    assert!(
        table.lines().any(|l| l.starts_with('!')) && table.contains("unreachable"),
        "{table}"
    );
    assert!(
        table.contains("Under-replicated partitions: 1 of 1"),
        "{table}"
    );

    // Once its session expires the broker is fenced. DescribeCluster v2 still lists it, with
    // its address, flagged fenced (reported, not derived); cluster status counts the
    // under-replicated partition.
    let status = wait_for_view(
        &cluster,
        &["cluster", "status", "--output", "json"],
        "the killed broker fenced",
        |s| {
            s["brokers"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["id"] == follower && b["fenced"] == true))
        },
    );
    eprintln!(
        "cluster status shows broker {follower} fenced after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(status["fenced_source"], "reported", "{status:#}");
    let brokers = status["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 3, "{status:#}");
    for broker in brokers {
        let killed = broker["id"] == follower;
        assert_eq!(broker["fenced"], killed, "{status:#}");
        assert!(broker["address"].is_string(), "{status:#}");
    }
    assert_eq!(status["partitions"]["under_replicated"], 1, "{status:#}");

    // Restarted, it catches up and rejoins: ISR of three, no lag, not fenced.
    cluster.restart(follower);
    wait_for_view(&cluster, &describe, "every replica back at 150", |v| {
        fully_replicated(&v["partitions"][0], 150, 3)
    });
    let status = wait_for_view(
        &cluster,
        &["cluster", "status", "--output", "json"],
        "no broker fenced",
        |s| {
            s["brokers"]
                .as_array()
                .is_some_and(|b| b.len() == 3 && b.iter().all(|b| b["fenced"] == false))
        },
    );
    assert_eq!(status["partitions"]["under_replicated"], 0, "{status:#}");
    cluster.wait_for_metrics(
        &[leader],
        "the leader's gauges back to normal",
        METRICS_SLACK,
        |_, text| {
            counter(text, "sluice_under_replicated_partitions") == 0.0
                && counter(text, "sluice_isr_expands_total") == expands + 1.0
                && text.contains(&format!(
                    "sluice_partition_isr_size{{topic=\"{TOPIC}\",partition=\"0\"}} 3"
                ))
        },
    );
}

#[test]
fn top_reports_the_produce_rate_while_a_producer_runs() {
    const TOPIC: &str = "views-top";
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS));
    cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let runtime = runtime();
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            records_per_second: Some(2_000),
            ..ProduceSpec::new(
                TOPIC,
                0,
                "top",
                1_000_000,
                producer_config(&cluster.bootstrap(), Acks::All),
            )
        },
    );
    producer
        .wait_for_acked(500, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));

    let metrics: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.broker(id).metrics_address())
        .collect();
    let metrics = metrics.join(",");
    let text = sluice(
        &cluster,
        &[
            "top",
            "--iterations",
            "2",
            "--interval-ms",
            "500",
            "--metrics",
            &metrics,
            "--output",
            "json",
        ],
    );
    producer.stop();
    let refreshes: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(
        refreshes.len(),
        2,
        "--iterations 2 prints two refreshes:\n{text}"
    );
    let mut bytes_in = 0.0;
    let mut records_per_sec_max = 0.0_f64;
    for (index, refresh) in refreshes.iter().enumerate() {
        assert_eq!(refresh["iteration"], index as u64 + 1, "{refresh:#}");
        let topic = refresh["topics"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["topic"] == TOPIC))
            .unwrap_or_else(|| panic!("no {TOPIC} in {refresh:#}"));
        // Every refresh has a rate (two samples of a led partition); one refresh may see
        // 0 records/s if the producer stalls for its whole interval, so only their maximum
        // must be above 0.
        let rate = topic["records_per_sec"]
            .as_f64()
            .unwrap_or_else(|| panic!("no records/s between two samples: {refresh:#}"));
        records_per_sec_max = records_per_sec_max.max(rate);
        assert!(topic["max_lag"].is_i64(), "{refresh:#}");
        assert_eq!(topic["offline_partitions"], 0, "{refresh:#}");
        assert_eq!(
            refresh["metrics_errors"],
            serde_json::json!({}),
            "{refresh:#}"
        );
        bytes_in += topic["bytes_in_per_sec"]
            .as_f64()
            .unwrap_or_else(|| panic!("metrics were given: {refresh:#}"));
        let partition = &refresh["partitions"][0];
        assert_eq!(partition["topic"], TOPIC);
        assert_eq!(ids(&partition["replicas"]).len(), 3, "{refresh:#}");
    }
    assert!(
        records_per_sec_max > 0.0,
        "no produce rate in any refresh while producing:\n{text}"
    );
    assert!(
        bytes_in > 0.0,
        "no bytes in per second from /metrics:\n{text}"
    );
    producer
        .finish(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
}

#[test]
fn a_top_sample_is_timed_from_when_its_requests_are_sent() {
    const TOPIC: &str = "views-top-timing";
    const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
    const INTERVAL: Duration = Duration::from_secs(3);
    let broker = Broker::start();
    // A metrics endpoint that never answers: the kernel accepts the connection into the
    // listen backlog, nothing reads the request, so the scrape takes the whole timeout,
    // as a broker too slow to answer would.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/metrics", silent.local_addr().unwrap());
    runtime().block_on(async {
        let admin = Admin::new(&broker.bootstrap()).await.unwrap();
        admin.create_topic(TOPIC, 1, 1, &[]).await.unwrap();
    });
    let mut command = Command::new(sluice_binary());
    command.arg("--bootstrap").arg(broker.bootstrap()).args([
        "top",
        "--topic",
        TOPIC,
        "--metrics",
        &endpoint,
        "--timeout-ms",
        &SCRAPE_TIMEOUT.as_millis().to_string(),
        "--interval-ms",
        &INTERVAL.as_millis().to_string(),
        "--iterations",
        "1",
        "--output",
        "json",
    ]);
    let output = run_program(&mut command, None, RUN_TIMEOUT);
    assert!(
        output.success(),
        "sluice top failed:\n{}",
        output.describe()
    );
    let text = output.stdout_lossy();
    let refresh: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        refresh["metrics_errors"][&endpoint].is_string(),
        "the silent endpoint times out: {refresh:#}"
    );
    // Rates divide by the time between two samples' instants (elapsed_ms). Each sample
    // waits SCRAPE_TIMEOUT for the silent endpoint, and the refresh starts INTERVAL after
    // the first sample's instant. Taken when the requests go out, the two instants are
    // INTERVAL apart (plus the refresh's Metadata request). Taken when the slowest answer
    // came, they would be INTERVAL + SCRAPE_TIMEOUT or more apart: that wait would be in
    // the time the rates divide by, understating them.
    let elapsed = Duration::from_millis(
        refresh["elapsed_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no elapsed_ms: {refresh:#}")),
    );
    assert!(
        elapsed >= INTERVAL && elapsed < INTERVAL + SCRAPE_TIMEOUT,
        "the refresh's rates are over {elapsed:?}, though the samples were {INTERVAL:?} \
         apart and the silent endpoint held each {SCRAPE_TIMEOUT:?}: a sample's instant must \
         be taken before its requests are sent"
    );
}

#[test]
fn topic_describe_measures_a_copying_replicas_lag_in_offsets_and_ms() {
    const TOPIC: &str = "views-copy";
    const RECORDS: i64 = 2_000;
    // About 600 kB in 16 kB batches at 64 KiB/s: the new replica copies for seconds.
    let mut cluster = Cluster::start(
        4,
        ClusterOptions {
            extra_args: vec![
                "--reassignment-throttle-bytes-per-sec".into(),
                (64 * 1024).to_string(),
            ],
            ..ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS)
        },
    );
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let produced_from_ms = now_ms();
    let input: String = (0..RECORDS)
        .map(|i| format!("{i:06}-{}\n", "x".repeat(290)))
        .collect();
    let mut command = Command::new(sluice_binary());
    command.arg("--bootstrap").arg(cluster.bootstrap()).args([
        "produce",
        TOPIC,
        "--acks",
        "all",
        "--batch-bytes-max",
        "16384",
    ]);
    let produced = run_program(&mut command, Some(input.as_bytes()), RUN_TIMEOUT);
    assert!(produced.success(), "produce: {}", produced.describe());

    // Add the fourth broker as a replica; it copies the log at the throttled rate.
    let newcomer = cluster
        .ids()
        .into_iter()
        .find(|id| !before.replicas.contains(id))
        .expect("a broker without a replica");
    let mut target = before.replicas.clone();
    target.push(newcomer);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({"version": 1, "partitions": [
            {"topic": TOPIC, "partition": 0, "replicas": target}
        ]})
        .to_string(),
    )
    .unwrap();
    sluice(
        &cluster,
        &["partition", "reassign", "--plan", plan.to_str().unwrap()],
    );

    // While it copies: reachable, behind in offsets, and behind in time by the age of the
    // first record it lacks, which is no older than the produce.
    let describe = ["topic", "describe", TOPIC, "--output", "json"];
    let view = wait_for_view(&cluster, &describe, "the new replica copying", |v| {
        let p = &v["partitions"][0];
        ids(&p["replicas"]).len() == 4 && {
            let r = replica(p, newcomer);
            p["under_replicated"] == true
                && r["in_isr"] == false
                && r["lag"].as_i64().is_some_and(|lag| lag > 0)
                && r["lag_ms"].as_i64().is_some_and(|ms| ms > 0)
        }
    });
    let measured_at = now_ms();
    let r = replica(&view["partitions"][0], newcomer);
    let (end, lag, lag_ms) = (
        r["log_end_offset"].as_i64().unwrap(),
        r["lag"].as_i64().unwrap(),
        r["lag_ms"].as_i64().unwrap(),
    );
    eprintln!(
        "replica {newcomer} copying: log end {end}, lag {lag} records, {lag_ms} ms; produce began {} ms before",
        measured_at - produced_from_ms
    );
    assert_eq!(end + lag, RECORDS, "{view:#}");
    assert!(
        lag_ms <= measured_at - produced_from_ms,
        "the oldest missing record cannot be older than the produce: {lag_ms} ms > {} ms\n{view:#}",
        measured_at - produced_from_ms
    );
    let table = sluice(&cluster, &["topic", "describe", TOPIC]);
    assert!(
        table.contains("out-of-sync") && table.lines().any(|l| l.starts_with('!')),
        "{table}"
    );

    // Once copied it joins the ISR: four replicas, no lag.
    wait_for_view(&cluster, &describe, "the new replica caught up", |v| {
        fully_replicated(&v["partitions"][0], RECORDS, 4)
    });
}

/// Wall-clock milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
