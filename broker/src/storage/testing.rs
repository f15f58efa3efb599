//! Test helpers: valid, uncompressed RecordBatch v2 batches built by hand, so storage tests
//! depend on nothing but the batch layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use sluice_protocol::batch::{self, BatchHeader, Batches, BATCH_HEADER_BYTES, LOG_OVERHEAD};

use super::dir_checkpoints::DirCheckpoints;
use super::fs::{FileSystem, StdFileSystem};
use super::{Durability, LogConfig, PartitionLog, ShutdownState};

/// Small limits so that tests cross index entries and segments with a few batches.
pub(crate) fn test_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 20,
        segment_ms_max: u64::MAX,
        index_interval_bytes: 64,
        retention_ms: None,
        retention_bytes: None,
        batch_bytes_max: 1 << 20,
        durability: Durability::Replicated,
        cleaner: super::CleanerConfig::default(),
    }
}

pub(crate) fn std_fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFileSystem)
}

pub(crate) fn open_log(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: &LogConfig,
    shutdown: ShutdownState,
) -> PartitionLog {
    let checkpoints = DirCheckpoints::open(Arc::clone(fs), dir).unwrap();
    PartitionLog::open(
        Arc::clone(fs),
        dir.to_path_buf(),
        (Arc::new(checkpoints), ("test".into(), 0)),
        Arc::default(),
        config.clone(),
        shutdown,
    )
    .unwrap()
}

/// Every batch in `bytes`, which must be whole, valid batches back to back.
pub(crate) fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    Batches::new(bytes)
        .map(|item| {
            let (_, bytes) = item.expect("whole batches");
            batch::validate(bytes).expect("valid batch")
        })
        .collect()
}

/// `batch` as append stores it at `base_offset` with leader epoch `epoch`.
pub(crate) fn stamped(batch: &[u8], base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    batch::stamp(&mut bytes, base_offset, epoch);
    bytes
}

