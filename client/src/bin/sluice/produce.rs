//! `sluice produce`: stdin to a topic, one record per line (optionally split into key and
//! value at a separator), every delivery awaited before the command ends.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use sluice_client::{Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::{parse_key_value, CLI_METADATA_WAIT};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP are errors).
    /// Without it, records have no key.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgement: 0 (none), 1 (leader) or all (every in-sync replica).
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    acks: Acks,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Write every record to this partition (default: by key hash; keyless records stick
    /// to one partition per batch).
    #[arg(long)]
    partition: Option<i32>,
    /// Header added to every record, e.g. --header source=cli (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// How long a batch waits for more records before it is sent.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Largest batch in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes_max: usize,
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    Acks::parse(text).ok_or_else(|| format!("expected 0, 1 or all, got '{text}'"))
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::parse(text)
        .ok_or_else(|| format!("expected none, gzip, snappy, lz4 or zstd, got '{text}'"))
}

/// Outcome of waiting on every delivery future, in send order.
struct DeliveryTally {
    delivered: u64,
    failed: u64,
    first_error: Option<sluice_client::Error>,
}

/// Produce stdin to `args.topic`; fails if a line cannot be sent or a record was not
/// delivered.
pub async fn run(bootstrap: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let producer = Producer::new(producer_config(bootstrap, &args)).await?;
    // Delivery futures are awaited by a second task, in order, so reading stdin never
    // waits for acknowledgements; the bounded channel keeps memory bounded.
    let (futures_tx, futures_rx) = mpsc::channel::<DeliveryFuture>(64 * 1024);
    let waiter = tokio::spawn(tally_deliveries(futures_rx));
    // Sending ends (`futures_tx` dropped) at the end of stdin or at the first error.
    let read_result = send_lines(&producer, &args, futures_tx).await;
    producer.close().await;
    let tally = waiter.await.context("delivery reporting task failed")?;
    read_result?;
    if let Some(error) = tally.first_error {
        bail!(
            "{} of {} records were not delivered; first error: {error}",
            tally.failed,
            tally.failed + tally.delivered
        );
    }
    tracing::info!(records = tally.delivered, "produced");
    Ok(())
}

fn producer_config(bootstrap: &str, args: &ProduceArgs) -> ProducerConfig {
    let mut config = ProducerConfig::new(bootstrap);
    config.client_id = "sluice-cli".to_string();
    config.acks = args.acks;
    config.compression = args.compression;
    config.linger_ms = args.linger_ms;
    config.batch_bytes_max = args.batch_bytes_max;
    config.metadata_wait_ms = CLI_METADATA_WAIT.as_millis() as u64;
    config
}

/// Await every delivery future, in send order, until the channel closes.
async fn tally_deliveries(mut futures_rx: mpsc::Receiver<DeliveryFuture>) -> DeliveryTally {
    let mut tally = DeliveryTally {
        delivered: 0,
        failed: 0,
        first_error: None,
    };
    while let Some(future) = futures_rx.recv().await {
        match future.await {
            Ok(_) => tally.delivered += 1,
            Err(error) => {
                tally.failed += 1;
                tally.first_error.get_or_insert(error);
            }
        }
    }
    tally
}

/// Send one record per stdin line and pass its delivery future on, until the end of stdin.
async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    futures_tx: mpsc::Sender<DeliveryFuture>,
) -> anyhow::Result<()> {
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::copy_from_slice(v.as_bytes()))))
        .collect();
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        line_number += 1;
        let text = strip_line_end(&line);
        let (key, value) = match separator {
            None => (None, text),
            Some(separator) => match split_at_separator(text, separator) {
                Some((key, value)) => (Some(Bytes::copy_from_slice(key)), value),
                None => bail!("line {line_number} has no key separator"),
            },
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(Bytes::copy_from_slice(value)),
            headers: headers.clone(),
            timestamp: None,
        };
        let future = producer
            .send(record)
            .await
            .with_context(|| format!("producing line {line_number}"))?;
        if futures_tx.send(future).await.is_err() {
            bail!("delivery reporting stopped unexpectedly");
        }
    }
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn split_at_separator<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() {
        return None;
    }
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

    #[test]
    fn produce_parses_acks_compression_and_partition() {
        let cli = parse(&[
            "sluice",
            "produce",
            "t",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--partition",
            "2",
            "--key-separator",
            ":",
        ]);
        let Command::Produce(args) = cli.command else {
            panic!("not produce");
        };
        assert_eq!(args.acks, Acks::All);
        assert_eq!(args.compression, Compression::Zstd);
        assert_eq!(args.partition, Some(2));
        assert_eq!(args.key_separator.as_deref(), Some(":"));
        let defaults = parse(&["sluice", "produce", "t"]);
        let Command::Produce(args) = defaults.command else {
            panic!("not produce");
        };
        assert_eq!(args.acks, Acks::Leader);
        assert_eq!(args.compression, Compression::None);
        assert!(Cli::try_parse_from(["sluice", "produce", "t", "--acks", "2"]).is_err());
        assert!(
            Cli::try_parse_from(["sluice", "produce", "t", "--compression", "brotli"]).is_err()
        );
    }

    #[test]
    fn lines_split_at_the_first_separator_and_lose_their_line_end() {
        assert_eq!(strip_line_end(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_end(b"abc"), b"abc");
        assert_eq!(
            split_at_separator(b"k::v::w", b"::"),
            Some((&b"k"[..], &b"v::w"[..]))
        );
        assert_eq!(split_at_separator(b"nosep", b":"), None);
    }
}
