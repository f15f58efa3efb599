//! What the client knows about the cluster, and its connections to it.
//!
//! Owns the bootstrap list, the metadata cache (brokers, topics, partition leaders) and one
//! [`Connection`] per broker id. Producer, consumer and admin share one [`Cluster`].
//!
//! - The cache is an immutable [`Metadata`] snapshot behind a lock, swapped whole on every
//!   refresh, so readers on the hot path take the lock only to clone an `Arc`.
//! - Refreshes are on demand: when a topic is first used, and when a request fails in a way
//!   that says the cache is stale (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
//!   LEADER_NOT_AVAILABLE, a dead connection; see [`Error::needs_metadata_refresh`]).
//!   Concurrent refreshes collapse into one ("single flight"): a caller that waited for a
//!   refresh already in progress uses its result. Background refreshes are spaced by
//!   `metadata_refresh_backoff` so a broken partition does not turn into a request storm.
//! - A refresh asks for every topic the client has shown interest in (used at least once),
//!   not the whole cluster, as the Java client does.
//! - Metadata requests go to any live broker; the bootstrap addresses are only a way in
//!   when no broker from metadata answers.
//! - Connections are opened lazily, one per broker id; a connection that failed is replaced
//!   on next use. Opening a connection to one broker never blocks requests to another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, Result};

/// Default Kafka port, used when a bootstrap entry has none.
pub const DEFAULT_PORT: u16 = 9092;

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// Settings shared by everything that talks to the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `host:port` entry points; any one reachable broker is enough.
    pub bootstrap: Vec<String>,
    pub connection: ConnectionConfig,
    /// Least time between two background metadata refreshes.
    pub metadata_refresh_backoff: Duration,
}

impl ClusterConfig {
    /// Config with defaults for `HOST:PORT[,HOST:PORT...]`.
    pub fn new(bootstrap: &str) -> Result<ClusterConfig> {
        Ok(ClusterConfig {
            bootstrap: parse_bootstrap(bootstrap)?,
            connection: ConnectionConfig::default(),
            metadata_refresh_backoff: Duration::from_millis(100),
        })
    }
}

/// Split `HOST:PORT[,HOST:PORT...]` into addresses, adding the default port where missing.
pub fn parse_bootstrap(list: &str) -> Result<Vec<String>> {
    let mut addresses = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let address = match entry.rsplit_once(':') {
            // An IPv6 literal in brackets without a port, e.g. "[::1]".
            Some((host, _)) if host.starts_with('[') && !host.ends_with(']') => {
                format!("{entry}:{DEFAULT_PORT}")
            }
            Some((host, port)) => {
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(Error::InvalidConfig(format!(
                        "bootstrap entry '{entry}' is not HOST:PORT"
                    )));
                }
                entry.to_string()
            }
            None => format!("{entry}:{DEFAULT_PORT}"),
        };
        addresses.push(address);
    }
    if addresses.is_empty() {
        return Err(Error::InvalidConfig(
            "the bootstrap list is empty (expected HOST:PORT[,HOST:PORT...])".to_string(),
        ));
    }
    Ok(addresses)
}

/// One broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition: where its replicas are and who leads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// None while no leader is elected.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// Kafka error code for this partition (0 when fine, e.g. 5 LEADER_NOT_AVAILABLE).
    pub error_code: i16,
}

/// One topic and its partitions, ordered by partition id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
    /// Kafka error code for the topic (0 when fine).
    pub error_code: i16,
}

impl TopicInfo {
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        self.partitions.iter().find(|p| p.partition == partition)
    }

    /// Number of partitions (ids are 0..count).
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Whether every partition has a leader.
    pub fn all_leaders_known(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.leader.is_some())
    }
}

/// An immutable snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: HashMap<String, TopicInfo>,
    /// Topic id -> name, for the topics whose answers carried an id (Metadata v10+).
    pub topic_names: HashMap<uuid::Uuid, String>,
}

impl Metadata {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// The name of the topic with this id, if a Metadata answer named it.
    pub fn topic_name(&self, id: &uuid::Uuid) -> Option<&str> {
        self.topic_names.get(id).map(String::as_str)
    }

    /// The id of a topic, if a Metadata answer gave one.
    pub fn topic_id(&self, name: &str) -> Option<uuid::Uuid> {
        self.topic_names
            .iter()
            .find_map(|(id, topic)| (topic == name).then_some(*id))
    }

    /// This metadata with a partial answer applied: its brokers, cluster and controller,
    /// and its topics (replacing ours of the same name); our other topics stay.
    pub fn merged(&self, partial: Metadata) -> Metadata {
        let mut topics = self.topics.clone();
        topics.extend(partial.topics);
        // A re-created topic has a new id: drop the old one's.
        let mut topic_names = self.topic_names.clone();
        topic_names.retain(|_, name| !partial.topic_names.values().any(|n| n == name));
        topic_names.extend(partial.topic_names);
        Metadata {
            cluster_id: partial.cluster_id.or_else(|| self.cluster_id.clone()),
            controller_id: partial.controller_id,
            brokers: partial.brokers,
            topics,
            topic_names,
        }
    }

