//! Deterministic simulation of one partition on three brokers, with a model controller.
//!
//! Each broker runs a real [`Partition`] over a model log (the epoch of every offset plus an
//! [`EpochHistory`]). The controller keeps the registration history, answers AlterPartition as
//! a compare-and-set, fences brokers and elects leaders cleanly from the ISR. Events are
//! interleaved at random: produces, fetch requests and their responses delivered later,
//! ticks, AlterPartition round trips, metadata reaching each broker at its own pace (one
//! registration at a time, or jumping to the latest), preferred-leader moves, crashes,
//! restarts, and fencing of live brokers (which leaves zombie leaders that still believe they
//! lead). Histories too specific for random search to find are scripted as tests below.
//!
//! After every event the simulation checks what replication promises:
//!
//! - every offset below any leader's high watermark is *committed*: its record never changes
//!   on any leader or follower reading below its own high watermark, and every broker that
//!   becomes leader holds all committed records;
//! - an acks=all produce reported done is committed;
//! - on a leader, the high watermark never exceeds the log end of a maximal-ISR member and
//!   never decreases while the leadership lasts; epochs never go back on a broker; the
//!   partition's own invariants hold.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const BROKER_IDS: [i32; 3] = [1, 2, 3];
const LAG_MS: i64 = 100;
const MIN_INSYNC_REPLICAS: usize = 2;

/// A broker's log as the simulation sees it: the leader epoch of every offset.
#[derive(Debug, Clone, Default)]
struct SimLog {
    epochs: Vec<i32>,
    history: EpochHistory,
}

impl SimLog {
    fn offsets(&self) -> LogOffsets {
        LogOffsets {
            log_start_offset: 0,
            log_end_offset: self.end(),
        }
    }

    fn end(&self) -> i64 {
        i64::try_from(self.epochs.len()).unwrap()
    }

    fn append(&mut self, epoch: i32) {
        let offset = self.end();
        self.history.append(epoch, offset, offset + 1);
        self.epochs.push(epoch);
    }

    fn truncate_to(&mut self, offset: i64) {
        self.epochs.truncate(usize::try_from(offset).unwrap());
        self.history.truncate_to(offset);
    }
}

#[derive(Debug)]
struct InflightFetch {
    sent: FollowerFetch,
    response: FetchedPartition,
    records: Vec<i32>,
}

#[derive(Debug)]
struct SimBroker {
    id: i32,
    alive: bool,
    broker_epoch: i64,
    partition: Partition,
    log: SimLog,
    /// Registrations of the controller's history applied so far.
    applied: usize,
    fetch: Option<InflightFetch>,
    outbox: Vec<AlterPartition>,
    answers: Vec<(AlterPartition, AlterPartitionResult)>,
    parked: Vec<AcksAllWait>,
    /// The high watermark of the leadership in progress, to check it never decreases.
    leading_high_watermark: Option<i64>,
}

impl SimBroker {
    fn config(id: i32, broker_epoch: i64) -> PartitionConfig {
        PartitionConfig {
            local_broker_id: id,
            local_broker_epoch: broker_epoch,
            replica_lag_ms_max: LAG_MS,
            min_insync_replicas: MIN_INSYNC_REPLICAS,
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } => {
                    assert_eq!(start_offset, self.log.end(), "epoch starts at the log end");
                    self.log.history.assign(leader_epoch, start_offset);
                }
                Effect::ProposeIsr(sent) => self.outbox.push(sent),
                Effect::HighWatermarkAdvanced(_)
                | Effect::StartFetching { .. }
                | Effect::StopFetching
                | Effect::LeadershipEnded => {}
            }
        }
    }
}

#[derive(Debug)]
struct Controller {
    history: Vec<PartitionRegistration>,
    broker_epochs: BTreeMap<i32, i64>,
    fenced: BTreeSet<i32>,
}

impl Controller {
    fn current(&self) -> &PartitionRegistration {
        self.history.last().unwrap()
    }

    fn liveness(&self, broker: i32) -> ReplicaLiveness {
        if self.fenced.contains(&broker) {
            ReplicaLiveness::Fenced
        } else {
            ReplicaLiveness::Active {
                broker_epoch: self.broker_epochs[&broker],
            }
        }
    }

