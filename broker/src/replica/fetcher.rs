//! Follower fetchers: one task per source broker, fetching every partition this broker
//! follows there with Kafka Fetch requests (replica id set, so the leader treats them as
//! replication), and applying the answers through the replication state machine.
//!
//! A fetch names, per partition, the follower's log end offset, the leader epoch it follows
//! (`current_leader_epoch`) and the epoch of its last batch (`last_fetched_epoch`, KIP-320).
//! The follower's broker epoch (KIP-903's `ReplicaState.ReplicaEpoch`, a Fetch v15 field)
//! travels in the request's tagged field [`BROKER_EPOCH_TAG`], because Sluice serves Fetch
//! up to v12.
//!
//! With `--durability fsync` a fetcher fsyncs what an answer appended before it fetches
//! again, so the offset it reports (which moves the leader's high watermark) is on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::{Connection, ConnectionConfig};
use sluice_protocol::batch::Batches;
use sluice_protocol::error::ErrorCode;
use tokio::sync::{watch, Notify};

use super::hosted::{offsets, Replica};
use crate::controller::MetadataReader;
use crate::metrics as m;
use crate::replication::{EpochEndOffset, FetchedPartition, FollowerAction, FollowerFetch};
use sluice_protocol::clock::now_ms;

/// Tag of the Fetch request's tagged field that carries the follower's broker epoch.
pub const BROKER_EPOCH_TAG: i32 = 10_000;
/// The Fetch version followers send.
const FETCH_VERSION: i16 = 12;
/// Pause after a failed fetch or connection before trying again.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Settings of every fetcher.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    pub local_id: i32,
    pub broker_epoch: i64,
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

type Key = (String, i32);

struct FetcherTask {
    partitions: Arc<Mutex<HashMap<Key, Arc<Replica>>>>,
    wake: Arc<Notify>,
}

/// The fetcher tasks, by source broker.
pub struct Fetchers {
    config: FetcherConfig,
    metadata: MetadataReader,
    tasks: Mutex<HashMap<i32, FetcherTask>>,
    shutdown: watch::Receiver<bool>,
}

