//! A test-only [`FileSystem`] (cargo feature `fault-fs`, refused in release builds)
//! that makes `kill -9` lose what a power cut would lose: bytes written but not yet
//! fsynced live in this process's memory, not in the kernel's page cache, so they die with
//! the process. `sluiced-faults` (the `sluiced` binary built over it) is what the fault
//! harness kills to cut a broker's power (`docs/chaos.md`).
//!
//! # The model
//!
//! - **File data.** `write_at` and `truncate` go to a per-file overlay in memory; reads see
//!   the real file with the overlay on top. `sync` writes the overlay to the real file
//!   (truncations first, then the written extents, then the final length) and fsyncs it; only
//!   then is it durable, as on a disk. Bytes past a pending truncation are invisible until
//!   an extent covers them again.
//! - **Torn writes** ([`PowerLoss::Tear`]): each unsynced write also sends a random prefix
//!   of itself (possibly none, possibly all) to the real file at once, as a machine that
//!   wrote back some pages before losing power. After a kill the real file then holds the
//!   durable bytes plus fragments of unsynced ones, which recovery must find and cut.
//! - **Directory entries** (creations, renames, removals) are applied to the real file
//!   system at once, as if every `sync_dir` had already happened: storage fsyncs its
//!   directories after renames that matter, and a created file that loses its data is
//!   still a case recovery sees (an empty or short file). This is weaker than a real power
//!   cut, which may also forget an entry; `storage::testing::CrashFileSystem` covers that in
//!   the storage unit tests.
//!
//! The overlay is kept per path (a file opened again, or renamed, keeps its unsynced
//! bytes), so it composes under [`super::IndexHandleLimit`], which reopens index files.
//! Memory grows with unsynced data: under `--durability replicated` a log is flushed only
//! when a segment rolls, so runs over this file system use small segments.
//!
//! Invariant: for every file, what a read returns is exactly what the same calls on a
//! real file system would return; only what survives the process differs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fs::{FileSystem, StorageFile};

#[cfg(all(feature = "fault-fs", not(debug_assertions)))]
compile_error!(
    "the fault-fs feature loses unsynced writes on purpose: it is for the fault \
     harness's debug builds and must never be in a release build"
);

/// What happens to unsynced writes when the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// All of them are lost.
    Lose,
    /// A random prefix of each may have reached the disk (a torn write).
    Tear,
}

impl std::str::FromStr for PowerLoss {
    type Err = String;

    fn from_str(s: &str) -> Result<PowerLoss, String> {
        match s {
            "lose" => Ok(PowerLoss::Lose),
            "tear" => Ok(PowerLoss::Tear),
            other => Err(format!("unknown power-loss mode {other:?} (lose, tear)")),
        }
    }
}

/// A file system whose unsynced writes die with the process. See the module docs.
#[derive(Debug)]
pub struct PowerLossFileSystem {
    inner: Arc<dyn FileSystem>,
    overlays: Mutex<HashMap<PathBuf, Arc<Overlay>>>,
    tear: Option<Arc<Mutex<StdRng>>>,
}

impl PowerLossFileSystem {
    /// Over `inner`; `seed` drives the torn prefixes of [`PowerLoss::Tear`].
    pub fn new(inner: Arc<dyn FileSystem>, mode: PowerLoss, seed: u64) -> PowerLossFileSystem {
        PowerLossFileSystem {
            inner,
            overlays: Mutex::new(HashMap::new()),
            tear: (mode == PowerLoss::Tear)
                .then(|| Arc::new(Mutex::new(StdRng::seed_from_u64(seed)))),
        }
    }

    /// Bytes held in memory, not yet on the real file system, over every file.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.overlays)
            .values()
            .map(|overlay| overlay.pending().unsynced_bytes())
            .sum()
    }

    fn overlays(&self) -> MutexGuard<'_, HashMap<PathBuf, Arc<Overlay>>> {
        lock(&self.overlays)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl FileSystem for PowerLossFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(path)?;
        let overlay = Arc::clone(self.overlays().entry(path.to_path_buf()).or_default());
        Ok(Arc::new(PowerLossFile {
            inner,
            overlay,
            tear: self.tear.clone(),
        }))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut overlays = self.overlays();
        self.inner.rename(from, to)?;
        match overlays.remove(from) {
            Some(overlay) => overlays.insert(to.to_path_buf(), overlay),
            None => overlays.remove(to),
        };
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut overlays = self.overlays();
        self.inner.remove_file(path)?;
        overlays.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut overlays = self.overlays();
        self.inner.remove_dir_all(path)?;
        overlays.retain(|file, _| !file.starts_with(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }

    fn available_bytes(&self, path: &Path) -> io::Result<Option<u64>> {
        self.inner.available_bytes(path)
    }
}

