//! The cluster and its controller quorum: [`Admin::describe_cluster`] (DescribeCluster, or
//! Metadata where it is not spoken) and [`Admin::describe_quorum`] (DescribeQuorum, with
//! the search for the node that answers as the quorum leader), and their types.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::{
    describe_quorum_request, describe_quorum_response, ApiKey, DescribeClusterRequest,
    DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse,
};
use sluice_protocol::api::METADATA_TOPIC;

use super::{message, missing_from_response, topic_name, Admin, NOT_LEADER_OR_FOLLOWER};
use crate::cluster::BrokerInfo;
use crate::connection::Connection;
use crate::error::{kafka_error_name, Error, Result};

/// The cluster's id, controller and brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    /// The brokers the cluster lists: with `fenced` known, every registered broker;
    /// otherwise only the unfenced ones (and, on Sluice, the broker that answered).
    pub brokers: Vec<BrokerInfo>,
    /// The fenced brokers among `brokers`, when the cluster says (DescribeCluster v2,
    /// `include_fenced_brokers`, Kafka 4.0+); `None` when it cannot (DescribeCluster v0-1
    /// and Metadata leave fenced brokers out).
    pub fenced: Option<Vec<i32>>,
}

/// The controller quorum (the metadata log, KRaft's `__cluster_metadata` partition 0) as
/// its leader reports it in DescribeQuorum. Offsets count metadata log entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The quorum leader (the active controller); None while there is none.
    pub leader_id: Option<i32>,
    /// The leader's epoch (Raft term).
    pub leader_epoch: i32,
    /// The first entry the leader does not report as committed. A Sluice leader reports
    /// its applied index + 1: the applied index never passes the committed one, so this
    /// may trail the commit index + 1 by the entries being applied.
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    /// Members that follow the log without voting (brokers, in Kafka and in Sluice).
    pub observers: Vec<QuorumReplica>,
}

/// One quorum member's progress as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    /// None when the leader does not know it yet.
    pub log_end_offset: Option<i64>,
    /// When the member last fetched, ms since the epoch (DescribeQuorum v1+; None if unknown).
    pub last_fetch_timestamp: Option<i64>,
    /// When the member last held everything the leader had (v1+; None if unknown).
    pub last_caught_up_timestamp: Option<i64>,
}

