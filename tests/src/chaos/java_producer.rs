//! The workload's idempotent producers: Kafka's own `VerifiableProducer` (kafka-tools
//! 4.1.1, the Java client) with `enable.idempotence=true`, acks=all and unbounded retries,
//! so a send retried across a leader change must be written once. It prints one JSON line
//! per outcome; each becomes a send event: `producer_send_success` acknowledged at its
//! partition and offset, `producer_send_error` unknown (its partition is not reported:
//! -1). Its values are `<prefix>.<n>`, kept in the history as `prefix << 48 | n`
//! ([`value_of`]). The producer writes a partition's records in the order it sent them
//! (`n` order) even when a retried request's acknowledgement comes after later ones', so
//! each send carries `n` as its `order` and the checker holds every pair of its records in a
//! partition to it; the line's time stands for the acknowledgement.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::history::{Event, SendOutcome};
use crate::java_classpath;

/// Value prefixes (and process numbers) of the Java producers start here.
pub const JAVA_PRODUCER_BASE: u32 = 3_000;

/// A value as the history keeps it: `<prefix>.<n>` (a Java producer's) as
/// `prefix << 48 | n`, a plain number as itself; 0 if it is neither.
pub fn value_of(text: &str) -> u64 {
    match text.split_once('.') {
        Some((prefix, n)) => match (prefix.parse::<u64>(), n.parse::<u64>()) {
            (Ok(prefix), Ok(n)) => (prefix << 48) | n,
            _ => 0,
        },
        None => text.parse().unwrap_or(0),
    }
}

/// A running VerifiableProducer and the thread turning its lines into events.
pub(super) struct JavaProducer {
    child: Child,
    reader: Option<JoinHandle<()>>,
    _config: tempfile::NamedTempFile,
}

impl JavaProducer {
    /// Start producer `index` on `topic` at about `per_second` records a second.
    pub(super) fn start(
        bootstrap: &str,
        topic: &str,
        index: u32,
        per_second: u32,
        events: Arc<Mutex<Vec<Event>>>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> JavaProducer {
        let process = JAVA_PRODUCER_BASE + index;
        let config = tempfile::NamedTempFile::new().expect("producer config");
        std::fs::write(
            config.path(),
            "enable.idempotence=true\nacks=all\nretries=2147483647\n\
             max.in.flight.requests.per.connection=5\nlinger.ms=0\n\
             request.timeout.ms=5000\ndelivery.timeout.ms=60000\nretry.backoff.ms=100\n",
        )
        .expect("write the producer config");
        let mut child = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
            .arg(java_classpath())
            .arg("org.apache.kafka.tools.VerifiableProducer")
            .args([
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--acks",
                "-1",
            ])
            .args(["--throughput", &per_second.to_string()])
            .args(["--value-prefix", &process.to_string()])
            .arg("--producer.config")
            .arg(config.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Java VerifiableProducer");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(event) = event_of(process, &line, clock()) {
                    events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                }
            }
        });
        JavaProducer {
            child,
            reader: Some(reader),
            _config: config,
        }
    }

    /// SIGTERM it (it closes its producer, flushing what it can), kill it if it has not
    /// exited 30 s later, and wait for the rest of its output.
    pub(super) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for JavaProducer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The send event one VerifiableProducer output line stands for, if any.
fn event_of(process: u32, line: &str, time_ms: u64) -> Option<Event> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let value = value_of(json.get("value")?.as_str()?);
    let outcome = match json.get("name")?.as_str()? {
        "producer_send_success" => SendOutcome::Acked {
            offset: json.get("offset")?.as_i64()?,
        },
        "producer_send_error" => SendOutcome::Unknown,
        _ => return None,
    };
    let partition = match outcome {
        SendOutcome::Acked { .. } => i32::try_from(json.get("partition")?.as_i64()?).ok()?,
        _ => -1,
    };
    Some(Event::Send {
        process,
        partition,
        value,
        invoked_ms: time_ms,
        completed_ms: time_ms,
        outcome,
        order: Some(value & ((1 << 48) - 1)),
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiable_producer_lines_become_send_events() {
        let line = r#"{"timestamp":1,"name":"producer_send_success","key":null,"value":"3000.17","offset":42,"topic":"chaos","partition":2}"#;
        assert_eq!(
            event_of(3_000, line, 9),
            Some(Event::Send {
                process: 3_000,
                partition: 2,
                value: (3_000 << 48) | 17,
                invoked_ms: 9,
                completed_ms: 9,
                outcome: SendOutcome::Acked { offset: 42 },
                order: Some(17),
                error: None,
            })
        );
        let error = r#"{"name":"producer_send_error","exception":"x","message":"y","topic":"chaos","key":null,"value":"3000.18"}"#;
        assert!(matches!(
            event_of(3_000, error, 9),
            Some(Event::Send {
                partition: -1,
                outcome: SendOutcome::Unknown,
                ..
            })
        ));
        assert_eq!(event_of(3_000, r#"{"name":"startup_complete"}"#, 9), None);
        assert_eq!(value_of("12"), 12);
        assert_eq!(value_of("not a number"), 0);
    }
}