/// A file's writes and truncations since its last sync.
#[derive(Debug, Default)]
struct Overlay {
    pending: Mutex<Pending>,
}

impl Overlay {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// The file's length as its users see it; `None` while nothing is pending (the real
    /// file's length is then the length).
    len: Option<u64>,
    /// Real-file bytes at or past this offset are hidden (cut by a pending truncation).
    floor: Option<u64>,
    /// Written, unsynced bytes by start offset; extents neither overlap nor pass `len`.
    extents: BTreeMap<u64, Vec<u8>>,
}

impl Pending {
    fn unsynced_bytes(&self) -> u64 {
        self.extents.values().map(|bytes| bytes.len() as u64).sum()
    }

    /// The length, reading the real file's when nothing is pending.
    fn len(&mut self, inner: &dyn StorageFile) -> io::Result<u64> {
        match self.len {
            Some(len) => Ok(len),
            None => {
                let len = inner.len()?;
                self.len = Some(len);
                Ok(len)
            }
        }
    }

    /// Remove every extent byte in `from..to`, splitting extents that straddle it.
    fn cut(&mut self, from: u64, to: u64) {
        let touched: Vec<u64> = self
            .extents
            .range(..to)
            .filter(|(start, bytes)| **start + bytes.len() as u64 > from)
            .map(|(start, _)| *start)
            .collect();
        for start in touched {
            let bytes = self.extents.remove(&start).unwrap_or_default();
            let end = start + bytes.len() as u64;
            if start < from {
                self.extents
                    .insert(start, bytes[..(from - start) as usize].to_vec());
            }
            if end > to {
                self.extents
                    .insert(to, bytes[(to - start) as usize..].to_vec());
            }
        }
    }

    fn write(&mut self, buf: &[u8], position: u64) {
        let end = position + buf.len() as u64;
        self.cut(position, end);
        // Appends (the common case) extend the extent that ends where they begin.
        let before = self
            .extents
            .range_mut(..position)
            .next_back()
            .filter(|(start, bytes)| **start + bytes.len() as u64 == position);
        match before {
            Some((_, bytes)) => bytes.extend_from_slice(buf),
            None => {
                self.extents.insert(position, buf.to_vec());
            }
        }
        self.len = self.len.map(|len| len.max(end));
    }

    fn truncate(&mut self, len: u64) {
        self.cut(len, u64::MAX);
        self.floor = Some(self.floor.map_or(len, |floor| floor.min(len)));
        self.len = Some(len);
    }