impl Admin {
    /// Cluster id, controller and brokers: DescribeCluster where the broker supports it
    /// (v2 also lists fenced brokers, flagged), else Metadata.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let connection = self.cluster.any_connection().await?;
        if let Ok(version) = connection.version(ApiKey::DescribeCluster) {
            let response = connection
                .send_versioned(
                    describe_cluster_request(version),
                    version,
                    connection.request_timeout(),
                )
                .await?;
            return cluster_description(&response, version);
        }
        let metadata = self.cluster.refresh().await?;
        Ok(ClusterDescription {
            cluster_id: metadata.cluster_id.clone(),
            controller_id: metadata.controller_id,
            brokers: metadata.brokers.values().cloned().collect(),
            fenced: None,
        })
    }

    /// The controller quorum from DescribeQuorum, or `None` when the cluster does not
    /// answer it (Kafka before 3.3, ZooKeeper mode). Each request, connecting included, is
    /// bounded by `timeout`.
    ///
    /// Asked first of `controller`, the controller DescribeCluster named: a broker that
    /// forwards admin requests to the active controller (KIP-590; Sluice names the broker
    /// that answered, Kafka a random live one). Kafka's forwards DescribeQuorum too; a Sluice
    /// broker that is not the quorum leader names the leader instead (below). Only if that node
    /// cannot be asked (or `controller` is None) is any broker asked; a Sluice broker that
    /// is not the quorum leader answers NOT_LEADER_OR_FOLLOWER with the leader it knows,
    /// which is asked next. When that leader does not answer, or no leader is
    /// known, the error is [`Error::NoQuorumLeader`], saying which node was named by whom.
    pub async fn describe_quorum(
        &self,
        controller: Option<i32>,
        timeout: Duration,
    ) -> Result<Option<QuorumDescription>> {
        let (mut search, mut target) = QuorumSearch::start(controller);
        loop {
            let step = match self.ask_for_quorum(target, timeout).await {
                Ok((_, QuorumAnswer::Described(quorum))) => return Ok(Some(quorum)),
                Ok((_, QuorumAnswer::Unsupported)) => return Ok(None),
                Ok((_, QuorumAnswer::Failed(error))) => return Err(error),
                Ok((responder, QuorumAnswer::AskLeader(leader, error))) => {
                    search.not_leader(responder, leader, error)
                }
                Err(error) if error.is_retriable() => search.unreachable(target, error),
                Err(error) => return Err(error),
            };
            target = match step {
                QuorumStep::Ask(next) => next,
                QuorumStep::Fail(error) => return Err(error),
            };
        }
    }

    /// One DescribeQuorum to `target`, bounded by `timeout`, with who answered.
    async fn ask_for_quorum(
        &self,
        target: QuorumTarget,
        timeout: Duration,
    ) -> Result<(Responder, QuorumAnswer)> {
        let exchange = async {
            let connection = match target {
                QuorumTarget::Node(id) => self.cluster.broker_connection(id).await?,
                QuorumTarget::AnyBroker => self.cluster.any_connection().await?,
            };
            let responder = match target {
                QuorumTarget::Node(id) => Responder::Broker(id),
                QuorumTarget::AnyBroker => self.responder(&connection),
            };
            let version = match connection.version(ApiKey::DescribeQuorum) {
                Ok(version) => version,
                Err(Error::UnsupportedVersion { .. }) => {
                    return Ok((responder, QuorumAnswer::Unsupported))
                }
                Err(error) => return Err(error),
            };
            let response = connection
                .send_versioned(describe_quorum_request(), version, timeout)
                .await?;
            Ok((responder, quorum_description(&response)))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout {
                broker: target.to_string(),
                api: ApiKey::DescribeQuorum,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// The broker behind `connection`, by id where metadata lists its address.
    fn responder(&self, connection: &Connection) -> Responder {
        let address = connection.broker();
        self.cluster
            .metadata()
            .brokers
            .values()
            .find(|b| b.address() == address)
            .map_or_else(
                || Responder::Address(address.to_string()),
                |b| Responder::Broker(b.id),
            )
    }
}

/// The DescribeCluster request for `version`: client endpoints, and from v2 the fenced
/// brokers too (kafka-protocol refuses to encode the flag at versions that lack it).
fn describe_cluster_request(version: i16) -> DescribeClusterRequest {
    let mut request = DescribeClusterRequest::default().with_endpoint_type(1);
    if version >= 2 {
        request = request.with_include_fenced_brokers(true);
    }
    request
}

/// The cluster as a DescribeCluster response at `version` describes it.
fn cluster_description(
    response: &DescribeClusterResponse,
    version: i16,
) -> Result<ClusterDescription> {
    if response.error_code != 0 {
        return Err(Error::broker(
            "describing the cluster",
            response.error_code,
            message(&response.error_message),
        ));
    }
    let mut brokers: Vec<BrokerInfo> = response
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let fenced = (version >= 2).then(|| {
        let mut ids: Vec<i32> = response
            .brokers
            .iter()
            .filter(|b| b.is_fenced)
            .map(|b| b.broker_id.0)
            .collect();
        ids.sort_unstable();
        ids
    });
    Ok(ClusterDescription {
        cluster_id: Some(response.cluster_id.to_string()),
        controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
        brokers,
        fenced,
    })
}

/// DescribeQuorum for the metadata log, `__cluster_metadata` partition 0.
fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(topic_name(METADATA_TOPIC))
    .with_partitions(vec![
        describe_quorum_request::PartitionData::default().with_partition_index(0)
    ])])
}

/// What a DescribeQuorum answer means for the caller.
#[derive(Debug)]
enum QuorumAnswer {
    Described(QuorumDescription),
    /// This broker is not the quorum leader: ask the one named (if any).
    AskLeader(Option<i32>, Error),
    /// The broker does not speak DescribeQuorum.
    Unsupported,
    Failed(Error),
}

