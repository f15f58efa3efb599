//! Faults on the nodes: signals (kill -9, SIGTERM, SIGSTOP/SIGCONT), restarts of one
//! node or all, and in a network lab, isolation and cut links.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{Cluster, CLUSTER_START_DEADLINE};
use crate::netns::LabNodes;

impl Cluster {
    /// SIGKILL a node and reap it.
    pub fn kill9(&mut self, id: i32) {
        self.node(id).kill9();
    }

    /// SIGTERM a node (controlled shutdown); pair with [`wait_exit`](Self::wait_exit).
    pub fn sigterm(&mut self, id: i32) {
        self.node(id).sigterm();
    }

    /// Wait for a node's process to exit (panics with its log after `timeout`).
    pub fn wait_exit(&mut self, id: i32, timeout: Duration) -> ExitStatus {
        self.node(id).wait_exit(timeout)
    }

    /// SIGSTOP a node: alive, its sockets accept, but it runs nothing.
    pub fn sigstop(&mut self, id: i32) {
        self.node(id).sigstop();
    }

    /// SIGCONT a node stopped by [`sigstop`](Self::sigstop).
    pub fn sigcont(&mut self, id: i32) {
        self.node(id).sigcont();
    }

    /// Cut node `id` off from every other node and from the test (a cluster started in a
    /// [`ClusterOptions::lab`](super::ClusterOptions::lab) only).
    pub fn isolate(&mut self, id: i32) {
        self.lab_nodes()
            .expect("isolate needs a cluster in a network lab")
            .isolate(id);
    }

    /// Undo [`isolate`](Self::isolate).
    pub fn heal(&mut self, id: i32) {
        self.lab_nodes()
            .expect("heal needs a cluster in a network lab")
            .heal(id);
    }

    /// Drop what node `from` sends to node `to` (`connected: false`), or stop dropping it
    /// (`true`); clients still reach both (a cluster in a [`ClusterOptions::lab`](super::ClusterOptions::lab) only).
    pub fn set_link(&mut self, from: i32, to: i32, connected: bool) {
        self.lab_nodes()
            .expect("links need a cluster in a network lab")
            .set_link(from, to, connected);
    }

    /// Make every fsync of node `id` fail (`failing: true`) with an I/O error, as a failing
    /// disk's do, or work again, and wait until the node has noticed (when it runs; a
    /// stopped node notices when it starts). A cluster started with
    /// [`ClusterOptions::power_loss`](super::ClusterOptions::power_loss) only.
    pub fn fail_fsyncs(&mut self, id: i32, failing: bool) {
        let dir = self
            .faults_dir
            .as_ref()
            .expect("fsync failures need a cluster of sluiced-faults nodes (power_loss set)");
        let trigger = fail_fsync_trigger(dir.path(), id);
        // sluiced-faults logs each change it notices (it looks every 20 ms): wait for it.
        let notice = match failing {
            true => format!("{} exists: fsyncs fail from now on", trigger.display()),
            false => format!("{} is gone: fsyncs work again", trigger.display()),
        };
        let seen = self.node(id).log().matches(&notice).count();
        let result = if failing {
            std::fs::write(&trigger, b"")
        } else {
            std::fs::remove_file(&trigger)
        };
        result.unwrap_or_else(|e| panic!("fsync trigger {}: {e}", trigger.display()));
        if self.node(id).is_running() {
            self.wait_for(
                &format!("node {id} to notice its fsync trigger ({notice})"),
                Duration::from_secs(10),
                |cluster| (cluster.node(id).log().matches(&notice).count() > seen).then_some(()),
            );
        }
    }

    /// Set node `id`'s wall clock `seconds` away from the real one (0 puts it back); it
    /// jumps within a second. A cluster started with
    /// [`ClusterOptions::clock_jumps`](super::ClusterOptions::clock_jumps) only.
    pub fn set_clock_offset(&mut self, id: i32, seconds: i64) {
        let dir = self
            .faults_dir
            .as_ref()
            .expect("clock jumps need a cluster started with clock_jumps");
        let file = clock_offset_file(dir.path(), id);
        std::fs::write(&file, format!("{seconds:+}\n"))
            .unwrap_or_else(|e| panic!("clock offset {}: {e}", file.display()));
    }

