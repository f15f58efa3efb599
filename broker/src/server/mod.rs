//! The Kafka-protocol server: accepting connections, and the state request handlers share.
//!
//! One tokio task per connection ([`connection`]); requests on a connection are answered in
//! order (Kafka's rule) while up to `in_flight_requests_max` of them are worked on at once;
//! [`dispatch`] holds the one `match` on the API key that sends each request to its handler
//! in [`api`]. Connections are capped by a semaphore; a connection over the cap is closed at
//! once and counted.
//!
//! Idempotent producers: [`producer_ids`] hands out producer ids (InitProducerId) that stay
//! unique across restarts; the replica manager keeps, per partition, each producer's epoch
//! and last batches (`replica::producer_state`) so that Produce can drop retried duplicates
//! and refuse out-of-order or fenced batches. Transactions are not supported.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting, tell every connection to stop reading, let
//! in-flight requests finish (bounded by `shutdown_timeout_ms`), then the caller flushes the
//! logs and writes the clean-shutdown marker.

pub mod api;
pub mod connection;
pub mod dispatch;
pub mod net;
pub mod producer_ids;
pub mod request_memory;

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::error::ErrorCode;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use std::collections::BTreeMap;

use crate::cluster::{ClusterNode, ControllerClient};
use crate::config::Config;
use crate::controller::{CommandOutcome, MetadataCommand, MetadataError, NewTopic};
use crate::fetch_session::FetchSessionCache;
use crate::group::coordinator::GroupCoordinator;
use crate::group::offsets_topic::OffsetsTopicConfig;
use crate::metrics as m;
pub use crate::replica::storage_error_code;
use crate::replica::ReplicaManager;
use crate::storage::{LogManager, PartitionLog};
use net::Listener;
use producer_ids::ProducerIdAllocator;

/// Limits every handler enforces, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub frame_bytes_max: usize,
    pub fetch_bytes_max: usize,
    pub in_flight_requests_max: usize,
    pub connections_max: usize,
    /// A connection idle this long (no whole request read, nothing to answer) is closed.
    pub connections_max_idle: std::time::Duration,
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

/// Broker-wide defaults for new topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    pub partitions: i32,
    pub replication_factor: i16,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
}

/// A topic as the metadata log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
}

