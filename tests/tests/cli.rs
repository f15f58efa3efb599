//! The `sluice` CLI against a real `sluiced`: topic create / list / describe / delete,
//! produce lines from stdin with keys, consume them back; `--bootstrap` before or after the
//! subcommand; clear errors. Set `SLUICE_INTEROP_BOOTSTRAP` to run the same test against
//! another broker (the CLI only speaks the Kafka protocol, so it must work on Apache Kafka).

use std::process::Command;
use std::time::Duration;

use sluice_tests::{interop_broker, run_program, sluice_binary, ProgramOutput};

const TIMEOUT: Duration = Duration::from_secs(60);

fn sluice(args: &[&str], input: Option<&[u8]>) -> ProgramOutput {
    let mut command = Command::new(sluice_binary());
    command.args(args);
    run_program(&mut command, input, TIMEOUT)
}

fn ok(output: ProgramOutput, what: &str) -> String {
    assert!(output.success(), "{what} failed:\n{}", output.describe());
    output.stdout_lossy()
}

#[test]
fn cli_manages_topics_and_round_trips_records() {
    let broker = interop_broker(sluice_tests::BrokerOptions {
        extra_args: vec!["--auto-create-topics".into(), "false".into()],
        ..Default::default()
    });
    let bootstrap = broker.bootstrap();
    let b = bootstrap.as_str();

    // --bootstrap before the subcommand, and after it.
    ok(
        sluice(
            &[
                "--bootstrap",
                b,
                "topic",
                "create",
                "cli-demo",
                "--partitions",
                "3",
                "--config",
                "retention.ms=3600000",
            ],
            None,
        ),
        "topic create",
    );
    let list = ok(
        sluice(&["topic", "list", "--bootstrap", b], None),
        "topic list",
    );
    assert!(
        list.lines()
            .any(|l| l.trim() == "cli-demo" || l.split_whitespace().next() == Some("cli-demo")),
        "list:\n{list}"
    );

    let describe = ok(
        sluice(&["topic", "describe", "cli-demo", "--bootstrap", b], None),
        "topic describe",
    );
    assert!(describe.contains("cli-demo"), "{describe}");
    for partition in 0..3 {
        assert!(describe.contains(&format!("{partition}")), "{describe}");
    }
    assert!(
        describe.contains("retention.ms") && describe.contains("3600000"),
        "configs missing:\n{describe}"
    );

    // Creating it again is a clear error naming Kafka's code.
    let again = sluice(&["--bootstrap", b, "topic", "create", "cli-demo"], None);
    assert!(!again.success());
    let message = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(
        message.contains("TOPIC_ALREADY_EXISTS")
            || message.to_lowercase().contains("already exists"),
        "{message}"
    );

    // Produce 300 keyed lines; keyed records land on partitions by murmur2, so consume all.
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(&format!("key-{i}:value number {i}\n"));
    }
    ok(
        sluice(
            &[
                "--bootstrap",
                b,
                "produce",
                "cli-demo",
                "--key-separator",
                ":",
                "--acks",
                "all",
            ],
            Some(input.as_bytes()),
        ),
        "produce",
    );

    let consumed = ok(
        sluice(
            &[
                "--bootstrap",
                b,
                "consume",
                "cli-demo",
                "--from-beginning",
                "--count",
                "300",
                "--print-key",
                "--timeout-ms",
                "20000",
            ],
            None,
        ),
        "consume",
    );
    let mut lines: Vec<&str> = consumed.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 300, "consumed:\n{consumed}");
    lines.sort();
    let mut expected: Vec<String> = (0..300)
        .map(|i| format!("key-{i}:value number {i}"))
        .collect();
    expected.sort();
    // --print-key separates key and value with the same separator or a tab: accept either.
    let normalized: Vec<String> = lines.iter().map(|l| l.replacen('\t', ":", 1)).collect();
    let mut normalized = normalized;
    normalized.sort();
    assert_eq!(normalized, expected);

    // One partition only.
    let p0 = ok(
        sluice(
            &[
                "--bootstrap",
                b,
                "consume",
                "cli-demo",
                "--from-beginning",
                "--partition",
                "0",
                "--timeout-ms",
                "2000",
            ],
            None,
        ),
        "consume partition 0",
    );
    let p0_count = p0.lines().filter(|l| !l.is_empty()).count();
    assert!(
        p0_count > 0 && p0_count < 300,
        "partition 0 had {p0_count} records"
    );

    // Unknown topic with auto-creation off: a clear error, non-zero exit.
    let missing = sluice(
        &["--bootstrap", b, "topic", "describe", "no-such-topic"],
        None,
    );
    assert!(!missing.success(), "{}", missing.describe());

    ok(
        sluice(&["--bootstrap", b, "topic", "delete", "cli-demo"], None),
        "topic delete",
    );
    let list = ok(
        sluice(&["--bootstrap", b, "topic", "list"], None),
        "topic list after delete",
    );
    assert!(!list.contains("cli-demo"), "{list}");
}

#[test]
fn cli_help_explains_every_command() {
    let help = ok(sluice(&["--help"], None), "--help");
    for word in ["topic", "produce", "consume", "--bootstrap"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let help = ok(sluice(&["consume", "--help"], None), "consume --help");
    for word in ["--from-beginning", "--partition", "--count"] {
        assert!(help.contains(word), "consume --help lacks {word}:\n{help}");
    }
}

#[test]
fn sluiced_help_documents_options_and_defaults() {
    let mut command = Command::new(sluice_tests::sluiced_binary());
    command.arg("--help");
    let help = ok(run_program(&mut command, None, TIMEOUT), "sluiced --help");
    for word in [
        "--node-id",
        "--data-dir",
        "--listen",
        "--advertised-listener",
        "--metrics-listen",
        "--durability",
        "--config",
        "SLUICE_DATA_DIR",
        "127.0.0.1:9092",
        "./sluice-data",
    ] {
        assert!(help.contains(word), "sluiced --help lacks {word}:\n{help}");
    }
    // Bad configuration is an error with exit code 2, not a crash.
    let mut command = Command::new(sluice_tests::sluiced_binary());
    command.args(["--durability", "sometimes"]);
    let bad = run_program(&mut command, None, TIMEOUT);
    assert_eq!(
        bad.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        bad.describe()
    );
}
