//! The Kafka-protocol server: accepting connections, and the state request handlers share.
//!
//! One tokio task per connection ([`connection`]); requests on a connection are answered in
//! order (Kafka's rule) while up to `in_flight_requests_max` of them are worked on at once;
//! [`dispatch`] holds the one `match` on the API key that sends each request to its handler
//! in [`api`]. Connections are capped by a semaphore; a connection over the cap is closed at
//! once and counted.
//!
//! Idempotent producers: [`producer_ids`] hands out producer ids (InitProducerId) that stay
//! unique across restarts; [`producer_state`] keeps, per partition, each producer's epoch and
//! last batches so that Produce can drop retried duplicates and refuse out-of-order or fenced
//! batches. Transactions are not supported.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting, tell every connection to stop reading, let
//! in-flight requests finish (bounded by `shutdown_timeout_ms`), then the caller flushes the
//! logs and writes the clean-shutdown marker.

pub mod api;
pub mod connection;
pub mod dispatch;
pub mod net;
pub mod producer_ids;
pub mod producer_state;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_protocol::error::ErrorCode;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics as m;
use crate::storage::{LogManager, PartitionLog, StorageError, TopicInfo};
use net::Listener;
use producer_ids::ProducerIdAllocator;
use producer_state::ProducerStateRegistry;

/// Limits every handler enforces, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub frame_bytes_max: usize,
    pub fetch_bytes_max: usize,
    pub in_flight_requests_max: usize,
    pub connections_max: usize,
}

/// Where this broker tells clients to connect, and who it is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub cluster_id: String,
}

/// Topic-creation policy for topics a client names that do not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCreate {
    Enabled { partitions: i32 },
    Disabled,
}

/// What the request handlers share. Handlers take the parts they need.
pub struct Broker {
    pub identity: Identity,
    pub limits: Limits,
    pub auto_create: AutoCreate,
    pub logs: Arc<LogManager>,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// Idempotent-producer state of every partition, for Produce.
    pub producers: ProducerStateRegistry,
}

impl Broker {
    pub fn new(
        config: &Config,
        logs: Arc<LogManager>,
        cluster_id: String,
    ) -> Result<Broker, String> {
        let (host, port) = config.advertised()?;
        let producer_ids = ProducerIdAllocator::open(&config.data_dir)?;
        Ok(Broker {
            identity: Identity {
                node_id: config.node_id,
                host,
                port,
                cluster_id,
            },
            limits: Limits {
                frame_bytes_max: config.frame_bytes_max,
                fetch_bytes_max: config.fetch_bytes_max,
                in_flight_requests_max: config.in_flight_requests_max,
                connections_max: config.connections_max,
            },
            auto_create: if config.auto_create_topics {
                AutoCreate::Enabled {
                    partitions: config.default_partitions,
                }
            } else {
                AutoCreate::Disabled
            },
            logs,
            producer_ids,
            producers: ProducerStateRegistry::default(),
        })
    }

    /// The topic, created with the default partition count if auto-creation is on.
    pub fn topic_or_auto_create(&self, name: &str) -> Result<TopicInfo, ErrorCode> {
        if let Some(topic) = self.logs.topic(name) {
            return Ok(topic);
        }
        let AutoCreate::Enabled { partitions } = self.auto_create else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        match self.logs.create_topic(name, partitions, Default::default()) {
            Ok(topic) => {
                tracing::info!(topic = name, partitions, "auto-created topic");
                metrics::counter!(m::TOPICS_AUTO_CREATED_TOTAL).increment(1);
                Ok(topic)
            }
            Err(StorageError::TopicAlreadyExists(_)) => self
                .logs
                .topic(name)
                .ok_or(ErrorCode::UnknownTopicOrPartition),
            Err(e) => Err(storage_error_code(&e)),
        }
    }
}

/// The one place storage errors become wire error codes.
pub fn storage_error_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::Poisoned(_) | StorageError::Io(_) | StorageError::Corrupt(_) => {
            ErrorCode::KafkaStorageError
        }
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. } => {
            ErrorCode::UnknownTopicOrPartition
        }
        StorageError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
        StorageError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
        StorageError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        StorageError::InvalidConfig(_) => ErrorCode::InvalidConfig,
    }
}

/// The offset below which records are visible to consumers. On a single node that is the
/// log end offset, or with fsync durability the end of what has been fsynced.
pub fn high_watermark(log: &PartitionLog) -> i64 {
    log.durable_offset().min(log.log_end_offset())
}

/// Wall-clock milliseconds since the epoch, for timestamps and segment age.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Accept connections until `shutdown` turns true, then wait for connections to finish
/// their in-flight requests, at most `grace`.
pub async fn serve<L: Listener>(
    broker: Arc<Broker>,
    listener: L,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(broker.limits.connections_max));
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(ok) => ok,
                    Err(e) => {
                        // EMFILE and friends: back off briefly rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = broker.limits.connections_max, "connection limit reached; closing new connection");
                    metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "connections_max").increment(1);
                    drop(stream);
                    continue;
                };
                metrics::counter!(m::CONNECTIONS_TOTAL).increment(1);
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    metrics::gauge!(m::CONNECTIONS_ACTIVE).increment(1.0);
                    connection::serve_connection(broker, stream, peer, shutdown).await;
                    metrics::gauge!(m::CONNECTIONS_ACTIVE).decrement(1.0);
                    drop(permit);
                });
            }
        }
    }
    tracing::info!("stopped accepting connections; finishing in-flight requests");
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "connections still busy after the shutdown grace period; closing them"
        );
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-process [`Broker`] over a temporary data dir, for handler tests.

    use std::path::Path;
    use std::sync::Arc;

    use super::Broker;
    use crate::config::{Config, Flags};
    use crate::storage::{LogManager, StdFileSystem};

    /// A broker with default settings on `data_dir` (opened, recovering if needed).
    pub fn broker(data_dir: &Path) -> Broker {
        let flags = Flags {
            data_dir: Some(data_dir.to_path_buf()),
            ..Flags::default()
        };
        let config = Config::load_from(flags, &|_| None).expect("default config");
        let logs = LogManager::open(
            Arc::new(StdFileSystem),
            data_dir.to_path_buf(),
            config.log_defaults(),
        )
        .expect("open data dir");
        Broker::new(&config, Arc::new(logs), "test-cluster".to_string()).expect("broker")
    }
}
