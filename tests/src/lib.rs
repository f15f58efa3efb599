//! Harness for the end-to-end tests in `tests/tests/`: real `sluiced` processes on
//! 127.0.0.1, and the paths of the third-party clients that `scripts/test.sh` provisions.
//!
//! What it owns:
//! - Finding the workspace binaries (`sluiced`, `sluice`) next to the test executable and
//!   building them once per test process when they are missing, and the third-party tools
//!   the tests run (module `paths`).
//! - [`Broker`]: one `sluiced` child process with its own free ports, a temporary data
//!   directory (unless given one), and a log file that failure messages quote. Start-up is
//!   over only when the broker answers a Kafka ApiVersions request; Drop kills the child.
//! - [`run_program`] / [`spawn_program`]: running an external program (a Python script,
//!   `java`, `kcat`) with a deadline, its output captured to files so a chatty child can
//!   never block on a pipe; a spawned program's output can be watched while it runs.
//! - [`Cluster`] (module [`cluster`]): several brokers replicating to each other, with faults
//!   per node (kill -9, SIGTERM, SIGSTOP/SIGCONT, restart) and questions about partition
//!   leaders, ISRs and the replicas' bytes; [`workload`] has the producer and consumer the
//!   cluster tests drive through it.
//! - [`interop_broker`] (module [`interop`]): the interop tests run against a fresh `sluiced`, or, with
//!   `SLUICE_INTEROP_BOOTSTRAP=host:port`, against a broker that is already running (the
//!   reference Kafka of `scripts/kafka-reference.sh`), to check the test programs
//!   themselves. [`assert_interop_program`] runs a client program against it and checks its
//!   `SUMMARY`; [`assert_python_interop_program`] does so for the venv's Python scripts.
//!
//! Every wait here is a poll of a condition against a deadline; no sleep stands in for
//! synchronisation.

pub mod chaos;
pub mod cluster;
pub mod group_members;
pub mod interop;
pub mod kafka_cluster;
pub mod kafka_reference;
pub mod netns;
mod paths;
pub mod rack_reads;
pub mod raw;
pub mod roundtrip;
pub mod workload;

pub use cluster::{AckedBatch, Cluster, ClusterOptions, PartitionState};
pub use interop::{
    assert_interop_program, assert_python_interop_program, interop_broker, InteropBroker,
};
pub use paths::{
    faketime_library, java_classpath, repo_root, sluice_binary, sluice_netem_binary,
    sluiced_binary, sluiced_faults_binary, venv_python,
};

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long [`Broker::start`] waits for the first ApiVersions answer.
pub const BROKER_START_DEADLINE: Duration = Duration::from_secs(30);
/// How many times a start is tried with fresh ports when the child exits before it is
/// ready (another process may have taken a port between our probe and its bind).
const BROKER_START_ATTEMPTS_MAX: usize = 3;
/// How much of the broker log [`Broker::log`] returns: the tail, so that a failure
/// message stays readable.
const LOG_TAIL_BYTES_MAX: u64 = 64 * 1024;
/// Polling interval of every wait in this module.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A free TCP port on 127.0.0.1 (bound, read and released: the caller must bind it soon).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A hand-encoded ApiVersions v0 request (the version every Kafka broker answers).
fn api_versions_v0_frame(correlation_id: i32) -> Vec<u8> {
    const API_VERSIONS: i16 = 18;
    let client_id = b"sluice-tests";
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    let client_id_len = i16::try_from(client_id.len()).expect("short client id");
    body.extend_from_slice(&client_id_len.to_be_bytes());
    body.extend_from_slice(client_id);
    let len = i32::try_from(body.len()).expect("small frame");
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Whether a Kafka broker on `address` answers an ApiVersions v0 request.
pub fn answers_api_versions(address: SocketAddr, timeout: Duration) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let correlation_id = 0x51_u32 as i32;
        stream.write_all(&api_versions_v0_frame(correlation_id))?;
        let mut header = [0u8; 8];
        stream.read_exact(&mut header)?;
        let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let got = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        Ok(len >= 4 && got == correlation_id)
    };
    attempt().unwrap_or(false)
}

