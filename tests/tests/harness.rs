//! The harness itself: a `sluiced` started by [`Broker`] answers on its port, shuts down on
//! SIGTERM, comes back on the same port and data directory after a restart, and is gone
//! after SIGKILL; a [`Cluster`](sluice_tests::Cluster) starts its nodes as one quorum and
//! stops, resumes and restarts them one by one.

use std::time::Duration;

use sluice_tests::{answers_api_versions, Broker};

#[test]
fn broker_answers_stops_on_sigterm_and_restarts_on_the_same_port() {
    let mut broker = Broker::start();
    let address = broker.listen_address();
    let data_dir = broker.data_dir().to_path_buf();
    assert!(
        answers_api_versions(address, Duration::from_secs(5)),
        "{}",
        broker.log()
    );
    assert!(broker.metrics_url().starts_with("http://127.0.0.1:"));

    broker.sigterm();
    let status = broker.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "sluiced exited with {status} on SIGTERM\n{}",
        broker.log()
    );
    assert!(!broker.is_running());

    broker.restart();
    assert_eq!(broker.listen_address(), address);
    assert_eq!(broker.data_dir(), data_dir);
    assert!(
        answers_api_versions(address, Duration::from_secs(5)),
        "{}",
        broker.log()
    );

    broker.kill9();
    assert!(!broker.is_running());
    assert!(!answers_api_versions(address, Duration::from_secs(1)));
    assert!(broker.log().contains("---- restart ----"));
}

/// The cluster harness: three nodes start with each other as controller voters and each
/// lists all three; a SIGSTOPped node stops answering and answers again after SIGCONT; a
/// killed node comes back on its ports.
#[test]
fn cluster_starts_stops_resumes_and_restarts_nodes() {
    use sluice_tests::{Cluster, ClusterOptions};

    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    assert_eq!(cluster.bootstrap().split(',').count(), 3);
    assert_eq!(cluster.voters().split(',').count(), 3);
    for id in cluster.ids() {
        assert!(
            cluster
                .voters()
                .contains(&format!("{id}@{}", cluster.internal_address(id))),
            "{}",
            cluster.voters()
        );
        assert_eq!(cluster.brokers_listed_by(id), Some(vec![1, 2, 3]));
    }
    assert!(cluster.controller_id().is_some());

    let address = cluster.node(2).listen_address();
    cluster.sigstop(2);
    assert!(!cluster.is_live(2));
    assert_eq!(cluster.live_ids(), vec![1, 3]);
    assert!(!answers_api_versions(address, Duration::from_millis(500)));
    cluster.sigcont(2);
    assert!(answers_api_versions(address, Duration::from_secs(5)));

    cluster.kill9(3);
    assert_eq!(cluster.live_ids(), vec![1, 2]);
    cluster.restart(3);
    assert_eq!(cluster.live_ids(), vec![1, 2, 3]);
    cluster.wait_for(
        "node 3 to list every broker again",
        Duration::from_secs(30),
        |c| (c.brokers_listed_by(3) == Some(vec![1, 2, 3])).then_some(()),
    );
}
