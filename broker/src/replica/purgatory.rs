//! The replica manager's waiting rooms and rates: the produce and fetch purgatories
//! (requests parked until replication or new data completes them, each counted in a gauge
//! and in the request's remote time, Kafka's `DelayedOperationPurgatory` and RemoteTime) and
//! the byte rate that throttles reassignment copies.

use std::future::Future;
use std::time::{Duration, Instant};

use sluice_protocol::error::ErrorCode;

use crate::metrics as m;

/// Where a request can be parked, each with a gauge of the requests parked there now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purgatory {
    /// acks=all produces waiting for the ISR (and, with fsync durability, the fsync).
    Produce,
    /// Fetches waiting for `min_bytes` (long poll).
    Fetch,
}

/// The time a request spent parked (Kafka's RemoteTime), summed over its waits.
#[derive(Debug, Default)]
pub struct RemoteTime {
    total: Duration,
}

impl RemoteTime {
    /// Await `wait` as a parked request: counted in `purgatory`'s gauge until it finishes
    /// or is dropped (the connection closed), its duration added to this request's.
    pub async fn park<F: Future>(&mut self, purgatory: Purgatory, wait: F) -> F::Output {
        let _parked = Parked::enter(purgatory);
        let started = Instant::now();
        let output = wait.await;
        self.total += started.elapsed();
        output
    }

    pub fn total(&self) -> Duration {
        self.total
    }
}

/// One request in a purgatory's gauge, for as long as this lives.
struct Parked(metrics::Gauge);

impl Parked {
    fn enter(purgatory: Purgatory) -> Parked {
        let gauge = metrics::gauge!(match purgatory {
            Purgatory::Produce => m::PRODUCE_PURGATORY_SIZE,
            Purgatory::Fetch => m::FETCH_PURGATORY_SIZE,
        });
        gauge.increment(1.0);
        Parked(gauge)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A client's `current_leader_epoch` against this replica's (KIP-320): -1 skips the check;
/// an older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this broker's
/// metadata is behind).
pub fn check_leader_epoch(asked: i32, current: i32) -> Result<(), ErrorCode> {
    if asked < 0 || asked == current {
        Ok(())
    } else if asked < current {
        Err(ErrorCode::FencedLeaderEpoch)
    } else {
        Err(ErrorCode::UnknownLeaderEpoch)
    }
}

/// A token bucket of bytes per second (burst: one second's worth).
#[derive(Debug)]
pub struct ByteRate {
    bytes_per_sec: f64,
    state: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl ByteRate {
    pub fn new(bytes_per_sec: u64) -> ByteRate {
        ByteRate {
            bytes_per_sec: bytes_per_sec as f64,
            state: std::sync::Mutex::new((bytes_per_sec as f64, std::time::Instant::now())),
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.bytes_per_sec;
        *state = ((state.0 + refill).min(self.bytes_per_sec), now);
        state.0.max(0.0) as usize
    }

    /// Record `bytes` sent (may go into debt by the last batch).
    pub fn consume(&self, bytes: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= bytes as f64;
    }
}
