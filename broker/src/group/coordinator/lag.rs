//! What the coordinator exports about its groups, every `--group-metrics-interval-ms`
//! (10 s; [`REPORT_INTERVAL_DEFAULT`]): how many
//! groups are in each state, each group's members and rebalances, and its consumer lag, so
//! that nobody needs a lag exporter.
//!
//! Lag is per group and topic: the sum over the group's committed partitions of
//! `max(0, end - committed)`, where `end` is the offset a consumer could read up to (the
//! partition leader's high watermark, what ListOffsets "latest" answers). A partition led
//! here is read locally; the others are asked of their leaders with one ListOffsets per
//! leader per pass (connections kept between passes). A partition whose end cannot be
//! learnt this pass (leader unknown or unreachable) is left out of the sum and counted in
//! `sluice_group_lag_unknown_partitions`. With `--metrics-per-partition` the lag of each
//! partition is exported too.
//!
//! Series of a group that is gone (deleted, expired, or moved to another coordinator) are
//! set to 0 once, since the exporter cannot remove a series.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::{Connection, ConnectionConfig};

use super::GroupCoordinator;
use crate::metrics as m;

/// How often the group metrics are refreshed, by default.
pub const REPORT_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// ListOffsets' "latest" target.
const LATEST: i64 = -1;

/// One group as a report pass sees it.
struct GroupView {
    /// Kafka's name of its state (classic or consumer group states).
    state: &'static str,
    members: usize,
    generation: i32,
    /// Its generation when this coordinator loaded it: rebalances before that are not ours.
    generation_at_load: i32,
    /// Committed offsets by (topic, partition).
    committed: BTreeMap<(String, i32), i64>,
}

/// What the reporter remembers between passes.
#[derive(Default)]
struct Reporter {
    connections: HashMap<i32, Connection>,
    /// Last generation seen per group (rebalances are counted by its increase), and the
    /// topics its lag series were set for.
    groups: HashMap<String, (i32, BTreeSet<String>)>,
}

/// Refresh the group metrics until the coordinator is dropped.
pub(super) async fn report_periodically(coordinator: Weak<GroupCoordinator>, every: Duration) {
    let mut reporter = Reporter::default();
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        let Some(coordinator) = coordinator.upgrade() else {
            return;
        };
        reporter.pass(&coordinator).await;
    }
}

impl Reporter {
    async fn pass(&mut self, coordinator: &Arc<GroupCoordinator>) {
        let shards = coordinator.shards_snapshot();
        let loaded = shards.iter().filter(|shard| shard.is_loaded()).count();
        metrics::gauge!(m::GROUP_COORDINATOR_PARTITIONS, "state" => "loaded").set(loaded as f64);
        metrics::gauge!(m::GROUP_COORDINATOR_PARTITIONS, "state" => "loading")
            .set((shards.len() - loaded) as f64);
        let groups = snapshot(coordinator);
        let mut states: BTreeMap<&'static str, usize> =
            ALL_STATES.iter().map(|s| (*s, 0)).collect();
        for view in groups.values() {
            *states.entry(view.state).or_default() += 1;
        }
        for (state, count) in states {
            metrics::gauge!(m::GROUPS, "state" => state).set(count as f64);
        }
        let partitions: BTreeSet<(String, i32)> = groups
            .values()
            .flat_map(|g| g.committed.keys().cloned())
            .collect();
        let ends = self.ends(coordinator, &partitions).await;
        let unknown = partitions.iter().filter(|p| !ends.contains_key(*p)).count();
        metrics::gauge!(m::GROUP_LAG_UNKNOWN_PARTITIONS).set(unknown as f64);
        let per_partition = coordinator.replicas.per_partition_metrics();
        for (group_id, view) in &groups {
            self.report_group(group_id, view, &ends, per_partition);
        }
        self.forget_gone(&groups);
    }

