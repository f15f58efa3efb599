//! ConsumerGroupHeartbeat for one group (Kafka's `GroupMetadataManager.consumerGroupHeartbeat`
//! and what it calls): request validation, who the member is, its metadata and the group
//! epoch, then the target assignment and reconciliation (in `assignment.rs`), and leaving.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::member::{is_subset, CurrentAssignment, Member, MemberMetadata};
use super::records::ConsumerGroupRecord;
use super::types::*;
use super::ConsumerGroup;

/// Who sent a (non-leaving) heartbeat, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arrival {
    /// A member the group knows, at a valid epoch.
    Known,
    /// A member joining for the first time.
    New,
    /// A known member heartbeating with epoch 0: it gave up its partitions and rejoins.
    Rejoin,
    /// A static member rejoining with a new member id; `previous` held its instance id
    /// (and left with epoch -2).
    ReplacesStatic { previous: String },
}

impl ConsumerGroup {
    /// Handles one ConsumerGroupHeartbeat. `new_member_uuid` names a v0 member that sent
    /// no member id. On success the response is to be sent once the outcome's records are
    /// appended; on error nothing changed.
    pub fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        topics: &TopicsSnapshot,
        now_ms: i64,
        new_member_uuid: Uuid,
    ) -> Result<HeartbeatOutcome, GroupError> {
        self.validate_request(request)?;
        let epoch = request.member_epoch;
        if epoch == LEAVE_GROUP_MEMBER_EPOCH || epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return self.leave(request);
        }
        let member_id = if request.member_id.is_empty() {
            kafka_uuid_string(new_member_uuid)
        } else {
            request.member_id.clone()
        };
        let arrival = self.resolve_member(request, &member_id)?;
        let previous_assigned = self.arrive(&member_id, &arrival);
        let mut records = Vec::new();
        let mut effects = Vec::new();
        self.prepare_arrival(&member_id, &arrival, &mut records);
        let mut bump = self.update_metadata(&member_id, request, &arrival, &mut records);
        bump |= self.refresh_subscription_metadata(topics, &mut records);
        if bump {
            let epoch = self.data.group_epoch + 1;
            self.apply(
                vec![ConsumerGroupRecord::GroupMetadata { epoch }],
                &mut records,
            );
        }
        self.maybe_update_target_assignment(&mut records);
        let owned = request.owned_partitions.as_ref();
        self.maybe_reconcile(&member_id, owned, now_ms, &mut records, &mut effects);
        let session_ms = self.config.session_timeout_ms;
        self.schedule(
            TimerKind::Session(member_id.clone()),
            session_ms,
            now_ms,
            &mut effects,
        );

        let response = self.response(request, member_id, previous_assigned);
        if !records.is_empty() {
            effects.insert(0, Effect::Persist { records });
        }
        Ok(HeartbeatOutcome { response, effects })
    }

    /// The answer to a regular heartbeat. The assignment goes only to a full request (a
    /// join, or every field set, as a client sends after an error) or when it changed.
    fn response(
        &self,
        request: &HeartbeatRequest,
        member_id: String,
        previous_assigned: Option<Partitions>,
    ) -> HeartbeatResponse {
        let member = &self.data.members[&member_id];
        let assigned = &member.current.assigned_partitions;
        let full_request = request.member_epoch == 0
            || (request.rebalance_timeout_ms != -1
                && request.subscribed_topic_names.is_some()
                && request.owned_partitions.is_some());
        let changed = previous_assigned.as_ref() != Some(assigned);
        HeartbeatResponse {
            member_epoch: member.member_epoch(),
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            assignment: (full_request || changed).then(|| assigned.clone()),
            member_id,
        }
    }

    /// Kafka 4.1's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, with its messages.
    fn validate_request(&self, request: &HeartbeatRequest) -> Result<(), GroupError> {
        let invalid = |message: &str| Err(GroupError::InvalidRequest(message.to_string()));
        let blank = |value: &Option<String>| value.as_deref().is_some_and(|v| v.trim().is_empty());
        let epoch = request.member_epoch;
        if (request.api_version >= 1 || epoch != 0) && request.member_id.trim().is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if request.group_id.trim().is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if blank(&request.instance_id) {
            return invalid("InstanceId can't be empty.");
        }
        if blank(&request.rack_id) {
            return invalid("RackId can't be empty.");
        }
        if epoch == 0 {
            if request.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if !request
                .owned_partitions
                .as_ref()
                .is_some_and(|p| p.is_empty())
            {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none()
            {
                return invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                );
            }
        } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if request.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if let Some(regex) = request
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            super::regex::compile(regex)?;
        }
        if let Some(name) = &request.server_assignor {
            if !self.config.assignors.iter().any(|a| a.name() == name) {
                let names: Vec<&str> = self.config.assignors.iter().map(|a| a.name()).collect();
                return Err(GroupError::UnsupportedAssignor(format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Who the member is (Kafka's `getOrMaybeSubscribe{Dynamic,Static}ConsumerGroupMember`
    /// and the group size check), refusing it as Kafka does.
    fn resolve_member(
        &self,
        request: &HeartbeatRequest,
        member_id: &str,
    ) -> Result<Arrival, GroupError> {
        let epoch = request.member_epoch;
        let arrival = match &request.instance_id {
            None => match self.data.members.get(member_id) {
                Some(_) if epoch == 0 => Arrival::Rejoin,
                Some(member) => {
                    check_member_epoch(member, epoch, request.owned_partitions.as_ref())?;
                    Arrival::Known
                }
                None if epoch == 0 => Arrival::New,
                None => return Err(self.unknown_member(member_id)),
            },
            Some(instance_id) => self.resolve_static_member(request, instance_id, member_id)?,
        };
        let full = self.data.members.len() >= self.config.group_size_max;
        if arrival == Arrival::New && full {
            return Err(GroupError::GroupMaxSizeReached(format!(
                "The consumer group has reached its maximum capacity of {} members.",
                self.config.group_size_max
            )));
        }
        Ok(arrival)
    }

    fn resolve_static_member(
        &self,
        request: &HeartbeatRequest,
        instance_id: &str,
        member_id: &str,
    ) -> Result<Arrival, GroupError> {
        let holder = self.data.static_members.get(instance_id);
        let holder = holder.and_then(|id| self.data.members.get(id));
        if request.member_epoch == 0 {
            return Ok(match holder {
                None if self.has_member(member_id) => Arrival::Rejoin,
                None => Arrival::New,
                Some(h) if h.member_id == member_id => Arrival::Rejoin,
                Some(h) if h.member_epoch() != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                    return Err(GroupError::UnreleasedInstanceId(format!(
                        "Static member {member_id} with instance id {instance_id} cannot join the \
                         group because the instance id is owned by {} member.",
                        h.member_id
                    )))
                }
                Some(h) => Arrival::ReplacesStatic {
                    previous: h.member_id.clone(),
                },
            });
        }
        let holder = self.static_holder(instance_id, member_id)?;
        check_member_epoch(
            holder,
            request.member_epoch,
            request.owned_partitions.as_ref(),
        )?;
        Ok(Arrival::Known)
    }

    /// The member holding a static instance id, which must be `member_id` (Kafka's
    /// `throwIfStaticMemberIsUnknown` and `throwIfInstanceIdIsFenced`).
    fn static_holder(&self, instance_id: &str, member_id: &str) -> Result<&Member, GroupError> {
        let holder = self.data.static_members.get(instance_id);
        let Some(holder) = holder.and_then(|id| self.data.members.get(id)) else {
            let message = format!("Instance id {instance_id} is unknown.");
            return Err(GroupError::UnknownMemberId(message));
        };
        if holder.member_id != member_id {
            return Err(GroupError::FencedInstanceId(format!(
                "Static member {member_id} with instance id {instance_id} was fenced by member {}.",
                holder.member_id
            )));
        }
        Ok(holder)
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        GroupError::UnknownMemberId(format!(
            "Member {member_id} is not a member of group {}.",
            self.group_id
        ))
    }

    /// The member's assigned partitions before this heartbeat (`None` for a new member),
    /// to tell whether the response must carry its assignment.
    fn arrive(&self, member_id: &str, arrival: &Arrival) -> Option<Partitions> {
        let before = match arrival {
            Arrival::ReplacesStatic { previous } => self.data.members.get(previous),
            _ => self.data.members.get(member_id),
        };
        before.map(|m| m.current.assigned_partitions.clone())
    }

    /// Resets a rejoining member and moves a static member's state to its new member id
    /// (Kafka's `replaceMember`: the old member's tombstones, then the new one's records).
    fn prepare_arrival(
        &mut self,
        member_id: &str,
        arrival: &Arrival,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        match arrival {
            Arrival::Known | Arrival::New => {}
            Arrival::Rejoin => {
                let member = &self.data.members[member_id];
                if member.current != CurrentAssignment::joining() {
                    let record = ConsumerGroupRecord::CurrentMemberAssignment {
                        member_id: member_id.to_string(),
                        assignment: CurrentAssignment::joining(),
                    };
                    self.apply(vec![record], records);
                }
                self.cancel(&TimerKind::Rebalance(member_id.to_string()));
            }
            Arrival::ReplacesStatic { previous } => {
                let old = self.data.members[previous].clone();
                let target = self.target_assignment(previous);
                let mut new = removal_records(previous);
                new.extend([
                    ConsumerGroupRecord::MemberMetadata {
                        member_id: member_id.to_string(),
                        metadata: old.metadata,
                    },
                    ConsumerGroupRecord::TargetAssignmentMember {
                        member_id: member_id.to_string(),
                        partitions: target,
                    },
                    ConsumerGroupRecord::CurrentMemberAssignment {
                        member_id: member_id.to_string(),
                        assignment: CurrentAssignment {
                            member_epoch: 0,
                            previous_member_epoch: 0,
                            state: super::member::MemberState::Stable,
                            assigned_partitions: old.current.assigned_partitions,
                            partitions_pending_revocation: Partitions::new(),
                        },
                    },
                ]);
                self.apply(new, records);
                self.cancel_member_timers(previous);
            }
        }
    }

    /// Applies the request's fields to the member's metadata (Kafka's `maybeUpdate*`) and
    /// writes it if it changed. True if the group epoch must be bumped: a new member, or a
    /// changed subscription.
    fn update_metadata(
        &mut self,
        member_id: &str,
        request: &HeartbeatRequest,
        arrival: &Arrival,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> bool {
        let old = self.data.members.get(member_id).map(|m| &m.metadata);
        let mut metadata = old.cloned().unwrap_or(MemberMetadata {
            rebalance_timeout_ms: -1,
            ..MemberMetadata::default()
        });
        if request.instance_id.is_some() {
            metadata.instance_id = request.instance_id.clone();
        }
        if request.rack_id.is_some() {
            metadata.rack_id = request.rack_id.clone();
        }
        if request.rebalance_timeout_ms != -1 {
            metadata.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if request.server_assignor.is_some() {
            metadata.server_assignor = request.server_assignor.clone();
        }
        if let Some(names) = &request.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            metadata.subscribed_topic_names = names;
        }
        if let Some(regex) = &request.subscribed_topic_regex {
            // An empty expression is none (as stored: Kafka writes "" for none).
            metadata.subscribed_topic_regex = (!regex.is_empty()).then(|| regex.clone());
        }
        metadata.client_id = request.client_id.clone();
        metadata.client_host = request.client_host.clone();

        let subscription_changed = old
            .map(|m| (&m.subscribed_topic_names, &m.subscribed_topic_regex))
            != Some((
                &metadata.subscribed_topic_names,
                &metadata.subscribed_topic_regex,
            ));
        if old != Some(&metadata) {
            let record = ConsumerGroupRecord::MemberMetadata {
                member_id: member_id.to_string(),
                metadata,
            };
            self.apply(vec![record], records);
        }
        *arrival == Arrival::New || subscription_changed
    }

    /// Recomputes the subscribed topics' metadata from the caller's snapshot and writes it
    /// if it changed. True if it did (the group epoch must be bumped).
    fn refresh_subscription_metadata(
        &mut self,
        topics: &TopicsSnapshot,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> bool {
        let metadata: BTreeMap<String, TopicInfo> = self
            .subscribed_topics(topics.names())
            .into_iter()
            .filter_map(|name| topics.get(name).map(|info| (name.to_string(), info)))
            .collect();
        if metadata == self.data.subscription_metadata {
            return false;
        }
        let record = ConsumerGroupRecord::PartitionMetadata { topics: metadata };
        self.apply(vec![record], records);
        true
    }

    /// Epoch -1 (leave) and -2 (a static member leaving for a while): Kafka's
    /// `consumerGroupLeave`.
    fn leave(&mut self, request: &HeartbeatRequest) -> Result<HeartbeatOutcome, GroupError> {
        let member_id = match &request.instance_id {
            None if self.has_member(&request.member_id) => request.member_id.clone(),
            None => return Err(self.unknown_member(&request.member_id)),
            Some(instance_id) => {
                self.static_holder(instance_id, &request.member_id)?;
                request.member_id.clone()
            }
        };
        let mut records = Vec::new();
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            let mut current = self.data.members[&member_id].current.clone();
            current.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            current.partitions_pending_revocation.clear();
            let record = ConsumerGroupRecord::CurrentMemberAssignment {
                member_id: member_id.clone(),
                assignment: current,
            };
            self.apply(vec![record], &mut records);
            self.cancel(&TimerKind::Rebalance(member_id.clone()));
        } else {
            self.fence_member(&member_id, &mut records);
        }
        let response = HeartbeatResponse {
            member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        Ok(HeartbeatOutcome {
            response,
            effects: vec![Effect::Persist { records }],
        })
    }

    /// Removes a member (Kafka's `consumerGroupFenceMember`): its tombstones, the
    /// subscription metadata without its topics, and a group epoch bump. Partition counts
    /// are refreshed by the next heartbeat, which has a topic snapshot.
    pub(super) fn fence_member(&mut self, member_id: &str, records: &mut Vec<ConsumerGroupRecord>) {
        self.apply(removal_records(member_id), records);
        let known = self.data.subscription_metadata.keys().map(String::as_str);
        let subscribed: BTreeSet<String> = self
            .subscribed_topics(known)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut metadata = self.data.subscription_metadata.clone();
        metadata.retain(|name, _| subscribed.contains(name));
        let mut new = Vec::new();
        if metadata != self.data.subscription_metadata {
            new.push(ConsumerGroupRecord::PartitionMetadata { topics: metadata });
        }
        let epoch = self.data.group_epoch + 1;
        new.push(ConsumerGroupRecord::GroupMetadata { epoch });
        self.apply(new, records);
        self.cancel_member_timers(member_id);
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: the member's epoch, or its previous
/// one if it owns a subset of its assignment (the response with the new epoch was lost).
fn check_member_epoch(
    member: &Member,
    received: i32,
    owned: Option<&Partitions>,
) -> Result<(), GroupError> {
    let epoch = member.member_epoch();
    let which = if received > epoch {
        "greater"
    } else if received < epoch
        && (received != member.current.previous_member_epoch
            || !is_subset(owned, &member.current.assigned_partitions))
    {
        "smaller"
    } else {
        return Ok(());
    };
    Err(GroupError::FencedMemberEpoch(format!(
        "The consumer group member has a {which} member epoch ({received}) than the one known by \
         the group coordinator ({epoch}). The member must abandon all its partitions and rejoin."
    )))
}

/// A member's tombstones, in Kafka's order (`removeMember`).
fn removal_records(member_id: &str) -> Vec<ConsumerGroupRecord> {
    let member_id = member_id.to_string();
    vec![
        ConsumerGroupRecord::CurrentMemberAssignmentTombstone {
            member_id: member_id.clone(),
        },
        ConsumerGroupRecord::TargetAssignmentMemberTombstone {
            member_id: member_id.clone(),
        },
        ConsumerGroupRecord::MemberMetadataTombstone { member_id },
    ]
}

/// A UUID as Kafka prints one (`Uuid.toString`, see `sluice_protocol::uuid_string`).
pub fn kafka_uuid_string(uuid: Uuid) -> String {
    sluice_protocol::uuid_string::kafka_uuid_string(uuid.as_bytes())
}
