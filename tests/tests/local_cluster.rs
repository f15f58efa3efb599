//! `deploy/local-cluster.sh` on its own (without Prometheus; `prometheus_scrape.rs` runs it
//! with): the script is valid bash, a one-broker cluster goes up, reports its status, comes
//! down and up again on its data, and comes down leaving no process and, with `--clean`, no
//! files; `up` refuses busy ports and
//! a required but missing Prometheus before it starts anything; `down` and `status`
//! without a cluster say so.

mod local_cluster_support;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use local_cluster_support::{on_path, script, LocalCluster};
use sluice_tests::run_program;

const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn script_is_valid_bash_and_shellcheck_clean() {
    let output = run_program(
        Command::new("bash").arg("-n").arg(script()),
        None,
        SCRIPT_DEADLINE,
    );
    assert!(output.success(), "bash -n\n{}", output.describe());
    // shellcheck is a developer tool, not provisioned by scripts/test.sh.
    match on_path("shellcheck") {
        Some(shellcheck) => {
            let output = run_program(
                Command::new(shellcheck).arg(script()),
                None,
                SCRIPT_DEADLINE,
            );
            assert!(output.success(), "shellcheck\n{}", output.describe());
        }
        None => eprintln!("shellcheck is not installed: only bash -n checked"),
    }
}

#[test]
fn one_broker_without_prometheus_goes_up_and_down_clean() {
    let mut cluster = LocalCluster::new(1, &[("SLUICE_PROMETHEUS", "0")]);
    let up = cluster.up().stdout_lossy();
    assert!(
        up.contains("1 brokers (1 controller voters)") && !up.contains("prometheus: http"),
        "one voter, no Prometheus:\n{up}"
    );
    let pid = cluster.node_pid(1);
    assert!(cluster.is_ours(pid), "broker 1 runs as pid {pid}");

    let status = cluster.run(&["status"], SCRIPT_DEADLINE);
    let out = status.stdout_lossy();
    let (processes, cli) = out.split_once("$ sluice").unwrap_or((&out, ""));
    assert!(
        status.success()
            && processes.contains(&format!("broker 1: running (pid {pid})"))
            && cli.contains(&format!("127.0.0.1:{}", cluster.ports.client(1))),
        "status: broker 1 running, and `sluice cluster` lists it\n{}",
        status.describe()
    );

    // Down keeping the data, up again on it.
    cluster.down(&[]);
    assert!(!cluster.is_ours(pid), "broker 1 (pid {pid}) stopped");
    assert!(cluster.node_dir(1).join("data").is_dir(), "data kept");
    let again = cluster.up().stdout_lossy();
    assert!(!again.contains("already up"), "started again:\n{again}");
    let pid = cluster.node_pid(1);
    assert!(cluster.is_ours(pid), "broker 1 runs again as pid {pid}");
    let log = std::fs::read_to_string(cluster.node_dir(1).join("sluiced.log")).unwrap_or_default();
    assert!(
        log.matches("---- ").count() >= 2,
        "one log across both starts:\n{log}"
    );

    cluster.down(&["--clean"]);
    assert!(!cluster.is_ours(pid), "broker 1 (pid {pid}) stopped");
    assert!(
        !cluster.base_dir().exists(),
        "down --clean removes {}",
        cluster.base_dir().display()
    );
    let status = cluster.run(&["status"], SCRIPT_DEADLINE);
    assert!(
        !status.success() && status.stdout_lossy().contains("no cluster"),
        "{}",
        status.describe()
    );
}

#[test]
fn up_refuses_busy_ports_before_starting_anything() {
    let cluster = LocalCluster::new(2, &[("SLUICE_PROMETHEUS", "0")]);
    let busy = cluster.ports.metrics(2);
    let _holder = TcpListener::bind(("127.0.0.1", busy)).expect("hold the port");
    let output = cluster.run(&["up", "2"], SCRIPT_DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.success()
            && stderr.contains("ports already in use")
            && stderr.contains(&busy.to_string()),
        "{}",
        output.describe()
    );
    assert!(cluster.pid_files().is_empty(), "nothing started");
}

#[test]
fn up_fails_when_required_prometheus_is_missing() {
    let cluster = LocalCluster::new(
        1,
        &[
            ("SLUICE_PROMETHEUS", "1"),
            ("PROMETHEUS", "/nonexistent/prometheus"),
        ],
    );
    let output = cluster.run(&["up", "1"], SCRIPT_DEADLINE);
    assert!(
        !output.success()
            && String::from_utf8_lossy(&output.stderr).contains("no prometheus binary"),
        "{}",
        output.describe()
    );
    assert!(cluster.pid_files().is_empty(), "nothing started");
}

#[test]
fn down_and_status_without_a_cluster() {
    let cluster = LocalCluster::new(1, &[]);
    let down = cluster.down(&[]);
    assert!(
        down.stdout_lossy().contains("nothing to stop"),
        "{}",
        down.describe()
    );
    let status = cluster.run(&["status"], SCRIPT_DEADLINE);
    assert!(
        !status.success() && status.stdout_lossy().contains("no cluster"),
        "{}",
        status.describe()
    );
}
