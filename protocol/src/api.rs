//! The API version table Sluice advertises in ApiVersions, the check every request passes
//! before it is decoded, and the values with a fixed meaning inside requests that broker and
//! client must agree on (a replica id, a topic name).
//!
//! Ranges are chosen so that current librdkafka, kafka-python and the Java client negotiate
//! versions whose bodies the `kafka-protocol` crate decodes. Produce is advertised from v0
//! because librdkafka 2.0.2 (Debian's kcat) turns compression off unless Produce starts at
//! v0; clients still pick their highest version. Apache Kafka 4.1.1 does exactly the same
//! (KAFKA-18659: it advertises Produce 0..13 and closes the connection on a v0-v2 request;
//! checked with a raw Produce v2 on 2026-12-07), and so does Sluice. Fetch is served to v18
//! (Kafka 4.1's range; v13+ names topics by id, KIP-516), Produce to v13 (v12 is v11 for
//! a non-transactional producer, KIP-890; v13 names topics by id).

use kafka_protocol::messages::ApiKey;

/// One advertised API: key and inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn range(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

/// Every API Sluice answers, with the versions it accepts.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    range(ApiKey::Produce, 0, 13),
    range(ApiKey::Fetch, 4, 18),
    range(ApiKey::ListOffsets, 1, 8),
    // Where a leader epoch ends (KIP-279), for consumers validating their position after a
    // leader change (KIP-320) and for tools; Kafka 4.1's range.
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DescribeConfigs, 1, 4),
    // Topic config overrides, applied live; Kafka 4.1's ranges.
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    // Moving a partition's log start offset (`kafka-delete-records`); Kafka 4.1's range.
    range(ApiKey::DeleteRecords, 0, 2),
    // Topics and partitions, paged (KIP-966); Java's Admin describes topics with it.
    range(ApiKey::DescribeTopicPartitions, 0, 0),
    // The idempotent producers of a partition (`kafka-transactions describe-producers`).
    range(ApiKey::DescribeProducers, 0, 0),
    // The data directory and its partitions' sizes (`kafka-log-dirs`); Kafka 4.1's range.
    range(ApiKey::DescribeLogDirs, 1, 4),
    // v2 (KIP-1073) flags fenced brokers and lists them on request.
    range(ApiKey::DescribeCluster, 0, 2),
    // Idempotent producers only: a transactional id is refused (see the broker's handler).
    // v6 (KIP-939, two-phase commit) has a request the codec crate cannot decode.
    range(ApiKey::InitProducerId, 0, 5),
    // Preferred (and unclean) leader election through the controller.
    range(ApiKey::ElectLeaders, 0, 2),
    // Replica reassignment (KIP-455); v1 adds allow_replication_factor_change.
    range(ApiKey::AlterPartitionReassignments, 0, 1),
    range(ApiKey::ListPartitionReassignments, 0, 0),
    // The controller quorum (the metadata log), answered by the quorum leader; v2 adds
    // node endpoints and directory ids, which Sluice does not have.
    range(ApiKey::DescribeQuorum, 0, 1),
    // The coordinator of a group (transactional ids get INVALID_REQUEST until transactions
    // exist); v4+ batch keys, v6 adds the share-group key type, refused.
    range(ApiKey::FindCoordinator, 0, 6),
    // Committed offsets on the group coordinator, at Kafka 4.1's ranges.
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    // The classic group protocol, at Kafka 4.1's ranges.
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::OffsetDelete, 0, 0),
    // The KIP-848 group protocol (group.protocol=consumer).
    range(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    range(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// ListOffsets `replica_id` of a tool reading one replica's log (Kafka's
/// `DEBUGGING_REPLICA_ID`): any replica answers, not only the leader, with its own log end
/// offset rather than the high watermark.
pub const DEBUGGING_REPLICA_ID: i32 = -2;

/// Kafka's name of the metadata log's topic; partition 0 of it is the controller quorum's
/// log, the one partition DescribeQuorum answers for.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The advertised range for an API key, if Sluice supports it.
pub fn supported_range(api_key: i16) -> Option<ApiRange> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|r| r.key as i16 == api_key)
}

/// Whether Sluice can decode and answer this API key at this version.
pub fn is_supported(api_key: i16, api_version: i16) -> bool {
    supported_range(api_key).is_some_and(|r| r.min <= api_version && api_version <= r.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_version_is_decodable_by_the_codec_crate() {
        for api in SUPPORTED_APIS {
            let valid = api.key.valid_versions();
            // Produce v0-v2 are advertised for old librdkafka but never chosen by it.
            if api.key != ApiKey::Produce {
                assert!(valid.min <= api.min, "{:?}", api.key);
            }
            assert!(api.max <= valid.max, "{:?}", api.key);
        }
    }

    #[test]
    fn init_producer_id_is_advertised_for_idempotent_producers() {
        use kafka_protocol::messages::InitProducerIdRequest;
        use kafka_protocol::protocol::Message;
        let range = supported_range(ApiKey::InitProducerId as i16).unwrap();
        assert_eq!((range.min, range.max), (0, 5));
        assert!(range.max <= InitProducerIdRequest::VERSIONS.max);
    }

    #[test]
    fn unsupported_versions_are_refused() {
        assert!(is_supported(ApiKey::Fetch as i16, 18));
        assert!(!is_supported(ApiKey::Fetch as i16, 19));
        assert!(!is_supported(ApiKey::Fetch as i16, 3));
        assert!(!is_supported(9999, 0));
    }
}
