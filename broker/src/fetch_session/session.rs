//! One fetch session: the partitions a fetcher reads, in the order the next fetch visits
//! them, each with the request parameters it last sent and the answer it last got.
//!
//! Invariants:
//! - `order` and `partitions` hold the same keys; a partition's sequence number in
//!   `partitions` is its key in `order`.
//! - `epoch` is the epoch the fetcher's next incremental request must carry.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

/// The epoch after `epoch`, as Kafka's `FetchMetadata.nextEpoch`: the final epoch stays
/// final, and the epoch after `i32::MAX` is 1 (0 only ever starts a session).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        super::FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// A topic as a session names it: by id from Fetch v13 (KIP-516), by name before.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(String),
}

/// One partition of a session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What a fetcher asks of one partition: sent in full in a full fetch, and in an
/// incremental one only when it changed (the session remembers the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionParams {
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// The fetcher's own log start (followers); -1 from consumers.
    pub log_start_offset: i64,
    pub max_bytes: i32,
}

/// What decides whether an incremental answer must carry a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSummary {
    pub record_bytes: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// -1 when the leader serves the fetcher itself (KIP-392).
    pub preferred_read_replica: i32,
    pub has_error: bool,
    pub has_diverging_epoch: bool,
}

/// A session's copy of one partition.
#[derive(Clone, Debug)]
struct Cached {
    seq: u64,
    params: PartitionParams,
    /// The high watermark last sent (-1 after an error, so the partition is sent again
    /// once the error clears).
    high_watermark: i64,
    /// The leader's log start last sent.
    log_start_offset: i64,
}

impl Cached {
    /// Whether the fetcher must hear about this answer, and remember what it is told.
    fn must_respond(&mut self, read: &ReadSummary) -> bool {
        let mut must = read.record_bytes > 0
            || read.preferred_read_replica >= 0
            || read.has_error
            || read.has_diverging_epoch;
        if self.high_watermark != read.high_watermark {
            must = true;
            self.high_watermark = read.high_watermark;
        }
        if self.log_start_offset != read.log_start_offset {
            must = true;
            self.log_start_offset = read.log_start_offset;
        }
        if read.has_error {
            self.high_watermark = -1;
        }
        must
    }
}

/// One incremental fetch session.
#[derive(Debug)]
pub struct Session {
    pub id: i32,
    /// Created by a follower: evicted only by another follower's session or staleness.
    pub privileged: bool,
    /// Created at Fetch v13+: topics are named by id and must stay so.
    pub uses_topic_ids: bool,
    pub created_ms: u64,
    pub last_used_ms: u64,
    pub epoch: i32,
    order: BTreeMap<u64, PartitionKey>,
    partitions: HashMap<PartitionKey, Cached>,
    next_seq: u64,
}

impl Session {
    /// A session holding the partitions of a full fetch with the answers they got, in
    /// the request's order.
    pub fn new(
        id: i32,
        privileged: bool,
        uses_topic_ids: bool,
        now_ms: u64,
        answered: Vec<(PartitionKey, PartitionParams, ReadSummary)>,
    ) -> Session {
        let mut session = Session {
            id,
            privileged,
            uses_topic_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            epoch: next_epoch(super::INITIAL_EPOCH),
            order: BTreeMap::new(),
            partitions: HashMap::new(),
            next_seq: 0,
        };
        for (key, params, read) in answered {
            let high_watermark = if read.has_error {
                -1
            } else {
                read.high_watermark
            };
            session.insert(key, params, high_watermark, read.log_start_offset);
        }
        session
    }

    /// Partitions in the session.
    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Apply an incremental request: partitions it names are added or take its
    /// parameters, forgotten ones leave.
    pub fn update(
        &mut self,
        requested: &[(PartitionKey, PartitionParams)],
        forgotten: &[PartitionKey],
    ) {
        for (key, params) in requested {
            match self.partitions.get_mut(key) {
                Some(cached) => cached.params = *params,
                None => self.insert(key.clone(), *params, -1, -1),
            }
        }
        for key in forgotten {
            if let Some(cached) = self.partitions.remove(key) {
                self.order.remove(&cached.seq);
            }
        }
    }

    /// Every partition with the parameters to fetch it with, in the session's order.
    pub fn partitions(&self) -> Vec<(PartitionKey, PartitionParams)> {
        self.order
            .values()
            .map(|key| (key.clone(), self.partitions[key].params))
            .collect()
    }

    /// Which of `answered` (the partitions [`Session::partitions`] gave, with their
    /// answers) the incremental response carries. A partition that returned records
    /// moves to the end of the order, so the next fetch serves the others first when the
    /// response size limit cuts it short.
    pub fn select(&mut self, answered: &[(PartitionKey, ReadSummary)]) -> Vec<bool> {
        answered
            .iter()
            .map(|(key, read)| {
                let Some(cached) = self.partitions.get_mut(key) else {
                    return false;
                };
                let must = cached.must_respond(read);
                if must && read.record_bytes > 0 {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.order.remove(&cached.seq);
                    cached.seq = seq;
                    self.order.insert(seq, key.clone());
                }
                must
            })
            .collect()
    }

    fn insert(
        &mut self,
        key: PartitionKey,
        params: PartitionParams,
        high_watermark: i64,
        log_start_offset: i64,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.partitions.insert(
            key,
            Cached {
                seq,
                params,
                high_watermark,
                log_start_offset,
            },
        );
    }
}
