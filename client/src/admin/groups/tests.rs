//! Unit tests of the group admin API: every request encodes at every version it is sent at,
//! and the answers are read as documented.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, OffsetCommitRequest,
};
use kafka_protocol::protocol::Encodable;
use sluice_protocol::consumer_protocol::{
    encode_assignment, AssignedPartitions, ConsumerProtocolAssignment,
};

use super::coordinator::{find_coordinator_request, KEY_TYPE_GROUP};
use super::listing::list_groups_request;
use super::offsets::{
    by_topic, commit_group_error, offset_fetch_request, SIMPLE_COMMIT_GENERATION,
};
use super::*;
use crate::admin::{topic_name, UNKNOWN_TOPIC_OR_PARTITION};

fn encodes(request: &impl Encodable, api: ApiKey, version: i16) {
    let mut buf = bytes::BytesMut::new();
    request
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
}

fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = GROUP_API_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .unwrap();
    *min..=*max
}

#[test]
fn offset_fetch_requests_encode_at_every_version_for_some_or_all_partitions() {
    let topics = vec![("t".to_string(), vec![0, 1])];
    for version in versions(ApiKey::OffsetFetch) {
        for selection in [None, Some(&topics)] {
            let request = offset_fetch_request("g", selection, version);
            encodes(&request, ApiKey::OffsetFetch, version);
            if version >= 8 {
                assert_eq!(request.groups.len(), 1);
                assert_eq!(request.groups[0].topics.is_none(), selection.is_none());
            } else {
                assert_eq!(&*request.group_id.0, "g");
                assert_eq!(request.topics.is_none(), selection.is_none());
            }
        }
    }
}

#[test]
fn list_groups_filters_are_refused_where_the_version_lacks_them() {
    let states = ListGroupsFilter {
        states: vec![GroupState::Empty],
        types: Vec::new(),
    };
    let types = ListGroupsFilter {
        states: Vec::new(),
        types: vec!["classic".into()],
    };
    for version in versions(ApiKey::ListGroups) {
        let none = list_groups_request(&ListGroupsFilter::default(), version, "b").unwrap();
        encodes(&none, ApiKey::ListGroups, version);
        match list_groups_request(&states, version, "b") {
            Ok(request) => {
                assert!(version >= 4);
                assert_eq!(&*request.states_filter[0], "Empty");
                encodes(&request, ApiKey::ListGroups, version);
            }
            Err(error) => {
                assert!(version < 4);
                assert!(error.to_string().contains("state"), "{error}");
            }
        }
        assert_eq!(
            list_groups_request(&types, version, "b").is_ok(),
            version >= 5
        );
    }
}

#[test]
fn find_coordinator_asks_for_one_group_key_at_every_version() {
    for version in versions(ApiKey::FindCoordinator) {
        let request = find_coordinator_request("g", version);
        encodes(&request, ApiKey::FindCoordinator, version);
        let keys: Vec<&str> = if version >= 4 {
            assert!(request.key.is_empty());
            request.coordinator_keys.iter().map(|k| &**k).collect()
        } else {
            assert!(request.coordinator_keys.is_empty());
            vec![&*request.key]
        };
        assert_eq!(keys, ["g"], "v{version}");
        assert_eq!(request.key_type, KEY_TYPE_GROUP);
    }
}

#[test]
fn other_group_requests_encode_at_every_version() {
    let commit = OffsetCommitRequest::default()
        .with_group_id(group_key("g"))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])]);
    assert_eq!(
        commit.generation_id_or_member_epoch,
        SIMPLE_COMMIT_GENERATION
    );
    for version in versions(ApiKey::OffsetCommit) {
        encodes(&commit, ApiKey::OffsetCommit, version);
    }
    let describe = DescribeGroupsRequest::default().with_groups(vec![group_key("g")]);
    for version in versions(ApiKey::DescribeGroups) {
        encodes(&describe, ApiKey::DescribeGroups, version);
    }
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![group_key("g")]);
    for version in versions(ApiKey::DeleteGroups) {
        encodes(&delete, ApiKey::DeleteGroups, version);
    }
}

#[test]
fn consumer_assignments_are_decoded_and_others_kept_raw() {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(topic_name("b"))
            .with_partitions(vec![2, 0]),
        AssignedPartitions::default()
            .with_topic(topic_name("a"))
            .with_partitions(vec![1]),
    ]);
    let bytes = encode_assignment(&assignment, 3).unwrap();
    let decoded = MemberAssignment::decode("consumer", bytes.clone());
    assert_eq!(
        decoded,
        MemberAssignment::Partitions(vec![("a".into(), vec![1]), ("b".into(), vec![0, 2])])
    );
    assert_eq!(
        decoded.partitions(),
        vec![("a".into(), 1), ("b".into(), 0), ("b".into(), 2)]
    );
    assert_eq!(
        MemberAssignment::decode("connect", bytes.clone()),
        MemberAssignment::Opaque(bytes)
    );
    assert_eq!(
        MemberAssignment::decode("consumer", Bytes::new()),
        MemberAssignment::Partitions(Vec::new())
    );
    assert!(matches!(
        MemberAssignment::decode("consumer", Bytes::from_static(b"\x00")),
        MemberAssignment::Unreadable(_)
    ));
}

#[test]
fn a_commit_refused_for_members_says_the_group_is_active() {
    let error = commit_group_error("g", UNKNOWN_MEMBER_ID).unwrap();
    let text = error.to_string();
    assert!(text.contains("active members"), "{text}");
    assert!(text.ends_with("(UNKNOWN_MEMBER_ID)"), "{text}");
    assert!(!error.is_retriable());
    assert!(commit_group_error("g", NOT_COORDINATOR)
        .unwrap()
        .is_retriable());
    assert!(commit_group_error("g", UNKNOWN_TOPIC_OR_PARTITION).is_none());
    assert!(commit_group_error("g", 0).is_none());
}

#[test]
fn group_states_parse_case_insensitively() {
    assert_eq!(GroupState::parse("empty"), GroupState::Empty);
    assert_eq!(
        GroupState::parse("PreparingRebalance"),
        GroupState::PreparingRebalance
    );
    assert_eq!(GroupState::parse("Odd"), GroupState::Unknown("Odd".into()));
    assert!(GroupState::Dead.is_inactive() && !GroupState::Stable.is_inactive());
    assert_eq!(
        group_not_found("g").to_string(),
        "group 'g' does not exist (GROUP_ID_NOT_FOUND)"
    );
}

#[test]
fn partitions_are_grouped_by_topic_without_duplicates() {
    let grouped = by_topic(&[
        ("b".into(), 1),
        ("a".into(), 2),
        ("b".into(), 0),
        ("b".into(), 1),
    ]);
    assert_eq!(
        grouped,
        vec![("a".into(), vec![2]), ("b".into(), vec![0, 1])]
    );
}
