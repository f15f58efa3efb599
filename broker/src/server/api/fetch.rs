//! Fetch: decode, read through the replica manager
//! ([`ReplicaManager::fetch_records`](crate::replica::ReplicaManager::fetch_records): consumer
//! and follower reads, the long poll, follower reads by rack, the reassignment throttle),
//! encode.
//!
//! - A fetch with a replica id >= 0 is a follower's (v15+: in `replica_state`, with its broker
//!   epoch); before v15 its broker epoch comes in the tagged field
//!   [`BROKER_EPOCH_TAG`](crate::replica::fetcher::BROKER_EPOCH_TAG). Otherwise a
//!   consumer's, with its rack (v11+) for KIP-392.
//! - From v13 topics are named by id (KIP-516): an id the metadata does not have is
//!   UNKNOWN_TOPIC_ID for each of its partitions.
//! - `max_bytes` is capped by the broker's `fetch_bytes_max`.
//! - Incremental fetch sessions (KIP-227, v7+): [`FetchSessionCache`] decides how a
//!   request is served (sessionless, full, incremental, or a session error); an
//!   incremental fetch reads every partition of its session and answers only those with
//!   something new. Partitions are answered in fetch order, consecutive partitions of one
//!   topic under one topic entry, as Kafka does.
//! - An empty partition gets `records: Some(empty)`, never null (librdkafka logs "invalid
//!   MessageSetSize -1" on null).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use sluice_protocol::error::ErrorCode;

use super::{count_error, count_topic, RemoteTime};
use crate::fetch_session::{
    FetchContext, Incremental, PartitionKey, PartitionParams, ReadSummary, SessionRequest,
    TopicKey, FINAL_EPOCH, INVALID_SESSION_ID,
};
use crate::metrics as m;
use crate::replica::fetcher::BROKER_EPOCH_TAG;
use crate::replica::{FetchOrigin, FetchParams, PartitionFetch, PartitionRead};
use crate::replication::BROKER_EPOCH_UNKNOWN;
use crate::server::request_memory::QueuedBytes;
use crate::server::Broker;

/// One partition to read: as the fetcher names it, its topic's name in the metadata
/// (`None` for a topic id the metadata does not have), what the fetcher asks, and the
/// error it gets without a read when the metadata has no such partition.
struct Wanted {
    key: PartitionKey,
    name: Option<String>,
    params: PartitionParams,
    unknown: Option<ErrorCode>,
}

/// Answer a Fetch request; time spent long-polling is added to `remote`. The bytes of a
/// consumer's records are held (from the broker's request memory) by the grant returned
/// with the response until it has been written.
pub async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    remote: &mut RemoteTime,
) -> (FetchResponse, Option<QueuedBytes>) {
    let params = fetch_params(broker, &request, version);
    let session = session_request(&request, version, &params.origin);
    let sessions = &broker.fetch_sessions;
    let requested = requested(&request, version);
    let forgotten = forgotten(&request, version);
    let context = sessions.context(session, &requested, &forgotten, sessions.now_ms());
    metrics::counter!(m::FETCH_SESSION_REQUESTS_TOTAL, "session" => context_kind(&context))
        .increment(1);
    let mut response = FetchResponse::default();
    let mut held = None;
    match context {
        FetchContext::Error(code) => response.error_code = count_error("Fetch", code),
        FetchContext::Sessionless | FetchContext::Full => {
            let wanted = resolve(broker, requested, &params.origin);
            let (answers, grant) = read(broker, &params, &wanted, remote).await;
            held = grant;
            if matches!(context, FetchContext::Full) {
                let answered = wanted
                    .iter()
                    .zip(&answers)
                    .map(|(w, p)| (w.key.clone(), w.params, summary(p)))
                    .collect();
                response.session_id = sessions.create(session, answered, sessions.now_ms());
            }
            response.responses = assemble(&wanted, answers, version);
        }
        FetchContext::Incremental(incremental) => {
            (response, held) =
                incremental_response(broker, &params, incremental, version, remote).await;
        }
    }
    count_bytes_out(broker, &params.origin, &response);
    (response, held)
}

