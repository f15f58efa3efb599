//! Consumer groups with the Java kafka-clients and with Kafka's own command-line
//! tools (both from Maven Central, run with the machine's JDK from the jars that
//! `scripts/test.sh` copies into `tests/java/target/lib`) against a real `sluiced`.
//!
//! - `java_kafka_clients_group_members_share_a_topic_and_commit` runs
//!   `tests/java/src/main/java/sluice/GroupConsume.java` (compiled here with javac), the
//!   scenario of `tests/interop/group_consume.py`: three `KafkaConsumer` members
//!   (`group.protocol=classic`) share a 6-partition topic, two partitions each; every record
//!   is consumed exactly once; after `commitSync` the committed offsets
//!   (`Admin.listConsumerGroupOffsets`) are the log end offsets; `describeConsumerGroups`
//!   shows the group Stable with three members of two partitions each; `listGroups` and
//!   `listConsumerGroups` list it; once the members close (LeaveGroup) it is Empty and keeps
//!   its offsets.
//! - `java_kafka_clients_consumer_protocol_group_members_share_a_topic_and_commit` runs the same
//!   program with `--protocol consumer` (`group.protocol=consumer`, KIP-848): the members join
//!   with ConsumerGroupHeartbeat and their rebalance listeners see the partitions added and
//!   taken away; `describeConsumerGroups` (ConsumerGroupDescribe) shows the group Stable, of
//!   type consumer, with the broker's default assignor `uniform` and two partitions for each
//!   member; `listGroups` lists it as a consumer group; the offsets and the Empty group after
//!   the members leave are checked as above.
//! - `kafka_console_consumer_and_consumer_group_command_see_the_group` runs the classes behind
//!   `kafka-topics.sh`, `kafka-console-producer.sh`, `kafka-console-consumer.sh` and
//!   `kafka-consumer-groups.sh` (Kafka 4.1 keeps them all in `kafka-tools`): a topic is made
//!   and filled; `ConsoleConsumer --group --from-beginning --max-messages N` prints every
//!   record once and commits as it closes; `ConsumerGroupCommand --describe` shows each
//!   partition with CURRENT-OFFSET = LOG-END-OFFSET and LAG 0, `--describe --state` the
//!   group Empty, `--list` the group. Then a second console consumer stays in the group:
//!   `--state` shows it Stable with one member and the range assignor, `--members --verbose`
//!   that member holding every partition, `--describe` the offsets held by it; it starts at
//!   the committed offsets although it asks `--from-beginning`, so a record produced now is
//!   the only one it prints. The tool exits 0 even when it failed, so its output is what is
//!   checked.
//! - `consumer_group_command_tables_are_read_and_lag_is_refused` pins the reading of those
//!   tables on output captured from Kafka 4.1.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_tests::{
    assert_interop_program, interop_broker, java_classpath, repo_root, run_program, spawn_program,
    BrokerOptions, InteropBroker, ProgramOutput,
};

const JAVAC_TIMEOUT: Duration = Duration::from_secs(120);
/// The whole of `GroupConsume`, which has its own deadline for each wait inside it.
const GROUP_PROGRAM_TIMEOUT: Duration = Duration::from_secs(240);
/// `GroupConsume`'s deadline for each of its waits (`--timeout`), inside the above.
const GROUP_WAIT_TIMEOUT_SECS: u64 = 90;
/// One run of one Kafka tool (a JVM start plus a few requests).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// `ConsoleConsumer --timeout-ms`: how long it waits for the next record before giving up.
const CONSOLE_CONSUMER_IDLE_MS: u64 = 120_000;
/// How long a console consumer may take to join the group (the coordinator waits its
/// initial rebalance delay, 3 s by default, first).
const GROUP_STABLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a console consumer in the group may take to print a record produced for it.
const LIVE_RECORD_TIMEOUT: Duration = Duration::from_secs(30);

const PARTITIONS: usize = 6;
/// Records the tools produce and consume.
const TOOL_RECORDS: usize = 1000;

