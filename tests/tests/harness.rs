//! The harness itself: a `sluiced` started by [`Broker`] answers on its port, shuts down on
//! SIGTERM, comes back on the same port and data directory after a restart, and is gone
//! after SIGKILL.

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