/// Most DescribeQuorum requests one [`Admin::describe_quorum`] makes: the controller, any
/// broker, the leader it names, and the leader that one names (leadership just moved).
const QUORUM_REQUESTS_MAX: usize = 4;

/// Where a DescribeQuorum goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuorumTarget {
    /// A node by id: the controller DescribeCluster named, or the leader a broker named.
    Node(i32),
    /// Any live broker.
    AnyBroker,
}

impl std::fmt::Display for QuorumTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumTarget::Node(id) => write!(f, "node {id}"),
            QuorumTarget::AnyBroker => write!(f, "any broker"),
        }
    }
}

/// The broker that answered a DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Responder {
    Broker(i32),
    /// A broker metadata does not list by this address (a bootstrap address).
    Address(String),
}

impl std::fmt::Display for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Responder::Broker(id) => write!(f, "broker {id}"),
            Responder::Address(address) => write!(f, "the broker at {address}"),
        }
    }
}

/// What [`Admin::describe_quorum`] does after an answer.
#[derive(Debug)]
enum QuorumStep {
    Ask(QuorumTarget),
    Fail(Error),
}

/// The order in which [`Admin::describe_quorum`] asks, as a state machine over the answers
/// (so it is tested without a cluster): the controller first, any broker if the controller
/// cannot be asked, then the leader a broker names. It fails, saying what happened, when
/// the leader named cannot be asked or no leader is known.
#[derive(Debug)]
struct QuorumSearch {
    /// Requests made so far.
    requests: usize,
    any_broker_asked: bool,
    /// Nodes that could not be asked, with why.
    unreachable: BTreeMap<i32, Error>,
    /// Nodes that answered NOT_LEADER_OR_FOLLOWER.
    not_leaders: Vec<i32>,
    /// The leader last named, and by whom.
    named: Option<(i32, Responder)>,
}

impl QuorumSearch {
    /// The search and its first target: `controller` if known, else any broker.
    fn start(controller: Option<i32>) -> (QuorumSearch, QuorumTarget) {
        let search = QuorumSearch {
            requests: 1,
            any_broker_asked: controller.is_none(),
            unreachable: BTreeMap::new(),
            not_leaders: Vec::new(),
            named: None,
        };
        let target = controller.map_or(QuorumTarget::AnyBroker, QuorumTarget::Node);
        (search, target)
    }

    /// `target` could not be asked (not listed, refused, silent past the timeout).
    fn unreachable(&mut self, target: QuorumTarget, error: Error) -> QuorumStep {
        let QuorumTarget::Node(id) = target else {
            // Every broker was tried.
            return QuorumStep::Fail(error);
        };
        if let Some((leader, named_by)) = &self.named {
            if *leader == id {
                return QuorumStep::Fail(leader_did_not_answer(id, named_by, &error));
            }
        }
        self.unreachable.insert(id, error.clone());
        if self.any_broker_asked {
            return QuorumStep::Fail(error);
        }
        self.ask(QuorumTarget::AnyBroker, error)
    }

    /// `responder` is not the quorum leader; it names `leader`, if it knows one.
    fn not_leader(
        &mut self,
        responder: Responder,
        leader: Option<i32>,
        error: Error,
    ) -> QuorumStep {
        if let Responder::Broker(id) = responder {
            self.not_leaders.push(id);
        }
        let Some(leader) = leader else {
            return QuorumStep::Fail(Error::NoQuorumLeader(format!(
                "{responder} knows no quorum leader"
            )));
        };
        if let Some(why) = self.unreachable.get(&leader) {
            return QuorumStep::Fail(leader_did_not_answer(leader, &responder, why));
        }
        if self.not_leaders.contains(&leader) {
            return QuorumStep::Fail(Error::NoQuorumLeader(format!(
                "{responder} names node {leader} the quorum leader, but node {leader} \
                 answered that it is not ({})",
                kafka_error_name(NOT_LEADER_OR_FOLLOWER)
            )));
        }
        let gave_up = Error::NoQuorumLeader(format!(
            "no node asked answers as the quorum leader ({responder} names node {leader}: {error})"
        ));
        self.named = Some((leader, responder));
        self.ask(QuorumTarget::Node(leader), gave_up)
    }