    /// The leader's broker id of a partition, if known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topic(topic)?.partition(partition)?.leader
    }

    /// Parse a Metadata response. Topics listed with UNKNOWN_TOPIC_OR_PARTITION are left out.
    pub fn from_response(response: &MetadataResponse) -> Metadata {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let info = BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (info.id, info)
            })
            .collect();
        let mut topics = HashMap::new();
        let mut topic_names = HashMap::new();
        for topic in &response.topics {
            let Some(name) = &topic.name else { continue };
            if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                continue;
            }
            if !topic.topic_id.is_nil() {
                topic_names.insert(topic.topic_id, name.0.to_string());
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.insert(
                name.0.to_string(),
                TopicInfo {
                    name: name.0.to_string(),
                    is_internal: topic.is_internal,
                    partitions,
                    error_code: topic.error_code,
                },
            );
        }
        Metadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers,
            topics,
            topic_names,
        }
    }
}

/// Which topics a Metadata request asks for.
enum TopicSelection<'a> {
    All,
    Some(&'a [String]),
}

type ConnectionSlot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Shared view of the cluster: metadata cache and per-broker connections.
pub struct Cluster {
    config: ClusterConfig,
    metadata: RwLock<Arc<Metadata>>,
    /// Topics the client has used; a refresh asks for all of them.
    interest: Mutex<BTreeSet<String>>,
    connections: Mutex<HashMap<i32, ConnectionSlot>>,
    bootstrap_connection: tokio::sync::Mutex<Option<Connection>>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Incremented by every completed refresh (single flight).
    refresh_generation: AtomicU64,
    background_refresh_running: AtomicBool,
    last_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.config.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Reach the cluster through the bootstrap list and load the broker list.
    pub async fn connect(config: ClusterConfig) -> Result<Arc<Cluster>> {
        let cluster = Arc::new(Cluster {
            config,
            metadata: RwLock::new(Arc::new(Metadata::default())),
            interest: Mutex::new(BTreeSet::new()),
            connections: Mutex::new(HashMap::new()),
            bootstrap_connection: tokio::sync::Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            refresh_generation: AtomicU64::new(0),
            background_refresh_running: AtomicBool::new(false),
            last_refresh: Mutex::new(None),
        });
        cluster.refresh().await?;
        Ok(cluster)
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Remember topics so that every later refresh includes them.
    pub fn add_interest<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        let mut interest = self.interest.lock().unwrap_or_else(|e| e.into_inner());
        for topic in topics {
            if !interest.contains(topic) {
                interest.insert(topic.to_string());
            }
        }
    }

    /// Refresh metadata for the brokers and every topic of interest. If another refresh
    /// completes while this one waits for its turn, that one's result is used.
    pub async fn refresh(&self) -> Result<Arc<Metadata>> {
        let generation = self.refresh_generation.load(Ordering::Acquire);
        let _guard = self.refresh_lock.lock().await;
        if self.refresh_generation.load(Ordering::Acquire) != generation {
            return Ok(self.metadata());
        }
        let topics: Vec<String> = self
            .interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let fresh = self.fetch_metadata(TopicSelection::Some(&topics)).await?;
        Ok(self.install(fresh))
    }

    /// Fetch metadata for `topic` alone and merge it into the cache (with the brokers and
    /// controller of the answer); the other topics keep what the last refresh found.
    async fn refresh_new_topic(&self, topic: &str) -> Result<()> {
        let fresh = self
            .fetch_metadata(TopicSelection::Some(&[topic.to_string()]))
            .await?;
        let mut current = self.metadata.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(current.merged(fresh));
        Ok(())
    }

    /// Fetch metadata for every topic in the cluster (for listing), updating the cache.
    pub async fn refresh_all_topics(&self) -> Result<Arc<Metadata>> {
        let _guard = self.refresh_lock.lock().await;
        let fresh = self.fetch_metadata(TopicSelection::All).await?;
        Ok(self.install(fresh))
    }