    fn alter_partition(&mut self, sent: &AlterPartition) -> AlterPartitionResult {
        let current = self.current().clone();
        if sent.leader_epoch != current.leader_epoch || Some(sent.leader_id) != current.leader_id {
            return AlterPartitionResult::Rejected(AlterPartitionError::FencedLeaderEpoch);
        }
        if sent.partition_epoch != current.partition_epoch {
            return AlterPartitionResult::Rejected(AlterPartitionError::InvalidPartitionEpoch);
        }
        let ineligible = sent.new_isr.iter().any(|member| {
            self.fenced.contains(&member.broker_id)
                || (member.broker_epoch != BROKER_EPOCH_UNKNOWN
                    && member.broker_epoch != self.broker_epochs[&member.broker_id])
        });
        if ineligible {
            return AlterPartitionResult::Rejected(AlterPartitionError::IneligibleReplica);
        }
        let isr: Vec<i32> = sent.new_isr_ids().collect();
        self.history.push(PartitionRegistration {
            partition_epoch: current.partition_epoch + 1,
            isr: isr.clone(),
            ..current
        });
        AlterPartitionResult::Committed {
            leader_epoch: sent.leader_epoch,
            partition_epoch: self.current().partition_epoch,
            isr,
        }
    }

    /// The broker's session expired: out of the ISR (unless it is the last member, which
    /// stays, as in KRaft), and a new leader from the ISR if it led.
    fn fence(&mut self, broker: i32) {
        self.fenced.insert(broker);
        let current = self.current().clone();
        let mut isr = current.isr.clone();
        if isr.len() > 1 {
            isr.retain(|&id| id != broker);
        }
        let leader_id = if current.leader_id == Some(broker) {
            isr.iter().copied().find(|id| !self.fenced.contains(id))
        } else {
            current.leader_id
        };
        if isr != current.isr || leader_id != current.leader_id {
            self.change(current, leader_id, isr);
        }
    }

    fn unfence(&mut self, broker: i32, broker_epoch: i64) {
        self.fenced.remove(&broker);
        self.broker_epochs.insert(broker, broker_epoch);
        let current = self.current().clone();
        if current.leader_id.is_none() && current.isr.contains(&broker) {
            let isr = current.isr.clone();
            self.change(current, Some(broker), isr);
        }
    }

    fn move_leader(&mut self, broker: i32) {
        let current = self.current().clone();
        if current.leader_id != Some(broker)
            && current.isr.contains(&broker)
            && !self.fenced.contains(&broker)
        {
            let isr = current.isr.clone();
            self.change(current, Some(broker), isr);
        }
    }

    fn change(&mut self, current: PartitionRegistration, leader_id: Option<i32>, isr: Vec<i32>) {
        let leader_epoch = if leader_id != current.leader_id {
            current.leader_epoch + 1
        } else {
            current.leader_epoch
        };
        self.history.push(PartitionRegistration {
            leader_id,
            leader_epoch,
            partition_epoch: current.partition_epoch + 1,
            isr,
            ..current
        });
    }
}

#[derive(Debug, Clone)]
enum Event {
    Produce {
        broker: usize,
        records: usize,
    },
    SendFetch {
        broker: usize,
        records_max: usize,
    },
    DeliverFetchResponse {
        broker: usize,
    },
    Tick {
        broker: usize,
        elapsed_ms: i64,
    },
    SendAlterPartition {
        broker: usize,
    },
    DeliverAlterPartitionAnswer {
        broker: usize,
    },
    ApplyMetadata {
        broker: usize,
    },
    /// The broker applies only the latest registration, skipping those between (a batched
    /// metadata delta or a snapshot).
    ApplyLatestMetadata {
        broker: usize,
    },
    Crash {
        broker: usize,
    },
    Restart {
        broker: usize,
    },
    /// The controller moves leadership to the broker, if it is in the ISR and unfenced
    /// (a preferred-leader election).
    MoveLeader {
        broker: usize,
    },
    /// The controller loses the broker's session; the broker keeps running.
    Fence {
        broker: usize,
    },
    Unfence {
        broker: usize,
    },
}

