//! One cleaning pass's reading and writing: the offset map built over the dirty segments,
//! and each segment rewritten keeping only the records that survive (see the rules in the
//! `cleaner` module documentation).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::{self, BatchHeader, LOG_OVERHEAD};
use sluice_protocol::records::decode_records;

use super::offset_map::OffsetMap;
use super::records::{self, filterable, validate_stored, Rebuild, RecordView, DELETE_HORIZON_FLAG};
use super::{swap, CleanStats, SegmentSnapshot, Throttle};
use crate::storage::fs::{FileSystem, StorageFile};
use crate::storage::segment::Segment;
use crate::storage::StorageError;

/// Call `visit(header, bytes)` for every batch of a sealed segment's log, in order.
pub(super) fn for_each_batch(
    segment: &SegmentSnapshot,
    mut visit: impl FnMut(&BatchHeader, &[u8]) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let mut position = 0;
    let mut bytes = Vec::new();
    while position < segment.size_bytes {
        let size = batch_size_at(&*segment.log, position, segment.size_bytes)?;
        bytes.resize(size, 0);
        segment.log.read_exact_at(&mut bytes, position)?;
        let header = validate_stored(&bytes).map_err(|error| {
            StorageError::Corrupt(format!(
                "segment {} at position {position}: {error}",
                segment.base_offset
            ))
        })?;
        if !visit(&header, &bytes)? {
            return Ok(());
        }
        position += size as u64;
    }
    Ok(())
}

/// The size of the batch at `position`, checked to end by `end` before anything is
/// allocated for it.
fn batch_size_at(log: &dyn StorageFile, position: u64, end: u64) -> Result<usize, StorageError> {
    let mut prefix = [0u8; LOG_OVERHEAD];
    log.read_exact_at(&mut prefix, position)?;
    let size = batch::batch_size_from_prefix(&prefix)?;
    if position + size as u64 > end {
        return Err(StorageError::Corrupt(format!(
            "the batch at position {position} runs past the segment's end {end}"
        )));
    }
    Ok(size)
}

/// Every `(key, offset)` of a batch's records at or past `from`: read directly from an
/// uncompressed batch, decompressed (`sluice_protocol::records`) from a compressed one.
/// Control batches have none.
fn keys_of(
    header: &BatchHeader,
    bytes: &[u8],
    from: i64,
) -> Result<Vec<(Bytes, i64)>, StorageError> {
    if header.is_control() {
        return Ok(Vec::new());
    }
    let keyed: Vec<(Bytes, i64)> = if filterable(header)? {
        records::records(bytes)?
            .iter()
            .filter_map(|record| {
                let key = record.key?;
                Some((
                    Bytes::copy_from_slice(key),
                    header.base_offset + i64::from(record.offset_delta),
                ))
            })
            .collect()
    } else {
        decode_records(&Bytes::copy_from_slice(bytes))?
            .into_iter()
            .filter_map(|record| Some((record.key?, record.offset)))
            .collect()
    };
    Ok(keyed
        .into_iter()
        .filter(|(_, offset)| *offset >= from)
        .collect())
}

/// The offset map over the records at or past `first_dirty` in `dirty` (the dirty
/// segments, in order), filled until its budget would be exceeded (`map_full`).
pub(crate) fn build_offset_map(
    dirty: &[SegmentSnapshot],
    first_dirty: i64,
    bytes_max: usize,
    (stats, throttle): (&mut CleanStats, &mut Throttle),
) -> Result<OffsetMap, StorageError> {
    let mut map = OffsetMap::new(bytes_max);
    for segment in dirty {
        let mut full = false;
        for_each_batch(segment, |header, bytes| {
            throttle.charge(bytes.len() as u64);
            if header.last_offset() < first_dirty {
                return Ok(true);
            }
            let keys = keys_of(header, bytes, first_dirty)?;
            let keys = keys.iter().map(|(key, offset)| (&key[..], *offset));
            full = !map.try_insert_batch(keys, header.last_offset());
            Ok(!full)
        })?;
        if full {
            stats.map_full = true;
            return Ok(map);
        }
        // A compaction gap at the segment's end is covered too (Kafka's
        // `updateLatestOffset(nextSegmentStartOffset - 1)`).
        map.cover_to(segment.next_offset - 1);
    }
    Ok(map)
}

