//! Choosing a partition for a record.
//!
//! - A record with a key goes where the Java client would put it:
//!   `toPositive(murmur2(key)) % partitions`, with Kafka's `Utils.murmur2` (seed
//!   `0x9747b28c`) ported bit for bit, so Sluice and Java producers agree on key placement.
//! - A record without a key goes to the topic's current *sticky* partition (KIP-480): all
//!   keyless records fill one batch, and only when that batch is closed does the topic move
//!   to another partition, picked at random. Fewer, fuller batches than round-robin.
//!   [`StickyPartition`] holds that choice; the accumulator tells it when the batch closed.
//!
//! Partition counts are positive `i32`s as on the wire; callers have checked that.

use rand::Rng;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java hashes `int length`; keys over 2 GiB cannot occur in a batch anyway.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clear the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client picks for `key` among `partition_count` partitions.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    debug_assert!(partition_count > 0);
    to_positive(murmur2(key)) % partition_count.max(1)
}

/// The sticky partition of one topic for keyless records.
#[derive(Debug, Clone, Default)]
pub struct StickyPartition {
    current: Option<i32>,
}

impl StickyPartition {
    /// The partition keyless records go to now; picks one at random if none is current.
    pub fn get(&mut self, partition_count: i32) -> i32 {
        match self.current {
            Some(p) if p < partition_count => p,
            _ => {
                let p = rand::rng().random_range(0..partition_count.max(1));
                self.current = Some(p);
                p
            }
        }
    }

    /// The batch on `partition` was closed: if it was the sticky one, move to another
    /// partition (different from the last when there is a choice).
    pub fn batch_closed(&mut self, partition: i32, partition_count: i32) {
        if self.current != Some(partition) {
            return;
        }
        self.current = if partition_count > 1 {
            // Uniform over the other partitions.
            let mut next = rand::rng().random_range(0..partition_count - 1);
            if next >= partition {
                next += 1;
            }
            Some(next)
        } else {
            None
        };
    }

    pub fn current(&self) -> Option<i32> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java_utils() {
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Tails of 0..3 bytes each take a different branch; the empty key hashes the seed.
        let hashes: Vec<i32> = (0..8).map(|n| murmur2(&b"abcdefgh"[..n])).collect();
        let distinct: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), hashes.len());
    }

    #[test]
    fn to_positive_clears_sign_bit_without_overflow() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn keyed_partition_is_stable_and_in_range() {
        for count in 1..20 {
            let p = partition_for_key(b"foobar", count);
            assert!((0..count).contains(&p));
            assert_eq!(p, to_positive(-790332482) % count);
        }
    }

    #[test]
    fn sticky_partition_stays_until_its_batch_closes() {
        let mut sticky = StickyPartition::default();
        let first = sticky.get(4);
        for _ in 0..100 {
            assert_eq!(sticky.get(4), first);
        }
        // Closing another partition's batch changes nothing.
        sticky.batch_closed((first + 1) % 4, 4);
        assert_eq!(sticky.get(4), first);
        sticky.batch_closed(first, 4);
        let second = sticky.get(4);
        assert_ne!(second, first);
        assert!((0..4).contains(&second));
    }

    #[test]
    fn sticky_partition_with_one_partition_stays_on_it() {
        let mut sticky = StickyPartition::default();
        assert_eq!(sticky.get(1), 0);
        sticky.batch_closed(0, 1);
        assert_eq!(sticky.get(1), 0);
    }
}
