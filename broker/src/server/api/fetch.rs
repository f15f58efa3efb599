//! Fetch: read whole batches from each requested partition up to the high watermark, with
//! Kafka's byte limits and long poll.
//!
//! - Consumers (replica id -1) read from the partition leader only (NOT_LEADER_OR_FOLLOWER
//!   elsewhere; FENCED_/UNKNOWN_LEADER_EPOCH when their `current_leader_epoch` is stale or
//!   ahead) and never see records at or above the high watermark.
//! - Followers (replica id >= 0) fetch as replication: the leader's state machine checks
//!   the fetch ([`Partition::on_follower_fetch`](crate::replication::Partition::on_follower_fetch):
//!   epochs, broker epoch, divergence) and records the follower's progress, which moves the
//!   ISR and the high watermark; the answer carries records up to the log end, the leader's
//!   high watermark, and a `DivergingEpoch` when the follower must truncate. The follower's
//!   broker epoch comes in the tagged field
//!   [`BROKER_EPOCH_TAG`](crate::replica::fetcher::BROKER_EPOCH_TAG).
//!
//! - `partition_max_bytes` bounds each partition and `max_bytes` (capped by the broker's
//!   `fetch_bytes_max`) the whole response, except that the first batch of the first
//!   non-empty partition is always returned whole so a consumer can make progress.
//! - Long poll: if fewer than `min_bytes` are ready the request waits, up to
//!   `max_wait_ms`, for the visible end of any requested partition to move (an append, or
//!   with fsync durability a completed fsync), then reads again. The wait is the fetch
//!   purgatory: counted in its gauge and in the request's remote time.
//! - Incremental fetch sessions (KIP-227) are refused cleanly: every response carries
//!   session id 0, so clients keep sending full fetch requests; a request naming a session
//!   gets FETCH_SESSION_ID_NOT_FOUND.
//! - An empty partition gets `records: Some(empty)`, never null (librdkafka logs "invalid
//!   MessageSetSize -1" on null).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use sluice_protocol::batch::Batches;
use sluice_protocol::error::ErrorCode;
use tokio::time::Instant;

use super::{check_leader_epoch, count_error, count_topic, Purgatory, RemoteTime};
use crate::metrics as m;
use crate::replica::fetcher::BROKER_EPOCH_TAG;
use crate::replica::offsets;
use crate::replication::{FollowerFetch, FollowerFetchDecision, BROKER_EPOCH_UNKNOWN};
use crate::server::{storage_error_code, Broker};
use crate::storage::StorageError;
use sluice_protocol::clock::now_ms;

/// Who is fetching.
#[derive(Debug, Clone, Copy)]
enum Fetcher {
    Consumer,
    Follower { replica_id: i32, broker_epoch: i64 },
}

/// Answer a Fetch request; time spent long-polling is added to `remote`.
pub async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    remote: &mut RemoteTime,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    if version >= 7 && request.session_id != 0 {
        response.error_code = count_error("Fetch", ErrorCode::FetchSessionIdNotFound);
        return response;
    }
    if broker.per_topic_metrics {
        // Topics that exist only: a name made up by a client must not create a series.
        for topic in &request.topics {
            if broker.topic(&topic.topic.0).is_some() {
                count_topic(broker, m::TOPIC_FETCH_REQUESTS_TOTAL, &topic.topic.0, 1);
            }
        }
    }
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let fetcher = if request.replica_id.0 >= 0 {
        let broker_epoch = request
            .unknown_tagged_fields
            .get(&BROKER_EPOCH_TAG)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map_or(BROKER_EPOCH_UNKNOWN, i64::from_be_bytes);
        Fetcher::Follower {
            replica_id: request.replica_id.0,
            broker_epoch,
        }
    } else {
        Fetcher::Consumer
    };
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(broker.limits.fetch_bytes_max);

    loop {
        // Subscribe before reading so an append between the read and the wait wakes us.
        let watches = subscribe(broker, &request);
        let (built, bytes, any_error) = read_once(broker, &request, fetcher, max_bytes, version);
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline || watches.is_empty() {
            count_bytes_out(broker, fetcher, &built, bytes);
            return built;
        }
        let changed = tokio::time::timeout_at(deadline, select_all(watches));
        if remote.park(Purgatory::Fetch, changed).await.is_err() {
            // Deadline: answer with whatever is there now.
            let (built, bytes, _) = read_once(broker, &request, fetcher, max_bytes, version);
            count_bytes_out(broker, fetcher, &built, bytes);
            return built;
        }
    }
}

