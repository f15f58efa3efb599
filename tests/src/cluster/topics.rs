//! Topics on the cluster: create one through CreateTopics (the controller first, then any
//! live node, as KRaft brokers forward) and wait until every live node agrees on each
//! partition's leader and full ISR and each leader serves it.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, CreateTopicsResponse};

use super::{
    partition_error, Cluster, PartitionState, CREATE_TOPICS_VERSION, CREATE_TOPIC_DEADLINE,
    NOT_CONTROLLER, TOPIC_ALREADY_EXISTS,
};
use crate::raw;

impl Cluster {
    /// Create a topic through CreateTopics (sent to the controller, or another live node
    /// when that one refuses), then wait until every live node agrees on a leader for
    /// every partition, with the ISR equal to the replicas, and each leader answers a
    /// Fetch for it. `configs` are topic configs such as `("min.insync.replicas", "2")`.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) {
        let deadline = Instant::now() + CREATE_TOPIC_DEADLINE;
        let request = raw::create_topics_request(name, partitions, replication_factor, configs);
        let mut attempts = 0;
        let mut last_error = String::new();
        let created = self.poll_until(deadline, |cluster| {
            attempts += 1;
            // The controller first, then every other live node (KRaft brokers forward).
            let mut targets: Vec<i32> = cluster.controller_id().into_iter().collect();
            for id in cluster.live_ids() {
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
            for id in targets {
                let response: CreateTopicsResponse = match cluster
                    .connect(id)
                    .and_then(|mut conn| {
                        conn.set_read_timeout(Duration::from_secs(35))?;
                        conn.request(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)
                    }) {
                    Ok(response) => response,
                    Err(e) => {
                        last_error = format!("node {id}: {e}");
                        continue;
                    }
                };
                let Some(result) = response.topics.iter().find(|t| &*t.name.0 == name) else {
                    last_error = format!("node {id}: the topic is missing from the response");
                    continue;
                };
                match result.error_code {
                    0 => return Some(()),
                    // A retry of a creation whose first answer was lost.
                    TOPIC_ALREADY_EXISTS if attempts > 1 => return Some(()),
                    NOT_CONTROLLER => {
                        last_error = format!("node {id}: NOT_CONTROLLER");
                        continue;
                    }
                    code => panic!(
                        "creating topic {name} ({partitions} partitions, RF {replication_factor}, {configs:?}) on node {id}: error {code} {:?}\n{}",
                        result.error_message,
                        cluster.logs()
                    ),
                }
            }
            None
        });
        if created.is_none() {
            panic!(
                "creating topic {name}: no node accepted CreateTopics within {CREATE_TOPIC_DEADLINE:?}; last error: {last_error}\n{}",
                self.logs()
            );
        }
        let rf = replication_factor as usize;
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.wait_for(
            &format!("topic {name}: every live node agreeing on a leader and a full ISR of {rf} for each of its {partitions} partitions, each leader serving it"),
            timeout,
            |cluster| {
                for partition in 0..partitions {
                    let state = cluster.partition_state_agreed(name, partition)?;
                    let leader = state.leader?;
                    if state.replicas.len() != rf || !state.isr_is_full() {
                        return None;
                    }
                    let response = cluster.fetch_from(leader, name, partition, 0).ok()?;
                    if partition_error(&response) != Some(0) {
                        return None;
                    }
                }
                Some(())
            },
        );
    }

    /// [`create_topic`](Self::create_topic) with a single partition, then that
    /// partition's state as every live node reports it (leader, epoch, replicas, full ISR).
    pub fn create_one_partition_topic(
        &mut self,
        name: &str,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> PartitionState {
        self.create_topic(name, 1, replication_factor, configs);
        self.partition_state_agreed(name, 0)
            .expect("create_topic waits for agreement")
    }
}
