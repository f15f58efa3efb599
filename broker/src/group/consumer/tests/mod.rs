//! Unit tests: one per rule and error code of Kafka's consumer group protocol, driven
//! through the public API, and the harness they (and the property test) share.

mod heartbeat;
mod lifecycle;
mod reconcile;
mod records;
mod regex;
mod static_members;

use std::collections::BTreeSet;

use uuid::Uuid;

use super::records::ConsumerGroupRecord;
use super::*;

pub(super) const FOO: Uuid = Uuid::from_u128(0xf00);
pub(super) const BAR: Uuid = Uuid::from_u128(0xba2);
pub(super) const REBALANCE_MS: i32 = 30_000;
pub(super) const SESSION_MS: i64 = 45_000;

/// `foo` with 6 partitions and `bar` with 3.
pub(super) fn topics() -> TopicsSnapshot {
    TopicsSnapshot::new([
        (
            "foo".to_string(),
            TopicInfo {
                topic_id: FOO,
                partition_count: 6,
            },
        ),
        (
            "bar".to_string(),
            TopicInfo {
                topic_id: BAR,
                partition_count: 3,
            },
        ),
    ])
}

/// Partitions of one topic.
pub(super) fn tp(topic_id: Uuid, partitions: &[i32]) -> Partitions {
    if partitions.is_empty() {
        return Partitions::new();
    }
    Partitions::from([(
        topic_id,
        partitions.iter().copied().collect::<BTreeSet<i32>>(),
    )])
}

/// A first heartbeat (epoch 0), as a Java client sends it.
pub(super) fn join(member_id: &str, subscribed: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        api_version: 1,
        group_id: "group".to_string(),
        member_id: member_id.to_string(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned_partitions: Some(Partitions::new()),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

/// A regular heartbeat: only the epoch and the owned partitions.
pub(super) fn beat(member_id: &str, epoch: i32, owned: Partitions) -> HeartbeatRequest {
    HeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        owned_partitions: Some(owned),
        ..join(member_id, &[])
    }
}

pub(super) fn leave(member_id: &str, epoch: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        owned_partitions: None,
        ..join(member_id, &[])
    }
}

/// A group with the clock, topic metadata and UUIDs the caller would supply, and every
/// record it asked to persist.
pub(super) struct Harness {
    pub(super) group: ConsumerGroup,
    pub(super) now_ms: i64,
    pub(super) topics: TopicsSnapshot,
    next_uuid: u128,
    pub(super) records: Vec<ConsumerGroupRecord>,
    pub(super) timers: Vec<(TimerKind, i64)>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with_config(ConsumerGroupConfig::default())
    }

    pub(super) fn with_config(config: ConsumerGroupConfig) -> Harness {
        Harness {
            group: ConsumerGroup::new("group", config),
            now_ms: 1_000,
            topics: topics(),
            next_uuid: 1,
            records: Vec::new(),
            timers: Vec::new(),
        }
    }

    fn take(&mut self, effects: Vec<Effect>) -> Vec<ConsumerGroupRecord> {
        let mut persisted = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist { records } => persisted.extend(records),
                Effect::ScheduleTimer { timer, deadline_ms } => {
                    self.timers.push((timer, deadline_ms))
                }
            }
        }
        self.records.extend(persisted.iter().cloned());
        persisted
    }

    /// Sends a heartbeat; returns the response and the records it persisted.
    pub(super) fn send(
        &mut self,
        request: HeartbeatRequest,
    ) -> Result<(HeartbeatResponse, Vec<ConsumerGroupRecord>), GroupError> {
        self.next_uuid += 1;
        let uuid = Uuid::from_u128(self.next_uuid);
        let outcome = self
            .group
            .heartbeat(&request, &self.topics, self.now_ms, uuid)?;
        let records = self.take(outcome.effects);
        Ok((outcome.response, records))
    }

    pub(super) fn heartbeat(&mut self, request: HeartbeatRequest) -> HeartbeatResponse {
        match self.send(request) {
            Ok((response, _)) => response,
            Err(e) => panic!("heartbeat refused: {e}"),
        }
    }

    pub(super) fn error(&mut self, request: HeartbeatRequest) -> GroupError {
        match self.send(request) {
            Ok((response, _)) => panic!("heartbeat accepted: {response:?}"),
            Err(e) => e,
        }
    }

    /// Moves the clock and fires the due timers; returns the records they persisted.
    pub(super) fn advance(&mut self, ms: i64) -> Vec<ConsumerGroupRecord> {
        self.now_ms += ms;
        let effects = self.group.tick(self.now_ms);
        self.take(effects)
    }

    /// A group rebuilt from every record persisted so far.
    pub(super) fn replayed(&self) -> ConsumerGroup {
        let mut group = ConsumerGroup::new("group", ConsumerGroupConfig::default());
        for record in &self.records {
            if let Err(e) = group.replay(record.clone()) {
                panic!("replay of {record:?}: {e}");
            }
        }
        group
    }

    /// Asserts that replaying the records gives the live group.
    pub(super) fn assert_replay_matches(&self) {
        assert_eq!(self.replayed().data, self.group.data);
    }

    pub(super) fn member(&self, member_id: &str) -> &member::Member {
        match self.group.member(member_id) {
            Some(member) => member,
            None => panic!("no member {member_id}"),
        }
    }
}

/// A consumer as the Java client behaves: it owns what it was last assigned, and its
/// heartbeats say so.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) member_id: String,
    pub(super) epoch: i32,
    pub(super) owned: Partitions,
}

impl Client {
    pub(super) fn new(member_id: &str) -> Client {
        Client {
            member_id: member_id.to_string(),
            epoch: 0,
            owned: Partitions::new(),
        }
    }

    /// Takes a response in: the new epoch, and the assignment if one came.
    pub(super) fn accept(&mut self, response: &HeartbeatResponse) {
        self.epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            self.owned = assignment.clone();
        }
    }

    pub(super) fn join(&mut self, h: &mut Harness, subscribed: &[&str]) -> HeartbeatResponse {
        let response = h.heartbeat(join(&self.member_id, subscribed));
        self.accept(&response);
        response
    }

    pub(super) fn beat(&mut self, h: &mut Harness) -> HeartbeatResponse {
        let response = h.heartbeat(beat(&self.member_id, self.epoch, self.owned.clone()));
        self.accept(&response);
        response
    }
}
