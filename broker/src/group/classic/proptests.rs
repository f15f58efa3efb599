//! Random sequences of joins, syncs, heartbeats, leaves, appends and time for a few
//! clients (two dynamic, one static), with the group's invariants checked after every step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::error::ErrorCode;

use super::tests::{join_request, leaving, protocols, sync_request, Harness};
use super::*;

const CLIENTS: usize = 3;
const STATIC_CLIENT: usize = 2;
/// Protocol lists a client may join with; the last shares nothing with the others.
const PROTOCOL_CHOICES: [&[&str]; 4] = [
    &["range"],
    &["range", "roundrobin"],
    &["roundrobin", "range"],
    &["sticky"],
];

#[derive(Debug, Clone)]
enum Op {
    Join {
        client: usize,
        choice: usize,
        old_version: bool,
    },
    Sync {
        client: usize,
    },
    Heartbeat {
        client: usize,
    },
    Leave {
        client: usize,
    },
    Advance {
        ms: i64,
    },
    Persist {
        ok: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS;
    prop_oneof![
        4 => (client.clone(), 0..PROTOCOL_CHOICES.len(), any::<bool>())
            .prop_map(|(client, choice, old_version)| Op::Join { client, choice, old_version }),
        4 => client.clone().prop_map(|client| Op::Sync { client }),
        3 => client.clone().prop_map(|client| Op::Heartbeat { client }),
        1 => client.prop_map(|client| Op::Leave { client }),
        3 => (0i64..6_000).prop_map(|ms| Op::Advance { ms }),
        3 => prop::bool::weighted(0.8).prop_map(|ok| Op::Persist { ok }),
    ]
}

/// What a client knows: its member id, generation, and (as leader) the members to assign.
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: String,
    generation_id: i32,
    members_to_assign: Vec<String>,
}

struct Run {
    h: Harness,
    clients: Vec<Client>,
    token_owner: BTreeMap<RequestToken, usize>,
    join_tokens: BTreeSet<RequestToken>,
    sync_tokens: BTreeSet<RequestToken>,
    answered: BTreeSet<RequestToken>,
    persists: VecDeque<PersistId>,
    seen_effects: usize,
    last_generation_id: i32,
}

fn instance_id(client: usize) -> Option<String> {
    (client == STATIC_CLIENT).then(|| "static-0".to_string())
}

impl Run {
    fn new() -> Run {
        Run {
            h: Harness::new(ClassicGroupConfig::default()),
            clients: vec![Client::default(); CLIENTS],
            token_owner: BTreeMap::new(),
            join_tokens: BTreeSet::new(),
            sync_tokens: BTreeSet::new(),
            answered: BTreeSet::new(),
            persists: VecDeque::new(),
            seen_effects: 0,
            last_generation_id: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Join {
                client,
                choice,
                old_version,
            } => {
                let request = JoinRequest {
                    api_version: if old_version { 3 } else { 9 },
                    group_instance_id: instance_id(client),
                    protocols: protocols(PROTOCOL_CHOICES[choice]),
                    ..join_request(&self.clients[client].member_id)
                };
                let token = self.h.join(request);
                self.join_tokens.insert(token);
                self.token_owner.insert(token, client);
            }
            Op::Sync { client } => {
                let c = &self.clients[client];
                let mut request = SyncRequest {
                    group_instance_id: instance_id(client),
                    protocol_name: None,
                    ..sync_request(&c.member_id, c.generation_id)
                };
                request.assignments = c
                    .members_to_assign
                    .iter()
                    .map(|id| {
                        (
                            id.clone(),
                            Bytes::from(format!("gen{}-{id}", c.generation_id)),
                        )
                    })
                    .collect();
                let token = self.h.sync(request);
                self.sync_tokens.insert(token);
                self.token_owner.insert(token, client);
            }
            Op::Heartbeat { client } => {
                let c = &self.clients[client];
                let request = HeartbeatRequest {
                    member_id: c.member_id.clone(),
                    group_instance_id: instance_id(client),
                    generation_id: c.generation_id,
                };
                let (_, effects) = self.h.group.heartbeat(&request, self.h.now_ms);
                self.h.effects.extend(effects);
            }
            Op::Leave { client } => {
                let id = self.clients[client].member_id.clone();
                let instance = instance_id(client);
                self.h.leave(&[leaving(&id, instance.as_deref())]);
            }
            Op::Advance { ms } => self.h.advance(ms),
            Op::Persist { ok } => {
                if let Some(id) = self.persists.pop_front() {
                    let result = if ok {
                        Ok(())
                    } else {
                        Err(ErrorCode::NotLeaderOrFollower)
                    };
                    let effects = self.h.group.on_persisted(id, result, self.h.now_ms);
                    self.h.effects.extend(effects);
                }
            }
        }
    }

