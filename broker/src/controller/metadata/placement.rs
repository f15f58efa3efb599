//! Topics and where their replicas go: creating (one topic or a batch), deleting and
//! growing topics, the validation of names, partition counts and configs, and replica
//! placement (rack-unaware and rack-aware, started by the replicated placement cursor).

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{
    BrokerId, CommandOutcome, CommandResult, LeaderRecoveryState, MetadataError, MetadataState,
    NewTopic, Partition, Topic, TOPIC_CONFIGS_MAX, TOPIC_NAME_BYTES_MAX, TOPIC_PARTITIONS_MAX,
    UNCLEAN_LEADER_ELECTION_CONFIG,
};

impl MetadataState {
    /// Create a topic of `partitions` x `replication_factor` placed by the controller, or
    /// with the replicas of `manual` (CreateTopics' manual assignment, checked here).
    pub(super) fn create_topic(
        &mut self,
        name: &str,
        id: Uuid,
        (partitions, replication_factor, manual): (i32, i16, Option<&[Vec<BrokerId>]>),
        configs: &BTreeMap<String, String>,
    ) -> CommandResult {
        validate_topic_name(name)?;
        if self.topic_ids.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists(name.to_string()));
        }
        if id.is_nil() || self.topics.contains_key(&id) {
            return Err(MetadataError::TopicIdInUse(id));
        }
        let partitions = match manual {
            Some(manual) => i32::try_from(manual.len()).unwrap_or(i32::MAX),
            None => partitions,
        };
        validate_partition_count(partitions, 1)?;
        validate_configs(configs)?;
        let assignment = match manual {
            Some(manual) => self.check_manual_assignment(manual)?,
            None => self.place(partitions, replication_factor)?,
        };
        let topic = Topic {
            name: name.to_string(),
            id,
            configs: configs.clone(),
            partitions: assignment
                .iter()
                .map(|replicas| self.new_partition(replicas))
                .collect(),
        };
        for partition in &topic.partitions {
            if let Err(broken) = self.check_partition(partition) {
                panic!("metadata invariant broken in new topic {name}: {broken}");
            }
        }
        Arc::make_mut(&mut self.topic_ids).insert(name.to_string(), id);
        self.topics.insert(id, Arc::new(topic));
        self.last_changes.changed(id);
        Ok(CommandOutcome::TopicCreated { id, assignment })
    }

    pub(super) fn create_topics(&mut self, topics: &[NewTopic]) -> CommandOutcome {
        let results = topics
            .iter()
            .map(|topic| {
                let shape = (
                    topic.partitions,
                    topic.replication_factor,
                    topic.assignment.as_deref(),
                );
                let outcome = self.create_topic(&topic.name, topic.id, shape, &topic.configs)?;
                match outcome {
                    CommandOutcome::TopicCreated { id, assignment } => Ok((id, assignment)),
                    other => unreachable!("create_topic answered {other:?}"),
                }
            })
            .collect();
        CommandOutcome::TopicsCreated { results }
    }

    pub(super) fn delete_topic(&mut self, id: &Uuid) -> CommandResult {
        let topic = self
            .topics
            .remove(id)
            .ok_or(MetadataError::UnknownTopicId(*id))?;
        let name = topic.name.clone();
        Arc::make_mut(&mut self.topic_ids).remove(&name);
        self.last_changes.deleted(*id, name.clone());
        Ok(CommandOutcome::TopicDeleted { name })
    }

    /// Grow a topic to `count` partitions, the new ones placed or on `manual`'s replicas
    /// (one list per new partition, of the topic's replication factor).
    pub(super) fn create_partitions(
        &mut self,
        topic_id: &Uuid,
        count: i32,
        manual: Option<&[Vec<BrokerId>]>,
    ) -> CommandResult {
        let topic = self
            .topics
            .get(topic_id)
            .ok_or(MetadataError::UnknownTopicId(*topic_id))?;
        let current = topic.partitions.len();
        let minimum = i32::try_from(current + 1).expect("partition count is bounded");
        validate_partition_count(count, minimum)?;
        let replication_factor = i16::try_from(topic.partitions[0].replicas.len())
            .expect("replication factor came from an i16");
        let added = count - i32::try_from(current).expect("partition count is bounded");
        let assignment = match manual {
            None => self.place(added, replication_factor)?,
            Some(manual) => {
                if manual.len() != usize::try_from(added).unwrap_or(0) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "Increasing the number of partitions by {added} but {} assignments provided.",
                        manual.len()
                    )));
                }
                let assignment = self.check_manual_assignment(manual)?;
                let factor = usize::try_from(replication_factor).unwrap_or(0);
                if assignment.iter().any(|replicas| replicas.len() != factor) {
                    return Err(MetadataError::InvalidReplicaAssignment(format!(
                        "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {factor} replica(s).",
                        assignment[0].len()
                    )));
                }
                assignment
            }
        };
        let partitions: Vec<Partition> = assignment
            .iter()
            .map(|replicas| self.new_partition(replicas))
            .collect();
        let topic = self.topic_mut(topic_id).expect("checked above");
        topic.partitions.extend(partitions);
        self.last_changes.changed(*topic_id);
        Ok(CommandOutcome::PartitionsCreated { assignment })
    }

    /// Replica lists for `count` new partitions, advancing the placement cursor.
    fn place(
        &mut self,
        count: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<BrokerId>>, MetadataError> {
        let brokers = self.eligible_brokers();
        let factor = usize::try_from(replication_factor).unwrap_or(0);
        if factor == 0 || factor > brokers.len() {
            return Err(MetadataError::InvalidReplicationFactor {
                requested: replication_factor,
                available: brokers.len(),
            });
        }
        let count = usize::try_from(count).expect("count was validated positive");
        let racks: Vec<Option<&str>> = brokers
            .iter()
            .map(|id| self.brokers.get(id).and_then(|b| b.rack.as_deref()))
            .collect();
        let assignment = if racks.iter().all(Option::is_some) {
            let racks: Vec<&str> = racks.into_iter().flatten().collect();
            assign_replicas_rack_aware(&brokers, &racks, count, factor, self.placement_cursor)
        } else {
            assign_replicas(&brokers, count, factor, self.placement_cursor)
        };
        self.placement_cursor += count as u64;
        Ok(assignment)
    }
}

