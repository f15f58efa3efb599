//! `sluice top`: the live view of produce rates and replication lag. A baseline sample,
//! then one refresh per `--interval-ms`, each from the last two samples
//! ([`crate::health::top::sample`], [`crate::health::top::top_view`]) and printed by
//! [`crate::views::top`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use sluice_protocol::clock::now_ms;

use crate::output::{quiet_on_broken_pipe, Output};
use crate::scrape::Endpoint;
use crate::{health, view_admin, views};

/// ANSI: cursor home, clear the screen (between `top` refreshes on a terminal).
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Time between refreshes.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval_ms: u64,
    /// Stop after this many refreshes (default: run until interrupted).
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
    /// Brokers' Prometheus endpoints (Sluice's --metrics-listen), each HOST:PORT,
    /// http://HOST:PORT (both read /metrics) or http://HOST:PORT/PATH, for bytes in/out per
    /// topic (sluice_topic_bytes_in_total / _out_total, summed over them). The brokers
    /// must export per-topic series (--metrics-per-partition, on by default); where none
    /// does, the byte rates show "-".
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ENDPOINT[,ENDPOINT...]",
        value_parser = parse_endpoint
    )]
    metrics: Vec<Endpoint>,
    /// Only these topics (repeatable; default: every topic but internal ones).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Partitions shown per refresh in the table (JSON has them all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    partitions_max: usize,
    /// How long one broker may take to answer before its replicas count as unreachable.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
    /// table, or json: one object per refresh, one per line (JSON lines): {iteration,
    /// time_ms, elapsed_ms, topics: [{topic, partitions, records_per_sec,
    /// bytes_in_per_sec, bytes_out_per_sec, under_replicated_partitions,
    /// offline_partitions, max_lag, unreachable_replicas}], partitions (every one, not
    /// only --partitions-max): [{topic, partition, leader, replicas, isr,
    /// under_replicated, records_per_sec, max_lag, max_lag_replica,
    /// unavailable_replicas}], metrics_errors: {endpoint: error}}; unknown values are null.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text)
}

/// `top`: a baseline sample, then one refresh per interval, each from the last two samples.
/// A failed sample prints its error (stderr) and counts as a refresh.
pub async fn run(bootstrap: &str, args: TopArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let admin = view_admin(bootstrap, timeout).await?;
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let format = args.output;
    let clear = format == Output::Table && std::io::stdout().is_terminal();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut previous = health::top::sample(&admin, &args.topics, &args.metrics, timeout).await?;
    let mut refreshes: u64 = 0;
    let mut next = previous.taken + interval;
    while args.iterations.is_none_or(|n| refreshes < n) {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = &mut interrupted => return Ok(()),
        }
        next = Instant::now() + interval;
        refreshes += 1;
        let current = tokio::select! {
            current = health::top::sample(&admin, &args.topics, &args.metrics, timeout) => current,
            _ = &mut interrupted => return Ok(()),
        };
        let current = match current {
            Ok(current) => current,
            Err(error) => {
                eprintln!("error: refresh {refreshes}: {error}");
                continue;
            }
        };
        let view = health::top::top_view(&previous, &current, refreshes, now_ms());
        let mut text = views::top(&view, format, args.interval_ms, args.partitions_max);
        if clear {
            text.insert_str(0, CLEAR_SCREEN);
        } else if format == Output::Table && refreshes > 1 {
            text.insert(0, '\n');
        }
        let mut out = std::io::stdout().lock();
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            return quiet_on_broken_pipe(error);
        }
        previous = current;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

    #[test]
    fn top_parses_its_options() {
        let Command::Top(args) = parse(&[
            "sluice",
            "top",
            "--interval-ms",
            "250",
            "--iterations",
            "2",
            "--metrics",
            "127.0.0.1:9644,127.0.0.1:9645",
            "--topic",
            "a",
            "--topic",
            "b",
            "--output",
            "json",
        ])
        .command
        else {
            panic!("not top");
        };
        assert_eq!(args.interval_ms, 250);
        assert_eq!(args.iterations, Some(2));
        let metrics: Vec<String> = args.metrics.iter().map(Endpoint::to_string).collect();
        assert_eq!(
            metrics,
            vec![
                "http://127.0.0.1:9644/metrics",
                "http://127.0.0.1:9645/metrics"
            ]
        );
        assert_eq!(args.topics, vec!["a", "b"]);
        assert_eq!(args.output, Output::Json);
        let Command::Top(defaults) = parse(&["sluice", "top"]).command else {
            panic!("not top");
        };
        assert_eq!(defaults.interval_ms, 1000);
        assert_eq!(defaults.iterations, None);
        assert!(defaults.metrics.is_empty());
        assert_eq!(defaults.partitions_max, 20);
        assert_eq!(defaults.output, Output::Table);
    }

    #[test]
    fn top_takes_metrics_urls_and_refuses_malformed_ones_before_starting() {
        let metrics = |value: &str| match parse(&["sluice", "top", "--metrics", value]).command {
            Command::Top(args) => args
                .metrics
                .into_iter()
                .map(|e| (e.address, e.path))
                .collect::<Vec<_>>(),
            other => panic!("unexpected {other:?}"),
        };
        let at = |address: &str, path: &str| (address.to_string(), path.to_string());
        assert_eq!(
            metrics("http://127.0.0.1:29644/metrics,http://127.0.0.1:29645,127.0.0.1:29646"),
            vec![
                at("127.0.0.1:29644", "/metrics"),
                at("127.0.0.1:29645", "/metrics"),
                at("127.0.0.1:29646", "/metrics")
            ]
        );
        assert_eq!(
            metrics("http://b1:9644/custom"),
            vec![at("b1:9644", "/custom")]
        );
        // A parse error is clap's: a message naming the value, exit code 2.
        for bad in ["https://127.0.0.1:29644/metrics", "127.0.0.1", "b1:port"] {
            let error = Cli::try_parse_from(["sluice", "top", "--metrics", bad]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}"
            );
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains(bad), "{bad}: {error}");
        }
    }
}
