//! `deploy/local-cluster.sh` driven from a test, shared by `local_cluster.rs` and
//! `prometheus_scrape.rs`.
//!
//! What it owns:
//! - [`LocalCluster`]: one base directory (a fresh temporary directory) and one block of
//!   consecutive free ports for the script (Kafka, internal and metrics listeners per
//!   broker, then Prometheus), the environment that points the script at this build's
//!   binaries, and running `up` / `status` / `down` with a deadline. Dropping it runs
//!   `down`, then SIGKILLs any process still running whose command line names its base
//!   directory (so a failed test leaves nothing behind, and nothing else is touched).
//! - [`PrometheusApi`]: instant queries against Prometheus' HTTP API.
//!
//! The script numbers ports from a base (`SLUICE_BASE_PORT` + i - 1 and so on), so the
//! ports must be consecutive: a block is picked below Linux's ephemeral range (32768+),
//! where the port-0 picks of the other tests never land, and each port is checked free by
//! binding it. The script refuses busy ports itself, and `up` retries on a new block when
//! that happens.

#![allow(dead_code)] // each test target uses its own part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_tests::{repo_root, run_program, sluice_binary, sluiced_binary, ProgramOutput};
use tempfile::TempDir;

/// Deadline of `up` (the script itself waits `SLUICE_START_TIMEOUT` = 60 s at most).
const UP_DEADLINE: Duration = Duration::from_secs(120);
/// Deadline of `down`: SIGTERM, `SLUICE_STOP_TIMEOUT` seconds, SIGKILL, per process group.
const DOWN_DEADLINE: Duration = Duration::from_secs(90);
/// Seconds the script waits for a process after SIGTERM before it SIGKILLs it.
const STOP_TIMEOUT_SECS: u32 = 20;
/// Port blocks tried before giving up.
const PORT_BLOCK_ATTEMPTS_MAX: usize = 200;
/// `up` attempts when another process takes one of the ports first.
const UP_ATTEMPTS_MAX: usize = 3;

/// The script under test.
pub fn script() -> PathBuf {
    repo_root().join("deploy/local-cluster.sh")
}

/// Where an executable is on PATH, if anywhere.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The ports of one cluster: Kafka `base..`, internal `base + n..`, metrics `base + 2n..`,
/// Prometheus `base + 3n`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub nodes: u16,
    pub base: u16,
}

impl Ports {
    pub fn client(&self, node: u16) -> u16 {
        self.base + node - 1
    }
    pub fn internal(&self, node: u16) -> u16 {
        self.base + self.nodes + node - 1
    }
    pub fn metrics(&self, node: u16) -> u16 {
        self.base + 2 * self.nodes + node - 1
    }
    pub fn prometheus(&self) -> u16 {
        self.base + 3 * self.nodes
    }
    fn count(&self) -> u16 {
        3 * self.nodes + 1
    }

    /// A block of free consecutive ports for `nodes` brokers and Prometheus.
    pub fn pick(nodes: u16) -> Ports {
        let mut seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 20);
        for _ in 0..PORT_BLOCK_ATTEMPTS_MAX {
            // xorshift: a different block each try, and per test process.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ports = Ports {
                nodes,
                base: 20_000 + (seed % 12_000) as u16,
            };
            let free = (0..ports.count())
                .all(|offset| TcpListener::bind(("127.0.0.1", ports.base + offset)).is_ok());
            if free {
                return ports;
            }
        }
        panic!(
            "no block of {} free consecutive ports in 20000..32000",
            3 * nodes + 1
        );
    }
}

/// A cluster started by `deploy/local-cluster.sh` in a temporary base directory.
pub struct LocalCluster {
    pub ports: Ports,
    /// Environment for the script beyond the ports and binaries (e.g. `SLUICE_PROMETHEUS`).
    env: Vec<(String, String)>,
    dir: TempDir,
}

impl LocalCluster {
    /// A cluster of `nodes` brokers, not started yet; `env` is added to every script run.
    pub fn new(nodes: u16, env: &[(&str, &str)]) -> LocalCluster {
        let dir = tempfile::Builder::new()
            .prefix("sluice-local-cluster-")
            .tempdir()
            .expect("create a temporary directory");
        LocalCluster {
            ports: Ports::pick(nodes),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        }
    }

