//! The active controller's side of the broker-to-controller protocol: registration,
//! heartbeats, session expiry and metadata changes proposed by brokers.
//!
//! Brokers send [`ControllerRequest`]s over the internal listener (see [`tcp`](super::tcp))
//! to the node they believe is the active controller. A node that is not the leader of the
//! metadata log answers [`ControllerResponse::NotController`] with the leader it knows, and
//! the broker retries there.
//!
//! - **Submit**: any [`MetadataCommand`] (registration, CreateTopic, AlterPartition,
//!   controlled shutdown, ...) is proposed to the Raft log and answered with its result once
//!   committed. A registration also starts the broker's session and, for a broker that is
//!   not a voter, adds it to the quorum as a learner so it receives the metadata log.
//! - **Heartbeat**: refreshes the broker's session. A fenced broker whose metadata has caught
//!   up to its own registration is unfenced here (KRaft's rule: a broker may lead only once
//!   it has the metadata that made it a broker).
//! - **Session expiry** ([`ControllerService::run_session_expiry`]): on the leader only, a
//!   broker not heard from for `session_timeout` is fenced with a
//!   [`MetadataCommand::FenceBroker`]. Sessions live in memory on the active controller;
//!   a newly elected controller gives every broker a full session timeout before fencing it,
//!   as KRaft does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{
    BrokerEpoch, BrokerId, BrokerStatus, CommandResult, Controller, ControllerError,
    MetadataCommand, NodeId,
};
use crate::metrics as m;

/// The listener name under which a broker registers its internal (controller) address.
pub const INTERNAL_LISTENER: &str = "INTERNAL";

/// A broker's request to the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Propose a metadata change and wait for it to commit.
    Submit(MetadataCommand),
    /// "I am alive at this broker epoch and have applied the metadata log up to here."
    Heartbeat {
        id: BrokerId,
        epoch: BrokerEpoch,
        applied_index: u64,
    },
}

/// The controller's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// The command committed at `index` with this result (a rejection included).
    Applied {
        index: u64,
        result: CommandResult,
    },
    Heartbeat(HeartbeatReply),
    /// Ask `leader` instead (unknown while an election is under way).
    NotController {
        leader: Option<NodeId>,
    },
    /// The controller failed; retrying later may help.
    Error(String),
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    /// The broker's registration is current; this is its status.
    Ok { status: BrokerStatus },
    /// The broker is not registered at that epoch (a newer registration, or none): it must
    /// register again.
    UnknownEpoch,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    epoch: BrokerEpoch,
    last_heard: Instant,
}

/// Serves broker requests on a controller node; acts only while this node is the leader.
pub struct ControllerService {
    controller: Controller,
    session_timeout: Duration,
    sessions: Mutex<HashMap<BrokerId, Session>>,
    /// The Raft term in which this node last led, to give brokers a fresh session when it
    /// becomes the leader.
    led_in_term: Mutex<Option<u64>>,
}

impl std::fmt::Debug for ControllerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerService")
            .field("node_id", &self.controller.node_id())
            .finish_non_exhaustive()
    }
}