/// Compile `GroupConsume.java` into `classes` with the same javac flags as `interop_java.rs`.
fn compile_group_consume(classpath: &str, classes: &Path) {
    let source = repo_root().join("tests/java/src/main/java/sluice/GroupConsume.java");
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

/// Run `GroupConsume --protocol protocol` against a fresh broker.
fn run_group_consume(protocol: &str) {
    let classpath = java_classpath();
    let classes = tempfile::tempdir().expect("temporary directory");
    compile_group_consume(&classpath, classes.path());

    let broker = interop_broker(BrokerOptions::default());
    let mut java = Command::new("java");
    java.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
        .arg("-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS")
        .arg("-cp")
        .arg(format!("{classpath}:{}", classes.path().display()))
        .arg("sluice.GroupConsume")
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .arg("--timeout")
        .arg(GROUP_WAIT_TIMEOUT_SECS.to_string())
        .arg("--protocol")
        .arg(protocol);
    assert_interop_program(
        &format!("java kafka-clients consumer group (group.protocol={protocol})"),
        &mut java,
        &broker,
        GROUP_PROGRAM_TIMEOUT,
    );
}

#[test]
fn java_kafka_clients_group_members_share_a_topic_and_commit() {
    run_group_consume("classic");
}

#[test]
fn java_kafka_clients_consumer_protocol_group_members_share_a_topic_and_commit() {
    run_group_consume("consumer");
}

const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const CONSUMER_GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// One row of a `ConsumerGroupCommand` table: column name -> value.
type Row = BTreeMap<String, String>;

/// Runs Kafka's command-line tools (`java -cp target/lib/* <class> ...`) against one broker.
struct Tools<'a> {
    classpath: String,
    broker: &'a InteropBroker,
}

impl Tools<'_> {
    fn command(&self, class: &str, args: &[&str]) -> Command {
        let mut java = Command::new("java");
        java.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-cp")
            .arg(&self.classpath)
            .arg(class)
            .arg("--bootstrap-server")
            .arg(self.broker.bootstrap())
            .args(args);
        java
    }

    /// Run tool `class` with `--bootstrap-server` and `args`, stdin `input`; panic with its
    /// output and the broker log unless it exits 0.
    fn run(&self, class: &str, args: &[&str], input: Option<&[u8]>) -> ProgramOutput {
        let output = run_program(&mut self.command(class, args), input, TOOL_TIMEOUT);
        if !output.success() {
            self.fail(class, args, &output, "the tool failed");
        }
        output
    }

    /// Run `ConsumerGroupCommand args` and read its table that has `column`.
    fn group_table(&self, args: &[&str], column: &str) -> (ProgramOutput, Vec<Row>) {
        let output = self.run(CONSUMER_GROUP_COMMAND, args, None);
        let rows = table_rows(&output.stdout_lossy(), column);
        (output, rows)
    }

    /// `kafka-console-producer.sh` with `lines` of "key<TAB>value" on its stdin.
    fn produce(&self, topic: &str, lines: &[String]) {
        let input = lines.join("\n") + "\n";
        self.run(
            CONSOLE_PRODUCER,
            &[
                "--topic",
                topic,
                "--property",
                "parse.key=true",
                "--producer-property",
                "acks=all",
            ],
            Some(input.as_bytes()),
        );
    }

    fn fail(&self, class: &str, args: &[&str], output: &ProgramOutput, what: &str) -> ! {
        panic!(
            "{class} {} against {}: {what}\n{}\n--- broker log ---\n{}",
            args.join(" "),
            self.broker.bootstrap(),
            output.describe(),
            self.broker.log()
        );
    }
}

