//! Producer ids for idempotent producers (InitProducerId): never the same id twice for the
//! life of the data dir, across restarts and crashes.
//!
//! Ids are handed out in order from blocks of [`PRODUCER_ID_BLOCK_SIZE`]. Before the first id
//! of a block is handed out, the block's end is made durable in `<data_dir>/producer-ids`
//! (temp file, fsync, rename, fsync of the directory). On start the allocator resumes at the
//! persisted end, so every id handed out before a crash (kill -9 or power loss) is below the
//! first id handed out after it. A restart skips the rest of the current block; with 2^63
//! ids that costs nothing.
//!
//! The file holds one line, `next_block_start=<id>`. A file that does not parse stops the
//! broker from starting: guessing could hand out ids twice.
//!
//! Kafka allocates blocks from the controller's metadata log instead
//! (`AllocateProducerIds`); a multi-node Sluice will need the same.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Ids reserved per write of the producer-ids file.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// File name in the data dir.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";

const KEY: &str = "next_block_start=";

/// Hands out producer ids. See the module documentation.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    dir: PathBuf,
    block: Mutex<Block>,
}

/// Ids `next..end` are reserved on disk and not yet handed out.
#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

impl ProducerIdAllocator {
    /// Resume from `<data_dir>/producer-ids`, or start at 0 if there is none. Nothing is
    /// written until the first id is needed.
    pub fn open(data_dir: &Path) -> Result<ProducerIdAllocator, String> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let start = match fs::read_to_string(&path) {
            Ok(text) => parse(&text).ok_or_else(|| {
                format!(
                    "{} is corrupt (expected one line `{KEY}<non-negative id>`, found {:?}); \
                     refusing to start rather than hand out producer ids twice",
                    path.display(),
                    text.chars().take(80).collect::<String>()
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(ProducerIdAllocator {
            dir: data_dir.to_path_buf(),
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    /// A producer id never handed out before. Fails only if the next block cannot be made
    /// durable; then nothing is handed out and the next call tries again.
    ///
    /// Blocks the calling thread for one fsync every [`PRODUCER_ID_BLOCK_SIZE`] ids.
    pub fn allocate(&self) -> io::Result<i64> {
        let mut block = self
            .block
            .lock()
            .expect("the producer id allocator lock was poisoned by a panic");
        if block.next == block.end {
            let end = block
                .end
                .checked_add(PRODUCER_ID_BLOCK_SIZE)
                .ok_or_else(|| io::Error::other("producer ids are exhausted"))?;
            self.persist(end)?;
            tracing::debug!(start = block.end, end, "reserved a block of producer ids");
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        assert!(
            block.next <= block.end,
            "handed out an unreserved producer id"
        );
        Ok(id)
    }

    /// Make `next_block_start` durable: temp file, fsync, rename, fsync the directory.
    fn persist(&self, next_block_start: i64) -> io::Result<()> {
        let path = self.dir.join(PRODUCER_IDS_FILE);
        let tmp = self.dir.join(format!("{PRODUCER_IDS_FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{KEY}{next_block_start}\n").as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()
    }
}

fn parse(text: &str) -> Option<i64> {
    let value: i64 = text
        .trim_end_matches('\n')
        .strip_prefix(KEY)?
        .parse()
        .ok()?;
    (value >= 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let allocator = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| allocator.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        // A crash after handing out ids from the first block: the rest of it is skipped.
        drop(allocator);
        let allocator = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(allocator.allocate().unwrap(), PRODUCER_ID_BLOCK_SIZE);
    }

    #[test]
    fn next_block_is_reserved_before_its_first_id_is_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let allocator = ProducerIdAllocator::open(dir.path()).unwrap();
        for expected in 0..=PRODUCER_ID_BLOCK_SIZE {
            assert_eq!(allocator.allocate().unwrap(), expected);
        }
        let text = fs::read_to_string(dir.path().join(PRODUCER_IDS_FILE)).unwrap();
        assert_eq!(text, format!("{KEY}{}\n", 2 * PRODUCER_ID_BLOCK_SIZE));
        let reopened = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(reopened.allocate().unwrap(), 2 * PRODUCER_ID_BLOCK_SIZE);
    }

    #[test]
    fn nothing_is_written_until_an_id_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        ProducerIdAllocator::open(dir.path()).unwrap();
        assert!(!dir.path().join(PRODUCER_IDS_FILE).exists());
    }

    #[test]
    fn corrupt_file_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "next_block_start=", "next_block_start=-5\n", "garbage"] {
            fs::write(dir.path().join(PRODUCER_IDS_FILE), text).unwrap();
            let error = ProducerIdAllocator::open(dir.path()).unwrap_err();
            assert!(error.contains("corrupt"), "{text:?}: {error}");
        }
    }

    #[test]
    fn failed_persist_hands_out_nothing_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).unwrap();
        let allocator = ProducerIdAllocator::open(&data_dir).unwrap();
        fs::remove_dir(&data_dir).unwrap();
        assert!(allocator.allocate().is_err());
        fs::create_dir(&data_dir).unwrap();
        assert_eq!(allocator.allocate().unwrap(), 0);
    }
}
