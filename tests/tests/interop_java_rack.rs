//! Follower reads (KIP-392) with the Java kafka-clients consumer (from Maven Central, run
//! with the machine's JDK): three brokers in racks rack-1..3, a topic with replication
//! factor 3 and one partition. The test produces the records itself, finds a follower and
//! its rack in Metadata, and runs `tests/java/src/main/java/sluice/RackFetch.java`
//! (compiled here with javac against the jars that `scripts/test.sh` copies into
//! `tests/java/target/lib`) with `client.rack` set to that rack: the program reads every
//! record back (assign and seek to the beginning, no group). The follower's
//! `sluice_fetch_bytes_out_total{fetcher="consumer"}` grows by at least the records' size,
//! while the leader's stays small: it only answers the first fetch with the redirect
//! (preferred_read_replica, no records).
//!
//! `SLUICE_JAVA_DEBUG=debug` (or `trace`) runs the program with that log level for the
//! client's `org.apache.kafka.clients.consumer.internals` loggers (AbstractFetch,
//! FetchCollector, SubscriptionState...) and prints its output; `RUST_LOG` reaches the
//! brokers, whose logs a failure prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_tests::rack_reads::{self, racked_cluster, summary_field};
use sluice_tests::{java_classpath, repo_root, run_program};

const TOPIC: &str = "java-rack";
const PREFIX: &str = "rack";
const BATCHES: usize = 50;
const RECORDS_PER_BATCH: usize = 100;
/// Bytes b'p' after each value's number (see the program's record format).
const PAD: usize = 100;
const JAVAC_TIMEOUT: Duration = Duration::from_secs(120);
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(180);
/// The program's own deadline to read every record, inside [`PROGRAM_TIMEOUT`].
const READ_TIMEOUT_SECS: u64 = 120;

/// Record `i`'s value, as the program expects it.
fn value(i: usize) -> String {
    format!("{PREFIX}-{i}-{}", "p".repeat(PAD))
}

/// Compile `RackFetch.java` into `classes` with the same javac flags as `interop_java.rs`.
fn compile_rack_fetch(classpath: &str, classes: &Path) {
    let source = repo_root().join("tests/java/src/main/java/sluice/RackFetch.java");
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
        .arg(classes)
        .arg("-cp")
        .arg(classpath)
        .arg(&source);
    let compiled = run_program(&mut javac, None, JAVAC_TIMEOUT);
    assert!(
        compiled.success(),
        "javac {} failed\n{}",
        source.display(),
        compiled.describe()
    );
}

#[test]
fn java_kafka_clients_with_client_rack_reads_from_the_follower_in_its_rack() {
    let classpath = java_classpath();
    let classes = tempfile::tempdir().expect("temporary directory");
    compile_rack_fetch(&classpath, classes.path());

    let mut cluster = racked_cluster(3);
    let prepared = rack_reads::prepare(&mut cluster, TOPIC, BATCHES, RECORDS_PER_BATCH, value);
    let (leader, follower, rack, count) = (
        prepared.leader,
        prepared.follower,
        prepared.rack.clone(),
        prepared.count,
    );

    // The client's consumer internals at this level (e.g. SLUICE_JAVA_DEBUG=debug), printed
    // with the program's output even when the test passes.
    let debug = std::env::var("SLUICE_JAVA_DEBUG").ok();
    let mut java = Command::new("java");
    java.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
        .arg("-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS");
    if let Some(level) = &debug {
        java.arg(format!(
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients.consumer.internals={level}"
        ));
    }
    java.arg("-cp")
        .arg(format!("{classpath}:{}", classes.path().display()))
        .arg("sluice.RackFetch")
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .arg("--topic")
        .arg(TOPIC)
        .arg("--rack")
        .arg(&rack)
        .arg("--prefix")
        .arg(PREFIX)
        .arg("--count")
        .arg(count.to_string())
        .arg("--pad")
        .arg(PAD.to_string())
        .arg("--timeout")
        .arg(READ_TIMEOUT_SECS.to_string());
    let (output, summary) = prepared.run_reader(
        &cluster,
        "sluice.RackFetch",
        &mut java,
        PROGRAM_TIMEOUT,
        debug.is_some(),
    );
    let stdout = output.stdout_lossy();
    for line in stdout.lines().filter(|l| !l.starts_with("SUMMARY")) {
        eprintln!("{line}");
    }
    eprintln!("{summary} ({:.1}s)", output.elapsed.as_secs_f64());
    assert!(
        summary.contains(&format!(" {count} records read ")),
        "the program read all {count} records: {summary}"
    );
    assert_eq!(
        summary_field(&summary, "leader"),
        Some(leader.to_string().as_str()),
        "the client saw the same leader in Metadata: {summary}"
    );

    let (grown, context) = prepared.assert_read_from_follower(&cluster, &summary);
    let grown_on = |id: i32| grown[(id - 1) as usize];
    // No other broker serves the partition.
    for id in cluster.ids() {
        if id != leader && id != follower {
            assert_eq!(
                grown_on(id),
                0.0,
                "node {id} (neither leader nor the chosen follower) served no records: {context}"
            );
        }
    }
}
