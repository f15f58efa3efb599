//! The broker an interop test runs a client library or tool against, and how such a
//! program's run is judged (it exits 0 and prints a `SUMMARY` line).

use std::process::Command;
use std::time::Duration;

use crate::{raw, repo_root, run_program, venv_python, Broker, BrokerOptions};

/// The broker an interop test talks to: a fresh `sluiced`, or an external broker named by
/// `SLUICE_INTEROP_BOOTSTRAP` (used to check the interop programs against the reference
/// Kafka of `scripts/kafka-reference.sh`).
pub enum InteropBroker {
    Sluiced(Box<Broker>),
    External(String),
}

impl InteropBroker {
    pub fn bootstrap(&self) -> String {
        match self {
            InteropBroker::Sluiced(broker) => broker.bootstrap(),
            InteropBroker::External(bootstrap) => bootstrap.clone(),
        }
    }

    /// Fetch requests served incrementally in a fetch session (KIP-227); `None` for an
    /// external broker.
    pub fn incremental_fetches(&self) -> Option<f64> {
        match self {
            InteropBroker::Sluiced(broker) => {
                let text = raw::http_get(&broker.metrics_address(), "/metrics").unwrap_or_default();
                Some(raw::metric_sum(
                    &text,
                    "sluice_fetch_session_requests_total{session=\"incremental\"}",
                ))
            }
            InteropBroker::External(_) => None,
        }
    }

    /// The broker log for failure messages (empty for an external broker).
    pub fn log(&self) -> String {
        match self {
            InteropBroker::Sluiced(broker) => broker.log(),
            InteropBroker::External(bootstrap) => {
                format!("(external broker {bootstrap}: see its own log)")
            }
        }
    }
}

/// Start the broker for an interop test (see [`InteropBroker`]).
pub fn interop_broker(options: BrokerOptions) -> InteropBroker {
    match std::env::var("SLUICE_INTEROP_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => InteropBroker::External(bootstrap),
        _ => InteropBroker::Sluiced(Box::new(Broker::start_with(options))),
    }
}

/// Run an interop program against `broker`, and panic with its output and the broker log
/// unless it exits 0 and prints a line starting with `SUMMARY`.
pub fn assert_interop_program(
    name: &str,
    command: &mut Command,
    broker: &InteropBroker,
    timeout: Duration,
) {
    let output = run_program(command, None, timeout);
    let stdout = output.stdout_lossy();
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("SUMMARY"))
        .map(str::to_string);
    if !output.success() || summary.is_none() {
        panic!(
            "{name} against {} failed\n{}\n--- broker log ---\n{}",
            broker.bootstrap(),
            output.describe(),
            broker.log()
        );
    }
    eprintln!(
        "{name}: {} ({:.1}s)",
        summary.unwrap_or_default(),
        output.elapsed.as_secs_f64()
    );
}

/// Run the Python interop program `script` (a path under the repository root) with the
/// venv's Python against the interop broker (see [`interop_broker`]), passing it
/// `--bootstrap`, and assert that it succeeds as [`assert_interop_program`] defines.
pub fn assert_python_interop_program(name: &str, script: &str, timeout: Duration) {
    let broker = interop_broker(BrokerOptions::default());
    let mut command = Command::new(venv_python());
    command
        .arg(repo_root().join(script))
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    assert_interop_program(name, &mut command, &broker, timeout);
}
