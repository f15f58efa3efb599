//! Cluster membership of one broker: its controller node, its registration and heartbeats,
//! and the replicas it hosts.
//!
//! # Start-up ([`ClusterNode::start`])
//!
//! 1. Open this node's controller (the metadata log's Raft node) under the data dir and
//!    serve the internal listener (Raft RPCs and broker-to-controller requests). With no
//!    `--controller-voters`, the node is a one-voter quorum of its own.
//! 2. Voters initialize the quorum unless their log shows it formed already (a restart).
//!    Brokers that are not voters are added as learners by the active controller when
//!    they register.
//! 3. Register with the active controller: a new broker epoch, starting fenced, and the
//!    cluster id this broker proposes (its data dir's). Wait until the local metadata has
//!    applied the registration; the cluster id is now the metadata's, which the first
//!    registration ever proposed. Then start the replica manager
//!    (leaders, followers, fetchers) and the heartbeat loop; the first heartbeat after
//!    catching up unfences the broker, which makes it eligible to lead and join ISRs.
//!
//! # Shutdown ([`ClusterNode::controlled_shutdown`])
//!
//! A stopping broker asks the controller to move its leaderships away (KRaft's controlled
//! shutdown) and waits, bounded, until its metadata shows it leads nothing, so producers see
//! a metadata refresh rather than failed requests.

pub mod client;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::controller::service::INTERNAL_LISTENER;
use crate::controller::{
    serve_raft_with_config, CommandOutcome, Controller, ControllerConfig, ControllerRequest,
    ControllerResponse, ControllerService, Endpoint, HeartbeatReply, MetadataCommand, NodeId,
    TcpNetworkConfig, TcpRaftNetwork,
};
use crate::metrics as m;
use crate::replica::fetcher::{FetcherConfig, Fetchers};
use crate::replica::ReplicaManager;
use crate::storage::{FileSystem, LogManager};
pub use client::ControllerClient;

/// How long this node must see the controller quorum without a majority (it leads without
/// acknowledgements from one, or it knows no leader) before a controlled shutdown gives up:
/// twice the longest election timeout, so an election in progress is not mistaken for it.
const QUORUM_LOST_AFTER: Duration = Duration::from_millis(1_600);

