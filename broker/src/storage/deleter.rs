//! Removing partition directories without losing track of them in a crash.
//!
//! A partition directory that is no longer wanted (its topic was deleted, or the replica
//! was reassigned away) is first renamed to `<topic>-<partition>.<32 hex digits>-delete`
//! and the rename made durable (as Kafka's `UnifiedLog.logDeleteDirName`); only then is its
//! content removed, by a background thread, so the caller (the metadata loop) never waits
//! on a large `rm -r`. A crash anywhere leaves either the original directory (the rename
//! was not durable: the next reconciliation removes it again) or a `-delete` directory,
//! which [`LogManager::open`](super::LogManager::open) hands back to the deleter. A
//! `-delete` name is never parsed as a partition directory, so nothing ever reopens it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::fs::FileSystem;

/// Suffix of a directory waiting to be removed.
pub const DELETE_SUFFIX: &str = "-delete";

/// Whether `name` is a directory renamed for deletion.
pub fn is_delete_dir(name: &str) -> bool {
    name.ends_with(DELETE_SUFFIX)
}

/// The name `dir` gets while it waits to be removed: unique, so a partition deleted twice
/// (a topic name reused) does not collide.
pub fn delete_dir_name(dir_name: &str) -> String {
    format!(
        "{dir_name}.{}{DELETE_SUFFIX}",
        uuid::Uuid::from_bytes(rand::random()).simple()
    )
}

/// A background thread removing `-delete` directories, one at a time.
#[derive(Debug)]
pub struct Deleter {
    fs: Arc<dyn FileSystem>,
    queue: Mutex<mpsc::Sender<PathBuf>>,
    pending: Arc<AtomicUsize>,
}

impl Deleter {
    pub fn new(fs: Arc<dyn FileSystem>) -> Deleter {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        let thread_fs = fs.clone();
        std::thread::Builder::new()
            .name("sluice-log-deleter".into())
            .spawn(move || {
                // Ends when the last sender (the Deleter) is dropped.
                for dir in rx {
                    remove(&*thread_fs, &dir);
                    counter.fetch_sub(1, Ordering::AcqRel);
                }
            })
            .expect("the log deleter thread starts");
        Deleter {
            fs,
            queue: Mutex::new(tx),
            pending,
        }
    }

    /// Remove `dir` (already renamed to a `-delete` name) in the background.
    pub fn schedule(&self, dir: PathBuf) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(mpsc::SendError(dir)) = queue.send(dir) {
            // The thread is gone (it panicked): remove here rather than never.
            tracing::warn!(dir = %dir.display(), "log deleter thread is gone; deleting inline");
            remove(&*self.fs, &dir);
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Directories scheduled and not removed yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

fn remove(fs: &dyn FileSystem, dir: &Path) {
    match fs.remove_dir_all(dir) {
        Ok(()) => tracing::debug!(dir = %dir.display(), "removed a deleted partition directory"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted partition directory; it is retried on the next start")
        }
    }
}