impl ControllerService {
    pub fn new(controller: Controller, session_timeout: Duration) -> ControllerService {
        ControllerService {
            controller,
            session_timeout,
            sessions: Mutex::new(HashMap::new()),
            led_in_term: Mutex::new(None),
        }
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    fn not_controller(&self) -> ControllerResponse {
        ControllerResponse::NotController {
            leader: self.controller.current_leader(),
        }
    }

    fn is_leader(&self) -> bool {
        self.controller.current_leader() == Some(self.controller.node_id())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<BrokerId, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn handle(&self, request: ControllerRequest) -> ControllerResponse {
        match request {
            ControllerRequest::Submit(command) => self.submit(command).await,
            ControllerRequest::Heartbeat {
                id,
                epoch,
                applied_index,
            } => self.heartbeat(id, epoch, applied_index).await,
        }
    }

    async fn submit(&self, command: MetadataCommand) -> ControllerResponse {
        let registration = match &command {
            MetadataCommand::RegisterBroker { id, endpoints, .. } => Some((
                *id,
                endpoints
                    .iter()
                    .find(|e| e.listener == INTERNAL_LISTENER)
                    .map(|e| format!("{}:{}", e.host, e.port)),
            )),
            _ => None,
        };
        let answer = self.controller.submit(command).await;
        let (index, result) = match answer {
            Ok(applied) => applied,
            Err(ControllerError::NotController { leader }) => {
                return ControllerResponse::NotController { leader }
            }
            Err(error) => return ControllerResponse::Error(error.to_string()),
        };
        if let (Some((id, internal)), Ok(outcome)) = (registration, &result) {
            if let super::CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome {
                self.sessions().insert(
                    id,
                    Session {
                        epoch: *broker_epoch,
                        last_heard: Instant::now(),
                    },
                );
                tracing::info!(broker = id, broker_epoch, "broker registered");
            }
            if let Some(addr) = internal {
                self.add_learner_if_new(id, addr);
            }
        }
        ControllerResponse::Applied { index, result }
    }

    /// A broker outside the voter set follows the metadata log as a learner.
    fn add_learner_if_new(&self, id: BrokerId, addr: String) {
        let Ok(node_id) = NodeId::try_from(id) else {
            return;
        };
        let known = self
            .controller
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .is_some();
        if known {
            return;
        }
        let raft = self.controller.raft().clone();
        tokio::spawn(async move {
            match raft
                .add_learner(node_id, BasicNode { addr: addr.clone() }, false)
                .await
            {
                Ok(_) => tracing::info!(broker = id, %addr, "added broker as a metadata learner"),
                Err(error) => {
                    tracing::warn!(broker = id, %error, "could not add broker as a learner")
                }
            }
        });
    }

    async fn heartbeat(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
        applied_index: u64,
    ) -> ControllerResponse {
        if !self.is_leader() {
            return self.not_controller();
        }
        let status = self.controller.metadata().read(|state| {
            state
                .broker(id)
                .filter(|broker| broker.epoch == epoch)
                .map(|broker| broker.status)
        });
        let Some(status) = status else {
            return ControllerResponse::Heartbeat(HeartbeatReply::UnknownEpoch);
        };
        self.sessions().insert(
            id,
            Session {
                epoch,
                last_heard: Instant::now(),
            },
        );
        let caught_up = u64::try_from(epoch).is_ok_and(|epoch| applied_index >= epoch);
        if status == BrokerStatus::Fenced && caught_up {
            match self
                .controller
                .submit(MetadataCommand::UnfenceBroker { id, epoch })
                .await
            {
                Ok((_, Ok(outcome))) => {
                    tracing::info!(
                        broker = id,
                        broker_epoch = epoch,
                        leaders_elected = outcome.changes().len(),
                        "broker unfenced"
                    );
                    return ControllerResponse::Heartbeat(HeartbeatReply::Ok {
                        status: BrokerStatus::Unfenced,
                    });
                }
                Ok((_, Err(error))) => {
                    tracing::debug!(broker = id, %error, "unfence refused");
                }
                Err(ControllerError::NotController { leader }) => {
                    return ControllerResponse::NotController { leader }
                }
                Err(error) => return ControllerResponse::Error(error.to_string()),
            }
        }
        ControllerResponse::Heartbeat(HeartbeatReply::Ok { status })
    }

    /// Kafka's `auto.leader.rebalance.enable`: every `every`, while this node leads, for each
    /// broker whose share of partitions it prefers (first replica) but does not lead is above
    /// `imbalance_percent`, elect it preferred leader of those partitions where it is in the
    /// ISR and eligible.
    pub async fn run_leader_rebalance(
        self: Arc<Self>,
        every: Duration,
        imbalance_percent: u32,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = crate::shutdown::stopped(&mut shutdown) => return,
                _ = ticker.tick() => {}
            }
            if !self.is_leader() {
                continue;
            }
            let candidates = self
                .controller
                .metadata()
                .read(|state| imbalanced_partitions(state, imbalance_percent));
            if candidates.is_empty() {
                continue;
            }
            let count = candidates.len();
            let command = MetadataCommand::ElectLeaders {
                election: super::ElectionType::Preferred,
                partitions: candidates,
            };
            match self.controller.submit(command).await {
                Ok((_, Ok(super::CommandOutcome::LeadersElected { results }))) => {
                    let moved = results.iter().filter(|(_, _, r)| r.is_ok()).count();
                    metrics::counter!(m::PREFERRED_LEADER_ELECTIONS_TOTAL).increment(moved as u64);
                    tracing::info!(
                        candidates = count,
                        moved,
                        "leader rebalance: preferred leaders elected"
                    );
                }
                Ok((_, other)) => tracing::debug!(?other, "leader rebalance refused"),
                Err(error) => tracing::debug!(%error, "leader rebalance failed"),
            }
        }
    }

