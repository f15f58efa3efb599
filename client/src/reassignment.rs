//! Reassignment plans: the JSON file of Kafka's `kafka-reassign-partitions`, the plan that
//! moves every replica off a broker (decommissioning), and how far a plan has got.
//!
//! Everything here is pure: the CLI reads files and asks the cluster (through
//! [`Admin`](crate::Admin)), these functions decide.
//!
//! - [`ReassignmentPlan::from_json`] reads `{"version":1,"partitions":[{"topic":"t",
//!   "partition":0,"replicas":[2,3,4]}]}` (`version` may be left out, as Kafka allows;
//!   `log_dirs` is accepted when every entry is `"any"`, since Sluice has one log directory
//!   per broker; other fields are ignored, as Kafka's tool ignores them) and refuses what
//!   the controller would refuse anyway, with the partition named: no partitions, a
//!   partition listed twice, an empty, negative or duplicated replica list.
//! - [`decommission_plan`] replaces a broker in every replica list that names it, in the
//!   same position, by the live broker outside that list with the fewest replicas (those
//!   the cluster has plus those the plan has given out so far; ties go to the lowest id).
//! - [`plan_progress`] says whether one planned partition is complete (its replicas are the
//!   plan's, in order, and nothing runs), in progress, or failed (absent, or on other
//!   replicas with nothing running).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::admin::{OngoingReassignment, Reassignment};

/// The only plan format version there is (Kafka's too).
pub const PLAN_VERSION: i32 = 1;

/// What is wrong with a plan (or why a broker cannot be decommissioned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// One partition of a plan: where its replicas are to be, the first one preferred leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// A validated reassignment plan: distinct partitions, each with a non-empty list of
/// distinct broker ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentPlan {
    pub partitions: Vec<PlannedPartition>,
}

/// The file as Kafka writes it.
#[derive(Debug, Serialize, Deserialize)]
struct PlanFile {
    #[serde(default = "plan_version")]
    version: i32,
    partitions: Vec<PlanFilePartition>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PlanFilePartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

fn plan_version() -> i32 {
    PLAN_VERSION
}

impl ReassignmentPlan {
    /// A plan from these partitions, validated as [`from_json`](Self::from_json) does.
    pub fn new(partitions: Vec<PlannedPartition>) -> Result<ReassignmentPlan, PlanError> {
        if partitions.is_empty() {
            return Err(PlanError("the plan lists no partitions".to_string()));
        }
        let mut seen = BTreeSet::new();
        for p in &partitions {
            let name = format!("{}-{}", p.topic, p.partition);
            if p.topic.is_empty() {
                return Err(PlanError(format!(
                    "partition {} has an empty topic name",
                    p.partition
                )));
            }
            if p.partition < 0 {
                return Err(PlanError(format!(
                    "topic '{}' has a negative partition {}",
                    p.topic, p.partition
                )));
            }
            if !seen.insert((p.topic.as_str(), p.partition)) {
                return Err(PlanError(format!("{name} is listed more than once")));
            }
            if p.replicas.is_empty() {
                return Err(PlanError(format!("{name} has no replicas")));
            }
            if let Some(id) = p.replicas.iter().find(|id| **id < 0) {
                return Err(PlanError(format!(
                    "{name} lists broker {id}, which is not a broker id"
                )));
            }
            let mut ids = BTreeSet::new();
            if let Some(id) = p.replicas.iter().find(|id| !ids.insert(**id)) {
                return Err(PlanError(format!("{name} lists broker {id} twice")));
            }
        }
        Ok(ReassignmentPlan { partitions })
    }

    /// Parse and validate Kafka's reassignment JSON.
    pub fn from_json(text: &str) -> Result<ReassignmentPlan, PlanError> {
        let file: PlanFile = serde_json::from_str(text)
            .map_err(|e| PlanError(format!("not a reassignment plan: {e}")))?;
        if file.version != PLAN_VERSION {
            return Err(PlanError(format!(
                "plan version {} is not supported (only {PLAN_VERSION})",
                file.version
            )));
        }
        let mut partitions = Vec::with_capacity(file.partitions.len());
        for p in file.partitions {
            if let Some(dirs) = &p.log_dirs {
                if dirs.len() != p.replicas.len() {
                    return Err(PlanError(format!(
                        "{}-{} has {} log_dirs for {} replicas",
                        p.topic,
                        p.partition,
                        dirs.len(),
                        p.replicas.len()
                    )));
                }
                if let Some(dir) = dirs.iter().find(|d| *d != "any") {
                    return Err(PlanError(format!(
                        "{}-{} asks for log directory '{dir}': Sluice brokers have one log \
                         directory, so only \"any\" is accepted",
                        p.topic, p.partition
                    )));
                }
            }
            partitions.push(PlannedPartition {
                topic: p.topic,
                partition: p.partition,
                replicas: p.replicas,
            });
        }
        ReassignmentPlan::new(partitions)
    }