    /// Reads the effects of the last step as the clients would, checking each answer.
    fn absorb_effects(&mut self) {
        let (generation_id, state) = (self.h.group.generation_id(), self.h.group.state());
        let new_effects = self.h.effects[self.seen_effects..].to_vec();
        self.seen_effects = self.h.effects.len();
        for effect in new_effects {
            match effect {
                Effect::Join { token, response } => {
                    assert!(self.join_tokens.contains(&token), "unknown join token");
                    assert!(self.answered.insert(token), "join token answered twice");
                    if response.error == ErrorCode::None {
                        let current = generation_id;
                        let emptied = state == GroupState::Empty;
                        assert!(
                            response.generation_id == current
                                || (emptied && response.generation_id == current - 1),
                            "join answered with generation {} while the group has {current}",
                            response.generation_id
                        );
                    }
                    self.client_reads_join(token, &response);
                }
                Effect::Sync { token, response } => {
                    assert!(self.sync_tokens.contains(&token), "unknown sync token");
                    assert!(self.answered.insert(token), "sync token answered twice");
                    if response.error == ErrorCode::None {
                        let prefix = format!("gen{generation_id}-");
                        let assignment = String::from_utf8_lossy(&response.assignment);
                        assert!(
                            assignment.starts_with(&prefix),
                            "sync answered with {assignment:?} in generation {generation_id}"
                        );
                    }
                }
                Effect::Persist { id, .. } => self.persists.push_back(id),
                Effect::ScheduleTimer { .. } => {}
            }
        }
    }

    fn client_reads_join(&mut self, token: RequestToken, response: &JoinResponse) {
        let client = &mut self.clients[self.token_owner[&token]];
        match response.error {
            ErrorCode::None => {
                client.member_id = response.member_id.clone();
                client.generation_id = response.generation_id;
                client.members_to_assign = response
                    .members
                    .iter()
                    .map(|m| m.member_id.clone())
                    .collect();
            }
            ErrorCode::MemberIdRequired => client.member_id = response.member_id.clone(),
            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId => client.member_id.clear(),
            _ => {}
        }
    }

    fn check_invariants(&mut self) {
        let generation_id = self.h.group.generation_id();
        assert!(
            generation_id >= self.last_generation_id,
            "generation went back"
        );
        self.last_generation_id = generation_id;
        check_leader(&self.h.group);
        self.check_tokens();
        check_members(&self.h.group, self.h.now_ms);
    }

    /// Every token not yet answered is parked on a member, and only those are.
    fn check_tokens(&self) {
        let parked: BTreeSet<RequestToken> = (self.h.group.members.values())
            .flat_map(|m| m.awaiting_join.into_iter().chain(m.awaiting_sync))
            .collect();
        let outstanding: BTreeSet<RequestToken> = self
            .join_tokens
            .union(&self.sync_tokens)
            .filter(|t| !self.answered.contains(t))
            .copied()
            .collect();
        assert_eq!(
            parked, outstanding,
            "unanswered tokens and parked tokens differ"
        );
    }
}

/// The leader is a member, and a group with members has one; instance ids map to members.
fn check_leader(group: &ClassicGroup) {
    match &group.leader_id {
        Some(leader) => assert!(
            group.members.contains_key(leader),
            "leader {leader} is no member"
        ),
        None => assert!(group.members.is_empty(), "members but no leader"),
    }
    for member_id in group.static_members.values() {
        assert!(
            group.members.contains_key(member_id),
            "static map names a non-member"
        );
    }
}

/// After the join phase no JoinGroup is parked (but a static member's, until the append
/// of its new id ends); in Stable every member holds this generation's assignment; and no
/// member outlives its session unless it is parked in a rebalance.
fn check_members(group: &ClassicGroup, now_ms: i64) {
    let replacing: BTreeSet<RequestToken> = (group.pending_persists.values())
        .filter_map(|p| match p {
            PendingPersist::StaticReplacement(r) => Some(r.token()),
            _ => None,
        })
        .collect();
    for member in group.members.values() {
        match group.state {
            GroupState::CompletingRebalance => {
                assert!(
                    member.awaiting_join.is_none(),
                    "join parked after the join phase"
                )
            }
            GroupState::Stable => {
                let awaiting = member.awaiting_join.filter(|t| !replacing.contains(t));
                assert!(awaiting.is_none(), "join parked in Stable");
                assert!(member.awaiting_sync.is_none(), "sync parked in Stable");
                let prefix = format!("gen{}-", group.generation_id);
                let assignment = String::from_utf8_lossy(&member.assignment);
                assert!(
                    assignment.starts_with(&prefix),
                    "stale assignment {assignment:?}"
                );
            }
            _ => {}
        }
        let session_live =
            (group.heartbeat_timers.get(&member.member_id)).is_some_and(|d| d.at_ms > now_ms);
        assert!(
            session_live || member.has_satisfied_heartbeat(),
            "member {} stays past its session",
            member.member_id
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_clients_keep_the_group_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let mut run = Run::new();
        for op in &ops {
            run.apply(op);
            run.absorb_effects();
            run.check_invariants();
        }
    }
}