/// How a test wants its broker started.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Data directory; a fresh temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
    /// Flags appended after the harness's own (`--node-id`, `--data-dir`, `--listen`,
    /// `--metrics-listen`).
    pub extra_args: Vec<String>,
    /// Environment variables for the child (e.g. `RUST_LOG`). `SLUICE_*` variables of the
    /// test process are not inherited.
    pub env: Vec<(String, String)>,
    /// `--node-id`; 1 when `None`.
    pub node_id: Option<i32>,
    /// A fixed Kafka listener address (a cluster's nodes must know each other's ports before
    /// any starts). When `None`, a free port is picked, and a start that fails because
    /// another process took it is retried with new ports; a fixed address is tried once.
    pub listen: Option<SocketAddr>,
    /// A fixed metrics listener address; as `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Run the process inside this network namespace (`ip netns exec`, a node of a
    /// [`netns::NetLab`]); its listeners then need fixed addresses of that node.
    pub netns: Option<String>,
    /// The broker binary; [`sluiced_binary`] when `None` (the fault harness's power cuts
    /// run [`sluiced_faults_binary`]).
    pub binary: Option<PathBuf>,
}

/// A running `sluiced` process on 127.0.0.1. Dropping it kills the process.
pub struct Broker {
    child: Option<Child>,
    /// Whether the harness SIGSTOPped the process and has not SIGCONTed it yet.
    stopped: bool,
    options: BrokerOptions,
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Holds the log file and, unless the caller gave one, the data directory.
    _temp: TempDir,
}

impl Broker {
    /// Start a broker with default options.
    pub fn start() -> Broker {
        Broker::start_with(BrokerOptions::default())
    }

