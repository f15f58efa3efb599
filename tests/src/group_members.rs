//! Group members for the group consumer tests (`client_group_consumer*.rs`): a
//! [`GroupConsumer`] polling in its own task and recording what it consumes, its
//! assignment and its rebalance callbacks; waiting for conditions with a deadline; producing
//! numbered records; reading the group's committed offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::{
    Acks, GroupConsumer, GroupConsumerConfig, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener, TopicPartition,
};

use crate::{Broker, BrokerOptions};

pub const PARTITIONS: i32 = 6;
pub const WAIT: Duration = Duration::from_secs(60);

pub fn broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..Default::default()
    })
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A member's settings: short heartbeats so rebalances are noticed quickly, reading from
/// the earliest offset where nothing is committed (so a member that ignored the commits
/// would consume old records again).
pub fn member_config(bootstrap: &str, group: &str, index: usize) -> GroupConsumerConfig {
    let mut config = GroupConsumerConfig::new(bootstrap, group);
    config.consumer.client_id = format!("member-{index}");
    config.consumer.auto_offset_reset = OffsetReset::Earliest;
    config.consumer.fetch_max_wait_ms = 100;
    config.session_timeout_ms = 10_000;
    config.heartbeat_interval_ms = 200;
    config
}

/// One consumed record: which member got it, where it was, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub member: usize,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// What the test and a member task share.
#[derive(Default)]
pub struct Shared {
    pub seen: Mutex<Vec<Seen>>,
    pub assignments: Mutex<BTreeMap<usize, Vec<TopicPartition>>>,
    pub events: Mutex<Vec<(usize, &'static str, Vec<TopicPartition>)>>,
    /// Each member's generation after its last poll.
    pub generations: Mutex<BTreeMap<usize, Option<i32>>>,
    /// Why member tasks ended early.
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn assignments(&self) -> BTreeMap<usize, Vec<TopicPartition>> {
        self.assignments.lock().unwrap().clone()
    }
}

/// Records rebalance callbacks.
pub struct Recorder {
    pub member: usize,
    pub shared: Arc<Shared>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, revoked: &[TopicPartition]) {
        let event = (self.member, "revoked", revoked.to_vec());
        self.shared.events.lock().unwrap().push(event);
    }

    fn on_partitions_assigned(&mut self, assigned: &[TopicPartition]) {
        let event = (self.member, "assigned", assigned.to_vec());
        self.shared.events.lock().unwrap().push(event);
    }
}

/// How a member commits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// `commit_sync` after every poll that returned records; auto-commit off.
    AfterEveryPoll,
    /// Auto-commit only, with an interval longer than the test: commits happen on revoke
    /// and on close.
    AutoOnRebalanceAndClose,
}

pub struct MemberTask {
    pub stop: Arc<AtomicBool>,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Where the task reports why it ended early.
    pub errors: Arc<Shared>,
}

impl MemberTask {
    /// Stop polling, close (commit per the mode, leave the group) and report the outcome.
    pub async fn close(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.await?
    }
}

