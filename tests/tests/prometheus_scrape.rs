//! The operating files of `deploy/` against the real Prometheus: the scrape configs and
//! alert rules pass `promtool` (and the rules' unit tests, `deploy/alerts.test.yml`), the
//! Grafana dashboard is well-formed, every metric the dashboard and the alerts name is
//! catalogued in `docs/metrics.md`, the example `sluiced.toml` is a configuration the broker
//! accepts, and a cluster started by `deploy/local-cluster.sh up 3` is scraped by the
//! Prometheus it starts: all three targets up, the dashboard's queries accepted, and after
//! one broker is killed, `sum(sluice_under_replicated_partitions)` above zero and the
//! under-replicated alert pending; `up` then starts that broker alone again, and Prometheus
//! sees it scraped and every partition fully replicated again.
//!
//! Prometheus is a test dependency (`scripts/test.sh` installs Debian's `prometheus`,
//! which brings `promtool`): without it these tests fail, they do not skip.

mod local_cluster_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use local_cluster_support::{on_path, wait_until, LocalCluster, PrometheusApi, Sample};
use sluice_tests::{repo_root, run_program, sluice_binary, Broker, BrokerOptions};

/// How long a promtool run may take.
const PROMTOOL_DEADLINE: Duration = Duration::from_secs(60);
/// How long Prometheus gets to scrape every broker once (scrape interval 1 s).
const SCRAPE_DEADLINE: Duration = Duration::from_secs(60);
/// How long the killed broker may take to show up as under-replication: its session
/// timeout (2 s), the once-a-second gauge refresh and a scrape.
const UNDER_REPLICATION_DEADLINE: Duration = Duration::from_secs(60);

/// Broker flags for quick failure detection (see `ClusterOptions::fast`).
const FAST_FAILURE_DETECTION: &str =
    "--broker-heartbeat-interval-ms 200 --broker-session-timeout-ms 2000 --replica-lag-time-max-ms 2000";

fn deploy(file: &str) -> PathBuf {
    repo_root().join("deploy").join(file)
}

/// The path of a tool the tests need, or a failure that says how to get it.
fn require(tool: &str) -> PathBuf {
    on_path(tool).unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed: these tests need Prometheus and promtool \
             (apt-get install prometheus; ./scripts/test.sh installs it)"
        )
    })
}

/// Run promtool with `args` and panic with its output unless it succeeds.
fn promtool(args: &[&Path]) -> String {
    let mut command = Command::new(require("promtool"));
    command.args(args);
    let output = run_program(&mut command, None, PROMTOOL_DEADLINE);
    assert!(
        output.success(),
        "promtool {args:?} failed\n{}",
        output.describe()
    );
    output.stdout_lossy()
}

#[test]
fn deploy_prometheus_configs_and_alert_rules_pass_promtool() {
    for config in ["prometheus.yml", "prometheus-compose.yml"] {
        let out = promtool(&[Path::new("check"), Path::new("config"), &deploy(config)]);
        assert!(
            out.contains("SUCCESS: 1 rule files found"),
            "{config} loads the alert rules:\n{out}"
        );
    }
    let out = promtool(&[
        Path::new("check"),
        Path::new("rules"),
        &deploy("alerts.yml"),
    ]);
    assert!(out.contains("SUCCESS"), "{out}");
    // The unit tests pin when each alert fires: under-replication only after 5 minutes.
    promtool(&[
        Path::new("test"),
        Path::new("rules"),
        &deploy("alerts.test.yml"),
    ]);
}

/// The dashboard's PromQL expressions (panel targets), in order.
fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_string))
        .collect()
}

fn read_dashboard() -> serde_json::Value {
    let path = deploy("grafana/sluice.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn grafana_dashboard_is_well_formed() {
    let dashboard = read_dashboard();
    assert_eq!(dashboard["uid"], "sluice-overview");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        variables.contains(&"datasource"),
        "a datasource variable, so the dashboard works with any Prometheus: {variables:?}"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for row in [
        "Cluster health",
        "Throughput",
        "Request latency",
        "Replication: ISR and lag",
        "Storage",
        "Consumer groups",
    ] {
        assert!(rows.contains(&row), "row {row} in {rows:?}");
    }
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64()),
            "panel id repeated: {title}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title} uses the datasource variable"
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(
            !targets.is_empty()
                && targets.iter().all(|t| t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("sluice_") || e.contains("up{"))),
            "panel {title} queries Sluice metrics: {targets:?}"
        );
    }
    // Grafana's provisioning (deploy/compose.yml) loads it from where compose mounts it.
    let provisioning =
        std::fs::read_to_string(deploy("grafana/provisioning/dashboards/sluice.yml"))
            .expect("dashboard provisioning");
    assert!(provisioning.contains("/etc/grafana/dashboards"));
}

