//! Starting and stopping `sluiced` for the benchmarks: one standalone broker, or a local
//! cluster on loopback whose brokers are all controller voters (optionally one rack each),
//! with free ports, per-broker data dirs and logs, and waiting until they listen and agree
//! on membership. Also what the harness reads from a running broker from outside: its
//! Prometheus `/metrics` over HTTP, and the CPU time of it (and of this process) from /proc.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sluice_client::{Cluster, ClusterConfig};

use crate::BrokerSettings;

/// One `sluiced` the harness started; stopped (SIGTERM, then SIGKILL after 15 s) by
/// [`BrokerProcess::stop`] or when dropped, so an error does not leave it running.
pub(crate) struct BrokerProcess {
    child: Child,
    /// `--node-id` for a cluster member.
    node_id: Option<i32>,
    pub(crate) bootstrap: String,
    /// Its Prometheus listener (HOST:PORT), serving `/metrics`.
    pub(crate) metrics: String,
    /// Where its stdout and stderr go, for cluster members.
    log: Option<PathBuf>,
    stopped: bool,
}

impl BrokerProcess {
    pub(crate) fn label(&self) -> String {
        match self.node_id {
            Some(id) => format!("sluiced node {id} ({})", self.bootstrap),
            None => format!("sluiced ({})", self.bootstrap),
        }
    }