struct Sim {
    now_ms: i64,
    brokers: Vec<SimBroker>,
    controller: Controller,
    /// The record (its epoch) at every committed offset.
    committed: Vec<i32>,
    acknowledged: usize,
}

impl Sim {
    fn new() -> Sim {
        let registration = PartitionRegistration {
            leader_id: Some(BROKER_IDS[0]),
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: BROKER_IDS.to_vec(),
            isr: BROKER_IDS.to_vec(),
        };
        let mut sim = Sim {
            now_ms: 0,
            brokers: Vec::new(),
            controller: Controller {
                history: vec![registration],
                broker_epochs: BROKER_IDS.iter().map(|&id| (id, 1)).collect(),
                fenced: BTreeSet::new(),
            },
            committed: Vec::new(),
            acknowledged: 0,
        };
        for id in BROKER_IDS {
            let log = SimLog::default();
            let partition = Partition::new(SimBroker::config(id, 1), log.offsets(), 0);
            sim.brokers.push(SimBroker {
                id,
                alive: true,
                broker_epoch: 1,
                partition,
                log,
                applied: 0,
                fetch: None,
                outbox: Vec::new(),
                answers: Vec::new(),
                parked: Vec::new(),
                leading_high_watermark: None,
            });
        }
        for index in 0..BROKER_IDS.len() {
            sim.step(Event::ApplyMetadata { broker: index });
        }
        sim
    }

    fn index_of(&self, broker_id: i32) -> usize {
        self.brokers.iter().position(|b| b.id == broker_id).unwrap()
    }