impl MetadataState {
    /// A manual assignment as Kafka's controller checks one (INVALID_REPLICA_ASSIGNMENT):
    /// every partition a non-empty list of distinct registered brokers, all of one length,
    /// each with at least one broker that may lead.
    fn check_manual_assignment(
        &self,
        manual: &[Vec<BrokerId>],
    ) -> Result<Vec<Vec<BrokerId>>, MetadataError> {
        let invalid = |why: String| Err(MetadataError::InvalidReplicaAssignment(why));
        for (partition, replicas) in manual.iter().enumerate() {
            if replicas.is_empty() {
                return invalid(
                    "The manual partition assignment includes an empty replica list.".into(),
                );
            }
            if let Some(twice) = replicas
                .iter()
                .find(|b| replicas.iter().filter(|r| r == b).count() > 1)
            {
                return invalid(format!(
                    "The manual partition assignment includes the broker {twice} more than once."
                ));
            }
            if let Some(unknown) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return invalid(format!("The manual partition assignment includes broker {unknown}, but no such broker is registered."));
            }
            if replicas.len() != manual[0].len() {
                return invalid(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {} replica(s).",
                    replicas.len(),
                    manual[0].len()
                ));
            }
            if !replicas.iter().any(|b| self.is_eligible(*b)) {
                return invalid(format!("All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."));
            }
        }
        Ok(manual.to_vec())
    }

    /// A new partition on `replicas`: the eligible ones in sync, the first of them leading
    /// (placement only picks eligible brokers; a manual assignment may name others).
    fn new_partition(&self, replicas: &[BrokerId]) -> Partition {
        let isr: Vec<BrokerId> = replicas
            .iter()
            .copied()
            .filter(|b| self.is_eligible(*b))
            .collect();
        new_partition_with(replicas, isr)
    }
}