    /// The plan as Kafka's JSON, on one line.
    pub fn to_json(&self) -> String {
        let file = PlanFile {
            version: PLAN_VERSION,
            partitions: self
                .partitions
                .iter()
                .map(|p| PlanFilePartition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    log_dirs: None,
                })
                .collect(),
        };
        serde_json::to_string(&file).expect("a plan always serializes")
    }

    /// The plan's targets, for [`Admin::alter_partition_reassignments`](crate::Admin::alter_partition_reassignments).
    pub fn reassignments(&self) -> Vec<Reassignment> {
        self.partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, Some(p.replicas.clone())))
            .collect()
    }

    /// Cancellations of the plan's partitions.
    pub fn cancellations(&self) -> Vec<Reassignment> {
        self.partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, None))
            .collect()
    }

    /// The plan's topics, each once, in order of first mention.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for p in &self.partitions {
            if !topics.contains(&p.topic) {
                topics.push(p.topic.clone());
            }
        }
        topics
    }
}

/// A partition's replicas as they stand: the target of its running reassignment if one
/// runs, else its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// One partition [`decommission_plan`] moves: from its replicas to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl PlannedMove {
    pub fn planned(&self) -> PlannedPartition {
        PlannedPartition {
            topic: self.topic.clone(),
            partition: self.partition,
            replicas: self.to.clone(),
        }
    }
}

/// The moves that take every replica off `broker`: for each partition (in topic, partition
/// order) whose replicas name it, the same list with `broker` replaced, in place, by the
/// broker of `live_brokers` that is not `broker`, not already a replica of that partition,
/// and has the fewest replicas so far (counting every partition's replicas, then the ones
/// this plan gives out; ties go to the lowest id). Empty when `broker` holds nothing. An
/// error, naming the partitions, when some partition has no such broker (every live broker
/// already holds it): decommissioning would be partial, so none is planned.
pub fn decommission_plan(
    broker: i32,
    live_brokers: &[i32],
    partitions: &[PartitionReplicas],
) -> Result<Vec<PlannedMove>, PlanError> {
    let mut load: BTreeMap<i32, usize> = live_brokers
        .iter()
        .filter(|id| **id != broker)
        .map(|id| (*id, 0))
        .collect();
    for p in partitions {
        for id in &p.replicas {
            if let Some(count) = load.get_mut(id) {
                *count += 1;
            }
        }
    }
    let mut sorted: Vec<&PartitionReplicas> = partitions.iter().collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut moves = Vec::new();
    let mut stuck = Vec::new();
    for p in sorted {
        let Some(position) = p.replicas.iter().position(|id| *id == broker) else {
            continue;
        };
        let replacement = load
            .iter()
            .filter(|(id, _)| !p.replicas.contains(id))
            .min_by_key(|(id, count)| (**count, **id))
            .map(|(id, _)| *id);
        let Some(replacement) = replacement else {
            stuck.push(format!("{}-{}", p.topic, p.partition));
            continue;
        };
        *load.get_mut(&replacement).expect("a live broker") += 1;
        let mut to = p.replicas.clone();
        to[position] = replacement;
        moves.push(PlannedMove {
            topic: p.topic.clone(),
            partition: p.partition,
            from: p.replicas.clone(),
            to,
        });
    }
    if !stuck.is_empty() {
        let others: Vec<i32> = load.keys().copied().collect();
        return Err(PlanError(format!(
            "no live broker can take broker {broker}'s place in {} (each is already on every \
             live broker other than {broker}: {others:?}); nothing was reassigned",
            stuck.join(", ")
        )));
    }
    Ok(moves)
}

/// How far one partition of a plan has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionProgress {
    /// Its replicas are the plan's (in order) and no reassignment runs.
    Complete,
    /// A reassignment runs (toward the plan's target, or another one: compare
    /// [`OngoingReassignment::target`]).
    InProgress(OngoingReassignment),
    /// Nothing runs and the partition is not where the plan puts it, or does not exist.
    Failed(String),
}

impl fmt::Display for PartitionProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionProgress::Complete => f.write_str("complete"),
            PartitionProgress::InProgress(ongoing) => write!(
                f,
                "in progress (replicas {}, adding {}, removing {})",
                ids(&ongoing.replicas),
                ids(&ongoing.adding),
                ids(&ongoing.removing)
            ),
            PartitionProgress::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// Broker ids as the CLI prints them: `1,2,3`, or `none`.