/// How long a broker keeps trying to register before giving up on start-up.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// One broker's place in the cluster.
pub struct ClusterNode {
    pub node_id: i32,
    pub broker_epoch: i64,
    /// The cluster's id as the replicated metadata holds it (the same on every broker).
    pub cluster_id: String,
    pub controller: Controller,
    pub client: ControllerClient,
    pub replicas: Arc<ReplicaManager>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.node_id)
            .field("broker_epoch", &self.broker_epoch)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Join (or form) the cluster; returns once this broker is registered and its metadata
    /// has caught up with its registration. The registration proposes `proposed_cluster_id`
    /// as the cluster's id; [`ClusterNode::cluster_id`] is the one the metadata kept.
    pub async fn start(
        config: &Config,
        fs: Arc<dyn FileSystem>,
        logs: Arc<LogManager>,
        proposed_cluster_id: &str,
        shutdown: watch::Receiver<bool>,
    ) -> Result<ClusterNode, String> {
        let node_id = config.node_id;
        let mut tasks = Vec::new();
        let quorum = open_controller(config, fs, &shutdown, &mut tasks).await?;
        let controller = quorum.controller.clone();
        let client = ControllerClient::new(controller.clone(), quorum.service, quorum.voters);
        let registration = Registration {
            node_id,
            endpoints: endpoints(config, quorum.internal_listen)?,
            rack: (!config.rack.is_empty()).then(|| config.rack.clone()),
            cluster_id: proposed_cluster_id.to_string(),
        };
        let broker_epoch = register(&client, registration, &shutdown).await?;
        let cluster_id = catch_up_with_registration(
            config,
            &client,
            &logs,
            broker_epoch,
            proposed_cluster_id,
            &shutdown,
        )
        .await?;
        tracing::info!(
            node_id,
            broker_epoch,
            voter = quorum.is_voter,
            cluster_id = %cluster_id,
            "registered with the controller"
        );
        let replicas = start_replica_manager(
            config,
            &client,
            &logs,
            broker_epoch,
            quorum.single_node,
            &shutdown,
            &mut tasks,
        );
        tasks.push(tokio::spawn(heartbeat_loop(
            client.clone(),
            node_id,
            broker_epoch,
            Duration::from_millis(config.broker_heartbeat_interval_ms),
            shutdown.clone(),
        )));
        // Serve clients only once eligible: until the first heartbeat unfences this broker
        // it leads nothing, and every request would be refused.
        let unfenced =
            wait_unfenced(&controller, node_id, broker_epoch, Duration::from_secs(30)).await;
        if !unfenced {
            tracing::warn!(
                "not unfenced within 30 s; serving anyway (partitions stay led elsewhere)"
            );
        }
        if quorum.single_node {
            // Only now is there an eligible broker to place them on.
            adopt_local_topics(&client, &logs, &replicas).await;
        }
        replicas.reconcile();
        Ok(ClusterNode {
            node_id,
            broker_epoch,
            cluster_id,
            controller,
            client,
            replicas,
            tasks,
        })
    }

    /// Move this broker's leaderships away before it stops; bounded by `timeout`.
    pub async fn controlled_shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let command = MetadataCommand::ControlledShutdown {
            id: self.node_id,
            epoch: self.broker_epoch,
        };
        let submitted = tokio::select! {
            submitted = self.client.submit(command, timeout) => submitted,
            () = quorum_lost(self.client.controller(), QUORUM_LOST_AFTER) => {
                // All brokers stopping at once, or the last ones standing: nothing can
                // commit the handover, so waiting out `timeout` would only delay the stop.
                tracing::warn!(
                    after_ms = QUORUM_LOST_AFTER.as_millis() as u64,
                    "controlled shutdown skipped: the controller quorum has no majority; stopping without handing leaderships over"
                );
                return;
            }
        };
        match submitted {
            Ok((index, Ok(CommandOutcome::ShutdownControlled { changes }))) => {
                tracing::info!(
                    leaderships_moved = changes.len(),
                    "controlled shutdown: leaderships handed over"
                );
                let remaining = deadline.saturating_duration_since(Instant::now());
                if self.client.wait_applied(index, remaining).await {
                    // Let the replica manager act on it (followers stop being led by us).
                    self.replicas.reconcile();
                }
            }
            Ok((_, other)) => tracing::warn!(?other, "controlled shutdown refused"),
            Err(error) => tracing::warn!(%error, "controlled shutdown failed; stopping anyway"),
        }
    }

    /// Stop the controller node and the background tasks.
    pub async fn stop(self) {
        self.replicas.checkpoint_high_watermarks();
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.controller.shutdown().await;
    }
}

/// This node's controller, as [`open_controller`] started it.
struct Quorum {
    controller: Controller,
    service: Arc<ControllerService>,
    voters: BTreeMap<NodeId, String>,
    internal_listen: Option<std::net::SocketAddr>,
    is_voter: bool,
    single_node: bool,
}

