//! librdkafka (confluent-kafka's) against a real `sluiced`: with `debug=feature` it must not
//! disable LZ4 — it derives that feature from FindCoordinator support, and before Sluice had
//! a group coordinator it silently sent LZ4-configured batches uncompressed — and the
//! batches it sends with `compression.type=lz4` are stored as LZ4 (the codec bits of every
//! stored batch's attributes). The program is `tests/interop/confluent_features.py`.
//!
//! Against Kafka 4.1.1 librdkafka 2.16 disables nothing; against Sluice it still disables
//! the SASL features, which are later work (issue 14): the test pins that list, so it fails
//! when one more feature goes missing and is to be shortened as SASL lands.

use std::process::Command;
use std::time::Duration;

use sluice_protocol::batch::{Batches, Compression};
use sluice_tests::raw::{fetch, fetch_request, RawConnection};
use sluice_tests::{repo_root, run_program, venv_python, Broker};

const TOPIC: &str = "lz4-features";
const RECORDS: i64 = 100;

#[test]
fn librdkafka_keeps_lz4_and_its_batches_are_stored_as_lz4() {
    let broker = Broker::start();
    let mut command = Command::new(venv_python());
    command
        .arg(repo_root().join("tests/interop/confluent_features.py"))
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--topic")
        .arg(TOPIC)
        .arg("--records")
        .arg(RECORDS.to_string());
    let output = run_program(&mut command, None, Duration::from_secs(60));
    assert!(
        output.success(),
        "{}\n--- broker log ---\n{}",
        output.describe(),
        broker.log()
    );
    let stdout = output.stdout_lossy();
    let disabled: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("DISABLED "))
        .collect();
    assert_eq!(
        disabled,
        ["Sasl", "SaslAuthReq", "SaslHandshake"],
        "{stdout}"
    );

    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let response = fetch(&mut conn, &fetch_request(TOPIC, 0, 0, 10 << 20));
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let mut stored = 0;
    for item in Batches::new(&records) {
        let (header, _) = item.expect("whole batches");
        assert_eq!(
            header.compression().unwrap(),
            Compression::Lz4,
            "{header:?}"
        );
        stored += i64::from(header.last_offset_delta) + 1;
    }
    assert_eq!(stored, RECORDS);
}