/// Record bytes sent, in total, by who fetched them (consumers or followers) and, for
/// consumers, by topic.
fn count_bytes_out(broker: &Broker, fetcher: Fetcher, response: &FetchResponse, bytes: usize) {
    metrics::counter!(m::BYTES_OUT_TOTAL).increment(bytes as u64);
    let from = match fetcher {
        Fetcher::Consumer => {
            for topic in &response.responses {
                let topic_bytes: usize = topic
                    .partitions
                    .iter()
                    .filter_map(|p| p.records.as_ref().map(Bytes::len))
                    .sum();
                // Only topics that sent something: a consumer naming a topic that does
                // not exist must not create a series.
                if topic_bytes > 0 {
                    count_topic(
                        broker,
                        m::TOPIC_BYTES_OUT_TOTAL,
                        &topic.topic.0,
                        topic_bytes as u64,
                    );
                }
            }
            "consumer"
        }
        Fetcher::Follower { .. } => "follower",
    };
    metrics::counter!(m::FETCH_BYTES_OUT_TOTAL, "fetcher" => from).increment(bytes as u64);
    metrics::counter!(m::FETCH_RESPONSES_TOTAL, "fetcher" => from).increment(1);
}

/// One armed "visible end changed" future per requested partition that exists.
fn subscribe(
    broker: &Broker,
    request: &FetchRequest,
) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
    let mut watches: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            if let Some(replica) = broker.replicas.replica(&topic.topic.0, partition.partition) {
                watches.push(Box::pin(replica.log.durable_end_changed()));
                let mut changes = replica.subscribe();
                watches.push(Box::pin(async move {
                    let _ = changes.changed().await;
                }));
            }
        }
    }
    watches
}

/// One pass over the requested partitions: the response, its record bytes, and whether
/// any partition got an error (which answers at once rather than long-polling).
fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    fetcher: Fetcher,
    max_bytes: usize,
    version: i16,
) -> (FetchResponse, usize, bool) {
    let mut response = FetchResponse::default();
    let mut total = 0usize;
    let mut any_error = false;
    let client_rack: &str = if version >= 11 { &request.rack_id } else { "" };
    for topic in &request.topics {
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for partition in &topic.partitions {
            let mut p = PartitionData::default();
            p.partition_index = partition.partition;
            p.records = Some(Bytes::new());
            p.high_watermark = -1;
            let partition_max = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
            // The first bytes of a response may exceed the limits by one batch.
            let budget = if total == 0 {
                partition_max.min(max_bytes).max(1)
            } else {
                partition_max.min(max_bytes.saturating_sub(total))
            };
            let outcome = match fetcher {
                Fetcher::Consumer => read_for_consumer(
                    broker,
                    &topic.topic.0,
                    partition,
                    client_rack,
                    budget,
                    &mut p,
                ),
                Fetcher::Follower {
                    replica_id,
                    broker_epoch,
                } => read_for_follower(
                    broker,
                    &topic.topic.0,
                    partition,
                    replica_id,
                    broker_epoch,
                    budget,
                    &mut p,
                ),
            };
            match outcome {
                Ok(records) => {
                    total += records.len();
                    p.records = Some(records);
                    // A redirect to a preferred read replica is answered at once, like an
                    // error: waiting here would only delay the consumer's move.
                    any_error |= p.preferred_read_replica.0 >= 0;
                }
                Err(code) => {
                    p.error_code = count_error("Fetch", code);
                    any_error = true;
                }
            }
            if version < 5 {
                p.log_start_offset = -1;
            }
            topic_response.partitions.push(p);
        }
        response.responses.push(topic_response);
    }
    (response, total, any_error)
}