/// Every `sluice_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("sluice_") {
        let start = i + at;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(text.len() - start);
        if boundary && end > start + "sluice_".len() {
            names.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    names
}

#[test]
fn dashboard_and_alerts_use_documented_metrics() {
    let documented = metric_names(
        &std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md"),
    );
    let mut used = metric_names(&dashboard_expressions(&read_dashboard()).join("\n"));
    used.extend(metric_names(
        &std::fs::read_to_string(deploy("alerts.yml")).expect("alerts.yml"),
    ));
    assert!(used.len() > 30, "the scan finds the names: {used:?}");
    let undocumented: Vec<&String> = used
        .iter()
        .filter(|name| {
            // A histogram's series are NAME_bucket, NAME_sum and NAME_count.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !documented.contains(*name) && !documented.contains(base)
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "deploy/grafana/sluice.json or deploy/alerts.yml use metrics docs/metrics.md does not catalogue: {undocumented:?}"
    );
}

#[test]
fn example_toml_config_is_accepted_by_sluiced() {
    // The file names a 3-voter quorum on other hosts; flags (which beat the file) make it a
    // single node here, so this checks every key of the file parses (unknown keys are
    // refused) and the broker comes up with it.
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--config".into(),
            deploy("sluiced.toml").display().to_string(),
            "--controller-voters".into(),
            String::new(),
            "--internal-listen".into(),
            String::new(),
            "--advertised-listener".into(),
            String::new(),
        ],
        ..BrokerOptions::default()
    });
    let log = broker.log();
    assert!(
        log.contains("\"durability\":\"fsync\"") || log.contains("durability=fsync"),
        "the file's durability = \"fsync\" is in force:\n{log}"
    );
}

/// The samples of `promql`, or the reason there are none yet.
fn samples(api: &PrometheusApi, promql: &str) -> Result<Vec<Sample>, String> {
    let samples = api.query(promql)?;
    if samples.is_empty() {
        Err(format!("{promql}: no samples yet"))
    } else {
        Ok(samples)
    }
}