/// A topic a client asks to create (CreateTopics, auto-creation); -1 replication factor
/// means the broker default.
#[derive(Debug, Clone)]
pub struct TopicRequest {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replicas per partition chosen by the client (CreateTopics' manual assignment);
    /// `partitions` and `replication_factor` are then taken from it.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// How long an admin request waits for the controller.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(15);

/// What the request handlers share. Handlers take the parts they need.
pub struct Broker {
    pub identity: Identity,
    pub limits: Limits,
    pub auto_create: AutoCreate,
    pub topic_defaults: TopicDefaults,
    pub logs: Arc<LogManager>,
    /// The partitions this broker hosts and their replication state.
    pub replicas: Arc<ReplicaManager>,
    /// The way to the active controller, for admin requests.
    pub controller: ControllerClient,
    /// Producer ids for InitProducerId.
    pub producer_ids: ProducerIdAllocator,
    /// How `__consumer_offsets` is created.
    pub offsets_topic: OffsetsTopicConfig,
    /// The group coordinator of the offsets partitions this broker leads.
    pub groups: Arc<GroupCoordinator>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessionCache,
    /// The bytes of requests read and not yet answered, over all connections.
    pub request_memory: request_memory::RequestMemory,
}

impl Broker {
    /// A broker of `cluster`, whose id (the replicated one) it tells clients.
    pub fn new(
        config: &Config,
        logs: Arc<LogManager>,
        cluster: &ClusterNode,
    ) -> Result<Broker, String> {
        let (host, port) = config.advertised()?;
        let producer_ids = ProducerIdAllocator::open(&config.data_dir)?;
        Ok(Broker {
            identity: Identity {
                node_id: config.node_id,
                host,
                port,
                cluster_id: cluster.cluster_id.clone(),
            },
            limits: Limits {
                frame_bytes_max: config.frame_bytes_max,
                fetch_bytes_max: config.fetch_bytes_max,
                in_flight_requests_max: config.in_flight_requests_max,
                connections_max: config.connections_max,
                connections_max_idle: std::time::Duration::from_millis(
                    config.connections_max_idle_ms,
                ),
            },
            auto_create: if config.auto_create_topics {
                AutoCreate::Enabled {
                    partitions: config.default_partitions,
                }
            } else {
                AutoCreate::Disabled
            },
            topic_defaults: TopicDefaults {
                partitions: config.default_partitions,
                replication_factor: config.default_replication_factor,
                min_insync_replicas: config.min_insync_replicas,
                unclean_leader_election: config.unclean_leader_election,
            },
            logs,
            replicas: cluster.replicas.clone(),
            controller: cluster.client.clone(),
            producer_ids,
            groups: GroupCoordinator::start(cluster.replicas.clone(), config.coordinator_config()),
            fetch_sessions: FetchSessionCache::new(config.fetch_session_cache_slots),
            request_memory: request_memory::RequestMemory::new(config.queued_max_request_bytes),
            offsets_topic: OffsetsTopicConfig {
                partitions: config.offsets_topic_num_partitions,
                replication_factor: config.offsets_topic_replication_factor,
                segment_bytes: config.offsets_topic_segment_bytes,
            },
        })
    }

    /// The topic as the metadata knows it.
    pub fn topic(&self, name: &str) -> Option<TopicView> {
        self.replicas.metadata().read(|state| {
            state.topic_by_name(name).map(|topic| TopicView {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.len() as i32,
            })
        })
    }

    /// The topic, created with the defaults if it does not exist and auto-creation is on.
    pub async fn topic_or_auto_create(&self, name: &str) -> Result<TopicView, ErrorCode> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let AutoCreate::Enabled { partitions } = self.auto_create else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        match self
            .create_topic(name, partitions, -1, BTreeMap::new(), false)
            .await
        {
            Ok(_) => {
                // The request that named the topic is served right away.
                self.replicas.reconcile();
                tracing::info!(topic = name, partitions, "auto-created topic");
                metrics::counter!(m::TOPICS_AUTO_CREATED_TOTAL).increment(1);
            }
            Err((ErrorCode::TopicAlreadyExists, _)) => {}
            Err((code, message)) => {
                tracing::info!(topic = name, ?code, %message, "auto-creating topic failed");
                return Err(match code {
                    // Not enough brokers yet, say: the client retries.
                    ErrorCode::InvalidReplicationFactor => ErrorCode::LeaderNotAvailable,
                    other => other,
                });
            }
        }
        self.topic(name).ok_or(ErrorCode::LeaderNotAvailable)
    }

    /// Create a topic through the controller and wait until this broker hosts it.
    /// `replication_factor` -1 means the broker default. Returns the topic and its
    /// replication factor.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(TopicView, i16), (ErrorCode, String)> {
        let request = TopicRequest {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
            assignment: None,
        };
        self.create_topics(vec![request], validate_only)
            .await
            .pop()
            .expect("one result per topic")
    }

