//! `sluice consume`: a topic's records to stdout, one value (optionally its key first) per
//! line, from the earliest or the latest offset of every partition or of one; or, with
//! `--group`, as a member of a consumer group (the classic protocol, or KIP-848's with
//! `--group-protocol consumer`, as Kafka's `kafka-console-consumer --group` with
//! `--consumer-property group.protocol=...`): the group assigns the partitions, reading starts at
//! the group's committed offsets (`--from-beginning` only matters where none are
//! committed), the positions printed are committed every 5 s and on exit.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use sluice_client::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupConsumer, GroupConsumerConfig, GroupProtocol,
    OffsetReset, SeekTo,
};

use crate::output::quiet_on_broken_pipe;
use crate::CLI_METADATA_WAIT;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Start at the earliest retained record (default: only records produced from now on).
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition (default: all partitions).
    #[arg(long)]
    partition: Option<i32>,
    /// Exit after printing this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Exit once no record has arrived for this long (default: run until interrupted).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print the key (or "null") and the key separator before each value.
    #[arg(long)]
    print_key: bool,
    /// Separator printed between key and value with --print-key.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    key_separator: String,
    /// Read as a member of this consumer group: partitions assigned by the group, starting
    /// at its committed offsets, positions committed as records are printed and on exit.
    #[arg(long, conflicts_with = "partition")]
    group: Option<String>,
    /// With --group: the group protocol (Kafka's group.protocol): `classic` (JoinGroup and
    /// SyncGroup; the members assign) or `consumer` (KIP-848; the coordinator assigns and
    /// moves partitions incrementally).
    #[arg(long, value_name = "PROTOCOL", default_value = "classic", value_parser = parse_group_protocol, requires = "group")]
    group_protocol: GroupProtocol,
    /// The rack this consumer runs in (Kafka's client.rack): lets the partition leader
    /// point it at an in-sync replica in the same rack (follower reads, KIP-392).
    #[arg(long, value_name = "RACK")]
    client_rack: Option<String>,
}

/// Where records come from: partitions assigned here, or a consumer group.
enum Source {
    Assigned(Box<Consumer>),
    Group(Box<GroupConsumer>),
}

impl Source {
    async fn poll(&mut self, timeout: Duration) -> sluice_client::Result<Vec<ConsumerRecord>> {
        match self {
            Source::Assigned(consumer) => consumer.poll(timeout).await,
            Source::Group(consumer) => consumer.poll(timeout).await,
        }
    }

    /// A group member commits what was printed and leaves the group.
    async fn close(self) -> anyhow::Result<()> {
        if let Source::Group(consumer) = self {
            (*consumer).close().await?;
        }
        Ok(())
    }
}

/// Print `args.topic` until interrupted, `--count` records or `--timeout-ms` of quiet.
pub async fn run(bootstrap: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut consumer = match &args.group {
        Some(group) => Source::Group(Box::new(group_consumer(bootstrap, group, &args).await?)),
        None => Source::Assigned(Box::new(assigned_consumer(bootstrap, &args).await?)),
    };
    let printed = print_records(&mut consumer, &args).await;
    let closed = consumer.close().await;
    printed?;
    closed
}

/// A member of `group` subscribed to `args.topic`.
async fn group_consumer(
    bootstrap: &str,
    group: &str,
    args: &ConsumeArgs,
) -> anyhow::Result<GroupConsumer> {
    let mut config = GroupConsumerConfig::new(bootstrap, group);
    config.group_protocol = args.group_protocol;
    config.consumer.client_id = "sluice-cli".to_string();
    config.consumer.client_rack = args.client_rack.clone();
    config.consumer.auto_offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let mut consumer = GroupConsumer::new(config).await?;
    consumer.subscribe(&[args.topic.as_str()])?;
    Ok(consumer)
}

fn parse_group_protocol(name: &str) -> Result<GroupProtocol, String> {
    GroupProtocol::from_name(name)
        .ok_or_else(|| format!("'{name}': the group protocol is classic or consumer"))
}

/// The poll-and-print loop of [`run`].
async fn print_records(consumer: &mut Source, args: &ConsumeArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
        let poll_timeout = match idle_limit {
            Some(limit) => limit
                .saturating_sub(last_record.elapsed())
                .min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        let records = tokio::select! {
            records = consumer.poll(poll_timeout) => records?,
            _ = &mut interrupted => break,
        };
        if records.is_empty() {
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for record in records {
            if args.count.is_some_and(|count| printed >= count) {
                break;
            }
            if let Err(error) = write_record(&mut out, &record, args) {
                return quiet_on_broken_pipe(error);
            }
            printed += 1;
        }
        if let Err(error) = out.flush() {
            return quiet_on_broken_pipe(error);
        }
    }
    if let Err(error) = out.flush() {
        return quiet_on_broken_pipe(error);
    }
    Ok(())
}

/// A consumer assigned the partitions `args` asks for, each at its start position.
async fn assigned_consumer(bootstrap: &str, args: &ConsumeArgs) -> anyhow::Result<Consumer> {
    let mut config = ConsumerConfig::new(bootstrap);
    config.client_id = "sluice-cli".to_string();
    config.client_rack = args.client_rack.clone();
    let mut consumer = Consumer::new(config).await?;
    let info = consumer
        .cluster()
        .topic(&args.topic, CLI_METADATA_WAIT)
        .await?;
    let partitions: Vec<i32> = match args.partition {
        Some(partition) => vec![partition],
        None => (0..info.partition_count()).collect(),
    };
    consumer
        .assign(
            partitions
                .iter()
                .map(|p| (args.topic.clone(), *p))
                .collect(),
        )
        .await?;
    let start = if args.from_beginning {
        SeekTo::Earliest
    } else {
        SeekTo::Latest
    };
    for partition in &partitions {
        consumer.seek(&args.topic, *partition, start).await?;
    }
    Ok(consumer)
}

/// One record's line: the key (or "null") and the separator with `--print-key`, the value.
fn write_record(
    out: &mut impl Write,
    record: &ConsumerRecord,
    args: &ConsumeArgs,
) -> std::io::Result<()> {
    if args.print_key {
        match &record.key {
            Some(key) => out.write_all(key)?,
            None => out.write_all(b"null")?,
        }
        out.write_all(args.key_separator.as_bytes())?;
    }
    if let Some(value) = &record.value {
        out.write_all(value)?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use crate::tests::parse;
    use crate::Command;

    #[test]
    fn consume_parses_its_options() {
        let cli = parse(&[
            "sluice",
            "consume",
            "t",
            "--from-beginning",
            "--partition",
            "1",
            "--count",
            "10",
            "--timeout-ms",
            "500",
            "--print-key",
            "--client-rack",
            "eu-1a",
        ]);
        let Command::Consume(args) = cli.command else {
            panic!("not consume");
        };
        assert_eq!(args.client_rack.as_deref(), Some("eu-1a"));
        assert!(args.from_beginning && args.print_key);
        assert_eq!(args.partition, Some(1));
        assert_eq!(args.count, Some(10));
        assert_eq!(args.timeout_ms, Some(500));
        assert_eq!(args.group, None);
        assert_eq!(args.key_separator, "\t");
        let Command::Consume(args) = parse(&["sluice", "consume", "t"]).command else {
            panic!("not consume");
        };
        assert_eq!(args.client_rack, None);
        let Command::Consume(args) = parse(&["sluice", "consume", "t", "--group", "g"]).command
        else {
            panic!("not consume");
        };
        assert_eq!(args.group.as_deref(), Some("g"));
    }
}