#[test]
fn local_cluster_is_scraped_and_reports_under_replication() {
    require("promtool");
    require("prometheus");
    let mut cluster = LocalCluster::new(
        3,
        &[
            ("SLUICE_PROMETHEUS", "1"),
            ("SLUICE_PROMETHEUS_SCRAPE_INTERVAL", "1s"),
            ("SLUICED_EXTRA_ARGS", FAST_FAILURE_DETECTION),
        ],
    );
    let up = cluster.up().stdout_lossy();
    let prometheus_port = cluster.ports.prometheus();
    assert!(
        up.contains(&format!("bootstrap:  {}", cluster.bootstrap()))
            && up.contains(&format!("prometheus: http://127.0.0.1:{prometheus_port}")),
        "up prints the bootstrap string and Prometheus' URL:\n{up}"
    );
    let generated = cluster.base_dir().join("prometheus/prometheus.yml");
    promtool(&[Path::new("check"), Path::new("config"), &generated]);

    // A second `up` finds the cluster running and leaves it alone.
    let again = cluster.run(&["up", "3"], Duration::from_secs(60));
    assert!(
        again.success() && again.stdout_lossy().contains("already up"),
        "{}",
        again.describe()
    );
    let status = cluster.run(&["status"], Duration::from_secs(60));
    let status_out = status.stdout_lossy();
    let (processes, cli) = status_out
        .split_once("$ sluice")
        .unwrap_or((&status_out, ""));
    assert!(
        status.success()
            && processes.matches(": running (pid").count() == 4
            && (1..=3).all(|i| cli.contains(&format!("127.0.0.1:{}", cluster.ports.client(i)))),
        "status: three brokers and Prometheus running, `sluice cluster` lists the three\n{}",
        status.describe()
    );

    let api = PrometheusApi::new(prometheus_port);
    wait_until(SCRAPE_DEADLINE, || {
        let up = samples(&api, "up{job=\"sluice\"}")?;
        let nodes: BTreeSet<&str> = up
            .iter()
            .filter(|s| s.value == 1.0)
            .filter_map(|s| s.label("node"))
            .collect();
        (nodes.len() == 3)
            .then_some(())
            .ok_or_else(|| format!("{up:?}"))
    })
    .unwrap_or_else(|e| panic!("all three brokers scraped: {e}\n{}", cluster.logs()));

    let create = run_program(
        Command::new(sluice_binary()).args([
            "--bootstrap",
            &cluster.bootstrap(),
            "topic",
            "create",
            "scraped",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ]),
        None,
        Duration::from_secs(60),
    );
    assert!(create.success(), "topic create\n{}", create.describe());

    // Before the fault: every partition led and fully replicated, as Prometheus sees it.
    wait_until(SCRAPE_DEADLINE, || {
        let led = samples(&api, "sum(sluice_partitions_led)")?[0].value;
        let under = samples(&api, "sum(sluice_under_replicated_partitions)")?[0].value;
        (led == 3.0 && under == 0.0)
            .then_some(())
            .ok_or_else(|| format!("partitions led {led}, under-replicated {under}"))
    })
    .unwrap_or_else(|e| panic!("healthy before the fault: {e}\n{}", cluster.logs()));

    // Every query of the dashboard is one Prometheus accepts (Grafana's variables filled in).
    let mut refused = Vec::new();
    for expr in dashboard_expressions(&read_dashboard()) {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$topic", ".*");
        if let Err(e) = api.query(&promql) {
            refused.push(e);
        }
    }
    assert!(
        refused.is_empty(),
        "dashboard queries refused:\n{}",
        refused.join("\n")
    );

    let victim = cluster.node_pid(3);
    let kill = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -KILL {victim}");

    wait_until(UNDER_REPLICATION_DEADLINE, || {
        let down = samples(&api, "up{job=\"sluice\",node=\"3\"}")?[0].value;
        let under = samples(&api, "sum(sluice_under_replicated_partitions)")?[0].value;
        (down == 0.0 && under > 0.0)
            .then_some(())
            .ok_or_else(|| format!("up{{node=3}} {down}, under-replicated {under}"))
    })
    .unwrap_or_else(|e| {
        panic!(
            "broker 3 down and under-replication reported after kill -9: {e}\n{}",
            cluster.logs()
        )
    });
    // The rules of deploy/alerts.yml are loaded and evaluated on the real series: the
    // under-replicated alert is pending (it fires only after 5 minutes).
    wait_until(UNDER_REPLICATION_DEADLINE, || {
        samples(
            &api,
            "ALERTS{alertname=\"SluiceUnderReplicatedPartitions\",alertstate=\"pending\"}",
        )
    })
    .unwrap_or_else(|e| panic!("pending under-replication alert: {e}\n{}", cluster.logs()));

    // `up` on the partly running cluster starts broker 3 alone (same ports and data): it
    // rejoins, and Prometheus (left running) sees it scraped and the ISRs full again.
    let others: Vec<u32> = [1, 2].iter().map(|&i| cluster.node_pid(i)).collect();
    let prometheus_pid =
        LocalCluster::read_pid(&cluster.base_dir().join("prometheus/prometheus.pid"));
    let restart = cluster.run(&["up", "3"], Duration::from_secs(120));
    assert!(
        restart.success() && restart.stdout_lossy().contains("started again: broker 3"),
        "up on a partly running cluster\n{}\n{}",
        restart.describe(),
        cluster.logs()
    );
    let restarted = cluster.node_pid(3);
    assert!(restarted != victim && cluster.is_ours(restarted));
    assert_eq!(
        [1, 2]
            .iter()
            .map(|&i| cluster.node_pid(i))
            .collect::<Vec<_>>(),
        others,
        "brokers 1 and 2 untouched"
    );
    assert_eq!(
        LocalCluster::read_pid(&cluster.base_dir().join("prometheus/prometheus.pid")),
        prometheus_pid,
        "Prometheus untouched"
    );
    wait_until(UNDER_REPLICATION_DEADLINE, || {
        let up = samples(&api, "up{job=\"sluice\",node=\"3\"}")?[0].value;
        let under = samples(&api, "sum(sluice_under_replicated_partitions)")?[0].value;
        (up == 1.0 && under == 0.0)
            .then_some(())
            .ok_or_else(|| format!("up{{node=3}} {up}, under-replicated {under}"))
    })
    .unwrap_or_else(|e| {
        panic!(
            "broker 3 back and fully replicated after up: {e}\n{}",
            cluster.logs()
        )
    });

    // `down` stops exactly the processes the script started, and all of them.
    let pids: Vec<u32> = cluster
        .pid_files()
        .iter()
        .map(|f| LocalCluster::read_pid(f))
        .collect();
    assert_eq!(pids.len(), 4, "three brokers' and Prometheus' pid files");
    let down = cluster.down(&[]);
    let still_running: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| cluster.is_ours(*p))
        .collect();
    assert!(
        still_running.is_empty(),
        "processes left after down: {still_running:?}\n{}",
        down.describe()
    );
    assert!(
        cluster.pid_files().is_empty(),
        "down removes the pid files: {:?}",
        cluster.pid_files()
    );
}