    /// Start a broker and wait until it answers ApiVersions.
    pub fn start_with(options: BrokerOptions) -> Broker {
        let fixed_ports = options.listen.is_some() || options.metrics_listen.is_some();
        let attempts = if fixed_ports {
            1
        } else {
            BROKER_START_ATTEMPTS_MAX
        };
        let mut broker = Broker::unstarted(options);
        for attempt in 1..=attempts {
            broker.pick_ports();
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(StartError::Exited(status)) if attempt < attempts => {
                    broker.append_log_line(&format!(
                        "[sluice-tests] sluiced exited during start-up ({status}); retrying with new ports"
                    ));
                }
                Err(e) => panic!("{e}\n--- sluiced log ---\n{}", broker.log()),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// A broker whose process is not started yet: its temporary directory exists, its
    /// addresses are the fixed ones of `options` (or unset until [`pick_ports`]).
    ///
    /// [`pick_ports`]: Self::pick_ports
    fn unstarted(options: BrokerOptions) -> Broker {
        let temp = tempfile::Builder::new()
            .prefix("sluice-test-")
            .tempdir()
            .expect("create a temporary directory");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let log_path = temp.path().join("sluiced.log");
        Broker {
            child: None,
            stopped: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            options,
            data_dir,
            log_path,
            _temp: temp,
        }
    }

    /// Set the listener addresses: the fixed ones of the options, else free ports.
    fn pick_ports(&mut self) {
        self.listen = self
            .options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        self.metrics_listen = self
            .options
            .metrics_listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
    }

    /// Start the process of a broker with fixed addresses without waiting for it (the
    /// nodes of a cluster may answer only once a quorum of them runs); pair with
    /// [`wait_ready`](Self::wait_ready).
    pub(crate) fn spawn_unready(options: BrokerOptions) -> Result<Broker, String> {
        let mut broker = Broker::unstarted(options);
        broker.pick_ports();
        match broker.spawn() {
            Ok(()) => Ok(broker),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Wait until the started process answers ApiVersions; an error (with the reason) if it
    /// exits first or `deadline` passes.
    pub(crate) fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        self.wait_answering(deadline).map_err(|e| e.to_string())
    }

    /// Start the process again on the same ports and data directory, after
    /// [`kill9`](Self::kill9) or [`sigterm`](Self::sigterm) (a running process is killed
    /// first).
    pub fn restart(&mut self) {
        if self.is_running() {
            self.kill9();
        }
        self.append_log_line("[sluice-tests] ---- restart ----");
        if let Err(e) = self.spawn_and_wait() {
            panic!("restart failed: {e}\n--- sluiced log ---\n{}", self.log());
        }
    }

    /// Like [`restart`](Self::restart) but without waiting for the process to answer (a
    /// node of a cluster whose other nodes are down answers only once a quorum runs);
    /// pair with [`wait_ready`](Self::wait_ready).
    pub fn restart_unready(&mut self) -> Result<(), String> {
        if self.is_running() {
            self.kill9();
        }
        self.append_log_line("[sluice-tests] ---- restart ----");
        self.spawn().map_err(|e| e.to_string())
    }

    fn append_log_line(&self, line: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.spawn()?;
        self.wait_answering(Instant::now() + BROKER_START_DEADLINE)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(StartError::Io)?;
        let log_err = log.try_clone().map_err(StartError::Io)?;
        let binary = self.options.binary.clone().unwrap_or_else(sluiced_binary);
        let mut command = netns::command_in(self.options.netns.as_deref(), binary);
        command
            .arg("--node-id")
            .arg(self.options.node_id.unwrap_or(1).to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--metrics-listen")
            .arg(self.metrics_listen.to_string())
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(key);
            }
        }
        // Plain text logs: tracing-subscriber colours its output unless NO_COLOR is set.
        command.env("NO_COLOR", "1");
        for (key, value) in &self.options.env {
            command.env(key, value);
        }
        let child = command.spawn().map_err(StartError::Io)?;
        self.child = Some(child);
        self.stopped = false;
        Ok(())
    }

    fn wait_answering(&mut self, deadline: Instant) -> Result<(), StartError> {
        loop {
            if let Some(status) = self.try_wait() {
                return Err(StartError::Exited(status));
            }
            if answers_api_versions(self.listen, Duration::from_secs(1)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(StartError::Timeout(self.listen));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("try_wait on the sluiced child")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// The Kafka bootstrap address, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.listen.to_string()
    }

    /// The Kafka listener's address.
    pub fn listen_address(&self) -> SocketAddr {
        self.listen
    }

    /// The metrics listener, `127.0.0.1:PORT`.
    pub fn metrics_address(&self) -> String {
        self.metrics_listen.to_string()
    }

    /// The Prometheus scrape URL, `http://127.0.0.1:PORT/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_listen)
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id, while a process has been started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the process and reap it (a SIGSTOPped process dies too).
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Child::kill sends SIGKILL on Unix; an error means it has already exited.
            let _ = child.kill();
            let _ = child.wait();
            remove_faketime_leftovers(child.id());
        }
        self.stopped = false;
    }

    /// SIGSTOP the process: it stays alive, its sockets keep accepting connections and
    /// buffering bytes, but it runs no code (to other nodes it looks cut off) until
    /// [`sigcont`](Self::sigcont).
    pub fn sigstop(&mut self) {
        self.signal("STOP");
        self.stopped = true;
    }

    /// SIGCONT a process stopped by [`sigstop`](Self::sigstop).
    pub fn sigcont(&mut self) {
        self.signal("CONT");
        self.stopped = false;
    }

    /// Whether the process is SIGSTOPped by the harness.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Send `kill -<name>` to the process the harness started (panics if it has exited).
    fn signal(&mut self, name: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("kill -{name}: no process started"));
        assert!(
            self.try_wait().is_none(),
            "kill -{name}: sluiced {pid} has already exited\n{}",
            self.log()
        );
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill -{name} {pid}: {e}"));
        assert!(status.success(), "kill -{name} {pid} failed: {status}");
    }

    /// Send SIGTERM (a graceful shutdown request); pair with [`wait_exit`](Self::wait_exit).
    pub fn sigterm(&mut self) {
        let pid = self.pid().expect("sigterm: no process started");
        if self.try_wait().is_some() {
            return;
        }
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill -TERM {pid}: {e}"));
        assert!(status.success(), "kill -TERM {pid} failed: {status}");
    }

    /// Wait for the process to exit, at most `timeout`; panics (with the log) if it does
    /// not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "sluiced did not exit within {timeout:?}\n--- sluiced log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The path of the broker's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The broker's stdout and stderr so far (the last 64 KiB), for failure messages.
    pub fn log(&self) -> String {
        read_tail(&self.log_path, LOG_TAIL_BYTES_MAX)
    }

    /// The last `max_bytes` of the broker's stdout and stderr.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        read_tail(&self.log_path, max_bytes)
    }

    /// The node id the process is started with.
    pub fn node_id(&self) -> i32 {
        self.options.node_id.unwrap_or(1)
    }
}

