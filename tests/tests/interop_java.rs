//! The Java kafka-clients producer, consumer and admin client (from Maven Central, run
//! with the machine's JDK) against a real `sluiced`: for acks 0, 1 and all, times codecs
//! none, gzip, snappy, lz4 and zstd, 10,000 records with keys and headers go in and come
//! back byte for byte, in order per partition. The program is
//! `tests/java/src/main/java/sluice/Interop.java`, compiled here with javac against the
//! jars that `scripts/test.sh` copies into `tests/java/target/lib`.

use std::process::Command;
use std::time::Duration;

use sluice_tests::{
    assert_interop_program, interop_broker, java_classpath, repo_root, run_program, BrokerOptions,
};

#[test]
fn java_kafka_clients_round_trip_every_acks_mode_and_codec() {
    let classpath = java_classpath();
    let classes = tempfile::tempdir().expect("temporary directory");
    let source = repo_root().join("tests/java/src/main/java/sluice/Interop.java");
    let mut javac = Command::new("javac");
    javac
        .args([
            "-encoding",
            "UTF-8",
            "--release",
            "17",
            "-Xlint:all",
            "-Werror",
            "-d",
        ])
        .arg(classes.path())
        .arg("-cp")
        .arg(&classpath)
        .arg(&source);
    let compiled = run_program(&mut javac, None, Duration::from_secs(120));
    assert!(
        compiled.success(),
        "javac {} failed\n{}",
        source.display(),
        compiled.describe()
    );

    let broker = interop_broker(BrokerOptions::default());
    let mut java = Command::new("java");
    java.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(format!("{classpath}:{}", classes.path().display()))
        .arg("sluice.Interop")
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    assert_interop_program(
        "java kafka-clients",
        &mut java,
        &broker,
        Duration::from_secs(240),
    );
}
