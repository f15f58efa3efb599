//! Small files that must be either the old version or the new one after a crash, never a
//! mix: the data directory's offset checkpoints (one file for every partition, Kafka's
//! format: `replication-offset-checkpoint` here, the recovery point and log start offset in
//! `dir_checkpoints`), the leader-epoch checkpoint, topic metadata and the clean-shutdown
//! marker; and the single-offset files of older versions, still read.
//!
//! Protocol of [`write_atomic`]: write the whole content to a temporary file in the same
//! directory, fsync it, rename it over the final name, fsync the directory. A crash before
//! the rename leaves the old file (and a stray temp file, removed on open); after the
//! directory fsync the new one is durable.
//!
//! An offset checkpoint is text, `0\n<offset>\n` (format version, then the offset), like
//! Kafka's checkpoint files. A checkpoint that cannot be parsed is treated as absent, which
//! is always safe: a missing recovery point means "scan everything", a missing log start
//! offset means "the first segment's base offset".

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::fs::FileSystem;

/// The high watermark replication last asked storage to keep: a partition's own file,
/// written by versions before the data directory's [`REPLICATION_OFFSET_FILE`]; still read
/// when that file has no entry for the partition.
pub(super) const HIGH_WATERMARK_FILE: &str = "high-watermark-checkpoint";
/// Every hosted partition's high watermark, in the data directory (Kafka's name and format:
/// version, entry count, then `topic partition offset` per line).
pub(super) const REPLICATION_OFFSET_FILE: &str = "replication-offset-checkpoint";
/// Suffix of the temporary files [`write_atomic`] renames into place.
pub(super) const TEMP_SUFFIX: &str = ".tmp";

const OFFSET_CHECKPOINT_VERSION: &str = "0";

/// Replace `dir/name` atomically with `contents`, via `dir/temp_name`.
pub(super) fn write_atomic(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    temp_name: &str,
    contents: &[u8],
) -> io::Result<()> {
    let temp = dir.join(temp_name);
    let file = fs.open(&temp)?;
    file.truncate(0)?;
    file.write_at(contents, 0)?;
    file.sync()?;
    drop(file);
    fs.rename(&temp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// The whole content of a file, or `None` if it does not exist.
pub(super) fn read_all(fs: &dyn FileSystem, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !fs.exists(path)? {
        return Ok(None);
    }
    let file = fs.open(path)?;
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::other(format!("{} is too large", path.display())))?;
    let mut contents = vec![0u8; len];
    file.read_exact_at(&mut contents, 0)?;
    Ok(Some(contents))
}

/// Write a single-offset file as older versions did (tests build such data directories).
#[cfg(test)]
pub(super) fn write_offset(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    offset: i64,
) -> io::Result<()> {
    let contents = format!("{OFFSET_CHECKPOINT_VERSION}\n{offset}\n");
    write_atomic(
        fs,
        dir,
        name,
        &format!("{name}{TEMP_SUFFIX}"),
        contents.as_bytes(),
    )
}

/// The offset stored in `dir/name`; `None` if the file is missing or unreadable as a
/// checkpoint (logged), which callers treat as the safe default.
pub(super) fn read_offset(fs: &dyn FileSystem, dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = dir.join(name);
    let Some(contents) = read_all(fs, &path)? else {
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&contents).ok().and_then(|text| {
        let mut lines = text.lines();
        if lines.next()? != OFFSET_CHECKPOINT_VERSION {
            return None;
        }
        let offset: i64 = lines.next()?.trim().parse().ok()?;
        (offset >= 0 && lines.next().is_none()).then_some(offset)
    });
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint file");
    }
    Ok(parsed)
}