/// The offset map of a pass with nothing new to clean, only expired tombstones to remove:
/// no keys, covering the cleaned part (below `first_dirty`), whose records are each the
/// latest of their key already.
pub(crate) fn clean_part_map(first_dirty: i64) -> OffsetMap {
    let mut map = OffsetMap::new(0);
    map.cover_to(first_dirty - 1);
    map
}

/// For every producer id in `segments`, the last offset of its last batch there: Kafka
/// keeps that batch (emptied if need be) so the producer's last sequence number survives.
/// `None` if there are more than `producers_max` producer ids: then every batch with a
/// producer id counts as its producer's last (kept, if emptied, as an empty batch).
pub(crate) fn producer_last_batches(
    segments: &[SegmentSnapshot],
    producers_max: usize,
) -> Result<Option<HashMap<i64, i64>>, StorageError> {
    let mut last = HashMap::new();
    for segment in segments {
        let mut position = 0;
        while position < segment.size_bytes {
            let size = batch_size_at(&*segment.log, position, segment.size_bytes)?;
            let mut header = [0u8; batch::BATCH_HEADER_BYTES];
            segment.log.read_exact_at(&mut header, position)?;
            let header = BatchHeader::parse(&header)?;
            if header.producer_id >= 0 {
                last.insert(header.producer_id, header.last_offset());
                if last.len() > producers_max {
                    return Ok(None);
                }
            }
            position += size as u64;
        }
    }
    Ok(Some(last))
}

/// What the rewrite of every segment of a pass shares.
pub(crate) struct Filter<'a> {
    map: &'a OffsetMap,
    /// For every producer id, the last offset of its last batch (see `producer_last_batches`).
    producer_last: Option<&'a HashMap<i64, i64>>,
    now_ms: i64,
    delete_retention_ms: u64,
}

impl<'a> Filter<'a> {
    pub(crate) fn new(
        (map, producer_last): (&'a OffsetMap, Option<&'a HashMap<i64, i64>>),
        now_ms: i64,
        delete_retention_ms: u64,
    ) -> Filter<'a> {
        Filter {
            map,
            producer_last,
            now_ms,
            delete_retention_ms,
        }
    }
}