    /// Whether the process has exited, and how.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait until the Kafka listener accepts connections.
    pub(crate) fn wait_listening(&mut self, deadline: Instant) -> Result<()> {
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            if let Some(status) = self.exit_status() {
                bail!(
                    "{} exited ({status}) before listening{}",
                    self.label(),
                    self.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening{}",
                    self.label(),
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Ask it to shut down (SIGTERM to its pid) without waiting.
    fn signal_stop(&mut self) {
        if self.stopped || self.exit_status().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Wait for it to exit after [`Self::signal_stop`]; kill it if it takes over 15 s.
    fn wait_stopped(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL it (a crash) and wait until it is gone.
    pub(crate) fn kill(&mut self) {
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn stop(&mut self) {
        self.signal_stop();
        self.wait_stopped();
    }

    /// The last `lines` lines of its log, as a suffix for an error message.
    fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        format!(
            "\n--- last {} lines of {} ---\n{}",
            tail.len(),
            path.display(),
            tail.join("\n")
        )
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The brokers of a cluster the harness started.
pub(crate) struct LocalCluster {
    pub(crate) brokers: Vec<BrokerProcess>,
}

impl LocalCluster {
    /// Every broker's Kafka listener, comma separated.
    pub(crate) fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.bootstrap.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stop all brokers: signal every one first, so none waits on a peer that is already
    /// gone, then wait for each.
    pub(crate) fn stop(&mut self) {
        for broker in &mut self.brokers {
            broker.signal_stop();
        }
        for broker in &mut self.brokers {
            broker.wait_stopped();
        }
    }

    /// `error` with the end of every broker's log attached.
    pub(crate) fn with_log_tails(&self, error: anyhow::Error) -> anyhow::Error {
        let tails: String = self.brokers.iter().map(|b| b.log_tail(15)).collect();
        error.context(format!(
            "cluster benchmark failed; broker logs:{tails}\n---"
        ))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn broker_binary(settings: &BrokerSettings) -> Result<PathBuf> {
    let binary = match &settings.broker_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bench binary has no parent directory")?
            .join("sluiced"),
    };
    if !binary.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bin sluiced` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(binary)
}

/// Fail early, with the reason, if this `sluiced` cannot form a cluster.
pub(crate) fn check_cluster_support(binary: &Path) -> Result<()> {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .with_context(|| format!("running {} --help", binary.display()))?;
    let help = String::from_utf8_lossy(&output.stdout);
    if !help.contains("--controller-voters") || !help.contains("--internal-listen") {
        bail!(
            "{} has no --controller-voters/--internal-listen flags, so it cannot form a cluster: \
             rebuild it with `cargo build --release --bins` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(())
}

/// Fail early, with the reason, if this `sluiced` has no `--rack`.
pub(crate) fn check_rack_support(binary: &Path) -> Result<()> {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .with_context(|| format!("running {} --help", binary.display()))?;
    if !String::from_utf8_lossy(&output.stdout).contains("--rack") {
        bail!(
            "{} has no --rack flag, so consumers cannot read from followers: rebuild it with \
             `cargo build --release --bins` or pass --broker-bin",
            binary.display()
        );
    }
    Ok(())
}

/// Start one `sluiced` without waiting for it. `log`: file for its stdout and stderr
/// (discarded when None).
pub(crate) fn spawn_sluiced(
    binary: &Path,
    settings: &BrokerSettings,
    data_dir: &Path,
    port: u16,
    metrics_port: u16,
    node: Option<(i32, &[String])>,
    log: Option<&Path>,
) -> Result<BrokerProcess> {
    let bootstrap = format!("127.0.0.1:{port}");
    let mut command = Command::new(binary);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(&bootstrap)
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"));
    if let Some((node_id, flags)) = node {
        command
            .arg("--node-id")
            .arg(node_id.to_string())
            .args(flags);
    }
    match log {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    if let Some(extra) = &settings.broker_args {
        command.args(extra.split_whitespace());
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(BrokerProcess {
        child,
        node_id: node.map(|(id, _)| id),
        bootstrap,
        metrics: format!("127.0.0.1:{metrics_port}"),
        log: log.map(Path::to_path_buf),
        stopped: false,
    })
}

/// Start a standalone `sluiced` and wait until it listens.
pub(crate) fn start_single_broker(
    settings: &BrokerSettings,
    data_dir: &Path,
) -> Result<BrokerProcess> {
    let binary = broker_binary(settings)?;
    let ports = free_ports(2)?;
    let mut broker = spawn_sluiced(&binary, settings, data_dir, ports[0], ports[1], None, None)?;
    broker.wait_listening(Instant::now() + Duration::from_secs(30))?;
    Ok(broker)
}

/// Start `count` brokers, each a controller voter with its own data dir under `root` (and,
/// with `racks`, broker N in rack [`rack_of`]`(N)`), and wait until every one of them lists
/// all `count` brokers in its Metadata.
pub(crate) async fn start_cluster(
    binary: &Path,
    settings: &BrokerSettings,
    count: i32,
    root: &Path,
    timeout: Duration,
    racks: bool,
) -> Result<LocalCluster> {
    let size = usize::try_from(count).context("broker count")?;
    let ports = free_ports(3 * size)?;
    // (node id, Kafka port, metrics port, internal port)
    let nodes: Vec<(i32, u16, u16, u16)> = (1..=count)
        .zip(ports.chunks(3))
        .map(|(id, p)| (id, p[0], p[1], p[2]))
        .collect();
    let voters = nodes
        .iter()
        .map(|(id, _, _, internal)| format!("{id}@127.0.0.1:{internal}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cluster = LocalCluster {
        brokers: Vec::new(),
    };
    for &(id, port, metrics_port, internal) in &nodes {
        let data_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir)?;
        let log = root.join(format!("node-{id}.log"));
        let mut flags = vec![
            "--internal-listen".to_string(),
            format!("127.0.0.1:{internal}"),
            "--controller-voters".to_string(),
            voters.clone(),
        ];
        if racks {
            flags.extend(["--rack".to_string(), rack_of(id)]);
        }
        cluster.brokers.push(spawn_sluiced(
            binary,
            settings,
            &data_dir,
            port,
            metrics_port,
            Some((id, &flags)),
            Some(&log),
        )?);
    }
    let deadline = Instant::now() + timeout;
    for broker in &mut cluster.brokers {
        broker.wait_listening(deadline)?;
    }
    if let Err(error) = wait_for_brokers(&mut cluster.brokers, size, deadline).await {
        return Err(cluster.with_log_tails(error));
    }
    Ok(cluster)
}

/// The rack of broker `id` in a cluster started with racks.
pub(crate) fn rack_of(id: i32) -> String {
    format!("rack-{id}")
}

/// Poll Metadata from each broker (through a connection to that broker alone) until each
/// lists `expected` brokers, or fail at `deadline` with what each one last said.
async fn wait_for_brokers(
    brokers: &mut [BrokerProcess],
    expected: usize,
    deadline: Instant,
) -> Result<()> {
    let mut last_seen: Vec<Option<String>> = vec![Some("not asked yet".to_string()); brokers.len()];
    loop {
        for (broker, seen) in brokers.iter_mut().zip(last_seen.iter_mut()) {
            if seen.is_none() {
                continue;
            }
            if let Some(status) = broker.exit_status() {
                bail!("{} exited ({status})", broker.label());
            }
            let asked = tokio::time::timeout(
                Duration::from_secs(3),
                metadata_broker_ids(&broker.bootstrap),
            )
            .await;
            *seen = match asked {
                Ok(Ok(ids)) if ids.len() >= expected => None,
                Ok(Ok(ids)) => Some(format!("Metadata lists brokers {ids:?}")),
                Ok(Err(error)) => Some(format!("Metadata failed: {error}")),
                Err(_) => Some("Metadata got no answer within 3 s".to_string()),
            };
        }
        if last_seen.iter().all(Option::is_none) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let state: Vec<String> = brokers
                .iter()
                .zip(&last_seen)
                .filter_map(|(b, seen)| seen.as_ref().map(|s| format!("{}: {s}", b.label())))
                .collect();
            bail!(
                "the brokers did not all list {expected} brokers in time: {}",
                state.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The broker ids in the Metadata answer of the broker at `address`.
async fn metadata_broker_ids(address: &str) -> Result<Vec<i32>> {
    let mut config = ClusterConfig::new(address)?;
    config.connection.client_id = "sluice-bench".to_string();
    config.connection.connect_timeout = Duration::from_secs(2);
    config.connection.request_timeout = Duration::from_secs(2);
    let cluster = Cluster::connect(config).await?;
    Ok(cluster.metadata().brokers.keys().copied().collect())
}

/// `count` distinct free loopback ports (each listener is held until all are found).
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// CPU seconds (user + system) used so far by this process and by each broker.
pub(crate) fn cpu_seconds_used(cluster: &LocalCluster) -> Vec<Option<f64>> {
    std::iter::once(std::process::id())
        .chain(cluster.brokers.iter().map(|b| b.child.id()))
        .map(process_cpu_seconds)
        .collect()
}

/// CPU seconds (user + system, all threads) a process has used, from /proc/PID/stat
/// (Linux; clock ticks taken as 100 per second, the kernel's USER_HZ).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on:
    // utime is field 14 and stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// GET `path` from the HTTP server at `address` (HOST:PORT) and return the body; enough
/// HTTP/1.0 for the brokers' metrics endpoint.
pub(crate) async fn http_get(address: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("GET {path} from {address}: no answer in 10 s"))??;
    Ok(match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => response,
    })
}

/// The value of the Prometheus sample of metric `name` whose labels include every pair of
/// `labels`, if there is one.
pub(crate) fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let matches = labels.iter().all(|(key, value)| {
                label_text
                    .split(',')
                    .any(|l| l == format!("{key}=\"{value}\""))
            });
            if !matches {
                return None;
            }
            value.trim().parse::<f64>().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cpu_text;

    #[test]
    fn metric_samples_are_parsed_with_their_labels() {
        let text = "# TYPE sluice_fetch_bytes_out_total counter\n\
            sluice_fetch_bytes_out_total{fetcher=\"consumer\"} 1200\n\
            sluice_fetch_bytes_out_total{fetcher=\"follower\"} 34\n\
            sluice_partition_high_watermark{topic=\"t\",partition=\"2\"} 3000000\n\
            sluice_partition_high_watermark_other 5\n";
        assert_eq!(
            metric_value(
                text,
                "sluice_fetch_bytes_out_total",
                &[("fetcher", "consumer")]
            ),
            Some(1200.0)
        );
        assert_eq!(
            metric_value(
                text,
                "sluice_partition_high_watermark",
                &[("topic", "t"), ("partition", "2")]
            ),
            Some(3e6)
        );
        assert_eq!(
            metric_value(
                text,
                "sluice_partition_high_watermark",
                &[("topic", "t"), ("partition", "1")]
            ),
            None
        );
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let used = process_cpu_seconds(std::process::id()).expect("/proc/self/stat");
        assert!(used > 0.0, "{used}");
        assert_eq!(cpu_text(&[Some(1.234), None]), "1.23 / ?");
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(9).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 9);
    }
}
