//! Clocks in milliseconds. [`now_ms`] is the wall clock as Kafka's timestamps count it
//! (milliseconds since the Unix epoch), for broker and client alike: record timestamps,
//! segment age, commit times. [`monotonic_ms`] never jumps when the wall clock is stepped
//! (NTP, an operator): for timeouts and elapsed times, which must not fire early or stall
//! because of a clock step. Sans-IO code takes the time as an argument instead of calling
//! either.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where [`monotonic_ms`] starts: far from 0, so that code keeping 0 for "never" can
/// subtract it from a monotonic time and get a very long time ago.
const MONOTONIC_START_MS: i64 = 1 << 40;

/// Wall-clock milliseconds since the Unix epoch; 0 if the clock is before it, `i64::MAX`
/// past the year 292 million.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds on a clock that only moves forward, at the real rate, whatever the wall
/// clock does; its origin is arbitrary (about 2^40 at the first call in the process). For
/// comparing with other readings of itself only.
pub fn monotonic_ms() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let elapsed = ORIGIN.get_or_init(Instant::now).elapsed().as_millis();
    MONOTONIC_START_MS.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_ms_starts_far_from_zero_and_does_not_go_back() {
        let first = super::monotonic_ms();
        assert!(first >= super::MONOTONIC_START_MS);
        assert!(super::monotonic_ms() >= first);
    }

    #[test]
    fn now_ms_is_after_2020_and_does_not_go_back() {
        let first = super::now_ms();
        assert!(first > 1_577_836_800_000, "{first}");
        assert!(super::now_ms() >= first);
    }
}