    /// Drop `percent` of the packets node `from` sends to node `to`, at random (0 stops);
    /// clients still reach both (a cluster in a [`ClusterOptions::lab`](super::ClusterOptions::lab) only).
    pub fn set_loss(&mut self, from: i32, to: i32, percent: u32) {
        self.lab_nodes()
            .expect("packet loss needs a cluster in a network lab")
            .set_loss(from, to, percent);
    }

    /// Delay what node `id` sends to the other nodes by `delay_ms` plus up to `jitter_ms`
    /// (reordering its packets); `None` stops delaying. A cluster in a
    /// [`ClusterOptions::lab`](super::ClusterOptions::lab) only.
    pub fn set_delay(&mut self, id: i32, delay: Option<(u64, u64)>) {
        self.lab_nodes()
            .expect("packet delay needs a cluster in a network lab")
            .set_delay(id, delay);
    }

    /// Send `percent` of what node `id` sends to the other nodes twice (0 stops). A cluster
    /// in a [`ClusterOptions::lab`](super::ClusterOptions::lab) only.
    pub fn set_duplication(&mut self, id: i32, percent: u32) {
        self.lab_nodes()
            .expect("packet duplication needs a cluster in a network lab")
            .set_duplication(id, percent);
    }

    /// The nodes by id in the cluster's network lab, if it runs in one.
    pub fn lab_nodes(&self) -> Option<LabNodes<'_>> {
        self.lab.as_deref().map(|lab| LabNodes {
            lab,
            ids: self.ids(),
        })
    }

    /// Start a node again on its ports and data directory (killing it first if it runs)
    /// and wait until it answers ApiVersions.
    pub fn restart(&mut self, id: i32) {
        self.node(id).restart();
    }

    /// Restart every node at once (killing the running ones) on its ports and data
    /// directory, and wait as [`start`](Self::start) does: until each answers Metadata
    /// listing every broker and naming a controller. One node alone cannot form a quorum,
    /// so the nodes are spawned first and waited for after.
    pub fn restart_all(&mut self) {
        for id in self.ids() {
            if let Err(e) = self.node(id).restart_unready() {
                panic!("node {id} did not restart: {e}\n{}", self.logs());
            }
        }
        let deadline = Instant::now() + CLUSTER_START_DEADLINE;
        for id in self.ids() {
            if let Err(e) = self.node(id).wait_ready(deadline) {
                panic!("node {id} did not restart: {e}\n{}", self.logs());
            }
        }
        let expected = self.size();
        let voter_count = self.voters.split(',').count() as i32;
        self.wait_for(
            "every node to list every broker and a controller after restarting all",
            CLUSTER_START_DEADLINE,
            |cluster| {
                cluster
                    .ids()
                    .into_iter()
                    .all(|id| {
                        let listed = cluster
                            .metadata_from(id, Some(&[]))
                            .is_ok_and(|m| m.brokers.len() == expected);
                        let controller = cluster.controller_id_from(id);
                        listed && controller.is_some_and(|c| (1..=voter_count).contains(&c))
                    })
                    .then_some(())
            },
        );
    }
}

/// The file holding node `id`'s wall-clock offset (libfaketime's format: `+30`, `-600`).
pub(super) fn clock_offset_file(faults_dir: &Path, id: i32) -> PathBuf {
    faults_dir.join(format!("clock-node-{id}"))
}

/// The environment that preloads libfaketime for node `id`, its clock offset 0 for now: the
/// offset file is re-read at most once a second, and the monotonic clock is not faked.
pub(super) fn clock_env(faults_dir: &Path, id: i32) -> Result<Vec<(String, String)>, String> {
    let file = clock_offset_file(faults_dir, id);
    std::fs::write(&file, "+0\n").map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(vec![
        (
            "LD_PRELOAD".into(),
            crate::faketime_library().display().to_string(),
        ),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ])
}

/// The file whose existence makes node `id`'s fsyncs fail (`sluiced-faults`).
pub(super) fn fail_fsync_trigger(faults_dir: &Path, id: i32) -> PathBuf {
    faults_dir.join(format!("fail-fsync-node-{id}"))
}