/// A member polling in its own task until stopped, recording what it consumes and its
/// assignment after every poll.
pub fn spawn_member(
    mut config: GroupConsumerConfig,
    topic: &str,
    member: usize,
    commits: Commits,
    shared: Arc<Shared>,
) -> MemberTask {
    match commits {
        Commits::AfterEveryPoll => config.enable_auto_commit = false,
        Commits::AutoOnRebalanceAndClose => {
            config.enable_auto_commit = true;
            config.auto_commit_interval_ms = 3_600_000;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let topic = topic.to_string();
    let stopped = stop.clone();
    let task_shared = shared.clone();
    let errors_view = shared.clone();
    let run =
        async move {
            let mut consumer = GroupConsumer::new(config).await?;
            consumer.subscribe(&[&topic])?;
            consumer.set_rebalance_listener(Recorder {
                member,
                shared: shared.clone(),
            });
            while !stopped.load(Ordering::SeqCst) {
                let records = consumer.poll(Duration::from_millis(100)).await?;
                // The generation first: a test that sees the assignment finds it.
                let (_, generation) = consumer.member();
                shared
                    .generations
                    .lock()
                    .unwrap()
                    .insert(member, generation);
                shared
                    .assignments
                    .lock()
                    .unwrap()
                    .insert(member, consumer.assignment());
                if records.is_empty() {
                    continue;
                }
                shared.seen.lock().unwrap().extend(
                    records.iter().map(|r| Seen {
                        member,
                        partition: r.partition,
                        offset: r.offset,
                        value: String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                            .into_owned(),
                    }),
                );
                if commits == Commits::AfterEveryPoll {
                    consumer.commit_sync().await?;
                }
            }
            shared.assignments.lock().unwrap().remove(&member);
            consumer.close().await?;
            Ok(())
        };
    let handle = tokio::spawn(async move {
        let result: anyhow::Result<()> = run.await;
        if let Err(error) = &result {
            let error = format!("member {member}: {error:#}");
            task_shared.errors.lock().unwrap().push(error);
        }
        result
    });
    MemberTask {
        stop,
        handle,
        errors: errors_view,
    }
}

/// Poll `condition` every 50 ms until it holds; fail with `what` and the state after `WAIT`,
/// or as soon as a member task has ended (it failed).
pub async fn wait_for(
    what: &str,
    members: &[&MemberTask],
    mut condition: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = match condition() {
            Ok(()) => return,
            Err(state) => state,
        };
        if let Some(index) = members.iter().position(|m| m.handle.is_finished()) {
            let errors = members[index].errors.errors.lock().unwrap().clone();
            panic!(
                "member task {index} ended while waiting for {what} ({errors:?}); state: {state}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; state: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the live members' assignments partition the topic with these sizes (sorted).
pub fn split_as(
    assignments: &BTreeMap<usize, Vec<TopicPartition>>,
    members: &[usize],
    sizes: &[usize],
) -> Result<(), String> {
    let state = format!("{assignments:?}");
    let mut got_sizes: Vec<usize> = members
        .iter()
        .map(|m| assignments.get(m).map_or(0, Vec::len))
        .collect();
    got_sizes.sort_unstable();
    let all: BTreeSet<i32> = members
        .iter()
        .filter_map(|m| assignments.get(m))
        .flatten()
        .map(|(_, p)| *p)
        .collect();
    let total: usize = got_sizes.iter().sum();
    if got_sizes == sizes && all.len() == total && total == PARTITIONS as usize {
        Ok(())
    } else {
        Err(state)
    }
}

/// Produce `count` records, `i` going to partition `i % 6`, valued `{tag}-{i}`.
pub async fn produce(bootstrap: &str, topic: &str, tag: &str, count: usize) -> BTreeMap<i32, i64> {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = Acks::All;
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let partition = i32::try_from(i).unwrap() % PARTITIONS;
        let record = ProducerRecord::new(topic, format!("{tag}-{i}")).with_partition(partition);
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut ends = BTreeMap::new();
    for delivery in deliveries {
        let metadata = delivery.await.unwrap();
        let end = ends.entry(metadata.partition).or_insert(0);
        *end = (*end).max(metadata.offset + 1);
    }
    producer.close().await;
    ends
}

/// The group's committed offsets of every partition, asked by a consumer that never joins.
pub async fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let observer = GroupConsumer::new(GroupConsumerConfig::new(bootstrap, group))
        .await
        .unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS).map(|p| (topic.to_string(), p)).collect();
    observer
        .committed(&partitions)
        .await
        .unwrap()
        .into_iter()
        .map(|((_, p), offset)| (p, offset))
        .collect()
}

/// Wait until the group has committed exactly `ends` (each partition's log end).
pub async fn wait_for_commits(
    bootstrap: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    members: &[&MemberTask],
) {
    let expected: BTreeMap<i32, Option<i64>> = ends.iter().map(|(p, e)| (*p, Some(*e))).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let now = committed(bootstrap, group, topic).await;
        if now == expected {
            return;
        }
        assert!(
            members.iter().all(|m| !m.handle.is_finished()),
            "a member task ended; committed: {now:?}"
        );
        assert!(
            Instant::now() < deadline,
            "committed offsets {now:?}, expected the log ends {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every (partition, offset) at most once; returns the set.
pub fn assert_no_duplicates(seen: &[Seen]) -> BTreeSet<(i32, i64)> {
    let mut unique = BTreeSet::new();
    for record in seen {
        assert!(
            unique.insert((record.partition, record.offset)),
            "{record:?} was consumed twice"
        );
    }
    unique
}

/// The handover scenario both rebalancing styles are tested with: three members
/// (auto-commit on revoke and close only) split a 6-partition topic and consume a first
/// batch; member 0 closes; the two left consume a second batch. Each phase checks what
/// every style must show (every record once, nothing old again, member 0 gone); the tests
/// check their style's callbacks and commits between phases.
pub struct Handover {
    pub bootstrap: String,
    pub group: String,
    pub shared: Arc<Shared>,
    pub members: Vec<MemberTask>,
    /// Each partition's log end after the first batch.
    pub ends: BTreeMap<i32, i64>,
    /// Member 0's partitions when it closed.
    pub closed_partitions: Vec<TopicPartition>,
}

impl Handover {
    pub const FIRST: usize = 300;
    pub const SECOND: usize = 60;

    /// Create the topic (named as the group), start three members made by `config`, wait
    /// for two partitions each, produce the first batch and wait until it is consumed.
    pub async fn start(
        bootstrap: &str,
        group: &str,
        config: impl Fn(&str, &str, usize) -> GroupConsumerConfig,
    ) -> Handover {
        let admin = sluice_client::Admin::new(bootstrap).await.unwrap();
        admin.create_topic(group, PARTITIONS, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let members: Vec<MemberTask> = (0..3)
            .map(|i| {
                let commits = Commits::AutoOnRebalanceAndClose;
                spawn_member(
                    config(bootstrap, group, i),
                    group,
                    i,
                    commits,
                    shared.clone(),
                )
            })
            .collect();
        let all: Vec<&MemberTask> = members.iter().collect();
        wait_for("three members with two partitions each", &all, || {
            split_as(&shared.assignments(), &[0, 1, 2], &[2, 2, 2])
        })
        .await;
        let ends = produce(bootstrap, group, "first", Self::FIRST).await;
        wait_for_seen(&shared, &all, Self::FIRST).await;
        Handover {
            bootstrap: bootstrap.to_string(),
            group: group.to_string(),
            shared,
            members,
            ends,
            closed_partitions: Vec::new(),
        }
    }

    /// Member 0 closes; wait until the other two hold three partitions each.
    pub async fn close_member_0(&mut self) {
        let closing = self.members.remove(0);
        self.closed_partitions = self.shared.assignments()[&0].clone();
        closing.close().await.unwrap();
        let all: Vec<&MemberTask> = self.members.iter().collect();
        wait_for("two members with three partitions each", &all, || {
            split_as(&self.shared.assignments(), &[1, 2], &[3, 3])
        })
        .await;
    }

    /// Produce the second batch and check what was consumed: every record exactly once,
    /// the second batch only past the first's ends, none of it by member 0, and member 0's
    /// partitions taken over. Returns the log ends after it.
    pub async fn consume_second(&self) -> BTreeMap<i32, i64> {
        let all: Vec<&MemberTask> = self.members.iter().collect();
        let second_ends = produce(&self.bootstrap, &self.group, "second", Self::SECOND).await;
        wait_for_seen(&self.shared, &all, Self::FIRST + Self::SECOND).await;
        let everything = self.shared.seen();
        let unique = assert_no_duplicates(&everything);
        assert_eq!(unique.len(), Self::FIRST + Self::SECOND);
        let second = &everything[Self::FIRST..];
        assert_eq!(second.len(), Self::SECOND, "nothing old was consumed again");
        for record in second {
            let end = self.ends[&record.partition];
            assert!(record.offset >= end, "{record:?} is old");
            assert_ne!(record.member, 0, "{record:?}");
        }
        for (_, partition) in &self.closed_partitions {
            assert!(
                second.iter().any(|s| s.partition == *partition),
                "nobody consumed partition {partition} after member 0 closed: {second:?}"
            );
        }
        second_ends
    }

    /// Close the others and wait until the group has committed `ends`.
    pub async fn finish(self, ends: &BTreeMap<i32, i64>) {
        for member in self.members {
            member.close().await.unwrap();
        }
        wait_for_commits(&self.bootstrap, &self.group, &self.group, ends, &[]).await;
    }
}

/// Wait until the members have consumed at least `count` records.
async fn wait_for_seen(shared: &Shared, members: &[&MemberTask], count: usize) {
    wait_for(&format!("{count} records consumed"), members, || {
        let seen = shared.seen.lock().unwrap().len();
        (seen >= count)
            .then_some(())
            .ok_or(format!("{seen} consumed"))
    })
    .await;
}