/// The request's limits and who sent it; `max_bytes` capped by the broker's.
fn fetch_params(broker: &Broker, request: &FetchRequest, version: i16) -> FetchParams {
    FetchParams {
        origin: origin(request, version),
        max_bytes: usize::try_from(request.max_bytes)
            .unwrap_or(0)
            .min(broker.limits.fetch_bytes_max),
        min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
    }
}

/// The request's session part; before v7 every fetch is sessionless.
fn session_request(request: &FetchRequest, version: i16, origin: &FetchOrigin) -> SessionRequest {
    let (session_id, epoch) = if version >= 7 {
        (request.session_id, request.session_epoch)
    } else {
        (INVALID_SESSION_ID, FINAL_EPOCH)
    };
    SessionRequest {
        session_id,
        epoch,
        uses_topic_ids: version >= 13,
        from_follower: !origin.is_consumer(),
    }
}

/// Read every partition of the session; answer those with something new.
async fn incremental_response(
    broker: &Broker,
    params: &FetchParams,
    incremental: Incremental,
    version: i16,
    remote: &mut RemoteTime,
) -> (FetchResponse, Option<QueuedBytes>) {
    let wanted = resolve(broker, incremental.partitions.clone(), &params.origin);
    let (answers, held) = read(broker, params, &wanted, remote).await;
    let answered: Vec<_> = wanted
        .iter()
        .zip(&answers)
        .map(|(w, p)| (w.key.clone(), summary(p)))
        .collect();
    let mut response = FetchResponse::default();
    response.session_id = incremental.session_id;
    match incremental.select(&answered) {
        Ok(keep) => {
            let (wanted, answers): (Vec<_>, Vec<_>) = wanted
                .into_iter()
                .zip(answers)
                .zip(keep)
                .filter_map(|(pair, keep)| keep.then_some(pair))
                .unzip();
            response.responses = assemble(&wanted, answers, version);
        }
        Err(code) => response.error_code = count_error("Fetch", code),
    }
    (response, held)
}

fn context_kind(context: &FetchContext) -> &'static str {
    match context {
        FetchContext::Sessionless => "sessionless",
        FetchContext::Full => "full",
        FetchContext::Incremental(_) => "incremental",
        FetchContext::Error(_) => "error",
    }
}

/// A topic as a request at `version` names it: by id from v13 (KIP-516), by name before.
fn topic_key(version: i16, id: uuid::Uuid, name: &TopicName) -> TopicKey {
    if version >= 13 {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.0.to_string())
    }
}

/// The request's partitions, named by topic id from v13 (KIP-516), by name before.
fn requested(request: &FetchRequest, version: i16) -> Vec<(PartitionKey, PartitionParams)> {
    request
        .topics
        .iter()
        .flat_map(|topic| {
            let key = topic_key(version, topic.topic_id, &topic.topic);
            topic.partitions.iter().map(move |p| {
                let params = PartitionParams {
                    fetch_offset: p.fetch_offset,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                    log_start_offset: p.log_start_offset,
                    max_bytes: p.partition_max_bytes,
                };
                (
                    PartitionKey {
                        topic: key.clone(),
                        partition: p.partition,
                    },
                    params,
                )
            })
        })
        .collect()
}

/// The partitions an incremental request takes out of its session (v7+).
fn forgotten(request: &FetchRequest, version: i16) -> Vec<PartitionKey> {
    request
        .forgotten_topics_data
        .iter()
        .flat_map(|topic| {
            let key = topic_key(version, topic.topic_id, &topic.topic);
            topic.partitions.iter().map(move |&partition| PartitionKey {
                topic: key.clone(),
                partition,
            })
        })
        .collect()
}

