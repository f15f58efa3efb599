//! A segment's file names: its base offset as 20 digits, then `.log`, `.index` or
//! `.timeindex`, and the cleaner's `.cleaned` and `.swap` variants.

use std::io;
use std::path::{Path, PathBuf};

use crate::storage::fs::{remove_file_if_exists, FileSystem};

pub(in crate::storage) const LOG_SUFFIX: &str = ".log";
pub(in crate::storage) const OFFSET_INDEX_SUFFIX: &str = ".index";
pub(in crate::storage) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Appended to a segment's file names while the cleaner writes its replacement.
pub(in crate::storage) const CLEANED_SUFFIX: &str = ".cleaned";
/// Appended to a cleaned segment's file names once its swap is committed.
pub(in crate::storage) const SWAP_SUFFIX: &str = ".swap";

/// The file name of a segment file: base offset as 20 digits, then the suffix.
pub(in crate::storage) fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset a segment file name encodes, if it is one with this suffix.
pub(in crate::storage) fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a segment's three files live.
#[derive(Debug, Clone)]
pub(in crate::storage) struct SegmentPaths {
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub(in crate::storage) fn new(dir: &Path, base_offset: i64) -> SegmentPaths {
        SegmentPaths::with_suffix(dir, base_offset, "")
    }

    /// The paths with `suffix` appended to each name (the cleaner's `.cleaned` and `.swap`
    /// files).
    pub(in crate::storage) fn with_suffix(
        dir: &Path,
        base_offset: i64,
        suffix: &str,
    ) -> SegmentPaths {
        let name = |kind: &str| format!("{}{suffix}", segment_file_name(base_offset, kind));
        SegmentPaths {
            log: dir.join(name(LOG_SUFFIX)),
            offset_index: dir.join(name(OFFSET_INDEX_SUFFIX)),
            time_index: dir.join(name(TIME_INDEX_SUFFIX)),
        }
    }

    /// Remove all three files; missing ones are fine. The log goes first: an index without
    /// its log is an orphan that the next open deletes, a log without its index is rebuilt.
    pub(in crate::storage) fn remove(&self, fs: &dyn FileSystem) -> io::Result<()> {
        remove_file_if_exists(fs, &self.log)?;
        remove_file_if_exists(fs, &self.offset_index)?;
        remove_file_if_exists(fs, &self.time_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_round_trip() {
        let name = segment_file_name(42, LOG_SUFFIX);
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&name, LOG_SUFFIX), Some(42));
        assert_eq!(parse_segment_file_name(&name, OFFSET_INDEX_SUFFIX), None);
        assert_eq!(parse_segment_file_name("42.log", LOG_SUFFIX), None);
    }
}
