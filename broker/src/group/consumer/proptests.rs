//! Random sequences of joins, heartbeats (revoking promptly or not), subscription changes,
//! leaves (for good, or for a while for the static client), topic growth and time, for
//! three clients (two dynamic, one static); the group's invariants are checked after every
//! step, and at the end the group must settle once everyone heartbeats.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::member::{iter_partitions, MemberState};
use super::tests::{beat, join, leave, Harness};
use super::*;

const CLIENTS: usize = 3;
const STATIC_CLIENT: usize = 2;
const SUBSCRIPTIONS: [&[&str]; 3] = [&["foo"], &["foo", "bar"], &["bar"]];

#[derive(Debug, Clone)]
enum Op {
    Join { client: usize, subscription: usize },
    Heartbeat { client: usize, revoke: bool },
    Subscribe { client: usize, subscription: usize },
    Leave { client: usize, temporarily: bool },
    Advance { ms: i64 },
    GrowFoo,
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS;
    let subscription = 0..SUBSCRIPTIONS.len();
    prop_oneof![
        3 => (client.clone(), subscription.clone())
            .prop_map(|(client, subscription)| Op::Join { client, subscription }),
        8 => (client.clone(), prop::bool::weighted(0.8))
            .prop_map(|(client, revoke)| Op::Heartbeat { client, revoke }),
        1 => (client.clone(), subscription)
            .prop_map(|(client, subscription)| Op::Subscribe { client, subscription }),
        1 => (client, any::<bool>())
            .prop_map(|(client, temporarily)| Op::Leave { client, temporarily }),
        2 => (0i64..40_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::GrowFoo),
    ]
}

/// What a client knows: whether it is in the group, its id and epoch, what it owns, and
/// the latest assignment it was sent (taken up when it revokes).
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: String,
    joined: bool,
    epoch: i32,
    owned: Partitions,
    latest: Option<Partitions>,
    incarnation: u32,
}

struct Run {
    h: Harness,
    clients: Vec<Client>,
    /// Member id -> the last epoch seen, reset when the member (re)joins or leaves with -2.
    last_member_epochs: BTreeMap<String, i32>,
    last_group_epoch: i32,
    last_assignment_epoch: i32,
}

impl Run {
    fn new() -> Run {
        let clients = (0..CLIENTS)
            .map(|i| Client {
                member_id: format!("c{i}"),
                ..Client::default()
            })
            .collect();
        Run {
            h: Harness::new(),
            clients,
            last_member_epochs: BTreeMap::new(),
            last_group_epoch: 0,
            last_assignment_epoch: 0,
        }
    }

    fn instance_id(client: usize) -> Option<String> {
        (client == STATIC_CLIENT).then(|| "static".to_string())
    }

    fn send(&mut self, client: usize, mut request: HeartbeatRequest) {
        request.instance_id = Run::instance_id(client);
        match self.h.send(request) {
            Ok((response, _)) => {
                let c = &mut self.clients[client];
                c.epoch = response.member_epoch;
                if let Some(assignment) = response.assignment {
                    c.latest = Some(assignment);
                }
            }
            Err(error) => {
                let expected = [25, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, 82];
                assert!(expected.contains(&error.code()), "unexpected {error}");
                let c = &mut self.clients[client];
                c.joined = false;
                c.owned.clear();
                c.latest = None;
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Join {
                client,
                subscription,
            } => {
                let c = &mut self.clients[client];
                c.joined = true;
                c.owned.clear();
                c.latest = None;
                let request = join(&c.member_id, SUBSCRIPTIONS[subscription]);
                self.last_member_epochs.remove(&c.member_id);
                self.send(client, request);
            }
            Op::Heartbeat { client, revoke } => self.heartbeat(client, revoke, None),
            Op::Subscribe {
                client,
                subscription,
            } => self.heartbeat(client, true, Some(subscription)),
            Op::Leave {
                client,
                temporarily,
            } => self.leave(client, temporarily),
            Op::Advance { ms } => {
                self.h.advance(ms);
            }
            Op::GrowFoo => self.grow_foo(),
        }
    }

    fn heartbeat(&mut self, client: usize, revoke: bool, subscription: Option<usize>) {
        let c = &mut self.clients[client];
        if !c.joined {
            return;
        }
        if revoke {
            if let Some(latest) = c.latest.take() {
                c.owned = latest;
            }
        }
        let mut request = beat(&c.member_id, c.epoch, c.owned.clone());
        if let Some(s) = subscription {
            let names = SUBSCRIPTIONS[s].iter().map(|t| t.to_string()).collect();
            request.subscribed_topic_names = Some(names);
        }
        self.send(client, request);
    }

    fn leave(&mut self, client: usize, temporarily: bool) {
        let c = &mut self.clients[client];
        if !c.joined {
            return;
        }
        let epoch = if temporarily && client == STATIC_CLIENT {
            LEAVE_GROUP_STATIC_MEMBER_EPOCH
        } else {
            LEAVE_GROUP_MEMBER_EPOCH
        };
        let request = leave(&c.member_id, epoch);
        self.last_member_epochs.remove(&c.member_id);
        self.send(client, request);
        let c = &mut self.clients[client];
        c.joined = false;
        c.owned.clear();
        c.latest = None;
        if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The process restarts: it will come back under a new member id.
            c.incarnation += 1;
            c.member_id = format!("c{client}-{}", c.incarnation);
        }
    }