    /// Create topics through the controller in one metadata log entry, and wait until this
    /// broker's metadata has them. One result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: Vec<TopicRequest>,
        validate_only: bool,
    ) -> Vec<Result<(TopicView, i16), (ErrorCode, String)>> {
        let mut results = Vec::with_capacity(topics.len());
        let mut new_topics = Vec::new();
        for topic in topics {
            let checked = self.check_new_topic(topic, validate_only);
            if let Ok(new) = &checked {
                new_topics.push((results.len(), new.clone()));
            }
            results.push(checked.map(|new| {
                let view = TopicView {
                    name: new.name.clone(),
                    id: uuid::Uuid::nil(),
                    partitions: new.partitions,
                };
                (view, new.replication_factor)
            }));
        }
        if validate_only || new_topics.is_empty() {
            return results;
        }
        let command = MetadataCommand::CreateTopics {
            topics: new_topics.iter().map(|(_, new)| new.clone()).collect(),
        };
        let outcomes = match self.controller.submit(command, CONTROLLER_TIMEOUT).await {
            Ok((index, Ok(CommandOutcome::TopicsCreated { results }))) => {
                // Answer once this broker's metadata has the topics, as Kafka's controller
                // answers once it committed them: the metadata loop creates the local logs
                // right after, and until a leader has its log it answers
                // NOT_LEADER_OR_FOLLOWER, which clients retry.
                self.controller
                    .wait_applied(index, CONTROLLER_TIMEOUT)
                    .await;
                results
            }
            failed => {
                let error = match failed {
                    Ok((_, Err(error))) => (metadata_error_code(&error), error.to_string()),
                    Err(error) => (
                        ErrorCode::RequestTimedOut,
                        format!("the controller did not answer: {error}"),
                    ),
                    Ok((_, Ok(other))) => (
                        ErrorCode::UnknownServerError,
                        format!("unexpected controller answer {other:?}"),
                    ),
                };
                for (slot, _) in &new_topics {
                    results[*slot] = Err(error.clone());
                }
                return results;
            }
        };
        for ((slot, new), outcome) in new_topics.iter().zip(outcomes) {
            results[*slot] = match outcome {
                Ok(_) => self
                    .topic(&new.name)
                    .map(|view| (view, new.replication_factor))
                    .ok_or((
                        ErrorCode::RequestTimedOut,
                        format!(
                            "topic '{}' was created but is not visible here yet",
                            new.name
                        ),
                    )),
                Err(error) => Err((metadata_error_code(&error), error.to_string())),
            };
        }
        results
    }

    /// What the broker checks of a new topic before the controller sees it, with the
    /// broker's defaults applied.
    fn check_new_topic(
        &self,
        topic: TopicRequest,
        validate_only: bool,
    ) -> Result<NewTopic, (ErrorCode, String)> {
        let TopicRequest {
            name,
            partitions,
            replication_factor,
            mut configs,
            assignment,
        } = topic;
        let defaults = self.topic_defaults;
        let (partitions, replication_factor) = match &assignment {
            // The controller checks the lists themselves.
            Some(lists) => (
                i32::try_from(lists.len()).unwrap_or(i32::MAX),
                lists
                    .first()
                    .map_or(0, |r| i16::try_from(r.len()).unwrap_or(i16::MAX)),
            ),
            None if replication_factor == -1 => (partitions, defaults.replication_factor),
            None => (partitions, replication_factor),
        };
        if defaults.min_insync_replicas != 1 {
            configs
                .entry("min.insync.replicas".to_string())
                .or_insert_with(|| defaults.min_insync_replicas.to_string());
        }
        if defaults.unclean_leader_election {
            configs
                .entry("unclean.leader.election.enable".to_string())
                .or_insert_with(|| "true".to_string());
        }
        self.logs
            .validate_configs(&configs)
            .map_err(|e| (storage_error_code(&e), e.to_string()))?;
        if partitions < 1 {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("partition count must be at least 1, got {partitions}"),
            ));
        }
        if replication_factor < 1 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!("replication factor must be at least 1, got {replication_factor}"),
            ));
        }
        if let Some(existing) = self.topic(&name) {
            return Err((
                ErrorCode::TopicAlreadyExists,
                format!("topic '{}' already exists", existing.name),
            ));
        }
        if validate_only && assignment.is_none() {
            let brokers = self
                .replicas
                .metadata()
                .read(|state| state.brokers().filter(|b| b.is_eligible()).count());
            if usize::try_from(replication_factor).unwrap_or(0) > brokers {
                return Err((
                    ErrorCode::InvalidReplicationFactor,
                    format!("replication factor {replication_factor} needs that many eligible brokers; {brokers} are"),
                ));
            }
        }
        Ok(NewTopic {
            name,
            id: uuid::Uuid::from_bytes(rand::random()),
            partitions,
            replication_factor,
            configs,
            assignment,
        })
    }

    /// Submit a metadata command; its log index on success, or the Kafka error.
    pub async fn controller_command(
        &self,
        command: MetadataCommand,
    ) -> Result<u64, (ErrorCode, String)> {
        match self.controller.submit(command, CONTROLLER_TIMEOUT).await {
            Ok((index, Ok(_outcome))) => Ok(index),
            Ok((_, Err(error))) => Err((metadata_error_code(&error), error.to_string())),
            Err(error) => Err((
                ErrorCode::RequestTimedOut,
                format!("the controller did not answer: {error}"),
            )),
        }
    }

    /// Wait (bounded) until this broker's metadata and hosted replicas reflect log `index`.
    pub async fn caught_up_to(&self, index: u64) {
        self.controller
            .wait_applied(index, CONTROLLER_TIMEOUT)
            .await;
        self.replicas.reconcile();
    }

    /// The active controller's id as this node's quorum member knows it (-1 while none is
    /// known). Clients are told [`Broker::client_controller_id`] instead.
    pub fn controller_id(&self) -> i32 {
        self.controller
            .controller()
            .current_leader()
            .map_or(-1, |id| id as i32)
    }

    /// The controller id Metadata and DescribeCluster give clients: this broker. Any broker
    /// takes admin requests and forwards them to the active controller (KIP-590), so a
    /// client that sends them where the "controller" is (librdkafka, Java's admin) reaches a
    /// live broker even while the active controller's node is dead and not yet replaced or
    /// fenced. Kafka names a random live (unfenced) broker, which may be one that just died.
    pub fn client_controller_id(&self) -> i32 {
        self.identity.node_id
    }

    /// The brokers clients are told about (Metadata, DescribeCluster): every broker that is
    /// not fenced, and this one, each with its client endpoint.
    pub fn listed_brokers<'a>(
        &self,
        state: &'a crate::controller::MetadataState,
    ) -> impl Iterator<
        Item = (
            &'a crate::controller::Broker,
            &'a crate::controller::Endpoint,
        ),
    > + 'a {
        let me = self.identity.node_id;
        state
            .brokers()
            .filter(move |b| b.id == me || b.status != crate::controller::BrokerStatus::Fenced)
            .filter_map(|b| Some((b, b.client_endpoint()?)))
    }

    /// Every registered broker with a client endpoint, fenced or not: what DescribeCluster
    /// v2 lists when a client asks for fenced brokers too (KIP-1073). Metadata never does.
    pub fn registered_brokers(
        state: &crate::controller::MetadataState,
    ) -> impl Iterator<Item = (&crate::controller::Broker, &crate::controller::Endpoint)> {
        state
            .brokers()
            .filter_map(|b| Some((b, b.client_endpoint()?)))
    }
}

