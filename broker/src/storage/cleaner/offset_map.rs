//! The offset map: for every key in the dirty part of a log, the offset of its latest
//! record (Kafka's `SkimpyOffsetMap`).
//!
//! Kafka stores a 16-byte MD5 of each key to bound memory, accepting that two keys with the
//! same hash lose records. This map stores the key bytes themselves, so it is exact, and
//! bounds its memory instead by counting each entry's key bytes plus a fixed overhead
//! against `bytes_max`: [`OffsetMap::try_insert_batch`] refuses a batch whose keys would
//! not fit, and the pass then cleans only up to where the map stopped.

use std::collections::{HashMap, HashSet};

/// Bytes an entry costs beyond its key: the hash table slot (boxed key pointer and length,
/// offset) and the allocation's bookkeeping, rounded up.
pub(super) const ENTRY_OVERHEAD_BYTES: usize = 48;

#[derive(Debug)]
pub(crate) struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    bytes_max: usize,
    /// The last offset of the last batch whose keys were all inserted; `None` while empty.
    /// Records past it are not covered by the map (the cleaner keeps them).
    covered_to: Option<i64>,
}

impl OffsetMap {
    pub(super) fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            bytes_max,
            covered_to: None,
        }
    }

    /// Record every `(key, offset)` of one batch that ends at `last_offset`, or none of
    /// them if they would not fit in the budget (returns `false`: the map is full).
    pub(super) fn try_insert_batch<'a>(
        &mut self,
        keys: impl Iterator<Item = (&'a [u8], i64)> + Clone,
        last_offset: i64,
    ) -> bool {
        let mut new_keys: HashSet<&[u8]> = HashSet::new();
        let new_bytes: usize = keys
            .clone()
            .filter(|(key, _)| !self.latest.contains_key(*key) && new_keys.insert(key))
            .map(|(key, _)| key.len() + ENTRY_OVERHEAD_BYTES)
            .sum();
        if self.bytes + new_bytes > self.bytes_max {
            return false;
        }
        for (key, offset) in keys {
            match self.latest.get_mut(key) {
                Some(latest) => *latest = (*latest).max(offset),
                None => {
                    self.latest.insert(key.into(), offset);
                }
            }
        }
        self.bytes += new_bytes;
        self.covered_to = Some(
            self.covered_to
                .map_or(last_offset, |to| to.max(last_offset)),
        );
        true
    }

    /// Note that everything up to `last_offset` was seen (a batch without keys).
    pub(super) fn cover_to(&mut self, last_offset: i64) {
        self.covered_to = Some(
            self.covered_to
                .map_or(last_offset, |to| to.max(last_offset)),
        );
    }

    /// The offset of the latest record with `key`, if the map has it.
    pub(super) fn latest_offset(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// The last offset the map covers.
    pub(crate) fn covered_to(&self) -> Option<i64> {
        self.covered_to
    }

    pub(crate) fn len(&self) -> usize {
        self.latest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_keeps_the_latest_offset_and_refuses_a_batch_that_does_not_fit() {
        let mut map = OffsetMap::new(2 * (ENTRY_OVERHEAD_BYTES + 1));
        let first: [(&[u8], i64); 2] = [(b"a", 0), (b"a", 1)];
        assert!(map.try_insert_batch(first.into_iter(), 1));
        assert_eq!(map.latest_offset(b"a"), Some(1));
        // An old key costs nothing more.
        assert!(map.try_insert_batch([(&b"a"[..], 2), (&b"b"[..], 3)].into_iter(), 3));
        assert_eq!(map.len(), 2);
        assert!(!map.try_insert_batch([(&b"c"[..], 4)].into_iter(), 4));
        assert_eq!(map.latest_offset(b"c"), None);
        assert_eq!(map.covered_to(), Some(3));
        map.cover_to(9);
        assert_eq!(map.covered_to(), Some(9));
    }
}