    fn grow_foo(&mut self) {
        let foo = self.h.topics.get("foo").expect("foo exists");
        let bar = self.h.topics.get("bar").expect("bar exists");
        let foo = TopicInfo {
            partition_count: (foo.partition_count + 1).min(10),
            ..foo
        };
        self.h.topics = TopicsSnapshot::new([("foo".to_string(), foo), ("bar".to_string(), bar)]);
    }

    /// The invariants of the module docs, after every step.
    fn check(&mut self) {
        let group = &self.h.group;
        let data = &group.data;
        assert!(
            data.group_epoch >= self.last_group_epoch,
            "group epoch went back"
        );
        assert!(data.assignment_epoch >= self.last_assignment_epoch);
        assert!(data.assignment_epoch <= data.group_epoch);
        self.last_group_epoch = data.group_epoch;
        self.last_assignment_epoch = data.assignment_epoch;

        let mut owners = BTreeMap::new();
        for (member_id, member) in &data.members {
            let epoch = member.member_epoch();
            assert!(
                epoch <= data.assignment_epoch,
                "{member_id} epoch {epoch} ahead"
            );
            for tp in member.owned_partitions() {
                let previous = owners.insert(tp, member_id);
                assert!(
                    previous.is_none(),
                    "{tp:?} owned by {previous:?} and {member_id}"
                );
                assert_eq!(group.current_partition_epoch(tp.0, tp.1), epoch);
            }
            if member.is_reconciled_to(data.assignment_epoch) {
                assert_eq!(
                    member.current.assigned_partitions,
                    group.target_assignment(member_id)
                );
                assert!(member.current.partitions_pending_revocation.is_empty());
            }
            if member.state() != MemberState::UnrevokedPartitions {
                assert!(member.current.partitions_pending_revocation.is_empty());
            }
            let last = self.last_member_epochs.insert(member_id.clone(), epoch);
            let went_back = last.is_some_and(|last| epoch < last);
            assert!(
                !went_back || epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                "{member_id} epoch went back"
            );
        }
        let indexed: usize = data.partition_epochs.values().map(|t| t.len()).sum();
        assert_eq!(indexed, owners.len(), "index has partitions nobody owns");

        let mut targeted = BTreeSet::new();
        for partitions in data.target_assignment.values() {
            for tp in iter_partitions(partitions) {
                assert!(targeted.insert(tp), "{tp:?} in two targets");
            }
        }
        self.check_clients();
        self.h.assert_replay_matches();
    }

    /// No two clients that are members consume the same partition: a client consumes what
    /// it owns and, at once, what it was last sent; it stops consuming what it revokes only
    /// when its heartbeat says so. (Clients the group removed are zombies, fenced on
    /// commit by their epoch, and not counted.)
    fn check_clients(&self) {
        let mut consumers = BTreeMap::new();
        for c in &self.clients {
            if !c.joined || !self.h.group.has_member(&c.member_id) {
                continue;
            }
            let latest = c.latest.iter().flat_map(iter_partitions);
            for tp in iter_partitions(&c.owned).chain(latest) {
                if let Some(other) = consumers.insert(tp, &c.member_id) {
                    assert!(
                        other == &c.member_id,
                        "{tp:?} consumed by {other} and {}",
                        c.member_id
                    );
                }
            }
        }
    }

    /// Everyone still in heartbeats, revoking promptly, with no time passing: the group
    /// must become Stable with every client owning its target.
    fn settle(&mut self) {
        for _ in 0..6 {
            for client in 0..CLIENTS {
                self.heartbeat(client, true, None);
                self.check();
            }
        }
        let group = &self.h.group;
        let away = group.data.members.values().any(|m| m.member_epoch() < 0);
        if away || group.data.members.is_empty() {
            return;
        }
        assert_eq!(group.state(), GroupState::Stable);
        for c in self.clients.iter().filter(|c| c.joined) {
            let owned = c.latest.clone().unwrap_or_else(|| c.owned.clone());
            assert_eq!(
                owned,
                group.target_assignment(&c.member_id),
                "{}",
                c.member_id
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn consumer_group_invariants_hold_under_random_steps(ops in prop::collection::vec(op(), 1..60)) {
        let mut run = Run::new();
        for op in &ops {
            run.step(op);
            run.check();
        }
        run.settle();
    }
}
