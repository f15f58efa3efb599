//! Answering ListOffsets: [`ReplicaManager::list_offset`], Kafka's
//! `Partition.fetchOffsetForTimestamp`: one partition's earliest offset (-2), latest offset
//! (-1), or first offset at or after a timestamp (>= 0).
//!
//! Who asks decides which replica answers and what "latest" means:
//! - a consumer (replica id -1, and any id but -2) is answered by the partition leader
//!   only (NOT_LEADER_OR_FOLLOWER elsewhere); latest is the high watermark and timestamp
//!   lookups stop below it;
//! - the debugging replica id (-2, Kafka's `DEBUGGING_REPLICA_ID`, which tools use to read
//!   one replica's log) is answered by any replica, leader or follower, from its local log
//!   without a leader check; latest is that replica's log end offset and timestamp lookups
//!   stop below it, as Kafka answers it (no isolation for a non-consumer replica id). Kafka
//!   also answers broker replica ids (>= 0) with the log end offset; no Sluice broker sends
//!   ListOffsets, so those keep the consumer's answer.
//!
//! The checks come in this order, and the first that fails is the answer: the answering
//! replica (above; UNKNOWN_TOPIC_OR_PARTITION for a partition the metadata does not have),
//! then the client's `current_leader_epoch` against that replica's (KIP-320:
//! FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), then the target. Once a replica answers,
//! its leader epoch is in the answer, errors included.
//!
//! Max-timestamp lookups (-3, KIP-734) are not supported yet and get UNSUPPORTED_VERSION for
//! that partition, as does any other negative target.

use std::sync::Arc;

use sluice_protocol::api::DEBUGGING_REPLICA_ID;
use sluice_protocol::error::ErrorCode;

use super::purgatory::check_leader_epoch;
use super::{storage_error_code, Replica, ReplicaManager};

/// ListOffsets target: the latest offset (the high watermark, or the log end offset for the
/// debugging replica id).
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets target: the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Who asks, from the request's replica id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetOrigin {
    /// A consumer (replica id -1, and any id but -2): the leader answers, below the high
    /// watermark.
    Consumer,
    /// Kafka's debugging replica id (-2): any replica hosted here answers from its whole
    /// local log.
    Debugging,
}

impl OffsetOrigin {
    /// From the request's replica id (see the module docs for why ids >= 0 are consumers).
    pub fn from_replica_id(replica_id: i32) -> OffsetOrigin {
        if replica_id == DEBUGGING_REPLICA_ID {
            OffsetOrigin::Debugging
        } else {
            OffsetOrigin::Consumer
        }
    }
}

/// One partition of a ListOffsets request, as the request gives it.
#[derive(Debug, Clone)]
pub struct OffsetQuery<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub origin: OffsetOrigin,
    /// The client's idea of the leader epoch; -1 (not given, and always below v4) skips the
    /// check.
    pub current_leader_epoch: i32,
    /// [`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`], or a timestamp in ms (>= 0).
    pub timestamp: i64,
}

/// One partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    pub error: ErrorCode,
    /// -1: none (an error, or no record at or after the timestamp below the end).
    pub offset: i64,
    /// The timestamp of the batch found by a timestamp lookup; -1 otherwise.
    pub timestamp: i64,
    /// The answering replica's leader epoch; -1 when no replica answered.
    pub leader_epoch: i32,
}

impl Default for OffsetAnswer {
    fn default() -> OffsetAnswer {
        OffsetAnswer {
            error: ErrorCode::None,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        }
    }
}