/// libfaketime (preloaded for clock jumps) keeps a shared-memory segment and a semaphore
/// per process in /dev/shm and removes them at exit, which SIGKILL skips: remove them.
fn remove_faketime_leftovers(pid: u32) {
    for name in [
        format!("faketime_shm_{pid}"),
        format!("sem.faketime_sem_{pid}"),
    ] {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug)]
enum StartError {
    Io(std::io::Error),
    Exited(ExitStatus),
    Timeout(SocketAddr),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(e) => write!(f, "cannot start sluiced: {e}"),
            StartError::Exited(status) => write!(f, "sluiced exited during start-up: {status}"),
            StartError::Timeout(address) => write!(
                f,
                "sluiced did not answer ApiVersions on {address} before its start-up deadline"
            ),
        }
    }
}

/// The last `max_bytes` of a file, lossily decoded.
pub fn read_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut prefix = String::new();
    if len > max_bytes {
        let _ = file.seek(SeekFrom::Start(len - max_bytes));
        prefix = format!("(first {} bytes not shown)\n", len - max_bytes);
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    prefix + &String::from_utf8_lossy(&bytes)
}

/// What [`run_program`] saw.
#[derive(Debug)]
pub struct ProgramOutput {
    /// The exit status, or `None` when the program was killed at its deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl ProgramOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Status, elapsed time and the (tails of the) two streams, for failure messages.
    pub fn describe(&self) -> String {
        const TAIL: usize = 32 * 1024;
        let tail = |b: &[u8]| {
            let start = b.len().saturating_sub(TAIL);
            String::from_utf8_lossy(&b[start..]).into_owned()
        };
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed at its deadline".to_string(),
        };
        format!(
            "status: {status} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.elapsed.as_secs_f64(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Run one of Kafka's command-line tools (its main class, from the 4.1.1 jars
/// [`java_classpath`] provisions) against `bootstrap`, for at most 90 s.
pub fn kafka_tool(class: &str, bootstrap: &str, args: &[&str]) -> ProgramOutput {
    run_program(
        Command::new("java")
            .arg("-cp")
            .arg(java_classpath())
            .arg(class)
            .arg("--bootstrap-server")
            .arg(bootstrap)
            .args(args),
        None,
        Duration::from_secs(90),
    )
}

/// Run `command` to completion or until `timeout`, then kill it. Its stdin is `input`
/// (or empty); stdout and stderr go to temporary files, so no pipe can fill up.
pub fn run_program(
    command: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> ProgramOutput {
    spawn_program(command, input).wait(timeout)
}

/// An external program started by [`spawn_program`], whose output a test can watch while it
/// runs. Dropping it kills the program.
pub struct RunningProgram {
    child: Option<Child>,
    started: Instant,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// Holds the output files.
    _dir: TempDir,
}

/// Start `command` with stdin `input` (or empty), stdout and stderr to temporary files.
pub fn spawn_program(command: &mut Command, input: Option<&[u8]>) -> RunningProgram {
    let dir = tempfile::Builder::new()
        .prefix("sluice-program-")
        .tempdir()
        .expect("temporary directory");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdin = match input {
        Some(bytes) => {
            let path = dir.path().join("stdin");
            std::fs::write(&path, bytes).expect("write program input");
            Stdio::from(File::open(&path).expect("open program input"))
        }
        None => Stdio::null(),
    };
    let started = Instant::now();
    let child = command
        .stdin(stdin)
        .stdout(File::create(&stdout_path).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    RunningProgram {
        child: Some(child),
        started,
        stdout_path,
        stderr_path,
        _dir: dir,
    }
}

impl RunningProgram {
    /// What the program wrote to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// Wait (at most `timeout`) until a complete stdout line starts with `prefix`, and
    /// return it; `None` if the program exits or the time runs out first.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let stdout = self.stdout_so_far();
            // Only lines that ended (a newline follows), so a half-written line never counts.
            let complete = stdout.rsplit_once('\n').map_or("", |(lines, _)| lines);
            if let Some(line) = complete.lines().find(|l| l.starts_with(prefix)) {
                return Some(line.to_string());
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Wait for the program to exit, at most `timeout` (counted from now), then kill it.
    pub fn wait(mut self, timeout: Duration) -> ProgramOutput {
        let mut child = self.child.take().expect("the program is waited for once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        ProgramOutput {
            status,
            stdout: std::fs::read(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read(&self.stderr_path).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for RunningProgram {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
