//! A cluster has one id, whichever broker answers: three brokers answer Metadata and
//! DescribeCluster with the same cluster id, and each keeps that id in its data dir's
//! `cluster.id`. The id survives restarting one broker and restarting all of them; a
//! broker whose data dir names another id adopts the cluster's (and says so) while the dir
//! holds no partition logs, and refuses to start once it does. Restarting
//! a controller voter does not make openraft log an ERROR about initializing it again.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use sluice_tests::{Cluster, ClusterOptions};

const NODES: usize = 3;
/// The DescribeCluster version asked (every version carries the cluster id).
const DESCRIBE_CLUSTER_VERSION: i16 = 1;
/// What the harness writes before each restart in a node's log.
const RESTART_MARKER: &str = "---- restart ----";

/// The cluster id as node `id` tells it: (Metadata, DescribeCluster, `cluster.id`).
fn ids_of(cluster: &Cluster, id: i32) -> (String, String, String) {
    let metadata = cluster
        .metadata_from(id, Some(&[]))
        .unwrap_or_else(|e| panic!("Metadata from node {id}: {e}\n{}", cluster.logs()));
    let mut conn = cluster.connect(id).expect("connect");
    let described: DescribeClusterResponse = conn
        .request(
            ApiKey::DescribeCluster,
            DESCRIBE_CLUSTER_VERSION,
            &DescribeClusterRequest::default(),
        )
        .unwrap_or_else(|e| panic!("DescribeCluster from node {id}: {e}"));
    assert_eq!(described.error_code, 0, "{described:?}");
    let file = std::fs::read_to_string(cluster.data_dir(id).join("cluster.id"))
        .unwrap_or_else(|e| panic!("node {id}'s cluster.id: {e}"));
    (
        metadata
            .cluster_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        described.cluster_id.to_string(),
        file.trim().to_string(),
    )
}

/// Every node answers with one and the same cluster id, which every data dir holds;
/// returns it.
fn assert_one_cluster_id(cluster: &Cluster, when: &str) -> String {
    let seen: Vec<(i32, (String, String, String))> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, ids_of(cluster, id)))
        .collect();
    let distinct: BTreeSet<&String> = seen
        .iter()
        .flat_map(|(_, (metadata, described, file))| [metadata, described, file])
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "{when}: (node, (Metadata, DescribeCluster, cluster.id)) = {seen:?}"
    );
    let id = distinct.into_iter().next().cloned().unwrap_or_default();
    assert!(!id.is_empty(), "{when}: an empty cluster id");
    id
}

/// The part of a node's log after the harness's first restart marker.
fn log_since_first_restart(cluster: &Cluster, id: i32) -> String {
    let log = std::fs::read_to_string(cluster.broker(id).log_path()).unwrap_or_default();
    match log.find(RESTART_MARKER) {
        Some(at) => log[at..].to_string(),
        None => String::new(),
    }
}

#[test]
fn every_broker_answers_with_the_one_cluster_id_across_restarts() {
    let mut cluster = Cluster::start(NODES, ClusterOptions::default());
    let cluster_id = assert_one_cluster_id(&cluster, "after start");

    cluster.restart(2);
    assert_eq!(
        assert_one_cluster_id(&cluster, "after restarting node 2"),
        cluster_id
    );

    // A data dir naming another cluster id is brought in line, not believed.
    cluster.kill9(3);
    std::fs::write(
        cluster.data_dir(3).join("cluster.id"),
        "some-other-cluster\n",
    )
    .expect("overwrite node 3's cluster.id");
    cluster.restart(3);
    assert_eq!(
        assert_one_cluster_id(&cluster, "after node 3 came back with another id"),
        cluster_id
    );
    let log = log_since_first_restart(&cluster, 3);
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("some-other-cluster")),
        "node 3 warns that it replaced its data dir's id\n{log}"
    );

    // With partition logs in it, a data dir naming another cluster is refused instead
    // (Kafka's InconsistentClusterIdException): its logs must not be reconciled against
    // this cluster's metadata. Written back to the cluster's id, it starts.
    cluster.create_one_partition_topic("cluster-id", 3, &[]);
    cluster.kill9(3);
    let id_file = cluster.data_dir(3).join("cluster.id");
    std::fs::write(&id_file, "another-cluster\n").expect("overwrite node 3's cluster.id");
    cluster
        .node(3)
        .restart_unready()
        .expect("spawn node 3 with another cluster's id");
    let status = cluster.node(3).wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "node 3 must refuse a data dir of another cluster\n{}",
        cluster.logs()
    );
    let log = log_since_first_restart(&cluster, 3);
    assert!(
        log.contains("belongs to cluster another-cluster")
            && log.contains("refusing to serve or change its partition logs"),
        "node 3 says why it refused\n{log}"
    );
    std::fs::write(&id_file, format!("{cluster_id}\n")).expect("write the cluster's id back");
    cluster.restart(3);
    assert_eq!(
        assert_one_cluster_id(&cluster, "after node 3 came back with the cluster's id"),
        cluster_id
    );

    cluster.restart_all();
    assert_eq!(
        assert_one_cluster_id(&cluster, "after restarting every node"),
        cluster_id
    );
    for id in cluster.ids() {
        let log = log_since_first_restart(&cluster, id);
        assert!(
            !log.contains("Can not initialize"),
            "node {id} tried to initialize an initialized controller on restart\n{log}"
        );
    }
}