    fn report_group(
        &mut self,
        group_id: &str,
        view: &GroupView,
        ends: &HashMap<(String, i32), i64>,
        per_partition: bool,
    ) {
        let group = group_id.to_string();
        metrics::gauge!(m::GROUP_MEMBERS, "group" => group.clone()).set(view.members as f64);
        let (last_generation, topics) = self
            .groups
            .entry(group.clone())
            // A group first seen here: count every rebalance this coordinator ran, even one
            // that completed before this pass.
            .or_insert((view.generation_at_load, BTreeSet::new()));
        if view.generation > *last_generation {
            let rebalances = u64::try_from(view.generation - *last_generation).unwrap_or(0);
            metrics::counter!(m::GROUP_REBALANCES_TOTAL, "group" => group.clone())
                .increment(rebalances);
            *last_generation = view.generation;
        }
        let mut lag_by_topic: BTreeMap<&str, i64> = BTreeMap::new();
        for ((topic, partition), committed) in &view.committed {
            let Some(end) = ends.get(&(topic.clone(), *partition)) else {
                continue;
            };
            let lag = (end - committed).max(0);
            *lag_by_topic.entry(topic).or_default() += lag;
            if per_partition {
                metrics::gauge!(m::GROUP_PARTITION_LAG, "group" => group.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(lag as f64);
            }
        }
        for topic in topics.iter() {
            if !lag_by_topic.contains_key(topic.as_str()) {
                metrics::gauge!(m::GROUP_LAG, "group" => group.clone(), "topic" => topic.clone())
                    .set(0.0);
            }
        }
        topics.clear();
        for (topic, lag) in lag_by_topic {
            metrics::gauge!(m::GROUP_LAG, "group" => group.clone(), "topic" => topic.to_string())
                .set(lag as f64);
            topics.insert(topic.to_string());
        }
    }

    /// Zero the series of groups this coordinator no longer has.
    fn forget_gone(&mut self, groups: &BTreeMap<String, GroupView>) {
        self.groups.retain(|group, (_, topics)| {
            if groups.contains_key(group) {
                return true;
            }
            metrics::gauge!(m::GROUP_MEMBERS, "group" => group.clone()).set(0.0);
            for topic in topics.iter() {
                metrics::gauge!(m::GROUP_LAG, "group" => group.clone(), "topic" => topic.clone())
                    .set(0.0);
            }
            false
        });
    }

    /// The readable end of each partition: local leaders' high watermarks, and ListOffsets
    /// to the other leaders.
    async fn ends(
        &mut self,
        coordinator: &Arc<GroupCoordinator>,
        partitions: &BTreeSet<(String, i32)>,
    ) -> HashMap<(String, i32), i64> {
        let replicas = &coordinator.replicas;
        let local_id = replicas.local_id();
        let mut ends = HashMap::new();
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let leader = replicas.metadata().read(|state| {
                let t = state.topic_by_name(topic)?;
                state.partition(&t.id, *partition)?.leader
            });
            match leader {
                Some(leader) if leader == local_id => {
                    if let Some(replica) = replicas.replica(topic, *partition) {
                        ends.insert((topic.clone(), *partition), replica.visible_end());
                    }
                }
                Some(leader) => remote
                    .entry(leader)
                    .or_default()
                    .push((topic.clone(), *partition)),
                None => {}
            }
        }
        for (leader, partitions) in remote {
            if let Some(answers) = self.list_latest(coordinator, leader, &partitions).await {
                ends.extend(answers);
            }
        }
        ends
    }

    /// ListOffsets "latest" for `partitions` from their leader `leader`.
    async fn list_latest(
        &mut self,
        coordinator: &Arc<GroupCoordinator>,
        leader: i32,
        partitions: &[(String, i32)],
    ) -> Option<Vec<((String, i32), i64)>> {
        let connection = self.connection(coordinator, leader).await?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_timestamp(LATEST)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = match connection.send(request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(leader, %error, "lag: ListOffsets failed");
                self.connections.remove(&leader);
                return None;
            }
        };
        Some(
            response
                .topics
                .into_iter()
                .flat_map(|topic| {
                    let name = topic.name.0.to_string();
                    topic
                        .partitions
                        .into_iter()
                        .filter(|p| p.error_code == 0)
                        .map(move |p| ((name.clone(), p.partition_index), p.offset))
                })
                .collect(),
        )
    }

    async fn connection(
        &mut self,
        coordinator: &Arc<GroupCoordinator>,
        leader: i32,
    ) -> Option<Connection> {
        if let Some(connection) = self.connections.get(&leader).filter(|c| !c.is_closed()) {
            return Some(connection.clone());
        }
        let address = coordinator.replicas.metadata().read(|state| {
            state
                .broker(leader)
                .and_then(crate::controller::Broker::client_endpoint)
                .map(|e| format!("{}:{}", e.host, e.port))
        })?;
        let config = ConnectionConfig {
            client_id: format!("sluice-group-lag-{}", coordinator.replicas.local_id()),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            ..ConnectionConfig::default()
        };
        match Connection::connect(&address, &config).await {
            Ok(connection) => {
                self.connections.insert(leader, connection.clone());
                Some(connection)
            }
            Err(error) => {
                tracing::debug!(leader, %address, %error, "lag: cannot reach the leader");
                None
            }
        }
    }
}

/// Every state a classic or consumer group reports, so each `sluice_groups` series exists.
const ALL_STATES: [&str; 7] = [
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Assigning",
    "Reconciling",
    "Stable",
    "Dead",
];

/// Every group of every loaded shard, copied out of the shards' locks.
fn snapshot(coordinator: &GroupCoordinator) -> BTreeMap<String, GroupView> {
    let mut groups = BTreeMap::new();
    for shard in coordinator.shards_snapshot() {
        if !shard.is_loaded() {
            continue;
        }
        let state = shard.lock();
        for (group_id, entry) in &state.groups {
            let (state, members, generation) = match (&entry.group, &entry.consumer) {
                (Some(group), _) => (
                    group.state().as_str(),
                    group.member_ids().count(),
                    group.generation_id(),
                ),
                (None, Some(group)) => (
                    group.state().as_str(),
                    group.member_ids().count(),
                    group.group_epoch(),
                ),
                (None, None) => continue,
            };
            groups.insert(
                group_id.clone(),
                GroupView {
                    state,
                    members,
                    generation,
                    generation_at_load: entry.generation_at_load,
                    committed: entry
                        .offsets
                        .iter()
                        .map(|(key, c)| (key.clone(), c.offset))
                        .collect(),
                },
            );
        }
    }
    groups
}