/// Each partition with its topic's name, looked up in the metadata for topic ids, in the
/// order Kafka answers them: partitions the metadata has first, then those it does not
/// (for a consumer: unknown topic ids, then unknown names or partitions; for a follower
/// both in one group), each group in fetch order.
fn resolve(
    broker: &Broker,
    partitions: Vec<(PartitionKey, PartitionParams)>,
    origin: &FetchOrigin,
) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = broker.replicas.metadata().read(|state| {
        partitions
            .into_iter()
            .map(|(key, params)| {
                let topic = match &key.topic {
                    TopicKey::Name(name) => state.topic_by_name(name),
                    TopicKey::Id(id) => state.topic(id),
                };
                let name = match &key.topic {
                    TopicKey::Name(name) => Some(name.clone()),
                    TopicKey::Id(_) => topic.map(|t| t.name.clone()),
                };
                let unknown = match topic {
                    None if name.is_none() => Some(ErrorCode::UnknownTopicId),
                    Some(t)
                        if usize::try_from(key.partition).is_ok_and(|p| p < t.partitions.len()) =>
                    {
                        None
                    }
                    _ => Some(ErrorCode::UnknownTopicOrPartition),
                };
                Wanted {
                    key,
                    name,
                    params,
                    unknown,
                }
            })
            .collect()
    });
    let consumer = origin.is_consumer();
    wanted.sort_by_key(|w| match w.unknown {
        None => 0,
        Some(ErrorCode::UnknownTopicId) => 1,
        Some(_) if consumer => 2,
        Some(_) => 1,
    });
    wanted
}

/// Read every wanted partition the metadata has (the long poll included) and answer each
/// wanted partition, in order, with the grant holding a consumer's record bytes.
async fn read(
    broker: &Broker,
    params: &FetchParams,
    wanted: &[Wanted],
    remote: &mut RemoteTime,
) -> (Vec<PartitionData>, Option<QueuedBytes>) {
    count_topic_requests(broker, wanted);
    let partitions: Vec<PartitionFetch> = wanted
        .iter()
        .filter(|w| w.unknown.is_none())
        .map(|w| PartitionFetch {
            topic: w.name.clone().unwrap_or_default(),
            partition: w.key.partition,
            fetch_offset: w.params.fetch_offset,
            current_leader_epoch: w.params.current_leader_epoch,
            last_fetched_epoch: w.params.last_fetched_epoch,
            log_start_offset: w.params.log_start_offset,
            max_bytes: usize::try_from(w.params.max_bytes).unwrap_or(0),
        })
        .collect();
    let (reads, _, held) = broker
        .replicas
        .fetch_records(params, &partitions, remote, &broker.request_memory)
        .await;
    let mut reads = reads.into_iter();
    let consumer = params.origin.is_consumer();
    let answers = wanted
        .iter()
        .map(|w| match w.unknown {
            Some(error) => answer(
                w.key.partition,
                PartitionRead {
                    error,
                    ..PartitionRead::default()
                },
                true,
            ),
            None => answer(
                w.key.partition,
                reads.next().expect("one read per known partition"),
                consumer,
            ),
        })
        .collect();
    (answers, held)
}

/// One partition's answer; `unknown_offsets` answers a failed partition with every offset
/// -1 (Kafka does so for consumers; a follower keeps the leader's log start, where it
/// restarts its log).
fn answer(partition: i32, read: PartitionRead, unknown_offsets: bool) -> PartitionData {
    let mut p = PartitionData::default();
    p.partition_index = partition;
    p.error_code = count_error("Fetch", read.error);
    p.records = Some(read.records);
    p.high_watermark = read.high_watermark;
    p.last_stable_offset = read.last_stable_offset;
    p.log_start_offset = read.log_start_offset;
    if read.error != ErrorCode::None && unknown_offsets {
        p.high_watermark = -1;
        p.last_stable_offset = -1;
        p.log_start_offset = -1;
    }
    p.preferred_read_replica = BrokerId(read.preferred_read_replica);
    if let Some((epoch, end_offset)) = read.diverging_epoch {
        p.diverging_epoch.epoch = epoch;
        p.diverging_epoch.end_offset = end_offset;
    }
    p
}