    fn step(&mut self, event: Event) {
        let now_ms = self.now_ms;
        match event {
            Event::Produce { broker, records } => {
                let b = &mut self.brokers[broker];
                if !b.alive || !b.partition.is_leader() {
                    return;
                }
                // acks=1 produces append even when acks=all would be refused.
                let acks_all = b.partition.check_acks_all_admission().is_ok();
                let epoch = b.partition.leader_epoch();
                for _ in 0..records {
                    b.log.append(epoch);
                }
                let effects = b.partition.on_leader_append(b.log.end());
                b.apply(effects);
                if acks_all {
                    b.parked.push(AcksAllWait {
                        leader_epoch: epoch,
                        required_offset: b.log.end(),
                    });
                }
            }
            Event::SendFetch {
                broker,
                records_max,
            } => {
                let b = &self.brokers[broker];
                if !b.alive || b.fetch.is_some() {
                    return;
                }
                let Some(sent) = b
                    .partition
                    .next_fetch(b.log.offsets(), b.log.history.latest_epoch())
                else {
                    return;
                };
                let leader_index = self.index_of(b.partition.leader_id().unwrap());
                let liveness = self.controller.liveness(b.id);
                let leader = &mut self.brokers[leader_index];
                if !leader.alive {
                    return;
                }
                let decision = leader.partition.on_follower_fetch(
                    &sent,
                    leader.log.offsets(),
                    &leader.log.history,
                    liveness,
                    now_ms,
                );
                let inflight = match decision {
                    FollowerFetchDecision::Read {
                        from,
                        high_watermark,
                        effects,
                    } => {
                        leader.apply(effects);
                        let from = usize::try_from(from).unwrap();
                        let to = leader.log.epochs.len().min(from + records_max);
                        let records = leader.log.epochs[from..to].to_vec();
                        InflightFetch {
                            sent,
                            response: FetchedPartition {
                                high_watermark,
                                diverging_epoch: None,
                                records_end_offset: (!records.is_empty())
                                    .then(|| i64::try_from(to).unwrap()),
                            },
                            records,
                        }
                    }
                    FollowerFetchDecision::Diverging(diverging) => InflightFetch {
                        sent,
                        response: FetchedPartition {
                            high_watermark: leader.partition.high_watermark(),
                            diverging_epoch: Some(diverging),
                            records_end_offset: None,
                        },
                        records: Vec::new(),
                    },
                    FollowerFetchDecision::Refused(_) => return,
                };
                self.brokers[broker].fetch = Some(inflight);
            }
            Event::DeliverFetchResponse { broker } => {
                let b = &mut self.brokers[broker];
                let Some(inflight) = b.fetch.take() else {
                    return;
                };
                let Ok(actions) = b.partition.on_fetch_response(
                    &inflight.sent,
                    &inflight.response,
                    b.log.offsets(),
                    &b.log.history,
                ) else {
                    return;
                };
                for action in actions {
                    match action {
                        FollowerAction::TruncateTo(offset) => b.log.truncate_to(offset),
                        FollowerAction::Append => {
                            for &epoch in &inflight.records {
                                b.log.append(epoch);
                            }
                        }
                        FollowerAction::UpdateHighWatermark(high_watermark) => {
                            assert!(high_watermark <= b.log.end());
                        }
                    }
                }
            }
            Event::Tick { broker, elapsed_ms } => {
                self.now_ms += elapsed_ms;
                let b = &mut self.brokers[broker];
                if b.alive {
                    let effects = b.partition.tick(self.now_ms);
                    b.apply(effects);
                }
            }
            Event::SendAlterPartition { broker } => {
                if self.brokers[broker].outbox.is_empty() {
                    return;
                }
                let sent = self.brokers[broker].outbox.remove(0);
                let result = self.controller.alter_partition(&sent);
                self.brokers[broker].answers.push((sent, result));
            }
            Event::DeliverAlterPartitionAnswer { broker } => {
                let b = &mut self.brokers[broker];
                if b.answers.is_empty() {
                    return;
                }
                let (sent, result) = b.answers.remove(0);
                if let Ok(effects) = b.partition.on_isr_change_result(&sent, result) {
                    b.apply(effects);
                }
            }
            Event::ApplyMetadata { broker } => {
                let b = &mut self.brokers[broker];
                if !b.alive || b.applied == self.controller.history.len() {
                    return;
                }
                let registration = self.controller.history[b.applied].clone();
                b.applied += 1;
                self.apply_registration(broker, &registration);
            }
            Event::ApplyLatestMetadata { broker } => {
                let b = &mut self.brokers[broker];
                let latest = self.controller.history.len();
                if !b.alive || b.applied == latest {
                    return;
                }
                b.applied = latest;
                let registration = self.controller.history[latest - 1].clone();
                self.apply_registration(broker, &registration);
            }
            Event::Crash { broker } => {
                let b = &mut self.brokers[broker];
                if !b.alive {
                    return;
                }
                // A process crash: the page cache keeps the log, everything else is gone.
                b.alive = false;
                b.fetch = None;
                b.outbox.clear();
                b.answers.clear();
                b.parked.clear();
                b.leading_high_watermark = None;
                let id = b.id;
                self.controller.fence(id);
            }
            Event::Restart { broker } => {
                let b = &mut self.brokers[broker];
                if b.alive {
                    return;
                }
                b.alive = true;
                b.broker_epoch += 1;
                let high_watermark_checkpoint = b.partition.high_watermark();
                b.partition = Partition::new(
                    SimBroker::config(b.id, b.broker_epoch),
                    b.log.offsets(),
                    high_watermark_checkpoint,
                );
                let (id, broker_epoch) = (b.id, b.broker_epoch);
                self.controller.unfence(id, broker_epoch);
                // Start from the latest metadata (a snapshot), as a restarted broker does.
                let latest = self.controller.history.len();
                self.brokers[broker].applied = latest;
                let registration = self.controller.history[latest - 1].clone();
                self.apply_registration(broker, &registration);
            }
            Event::MoveLeader { broker } => {
                let id = self.brokers[broker].id;
                self.controller.move_leader(id);
            }
            Event::Fence { broker } => {
                let id = self.brokers[broker].id;
                if self.brokers[broker].alive && !self.controller.fenced.contains(&id) {
                    self.controller.fence(id);
                }
            }
            Event::Unfence { broker } => {
                let b = &self.brokers[broker];
                if b.alive && self.controller.fenced.contains(&b.id) {
                    let (id, broker_epoch) = (b.id, b.broker_epoch);
                    self.controller.unfence(id, broker_epoch);
                }
            }
        }
    }