/// Write a data directory's offsets by partition (Kafka's multi-partition checkpoint
/// format) atomically to `dir/name`.
pub(super) fn write_offsets(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> io::Result<()> {
    let mut contents = format!("{OFFSET_CHECKPOINT_VERSION}\n{}\n", offsets.len());
    for ((topic, partition), offset) in offsets {
        contents.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomic(
        fs,
        dir,
        name,
        &format!("{name}{TEMP_SUFFIX}"),
        contents.as_bytes(),
    )
}

/// The offsets by partition in `dir/name`; empty if the file is missing or unreadable as a
/// checkpoint (logged): every partition then falls back to its safe default.
pub(super) fn read_offsets(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
) -> io::Result<BTreeMap<(String, i32), i64>> {
    let path = dir.join(name);
    let Some(contents) = read_all(fs, &path)? else {
        return Ok(BTreeMap::new());
    };
    let parsed = std::str::from_utf8(&contents).ok().and_then(|text| {
        let mut lines = text.lines();
        if lines.next()? != OFFSET_CHECKPOINT_VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut offsets = BTreeMap::new();
        for _ in 0..count {
            let mut fields = lines.next()?.split(' ');
            let (topic, partition, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let (partition, offset): (i32, i64) = (partition.parse().ok()?, offset.parse().ok()?);
            if fields.next().is_some() || partition < 0 || offset < 0 {
                return None;
            }
            offsets.insert((topic.to_string(), partition), offset);
        }
        lines.next().is_none().then_some(offsets)
    });
    Ok(parsed.unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint file");
        BTreeMap::new()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::StdFileSystem;

    #[test]
    fn offset_checkpoint_round_trips_and_garbage_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        assert_eq!(
            read_offset(&fs, dir.path(), HIGH_WATERMARK_FILE).unwrap(),
            None
        );
        write_offset(&fs, dir.path(), HIGH_WATERMARK_FILE, 1234).unwrap();
        assert_eq!(
            read_offset(&fs, dir.path(), HIGH_WATERMARK_FILE).unwrap(),
            Some(1234)
        );
        assert!(!dir.path().join("high-watermark-checkpoint.tmp").exists());
        std::fs::write(dir.path().join(HIGH_WATERMARK_FILE), "0\n12x\n").unwrap();
        assert_eq!(
            read_offset(&fs, dir.path(), HIGH_WATERMARK_FILE).unwrap(),
            None
        );
    }

    #[test]
    fn offsets_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        assert!(read_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE)
            .unwrap()
            .is_empty());
        let offsets = BTreeMap::from([(("a".to_string(), 0), 5), (("b-1".to_string(), 3), 0)]);
        write_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE, &offsets).unwrap();
        let text = std::fs::read_to_string(dir.path().join(REPLICATION_OFFSET_FILE)).unwrap();
        assert_eq!(text, "0\n2\na 0 5\nb-1 3 0\n");
        assert_eq!(
            read_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE).unwrap(),
            offsets
        );
    }

    /// What a crash can leave at each step of [`write_atomic`]: a partial temporary file
    /// beside the old checkpoint (before the rename), or the new one (after it). Either way
    /// a whole checkpoint is read; a torn or garbled file reads as absent, never as wrong
    /// offsets.
    #[test]
    fn offsets_checkpoint_after_a_crash_at_each_step_of_its_write() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        let old = BTreeMap::from([(("t".to_string(), 0), 7)]);
        write_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE, &old).unwrap();
        // 1. The temporary file was being written when the crash came.
        let temp = dir
            .path()
            .join(format!("{REPLICATION_OFFSET_FILE}{TEMP_SUFFIX}"));
        std::fs::write(&temp, "0\n2\nt 0 9\n").unwrap();
        assert_eq!(
            read_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE).unwrap(),
            old
        );
        // 2. Written and renamed: the new one.
        let new = BTreeMap::from([(("t".to_string(), 0), 9), (("t".to_string(), 1), 2)]);
        write_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE, &new).unwrap();
        assert!(!temp.exists());
        assert_eq!(
            read_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE).unwrap(),
            new
        );
        // A file cut short or garbled (a disk that lied): absent, not half of it.
        for torn in [
            "0\n2\nt 0 9\n",
            "0\n1\nt 0\n",
            "1\n1\nt 0 9\n",
            "0\n1\nt 0 -3\n",
        ] {
            std::fs::write(dir.path().join(REPLICATION_OFFSET_FILE), torn).unwrap();
            assert!(
                read_offsets(&fs, dir.path(), REPLICATION_OFFSET_FILE)
                    .unwrap()
                    .is_empty(),
                "{torn:?}"
            );
        }
    }
}
