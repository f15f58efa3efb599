//! The wall clock as Kafka's timestamps count it: milliseconds since the Unix epoch.
//!
//! One function for broker and client alike (record timestamps, segment age, lag in
//! milliseconds). Sans-IO code takes the time as an argument instead of calling this.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch; 0 if the clock is before it, `i64::MAX`
/// past the year 292 million.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_after_2020_and_does_not_go_back() {
        let first = super::now_ms();
        assert!(first > 1_577_836_800_000, "{first}");
        assert!(super::now_ms() >= first);
    }
}