/// The segment log files in `dir`, in offset order.
pub(crate) fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A batch of `records` records with timestamps `first_timestamp`, `first_timestamp + 1`, ...
/// and distinct values of `value_bytes` bytes each (derived from `seed` and the record's
/// index). Its base offset is 0; append stamps the real one.
pub(crate) fn batch(records: i32, first_timestamp: i64, value_bytes: usize, seed: u64) -> BytesMut {
    assert!(records >= 1);
    let mut body = Vec::new();
    for i in 0..records {
        let mut record = vec![0u8]; // attributes
        put_varint(&mut record, i64::from(i)); // timestampDelta
        put_varint(&mut record, i64::from(i)); // offsetDelta
        put_varint(&mut record, -1); // key: null
        let mut value = format!("{seed}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'a' + (seed % 26) as u8);
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(&value);
        put_varint(&mut record, 0); // headers
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let mut batch = BytesMut::with_capacity(BATCH_HEADER_BYTES + body.len());
    batch.put_i64(0); // baseOffset
    batch.put_i32((BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32); // batchLength
    batch.put_i32(-1); // partitionLeaderEpoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, filled below
    batch.put_i16(0); // attributes: no compression, CreateTime
    batch.put_i32(records - 1); // lastOffsetDelta
    batch.put_i64(first_timestamp); // baseTimestamp
    batch.put_i64(first_timestamp + i64::from(records) - 1); // maxTimestamp
    batch.put_i64(-1); // producerId
    batch.put_i16(-1); // producerEpoch
    batch.put_i32(-1); // baseSequence
    batch.put_i32(records); // recordsCount
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn built_batches_validate() {
    let built = batch(3, 1000, 10, 7);
    let header = sluice_protocol::batch::validate(&built).unwrap();
    assert_eq!(header.records_count, 3);
    assert_eq!(header.max_timestamp, 1002);
}

/// An in-memory file system that, on [`CrashFileSystem::crash`], forgets what was not made
/// durable, as a machine losing power would (and as turmoil's simulated file system does):
/// file contents revert to their last `sync` and directory entries to their directory's
/// last `sync_dir`, except that unsynced bytes appended past the synced contents may
/// survive in part (a torn write). Directories themselves, and their removal, are treated
/// as durable at once: storage creates them rarely and tests do not crash in between.
///
/// To crash *during* an operation, [`CrashFileSystem::lose_power_after`] lets a number of
/// mutations (writes, truncations, fsyncs, creations, renames, removals) through and fails
/// every later one, as if the machine stopped there; [`CrashFileSystem::crash`] then
/// reverts to what was durable.
#[derive(Debug, Default)]
pub(crate) struct CrashFileSystem {
    state: std::sync::Mutex<CrashState>,
    power: Arc<Power>,
}

/// Mutations so far, and how many may still happen.
#[derive(Debug, Default)]
struct Power {
    mutations: std::sync::atomic::AtomicU64,
    left: std::sync::Mutex<Option<u64>>,
}

impl Power {
    fn mutate(&self) -> std::io::Result<()> {
        let mut left = self.left.lock().unwrap();
        match &mut *left {
            Some(0) => return Err(std::io::Error::other("simulated power loss")),
            Some(left) => *left -= 1,
            None => {}
        }
        self.mutations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct CrashState {
    dirs: std::collections::BTreeSet<PathBuf>,
    live: std::collections::BTreeMap<PathBuf, Arc<SimFile>>,
    durable: std::collections::BTreeMap<PathBuf, Arc<SimFile>>,
}

#[derive(Debug, Default)]
struct SimFile {
    contents: std::sync::Mutex<SimContents>,
    power: Arc<Power>,
}

#[derive(Debug, Default)]
struct SimContents {
    current: Vec<u8>,
    durable: Vec<u8>,
}

/// A file that kept unsynced bytes through a crash: they lie in `durable_len..len`.
#[derive(Debug, Clone)]
pub(crate) struct TornFile {
    pub path: PathBuf,
    pub durable_len: usize,
    pub len: usize,
}

impl CrashFileSystem {
    fn state(&self) -> std::sync::MutexGuard<'_, CrashState> {
        self.state.lock().unwrap()
    }

    /// Mutations so far (to count those of an operation).
    pub(crate) fn mutations(&self) -> u64 {
        self.power
            .mutations
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Let `mutations` more mutations happen, then fail every later one.
    pub(crate) fn lose_power_after(&self, mutations: u64) {
        *self.power.left.lock().unwrap() = Some(mutations);
    }

    /// Power is back: every mutation succeeds again.
    pub(crate) fn restore_power(&self) {
        *self.power.left.lock().unwrap() = None;
    }

    /// Lose everything not durable. `keep(unsynced_bytes)` says how many of a file's unsynced
    /// appended bytes survive. Returns the files that kept some.
    pub(crate) fn crash(&self, mut keep: impl FnMut(usize) -> usize) -> Vec<TornFile> {
        let mut state = self.state();
        state.live = state.durable.clone();
        let mut torn = Vec::new();
        for (path, file) in &state.live {
            let mut contents = file.contents.lock().unwrap();
            let mut survived = contents.durable.clone();
            if contents.current.starts_with(&contents.durable) {
                let unsynced = contents.current.len() - contents.durable.len();
                let kept = keep(unsynced).min(unsynced);
                survived = contents.current[..contents.durable.len() + kept].to_vec();
                if kept > 0 {
                    torn.push(TornFile {
                        path: path.clone(),
                        durable_len: contents.durable.len(),
                        len: survived.len(),
                    });
                }
            }
            contents.current = survived.clone();
            contents.durable = survived;
        }
        torn
    }

    /// Corrupt one byte (after a crash, in bytes that were never synced).
    pub(crate) fn flip(&self, path: &Path, position: usize, mask: u8) {
        let state = self.state();
        let mut contents = state.live[path].contents.lock().unwrap();
        contents.current[position] ^= mask;
        contents.durable[position] ^= mask;
    }

    pub(crate) fn read(&self, path: &Path) -> Vec<u8> {
        self.state().live[path]
            .contents
            .lock()
            .unwrap()
            .current
            .clone()
    }

    pub(crate) fn files(&self) -> Vec<PathBuf> {
        self.state().live.keys().cloned().collect()
    }
}

fn not_found(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl FileSystem for CrashFileSystem {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut state = self.state();
        for ancestor in path.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn super::StorageFile>> {
        let mut state = self.state();
        if !path
            .parent()
            .is_some_and(|parent| state.dirs.contains(parent))
        {
            return Err(not_found(path));
        }
        if !state.live.contains_key(path) {
            self.power.mutate()?;
        }
        let power = Arc::clone(&self.power);
        let file = Arc::clone(state.live.entry(path.to_path_buf()).or_insert_with(|| {
            Arc::new(SimFile {
                contents: Default::default(),
                power,
            })
        }));
        Ok(file)
    }

    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files = state.live.keys();
        let dirs = state.dirs.iter();
        Ok(files
            .chain(dirs)
            .filter(|entry| entry.parent() == Some(path))
            .filter_map(|entry| entry.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut state = self.state();
        let file = state.live.remove(from).ok_or_else(|| not_found(from))?;
        state.live.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.power.mutate()?;
        self.state()
            .live
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut state = self.state();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.dirs.retain(|dir| !dir.starts_with(path));
        state.live.retain(|file, _| !file.starts_with(path));
        state.durable.retain(|file, _| !file.starts_with(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        let state = self.state();
        Ok(state.live.contains_key(path) || state.dirs.contains(path))
    }

    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut state = self.state();
        let CrashState { live, durable, .. } = &mut *state;
        durable.retain(|file, _| file.parent() != Some(path));
        for (file, contents) in live.iter().filter(|(file, _)| file.parent() == Some(path)) {
            durable.insert(file.clone(), Arc::clone(contents));
        }
        Ok(())
    }
}

impl super::StorageFile for SimFile {
    fn write_at(&self, buf: &[u8], position: u64) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut contents = self.contents.lock().unwrap();
        let end = position as usize + buf.len();
        if contents.current.len() < end {
            contents.current.resize(end, 0);
        }
        contents.current[position as usize..end].copy_from_slice(buf);
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> std::io::Result<()> {
        let contents = self.contents.lock().unwrap();
        let end = position as usize + buf.len();
        if end > contents.current.len() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&contents.current[position as usize..end]);
        Ok(())
    }

    fn sync(&self) -> std::io::Result<()> {
        self.power.mutate()?;
        let mut contents = self.contents.lock().unwrap();
        contents.durable = contents.current.clone();
        Ok(())
    }

    fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.power.mutate()?;
        self.contents
            .lock()
            .unwrap()
            .current
            .resize(len as usize, 0);
        Ok(())
    }

    fn len(&self) -> std::io::Result<u64> {
        Ok(self.contents.lock().unwrap().current.len() as u64)
    }
}

#[test]
fn crash_file_system_fails_every_mutation_after_power_loss() {
    let fs = CrashFileSystem::default();
    let dir = Path::new("/data");
    fs.create_dir_all(dir).unwrap();
    let file = fs.open(&dir.join("a")).unwrap();
    let before = fs.mutations();
    fs.lose_power_after(1);
    file.write_at(b"x", 0).unwrap();
    assert!(file.sync().is_err());
    assert!(fs.sync_dir(dir).is_err());
    assert_eq!(fs.mutations(), before + 1);
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, 0).unwrap();
    fs.restore_power();
    file.sync().unwrap();
}

#[test]
fn crash_file_system_forgets_what_was_not_synced() {
    let fs = CrashFileSystem::default();
    let dir = Path::new("/data");
    fs.create_dir_all(dir).unwrap();
    let synced = fs.open(&dir.join("a")).unwrap();
    synced.write_at(b"durable", 0).unwrap();
    synced.sync().unwrap();
    synced.write_at(b"+lost", 7).unwrap();
    fs.sync_dir(dir).unwrap();
    let unnamed = fs.open(&dir.join("b")).unwrap();
    unnamed.write_at(b"x", 0).unwrap();
    unnamed.sync().unwrap();
    let torn = fs.crash(|_| 0);
    assert!(torn.is_empty());
    assert_eq!(fs.read(&dir.join("a")), b"durable");
    assert!(
        !fs.exists(&dir.join("b")).unwrap(),
        "its directory entry was never synced"
    );
}
