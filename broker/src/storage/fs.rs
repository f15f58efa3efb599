//! The file-system boundary of storage.
//!
//! Storage touches the disk only through [`FileSystem`] and [`StorageFile`], a deliberately
//! small surface: positional reads and writes (`pread`/`pwrite`, so no shared cursor),
//! `fsync`, truncate and a handful of directory operations. That is what lets a simulated
//! file system (turmoil's, which loses un-fsynced data and directory entries on a crash)
//! replace [`StdFileSystem`] in deterministic tests, and what lets
//! [`FaultInjectingFileSystem`] make an fsync fail on demand.
//!
//! Every call is blocking. Storage is called from async tasks and does its I/O inline: no
//! `tokio::fs`, no `spawn_blocking`, both of which stall a simulation.
//!
//! Durability rules the callers rely on (POSIX's, and the simulated file system's):
//! - Data written to a file is durable only after [`StorageFile::sync`] returns `Ok`.
//! - A new, renamed or removed directory entry is durable only after
//!   [`FileSystem::sync_dir`] on its parent directory.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Directory operations and opening files.
pub trait FileSystem: Send + Sync + Debug {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Open a file for reading and writing, creating it empty if it does not exist.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Names of a directory's entries, in no particular order. Names that are not UTF-8 are
    /// left out: storage never creates such names.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Make the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Bytes an unprivileged writer may still write on the file system holding `path`;
    /// `None` when this file system cannot tell (appends are then not checked for room).
    fn available_bytes(&self, path: &Path) -> io::Result<Option<u64>> {
        let _ = path;
        Ok(None)
    }
}

/// An open file. Shared (`Arc`) so the group-commit syncer can fsync it without holding
/// the log's lock.
pub trait StorageFile: Send + Sync + Debug {
    /// Write all of `buf` at `position`, extending the file if needed.
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()>;
    /// Fill `buf` from `position`; fails with `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;
    /// Make the file's data (and its size) durable: `fdatasync`.
    fn sync(&self) -> io::Result<()>;
    /// Cut (or extend with zeros) the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Current size in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The real file system, through `std::fs` and `std::os::unix::fs::FileExt`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(StdFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn available_bytes(&self, path: &Path) -> io::Result<Option<u64>> {
        let stats = rustix::fs::statvfs(path)?;
        Ok(Some(stats.f_bavail.saturating_mul(stats.f_frsize)))
    }
}

#[derive(Debug)]
struct StdFile {
    file: File,
    path: PathBuf,
}

impl StorageFile for StdFile {
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "reading {} bytes at {position} of {}: {error}",
                    buf.len(),
                    self.path.display()
                ),
            )
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// Remove a file, treating "already gone" as success.
pub(super) fn remove_file_if_exists(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A [`FileSystem`] wrapper for tests: it can make every fsync (file or directory) fail, and
/// counts the file fsyncs that succeed (to check that group commit groups).
#[derive(Debug)]
pub struct FaultInjectingFileSystem {
    inner: Arc<dyn FileSystem>,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_syncs: AtomicBool,
    file_syncs: AtomicU64,
    /// Free bytes to report instead of the inner file system's (`u64::MAX`: none set).
    available: AtomicU64,
}

impl Faults {
    fn check_sync(&self, what: &dyn Debug) -> io::Result<()> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "injected fsync failure on {what:?}"
            )));
        }
        Ok(())
    }
}

impl FaultInjectingFileSystem {
    pub fn new(inner: Arc<dyn FileSystem>) -> FaultInjectingFileSystem {
        let faults = Faults {
            available: AtomicU64::new(u64::MAX),
            ..Faults::default()
        };
        FaultInjectingFileSystem {
            inner,
            faults: Arc::new(faults),
        }
    }

    /// Report `bytes` free from now on (a disk filling up, or freed); `None` reports the
    /// inner file system's again.
    pub fn set_available_bytes(&self, bytes: Option<u64>) {
        let bytes = bytes.unwrap_or(u64::MAX);
        self.faults.available.store(bytes, Ordering::SeqCst);
    }

    /// From now on every fsync fails with an I/O error.
    pub fn start_failing_syncs(&self) {
        self.faults.fail_syncs.store(true, Ordering::SeqCst);
    }

    pub fn stop_failing_syncs(&self) {
        self.faults.fail_syncs.store(false, Ordering::SeqCst);
    }

    /// Number of successful [`StorageFile::sync`] calls so far.
    pub fn file_sync_count(&self) -> u64 {
        self.faults.file_syncs.load(Ordering::SeqCst)
    }
}

impl FileSystem for FaultInjectingFileSystem {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(FaultInjectingFile {
            inner: self.inner.open(path)?,
            faults: Arc::clone(&self.faults),
        }))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.check_sync(&path)?;
        self.inner.sync_dir(path)
    }

    fn available_bytes(&self, path: &Path) -> io::Result<Option<u64>> {
        match self.faults.available.load(Ordering::SeqCst) {
            u64::MAX => self.inner.available_bytes(path),
            bytes => Ok(Some(bytes)),
        }
    }
}

#[derive(Debug)]
struct FaultInjectingFile {
    inner: Arc<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl StorageFile for FaultInjectingFile {
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.inner.write_at(buf, position)
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, position)
    }

    fn sync(&self) -> io::Result<()> {
        self.faults.check_sync(&self.inner)?;
        self.inner.sync()?;
        self.faults.file_syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_file_reads_back_positional_writes_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        let file = fs.open(&dir.path().join("f")).unwrap();
        file.write_at(b"hello", 0).unwrap();
        file.write_at(b"world", 5).unwrap();
        let mut buf = [0u8; 4];
        file.read_exact_at(&mut buf, 3).unwrap();
        assert_eq!(&buf, b"lowo");
        file.truncate(4).unwrap();
        assert_eq!(file.len().unwrap(), 4);
        let error = file.read_exact_at(&mut buf, 2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(fs.list_dir(dir.path()).unwrap(), vec!["f".to_string()]);
    }

    #[test]
    fn injected_sync_failure_fails_file_and_dir_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultInjectingFileSystem::new(Arc::new(StdFileSystem));
        let file = fs.open(&dir.path().join("f")).unwrap();
        file.sync().unwrap();
        fs.start_failing_syncs();
        assert!(file.sync().is_err());
        assert!(fs.sync_dir(dir.path()).is_err());
        fs.stop_failing_syncs();
        file.sync().unwrap();
        assert_eq!(fs.file_sync_count(), 2);
    }
}