/// The rows of a `ConsumerGroupCommand` table whose header starts with `GROUP` and has
/// `column` in it. Values are split on white space (a long group name shifts the columns),
/// and the coordinator column, "COORDINATOR (ID)" over "host:port  (id)", is joined back
/// into one.
fn table_rows(stdout: &str, column: &str) -> Vec<Row> {
    let join_ids = |line: &str| {
        let mut words: Vec<String> = Vec::new();
        for word in line.split_whitespace() {
            let is_id = word.starts_with('(') && word.ends_with(')') && word.len() > 2;
            match words.last_mut() {
                Some(last) if is_id => *last = format!("{last} {word}"),
                _ => words.push(word.to_string()),
            }
        }
        words
    };
    let mut lines = stdout.lines().map(join_ids).skip_while(|words| {
        words.first().map(String::as_str) != Some("GROUP") || !words.iter().any(|w| w == column)
    });
    let Some(names) = lines.next() else {
        return Vec::new();
    };
    lines
        .take_while(|values| !values.is_empty())
        .map(|values| names.iter().cloned().zip(values).collect())
        .collect()
}

fn field<'r>(row: &'r Row, name: &str) -> Result<&'r str, String> {
    row.get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("row without {name}: {row:?}"))
}

fn number(row: &Row, name: &str) -> Result<u64, String> {
    field(row, name)?
        .parse::<u64>()
        .map_err(|e| format!("{name} is not a number ({e}): {row:?}"))
}

/// `--describe`'s offsets table: one row per partition of `topic`, each read to its end
/// (CURRENT-OFFSET = LOG-END-OFFSET, LAG 0), `records` in all, held by `consumer_id`
/// ("-" when the group has no members).
fn check_offsets(
    rows: &[Row],
    group: &str,
    topic: &str,
    records: u64,
    consumer_id: &str,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut log_end_total = 0;
    for row in rows {
        if field(row, "GROUP")? != group || field(row, "TOPIC")? != topic {
            return Err(format!("a row for another group or topic: {row:?}"));
        }
        let partition = number(row, "PARTITION")?;
        let (current, log_end, lag) = (
            number(row, "CURRENT-OFFSET")?,
            number(row, "LOG-END-OFFSET")?,
            number(row, "LAG")?,
        );
        if current != log_end || lag != 0 {
            return Err(format!(
                "partition {partition}: CURRENT-OFFSET {current}, LOG-END-OFFSET {log_end}, LAG {lag}"
            ));
        }
        if field(row, "CONSUMER-ID")? != consumer_id {
            return Err(format!(
                "partition {partition} is held by {}, not {consumer_id}",
                field(row, "CONSUMER-ID")?
            ));
        }
        if !seen.insert(partition) {
            return Err(format!("partition {partition} listed twice"));
        }
        log_end_total += log_end;
    }
    let all: BTreeSet<u64> = (0..PARTITIONS as u64).collect();
    if seen != all {
        return Err(format!("partitions {seen:?}, not {all:?}"));
    }
    if log_end_total != records {
        return Err(format!(
            "the log end offsets add up to {log_end_total}, not {records}"
        ));
    }
    Ok(())
}