    fn read(&self, inner: &dyn StorageFile, buf: &mut [u8], position: u64) -> io::Result<()> {
        let end = position + buf.len() as u64;
        if end > self.len.unwrap_or(0) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(0);
        let real_end = inner.len()?.min(self.floor.unwrap_or(u64::MAX)).min(end);
        if real_end > position {
            inner.read_exact_at(&mut buf[..(real_end - position) as usize], position)?;
        }
        for (start, bytes) in self.extents.range(..end) {
            let extent_end = start + bytes.len() as u64;
            if extent_end <= position {
                continue;
            }
            let from = (*start).max(position);
            let to = extent_end.min(end);
            buf[(from - position) as usize..(to - position) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        Ok(())
    }

    /// Put everything pending on the real file (not yet fsynced), leaving nothing pending.
    fn write_back(&mut self, inner: &dyn StorageFile) -> io::Result<()> {
        let Some(len) = self.len else {
            return Ok(());
        };
        if let Some(floor) = self.floor {
            if inner.len()? > floor {
                inner.truncate(floor)?;
            }
        }
        for (start, bytes) in &self.extents {
            inner.write_at(bytes, *start)?;
        }
        if inner.len()? != len {
            inner.truncate(len)?;
        }
        *self = Pending::default();
        Ok(())
    }
}

#[derive(Debug)]
struct PowerLossFile {
    inner: Arc<dyn StorageFile>,
    overlay: Arc<Overlay>,
    tear: Option<Arc<Mutex<StdRng>>>,
}

impl StorageFile for PowerLossFile {
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        let mut pending = self.overlay.pending();
        pending.len(&*self.inner)?;
        if let Some(rng) = &self.tear {
            let prefix = lock(rng).random_range(0..=buf.len());
            if prefix > 0 {
                self.inner.write_at(&buf[..prefix], position)?;
            }
        }
        pending.write(buf, position);
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        let pending = self.overlay.pending();
        if pending.len.is_none() {
            return self.inner.read_exact_at(buf, position);
        }
        pending.read(&*self.inner, buf, position)
    }

    fn sync(&self) -> io::Result<()> {
        // Bytes written after the write-back stay pending: this fsync does not cover them.
        self.overlay.pending().write_back(&*self.inner)?;
        self.inner.sync()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut pending = self.overlay.pending();
        pending.len(&*self.inner)?;
        pending.truncate(len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.overlay.pending().len(&*self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::StdFileSystem;

    fn fs(mode: PowerLoss) -> (tempfile::TempDir, PowerLossFileSystem) {
        let dir = tempfile::tempdir().unwrap();
        (
            dir,
            PowerLossFileSystem::new(Arc::new(StdFileSystem), mode, 7),
        )
    }

    fn read_all(file: &dyn StorageFile) -> Vec<u8> {
        let mut buf = vec![0; file.len().unwrap() as usize];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn unsynced_writes_are_read_back_but_not_on_disk_until_synced() {
        let (dir, fs) = fs(PowerLoss::Lose);
        let path = dir.path().join("a");
        let file = fs.open(&path).unwrap();
        file.write_at(b"hello", 0).unwrap();
        file.write_at(b" world", 5).unwrap();
        assert_eq!(read_all(&*file), b"hello world");
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(fs.unsynced_bytes(), 11);
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(fs.unsynced_bytes(), 0);
        file.write_at(b"W", 6).unwrap();
        assert_eq!(read_all(&*file), b"hello World");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"hello world",
            "an overwrite is not durable either"
        );
    }

    #[test]
    fn a_pending_truncation_hides_disk_bytes_until_synced() {
        let (dir, fs) = fs(PowerLoss::Lose);
        let path = dir.path().join("a");
        let file = fs.open(&path).unwrap();
        file.write_at(b"0123456789", 0).unwrap();
        file.sync().unwrap();
        file.truncate(4).unwrap();
        assert_eq!(file.len().unwrap(), 4);
        let mut past = [0u8; 1];
        assert!(file.read_exact_at(&mut past, 4).is_err());
        file.write_at(b"ab", 6).unwrap();
        assert_eq!(read_all(&*file), b"0123\0\0ab", "the gap reads as zeros");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123\0\0ab");
    }

    #[test]
    fn overlays_follow_their_path_through_reopen_and_rename() {
        let (dir, fs) = fs(PowerLoss::Lose);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs.open(&a).unwrap().write_at(b"kept in memory", 0).unwrap();
        assert_eq!(read_all(&*fs.open(&a).unwrap()), b"kept in memory");
        fs.rename(&a, &b).unwrap();
        let renamed = fs.open(&b).unwrap();
        assert_eq!(read_all(&*renamed), b"kept in memory");
        renamed.sync().unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"kept in memory");
        fs.remove_file(&b).unwrap();
        assert_eq!(fs.unsynced_bytes(), 0);
        assert_eq!(fs.open(&b).unwrap().len().unwrap(), 0);
    }

    #[test]
    fn a_new_file_system_over_the_same_files_sees_only_what_was_synced() {
        let (dir, fs) = fs(PowerLoss::Lose);
        let path = dir.path().join("log");
        let file = fs.open(&path).unwrap();
        file.write_at(b"durable", 0).unwrap();
        file.sync().unwrap();
        file.write_at(b"+lost", 7).unwrap();
        file.truncate(3).unwrap();
        drop(fs);
        let after = PowerLossFileSystem::new(Arc::new(StdFileSystem), PowerLoss::Lose, 1);
        assert_eq!(read_all(&*after.open(&path).unwrap()), b"durable");
    }

    #[test]
    fn torn_writes_leave_a_prefix_of_each_unsynced_write_on_disk() {
        let (dir, fs) = fs(PowerLoss::Tear);
        let path = dir.path().join("log");
        let file = fs.open(&path).unwrap();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i + 1; 64];
            file.write_at(&chunk, expected.len() as u64).unwrap();
            expected.extend_from_slice(&chunk);
        }
        assert_eq!(read_all(&*file), expected, "reads never see the tearing");
        let on_disk = std::fs::read(&path).unwrap();
        assert!(!on_disk.is_empty() && on_disk != expected);
        for (position, byte) in on_disk.iter().enumerate() {
            assert!(
                *byte == 0 || *byte == expected[position],
                "byte {position} on disk is {byte}, neither a hole nor what was written"
            );
        }
    }

    #[test]
    fn the_mode_parses_from_its_name() {
        assert_eq!("lose".parse(), Ok(PowerLoss::Lose));
        assert_eq!("tear".parse(), Ok(PowerLoss::Tear));
        assert!("all".parse::<PowerLoss>().is_err());
    }
}
