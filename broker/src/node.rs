//! One running broker: open the logs, serve metrics and the Kafka listener, run retention,
//! and shut down cleanly on SIGINT/SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::ClusterNode;
use crate::config::Config;
use crate::metrics as m;
use crate::server::{self, now_ms, Broker};
use crate::storage::{LogManager, StdFileSystem};

/// Run a broker until a shutdown signal; returns once the logs are flushed and the
/// clean-shutdown marker is written.
pub async fn run(config: Config) -> Result<(), String> {
    let cluster_id = cluster_id(&config.data_dir)?;
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    m::install(config.metrics_listen)?;
    let fs: Arc<dyn crate::storage::FileSystem> = Arc::new(StdFileSystem);
    let logs = LogManager::open(fs.clone(), config.data_dir.clone(), config.log_defaults())
        .map_err(|e| format!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    let logs = Arc::new(logs);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Bind first, so a taken port fails fast; accept only once the cluster is joined.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let cluster = tokio::select! {
        joined = ClusterNode::start(&config, fs, logs.clone(), shutdown_rx.clone()) => joined?,
        signal = shutdown_signal() => {
            let _ = shutdown_tx.send(true);
            return Err(format!("{signal} before the broker joined the cluster"));
        }
    };
    let broker = Arc::new(Broker::new(
        &config,
        logs.clone(),
        cluster_id.clone(),
        &cluster,
    )?);
    let (host, port) = config.advertised()?;
    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen,
        advertised = %format!("{host}:{port}"),
        metrics = %format!("http://{}/metrics", config.metrics_listen),
        data_dir = %config.data_dir.display(),
        cluster_id = %cluster_id,
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
    let grace = Duration::from_millis(config.shutdown_timeout_ms);
    let server = tokio::spawn(server::serve(broker, listener, shutdown_rx, grace));

    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    if !config.controller_voters.0.is_empty() {
        // Hand leaderships over while still serving, so clients are redirected, not failed.
        cluster.controlled_shutdown(grace).await;
    }
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    let _ = retention.await;
    cluster.stop().await;
    let logs_for_flush = logs.clone();
    tokio::task::spawn_blocking(move || logs_for_flush.shutdown())
        .await
        .map_err(|e| format!("shutdown task failed: {e}"))?
        .map_err(|e| format!("flush on shutdown failed: {e}"))?;
    tracing::info!("clean shutdown complete");
    Ok(())
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
    replicas: Arc<crate::cluster::ReplicaManager>,
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

/// Hold an exclusive lock on the data dir for the life of the process, so that a second
/// broker pointed at the same directory refuses to start instead of corrupting it.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
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

/// The cluster id, created on first start and kept in the data dir.
fn cluster_id(data_dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let path = data_dir.join("cluster.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid_string();
            let tmp = data_dir.join("cluster.id.tmp");
            std::fs::write(&tmp, &id)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(id)
        }
    }
}

fn uuid_string() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Uuid::from_bytes(bytes).simple().to_string()
}