#[test]
fn kafka_console_consumer_and_consumer_group_command_see_the_group() {
    let broker = interop_broker(BrokerOptions::default());
    let tools = Tools {
        classpath: java_classpath(),
        broker: &broker,
    };
    let tag = std::process::id();
    let topic = format!("java-tools-{tag}");
    let group = format!("java-tools-group-{tag}");

    // kafka-topics.sh --create, then kafka-console-producer.sh with keys, which the default
    // partitioner spreads over the partitions.
    let partitions = PARTITIONS.to_string();
    let create_args = [
        "--create",
        "--topic",
        &topic,
        "--partitions",
        &partitions,
        "--replication-factor",
        "1",
    ];
    let created = tools.run(TOPIC_COMMAND, &create_args, None);
    if !created
        .stdout_lossy()
        .contains(&format!("Created topic {topic}."))
    {
        tools.fail(
            TOPIC_COMMAND,
            &create_args,
            &created,
            "no \"Created topic\"",
        );
    }
    let lines: Vec<String> = (0..TOOL_RECORDS).map(|i| format!("k{i}\tv{i}")).collect();
    tools.produce(&topic, &lines);

    // kafka-console-consumer.sh --group: prints every record once, commits on exit.
    let records = TOOL_RECORDS.to_string();
    let idle = CONSOLE_CONSUMER_IDLE_MS.to_string();
    let consumer_args = [
        "--topic",
        &topic,
        "--group",
        &group,
        "--from-beginning",
        "--timeout-ms",
        &idle,
        "--property",
        "print.key=true",
    ];
    let bounded_args = [&consumer_args[..], &["--max-messages", &records]].concat();
    let consumed = tools.run(CONSOLE_CONSUMER, &bounded_args, None);
    let stdout = consumed.stdout_lossy();
    let printed: Vec<&str> = stdout.lines().collect();
    let distinct: BTreeSet<&str> = printed.iter().copied().collect();
    let expected: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    if printed.len() != TOOL_RECORDS || distinct != expected {
        let missing: Vec<_> = expected.difference(&distinct).take(5).collect();
        let unexpected: Vec<_> = distinct.difference(&expected).take(5).collect();
        let what = format!(
            "printed {} lines ({} distinct), expected each of the {TOOL_RECORDS} records once; \
             missing {missing:?}, unexpected {unexpected:?}",
            printed.len(),
            distinct.len()
        );
        tools.fail(CONSOLE_CONSUMER, &bounded_args, &consumed, &what);
    }

    // kafka-consumer-groups.sh --describe: every partition read and committed, no member.
    let describe_args = ["--describe", "--group", &group];
    let (described, rows) = tools.group_table(&describe_args, "LOG-END-OFFSET");
    if let Err(problem) = check_offsets(&rows, &group, &topic, TOOL_RECORDS as u64, "-") {
        tools.fail(CONSUMER_GROUP_COMMAND, &describe_args, &described, &problem);
    }
    // --describe --state: the console consumer has left (LeaveGroup).
    let state_args = ["--describe", "--group", &group, "--state"];
    let (state, rows) = tools.group_table(&state_args, "STATE");
    let empty = |rows: &[Row]| -> Result<(), String> {
        let [row] = rows else {
            return Err(format!("{} rows", rows.len()));
        };
        if field(row, "GROUP")? != group
            || field(row, "STATE")? != "Empty"
            || field(row, "#MEMBERS")? != "0"
        {
            return Err(format!("expected {group} Empty with 0 members: {row:?}"));
        }
        Ok(())
    };
    if let Err(problem) = empty(&rows) {
        tools.fail(CONSUMER_GROUP_COMMAND, &state_args, &state, &problem);
    }
    // --list
    let listed = tools.run(CONSUMER_GROUP_COMMAND, &["--list"], None);
    if !listed.stdout_lossy().lines().any(|l| l.trim() == group) {
        let what = format!("{group} is not listed");
        tools.fail(CONSUMER_GROUP_COMMAND, &["--list"], &listed, &what);
    }

    // A console consumer that stays in the group (it is killed at the end of the test):
    // the group becomes Stable with it as the only member holding every partition, and it
    // starts at the committed offsets although it asks --from-beginning.
    let mut live = spawn_program(&mut tools.command(CONSOLE_CONSUMER, &consumer_args), None);
    let deadline = Instant::now() + GROUP_STABLE_TIMEOUT;
    let stable = loop {
        let (state, rows) = tools.group_table(&state_args, "STATE");
        let row = rows.first().cloned().unwrap_or_default();
        if row.get("STATE").map(String::as_str) == Some("Stable") {
            break (state, row);
        }
        if Instant::now() > deadline {
            let what = format!(
                "the group did not become Stable with a console consumer in it within {:?}: \
                 {rows:?}\n--- the console consumer ---\n{}",
                GROUP_STABLE_TIMEOUT,
                live.wait(Duration::ZERO).describe()
            );
            tools.fail(CONSUMER_GROUP_COMMAND, &state_args, &state, &what);
        }
    };
    let (state, row) = stable;
    if row.get("#MEMBERS").map(String::as_str) != Some("1")
        || row.get("ASSIGNMENT-STRATEGY").map(String::as_str) != Some("range")
    {
        let what = format!("expected one member and the range assignor: {row:?}");
        tools.fail(CONSUMER_GROUP_COMMAND, &state_args, &state, &what);
    }
    // --describe --members --verbose: that member and its assignment.
    let members_args = ["--describe", "--group", &group, "--members", "--verbose"];
    let (members, rows) = tools.group_table(&members_args, "CLIENT-ID");
    let all_partitions = (0..PARTITIONS)
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let member = |rows: &[Row]| -> Result<String, String> {
        let [row] = rows else {
            return Err(format!("{} members: {rows:?}", rows.len()));
        };
        let consumer_id = field(row, "CONSUMER-ID")?;
        if !consumer_id.starts_with("console-consumer-")
            || field(row, "CLIENT-ID")? != "console-consumer"
            || field(row, "HOST")? == "-"
            || number(row, "#PARTITIONS")? != PARTITIONS as u64
            || field(row, "CURRENT-ASSIGNMENT")? != format!("{topic}:{all_partitions}")
        {
            return Err(format!(
                "expected the console consumer holding {topic}:{all_partitions}: {row:?}"
            ));
        }
        Ok(consumer_id.to_string())
    };
    let consumer_id = match member(&rows) {
        Ok(id) => id,
        Err(problem) => tools.fail(CONSUMER_GROUP_COMMAND, &members_args, &members, &problem),
    };
    // --describe: the same offsets, now held by that member.
    let (described, rows) = tools.group_table(&describe_args, "LOG-END-OFFSET");
    if let Err(problem) = check_offsets(&rows, &group, &topic, TOOL_RECORDS as u64, &consumer_id) {
        tools.fail(CONSUMER_GROUP_COMMAND, &describe_args, &described, &problem);
    }
    // One more record: the member prints it, and only it.
    let after = "k-after\tv-after".to_string();
    tools.produce(&topic, std::slice::from_ref(&after));
    let printed = live.wait_for_line(&after, LIVE_RECORD_TIMEOUT);
    let so_far = live.stdout_so_far();
    if printed.is_none() || so_far.lines().collect::<Vec<_>>() != [after.as_str()] {
        let output = live.wait(Duration::ZERO);
        let what = format!(
            "the console consumer that joined at the committed offsets printed {} lines, \
             expected only {after:?}",
            so_far.lines().count()
        );
        tools.fail(CONSOLE_CONSUMER, &consumer_args, &output, &what);
    }
    eprintln!(
        "kafka tools: {TOOL_RECORDS} records through ConsoleConsumer --group {group}; \
         ConsumerGroupCommand: {PARTITIONS} partitions at their log end, Empty, listed; \
         a second console consumer: Stable, all partitions, resumed at the committed offsets"
    );
}

