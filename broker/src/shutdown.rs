//! The broker-wide shutdown signal: a `watch` channel whose value turns `true` once, read
//! by every long-running task (the metadata loop, fetchers, the controller's loops).

use tokio::sync::watch;

/// Resolve once `shutdown` is true or its sender is gone (the guard is not held across awaits).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}
