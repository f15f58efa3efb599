//! One running broker: open the logs, serve metrics and the Kafka listener, run retention,
//! and shut down cleanly on SIGINT/SIGTERM.
//!
//! # The cluster id
//!
//! A cluster has one id, kept in the replicated controller metadata. A broker proposes the
//! id in its data dir's `cluster.id` (created on first start) when it registers; the first
//! proposal the metadata sees is kept, and every broker then adopts the kept id, rewriting
//! its `cluster.id` when it differs. A single-node broker is the first to register with its
//! own metadata, so it keeps the id its data dir had.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cluster::ClusterNode;
use crate::config::{Config, LogFormat};
use crate::controller::metadata::check_cluster_id;
use crate::metrics as m;
use crate::server::{self, Broker};
use crate::storage::{
    FileSystem, IndexHandleLimit, LogManager, StdFileSystem, INDEX_HANDLES_OPEN_MAX,
};
use sluice_protocol::clock::now_ms;

/// The process: flags, logging, a runtime, [`run_with`] over `base_fs`; exits non-zero
/// on a configuration or start-up error. `sluiced` passes the real file system.
pub fn main(base_fs: Arc<dyn FileSystem>) {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sluiced: configuration error: {e}");
            std::process::exit(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluiced: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run_with(config, base_fs)) {
        tracing::error!("{e}");
        eprintln!("sluiced: {e}");
        std::process::exit(1);
    }
}

/// Run a broker until a shutdown signal; returns once the logs are flushed and the
/// clean-shutdown marker is written.
pub async fn run(config: Config) -> Result<(), String> {
    run_with(config, Arc::new(StdFileSystem)).await
}

/// [`run`] with its logs, checkpoints and metadata log on `base_fs`.
pub async fn run_with(config: Config, base_fs: Arc<dyn FileSystem>) -> Result<(), String> {
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let local_cluster_id = LocalClusterId::read_or_create(&config.data_dir)?;
    m::install(config.metrics_listen)?;
    let fs: Arc<dyn FileSystem> = Arc::new(IndexHandleLimit::new(base_fs, INDEX_HANDLES_OPEN_MAX));
    let logs = LogManager::open(fs.clone(), config.data_dir.clone(), config.log_defaults())
        .map_err(|e| format!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    let logs = Arc::new(logs);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Bind first, so a taken port fails fast; accept only once the cluster is joined.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let cluster = tokio::select! {
        joined = ClusterNode::start(&config, fs, logs.clone(), &local_cluster_id.id, shutdown_rx.clone()) => joined?,
        signal = shutdown_signal() => {
            let _ = shutdown_tx.send(true);
            return Err(format!("{signal} before the broker joined the cluster"));
        }
    };
    local_cluster_id.adopt(&config.data_dir, &cluster.cluster_id)?;
    let broker = Arc::new(Broker::new(&config, logs.clone(), &cluster)?);
    let (host, port) = config.advertised()?;
    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen,
        advertised = %format!("{host}:{port}"),
        metrics = %format!("http://{}/metrics", config.metrics_listen),
        data_dir = %config.data_dir.display(),
        cluster_id = %cluster.cluster_id,
        durability = %config.durability,
        topics = logs.topics().len(),
        internal = %config.internal_listen,
        broker_epoch = cluster.broker_epoch,
        "sluiced listening"
    );

    let retention = tokio::spawn(retention_loop(
        logs.clone(),
        cluster.replicas.clone(),
        Duration::from_millis(config.retention_check_interval_ms.max(1)),
        shutdown_rx.clone(),
    ));
    let cleaner = tokio::spawn(cleaner_loop(
        logs.clone(),
        cluster.replicas.clone(),
        Duration::from_millis(config.log_cleaner_backoff_ms.max(1)),
        crate::storage::CleanLimits {
            first_uncleanable_offset: 0,
            offset_map_bytes_max: usize::try_from(config.log_cleaner_dedupe_buffer_size)
                .unwrap_or(usize::MAX),
            io_bytes_per_sec_max: config.log_cleaner_io_max_bytes_per_second,
        },
        shutdown_rx.clone(),
    ));
    let grace = Duration::from_millis(config.shutdown_timeout_ms);
    let server = tokio::spawn(server::serve(broker, listener, shutdown_rx, grace));

    let signal = tokio::select! {
        signal = shutdown_signal() => signal,
        reason = logs.dir_failed() => halt_on_dir_failure(&config.data_dir, &reason),
    };
    tracing::info!(signal, "shutting down");
    if !config.controller_voters.0.is_empty() {
        // Hand leaderships over while still serving, so clients are redirected, not failed.
        cluster.controlled_shutdown(grace).await;
    }
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    let _ = retention.await;
    let _ = cleaner.await;
    cluster.stop().await;
    let logs_for_flush = logs.clone();
    tokio::task::spawn_blocking(move || logs_for_flush.shutdown())
        .await
        .map_err(|e| format!("shutdown task failed: {e}"))?
        .map_err(|e| format!("flush on shutdown failed: {e}"))?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

/// A write or fsync failed in the data directory: what the disk holds is unknown, and every
/// log in it suspect. Kafka halts a broker whose only log directory went offline; so does
/// this, at once and without a clean-shutdown marker, so that the restart recovers every log
/// from what is really on disk. Its replicas are fenced and led elsewhere meanwhile.
fn halt_on_dir_failure(data_dir: &Path, reason: &str) -> ! {
    tracing::error!(
        data_dir = %data_dir.display(),
        %reason,
        "the data directory failed; halting (fix the disk, then restart: recovery reads back what it holds)"
    );
    eprintln!(
        "sluiced: the data directory {} failed: {reason}; halting",
        data_dir.display()
    );
    std::process::exit(3);
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn retention_loop(
    logs: Arc<LogManager>,
    replicas: Arc<crate::replica::ReplicaManager>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                let logs = logs.clone();
                let replicas = replicas.clone();
                // Never past the high watermark: followers may still need those records.
                let limit = move |log: &crate::storage::PartitionLog| {
                    replicas.high_watermark_of(log.name()).unwrap_or(0)
                };
                let deleted = tokio::task::spawn_blocking(move || logs.apply_retention_below(now_ms(), &limit)).await.unwrap_or(0);
                // Storage counts the deleted segments and bytes and logs each partition.
                if deleted > 0 {
                    tracing::debug!(segments = deleted, "retention pass deleted segments");
                }
            }
        }
    }
}

