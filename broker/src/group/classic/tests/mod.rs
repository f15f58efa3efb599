//! Unit tests: one per rule of Kafka's classic protocol, driven through the public API,
//! and the harness they (and the property test) share.

mod join;
mod lifecycle;
mod members;
mod sync;

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;
use uuid::Uuid;

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 3_000;

/// A group and what it said, with the clock, tokens and UUIDs the caller would supply.
pub(super) struct Harness {
    pub(super) group: ClassicGroup,
    pub(super) now_ms: i64,
    next_token: u64,
    next_uuid: u128,
    pub(super) effects: Vec<Effect>,
}

pub(super) fn protocols(names: &[&str]) -> Vec<Protocol> {
    let protocol = |name: &&str| Protocol {
        name: name.to_string(),
        metadata: Bytes::from(format!("meta-{name}")),
    };
    names.iter().map(protocol).collect()
}

pub(super) fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        api_version: 9,
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: protocols(&["range"]),
    }
}

fn static_request(instance_id: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance_id.to_string()),
        ..join_request(member_id)
    }
}

pub(super) fn sync_request(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: Vec::new(),
    }
}

fn heartbeat_request(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
    }
}

pub(super) fn leaving(member_id: &str, instance_id: Option<&str>) -> LeavingMember {
    LeavingMember {
        member_id: member_id.to_string(),
        group_instance_id: instance_id.map(str::to_string),
    }
}