fn read_for_consumer(
    broker: &Broker,
    topic: &str,
    partition: &kafka_protocol::messages::fetch_request::FetchPartition,
    client_rack: &str,
    budget: usize,
    p: &mut PartitionData,
) -> Result<Bytes, ErrorCode> {
    let Some(replica) = broker.replicas.replica(topic, partition.partition) else {
        // Not hosted here: the error leader_replica gives (unknown topic or not leader).
        return broker
            .leader_replica(topic, partition.partition)
            .map(|_| Bytes::new());
    };
    let (is_leader, leader_epoch, preferred) = {
        let state = replica.lock();
        let preferred = if state.is_leader() && !client_rack.is_empty() {
            preferred_read_replica(broker, &state, client_rack)
        } else {
            None
        };
        (state.is_leader(), state.leader_epoch(), preferred)
    };
    if !is_leader && !serves_consumers_as_follower(broker, &replica) {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    check_leader_epoch(partition.current_leader_epoch, leader_epoch)?;
    let log = &replica.log;
    let visible_end = replica.visible_end();
    p.high_watermark = visible_end;
    p.last_stable_offset = visible_end;
    p.log_start_offset = log.log_start_offset();
    if let Some(preferred) = preferred {
        // KIP-392: point the consumer at the in-sync replica in its rack, send no records.
        p.preferred_read_replica = BrokerId(preferred);
        return Ok(Bytes::new());
    }
    if budget == 0 {
        return Ok(Bytes::new());
    }
    if !is_leader && partition.fetch_offset > log.log_end_offset() {
        return Err(ErrorCode::OffsetOutOfRange);
    }
    read_partition(log, partition.fetch_offset, budget, visible_end)
        .map_err(|e| storage_error_code(&e))
}

/// On the leader: the in-sync replica a consumer in `client_rack` should read from, if it
/// is not this broker (Kafka's `RackAwareReplicaSelector`): none when the leader itself is
/// in that rack or no in-sync replica is.
fn preferred_read_replica(
    broker: &Broker,
    state: &crate::replication::Partition,
    client_rack: &str,
) -> Option<i32> {
    let local = broker.identity.node_id;
    let isr = state.isr()?;
    broker.replicas.metadata().read(|metadata| {
        let in_rack = |id: i32| {
            metadata
                .broker(id)
                .and_then(|b| b.rack.as_deref())
                .is_some_and(|rack| rack == client_rack)
        };
        if in_rack(local) {
            return None;
        }
        state
            .replicas()
            .iter()
            .copied()
            .filter(|id| *id != local && isr.committed_isr().contains(id))
            .find(|id| in_rack(*id))
    })
}

/// A follower serves consumers (KIP-392) only while the metadata has it in the ISR: once it
/// falls out, consumers get NOT_LEADER_OR_FOLLOWER and go back to the leader.
fn serves_consumers_as_follower(broker: &Broker, replica: &crate::replica::Replica) -> bool {
    let local = broker.identity.node_id;
    broker.replicas.metadata().read(|metadata| {
        metadata
            .partition(&replica.topic_id, replica.index)
            .is_some_and(|p| {
                p.leader.is_some() && p.leader != Some(local) && p.isr.contains(&local)
            })
    })
}

fn read_for_follower(
    broker: &Broker,
    topic: &str,
    partition: &kafka_protocol::messages::fetch_request::FetchPartition,
    replica_id: i32,
    broker_epoch: i64,
    budget: usize,
    p: &mut PartitionData,
) -> Result<Bytes, ErrorCode> {
    let Some(replica) = broker.replicas.replica(topic, partition.partition) else {
        return Err(match broker.topic(topic) {
            Some(_) => ErrorCode::NotLeaderOrFollower,
            None => ErrorCode::UnknownTopicOrPartition,
        });
    };
    let fetch = FollowerFetch {
        replica_id,
        broker_epoch,
        current_leader_epoch: (partition.current_leader_epoch >= 0)
            .then_some(partition.current_leader_epoch),
        fetch_offset: partition.fetch_offset,
        last_fetched_epoch: (partition.last_fetched_epoch >= 0)
            .then_some(partition.last_fetched_epoch),
        log_start_offset: partition.log_start_offset,
    };
    let liveness = broker.replicas.liveness(replica_id);
    let log = &replica.log;
    let decision = {
        let mut state = replica.lock();
        let decision = state.on_follower_fetch(&fetch, offsets(log), &**log, liveness, now_ms());
        if let FollowerFetchDecision::Read { effects, .. } = &decision {
            if let Err(error) =
                replica.apply_effects(&mut state, effects.clone(), &broker.replicas.sink())
            {
                tracing::warn!(partition = log.name(), %error, "follower fetch effects failed");
            }
        }
        decision
    };
    p.log_start_offset = log.log_start_offset();
    match decision {
        FollowerFetchDecision::Read {
            from,
            high_watermark,
            ..
        } => {
            p.high_watermark = high_watermark;
            p.last_stable_offset = high_watermark;
            if budget == 0 || from >= log.log_end_offset() {
                return Ok(Bytes::new());
            }
            // A replica a reassignment is adding copies at the throttled rate.
            let throttle = broker.reassignment_throttle.as_ref().filter(|_| {
                broker.replicas.metadata().read(|state| {
                    state
                        .partition(&replica.topic_id, replica.index)
                        .is_some_and(|p| p.adding_replicas.contains(&replica_id))
                })
            });
            let budget = match throttle {
                Some(rate) => budget.min(rate.available()),
                None => budget,
            };
            if budget == 0 {
                metrics::counter!(m::REASSIGNMENT_THROTTLED_TOTAL).increment(1);
                return Ok(Bytes::new());
            }
            let records = log.read(from, budget).map_err(|e| storage_error_code(&e))?;
            if let Some(rate) = throttle {
                rate.consume(records.len());
            }
            Ok(records)
        }
        FollowerFetchDecision::Diverging(end) => {
            p.high_watermark = replica.high_watermark();
            p.diverging_epoch.epoch = end.epoch;
            p.diverging_epoch.end_offset = end.end_offset;
            tracing::info!(
                partition = log.name(),
                follower = replica_id,
                fetch_offset = fetch.fetch_offset,
                last_fetched_epoch = ?fetch.last_fetched_epoch,
                diverging_epoch = end.epoch,
                diverging_end_offset = end.end_offset,
                "follower diverges; answering with its divergence point"
            );
            Ok(Bytes::new())
        }
        FollowerFetchDecision::Refused(refusal) => {
            tracing::debug!(partition = log.name(), follower = replica_id, %refusal, "follower fetch refused");
            Err(refusal.error_code())
        }
    }
}

/// Whole batches from `offset`, at most `budget` bytes (or one batch), none at or above the
/// high watermark.
fn read_partition(
    log: &crate::storage::PartitionLog,
    offset: i64,
    budget: usize,
    high_watermark: i64,
) -> Result<Bytes, StorageError> {
    if offset > high_watermark {
        // Beyond what consumers may see: Kafka answers OFFSET_OUT_OF_RANGE past the log
        // end, and nothing (yet) between the high watermark and the log end.
        if offset > log.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
            });
        }
        return Ok(Bytes::new());
    }
    if offset == high_watermark {
        return Ok(Bytes::new());
    }
    let data = log.read(offset, budget)?;
    // Trim batches at or above the high watermark (only possible with fsync durability).
    let mut visible = 0;
    for (header, batch) in Batches::new(&data).flatten() {
        if header.last_offset() >= high_watermark {
            break;
        }
        visible += batch.len();
    }
    Ok(data.slice(..visible))
}
