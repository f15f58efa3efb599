//! `cluster status`: the brokers (and which are fenced: reported, or derived as the module
//! doc of [`super`] says), the controller quorum and how far each member lags, and the
//! partition counts; gathered with DescribeCluster, DescribeQuorum and Metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use sluice_client::cluster::Metadata;
use sluice_client::{Admin, ClusterDescription, QuorumDescription, QuorumReplica};

use super::is_under_replicated;

/// One broker in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerStatus {
    pub id: i32,
    /// None for a broker known only by id (a fenced one, when derived).
    pub address: Option<String>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The broker DescribeCluster names as the controller.
    pub controller: bool,
}

/// How the `fenced` flags were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FencedSource {
    /// The cluster reported them (DescribeCluster v2).
    Reported,
    /// Known ids missing from the broker list (see the module doc).
    Derived,
}

/// One quorum member in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumMember {
    pub id: i32,
    pub log_end_offset: Option<i64>,
    /// The quorum high watermark minus `log_end_offset`, at least 0.
    pub lag: Option<i64>,
    pub last_fetch_timestamp: Option<i64>,
    pub last_caught_up_timestamp: Option<i64>,
}

/// The controller quorum in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumStatus {
    pub leader_id: Option<i32>,
    /// The leader's epoch: the Raft term.
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumMember>,
    pub observers: Vec<QuorumMember>,
}

/// Partition counts over every topic in metadata (internal ones included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PartitionCounts {
    pub topics: usize,
    pub partitions: usize,
    /// ISR smaller than the replica list.
    pub under_replicated: usize,
    /// No leader.
    pub offline: usize,
}

/// `sluice cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerStatus>,
    pub fenced_source: FencedSource,
    /// None when the cluster does not answer DescribeQuorum; `quorum_error` says why when it
    /// failed rather than being unsupported.
    pub quorum: Option<QuorumStatus>,
    pub quorum_error: Option<String>,
    pub partitions: PartitionCounts,
}

/// Gather `cluster status`: DescribeCluster, DescribeQuorum (where supported; first to the
/// controller DescribeCluster names, see [`Admin::describe_quorum`]) and the metadata of
/// every topic. Each DescribeQuorum request is bounded by `timeout`; DescribeCluster and
/// Metadata by the admin's connection timeouts.
pub async fn cluster_status(
    admin: &Admin,
    timeout: Duration,
) -> sluice_client::Result<ClusterStatus> {
    let description = admin.describe_cluster().await?;
    let quorum = admin.describe_quorum(description.controller_id, timeout);
    let (quorum, quorum_error) = match quorum.await {
        Ok(quorum) => (quorum, None),
        Err(error) => (None, Some(error.to_string())),
    };
    let metadata = admin.cluster().refresh_all_topics().await?;
    Ok(build_cluster_status(
        &description,
        quorum.as_ref(),
        quorum_error,
        &metadata,
    ))
}

/// `cluster status` from what the cluster said.
pub fn build_cluster_status(
    description: &ClusterDescription,
    quorum: Option<&QuorumDescription>,
    quorum_error: Option<String>,
    metadata: &Metadata,
) -> ClusterStatus {
    // The quorum leader is the active controller; DescribeCluster's controller id is a
    // broker that forwards admin requests to it (KIP-590: Sluice names the broker that
    // answered, Kafka a random live one).
    let controller = quorum
        .and_then(|q| q.leader_id)
        .or(description.controller_id);
    let mut brokers: BTreeMap<i32, BrokerStatus> = description
        .brokers
        .iter()
        .map(|b| {
            let status = BrokerStatus {
                id: b.id,
                address: Some(b.address()),
                rack: b.rack.clone(),
                fenced: description
                    .fenced
                    .as_ref()
                    .is_some_and(|fenced| fenced.contains(&b.id)),
                controller: controller == Some(b.id),
            };
            (b.id, status)
        })
        .collect();
    let fenced_source = if description.fenced.is_some() {
        FencedSource::Reported
    } else {
        add_derived_fenced(&mut brokers, controller, quorum, metadata);
        FencedSource::Derived
    };
    ClusterStatus {
        cluster_id: description.cluster_id.clone(),
        controller_id: controller,
        brokers: brokers.into_values().collect(),
        fenced_source,
        quorum: quorum.map(quorum_status),
        quorum_error,
        partitions: partition_counts(metadata),
    }
}

/// Add, as fenced, every broker id the cluster knows (a replica, a quorum observer, or a
/// voter when controllers are brokers) that is not listed (see the module doc of
/// [`super`]).
fn add_derived_fenced(
    brokers: &mut BTreeMap<i32, BrokerStatus>,
    controller: Option<i32>,
    quorum: Option<&QuorumDescription>,
    metadata: &Metadata,
) {
    let mut known: BTreeSet<i32> = metadata
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.replicas)
        .copied()
        .collect();
    if let Some(quorum) = quorum {
        known.extend(quorum.observers.iter().map(|r| r.id));
        let controllers_are_brokers = quorum
            .leader_id
            .is_some_and(|leader| brokers.contains_key(&leader));
        if controllers_are_brokers {
            known.extend(quorum.voters.iter().map(|r| r.id));
        }
    }
    for id in known {
        brokers.entry(id).or_insert(BrokerStatus {
            id,
            address: None,
            rack: None,
            fenced: true,
            controller: controller == Some(id),
        });
    }
}

