//! The cleaner's I/O throttle (Kafka's `Throttler` under `log.cleaner.io.max.bytes.per.second`):
//! a pass charges every byte it reads and writes; at most every [`CHECK_INTERVAL`] the
//! throttle compares the bytes charged since the last check with the elapsed time and, if
//! they exceed the rate, sleeps until they do not. A pass runs on a blocking thread of its
//! own, so sleeping there holds up nothing else.
//!
//! Invariant: over any stretch longer than the check interval, the bytes charged divided by
//! the time (sleeps included) stay at or below the rate, give or take one check interval's
//! charges.

use std::time::{Duration, Instant};

/// How often the observed rate is compared with the limit (Kafka's 300 ms).
const CHECK_INTERVAL: Duration = Duration::from_millis(300);

/// Bytes-per-second limit of one cleaning pass; `u64::MAX` means none.
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_sec: u64,
    period_start: Instant,
    charged: u64,
}

impl Throttle {
    pub(crate) fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bytes_per_sec,
            period_start: Instant::now(),
            charged: 0,
        }
    }

    /// Count `bytes` of I/O; sleeps if the rate since the last check is over the limit.
    pub(crate) fn charge(&mut self, bytes: u64) {
        if self.bytes_per_sec == u64::MAX {
            return;
        }
        self.charged = self.charged.saturating_add(bytes);
        let elapsed = self.period_start.elapsed();
        if let Some(pause) = pause_for(self.charged, elapsed, self.bytes_per_sec) {
            if !pause.is_zero() {
                tracing::trace!(?pause, "log cleaner throttled");
                std::thread::sleep(pause);
            }
            self.period_start = Instant::now();
            self.charged = 0;
        }
    }
}

/// At a check (`elapsed` at least the check interval): how long to pause so that `charged`
/// bytes over the period are at most `bytes_per_sec` (zero if they already are). `None`
/// before the check interval has passed.
fn pause_for(charged: u64, elapsed: Duration, bytes_per_sec: u64) -> Option<Duration> {
    if elapsed < CHECK_INTERVAL {
        return None;
    }
    let allowed_after = Duration::from_secs_f64(charged as f64 / bytes_per_sec.max(1) as f64);
    Some(allowed_after.saturating_sub(elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_check_before_the_interval() {
        assert_eq!(pause_for(u64::MAX / 2, Duration::from_millis(299), 1), None);
    }

    #[test]
    fn pauses_until_the_bytes_fit_the_rate() {
        // 3 MB in 0.5 s at 1 MB/s: the period must last 3 s, so 2.5 s more.
        let pause = pause_for(3_000_000, Duration::from_millis(500), 1_000_000).unwrap();
        assert_eq!(pause, Duration::from_millis(2_500));
        // Under the rate: no pause, but the period restarts.
        let pause = pause_for(100_000, Duration::from_millis(500), 1_000_000).unwrap();
        assert!(pause.is_zero());
    }

    #[test]
    fn a_throttled_pass_takes_as_long_as_its_bytes_at_the_rate() {
        // 40 KB at 100 KB/s: at least 0.4 s minus one unchecked interval's worth.
        let mut throttle = Throttle::new(100_000);
        let start = Instant::now();
        for _ in 0..40 {
            throttle.charge(1_000);
        }
        // Charges stop before a check can see the last of them; one more charge after the
        // interval makes the check that accounts for all of them.
        std::thread::sleep(CHECK_INTERVAL);
        throttle.charge(0);
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
        // Unlimited does not even count.
        let mut unlimited = Throttle::new(u64::MAX);
        unlimited.charge(u64::MAX);
        assert_eq!(unlimited.charged, 0);
    }
}
