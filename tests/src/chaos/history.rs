//! A run's history: what the workload did and saw, and when the nemesis acted, one event per
//! line of JSON so that a failed run can be checked again (and read by a person) without
//! running it again.
//!
//! The model is Jepsen's Kafka "queue": producers append unique values to partitions and
//! learn an offset (acknowledged), a failure (certainly not written) or nothing certain;
//! consumers read (offset, value) pairs in order; groups commit offsets. Times are
//! milliseconds since the run started, on the harness's monotonic clock.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Acknowledged (acks=all) at this offset.
    Acked { offset: i64 },
    /// Refused with an error that guarantees nothing was written.
    Failed,
    /// Timed out or the connection broke: it may or may not have been written.
    Unknown,
}

impl SendOutcome {
    /// The offset it was acknowledged at, if it was.
    pub fn acked_offset(self) -> Option<i64> {
        match self {
            SendOutcome::Acked { offset } => Some(offset),
            SendOutcome::Failed | SendOutcome::Unknown => None,
        }
    }
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A producer sent `value` (unique in the run) to `partition`.
    Send {
        process: u32,
        partition: i32,
        value: u64,
        invoked_ms: u64,
        completed_ms: u64,
        outcome: SendOutcome,
        /// For a producer that keeps its writes to a partition in the order it sent them
        /// whatever the order of their acknowledgements (an idempotent producer retrying
        /// with pipelined requests): the send's place in that order. The checker then
        /// holds every pair of its writes to that order, not to their times.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<u64>,
        /// Why a send that was not acknowledged failed, as the client said (for reading a
        /// history; the checker does not use it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A consumer polled these records of `partition`, in the order it got them.
    Read {
        process: u32,
        partition: i32,
        time_ms: u64,
        records: Vec<(i64, u64)>,
    },
    /// A consumer moved its position on `partition` on purpose (a new assignment, a seek
    /// after a rebalance): its next read may start before its last one ended.
    Rewind {
        process: u32,
        partition: i32,
        time_ms: u64,
    },
    /// A group's commit of `offset` for `partition` was acknowledged.
    Commit {
        process: u32,
        group: String,
        partition: i32,
        offset: i64,
        completed_ms: u64,
    },
    /// The nemesis began or ended a fault.
    Fault {
        time_ms: u64,
        /// The fault's kind, e.g. `partition-leader`, `kill`, `pause`, `clock`.
        nemesis: String,
        /// True when the fault begins, false when it is healed.
        start: bool,
        detail: String,
    },
}

/// Write `events` as JSON lines.
pub fn write_history(out: &mut impl Write, events: &[Event]) -> std::io::Result<()> {
    for event in events {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Read a history written by [`write_history`]; a line that does not parse is an error
/// naming its number.
pub fn read_history(input: impl BufRead) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", number + 1))?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_survives_its_json_lines() {
        let events = vec![
            Event::Send {
                process: 1,
                partition: 0,
                value: 7,
                invoked_ms: 10,
                completed_ms: 12,
                outcome: SendOutcome::Acked { offset: 3 },
                order: None,
                error: None,
            },
            Event::Read {
                process: 2,
                partition: 0,
                time_ms: 20,
                records: vec![(3, 7)],
            },
            Event::Fault {
                time_ms: 5,
                nemesis: "kill".into(),
                start: true,
                detail: "node 2".into(),
            },
        ];
        let mut bytes = Vec::new();
        write_history(&mut bytes, &events).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with(r#"{"type":"send","process":1"#), "{text}");
        assert_eq!(read_history(&bytes[..]).unwrap(), events);
        assert!(read_history(&b"{\"type\":\"nope\"}\n"[..])
            .unwrap_err()
            .starts_with("line 1:"));
    }
}