    /// Fence brokers whose session expired, while this node leads, until `shutdown`.
    pub async fn run_session_expiry(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every =
            (self.session_timeout / 5).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = crate::shutdown::stopped(&mut shutdown) => return,
                _ = ticker.tick() => self.expire_sessions().await,
            }
        }
    }

    async fn expire_sessions(&self) {
        let (leader, term) = {
            let metrics = self.controller.raft().metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.current_term)
        };
        if leader != Some(self.controller.node_id()) {
            *self.led_in_term.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return;
        }
        let now = Instant::now();
        {
            let mut led = self.led_in_term.lock().unwrap_or_else(|e| e.into_inner());
            if *led != Some(term) {
                // New leadership: every broker gets a full session from now.
                *led = Some(term);
                self.sessions().clear();
            }
        }
        let live: Vec<(BrokerId, BrokerEpoch)> = self.controller.metadata().read(|state| {
            state
                .brokers()
                .filter(|broker| broker.status != BrokerStatus::Fenced)
                .map(|broker| (broker.id, broker.epoch))
                .collect()
        });
        let mut expired = Vec::new();
        {
            let mut sessions = self.sessions();
            for (id, epoch) in live {
                let session = sessions.entry(id).or_insert(Session {
                    epoch,
                    last_heard: now,
                });
                if session.epoch != epoch {
                    *session = Session {
                        epoch,
                        last_heard: now,
                    };
                }
                if now.duration_since(session.last_heard) > self.session_timeout {
                    expired.push((id, epoch));
                }
            }
        }
        for (id, epoch) in expired {
            match self
                .controller
                .submit(MetadataCommand::FenceBroker { id, epoch })
                .await
            {
                Ok((_, Ok(outcome))) => {
                    metrics::counter!(m::BROKERS_FENCED_TOTAL).increment(1);
                    tracing::warn!(
                        broker = id,
                        broker_epoch = epoch,
                        session_timeout_ms = self.session_timeout.as_millis() as u64,
                        partitions_changed = outcome.changes().len(),
                        "broker session expired; fenced"
                    );
                    self.sessions().remove(&id);
                }
                Ok((_, Err(error))) => {
                    tracing::debug!(broker = id, %error, "fence refused");
                    self.sessions().remove(&id);
                }
                Err(error) => {
                    tracing::debug!(broker = id, %error, "fencing failed; will retry");
                    return;
                }
            }
        }
    }
}