fn new_partition_with(replicas: &[BrokerId], isr: Vec<BrokerId>) -> Partition {
    Partition {
        replicas: replicas.to_vec(),
        leader: isr.first().copied(),
        isr,
        leader_epoch: 0,
        partition_epoch: 0,
        leader_recovery_state: LeaderRecoveryState::Recovered,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Kafka's rack-unaware placement with the start chosen by `cursor` instead of at random:
/// partition `p`'s leader is broker `(cursor + p) mod n`, and its followers follow it at a
/// distance that shifts by one every `n` partitions, so follower load spreads too.
/// Replicas of one partition are distinct because `factor <= n`.
pub(super) fn assign_replicas(
    brokers: &[BrokerId],
    count: usize,
    factor: usize,
    cursor: u64,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len() as u64;
    assert!(
        factor >= 1 && factor as u64 <= n,
        "replication factor fits the brokers"
    );
    (0..count as u64)
        .map(|p| {
            let position = cursor + p;
            let first = position % n;
            let shift = if n > 1 { (position / n) % (n - 1) } else { 0 };
            let mut replicas = vec![brokers[first as usize]];
            for j in 1..factor as u64 {
                let offset = 1 + (shift + j - 1) % (n - 1);
                replicas.push(brokers[((first + offset) % n) as usize]);
            }
            replicas
        })
        .collect()
}

/// Rack-aware placement (the idea of Kafka's `assignReplicasToBrokersRackAware`): brokers
/// are ordered alternating between racks, leaders go round-robin over that order, and each
/// follower is the next broker in the shifted order whose rack holds no replica yet (any
/// unused broker once every rack has one). `brokers` and `racks` are parallel, sorted by id.
pub(super) fn assign_replicas_rack_aware(
    brokers: &[BrokerId],
    racks: &[&str],
    count: usize,
    factor: usize,
    cursor: u64,
) -> Vec<Vec<BrokerId>> {
    // Rack-alternated order: first broker of each rack (racks sorted), then the second...
    let mut by_rack: BTreeMap<&str, Vec<(BrokerId, &str)>> = BTreeMap::new();
    for (id, rack) in brokers.iter().zip(racks) {
        by_rack.entry(rack).or_default().push((*id, rack));
    }
    let mut ordered: Vec<(BrokerId, &str)> = Vec::with_capacity(brokers.len());
    for round in 0.. {
        let before = ordered.len();
        ordered.extend(
            by_rack
                .values()
                .filter_map(|members| members.get(round).copied()),
        );
        if ordered.len() == before {
            break;
        }
    }
    let rack_count = by_rack.len();
    let n = ordered.len() as u64;
    (0..count as u64)
        .map(|p| {
            let position = cursor + p;
            let first = (position % n) as usize;
            let shift = if n > 1 { (position / n) % (n - 1) } else { 0 };
            let mut chosen = vec![ordered[first]];
            while chosen.len() < factor {
                let racks_full = chosen.len() >= rack_count
                    || by_rack
                        .keys()
                        .all(|rack| chosen.iter().any(|(_, r)| r == rack));
                let next = (1..n)
                    .map(|step| {
                        ordered[((first as u64 + 1 + (shift + step - 1) % (n - 1)) % n) as usize]
                    })
                    .find(|(id, rack)| {
                        !chosen.iter().any(|(c, _)| c == id)
                            && (racks_full || !chosen.iter().any(|(_, r)| r == rack))
                    })
                    .expect("the replication factor fits the brokers");
                chosen.push(next);
            }
            chosen.into_iter().map(|(id, _)| id).collect()
        })
        .collect()
}

/// Kafka's topic name rules: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: &str| {
        Err(MetadataError::InvalidTopicName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate_partition_count(count: i32, minimum: i32) -> Result<(), MetadataError> {
    if count < minimum {
        return Err(MetadataError::InvalidPartitions {
            count,
            reason: format!("at least {minimum} needed"),
        });
    }
    if count > TOPIC_PARTITIONS_MAX {
        return Err(MetadataError::InvalidPartitions {
            count,
            reason: format!("at most {TOPIC_PARTITIONS_MAX} allowed"),
        });
    }
    Ok(())
}

pub(super) fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(MetadataError::InvalidConfig(format!(
            "{} overrides, at most {TOPIC_CONFIGS_MAX} allowed",
            configs.len()
        )));
    }
    if let Some(value) = configs.get(UNCLEAN_LEADER_ELECTION_CONFIG) {
        if value != "true" && value != "false" {
            return Err(MetadataError::InvalidConfig(format!(
                "{UNCLEAN_LEADER_ELECTION_CONFIG} must be true or false, not {value:?}"
            )));
        }
    }
    Ok(())
}