    /// The script's base directory.
    pub fn base_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `bash deploy/local-cluster.sh ARGS` with this cluster's environment. The test
    /// process's `SLUICE_*` variables are not passed on.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command.arg(script()).args(args).current_dir(repo_root());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SLUICE") {
                command.env_remove(key);
            }
        }
        let ports = self.ports;
        command
            .env("SLUICE_LOCAL_DIR", self.base_dir())
            .env("SLUICE_BASE_PORT", ports.client(1).to_string())
            .env("SLUICE_INTERNAL_BASE_PORT", ports.internal(1).to_string())
            .env("SLUICE_METRICS_BASE_PORT", ports.metrics(1).to_string())
            .env("SLUICE_PROMETHEUS_PORT", ports.prometheus().to_string())
            .env("SLUICE_STOP_TIMEOUT", STOP_TIMEOUT_SECS.to_string())
            .env("SLUICED", sluiced_binary())
            .env("SLUICE", sluice_binary());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Run the script with a deadline.
    pub fn run(&self, args: &[&str], timeout: Duration) -> ProgramOutput {
        run_program(&mut self.command(args), None, timeout)
    }

    /// `up N`; panics with the script's output and the logs unless it succeeds. When
    /// another process took one of the ports first, tries again on a new block.
    pub fn up(&mut self) -> ProgramOutput {
        let nodes = self.ports.nodes.to_string();
        for attempt in 1..=UP_ATTEMPTS_MAX {
            let output = self.run(&["up", &nodes], UP_DEADLINE);
            if output.success() {
                return output;
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("ports already in use") && attempt < UP_ATTEMPTS_MAX {
                eprintln!("[local-cluster] ports taken, retrying on a new block: {stderr}");
                self.ports = Ports::pick(self.ports.nodes);
                continue;
            }
            panic!(
                "local-cluster.sh up {nodes} failed\n{}\n{}",
                output.describe(),
                self.logs()
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `down` (more arguments, e.g. `--clean`, after it); panics unless it succeeds.
    pub fn down(&self, args: &[&str]) -> ProgramOutput {
        let mut all = vec!["down"];
        all.extend_from_slice(args);
        let output = self.run(&all, DOWN_DEADLINE);
        assert!(
            output.success(),
            "local-cluster.sh down failed\n{}",
            output.describe()
        );
        output
    }

    /// Every broker's Kafka address, comma-joined.
    pub fn bootstrap(&self) -> String {
        (1..=self.ports.nodes)
            .map(|i| format!("127.0.0.1:{}", self.ports.client(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The pid files the script wrote that exist now.
    pub fn pid_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (1..=self.ports.nodes)
            .map(|i| self.node_dir(i).join("sluiced.pid"))
            .collect();
        files.push(self.base_dir().join("prometheus/prometheus.pid"));
        files.into_iter().filter(|f| f.exists()).collect()
    }

    /// The pid in a pid file.
    pub fn read_pid(file: &Path) -> u32 {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: '{}' is not a pid: {e}", file.display(), text.trim()))
    }

    /// Broker `node`'s process id, from its pid file.
    pub fn node_pid(&self, node: u16) -> u32 {
        LocalCluster::read_pid(&self.node_dir(node).join("sluiced.pid"))
    }

    pub fn node_dir(&self, node: u16) -> PathBuf {
        self.base_dir().join(format!("node-{node}"))
    }

    /// Whether `pid` is a live process started for this cluster (its command line names
    /// the base directory), so that a recycled pid is never taken for ours.
    pub fn is_ours(&self, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let needle = self.base_dir().to_string_lossy().into_owned();
        String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|arg| arg.contains(&needle))
            && !is_zombie(pid)
    }

    /// The tails of the brokers' and Prometheus' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = (1..=self.ports.nodes)
            .map(|i| self.node_dir(i).join("sluiced.log"))
            .collect();
        files.push(self.base_dir().join("prometheus/prometheus.log"));
        for file in files {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                file.display(),
                sluice_tests::read_tail(&file, 8 * 1024)
            ));
        }
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let pids: Vec<u32> = self
            .pid_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
            .collect();
        if !pids.is_empty() {
            let _ = self.run(&["down"], DOWN_DEADLINE);
        }
        // Only if `down` could not: SIGKILL what is still ours, by pid.
        for pid in pids {
            if self.is_ours(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether the process has exited but not been reaped (state Z in /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(|s| s == "Z")
        })
        .unwrap_or(false)
}

/// Poll `check` every 200 ms until it returns `Some`, at most `timeout`; `Err` with the
/// last state it described otherwise.
pub fn wait_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!("not within {timeout:?}; last: {last}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// One sample of an instant vector: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).and_then(|v| v.as_str())
    }
}

/// Prometheus' HTTP API on 127.0.0.1.
pub struct PrometheusApi {
    address: String,
}

impl PrometheusApi {
    pub fn new(port: u16) -> PrometheusApi {
        PrometheusApi {
            address: format!("127.0.0.1:{port}"),
        }
    }

    /// `/api/v1/query?query=PROMQL`: the samples of a vector result (a scalar result is one
    /// sample without labels); `Err` with Prometheus' message for a query it refuses.
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let body = sluice_tests::raw::http_get(&self.address, &path)
            .map_err(|e| format!("GET {path}: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("GET {path}: not JSON ({e}): {body}"))?;
        if json["status"] != "success" {
            return Err(format!(
                "query {promql} refused: {} {}",
                json["errorType"], json["error"]
            ));
        }
        let data = &json["data"];
        let parse_value = |pair: &serde_json::Value| -> Result<f64, String> {
            pair.get(1)
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("query {promql}: bad value in {pair}"))
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .ok_or_else(|| format!("query {promql}: no result array in {body}"))?
                .iter()
                .map(|r| {
                    Ok(Sample {
                        labels: r["metric"].as_object().cloned().unwrap_or_default(),
                        value: parse_value(&r["value"])?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: serde_json::Map::new(),
                value: parse_value(&data["result"])?,
            }]),
            other => Err(format!("query {promql}: result type {other:?}")),
        }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
