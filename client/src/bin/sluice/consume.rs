//! `sluice consume`: a topic's records to stdout, one value (optionally its key first) per
//! line, from the earliest or the latest offset of every partition or of one.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use sluice_client::{Consumer, ConsumerConfig, ConsumerRecord, SeekTo};

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
    /// Consumer group (not supported yet: the command fails with a message saying so).
    #[arg(long)]
    group: Option<String>,
    /// The rack this consumer runs in (Kafka's client.rack): lets the partition leader
    /// point it at an in-sync replica in the same rack (follower reads, KIP-392).
    #[arg(long, value_name = "RACK")]
    client_rack: Option<String>,
}

/// Print `args.topic` until interrupted, `--count` records or `--timeout-ms` of quiet.
pub async fn run(bootstrap: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.group {
        bail!(
            "consumer groups are not supported yet (--group {group}); omit --group to read \
             all partitions, or pick one with --partition"
        );
    }
    let mut consumer = assigned_consumer(bootstrap, &args).await?;
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
            if let Err(error) = write_record(&mut out, &record, &args) {
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
            "--group",
            "g",
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
        assert_eq!(args.group.as_deref(), Some("g"));
        assert_eq!(args.key_separator, "\t");
        let Command::Consume(args) = parse(&["sluice", "consume", "t"]).command else {
            panic!("not consume");
        };
        assert_eq!(args.client_rack, None);
    }
}