/// Steps 1 and 2 of the start-up (see the module docs): open this node's controller, serve
/// the internal listener, initialize the quorum if this node is a voter, and start the
/// active controller's loops (session expiry, leader rebalance).
async fn open_controller(
    config: &Config,
    fs: Arc<dyn FileSystem>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Quorum, String> {
    let node_id = config.node_id;
    let raft_id =
        NodeId::try_from(node_id).map_err(|_| format!("node-id {node_id} must be >= 0"))?;
    let internal_listen = config.internal_listen()?;
    let single_node = config.controller_voters.0.is_empty();
    let voters: BTreeMap<NodeId, String> = if single_node {
        let addr = internal_listen.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
        BTreeMap::from([(raft_id, addr)])
    } else {
        config
            .controller_voters
            .0
            .iter()
            .map(|(id, addr)| (*id as NodeId, addr.clone()))
            .collect()
    };
    let is_voter = voters.contains_key(&raft_id);

    let controller_config = ControllerConfig::default();
    let controller = Controller::open(
        raft_id,
        fs,
        &config.data_dir,
        &controller_config,
        TcpRaftNetwork::new(TcpNetworkConfig::default()),
    )
    .await
    .map_err(|e| format!("cannot start the controller: {e}"))?;
    let service = Arc::new(ControllerService::new(
        controller.clone(),
        Duration::from_millis(config.broker_session_timeout_ms),
    ));
    if let Some(address) = internal_listen {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on internal address {address}: {e}"))?;
        tasks.push(tokio::spawn(serve_raft_with_config(
            listener,
            controller.raft().clone(),
            Some(service.clone()),
            shutdown.clone(),
            TcpNetworkConfig::default(),
        )));
    }
    if is_voter {
        let members = voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        controller
            .initialize(members)
            .await
            .map_err(|e| format!("cannot initialize the controller quorum: {e}"))?;
    }
    tasks.push(tokio::spawn(
        service.clone().run_session_expiry(shutdown.clone()),
    ));
    if config.auto_leader_rebalance {
        tasks.push(tokio::spawn(service.clone().run_leader_rebalance(
            Duration::from_millis(config.leader_imbalance_check_interval_ms.max(100)),
            config.leader_imbalance_per_broker_percentage,
            shutdown.clone(),
        )));
    }
    Ok(Quorum {
        controller,
        service,
        voters,
        internal_listen,
        is_voter,
        single_node,
    })
}

/// Where this broker is reached: its advertised client listener, and the internal
/// (controller) listener if it has one.
fn endpoints(
    config: &Config,
    internal_listen: Option<std::net::SocketAddr>,
) -> Result<Vec<Endpoint>, String> {
    let (host, port) = config.advertised()?;
    let mut endpoints = vec![Endpoint {
        listener: "PLAINTEXT".to_string(),
        host,
        port: u16::try_from(port).map_err(|_| format!("bad advertised port {port}"))?,
    }];
    if let Some(address) = internal_listen {
        endpoints.push(Endpoint {
            listener: INTERNAL_LISTENER.to_string(),
            host: address.ip().to_string(),
            port: address.port(),
        });
    }
    Ok(endpoints)
}

/// Wait until the local metadata has applied this broker's registration; then the cluster
/// id is the metadata's. Refuses a data dir holding another cluster's partition logs.
async fn catch_up_with_registration(
    config: &Config,
    client: &ControllerClient,
    logs: &LogManager,
    broker_epoch: i64,
    proposed_cluster_id: &str,
    shutdown: &watch::Receiver<bool>,
) -> Result<String, String> {
    let index = u64::try_from(broker_epoch).unwrap_or(0);
    while !client.wait_applied(index, Duration::from_secs(5)).await {
        if *shutdown.borrow() {
            return Err("shut down while catching up with the metadata log".into());
        }
        tracing::info!(
            broker_epoch,
            "waiting for the metadata log to reach this broker's registration"
        );
    }
    // The registration proposed an id, so the metadata holds one from here on.
    let cluster_id = client
        .controller()
        .metadata()
        .read(|state| state.cluster_id().map(str::to_string))
        .ok_or("the metadata has no cluster id after this broker's registration")?;
    if cluster_id != proposed_cluster_id && !logs.topics().is_empty() {
        // Kafka's InconsistentClusterIdException: partition logs written for another
        // cluster must not be reconciled (truncated, deleted) against this one's metadata.
        return Err(format!(
            "the data directory {} belongs to cluster {proposed_cluster_id} (its cluster.id) \
             but this cluster's id is {cluster_id}; refusing to serve or change its partition \
             logs. Start with an empty data directory, or write {cluster_id} into \
             cluster.id if these logs are this cluster's",
            config.data_dir.display()
        ));
    }
    Ok(cluster_id)
}

/// Step 3: the replica manager (leaders, followers, fetchers) and its loops: metadata
/// changes, the AlterPartition sender, the controller-role reporter.
fn start_replica_manager(
    config: &Config,
    client: &ControllerClient,
    logs: &Arc<LogManager>,
    broker_epoch: i64,
    single_node: bool,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Arc<ReplicaManager> {
    let node_id = config.node_id;
    let controller = client.controller();
    let fetchers = Arc::new(Fetchers::new(
        FetcherConfig {
            local_id: node_id,
            broker_epoch,
            max_wait_ms: i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(500),
            max_bytes: i32::try_from(config.fetch_bytes_max.min(16 << 20)).unwrap_or(i32::MAX),
            partition_max_bytes: i32::try_from(config.message_max_bytes.max(1 << 20))
                .unwrap_or(i32::MAX),
        },
        controller.metadata().clone(),
        shutdown.clone(),
    ));
    let (replicas, alter_rx) = ReplicaManager::new(
        node_id,
        broker_epoch,
        i64::try_from(config.replica_lag_time_max_ms).unwrap_or(i64::MAX),
        logs.clone(),
        controller.metadata().clone(),
        fetchers,
        single_node,
    );
    tasks.push(tokio::spawn(report_controller_role(
        controller.clone(),
        replicas.clone(),
        shutdown.clone(),
    )));
    replicas.set_per_partition_metrics(config.metrics_per_partition);
    replicas.set_reassignment_throttle(config.reassignment_throttle_bytes_per_sec);
    replicas.set_caught_up();
    let (applied_tx, applied_rx) = watch::channel(0u64);
    tasks.push(tokio::spawn(forward_applied(
        controller.clone(),
        applied_tx,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(
        replicas.clone().run(applied_rx, shutdown.clone()),
    ));
    tasks.push(tokio::spawn(replicas.clone().run_alter_partition_sender(
        client.clone(),
        alter_rx,
        shutdown.clone(),
    )));
    replicas
}

/// Wait until this node's metadata shows the broker unfenced at `broker_epoch`.
async fn wait_unfenced(
    controller: &Controller,
    node_id: i32,
    broker_epoch: i64,
    timeout: Duration,
) -> bool {
    let mut metrics = controller.raft().metrics();
    let metadata = controller.metadata().clone();
    let check = move || {
        metadata.read(|state| {
            state.broker(node_id).is_some_and(|b| {
                b.epoch == broker_epoch && b.status == crate::controller::BrokerStatus::Unfenced
            })
        })
    };
    let wait = async {
        loop {
            if check() {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.is_ok() && check()
}

/// What a broker registers with: who it is, where it is reached, and the cluster id it
/// proposes.
struct Registration {
    node_id: i32,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
    cluster_id: String,
}

async fn register(
    client: &ControllerClient,
    registration: Registration,
    shutdown: &watch::Receiver<bool>,
) -> Result<i64, String> {
    let incarnation = uuid::Uuid::from_bytes(rand::random());
    let started = Instant::now();
    loop {
        let command = MetadataCommand::RegisterBroker {
            id: registration.node_id,
            incarnation,
            endpoints: registration.endpoints.clone(),
            rack: registration.rack.clone(),
            cluster_id: Some(registration.cluster_id.clone()),
        };
        match client.submit(command, Duration::from_secs(5)).await {
            Ok((_, Ok(CommandOutcome::BrokerRegistered { broker_epoch, .. }))) => {
                return Ok(broker_epoch)
            }
            Ok((_, Ok(other))) => return Err(format!("unexpected registration outcome {other:?}")),
            Ok((_, Err(error))) => return Err(format!("registration refused: {error}")),
            Err(error) => {
                if *shutdown.borrow() {
                    return Err("shut down before registering".into());
                }
                if started.elapsed() > REGISTRATION_TIMEOUT {
                    return Err(format!(
                        "could not register with the controller quorum: {error}"
                    ));
                }
                tracing::info!(%error, "waiting for the controller quorum to register");
            }
        }
    }
}

/// Single-node clusters: topics in the data dir that the metadata does not know (created
/// before the controller existed) are registered with their ids.
async fn adopt_local_topics(
    client: &ControllerClient,
    logs: &LogManager,
    replicas: &ReplicaManager,
) {
    for local in logs.topics() {
        let known = replicas
            .metadata()
            .read(|state| state.topic_by_name(&local.name).is_some());
        if known {
            continue;
        }
        let command = MetadataCommand::CreateTopic {
            name: local.name.clone(),
            id: uuid::Uuid::from_bytes(local.id),
            partitions: local.partitions,
            replication_factor: 1,
            configs: local.configs.clone(),
        };
        match client.submit(command, Duration::from_secs(10)).await {
            Ok((index, Ok(_))) => {
                client.wait_applied(index, Duration::from_secs(10)).await;
                tracing::info!(topic = %local.name, "registered an existing local topic with the controller");
            }
            Ok((_, Err(error))) => {
                tracing::warn!(topic = %local.name, %error, "cannot register a local topic")
            }
            Err(error) => {
                tracing::warn!(topic = %local.name, %error, "cannot register a local topic")
            }
        }
    }
}

async fn heartbeat_loop(
    client: ControllerClient,
    node_id: i32,
    broker_epoch: i64,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    let mut last_status = None;
    loop {
        tokio::select! {
            () = crate::shutdown::stopped(&mut shutdown) => return,
            _ = ticker.tick() => {}
        }
        let applied_index = client
            .controller()
            .metadata()
            .last_applied_index()
            .unwrap_or(0);
        let request = ControllerRequest::Heartbeat {
            id: node_id,
            epoch: broker_epoch,
            applied_index,
        };
        match client.request(request, Instant::now() + every * 2).await {
            Ok(ControllerResponse::Heartbeat(HeartbeatReply::Ok { status })) => {
                if last_status != Some(status) {
                    tracing::info!(?status, "broker status");
                    last_status = Some(status);
                }
            }
            Ok(ControllerResponse::Heartbeat(HeartbeatReply::UnknownEpoch)) => {
                tracing::error!(
                    broker_epoch,
                    "the controller does not know this broker's registration (another process registered with the same node id?)"
                );
            }
            Ok(other) => tracing::debug!(?other, "unexpected heartbeat answer"),
            Err(error) => tracing::debug!(%error, "heartbeat not answered"),
        }
    }
}

/// Turn the Raft node's metrics into a "metadata applied up to" signal.
async fn forward_applied(
    controller: Controller,
    applied: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = controller.raft().metrics();
    loop {
        let index = metrics
            .borrow_and_update()
            .last_applied
            .map_or(0, |log_id| log_id.index);
        applied.send_if_modified(|current| {
            let changed = *current != index;
            *current = index;
            changed
        });
        tokio::select! {
            () = crate::shutdown::stopped(&mut shutdown) => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// Keep the controller gauges (active controller; the quorum's term, applied index and
/// leader, from openraft's metrics; the log store sets the commit index) and log leadership
/// changes of the quorum.
async fn report_controller_role(
    controller: Controller,
    replicas: Arc<ReplicaManager>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = controller.raft().metrics();
    let mut last_leader = None;
    loop {
        let (leader, term, applied) = {
            let current = metrics.borrow_and_update();
            let applied = current.last_applied.map_or(0, |log_id| log_id.index);
            (current.current_leader, current.current_term, applied)
        };
        metrics::gauge!(m::CONTROLLER_RAFT_TERM).set(term as f64);
        metrics::gauge!(m::CONTROLLER_RAFT_APPLIED_INDEX).set(applied as f64);
        metrics::gauge!(m::CONTROLLER_RAFT_LEADER).set(leader.map_or(-1.0, |id| id as f64));
        if leader != last_leader {
            // A number for structured logs: -1 for none, as Kafka writes it.
            let controller_id = leader.map_or(-1, |id| i64::try_from(id).unwrap_or(i64::MAX));
            tracing::info!(controller = controller_id, term, "active controller");
            last_leader = leader;
            let active = leader == Some(controller.node_id());
            replicas.set_active_controller(active);
            metrics::gauge!(m::ACTIVE_CONTROLLER).set(if active { 1.0 } else { 0.0 });
        }
        tokio::select! {
            () = crate::shutdown::stopped(&mut shutdown) => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// The data dir path of the controller, for logs.
pub fn controller_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join(crate::controller::CONTROLLER_DIR_NAME)
}

/// Resolves once this node has seen the controller quorum without a majority for `after`
/// without a break: it leads but no majority acknowledged it within the last 500 ms, or it
/// knows no leader at all. Never resolves while a working quorum is visible, nor for a
/// single voter.
async fn quorum_lost(controller: &Controller, after: Duration) {
    const POLL: Duration = Duration::from_millis(100);
    let mut lost_since: Option<Instant> = None;
    loop {
        let lost = {
            let metrics = controller.raft().metrics();
            let metrics = metrics.borrow();
            let voters = metrics.membership_config.membership().voter_ids().count();
            match metrics.state {
                // A lone voter is its own majority.
                _ if voters <= 1 => false,
                openraft::ServerState::Leader => {
                    metrics.millis_since_quorum_ack.is_some_and(|ms| ms > 500)
                }
                _ => metrics.current_leader.is_none(),
            }
        };
        let now = Instant::now();
        match (lost, lost_since) {
            (false, _) => lost_since = None,
            (true, None) => lost_since = Some(now),
            (true, Some(since)) if now - since >= after => return,
            (true, Some(_)) => {}
        }
        tokio::time::sleep(POLL).await;
    }
}