/// What a session needs to know of one answer.
fn summary(p: &PartitionData) -> ReadSummary {
    ReadSummary {
        record_bytes: p.records.as_ref().map_or(0, Bytes::len),
        high_watermark: p.high_watermark,
        log_start_offset: p.log_start_offset,
        preferred_read_replica: p.preferred_read_replica.0,
        has_error: p.error_code != 0,
        has_diverging_epoch: p.diverging_epoch.epoch != -1,
    }
}

/// The answers under their topics: consecutive partitions of one topic share an entry.
fn assemble(
    wanted: &[Wanted],
    answers: Vec<PartitionData>,
    version: i16,
) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut last: Option<&TopicKey> = None;
    for (w, mut p) in wanted.iter().zip(answers) {
        if version < 5 {
            p.log_start_offset = -1;
        }
        if last != Some(&w.key.topic) {
            let mut topic = FetchableTopicResponse::default();
            // The name is sent before v13 only, and also labels the bytes-out metric.
            topic.topic = TopicName(w.name.clone().unwrap_or_default().into());
            if let TopicKey::Id(id) = &w.key.topic {
                topic.topic_id = *id;
            }
            topics.push(topic);
            last = Some(&w.key.topic);
        }
        topics.last_mut().expect("pushed above").partitions.push(p);
    }
    topics
}

/// Fetch requests per topic read (`--metrics-per-partition` only).
fn count_topic_requests(broker: &Broker, wanted: &[Wanted]) {
    if !broker.replicas.per_partition_metrics() {
        return;
    }
    let mut last: Option<&str> = None;
    for name in wanted.iter().filter_map(|w| w.name.as_deref()) {
        // Topics that exist only: a name made up by a client must not create a series.
        if last != Some(name) && broker.topic(name).is_some() {
            count_topic(broker, m::TOPIC_FETCH_REQUESTS_TOTAL, name, 1);
        }
        last = Some(name);
    }
}

/// Who sent the fetch.
fn origin(request: &FetchRequest, version: i16) -> FetchOrigin {
    // v15+ carries the follower in `replica_state` (KIP-903), with its broker epoch.
    let (replica_id, epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            Some(request.replica_state.replica_epoch),
        )
    } else {
        (request.replica_id.0, None)
    };
    if replica_id >= 0 {
        let broker_epoch = epoch.filter(|e| *e >= 0).unwrap_or_else(|| {
            request
                .unknown_tagged_fields
                .get(&BROKER_EPOCH_TAG)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
                .map_or(BROKER_EPOCH_UNKNOWN, i64::from_be_bytes)
        });
        FetchOrigin::Follower {
            replica_id,
            broker_epoch,
        }
    } else {
        let rack = if version >= 11 {
            request.rack_id.to_string()
        } else {
            String::new()
        };
        FetchOrigin::Consumer { rack }
    }
}

/// Record bytes sent, in total, by who fetched them (consumers or followers) and, for
/// consumers, by topic.
fn count_bytes_out(broker: &Broker, origin: &FetchOrigin, response: &FetchResponse) {
    let bytes: usize = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref().map(Bytes::len))
        .sum();
    metrics::counter!(m::BYTES_OUT_TOTAL).increment(bytes as u64);
    let from = match origin {
        FetchOrigin::Consumer { .. } => {
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
        FetchOrigin::Follower { .. } => "follower",
    };
    metrics::counter!(m::FETCH_BYTES_OUT_TOTAL, "fetcher" => from).increment(bytes as u64);
    metrics::counter!(m::FETCH_RESPONSES_TOTAL, "fetcher" => from).increment(1);
}
