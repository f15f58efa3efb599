//! A bound on the file descriptors that segment indexes hold.
//!
//! Every segment has three files (`.log`, `.index`, `.timeindex`). Holding all three open
//! costs three descriptors per partition, and a broker with 10,000 partitions would need
//! 30,000: more than a common `ulimit -n` (20,000 on the machines Sluice is tested on), at
//! which point creating the next partition fails with "Too many open files". Kafka holds
//! one descriptor per segment (its indexes are memory-mapped, and a mapping needs no open
//! descriptor).
//!
//! [`IndexHandleLimit`] wraps a [`FileSystem`] and hands out index files whose descriptor
//! is opened on use and may be closed again: at most `open_max` index descriptors are open
//! at once; opening one more closes the one opened longest ago (first in, first out, which
//! is close enough to least-recently-used for a cache whose misses cost one `open(2)`).
//! Log files and every other file pass through untouched. So a broker holds about one
//! descriptor per partition plus `open_max`, whatever its partition count.
//!
//! Closing a descriptor loses nothing: written data stays in the page cache, and `fsync`
//! through a later descriptor of the same file makes it durable (fsync acts on the inode).
//!
//! Lock order: a [`CachedFile`]'s own lock, then the cache's queue. Eviction never waits
//! for another file's lock (it skips a file that is in use), so two files evicting each
//! other cannot deadlock.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::fs::{FileSystem, StorageFile};
use super::segment::{OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// Index descriptors a broker keeps open by default.
pub const INDEX_HANDLES_OPEN_MAX: usize = 1_024;

/// A [`FileSystem`] whose index files hold a descriptor only while in recent use.
#[derive(Debug)]
pub struct IndexHandleLimit {
    inner: Arc<dyn FileSystem>,
    cache: Arc<HandleCache>,
}

impl IndexHandleLimit {
    pub fn new(inner: Arc<dyn FileSystem>, open_max: usize) -> IndexHandleLimit {
        IndexHandleLimit {
            inner,
            cache: Arc::new(HandleCache {
                open_max: open_max.max(1),
                open: AtomicUsize::new(0),
                queue: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Index descriptors open now.
    pub fn open_index_handles(&self) -> usize {
        self.cache.open.load(Ordering::Acquire)
    }
}

fn is_index(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| {
            name.ends_with(OFFSET_INDEX_SUFFIX) || name.ends_with(TIME_INDEX_SUFFIX)
        })
}

impl FileSystem for IndexHandleLimit {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        if !is_index(path) {
            return self.inner.open(path);
        }
        // Open now, so that a missing directory fails here as it would without the limit.
        let handle = self.inner.open(path)?;
        let file = Arc::new(CachedFile {
            fs: self.inner.clone(),
            path: path.to_path_buf(),
            cache: self.cache.clone(),
            handle: Mutex::new(None),
        });
        file.install(&mut file.lock(), handle);
        Ok(Arc::new(file))
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

    fn available_bytes(&self, path: &Path) -> io::Result<Option<u64>> {
        self.inner.available_bytes(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
}

/// The open index descriptors, oldest first.
#[derive(Debug)]
struct HandleCache {
    open_max: usize,
    open: AtomicUsize,
    /// Files in the order their descriptors were opened; an entry may be stale (its file
    /// was closed and reopened since, or dropped), which only makes eviction a bit early.
    queue: Mutex<VecDeque<Weak<CachedFile>>>,
}

impl HandleCache {
    /// Note a newly opened descriptor, then close the oldest ones while over the limit.
    fn opened(&self, file: Weak<CachedFile>) {
        self.open.fetch_add(1, Ordering::AcqRel);
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push_back(file);
        let mut skipped = 0;
        while self.open.load(Ordering::Acquire) > self.open_max && skipped < queue.len() {
            let Some(oldest) = queue.pop_front() else {
                break;
            };
            let Some(oldest) = oldest.upgrade() else {
                continue;
            };
            // In use by another thread right now: keep it, try the next one.
            let Ok(mut handle) = oldest.handle.try_lock() else {
                queue.push_back(Arc::downgrade(&oldest));
                skipped += 1;
                continue;
            };
            if handle.take().is_some() {
                self.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// An index file whose descriptor the [`HandleCache`] may close between uses.
#[derive(Debug)]
pub struct CachedFile {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    cache: Arc<HandleCache>,
    handle: Mutex<Option<Arc<dyn StorageFile>>>,
}

type HandleGuard<'a> = std::sync::MutexGuard<'a, Option<Arc<dyn StorageFile>>>;

impl CachedFile {
    fn lock(&self) -> HandleGuard<'_> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn install(self: &Arc<Self>, slot: &mut HandleGuard<'_>, handle: Arc<dyn StorageFile>) {
        **slot = Some(handle);
        self.cache.opened(Arc::downgrade(self));
    }

    /// Run `op` on an open descriptor, reopening the file if the cache closed it.
    fn with<R>(
        self: &Arc<Self>,
        op: impl FnOnce(&dyn StorageFile) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut slot = self.lock();
        let handle = match slot.as_ref() {
            Some(handle) => handle.clone(),
            None => {
                let handle = self.fs.open(&self.path)?;
                // The cache's queue lock is taken after ours (see the module docs); eviction
                // skips this file while we hold its lock.
                self.install(&mut slot, handle.clone());
                handle
            }
        };
        op(handle.as_ref())
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let handle = self.handle.get_mut().unwrap_or_else(|e| e.into_inner());
        if handle.take().is_some() {
            self.cache.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// `StorageFile` is implemented on the `Arc` the file system hands out (reopening needs
/// the `Arc` to register with the cache).
impl StorageFile for Arc<CachedFile> {
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.with(|file| file.write_at(buf, position))
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.with(|file| file.read_exact_at(buf, position))
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|file| file.sync())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|file| file.truncate(len))
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|file| file.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdFileSystem;

    #[test]
    fn index_descriptors_stay_under_the_limit_and_lose_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let fs = IndexHandleLimit::new(Arc::new(StdFileSystem), 2);
        let files: Vec<Arc<dyn StorageFile>> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("{i:020}.index"));
                fs.open(&path).unwrap()
            })
            .collect();
        assert_eq!(fs.open_index_handles(), 2);
        for (i, file) in files.iter().enumerate() {
            file.write_at(&[i as u8; 8], 0).unwrap();
            file.sync().unwrap();
            assert!(fs.open_index_handles() <= 2);
        }
        for (i, file) in files.iter().enumerate() {
            let mut read = [0u8; 8];
            file.read_exact_at(&mut read, 0).unwrap();
            assert_eq!(
                read, [i as u8; 8],
                "file {i} after its descriptor was closed"
            );
            assert_eq!(file.len().unwrap(), 8);
        }
        assert!(fs.open_index_handles() <= 2);
        drop(files);
        assert_eq!(fs.open_index_handles(), 0);
    }

    #[test]
    fn other_files_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let fs = IndexHandleLimit::new(Arc::new(StdFileSystem), 1);
        let logs: Vec<Arc<dyn StorageFile>> = (0..3)
            .map(|i| fs.open(&dir.path().join(format!("{i:020}.log"))).unwrap())
            .collect();
        assert_eq!(fs.open_index_handles(), 0);
        assert_eq!(logs.len(), 3);
    }
}