/// Partitions whose preferred (first) replica should lead again: for every eligible broker
/// whose "preferred but not leading" share is above `imbalance_percent`, its partitions
/// where it is in the ISR.
pub fn imbalanced_partitions(
    state: &super::MetadataState,
    imbalance_percent: u32,
) -> Vec<(uuid::Uuid, i32)> {
    /// What one broker prefers: how many partitions, how many it does not lead, and those
    /// of them it could take back now.
    #[derive(Default)]
    struct Preferred {
        partitions: usize,
        not_led: usize,
        movable: Vec<(uuid::Uuid, i32)>,
    }
    let mut per_broker: std::collections::BTreeMap<BrokerId, Preferred> = Default::default();
    for topic in state.topics() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let entry = per_broker.entry(preferred).or_default();
            entry.partitions += 1;
            if partition.leader != Some(preferred) {
                entry.not_led += 1;
                let eligible = state.broker(preferred).is_some_and(|b| b.is_eligible());
                if eligible && partition.isr.contains(&preferred) {
                    entry.movable.push((topic.id, index as i32));
                }
            }
        }
    }
    per_broker
        .into_values()
        .filter(|b| b.partitions > 0 && b.not_led * 100 > b.partitions * imbalance_percent as usize)
        .flat_map(|b| b.movable)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::imbalanced_partitions;
    use crate::controller::{CommandOutcome, MetadataCommand, MetadataState};

    fn apply(
        state: &mut MetadataState,
        index: &mut u64,
        command: MetadataCommand,
    ) -> CommandOutcome {
        *index += 1;
        state.apply(*index, &command).expect("command applies")
    }

    #[test]
    fn rebalance_picks_partitions_whose_preferred_leader_is_back_in_the_isr() {
        let (mut state, mut index) = (MetadataState::new(), 0u64);
        let mut epochs = BTreeMap::new();
        for id in 1..=3 {
            let outcome = apply(
                &mut state,
                &mut index,
                MetadataCommand::RegisterBroker {
                    id,
                    incarnation: Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    cluster_id: None,
                },
            );
            let CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome else {
                panic!("{outcome:?}")
            };
            epochs.insert(id, broker_epoch);
            apply(
                &mut state,
                &mut index,
                MetadataCommand::UnfenceBroker {
                    id,
                    epoch: broker_epoch,
                },
            );
        }
        let topic = Uuid::from_u128(7);
        apply(
            &mut state,
            &mut index,
            MetadataCommand::CreateTopic {
                name: "t".into(),
                id: topic,
                partitions: 3,
                replication_factor: 3,
                configs: BTreeMap::new(),
            },
        );
        assert!(
            imbalanced_partitions(&state, 10).is_empty(),
            "balanced after creation"
        );
        // Broker 1 is fenced: its leaderships move away and it leaves the ISRs. Unfenced, it
        // takes nothing back until a leader adds it to the ISR again.
        apply(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker {
                id: 1,
                epoch: epochs[&1],
            },
        );
        assert!(
            imbalanced_partitions(&state, 10).is_empty(),
            "broker 1 is fenced: nothing to give back"
        );
        apply(
            &mut state,
            &mut index,
            MetadataCommand::UnfenceBroker {
                id: 1,
                epoch: epochs[&1],
            },
        );
        let led_by_1: Vec<i32> = (0..3)
            .filter(|&p| state.partition(&topic, p).unwrap().replicas[0] == 1)
            .collect();
        assert!(
            imbalanced_partitions(&state, 10).is_empty(),
            "not in the ISR yet"
        );
        for &p in &led_by_1 {
            let partition = state.partition(&topic, p).unwrap().clone();
            let leader = partition.leader.unwrap();
            let mut isr = partition.isr.clone();
            isr.push(1);
            apply(
                &mut state,
                &mut index,
                MetadataCommand::AlterPartition(crate::controller::AlterPartition {
                    leader_id: leader,
                    broker_epoch: epochs[&leader],
                    topic_id: topic,
                    partition: p,
                    leader_epoch: partition.leader_epoch,
                    partition_epoch: partition.partition_epoch,
                    new_isr: isr,
                    leader_recovery_state: crate::controller::LeaderRecoveryState::Recovered,
                }),
            );
        }
        let candidates = imbalanced_partitions(&state, 10);
        assert_eq!(
            candidates,
            led_by_1.iter().map(|&p| (topic, p)).collect::<Vec<_>>()
        );
        // A high threshold tolerates the imbalance.
        assert!(imbalanced_partitions(&state, 100).is_empty());
    }
}