fn quorum_status(quorum: &QuorumDescription) -> QuorumStatus {
    let member = |r: &QuorumReplica| QuorumMember {
        id: r.id,
        log_end_offset: r.log_end_offset,
        lag: r
            .log_end_offset
            .map(|end| quorum.high_watermark.saturating_sub(end).max(0)),
        last_fetch_timestamp: r.last_fetch_timestamp,
        last_caught_up_timestamp: r.last_caught_up_timestamp,
    };
    QuorumStatus {
        leader_id: quorum.leader_id,
        leader_epoch: quorum.leader_epoch,
        high_watermark: quorum.high_watermark,
        voters: quorum.voters.iter().map(member).collect(),
        observers: quorum.observers.iter().map(member).collect(),
    }
}

/// Topic and partition counts, under-replicated and offline partitions.
pub fn partition_counts(metadata: &Metadata) -> PartitionCounts {
    let partitions = metadata.topics.values().flat_map(|t| &t.partitions);
    PartitionCounts {
        topics: metadata.topics.len(),
        partitions: partitions.clone().count(),
        under_replicated: partitions
            .clone()
            .filter(|p| is_under_replicated(p))
            .count(),
        offline: partitions.filter(|p| p.leader.is_none()).count(),
    }
}

#[cfg(test)]
mod tests {
    use sluice_client::cluster::{BrokerInfo, PartitionInfo, TopicInfo};

    use super::*;
    use crate::health::test_support::partition;

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "127.0.0.1".to_string(),
            port: 9090 + id,
            rack: None,
        }
    }

    fn metadata(partitions: Vec<PartitionInfo>) -> Metadata {
        let mut metadata = Metadata::default();
        metadata.topics.insert(
            "t".to_string(),
            TopicInfo {
                name: "t".to_string(),
                is_internal: false,
                partitions,
                error_code: 0,
            },
        );
        metadata
    }

    fn quorum(leader: i32) -> QuorumDescription {
        let replica = |id: i32, end: Option<i64>| QuorumReplica {
            id,
            log_end_offset: end,
            last_fetch_timestamp: None,
            last_caught_up_timestamp: None,
        };
        QuorumDescription {
            leader_id: Some(leader),
            leader_epoch: 3,
            high_watermark: 100,
            voters: vec![
                replica(1, Some(100)),
                replica(2, Some(90)),
                replica(3, Some(101)),
            ],
            observers: vec![replica(4, None)],
        }
    }

    #[test]
    fn counts_under_replicated_and_offline_partitions() {
        let metadata = metadata(vec![
            partition(0, Some(1), &[1, 2, 3], &[1, 2, 3]),
            partition(1, Some(2), &[2, 3, 1], &[2, 3]),
            partition(2, None, &[3, 1, 2], &[3]),
        ]);
        assert_eq!(
            partition_counts(&metadata),
            PartitionCounts {
                topics: 1,
                partitions: 3,
                under_replicated: 2,
                offline: 1
            }
        );
    }

    #[test]
    fn unlisted_known_brokers_are_derived_fenced() {
        let description = ClusterDescription {
            cluster_id: Some("c".to_string()),
            controller_id: Some(1),
            brokers: vec![broker(1), broker(2)],
            fenced: None,
        };
        // Broker 3 holds replicas but is not listed; 4 is a quorum observer.
        let metadata = metadata(vec![partition(0, Some(1), &[1, 2, 3], &[1, 2])]);
        let status = build_cluster_status(&description, Some(&quorum(1)), None, &metadata);
        assert_eq!(status.fenced_source, FencedSource::Derived);
        let brokers: Vec<(i32, bool, bool, bool)> = status
            .brokers
            .iter()
            .map(|b| (b.id, b.address.is_some(), b.fenced, b.controller))
            .collect();
        assert_eq!(
            brokers,
            vec![
                (1, true, false, true),
                (2, true, false, false),
                (3, false, true, false),
                (4, false, true, false)
            ]
        );
        let quorum = status.quorum.expect("a quorum");
        let lags: Vec<(i32, Option<i64>)> = quorum.voters.iter().map(|v| (v.id, v.lag)).collect();
        // A member ahead of the high watermark does not lag.
        assert_eq!(lags, vec![(1, Some(0)), (2, Some(10)), (3, Some(0))]);
        assert_eq!(quorum.observers[0].lag, None);
        assert_eq!(status.partitions.under_replicated, 1);
    }

    #[test]
    fn voters_count_as_brokers_only_when_controllers_are_brokers() {
        // Kafka with separate controllers: the quorum leader (3000) is no listed broker,
        // so voters 3000.. are not brokers, let alone fenced ones.
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: Some(1),
            brokers: vec![broker(1)],
            fenced: None,
        };
        let mut separate = quorum(3000);
        for (voter, id) in separate.voters.iter_mut().zip(3000..) {
            voter.id = id;
        }
        separate.observers.clear();
        let status = build_cluster_status(&description, Some(&separate), None, &metadata(vec![]));
        assert_eq!(status.brokers.len(), 1);
        assert!(!status.brokers[0].fenced);
    }

    #[test]
    fn reported_fencing_is_taken_as_is() {
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: None,
            brokers: vec![broker(1), broker(2)],
            fenced: Some(vec![2]),
        };
        let metadata = metadata(vec![partition(0, Some(1), &[1, 2, 3], &[1])]);
        let status = build_cluster_status(&description, None, Some("boom".into()), &metadata);
        assert_eq!(status.fenced_source, FencedSource::Reported);
        let fenced: Vec<(i32, bool)> = status.brokers.iter().map(|b| (b.id, b.fenced)).collect();
        assert_eq!(fenced, vec![(1, false), (2, true)], "3 is not invented");
        assert_eq!(status.quorum, None);
        assert_eq!(status.quorum_error.as_deref(), Some("boom"));
    }
}