    /// Start a refresh in the background unless one is running; spaced by the backoff.
    pub fn request_refresh(self: &Arc<Self>) {
        if self.background_refresh_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            let since_last = cluster
                .last_refresh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|t| t.elapsed());
            if let Some(since_last) = since_last {
                let backoff = cluster.config.metadata_refresh_backoff;
                if since_last < backoff {
                    tokio::time::sleep(backoff - since_last).await;
                }
            }
            if let Err(error) = cluster.refresh().await {
                tracing::debug!(%error, "background metadata refresh failed");
            }
            cluster
                .background_refresh_running
                .store(false, Ordering::Release);
        });
    }

    /// Metadata for one topic, refreshing (with backoff) until it has a leader for every
    /// partition or `wait` runs out. Errors with [`Error::UnknownTopic`] if the topic does not
    /// exist by then; returns what is known if it exists but leaders are missing.
    pub async fn topic(&self, topic: &str, wait: Duration) -> Result<TopicInfo> {
        self.add_interest([topic]);
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_millis(20);
        let mut refreshed = false;
        loop {
            if let Some(info) = self.metadata().topic(topic) {
                if info.all_leaders_known() {
                    return Ok(info.clone());
                }
            }
            if refreshed && Instant::now() >= deadline {
                return match self.metadata().topic(topic) {
                    Some(info) if !info.partitions.is_empty() => Ok(info.clone()),
                    _ => Err(Error::UnknownTopic(topic.to_string())),
                };
            }
            if refreshed {
                let now = Instant::now();
                tokio::time::sleep(backoff.min(deadline.saturating_duration_since(now))).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            // A topic the cache has never seen is asked for alone (Kafka's KIP-526), so a
            // producer meeting its n-th topic does not fetch all n; a known topic without
            // leaders takes a full refresh.
            let refreshed_now = if self.metadata().topic(topic).is_none() {
                self.refresh_new_topic(topic).await
            } else {
                self.refresh().await.map(|_| ())
            };
            // A failed refresh is retried until the deadline like a missing topic.
            if let Err(error) = refreshed_now {
                if Instant::now() >= deadline {
                    return Err(error);
                }
            }
            refreshed = true;
        }
    }

    /// The connection to a broker by id, opened if needed.
    pub async fn broker_connection(&self, broker_id: i32) -> Result<Connection> {
        let slot = {
            let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            connections.entry(broker_id).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let address = match self.metadata().brokers.get(&broker_id) {
            Some(broker) => broker.address(),
            None => {
                return Err(Error::NoBrokerAvailable(format!(
                    "broker {broker_id} is not in the cluster metadata"
                )))
            }
        };
        let connection = Connection::connect(&address, &self.config.connection).await?;
        tracing::debug!(broker_id, %address, "connected");
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// The connection to the leader of a partition, per the cached metadata.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Connection> {
        match self.metadata().leader(topic, partition) {
            Some(leader) => self.broker_connection(leader).await,
            None => Err(Error::broker(
                format!("no leader known for {topic}-{partition}"),
                5,
                None,
            )),
        }
    }

    /// A connection to any live broker: an open one if there is one, otherwise the first
    /// broker from metadata or bootstrap that accepts.
    pub async fn any_connection(&self) -> Result<Connection> {
        let metadata = self.metadata();
        // An already open broker connection costs nothing.
        let open: Vec<ConnectionSlot> = {
            let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            connections.values().cloned().collect()
        };
        for slot in open {
            if let Ok(slot) = slot.try_lock() {
                if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
                    return Ok(connection.clone());
                }
            }
        }
        let mut bootstrap = self.bootstrap_connection.lock().await;
        if let Some(connection) = bootstrap.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let mut failures = Vec::new();
        for &broker_id in metadata.brokers.keys() {
            match self.broker_connection(broker_id).await {
                Ok(connection) => return Ok(connection),
                Err(error) => failures.push(error.to_string()),
            }
        }
        for address in &self.config.bootstrap {
            match Connection::connect(address, &self.config.connection).await {
                Ok(connection) => {
                    *bootstrap = Some(connection.clone());
                    return Ok(connection);
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        Err(Error::NoBrokerAvailable(failures.join("; ")))
    }

    /// Send a request to any live broker.
    pub async fn send_any<R: Request>(&self, request: R) -> Result<R::Response> {
        self.any_connection().await?.send(request).await
    }

    /// The connection to the controller (for topic administration), or any broker when the
    /// controller is unknown. KRaft brokers forward admin requests to the controller.
    pub async fn controller_connection(&self) -> Result<Connection> {
        if let Some(controller) = self.metadata().controller_id {
            if let Ok(connection) = self.broker_connection(controller).await {
                return Ok(connection);
            }
        }
        self.any_connection().await
    }

    async fn fetch_metadata(&self, topics: TopicSelection<'_>) -> Result<Metadata> {
        let connection = self.any_connection().await?;
        let version = connection.version(ApiKey::Metadata)?;
        let request = metadata_request(topics, version);
        let response = connection
            .send_versioned(request, version, connection.request_timeout())
            .await?;
        Ok(Metadata::from_response(&response))
    }

    fn install(&self, fresh: Metadata) -> Arc<Metadata> {
        let fresh = Arc::new(fresh);
        *self.metadata.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.refresh_generation.fetch_add(1, Ordering::AcqRel);
        fresh
    }
}

/// A Metadata request for `topics` at `version`. Topics are never auto-created (the field
/// exists from v4; before that the broker's setting decides).
fn metadata_request(topics: TopicSelection<'_>, version: i16) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(match topics {
            TopicSelection::All => None,
            TopicSelection::Some(names) => Some(
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    })
                    .collect(),
            ),
        })
        .with_allow_auto_topic_creation(version < 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::client_versions;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn metadata_request_encodes_at_every_version_we_may_pick() {
        let (min, max) = client_versions(ApiKey::Metadata).unwrap();
        let topics = vec!["t".to_string()];
        for version in min..=max {
            for selection in [TopicSelection::All, TopicSelection::Some(&topics)] {
                let mut buf = bytes::BytesMut::new();
                metadata_request(selection, version)
                    .encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;

    #[test]
    fn a_partial_answer_adds_its_topics_and_keeps_the_others() {
        let topic = |name: &str, leader: i32| TopicInfo {
            name: name.to_string(),
            is_internal: false,
            partitions: vec![PartitionInfo {
                partition: 0,
                leader: Some(leader),
                leader_epoch: 0,
                replicas: vec![leader],
                isr: vec![leader],
                offline_replicas: Vec::new(),
                error_code: 0,
            }],
            error_code: 0,
        };
        let broker = |id: i32| BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 9092 + id,
            rack: None,
        };
        let cached = Metadata {
            cluster_id: Some("c".into()),
            controller_id: Some(1),
            brokers: BTreeMap::from([(1, broker(1))]),
            topics: HashMap::from([("a".into(), topic("a", 1)), ("b".into(), topic("b", 1))]),
            topic_names: HashMap::from([
                (uuid::Uuid::from_u128(1), "a".into()),
                (uuid::Uuid::from_u128(2), "b".into()),
            ]),
        };
        let partial = Metadata {
            cluster_id: None,
            controller_id: Some(2),
            brokers: BTreeMap::from([(1, broker(1)), (2, broker(2))]),
            topics: HashMap::from([("b".into(), topic("b", 2)), ("new".into(), topic("new", 2))]),
            // "b" was re-created with a new id.
            topic_names: HashMap::from([(uuid::Uuid::from_u128(3), "b".into())]),
        };
        let merged = cached.merged(partial);
        assert_eq!(merged.cluster_id.as_deref(), Some("c"));
        assert_eq!(merged.controller_id, Some(2));
        assert_eq!(merged.brokers.len(), 2);
        assert_eq!(merged.leader("a", 0), Some(1), "kept");
        assert_eq!(
            merged.leader("b", 0),
            Some(2),
            "replaced by the newer answer"
        );
        assert_eq!(merged.leader("new", 0), Some(2), "added");
        assert_eq!(merged.topic_name(&uuid::Uuid::from_u128(1)), Some("a"));
        assert_eq!(merged.topic_name(&uuid::Uuid::from_u128(2)), None);
        assert_eq!(merged.topic_id("b"), Some(uuid::Uuid::from_u128(3)));
    }

    #[test]
    fn bootstrap_list_parses_and_defaults_the_port() {
        assert_eq!(
            parse_bootstrap("127.0.0.1:9092, localhost:19092,broker").unwrap(),
            vec!["127.0.0.1:9092", "localhost:19092", "broker:9092"]
        );
        assert!(parse_bootstrap("").is_err());
        assert!(parse_bootstrap("host:notaport").is_err());
        assert_eq!(parse_bootstrap("[::1]:9093").unwrap(), vec!["[::1]:9093"]);
    }

    #[test]
    fn metadata_response_maps_leaders_and_drops_unknown_topics() {
        let response = MetadataResponse::default()
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092)])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![
                        MetadataResponsePartition::default()
                            .with_partition_index(1)
                            .with_leader_id(BrokerId(-1))
                            .with_error_code(5),
                        MetadataResponsePartition::default()
                            .with_partition_index(0)
                            .with_leader_id(BrokerId(1))
                            .with_replica_nodes(vec![BrokerId(1)])
                            .with_isr_nodes(vec![BrokerId(1)]),
                    ]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("gone"))))
                    .with_error_code(3),
            ]);
        let metadata = Metadata::from_response(&response);
        assert_eq!(metadata.controller_id, Some(1));
        assert_eq!(metadata.brokers[&1].address(), "127.0.0.1:9092");
        let topic = metadata.topic("t").unwrap();
        assert_eq!(topic.partitions[0].partition, 0);
        assert_eq!(metadata.leader("t", 0), Some(1));
        assert_eq!(metadata.leader("t", 1), None);
        assert!(!topic.all_leaders_known());
        assert!(metadata.topic("gone").is_none());
    }
}