impl ReplicaManager {
    /// Answer one partition of a ListOffsets request (see the module docs). Never awaits.
    pub fn list_offset(&self, query: &OffsetQuery<'_>) -> OffsetAnswer {
        let replica = match self.answering_replica(query) {
            Ok(replica) => replica,
            Err(error) => {
                return OffsetAnswer {
                    error,
                    ..OffsetAnswer::default()
                }
            }
        };
        let mut answer = OffsetAnswer {
            leader_epoch: replica.lock().leader_epoch(),
            ..OffsetAnswer::default()
        };
        if let Err(error) = check_leader_epoch(query.current_leader_epoch, answer.leader_epoch) {
            answer.error = error;
            return answer;
        }
        let log = &replica.log;
        // Consumers see the log below the high watermark; a debugging tool all of it.
        let end = match query.origin {
            OffsetOrigin::Consumer => replica.visible_end(),
            OffsetOrigin::Debugging => log.log_end_offset(),
        };
        match query.timestamp {
            LATEST_TIMESTAMP => answer.offset = end,
            EARLIEST_TIMESTAMP => answer.offset = log.log_start_offset(),
            timestamp if timestamp >= 0 => match log.offset_for_timestamp(timestamp) {
                Ok(Some(found)) if found.offset < end => {
                    answer.offset = found.offset;
                    answer.timestamp = found.timestamp;
                    answer.leader_epoch = found.leader_epoch;
                }
                // No record at or after it: offset and epoch unknown (-1), as on Kafka.
                Ok(_) => answer.leader_epoch = -1,
                Err(e) => answer.error = storage_error_code(&e),
            },
            _ => answer.error = ErrorCode::UnsupportedVersion,
        }
        answer
    }

    /// The replica that answers for a partition: any hosted replica for the debugging
    /// replica id, the leader for everyone else; or the error to answer with.
    pub(super) fn answering_replica(
        &self,
        query: &OffsetQuery<'_>,
    ) -> Result<Arc<Replica>, ErrorCode> {
        if query.origin == OffsetOrigin::Consumer {
            return self.leader_replica(query.topic, query.partition);
        }
        match self.replica(query.topic, query.partition) {
            Some(replica) => Ok(replica),
            // Not hosted here: what a leader lookup says (not the leader, or no such partition).
            None => self.leader_replica(query.topic, query.partition),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sluice_protocol::batch::Compression;
    use sluice_protocol::clock::now_ms;
    use sluice_protocol::records::{encode_batch, Record};

    use super::*;
    use crate::replica::{Acks, AppendOrigin, AppendRequest};
    use crate::server::testing::{self, TestBroker};

    const TOPIC: &str = "offsets";

    /// A single-node broker with `TOPIC` (one partition) holding two records per timestamp,
    /// one batch each, all acknowledged by the (single-replica) ISR.
    async fn broker_with_batches(dir: &std::path::Path, timestamps: &[i64]) -> TestBroker {
        let broker = testing::broker(dir).await;
        broker
            .create_topic(TOPIC, 1, -1, BTreeMap::new(), false)
            .await
            .expect("create topic");
        broker.replicas.reconcile();
        for &timestamp in timestamps {
            let records: Vec<Record> = (0..2)
                .map(|_| Record {
                    timestamp,
                    ..Record::default()
                })
                .collect();
            let appended = broker
                .replicas
                .append_records(AppendRequest {
                    topic: TOPIC,
                    partition: 0,
                    records: Some(encode_batch(&records, Compression::None).unwrap()),
                    acks: Acks::All,
                    origin: AppendOrigin::Client,
                    now_ms: now_ms(),
                })
                .expect("append");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            broker
                .replicas
                .wait_for_acks(&appended, deadline)
                .await
                .expect("acks=all");
        }
        broker
    }

    fn query(
        origin: OffsetOrigin,
        current_leader_epoch: i32,
        timestamp: i64,
    ) -> OffsetQuery<'static> {
        OffsetQuery {
            topic: TOPIC,
            partition: 0,
            origin,
            current_leader_epoch,
            timestamp,
        }
    }

    #[test]
    fn replica_id_minus_two_is_debugging_and_every_other_id_a_consumer() {
        assert_eq!(OffsetOrigin::from_replica_id(-2), OffsetOrigin::Debugging);
        for replica_id in [-1, -3, 0, 1] {
            assert_eq!(
                OffsetOrigin::from_replica_id(replica_id),
                OffsetOrigin::Consumer
            );
        }
    }

    #[tokio::test]
    async fn earliest_latest_and_timestamp_lookups_on_the_leader() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_batches(dir.path(), &[1_000, 2_000, 3_000]).await;
        let manager = &broker.replicas;
        for origin in [OffsetOrigin::Consumer, OffsetOrigin::Debugging] {
            let epoch = manager
                .list_offset(&query(origin, -1, LATEST_TIMESTAMP))
                .leader_epoch;
            assert!(epoch >= 0, "the leader's epoch is in the answer");
            let answer = |timestamp| manager.list_offset(&query(origin, -1, timestamp));
            let found = |offset, timestamp| OffsetAnswer {
                error: ErrorCode::None,
                offset,
                timestamp,
                leader_epoch: epoch,
            };
            assert_eq!(answer(EARLIEST_TIMESTAMP), found(0, -1));
            assert_eq!(answer(LATEST_TIMESTAMP), found(6, -1));
            assert_eq!(answer(0), found(0, 1_000));
            assert_eq!(answer(1_500), found(2, 2_000), "first batch at or after");
            assert_eq!(answer(3_000), found(4, 3_000));
            assert_eq!(
                answer(3_001),
                OffsetAnswer {
                    leader_epoch: -1,
                    ..found(-1, -1)
                },
                "no record that late: no error, and no epoch"
            );
        }
        broker.stop().await;
    }