    /// Ask `target` next, unless the requests are used up (then fail with `error`).
    fn ask(&mut self, target: QuorumTarget, error: Error) -> QuorumStep {
        if self.requests >= QUORUM_REQUESTS_MAX {
            return QuorumStep::Fail(error);
        }
        self.requests += 1;
        self.any_broker_asked |= target == QuorumTarget::AnyBroker;
        QuorumStep::Ask(target)
    }
}

/// The error when the quorum leader `leader`, named by `named_by`, could not be asked.
fn leader_did_not_answer(leader: i32, named_by: &Responder, why: &Error) -> Error {
    Error::NoQuorumLeader(format!(
        "the quorum leader (node {leader}, named by {named_by}) did not answer ({why})"
    ))
}

fn quorum_description(response: &DescribeQuorumResponse) -> QuorumAnswer {
    let doing = "describing the controller quorum";
    if response.error_code != 0 {
        return QuorumAnswer::Failed(Error::broker(
            doing,
            response.error_code,
            message(&response.error_message),
        ));
    }
    let Some(partition) = response
        .topics
        .iter()
        .filter(|t| &*t.topic_name.0 == METADATA_TOPIC)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
    else {
        return QuorumAnswer::Failed(missing_from_response("DescribeQuorum", METADATA_TOPIC));
    };
    let leader = (partition.leader_id.0 >= 0).then_some(partition.leader_id.0);
    match partition.error_code {
        0 => {}
        NOT_LEADER_OR_FOLLOWER => {
            return QuorumAnswer::AskLeader(
                leader,
                Error::broker(
                    doing,
                    NOT_LEADER_OR_FOLLOWER,
                    message(&partition.error_message),
                ),
            )
        }
        code => {
            return QuorumAnswer::Failed(Error::broker(
                doing,
                code,
                message(&partition.error_message),
            ))
        }
    }
    let known = |value: i64| (value >= 0).then_some(value);
    let replicas = |list: &[describe_quorum_response::ReplicaState]| {
        let mut replicas: Vec<QuorumReplica> = list
            .iter()
            .map(|r| QuorumReplica {
                id: r.replica_id.0,
                log_end_offset: known(r.log_end_offset),
                last_fetch_timestamp: known(r.last_fetch_timestamp),
                last_caught_up_timestamp: known(r.last_caught_up_timestamp),
            })
            .collect();
        replicas.sort_by_key(|r| r.id);
        replicas
    };
    QuorumAnswer::Described(QuorumDescription {
        leader_id: leader,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: replicas(&partition.current_voters),
        observers: replicas(&partition.observers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::BytesMut;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use crate::admin::UNKNOWN_TOPIC_OR_PARTITION;
    use crate::connection::{assert_encodes_at_every_client_version, client_versions};

    #[test]
    fn describe_cluster_asks_for_fenced_brokers_only_where_the_field_exists() {
        use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
        let (min, max) = client_versions(ApiKey::DescribeCluster).expect("spoken");
        assert_eq!((min, max), (0, 2));
        for version in min..=max {
            let request = describe_cluster_request(version);
            let mut buf = BytesMut::new();
            request
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let decoded = DescribeClusterRequest::decode(&mut buf.freeze(), version).unwrap();
            assert_eq!(decoded.include_fenced_brokers, version >= 2, "v{version}");
        }
        let broker = |id: i32, fenced: bool| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("h"))
                .with_port(9092)
                .with_is_fenced(fenced)
        };
        let response = DescribeClusterResponse::default()
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![broker(3, true), broker(1, false), broker(2, false)]);
        let v2 = cluster_description(&response, 2).unwrap();
        assert_eq!(
            v2.brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(v2.fenced, Some(vec![3]));
        assert_eq!(v2.controller_id, Some(2));
        // Before v2 nothing says who is fenced.
        let unfenced = DescribeClusterResponse::default()
            .with_controller_id(BrokerId(-1))
            .with_brokers(vec![broker(1, false)]);
        let v1 = cluster_description(&unfenced, 1).unwrap();
        assert_eq!(v1.fenced, None);
        assert_eq!(v1.controller_id, None);
        let failed = DescribeClusterResponse::default().with_error_code(31);
        assert_eq!(
            cluster_description(&failed, 1).unwrap_err().kafka_code(),
            Some(31)
        );
    }

    fn quorum_partition() -> describe_quorum_response::PartitionData {
        let replica = |id: i32, end: i64, caught_up: i64| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(end)
                .with_last_caught_up_timestamp(caught_up)
        };
        describe_quorum_response::PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(2))
            .with_leader_epoch(7)
            .with_high_watermark(50)
            .with_current_voters(vec![replica(3, 40, -1), replica(2, 51, 1_000)])
            .with_observers(vec![replica(4, -1, -1)])
    }

    fn quorum_response(
        partition: describe_quorum_response::PartitionData,
    ) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition]),
        ])
    }

    #[test]
    fn describe_quorum_asks_for_the_metadata_partition_at_every_version() {
        let (min, max) = client_versions(ApiKey::DescribeQuorum).expect("spoken");
        assert_eq!((min, max), (0, 1));
        assert_encodes_at_every_client_version(&describe_quorum_request(), ApiKey::DescribeQuorum);
        let request = describe_quorum_request();
        assert_eq!(&*request.topics[0].topic_name.0, "__cluster_metadata");
        assert_eq!(request.topics[0].partitions[0].partition_index, 0);
    }

    #[test]
    fn quorum_answers_map_to_members_or_to_the_leader_to_ask() {
        let QuorumAnswer::Described(quorum) =
            quorum_description(&quorum_response(quorum_partition()))
        else {
            panic!("not described");
        };
        assert_eq!(quorum.leader_id, Some(2));
        assert_eq!(quorum.leader_epoch, 7);
        assert_eq!(quorum.high_watermark, 50);
        assert_eq!(
            quorum.voters,
            vec![
                QuorumReplica {
                    id: 2,
                    log_end_offset: Some(51),
                    last_fetch_timestamp: None,
                    last_caught_up_timestamp: Some(1_000),
                },
                QuorumReplica {
                    id: 3,
                    log_end_offset: Some(40),
                    last_fetch_timestamp: None,
                    last_caught_up_timestamp: None,
                },
            ]
        );
        assert_eq!(quorum.observers[0].log_end_offset, None);

        let not_leader = quorum_partition().with_error_code(NOT_LEADER_OR_FOLLOWER);
        match quorum_description(&quorum_response(not_leader)) {
            QuorumAnswer::AskLeader(Some(2), error) => {
                assert_eq!(error.kafka_code(), Some(NOT_LEADER_OR_FOLLOWER))
            }
            other => panic!("unexpected {other:?}"),
        }
        let unknown = DescribeQuorumResponse::default().with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
        assert!(matches!(
            quorum_description(&unknown),
            QuorumAnswer::Failed(e) if e.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION)
        ));
        assert!(matches!(
            quorum_description(&DescribeQuorumResponse::default()),
            QuorumAnswer::Failed(_)
        ));
    }

    fn refused(broker: &str) -> Error {
        Error::Io {
            broker: broker.to_string(),
            reason: "Connection refused".to_string(),
        }
    }

    fn not_leader() -> Error {
        Error::broker(
            "describing the controller quorum",
            NOT_LEADER_OR_FOLLOWER,
            None,
        )
    }

    fn asks(step: QuorumStep) -> QuorumTarget {
        match step {
            QuorumStep::Ask(target) => target,
            QuorumStep::Fail(error) => panic!("failed: {error}"),
        }
    }

    fn fails(step: QuorumStep) -> String {
        match step {
            QuorumStep::Fail(error) => {
                assert!(error.is_retriable(), "{error}");
                error.to_string()
            }
            QuorumStep::Ask(target) => panic!("asks {target}"),
        }
    }

    #[test]
    fn describe_quorum_asks_the_controller_first() {
        // DescribeCluster named a controller: it is asked, no other broker.
        let (_, first) = QuorumSearch::start(Some(2));
        assert_eq!(first, QuorumTarget::Node(2));
        // No controller known: any broker, as before.
        let (_, first) = QuorumSearch::start(None);
        assert_eq!(first, QuorumTarget::AnyBroker);
        // A controller that is not the quorum leader (Kafka's DescribeCluster names any
        // broker; a lagging Sluice broker may name an old leader) points at the leader.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.not_leader(Responder::Broker(2), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
    }

    #[test]
    fn an_unreachable_controller_falls_back_to_any_broker_and_the_leader_it_names() {
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.unreachable(QuorumTarget::Node(2), refused("127.0.0.1:19093"));
        assert_eq!(asks(next), QuorumTarget::AnyBroker);
        // Broker 3 knows the new leader.
        let next = search.not_leader(Responder::Broker(3), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
    }

    #[test]
    fn a_dead_quorum_leader_is_reported_as_such() {
        // The controller was killed; broker 3 still names it as the quorum leader.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.unreachable(QuorumTarget::Node(2), refused("127.0.0.1:19093"));
        assert_eq!(asks(next), QuorumTarget::AnyBroker);
        let error = fails(search.not_leader(Responder::Broker(3), Some(2), not_leader()));
        assert_eq!(
            error,
            "the quorum leader (node 2, named by broker 3) did not answer (connection to \
             127.0.0.1:19093 failed: Connection refused); an election may be in progress"
        );

        // Without a controller hint: the leader a broker names is asked and is silent.
        let (mut search, _) = QuorumSearch::start(None);
        let named_by = Responder::Address("127.0.0.1:19094".to_string());
        let next = search.not_leader(named_by, Some(2), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(2));
        let timed_out = Error::Timeout {
            broker: "node 2".to_string(),
            api: ApiKey::DescribeQuorum,
            timeout_ms: 1_000,
        };
        let error = fails(search.unreachable(QuorumTarget::Node(2), timed_out));
        assert_eq!(
            error,
            "the quorum leader (node 2, named by the broker at 127.0.0.1:19094) did not \
             answer (DescribeQuorum request to node 2 timed out after 1000 ms); an election \
             may be in progress"
        );
    }

    #[test]
    fn no_known_quorum_leader_or_a_leadership_loop_ends_the_search() {
        let (mut search, _) = QuorumSearch::start(Some(2));
        let error = fails(search.not_leader(Responder::Broker(2), None, not_leader()));
        assert_eq!(
            error,
            "broker 2 knows no quorum leader; an election may be in progress"
        );

        // 2 names 1, 1 names 2 back: neither is asked again.
        let (mut search, _) = QuorumSearch::start(Some(2));
        let next = search.not_leader(Responder::Broker(2), Some(1), not_leader());
        assert_eq!(asks(next), QuorumTarget::Node(1));
        let error = fails(search.not_leader(Responder::Broker(1), Some(2), not_leader()));
        assert!(
            error.starts_with("broker 1 names node 2 the quorum leader, but node 2 answered"),
            "{error}"
        );
    }

    #[test]
    fn describe_quorum_makes_a_bounded_number_of_requests() {
        // Every broker unreachable: any_connection has tried them all.
        let (mut search, _) = QuorumSearch::start(None);
        let error = fails(search.unreachable(QuorumTarget::AnyBroker, refused("b")));
        assert!(error.starts_with("connection to b failed"), "{error}");

        // Leadership keeps moving: controller, then the leaders named, up to the limit.
        let (mut search, mut target) = QuorumSearch::start(Some(1));
        let mut requests = 1;
        let last = loop {
            let QuorumTarget::Node(id) = target else {
                panic!("{target}");
            };
            match search.not_leader(Responder::Broker(id), Some(id + 1), not_leader()) {
                QuorumStep::Ask(next) => {
                    requests += 1;
                    target = next;
                }
                QuorumStep::Fail(error) => break error.to_string(),
            }
        };
        assert_eq!(requests, QUORUM_REQUESTS_MAX);
        assert!(
            last.starts_with("no node asked answers as the quorum leader (broker 4 names node 5"),
            "{last}"
        );
    }
}