/// The table reader and the offsets check on `ConsumerGroupCommand` output captured from
/// Kafka 4.1.1 (`scripts/kafka-reference.sh`): a partition one record behind is refused.
#[test]
fn consumer_group_command_tables_are_read_and_lag_is_refused() {
    let describe = "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID
g1              t1              5          13              13              0               -               -               -
g1              t1              4          25              26              1               -               -               -
g1              t1              3          10              10              0               -               -               -
g1              t1              2          21              21              0               -               -               -
g1              t1              1          15              15              0               -               -               -
g1              t1              0          17              17              0               -               -               -
";
    let rows = table_rows(describe, "LOG-END-OFFSET");
    assert_eq!(rows.len(), PARTITIONS);
    assert_eq!(
        check_offsets(&rows, "g1", "t1", 102, "-"),
        Err("partition 4: CURRENT-OFFSET 25, LOG-END-OFFSET 26, LAG 1".to_string())
    );
    let caught_up = describe.replace(
        "25              26              1",
        "26              26              0",
    );
    assert_eq!(
        check_offsets(&table_rows(&caught_up, "LAG"), "g1", "t1", 102, "-"),
        Ok(())
    );
    assert!(check_offsets(&table_rows(&caught_up, "LAG"), "g1", "t1", 101, "-").is_err());

    let state = "\nGROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS
g1              127.0.0.1:19192  (1)      range                Stable               1
";
    let rows = table_rows(state, "STATE");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["COORDINATOR (ID)"], "127.0.0.1:19192 (1)");
    assert_eq!(rows[0]["STATE"], "Stable");
    assert_eq!(rows[0]["#MEMBERS"], "1");
}
