//! `deploy/local-cluster.sh` on its own (without Prometheus; `prometheus_scrape.rs` runs it
//! with): the script is valid bash; `--help` (of the script and of every command) prints
//! the whole header and argument errors create nothing; a one-broker cluster goes up,
//! reports its status, comes down and up again on its data, and comes down leaving no
//! process and, with `--clean`, no files; in a three-broker cluster a killed broker is
//! brought back by `up` and a stopped one by `start`, each alone (the others keep their
//! processes); `up` refuses busy ports and a required but missing Prometheus before it
//! starts anything; `down` and `status` without a cluster say so.

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
fn help_prints_the_whole_header_and_argument_errors_create_nothing() {
    let cluster = LocalCluster::new(1, &[]);
    // A base directory that does not exist yet: nothing below may create it.
    let base = cluster.base_dir().join("not-created");
    let run = |args: &[&str]| {
        let mut command = cluster.command(args);
        command.env("SLUICE_LOCAL_DIR", &base);
        run_program(&mut command, None, SCRIPT_DEADLINE)
    };

    let help = run(&["--help"]);
    let text = help.stdout_lossy();
    for needle in [
        "up [N]",
        "start I",
        "stop I",
        "kill I",
        "SLUICE_BASE_PORT",
        "SLUICE_METRICS_BASE_PORT",
        "SLUICE_PROMETHEUS_PORT",
        "SLUICE_LOCAL_DIR",
        "SLUICE_SHUTDOWN_TIMEOUT_MS",
        "SLUICE_STOP_TIMEOUT",
        "/proc/PID/cmdline",
    ] {
        assert!(
            help.success() && text.contains(needle),
            "--help names {needle}\n{}",
            help.describe()
        );
    }
    for command in ["up", "down", "status", "start", "stop", "kill"] {
        let output = run(&[command, "--help"]);
        assert!(
            output.success() && output.stdout_lossy() == text,
            "{command} --help prints the same header\n{}",
            output.describe()
        );
    }
    for args in [
        &["up", "foo"][..],
        &["up", "0"],
        &["status", "extra"],
        &["start"],
        &["stop", "x"],
        &["kill", "1", "2"],
        &["bogus"],
    ] {
        let output = run(args);
        assert!(
            !output.success() && !output.stderr.is_empty(),
            "{args:?} is refused\n{}",
            output.describe()
        );
    }
    // Without a cluster, start/stop/kill say so.
    let output = run(&["kill", "1"]);
    assert!(
        !output.success() && String::from_utf8_lossy(&output.stderr).contains("no cluster"),
        "{}",
        output.describe()
    );
    assert!(
        !base.exists(),
        "--help and refused arguments created {}",
        base.display()
    );
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
fn a_killed_or_stopped_broker_is_started_again_alone() {
    let mut cluster = LocalCluster::new(3, &[("SLUICE_PROMETHEUS", "0")]);
    let up = cluster.up().stdout_lossy();
    let metrics: Vec<String> = (1..=3)
        .map(|i| format!("127.0.0.1:{}", cluster.ports.metrics(i)))
        .collect();
    assert!(
        up.contains(&format!("top --metrics {}", metrics.join(","))),
        "up prints a `sluice top --metrics` line for the three brokers:\n{up}"
    );
    let pids: Vec<u32> = (1..=3).map(|i| cluster.node_pid(i)).collect();
    assert!(pids.iter().all(|&pid| cluster.is_ours(pid)), "{pids:?}");

    // kill 2: SIGKILL, and the cluster is partly up.
    let kill = cluster.run(&["kill", "2"], SCRIPT_DEADLINE);
    assert!(kill.success(), "kill 2\n{}", kill.describe());
    assert!(
        !cluster.is_ours(pids[1]),
        "broker 2 (pid {}) killed",
        pids[1]
    );
    let status = cluster.run(&["status"], SCRIPT_DEADLINE);
    assert!(
        !status.success() && status.stdout_lossy().contains("broker 2: stopped"),
        "status with broker 2 down\n{}",
        status.describe()
    );

    // `up` (its size from cluster.env) starts broker 2 alone, on its data and ports.
    let again = cluster.run(&["up"], Duration::from_secs(120));
    assert!(
        again.success() && again.stdout_lossy().contains("started again: broker 2"),
        "up on a partly running cluster\n{}\n{}",
        again.describe(),
        cluster.logs()
    );
    let pid2 = cluster.node_pid(2);
    assert!(
        pid2 != pids[1] && cluster.is_ours(pid2),
        "broker 2 runs again as pid {pid2}"
    );
    for (node, pid) in [(1, pids[0]), (3, pids[2])] {
        assert_eq!(cluster.node_pid(node), pid, "broker {node} untouched");
        assert!(cluster.is_ours(pid), "broker {node} still runs");
    }
    let log = std::fs::read_to_string(cluster.node_dir(2).join("sluiced.log")).unwrap_or_default();
    assert_eq!(
        log.matches("\n---- ").count(),
        2,
        "one log across both starts"
    );

    // stop 3 (SIGTERM), then start 3.
    let stop = cluster.run(&["stop", "3"], Duration::from_secs(90));
    assert!(
        stop.success() && stop.stdout_lossy().contains("stopped broker 3"),
        "stop 3\n{}",
        stop.describe()
    );
    assert!(
        !cluster.is_ours(pids[2]),
        "broker 3 (pid {}) stopped",
        pids[2]
    );
    let start = cluster.run(&["start", "3"], Duration::from_secs(120));
    assert!(
        start.success(),
        "start 3\n{}\n{}",
        start.describe(),
        cluster.logs()
    );
    let pid3 = cluster.node_pid(3);
    assert!(
        pid3 != pids[2] && cluster.is_ours(pid3),
        "broker 3 runs again as pid {pid3}"
    );
    assert_eq!(cluster.node_pid(1), pids[0], "broker 1 untouched");
    assert_eq!(cluster.node_pid(2), pid2, "broker 2 untouched");
    let start = cluster.run(&["start", "3"], SCRIPT_DEADLINE);
    assert!(
        start.success() && start.stdout_lossy().contains("already running"),
        "{}",
        start.describe()
    );

    // Whole again: `status` succeeds and `sluice cluster` lists the three.
    let status = cluster.run(&["status"], SCRIPT_DEADLINE);
    let out = status.stdout_lossy();
    let (_, cli) = out.split_once("$ sluice").unwrap_or((&out, ""));
    assert!(
        status.success()
            && (1..=3).all(|i| cli.contains(&format!("127.0.0.1:{}", cluster.ports.client(i)))),
        "{}",
        status.describe()
    );

    let all = [pids[0], pid2, pid3];
    let down = cluster.down(&[]);
    eprintln!("down took {:?}", down.elapsed);
    assert!(
        all.iter().all(|&pid| !cluster.is_ours(pid)),
        "down stops all three\n{}",
        down.describe()
    );
    assert!(cluster.pid_files().is_empty(), "{:?}", cluster.pid_files());
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