/// Metadata (controller) errors as wire error codes.
pub fn metadata_error_code(error: &MetadataError) -> ErrorCode {
    error.code()
}

/// The offset below which a log's records are on disk (fsync durability) or written.
pub fn durable_end(log: &PartitionLog) -> i64 {
    log.durable_offset().min(log.log_end_offset())
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
                let open = m::OpenConnection::open("client");
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    connection::serve_connection(broker, stream, peer, shutdown).await;
                    drop(open);
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

#[cfg(any(test, feature = "fuzzing"))]
pub mod testing {
    //! An in-process single-node [`Broker`] (its own controller) over a temporary data dir,
    //! for handler tests and the dispatcher fuzz target (`broker/fuzz`, feature `fuzzing`).

    use std::path::Path;
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::Broker;
    use crate::cluster::ClusterNode;
    use crate::config::{Config, Flags};
    use crate::storage::{FileSystem, LogManager, StdFileSystem};

    /// A running single-node broker; stopped (background tasks, controller) on [`stop`].
    pub struct TestBroker {
        broker: Option<Arc<Broker>>,
        cluster: Option<ClusterNode>,
        shutdown: watch::Sender<bool>,
    }

    impl std::ops::Deref for TestBroker {
        type Target = Broker;
        fn deref(&self) -> &Broker {
            self.broker.as_ref().expect("broker")
        }
    }

    impl TestBroker {
        /// The broker, shared, as the listener hands it to [`dispatch::handle`](super::dispatch::handle).
        pub fn shared(&self) -> Arc<Broker> {
            Arc::clone(self.broker.as_ref().expect("broker"))
        }

        /// Stop everything and flush the logs, as a clean shutdown does.
        pub async fn stop(mut self) {
            let _ = self.shutdown.send(true);
            let broker = self.broker.take().expect("broker");
            broker.logs.shutdown().expect("flush logs");
            drop(broker);
            if let Some(cluster) = self.cluster.take() {
                cluster.stop().await;
            }
        }
    }

    impl Drop for TestBroker {
        fn drop(&mut self) {
            let _ = self.shutdown.send(true);
        }
    }

    /// A broker with default settings on `data_dir` (opened, recovering if needed), led by
    /// its own controller.
    pub async fn broker(data_dir: &Path) -> TestBroker {
        let flags = Flags {
            data_dir: Some(data_dir.to_path_buf()),
            ..Flags::default()
        };
        let config = Config::load_from(flags, &|_| None).expect("default config");
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let logs = Arc::new(
            LogManager::open(fs.clone(), data_dir.to_path_buf(), config.log_defaults())
                .expect("open data dir"),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cluster = ClusterNode::start(&config, fs, logs.clone(), "test-cluster", shutdown_rx)
            .await
            .expect("single-node cluster");
        let broker = Arc::new(Broker::new(&config, logs, &cluster).expect("broker"));
        TestBroker {
            broker: Some(broker),
            cluster: Some(cluster),
            shutdown,
        }
    }
}