pub fn ids(list: &[i32]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Where `planned` stands, given the partition's replicas in metadata (`None`: metadata does
/// not know it) and its running reassignment, if any.
pub fn plan_progress(
    planned: &PlannedPartition,
    replicas: Option<&[i32]>,
    ongoing: Option<&OngoingReassignment>,
) -> PartitionProgress {
    if let Some(ongoing) = ongoing {
        return PartitionProgress::InProgress(ongoing.clone());
    }
    match replicas {
        None => PartitionProgress::Failed(format!(
            "{}-{} does not exist",
            planned.topic, planned.partition
        )),
        Some(replicas) if replicas == planned.replicas.as_slice() => PartitionProgress::Complete,
        Some(replicas) => PartitionProgress::Failed(format!(
            "its replicas are {}, not the plan's {}, and no reassignment is running",
            ids(replicas),
            ids(&planned.replicas)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(topic: &str, partition: i32, replicas: &[i32]) -> PlannedPartition {
        PlannedPartition {
            topic: topic.to_string(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    fn error(text: &str) -> String {
        ReassignmentPlan::from_json(text).unwrap_err().0
    }

    #[test]
    fn kafka_plans_parse() {
        let plan = ReassignmentPlan::from_json(
            r#"{"version":1,"partitions":[
                {"topic":"t","partition":0,"replicas":[2,3,4]},
                {"topic":"t","partition":1,"replicas":[3,4,1],"log_dirs":["any","any","any"]},
                {"topic":"u","partition":0,"replicas":[1],"extra":"ignored"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            plan.partitions,
            vec![
                planned("t", 0, &[2, 3, 4]),
                planned("t", 1, &[3, 4, 1]),
                planned("u", 0, &[1])
            ]
        );
        assert_eq!(plan.topics(), vec!["t".to_string(), "u".to_string()]);
        assert_eq!(
            plan.reassignments()[0],
            ("t".to_string(), 0, Some(vec![2, 3, 4]))
        );
        assert_eq!(plan.cancellations()[2], ("u".to_string(), 0, None));
        // Kafka takes a missing version as 1.
        let unversioned = ReassignmentPlan::from_json(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}"#,
        )
        .unwrap();
        assert_eq!(unversioned.partitions, vec![planned("t", 0, &[1])]);
    }

    #[test]
    fn plans_round_trip_through_kafkas_json() {
        let plan = ReassignmentPlan::new(vec![planned("t", 0, &[4, 2, 3]), planned("t", 1, &[1])])
            .unwrap();
        let json = plan.to_json();
        assert_eq!(
            json,
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[4,2,3]},{"topic":"t","partition":1,"replicas":[1]}]}"#
        );
        assert_eq!(ReassignmentPlan::from_json(&json).unwrap(), plan);
    }

    #[test]
    fn invalid_plans_are_refused_naming_the_partition() {
        assert!(error("not json").starts_with("not a reassignment plan"));
        assert!(error(r#"{"version":1}"#).contains("missing field `partitions`"));
        assert!(error(r#"{"partitions":[{"topic":"t","partition":0}]}"#)
            .contains("missing field `replicas`"));
        assert!(
            error(r#"{"partitions":[{"topic":"t","partition":0,"replicas":["a"]}]}"#)
                .starts_with("not a reassignment plan")
        );
        assert_eq!(
            error(r#"{"version":2,"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}"#),
            "plan version 2 is not supported (only 1)"
        );
        assert_eq!(
            error(r#"{"version":1,"partitions":[]}"#),
            "the plan lists no partitions"
        );
        assert_eq!(
            error(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#),
            "t-0 has no replicas"
        );
        assert_eq!(
            error(r#"{"partitions":[{"topic":"t","partition":3,"replicas":[1,2,1]}]}"#),
            "t-3 lists broker 1 twice"
        );
        assert_eq!(
            error(r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,-1]}]}"#),
            "t-0 lists broker -1, which is not a broker id"
        );
        assert_eq!(
            error(r#"{"partitions":[{"topic":"t","partition":-1,"replicas":[1]}]}"#),
            "topic 't' has a negative partition -1"
        );
        assert_eq!(
            error(r#"{"partitions":[{"topic":"","partition":0,"replicas":[1]}]}"#),
            "partition 0 has an empty topic name"
        );
        assert_eq!(
            error(
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}"#
            ),
            "t-0 is listed more than once"
        );
        assert_eq!(
            error(
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}"#
            ),
            "t-0 has 1 log_dirs for 2 replicas"
        );
        assert!(error(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/data/a"]}]}"#
        )
        .contains("log directory '/data/a'"));
    }

    fn replicas(topic: &str, partition: i32, ids: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            topic: topic.to_string(),
            partition,
            replicas: ids.to_vec(),
        }
    }

    fn moves(plan: &[PlannedMove]) -> Vec<(String, Vec<i32>, Vec<i32>)> {
        plan.iter()
            .map(|m| {
                (
                    format!("{}-{}", m.topic, m.partition),
                    m.from.clone(),
                    m.to.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn decommissioning_replaces_the_broker_in_place_spreading_the_load() {
        // Five brokers; broker 1 is on four partitions. Loads before: 1:4, 2:4, 3:3, 4:1,
        // 5:0.
        let partitions = vec![
            replicas("b", 0, &[1, 2, 3]),
            replicas("a", 1, &[2, 1]),
            replicas("a", 0, &[1, 2, 3]),
            replicas("c", 0, &[4, 1]),
            replicas("c", 1, &[2, 3]),
        ];
        let plan = decommission_plan(1, &[1, 2, 3, 4, 5], &partitions).unwrap();
        assert_eq!(
            moves(&plan),
            vec![
                // Topic, partition order. 4 (1) or 5 (0): 5, in broker 1's position.
                ("a-0".to_string(), vec![1, 2, 3], vec![5, 2, 3]),
                // 3 (3), 4 (1), 5 (1): the tie goes to the lower id, 4.
                ("a-1".to_string(), vec![2, 1], vec![2, 4]),
                // 4 (2) or 5 (1): 5.
                ("b-0".to_string(), vec![1, 2, 3], vec![5, 2, 3]),
                // 4 is already a replica; 2 (4), 3 (3), 5 (2): 5.
                ("c-0".to_string(), vec![4, 1], vec![4, 5]),
            ]
        );
        assert_eq!(
            plan[0].planned(),
            planned("a", 0, &[5, 2, 3]),
            "the plan entry for the move"
        );
    }

    #[test]
    fn a_dead_broker_is_not_a_candidate_and_nothing_to_move_is_an_empty_plan() {
        // Broker 6 holds replicas but is not live: it is never chosen.
        let partitions = vec![replicas("t", 0, &[3, 6]), replicas("t", 1, &[6, 1])];
        let plan = decommission_plan(3, &[1, 2, 3], &partitions).unwrap();
        assert_eq!(
            moves(&plan),
            vec![("t-0".to_string(), vec![3, 6], vec![2, 6])]
        );
        // The decommissioned broker may itself be dead (not in the live list).
        let plan = decommission_plan(6, &[1, 2, 3], &partitions).unwrap();
        assert_eq!(
            moves(&plan),
            vec![
                ("t-0".to_string(), vec![3, 6], vec![3, 2]),
                ("t-1".to_string(), vec![6, 1], vec![2, 1]),
            ]
        );
        assert!(decommission_plan(4, &[1, 2, 3, 4], &partitions)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn decommissioning_is_refused_when_a_partition_has_nowhere_to_go() {
        let partitions = vec![replicas("t", 0, &[1, 2]), replicas("t", 1, &[1, 2, 3])];
        let error = decommission_plan(1, &[1, 2, 3], &partitions).unwrap_err();
        assert!(error.0.contains("t-1"), "{error}");
        assert!(!error.0.contains("t-0"), "{error}");
        assert!(error.0.contains("nothing was reassigned"), "{error}");
    }

    fn ongoing(replicas: &[i32], adding: &[i32], removing: &[i32]) -> OngoingReassignment {
        OngoingReassignment {
            topic: "t".to_string(),
            partition: 0,
            replicas: replicas.to_vec(),
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        }
    }

    #[test]
    fn progress_is_complete_in_progress_or_failed() {
        let plan = planned("t", 0, &[2, 3, 4]);
        assert_eq!(
            plan_progress(&plan, Some(&[2, 3, 4]), None),
            PartitionProgress::Complete
        );
        let running = ongoing(&[2, 3, 4, 1], &[4], &[1]);
        let progress = plan_progress(&plan, Some(&[2, 3, 4, 1]), Some(&running));
        assert_eq!(progress, PartitionProgress::InProgress(running));
        assert_eq!(
            progress.to_string(),
            "in progress (replicas 2,3,4,1, adding 4, removing 1)"
        );
        // Same set, another order: the preferred leader differs, so not what was planned.
        assert_eq!(
            plan_progress(&plan, Some(&[3, 2, 4]), None).to_string(),
            "failed: its replicas are 3,2,4, not the plan's 2,3,4, and no reassignment is running"
        );
        assert_eq!(
            plan_progress(&plan, None, None).to_string(),
            "failed: t-0 does not exist"
        );
        assert_eq!(
            PartitionProgress::InProgress(ongoing(&[1, 2], &[2], &[])).to_string(),
            "in progress (replicas 1,2, adding 2, removing none)"
        );
    }
}
