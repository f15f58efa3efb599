//! Whether the data directory still works. The first write or fsync that fails in it (the
//! one that poisons a partition's log) marks it failed, with that error; it never recovers
//! in this process. Kafka takes such a log directory offline, and a broker whose only log
//! directory went offline halts; `node` does the same when [`DirHealth::failed`] resolves,
//! and the restart's recovery learns what the disk really holds.
//!
//! A full disk is not a failure: appends are refused before they write (`log/room.rs`).

use tokio::sync::watch;

#[derive(Debug)]
pub struct DirHealth {
    failure: watch::Sender<Option<String>>,
}

impl Default for DirHealth {
    fn default() -> DirHealth {
        DirHealth {
            failure: watch::channel(None).0,
        }
    }
}

impl DirHealth {
    /// Mark the directory failed; the first reason is kept.
    pub fn report(&self, reason: &str) {
        self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            *failure = Some(reason.to_string());
            true
        });
    }

    /// Why the directory failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Resolves with the reason once the directory has failed.
    pub fn failed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut failure = self.failure.subscribe();
        async move {
            let reason = match failure.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone(),
                // The directory's owner is gone: nothing will ever report a failure.
                Err(_) => None,
            };
            match reason {
                Some(reason) => reason,
                None => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_is_kept_and_wakes_waiters() {
        let health = DirHealth::default();
        assert_eq!(health.failure(), None);
        let waiter = tokio::spawn(health.failed());
        health.report("fsync of 00000000000000000000.log failed: EIO");
        health.report("a later failure");
        assert_eq!(
            waiter.await.unwrap(),
            "fsync of 00000000000000000000.log failed: EIO"
        );
        assert_eq!(
            health.failed().await,
            "fsync of 00000000000000000000.log failed: EIO",
            "a waiter arriving after the failure resolves at once"
        );
    }
}