impl Filter<'_> {
    /// Whether a record survives (Kafka's `Cleaner.shouldRetainRecord`, keeping records
    /// without a key).
    fn keeps(&self, header: &BatchHeader, record: &RecordView<'_>, stats: &mut CleanStats) -> bool {
        let offset = header.base_offset + i64::from(record.offset_delta);
        if self.map.covered_to().is_none_or(|covered| offset > covered) {
            return true;
        }
        let Some(key) = record.key else {
            return true;
        };
        if self
            .map
            .latest_offset(key)
            .is_some_and(|latest| latest > offset)
        {
            return false;
        }
        if record.has_value {
            return true;
        }
        let expired =
            header.attributes & DELETE_HORIZON_FLAG != 0 && self.now_ms >= header.base_timestamp;
        if expired {
            stats.tombstones_removed += 1;
        }
        !expired
    }

    /// The batch to write for `bytes` (`None`: drop it). `last_in_segment`: the output
    /// segment's last batch is always kept, emptied if need be, so that the segment still
    /// ends where its successor begins. A control batch is kept whole; a compressed one is
    /// filtered as the uncompressed batch it stands for, and what it keeps compressed
    /// again with its codec (an emptied one is Kafka's empty batch, uncompressed).
    fn filter_batch(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        last_in_segment: bool,
        stats: &mut CleanStats,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        if header.is_control() {
            return Ok(Some(bytes.to_vec()));
        }
        let codec = header.compression()?;
        if filterable(header)? {
            return self.filter_records(header, bytes, last_in_segment, stats);
        }
        let plain = records::decompressed(bytes, codec)?;
        let plain_header = BatchHeader::parse(&plain)?;
        let Some(out) = self.filter_records(&plain_header, &plain, last_in_segment, stats)? else {
            return Ok(None);
        };
        if out == plain {
            return Ok(Some(bytes.to_vec()));
        }
        if BatchHeader::parse(&out)?.records_count == 0 {
            return Ok(Some(out));
        }
        stats.compressed_batches_rewritten += 1;
        records::compressed(&out, codec).map(Some)
    }

    /// [`Filter::filter_batch`] of an uncompressed data batch.
    fn filter_records(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        last_in_segment: bool,
        stats: &mut CleanStats,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let records = records::records(bytes)?;
        stats.records_read += records.len() as u64;
        let kept: Vec<RecordView<'_>> = records
            .iter()
            .filter(|record| self.keeps(header, record, stats))
            .copied()
            .collect();
        stats.records_removed += (records.len() - kept.len()) as u64;
        let has_horizon = header.attributes & DELETE_HORIZON_FLAG != 0;
        let keeps_tombstones = kept.iter().any(|record| !record.has_value);
        let needs_horizon = !has_horizon && keeps_tombstones;
        if keeps_tombstones {
            let horizon = if has_horizon {
                header.base_timestamp
            } else {
                self.now_ms.saturating_add(self.delete_retention_ms as i64)
            };
            stats.delete_horizon = Some(stats.delete_horizon.map_or(horizon, |h| h.min(horizon)));
        }
        if kept.len() == records.len() && !needs_horizon {
            return Ok(Some(bytes.to_vec()));
        }
        if kept.is_empty() {
            let producer_last = header.producer_id >= 0
                && self.producer_last.is_none_or(|last| {
                    last.get(&header.producer_id) == Some(&header.last_offset())
                });
            if !(last_in_segment || producer_last) {
                stats.batches_removed += 1;
                return Ok(None);
            }
            // Kafka's empty batch: no codec, no delete horizon.
            let attributes = header.attributes & !(DELETE_HORIZON_FLAG | 0x7);
            let base_timestamp = header.base_timestamp;
            let empty = Rebuild {
                base_timestamp,
                attributes,
            };
            return records::rebuild(bytes, &[], empty).map(Some);
        }
        let rebuild = if needs_horizon {
            Rebuild {
                base_timestamp: self.now_ms.saturating_add(self.delete_retention_ms as i64),
                attributes: header.attributes | DELETE_HORIZON_FLAG,
            }
        } else {
            Rebuild {
                base_timestamp: header.base_timestamp,
                attributes: header.attributes,
            }
        };
        records::rebuild(bytes, &kept, rebuild).map(Some)
    }
}

/// Write the cleaned copy of `group` (consecutive segments, see `group_by_size`) as one
/// segment, at the first one's base offset, to its `.cleaned` files and fsync them.
/// Returns whether it differs from the group (if not, the copy is discarded).
pub(crate) fn rewrite_group(
    (fs, dir): (&Arc<dyn FileSystem>, &Path),
    group: &[SegmentSnapshot],
    index_interval_bytes: u32,
    filter: &mut Filter<'_>,
    (stats, throttle): (&mut CleanStats, &mut Throttle),
) -> Result<bool, StorageError> {
    let base_offset = group[0].base_offset;
    let mut cleaned = Segment::create_cleaned(&**fs, dir, base_offset, index_interval_bytes)?;
    let mut changed = group.len() > 1;
    let mut result = Ok(());
    for (i, segment) in group.iter().enumerate() {
        let mut position = 0;
        result = for_each_batch(segment, |header, bytes| {
            position += bytes.len() as u64;
            stats.bytes_read += bytes.len() as u64;
            throttle.charge(bytes.len() as u64);
            let last = i + 1 == group.len() && position == segment.size_bytes;
            let Some(out) = filter.filter_batch(header, bytes, last, stats)? else {
                changed = true;
                return Ok(true);
            };
            changed |= out != bytes;
            let out_header = validate_stored(&out)?;
            cleaned.write_batch(&out, &out_header)?;
            stats.bytes_written += out.len() as u64;
            throttle.charge(out.len() as u64);
            Ok(true)
        });
        if result.is_err() {
            break;
        }
    }
    let result = result.and_then(|()| {
        cleaned.maybe_append_time_entry()?;
        let files = cleaned.files();
        for file in [&files.log, &files.offset_index, &files.time_index] {
            file.sync()?;
        }
        Ok(())
    });
    drop(cleaned);
    if result.is_err() || !changed {
        swap::discard(&**fs, dir, base_offset)?;
    }
    result.map(|()| changed)
}