impl Harness {
    pub(super) fn new(config: ClassicGroupConfig) -> Harness {
        Harness {
            group: ClassicGroup::new("group", config),
            now_ms: 1_000_000,
            next_token: 0,
            next_uuid: 0,
            effects: Vec::new(),
        }
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    pub(super) fn join(&mut self, request: JoinRequest) -> RequestToken {
        let token = self.token();
        self.next_uuid += 1;
        let uuid = Uuid::from_u128(self.next_uuid);
        let effects = self.group.join(token, request, uuid, self.now_ms);
        self.effects.extend(effects);
        token
    }

    pub(super) fn sync(&mut self, request: SyncRequest) -> RequestToken {
        let token = self.token();
        let effects = self.group.sync(token, request);
        self.effects.extend(effects);
        token
    }

    pub(super) fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> ErrorCode {
        let request = heartbeat_request(member_id, generation_id);
        let (error, effects) = self.group.heartbeat(&request, self.now_ms);
        self.effects.extend(effects);
        error
    }

    pub(super) fn leave(&mut self, members: &[LeavingMember]) -> LeaveResponse {
        let (response, effects) = self.group.leave(members, self.now_ms);
        self.effects.extend(effects);
        response
    }

    /// Moves the clock `ms` on, ticking at every deadline on the way as a caller's timer
    /// would.
    pub(super) fn advance(&mut self, ms: i64) {
        let target_ms = self.now_ms + ms;
        for _ in 0..10_000 {
            match self.group.next_deadline_ms() {
                Some(deadline_ms) if deadline_ms <= target_ms => {
                    self.now_ms = self.now_ms.max(deadline_ms);
                    let effects = self.group.tick(self.now_ms);
                    self.effects.extend(effects);
                }
                _ => {
                    self.now_ms = target_ms;
                    return;
                }
            }
        }
        panic!("timers keep firing at {}", self.now_ms);
    }

    /// The answer to a JoinGroup, if it has come.
    pub(super) fn join_answer(&self, token: RequestToken) -> Option<&JoinResponse> {
        self.effects.iter().find_map(|e| match e {
            Effect::Join { token: t, response } if *t == token => Some(response),
            _ => None,
        })
    }

    pub(super) fn sync_answer(&self, token: RequestToken) -> Option<&SyncResponse> {
        self.effects.iter().find_map(|e| match e {
            Effect::Sync { token: t, response } if *t == token => Some(response),
            _ => None,
        })
    }

    fn joined(&self, token: RequestToken) -> JoinResponse {
        self.join_answer(token).expect("join answered").clone()
    }

    fn synced(&self, token: RequestToken) -> SyncResponse {
        self.sync_answer(token).expect("sync answered").clone()
    }

    /// Persist effects not yet reported.
    pub(super) fn take_persists(&mut self) -> Vec<(PersistId, GroupSnapshot)> {
        let mut persists = Vec::new();
        self.effects.retain(|e| match e {
            Effect::Persist { id, snapshot } => {
                persists.push((*id, snapshot.clone()));
                false
            }
            _ => true,
        });
        persists
    }

    pub(super) fn persist_all(&mut self, result: Result<(), ErrorCode>) {
        for (id, _) in self.take_persists() {
            let effects = self.group.on_persisted(id, result, self.now_ms);
            self.effects.extend(effects);
        }
    }

    /// A dynamic member's id, got the v4+ way (MEMBER_ID_REQUIRED).
    fn member_id(&mut self, client_id: &str) -> String {
        let request = JoinRequest {
            client_id: client_id.to_string(),
            ..join_request("")
        };
        let token = self.join(request);
        let response = self.joined(token);
        assert_eq!(response.error, ErrorCode::MemberIdRequired);
        response.member_id
    }

    /// `n` dynamic members through the first rebalance, synced and persisted: Stable.
    fn stable_group(&mut self, n: usize) -> Vec<String> {
        let requests = (0..n).map(|_| join_request("")).collect();
        self.stable_group_of(requests)
    }

    /// Members joining with `requests` (empty member ids; static ones by instance id)
    /// through the first rebalance, synced and persisted: Stable. Their ids, in order.
    fn stable_group_of(&mut self, requests: Vec<JoinRequest>) -> Vec<String> {
        let n = requests.len();
        let mut tokens = Vec::new();
        for (i, mut request) in requests.into_iter().enumerate() {
            if request.group_instance_id.is_none() {
                request.member_id = self.member_id(&format!("c{i}"));
            }
            tokens.push((self.join(request.clone()), request.group_instance_id));
        }
        // Every member after the first extends the initial delay once.
        self.advance(if n > 1 { 2 * DELAY_MS } else { DELAY_MS });
        let joined: Vec<_> = tokens
            .iter()
            .map(|(token, instance_id)| (self.joined(*token), instance_id.clone()))
            .collect();
        let leader = self.group.leader_id().expect("leader").to_string();
        let mut syncs: Vec<_> = joined
            .iter()
            .map(|(response, instance_id)| SyncRequest {
                group_instance_id: instance_id.clone(),
                ..sync_request(&response.member_id, response.generation_id)
            })
            .collect();
        syncs.sort_by_key(|sync| sync.member_id == leader); // the leader's last
        let ids: Vec<String> = joined.into_iter().map(|(r, _)| r.member_id).collect();
        for mut request in syncs {
            if request.member_id == leader {
                request.assignments = ids
                    .iter()
                    .map(|id| (id.clone(), Bytes::from(format!("assign-{id}"))))
                    .collect();
            }
            self.sync(request);
        }
        self.persist_all(Ok(()));
        assert_eq!(self.group.state(), GroupState::Stable);
        ids
    }

    /// Heartbeats for `member_ids` every second for `ms`.
    fn advance_heartbeating(&mut self, ms: i64, member_ids: &[&str]) {
        let generation = self.group.generation_id();
        for _ in 0..ms / 1_000 {
            self.advance(1_000);
            for id in member_ids {
                self.heartbeat(id, generation);
            }
        }
        self.advance(ms % 1_000);
    }
}

/// A static member `i-1` alone in a Stable group; returns its member id.
fn stable_static_member(h: &mut Harness) -> String {
    let token = h.join(static_request("i-1", ""));
    h.advance(DELAY_MS);
    let id = h.joined(token).member_id;
    assert!(id.starts_with("i-1-"), "{id}");
    h.sync(SyncRequest {
        group_instance_id: Some("i-1".to_string()),
        assignments: vec![(id.clone(), Bytes::from("a"))],
        ..sync_request(&id, 1)
    });
    h.persist_all(Ok(()));
    assert_eq!(h.group.state(), GroupState::Stable);
    id
}

fn harness() -> Harness {
    Harness::new(ClassicGroupConfig::default())
}