    fn apply_registration(&mut self, broker: usize, registration: &PartitionRegistration) {
        let now_ms = self.now_ms;
        let b = &mut self.brokers[broker];
        let was_leader = b.partition.is_leader();
        let epochs_before = (b.partition.leader_epoch(), b.partition.partition_epoch());
        match b
            .partition
            .apply_registration(registration, b.log.offsets(), now_ms)
        {
            Ok(effects) => b.apply(effects),
            Err(MetadataRefusal::Invalid(why)) => panic!("controller sent {registration:?}: {why}"),
            Err(_) => {}
        }
        let epochs_after = (b.partition.leader_epoch(), b.partition.partition_epoch());
        assert!(epochs_after.0 >= epochs_before.0 && epochs_after.1 >= epochs_before.1);
        if b.partition.is_leader() && !was_leader {
            b.leading_high_watermark = None;
        }
        // Clean election: the elected leader holds every committed record. A broker taking
        // leadership from a registration the controller has since superseded is a zombie;
        // nothing it does can reach the high watermark (the checks in `check` watch it).
        let elected = registration == self.controller.current();
        if b.partition.is_leader() && elected && epochs_after.0 > epochs_before.0 {
            assert!(
                b.log.epochs.len() >= self.committed.len()
                    && b.log.epochs[..self.committed.len()] == self.committed[..],
                "new leader {} lacks committed records: log {:?}, committed {:?}",
                b.id,
                b.log.epochs,
                self.committed
            );
        }
    }

    fn check(&mut self) {
        for b in &mut self.brokers {
            if !b.alive {
                continue;
            }
            b.partition.assert_invariants();
            let high_watermark = usize::try_from(b.partition.high_watermark()).unwrap();
            assert!(high_watermark <= b.log.epochs.len());
            let Role::Leader(leader) = b.partition.role() else {
                b.leading_high_watermark = None;
                // What a follower serves to consumers is committed.
                assert!(high_watermark <= self.committed.len());
                assert_eq!(
                    b.log.epochs[..high_watermark],
                    self.committed[..high_watermark],
                    "follower {} serves uncommitted records",
                    b.id
                );
                continue;
            };
            assert_eq!(leader.log_end_offset(), b.log.end());
            if let Some(previous) = b.leading_high_watermark {
                assert!(
                    b.partition.high_watermark() >= previous,
                    "leader {} high watermark went back",
                    b.id
                );
            }
            b.leading_high_watermark = Some(b.partition.high_watermark());
            // Everything below a leader's high watermark is committed, and stays as it was.
            let known = self.committed.len().min(high_watermark);
            assert_eq!(
                b.log.epochs[..known],
                self.committed[..known],
                "leader {} disagrees with committed records",
                b.id
            );
            self.committed
                .extend_from_slice(&b.log.epochs[known..high_watermark]);
        }
        // Maximal-ISR members hold everything below the leader's high watermark.
        for leader in &self.brokers {
            let (true, Some(isr)) = (leader.alive, leader.partition.isr()) else {
                continue;
            };
            for member in isr.maximal() {
                let member = &self.brokers[self.index_of(member)];
                assert!(
                    member.log.end() >= leader.partition.high_watermark(),
                    "leader {} high watermark {} beyond ISR member {} log end {}",
                    leader.id,
                    leader.partition.high_watermark(),
                    member.id,
                    member.log.end()
                );
            }
        }
        for b in &mut self.brokers {
            let partition = &b.partition;
            let mut acknowledged = 0;
            b.parked
                .retain(|&wait| match partition.acks_all_status(wait) {
                    AcksAllStatus::Pending => true,
                    AcksAllStatus::Done => {
                        let required = usize::try_from(wait.required_offset).unwrap();
                        assert!(
                            required <= self.committed.len(),
                            "acknowledged offset {required} is not committed"
                        );
                        acknowledged += 1;
                        false
                    }
                    AcksAllStatus::NotEnoughReplicasAfterAppend
                    | AcksAllStatus::NotLeaderOrFollower => false,
                });
            self.acknowledged += acknowledged;
        }
    }

