//! What the nodes hold on disk, read straight from their data directories: partition
//! directories, a partition's log bytes and its batches, and the checks the cluster tests
//! make on them (no record where it must not be, replicas byte for byte identical).

use std::path::PathBuf;

use sluice_protocol::batch::BatchHeader;

use super::Cluster;

impl Cluster {
    /// The partition directories (`<topic>-<partition>`) in a node's data directory, sorted;
    /// directories being deleted (`...-delete`) are listed too, so a test can wait for them
    /// to go.
    pub fn partition_dirs(&self, id: i32) -> Vec<String> {
        let dir = self.data_dir(id);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("node {id}: cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                name.ends_with("-delete")
                    || name.rsplit_once('-').is_some_and(|(_, p)| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .collect();
        names.sort();
        names
    }

    /// The concatenated `*.log` segment files of a partition in a node's data directory
    /// (`<data_dir>/<topic>-<partition>/`), in base offset order.
    pub fn log_bytes(&self, id: i32, topic: &str, partition: i32) -> Vec<u8> {
        let dir = self.data_dir(id).join(format!("{topic}-{partition}"));
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("node {id}: cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "log")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        segments.sort();
        let mut bytes = Vec::new();
        for segment in segments {
            let data = std::fs::read(&segment)
                .unwrap_or_else(|e| panic!("node {id}: cannot read {}: {e}", segment.display()));
            bytes.extend_from_slice(&data);
        }
        bytes
    }

    /// Whether node `id`'s log of the partition (see [`log_bytes`](Self::log_bytes))
    /// contains `needle` anywhere, e.g. a value prefix.
    pub fn log_contains(&self, id: i32, topic: &str, partition: i32, needle: &[u8]) -> bool {
        self.log_bytes(id, topic, partition)
            .windows(needle.len())
            .any(|w| w == needle)
    }

    /// Assert that no node's log of the partition contains `needle`; a failure reads
    /// "node N still holds `what`".
    pub fn assert_no_log_contains(&self, topic: &str, partition: i32, needle: &[u8], what: &str) {
        for id in self.ids() {
            assert!(
                !self.log_contains(id, topic, partition, needle),
                "node {id} still holds {what}"
            );
        }
    }

    /// Assert that every node in `nodes` holds the same bytes for the partition up to the
    /// end of the batches below `high_watermark`, and that each holds at least that much.
    /// Returns the compared length.
    pub fn assert_replicas_identical(
        &self,
        topic: &str,
        partition: i32,
        nodes: &[i32],
        high_watermark: i64,
    ) -> usize {
        let logs: Vec<(i32, Vec<u8>)> = nodes
            .iter()
            .map(|&id| (id, self.log_bytes(id, topic, partition)))
            .collect();
        let (first_id, first) = &logs[0];
        let end = byte_position_of(first, high_watermark).unwrap_or_else(|| {
            panic!(
                "node {first_id}: its log of {topic}-{partition} ({} bytes, {}) does not reach the high watermark {high_watermark}",
                first.len(),
                describe_batches(first)
            )
        });
        for (id, log) in &logs {
            assert!(
                log.len() >= end,
                "node {id}: its log of {topic}-{partition} has {} bytes, fewer than the {end} up to the high watermark {high_watermark} ({})",
                log.len(),
                describe_batches(log)
            );
            if let Some(at) = (0..end).find(|&i| log[i] != first[i]) {
                panic!(
                    "{topic}-{partition}: node {id} differs from node {first_id} at byte {at} (of {end} up to the high watermark {high_watermark})\nnode {first_id}: {}\nnode {id}: {}",
                    describe_batches(&first[..end]),
                    describe_batches(&log[..end])
                );
            }
        }
        end
    }
}

/// The batches of a log, parsed from their headers: (base offset, last offset, leader
/// epoch, byte position), stopping at the first incomplete one.
pub fn batch_headers(log: &[u8]) -> Vec<(i64, i64, i32, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(header) = BatchHeader::parse(&log[at..]) {
        let size = header.size_bytes();
        if size < 12 || at + size > log.len() {
            break;
        }
        out.push((
            header.base_offset,
            header.last_offset(),
            header.partition_leader_epoch,
            at,
        ));
        at += size;
    }
    out
}

/// The byte position just past every batch that starts below `offset`; `None` if the log
/// does not hold every offset below it.
pub fn byte_position_of(log: &[u8], offset: i64) -> Option<usize> {
    if offset <= 0 {
        return Some(0);
    }
    let mut at = 0;
    loop {
        let header = BatchHeader::parse(&log[at..]).ok()?;
        let size = header.size_bytes();
        if size < 12 || at + size > log.len() {
            return None;
        }
        if header.base_offset >= offset {
            return Some(at);
        }
        at += size;
        if header.next_offset() >= offset {
            return Some(at);
        }
    }
}

/// A short description of a log's batches for failure messages.
pub fn describe_batches(log: &[u8]) -> String {
    let batches = batch_headers(log);
    let shown: Vec<String> = batches
        .iter()
        .rev()
        .take(8)
        .rev()
        .map(|(base, last, epoch, at)| format!("[{base}..={last} epoch {epoch} @{at}]"))
        .collect();
    format!(
        "{} batches, last: {}",
        batches.len(),
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(" ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::value_batch;

    #[test]
    fn byte_positions_follow_batch_boundaries() {
        // Offsets 0..3 and 3..5 (base offsets as a leader would stamp them).
        let first = value_batch(&["a", "b", "c"]).to_vec();
        let mut second = value_batch(&["d", "e"]).to_vec();
        second[..8].copy_from_slice(&3i64.to_be_bytes());
        let log = [first.clone(), second.clone()].concat();

        assert_eq!(byte_position_of(&log, 0), Some(0));
        assert_eq!(byte_position_of(&log, 3), Some(first.len()));
        // Inside a batch: the whole batch counts.
        assert_eq!(byte_position_of(&log, 1), Some(first.len()));
        assert_eq!(byte_position_of(&log, 5), Some(log.len()));
        assert_eq!(byte_position_of(&log, 6), None);
        assert_eq!(byte_position_of(&log[..log.len() - 1], 5), None);
        let batches = batch_headers(&log);
        assert_eq!(
            batches
                .iter()
                .map(|(base, last, _, at)| (*base, *last, *at))
                .collect::<Vec<_>>(),
            vec![(0, 2, 0), (3, 4, first.len())]
        );
    }
}