impl Fetchers {
    pub fn new(
        config: FetcherConfig,
        metadata: MetadataReader,
        shutdown: watch::Receiver<bool>,
    ) -> Fetchers {
        Fetchers {
            config,
            metadata,
            tasks: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Fetch `replica` from `leader_id` (and from nowhere else).
    pub fn add(&self, leader_id: i32, replica: Arc<Replica>) {
        let key = (replica.topic.clone(), replica.index);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (id, task) in tasks.iter() {
            if *id != leader_id {
                task.partitions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
            }
        }
        let task = tasks.entry(leader_id).or_insert_with(|| {
            let task = FetcherTask {
                partitions: Arc::new(Mutex::new(HashMap::new())),
                wake: Arc::new(Notify::new()),
            };
            tokio::spawn(run_fetcher(
                self.config.clone(),
                leader_id,
                self.metadata.clone(),
                task.partitions.clone(),
                task.wake.clone(),
                self.shutdown.clone(),
            ));
            task
        });
        task.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, replica);
        task.wake.notify_one();
    }

    pub fn remove(&self, replica: &Replica) {
        let key = (replica.topic.clone(), replica.index);
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for task in tasks.values() {
            task.partitions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

/// The Kafka listener address of `broker_id`, from the metadata.
fn broker_address(metadata: &MetadataReader, broker_id: i32) -> Option<String> {
    metadata.read(|state| {
        state
            .broker(broker_id)
            .and_then(crate::controller::Broker::client_endpoint)
            .map(|e| format!("{}:{}", e.host, e.port))
    })
}

async fn run_fetcher(
    config: FetcherConfig,
    leader_id: i32,
    metadata: MetadataReader,
    partitions: Arc<Mutex<HashMap<Key, Arc<Replica>>>>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connection: Option<Connection> = None;
    let connection_config = ConnectionConfig {
        client_id: format!("sluice-replica-fetcher-{}", config.local_id),
        request_timeout: Duration::from_millis(u64::try_from(config.max_wait_ms).unwrap_or(500))
            + Duration::from_secs(10),
        connect_timeout: Duration::from_secs(3),
        ..ConnectionConfig::default()
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let current: Vec<Arc<Replica>> = partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if current.is_empty() {
            tokio::select! {
                _ = wake.notified() => continue,
                () = crate::shutdown::stopped(&mut shutdown) => return,
            }
        }
        let conn = match &connection {
            Some(conn) if !conn.is_closed() => conn.clone(),
            _ => {
                let Some(address) = broker_address(&metadata, leader_id) else {
                    pause(&mut shutdown).await;
                    continue;
                };
                match Connection::connect(&address, &connection_config).await {
                    Ok(conn) => {
                        connection = Some(conn.clone());
                        conn
                    }
                    Err(error) => {
                        tracing::debug!(leader = leader_id, %address, %error, "fetcher cannot connect");
                        pause(&mut shutdown).await;
                        continue;
                    }
                }
            }
        };
        let (request, sent) = build_request(&config, &current);
        if sent.is_empty() {
            pause(&mut shutdown).await;
            continue;
        }
        let timeout = connection_config.request_timeout;
        let response = tokio::select! {
            response = conn.send_versioned(request, FETCH_VERSION, timeout) => response,
            () = crate::shutdown::stopped(&mut shutdown) => return,
            // A new partition to fetch: the next request includes it.
            _ = wake.notified() => continue,
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(leader = leader_id, %error, "replica fetch failed");
                connection = None;
                pause(&mut shutdown).await;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::debug!(
                leader = leader_id,
                code = response.error_code,
                "replica fetch refused"
            );
            pause(&mut shutdown).await;
            continue;
        }
        let mut any_progress = false;
        for topic in response.responses {
            for partition in topic.partitions {
                let key = (topic.topic.0.to_string(), partition.partition_index);
                let Some((replica, fetch)) = sent.get(&key) else {
                    continue;
                };
                any_progress |= apply_response(replica, fetch, partition);
            }
        }
        let replicas: Vec<Arc<Replica>> = sent.values().map(|(r, _)| r.clone()).collect();
        tokio::select! {
            () = sync_appended(&replicas) => {}
            () = crate::shutdown::stopped(&mut shutdown) => return,
        }
        if !any_progress {
            // Every partition failed: do not spin.
            tokio::select! {
                _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                _ = wake.notified() => {}
                () = crate::shutdown::stopped(&mut shutdown) => return,
            }
        }
    }
}

/// With fsync durability, make what the last answer appended durable before the next
/// fetch names the new log end: the leader counts that offset towards the high watermark,
/// and so towards acks=all, so it must survive this broker losing power (Kafka's
/// `flush.messages=1` flushes followers' appends too). One fsync per partition that grew,
/// all at once; a failed one poisons the log (logged), whose appends then fail.
async fn sync_appended(replicas: &[Arc<Replica>]) {
    let waits = replicas
        .iter()
        .filter(|replica| replica.log.durable_offset() < replica.log.log_end_offset())
        .map(|replica| async move {
            let last = replica.log.log_end_offset() - 1;
            if let Err(error) = replica.log.wait_durable(last).await {
                tracing::error!(partition = replica.log.name(), %error, "fsync of replicated records failed");
            }
        });
    futures::future::join_all(waits).await;
}

async fn pause(shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(RETRY_BACKOFF) => {}
        () = crate::shutdown::stopped(shutdown) => {}
    }
}

#[allow(clippy::type_complexity)]
fn build_request(
    config: &FetcherConfig,
    replicas: &[Arc<Replica>],
) -> (FetchRequest, HashMap<Key, (Arc<Replica>, FollowerFetch)>) {
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(config.local_id);
    request.max_wait_ms = config.max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = config.max_bytes;
    request.session_id = 0;
    request.session_epoch = -1;
    request.unknown_tagged_fields.insert(
        BROKER_EPOCH_TAG,
        Bytes::copy_from_slice(&config.broker_epoch.to_be_bytes()),
    );
    let mut sent = HashMap::new();
    let mut topics: HashMap<String, Vec<FetchPartition>> = HashMap::new();
    for replica in replicas {
        let fetch = {
            let state = replica.lock();
            state.next_fetch(offsets(&replica.log), replica.log.latest_epoch())
        };
        let Some(fetch) = fetch else { continue };
        let mut partition = FetchPartition::default();
        partition.partition = replica.index;
        partition.current_leader_epoch = fetch.current_leader_epoch.unwrap_or(-1);
        partition.fetch_offset = fetch.fetch_offset;
        partition.last_fetched_epoch = fetch.last_fetched_epoch.unwrap_or(-1);
        partition.log_start_offset = fetch.log_start_offset;
        partition.partition_max_bytes = config.partition_max_bytes;
        topics
            .entry(replica.topic.clone())
            .or_default()
            .push(partition);
        sent.insert(
            (replica.topic.clone(), replica.index),
            (replica.clone(), fetch),
        );
    }
    for (name, partitions) in topics {
        let mut topic = FetchTopic::default();
        topic.topic = kafka_protocol::messages::TopicName(StrBytes::from_string(name));
        topic.partitions = partitions;
        request.topics.push(topic);
    }
    (request, sent)
}

/// Apply one partition's answer; returns whether it was applied (an empty answer to a long
/// poll counts), `false` for an error or a refused answer.
fn apply_response(
    replica: &Arc<Replica>,
    sent: &FollowerFetch,
    partition: kafka_protocol::messages::fetch_response::PartitionData,
) -> bool {
    let code = partition.error_code;
    if code != 0 {
        if code == ErrorCode::OffsetOutOfRange as i16
            && partition.log_start_offset > sent.fetch_offset
        {
            // The leader deleted what we lack (retention): start over at its log start.
            let state = replica.lock();
            if state
                .next_fetch(offsets(&replica.log), replica.log.latest_epoch())
                .as_ref()
                == Some(sent)
            {
                let (start, end) = (replica.log.log_start_offset(), replica.log.log_end_offset());
                tracing::warn!(
                    partition = replica.log.name(),
                    fetch_offset = sent.fetch_offset,
                    leader_log_start_offset = partition.log_start_offset,
                    log_start_offset = start,
                    log_end_offset = end,
                    leader_epoch = state.leader_epoch(),
                    "follower is behind the leader's log start; restarting the log there"
                );
                match replica
                    .log
                    .truncate_fully_and_start_at(partition.log_start_offset)
                {
                    Ok(()) => metrics::counter!(m::REPLICA_TRUNCATED_RECORDS_TOTAL)
                        .increment((end - start).max(0) as u64),
                    Err(error) => {
                        tracing::error!(partition = replica.log.name(), %error, "restarting the log failed")
                    }
                }
                drop(state);
                return true;
            }
        }
        tracing::debug!(
            partition = replica.log.name(),
            code,
            "replica fetch partition error"
        );
        return false;
    }
    let records = partition.records.unwrap_or_default();
    let records_end_offset = Batches::new(&records)
        .flatten()
        .last()
        .map(|(header, _)| header.last_offset() + 1);
    let diverging_epoch = (partition.diverging_epoch.epoch >= 0).then_some(EpochEndOffset {
        epoch: partition.diverging_epoch.epoch,
        end_offset: partition.diverging_epoch.end_offset,
    });
    let fetched = FetchedPartition {
        high_watermark: partition.high_watermark,
        diverging_epoch,
        records_end_offset,
    };
    let mut state = replica.lock();
    let actions = match state.on_fetch_response(
        sent,
        &fetched,
        offsets(&replica.log),
        &*replica.log,
    ) {
        Ok(actions) => actions,
        Err(refusal) => {
            tracing::debug!(partition = replica.log.name(), %refusal, "fetch response discarded");
            return false;
        }
    };
    for action in actions {
        let result = match action {
            FollowerAction::TruncateTo(offset) => {
                let before = replica.log.log_end_offset();
                let result = replica.log.truncate_to(offset).map(|_| ());
                let records_removed = (before - replica.log.log_end_offset()).max(0);
                metrics::counter!(m::TRUNCATIONS_TOTAL).increment(1);
                metrics::counter!(m::REPLICA_TRUNCATED_RECORDS_TOTAL)
                    .increment(records_removed as u64);
                tracing::info!(
                    partition = replica.log.name(),
                    truncated_to = offset,
                    log_end_offset_before = before,
                    records_removed,
                    diverging_epoch = ?diverging_epoch,
                    leader_epoch = state.leader_epoch(),
                    high_watermark = state.high_watermark(),
                    "follower log diverged from the leader; truncated"
                );
                result
            }
            FollowerAction::Append => {
                // Only whole batches: a response cut at the byte limit may end mid-batch.
                let whole: usize = Batches::new(&records)
                    .flatten()
                    .map(|(_, batch)| batch.len())
                    .sum();
                metrics::counter!(m::REPLICATION_BYTES_IN_TOTAL).increment(whole as u64);
                replica
                    .log
                    .append_as_follower(&records[..whole], now_ms())
                    .map(|_| ())
            }
            FollowerAction::UpdateHighWatermark(high_watermark) => {
                replica.publish_high_watermark(high_watermark);
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::error!(partition = replica.log.name(), %error, ?action, "applying a fetch response failed");
            return false;
        }
    }
    follow_log_start(replica, partition.log_start_offset);
    true
}

/// Move this follower's log start up to the leader's (DeleteRecords, or the leader's
/// retention), never past what this follower holds (Kafka's
/// `maybeIncrementLogStartOffset(LeaderOffsetIncremented)`). Called under the replica's
/// lock, as every log change a fetch answer brings.
fn follow_log_start(replica: &Replica, leader_log_start_offset: i64) {
    if leader_log_start_offset <= replica.log.log_start_offset() {
        return;
    }
    let target = leader_log_start_offset.min(replica.log.log_end_offset());
    if let Err(error) = replica.log.advance_log_start(target) {
        tracing::error!(partition = replica.log.name(), %error, leader_log_start_offset, "following the leader's log start failed");
    }
}