    /// Let metadata and fetches settle without faults, so that a run ends with progress.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for broker in 0..self.brokers.len() {
                for event in [
                    Event::ApplyMetadata { broker },
                    Event::SendFetch {
                        broker,
                        records_max: 8,
                    },
                    Event::DeliverFetchResponse { broker },
                    Event::SendAlterPartition { broker },
                    Event::DeliverAlterPartitionAnswer { broker },
                    Event::Tick {
                        broker,
                        elapsed_ms: 10,
                    },
                ] {
                    self.step(event);
                    self.check();
                }
            }
        }
    }
}

fn event() -> impl Strategy<Value = Event> {
    let broker = 0..BROKER_IDS.len();
    prop_oneof![
        4 => (broker.clone(), 1..4usize).prop_map(|(broker, records)| Event::Produce { broker, records }),
        6 => (broker.clone(), 1..6usize)
            .prop_map(|(broker, records_max)| Event::SendFetch { broker, records_max }),
        6 => broker.clone().prop_map(|broker| Event::DeliverFetchResponse { broker }),
        3 => (broker.clone(), 0..2 * LAG_MS)
            .prop_map(|(broker, elapsed_ms)| Event::Tick { broker, elapsed_ms }),
        2 => broker.clone().prop_map(|broker| Event::SendAlterPartition { broker }),
        2 => broker.clone().prop_map(|broker| Event::DeliverAlterPartitionAnswer { broker }),
        3 => broker.clone().prop_map(|broker| Event::ApplyMetadata { broker }),
        1 => broker.clone().prop_map(|broker| Event::ApplyLatestMetadata { broker }),
        1 => broker.clone().prop_map(|broker| Event::Crash { broker }),
        1 => broker.clone().prop_map(|broker| Event::Restart { broker }),
        1 => broker.clone().prop_map(|broker| Event::MoveLeader { broker }),
        1 => broker.clone().prop_map(|broker| Event::Fence { broker }),
        1 => broker.prop_map(|broker| Event::Unfence { broker }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn committed_records_survive_any_interleaving(events in prop::collection::vec(event(), 1..300)) {
        let mut sim = Sim::new();
        for event in events {
            sim.step(event);
            sim.check();
        }
        for broker in 0..BROKER_IDS.len() {
            sim.step(Event::Restart { broker });
            sim.step(Event::Unfence { broker });
            sim.check();
        }
        sim.settle(20);
    }
}

/// The property test is only as good as the histories it explores: a long seeded run must
/// commit records, acknowledge produces, and change leaders.
#[test]
fn simulation_commits_and_fails_over() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut sim = Sim::new();
    let strategy = event();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..20_000 {
        let event = strategy.new_tree(&mut runner).unwrap().current();
        // Faults are rare enough for the cluster to make progress between them.
        let fault = matches!(event, Event::Crash { .. } | Event::Fence { .. });
        if fault && rng.random_range(0..20) != 0 {
            continue;
        }
        sim.step(event);
        sim.check();
        if rng.random_range(0..200) == 0 {
            for broker in 0..BROKER_IDS.len() {
                sim.step(Event::Restart { broker });
                sim.step(Event::Unfence { broker });
            }
        }
    }
    let leader_epoch = sim.controller.current().leader_epoch;
    assert!(
        sim.committed.len() > 100,
        "committed {}",
        sim.committed.len()
    );
    assert!(sim.acknowledged > 20, "acknowledged {}", sim.acknowledged);
    assert!(leader_epoch > 5, "leader epoch {leader_epoch}");
}

/// Why a follower joins the ISR only from the start of the leader's epoch: a new leader's
/// high watermark can lag what its predecessor committed, and a follower between the two
/// would otherwise become eligible to lead without the committed records.
#[test]
fn follower_below_the_epoch_start_cannot_join_and_lead() {
    use Event::*;
    let (b1, b2, b3) = (0, 1, 2);
    let mut sim = Sim::new();
    let script = [
        Fence { broker: b3 }, // ISR {1, 2}; broker 3 keeps running
        ApplyMetadata { broker: b1 },
        ApplyMetadata { broker: b2 },
        ApplyMetadata { broker: b3 },
        Produce {
            broker: b1,
            records: 4,
        },
        SendFetch {
            broker: b3,
            records_max: 2,
        },
        DeliverFetchResponse { broker: b3 }, // broker 3 holds [0, 2)
        SendFetch {
            broker: b2,
            records_max: 8,
        },
        DeliverFetchResponse { broker: b2 }, // broker 2 holds [0, 4)
        SendFetch {
            broker: b2,
            records_max: 8,
        }, // leader 1 commits [0, 4); broker 2 never hears the new HW
        Fence { broker: b1 },                // broker 2 leads epoch 1, ISR {2}
        Unfence { broker: b3 },
        ApplyMetadata { broker: b2 }, // leads from 4 with HW 0
        ApplyMetadata { broker: b3 },
        SendFetch {
            broker: b3,
            records_max: 1,
        }, // at 2: past the HW, short of the epoch start
        SendAlterPartition { broker: b2 },
        DeliverAlterPartitionAnswer { broker: b2 },
        Crash { broker: b2 },
        ApplyMetadata { broker: b3 },
        ApplyMetadata { broker: b3 },
    ];
    for event in script {
        sim.step(event);
        sim.check();
    }
    assert_eq!(sim.committed.len(), 4);
    assert_eq!(sim.acknowledged, 1);
    assert_eq!(
        sim.controller.current().leader_id,
        None,
        "unavailable rather than lossy: only broker 2 was in sync"
    );
}

/// A leader elected again after an epoch it did not see (its metadata jumped to the latest
/// registration) must not trust what it knew of followers' logs: one may have truncated to
/// follow the leader in between, and stale log ends would let the high watermark cover
/// records that follower no longer has.
#[test]
fn leader_reelected_after_a_missed_epoch_relearns_follower_logs() {
    use Event::*;
    let (b1, b2, b3) = (0, 1, 2);
    let mut sim = Sim::new();
    let fetch = |broker, records_max| SendFetch {
        broker,
        records_max,
    };
    let script = [
        Produce {
            broker: b1,
            records: 6,
        },
        fetch(b2, 4),
        DeliverFetchResponse { broker: b2 }, // broker 2 holds [0, 4)
        fetch(b3, 8),
        DeliverFetchResponse { broker: b3 }, // broker 3 holds [0, 6)
        fetch(b2, 8),                        // leader 1 learns 2 is at 4 (response dropped below)
        fetch(b3, 8),                        // ... and 3 at 6: HW 4
        MoveLeader { broker: b2 },           // epoch 1: broker 2 leads from 4
        ApplyMetadata { broker: b2 },
        ApplyMetadata { broker: b3 },
        DeliverFetchResponse { broker: b2 }, // refused: sent in epoch 0
        DeliverFetchResponse { broker: b3 },
        Produce {
            broker: b2,
            records: 3,
        }, // [4, 7) in epoch 1
        fetch(b3, 8),
        DeliverFetchResponse { broker: b3 }, // diverges at 4: truncates
        fetch(b3, 8),
        DeliverFetchResponse { broker: b3 }, // broker 3: [0, 4) epoch 0, [4, 7) epoch 1
        MoveLeader { broker: b1 },           // epoch 2
        ApplyLatestMetadata { broker: b1 },  // broker 1 never saw epoch 1
        ApplyMetadata { broker: b2 },
        ApplyMetadata { broker: b2 },
        fetch(b2, 8),
        DeliverFetchResponse { broker: b2 }, // diverges: truncates to 4
        fetch(b2, 8),
        DeliverFetchResponse { broker: b2 }, // broker 2 copies [4, 6) from broker 1
        fetch(b2, 8),                        // leader 1 learns 2 is at 6
        Crash { broker: b1 },                // broker 3 is elected if it is first in the ISR
        Crash { broker: b2 },
        ApplyMetadata { broker: b3 },
        ApplyMetadata { broker: b3 },
        ApplyMetadata { broker: b3 },
        ApplyMetadata { broker: b3 },
        ApplyMetadata { broker: b3 },
    ];
    for event in script {
        sim.step(event);
        sim.check();
    }
    assert!(sim.committed.len() >= 4);
}