/// Compact the partitions whose topics say `cleanup.policy=compact` (Kafka's log cleaner)
/// every `every`, one pass at a time on a blocking thread: each below its high watermark,
/// so records a follower or a `read_committed` reader has not seen as final stay whole,
/// with `limits`' offset map and I/O rate.
async fn cleaner_loop(
    logs: Arc<LogManager>,
    replicas: Arc<crate::replica::ReplicaManager>,
    every: Duration,
    limits: crate::storage::CleanLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                let (logs, replicas) = (logs.clone(), replicas.clone());
                let limit = move |log: &crate::storage::PartitionLog| {
                    replicas.high_watermark_of(log.name()).unwrap_or(0)
                };
                let pass = tokio::task::spawn_blocking(move || {
                    logs.clean_pass(now_ms(), &limit, limits)
                });
                if let Ok(stats) = pass.await {
                    if stats.partitions_cleaned > 0 {
                        tracing::debug!(?stats, "log cleaner pass");
                    }
                }
            }
        }
    }
}

/// Hold an exclusive lock on the data dir for the life of the process, so that a second
/// broker pointed at the same directory refuses to start instead of corrupting it.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "data dir {} is in use by another sluiced process",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// The file in the data dir that holds the cluster id.
const CLUSTER_ID_FILE: &str = "cluster.id";

/// The cluster id in a data dir's `cluster.id`: what this broker proposes when it registers.
#[derive(Debug)]
struct LocalClusterId {
    id: String,
    origin: Origin,
}

/// Whether the data dir had a cluster id before this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Found,
    Created,
}

impl LocalClusterId {
    /// Read the data dir's cluster id, or create a random one (a new data dir).
    fn read_or_create(data_dir: &Path) -> Result<LocalClusterId, String> {
        let path = data_dir.join(CLUSTER_ID_FILE);
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => {
                let id = id.trim().to_string();
                check_cluster_id(&id).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(LocalClusterId {
                    id,
                    origin: Origin::Found,
                })
            }
            _ => {
                let id = uuid_string();
                write_cluster_id(data_dir, &id)?;
                Ok(LocalClusterId {
                    id,
                    origin: Origin::Created,
                })
            }
        }
    }

    /// Make the data dir hold the cluster's id (the metadata's), which differs from this
    /// one when another broker registered first.
    fn adopt(&self, data_dir: &Path, cluster_id: &str) -> Result<(), String> {
        if self.id == cluster_id {
            return Ok(());
        }
        match self.origin {
            Origin::Found => tracing::warn!(
                data_dir_cluster_id = %self.id,
                cluster_id = %cluster_id,
                data_dir = %data_dir.display(),
                "the data dir's cluster.id differs from the cluster's (from another cluster, or written before cluster ids were replicated); adopting the cluster's"
            ),
            Origin::Created => {
                tracing::info!(cluster_id = %cluster_id, "adopting the cluster's id")
            }
        }
        write_cluster_id(data_dir, cluster_id)
    }
}

/// Replace the data dir's `cluster.id` atomically: temp file, fsync, rename, fsync of the
/// directory.
fn write_cluster_id(data_dir: &Path, id: &str) -> Result<(), String> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let tmp = data_dir.join("cluster.id.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(id.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn uuid_string() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Uuid::from_bytes(bytes).simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(CLUSTER_ID_FILE)).unwrap()
    }

    #[test]
    fn a_new_data_dir_gets_an_id_that_the_next_start_finds() {
        let dir = tempfile::tempdir().unwrap();
        let created = LocalClusterId::read_or_create(dir.path()).unwrap();
        assert_eq!(created.origin, Origin::Created);
        assert_eq!(file(dir.path()), created.id);
        let found = LocalClusterId::read_or_create(dir.path()).unwrap();
        assert_eq!(found.origin, Origin::Found);
        assert_eq!(found.id, created.id);
    }

    #[test]
    fn adopting_the_clusters_id_rewrites_the_file_only_when_it_differs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLUSTER_ID_FILE), "mine\n").unwrap();
        let local = LocalClusterId::read_or_create(dir.path()).unwrap();
        assert_eq!(local.id, "mine");
        local.adopt(dir.path(), "mine").unwrap();
        assert_eq!(file(dir.path()), "mine\n", "an agreeing file is left alone");
        local.adopt(dir.path(), "theirs").unwrap();
        assert_eq!(file(dir.path()), "theirs");
        assert!(!dir.path().join("cluster.id.tmp").exists());
    }

    #[test]
    fn a_malformed_id_in_the_data_dir_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLUSTER_ID_FILE), "two words").unwrap();
        let error = LocalClusterId::read_or_create(dir.path()).unwrap_err();
        assert!(error.contains("cluster.id"), "{error}");
    }
}