    #[tokio::test]
    async fn max_timestamp_and_other_negative_targets_are_unsupported_version() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_batches(dir.path(), &[1_000]).await;
        for target in [-3, -4, i64::MIN] {
            let answer = broker
                .replicas
                .list_offset(&query(OffsetOrigin::Consumer, -1, target));
            assert_eq!(
                answer.error,
                ErrorCode::UnsupportedVersion,
                "target {target}"
            );
            assert_eq!((answer.offset, answer.timestamp), (-1, -1));
            assert!(answer.leader_epoch >= 0);
        }
        broker.stop().await;
    }

    #[tokio::test]
    async fn a_newer_leader_epoch_is_unknown_and_the_current_one_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_batches(dir.path(), &[1_000]).await;
        let manager = &broker.replicas;
        let epoch = manager
            .list_offset(&query(OffsetOrigin::Consumer, -1, LATEST_TIMESTAMP))
            .leader_epoch;
        let current = manager.list_offset(&query(OffsetOrigin::Consumer, epoch, LATEST_TIMESTAMP));
        assert_eq!((current.error, current.offset), (ErrorCode::None, 2));
        for origin in [OffsetOrigin::Consumer, OffsetOrigin::Debugging] {
            let ahead = manager.list_offset(&query(origin, epoch + 1, LATEST_TIMESTAMP));
            assert_eq!(
                ahead,
                OffsetAnswer {
                    error: ErrorCode::UnknownLeaderEpoch,
                    leader_epoch: epoch,
                    ..OffsetAnswer::default()
                }
            );
        }
        broker.stop().await;
    }

    #[tokio::test]
    async fn a_partition_the_metadata_does_not_have_is_unknown_topic_or_partition() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_batches(dir.path(), &[]).await;
        for origin in [OffsetOrigin::Consumer, OffsetOrigin::Debugging] {
            for (topic, partition) in [("no-such-topic", 0), (TOPIC, 1)] {
                let answer = broker.replicas.list_offset(&OffsetQuery {
                    topic,
                    partition,
                    origin,
                    current_leader_epoch: -1,
                    timestamp: LATEST_TIMESTAMP,
                });
                assert_eq!(
                    answer,
                    OffsetAnswer {
                        error: ErrorCode::UnknownTopicOrPartition,
                        ..OffsetAnswer::default()
                    },
                    "{topic}-{partition} asked by {origin:?}"
                );
            }
        }
        broker.stop().await;
    }
}
