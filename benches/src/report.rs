//! Writing results as Markdown: the `produce` table appended to the results file, and the
//! `cluster` and `consume-cluster` sections, each between markers so that a rerun replaces
//! it in place (RESULTS.md). Also the machine description and the formatting of
//! per-broker and per-consumer figures that the console lines share with the file.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use crate::cluster::{ClusterArgs, Ratio, BASELINE_RECORD_BYTES, LARGE_RECORD_BYTES};
use crate::consume::{consume_scenarios, ConsumeClusterArgs, ConsumeRow, ProducedTopic};
use crate::produce::{Outcome, ProduceArgs, Scenario};

/// CPUs, CPU model and memory, then `setup` (who runs where).
pub(crate) fn machine_description(setup: &str) -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpus} cores ({model}), {memory} RAM; {setup}")
}

pub(crate) fn write_results(
    path: &Path,
    args: &ProduceArgs,
    rows: &[(&Scenario, Outcome)],
) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let mut table = String::new();
    table.push_str(&format!(
        "### Produce, {} records per scenario, compression {}, linger {} ms, batch {} bytes\n\n",
        args.records, args.producer.compression, args.producer.linger_ms, args.producer.batch_bytes
    ));
    table.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    table.push_str(&format!(
        "Machine: {}\n\n",
        machine_description("broker and producer on the same machine, loopback")
    ));
    table.push_str(&format!(
        "Broker: {}\n\n",
        args.bootstrap
            .as_deref()
            .map(|b| format!("existing broker at {b}"))
            .unwrap_or_else(|| format!(
                "sluiced started by the harness{}",
                args.broker
                    .broker_args
                    .as_deref()
                    .map(|a| format!(" with `{a}`"))
                    .unwrap_or_default()
            ))
    ));
    table.push_str(
        "| acks | record bytes | partitions | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n",
    );
    table.push_str("|---|---|---|---|---|---|---|---|\n");
    for (s, o) in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
            s.acks_label,
            s.size,
            s.partitions,
            o.records_per_second,
            o.megabytes_per_second,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms
        ));
    }
    table.push('\n');
    let mut existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    existing.push_str(&table);
    std::fs::write(path, existing)?;
    Ok(())
}

/// First line of the cluster section; a rerun replaces everything from here to
/// [`CLUSTER_SECTION_END`].
const CLUSTER_SECTION_BEGIN: &str = "<!-- sluice-bench cluster: begin";
const CLUSTER_SECTION_END: &str = "<!-- sluice-bench cluster: end -->";
/// The first cluster section goes before this heading (the appended `produce` tables), or
/// at the end of the file when it is missing.
const RAW_RESULTS_HEADING: &str = "## Raw results";

pub(crate) fn write_cluster_results(
    path: &Path,
    args: &ClusterArgs,
    baseline: &[(Scenario, Outcome)],
    rows: &[(&Scenario, Outcome)],
    ratios: &[Ratio],
) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let broker_args = args
        .broker
        .broker_args
        .as_deref()
        .map(|a| format!(", with `{a}`"))
        .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "{CLUSTER_SECTION_BEGIN} (`sluice-bench cluster --results` replaces this section up to the end marker) -->\n"
    ));
    s.push_str(&format!(
        "## Cluster: {} brokers, replication factor {}, min.insync.replicas {}\n\n",
        args.brokers, args.replication_factor, args.min_insync_replicas
    ));
    s.push_str(&format!(
        "Produce, {} records per scenario ({} for records of {} bytes and more), compression {}, linger {} ms, batch {} bytes\n\n",
        args.records,
        args.records_large,
        LARGE_RECORD_BYTES,
        args.producer.compression,
        args.producer.linger_ms,
        args.producer.batch_bytes
    ));
    s.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    s.push_str(&format!(
        "Machine: {}\n\n",
        machine_description(&format!(
            "{} brokers and the producer on the same machine, loopback",
            args.brokers
        ))
    ));
    s.push_str(&format!(
        "Brokers: {n} sluiced started by the harness{broker_args}, each a controller voter \
         (`--controller-voters`) with its own data dir; one topic per scenario with replication \
         factor {rf} and `min.insync.replicas={isr}`, produced to once every partition has a \
         leader and {rf} in-sync replicas. Baseline: one standalone sluiced started by the \
         harness{broker_args}, replication factor 1, run before the cluster starts.\n\n",
        n = args.brokers,
        rf = args.replication_factor,
        isr = args.min_insync_replicas,
    ));
    s.push_str("| brokers | RF | acks | record bytes | partitions | records | records/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let baseline_rows = baseline.iter().map(|(sc, o)| (1, 1, sc, o));
    let cluster_rows = rows
        .iter()
        .map(|(sc, o)| (args.brokers, args.replication_factor, *sc, o));
    for (brokers, rf, sc, o) in baseline_rows.chain(cluster_rows) {
        s.push_str(&format!(
            "| {brokers} | {rf} | {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
            sc.acks_label,
            sc.size,
            sc.partitions,
            o.records,
            o.records_per_second,
            o.megabytes_per_second,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms
        ));
    }
    s.push('\n');
    if !ratios.is_empty() {
        s.push_str(&format!(
            "acks=all on {} brokers with replication factor {} relative to one broker at acks=1, \
             {BASELINE_RECORD_BYTES}-byte records:\n\n",
            args.brokers, args.replication_factor
        ));
        s.push_str(&format!(
            "| partitions | 1 broker acks=1 records/s | {} brokers RF {} acks=all records/s | ratio |\n",
            args.brokers, args.replication_factor
        ));
        s.push_str("|---|---|---|---|\n");
        for r in ratios {
            s.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.2} |\n",
                r.partitions,
                r.single,
                r.replicated,
                r.replicated / r.single
            ));
        }
        s.push('\n');
    }
    s.push_str(CLUSTER_SECTION_END);
    s.push_str("\n\n");

    let existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    std::fs::write(path, splice_cluster_section(&existing, &s))?;
    Ok(())
}

/// First line of the consume-cluster section; a rerun replaces everything from here to
/// [`CONSUME_SECTION_END`].
const CONSUME_SECTION_BEGIN: &str = "<!-- sluice-bench consume-cluster: begin";
const CONSUME_SECTION_END: &str = "<!-- sluice-bench consume-cluster: end -->";

pub(crate) fn write_consume_results(
    path: &Path,
    args: &ConsumeClusterArgs,
    topics: &[ProducedTopic],
    rows: &[ConsumeRow],
) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let scenarios = consume_scenarios(args.consumers);
    let broker_args = args
        .broker
        .broker_args
        .as_deref()
        .map(|a| format!(", with `{a}`"))
        .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "{CONSUME_SECTION_BEGIN} (`sluice-bench consume-cluster --results` replaces this section up to the end marker) -->\n"
    ));
    s.push_str(&format!(
        "## Consume: {} brokers, replication factor {}, leader only vs followers by rack (KIP-392)\n\n",
        args.brokers, args.replication_factor
    ));
    s.push_str(&format!("Command: `{}`\n\n", command.join(" ")));
    s.push_str(&format!(
        "Machine: {}\n\n",
        machine_description(&format!(
            "{} brokers, the producer and every consumer on the same machine, loopback",
            args.brokers
        ))
    ));
    s.push_str(&format!(
        "Brokers: {n} sluiced started by the harness{broker_args}, each a controller voter, broker N with \
         `--rack rack-N`. One topic per partition count, replication factor {rf}, \
         `min.insync.replicas={isr}`, {records} records of {size} bytes produced with acks=all \
         (compression {compression}); the reads start once every replica's high watermark and \
         log end offset cover all of them (per `sluice_partition_high_watermark` and \
         `sluice_partition_log_end_offset` on each broker's `/metrics`).\n\n",
        n = args.brokers,
        rf = args.replication_factor,
        isr = args.min_insync_replicas,
        records = args.records,
        size = args.size,
        compression = args.producer.compression,
    ));
    s.push_str(&format!(
        "Consumers: Sluice's own consumer, each assigned every partition, from the earliest \
         offset to the end; partition max bytes {}, fetch max bytes {}; run as tasks of one \
         process. Each consumer is set up (connected, assigned, seeked) before the clock starts; \
         the time is from the start until the last consumer reaches the end. records/s and MB/s \
         are aggregate: records (and value bytes) read by all consumers together over that time. \
         {runs} runs per scenario, interleaved; the table shows the median run and the range of \
         all runs. Consumer MB served: record-batch bytes each broker sent to consumers during \
         the run, from its `sluice_fetch_bytes_out_total{{fetcher=\"consumer\"}}`. CPU s: CPU \
         seconds (user + system, from /proc) used during the run by the harness process (the \
         consumers) and by each broker; their sum over the run's seconds is how many of the \
         machine's cores were busy.\n\n",
        args.partition_max_bytes,
        args.fetch_max_bytes,
        runs = args.runs,
    ));
    s.push_str("Scenarios:\n\n");
    for scenario in &scenarios {
        let what = match (scenario.consumers, scenario.racks) {
            (1, false) => "1 consumer, no rack: read from the leader".to_string(),
            (n, false) => format!("{n} consumers at once, no rack: all read from the leader"),
            (n, true) => format!(
                "{n} consumers at once, consumer i with `client_rack` = `rack-i`: the leader \
                 serves its own rack's consumer and redirects the others to the in-sync \
                 follower in their rack"
            ),
        };
        s.push_str(&format!("- {} {what}\n", scenario.label));
    }
    s.push('\n');
    s.push_str("| partitions | scenario | consumers | client rack | records read | seconds | records/s | MB/s | records/s range | consumer MB served by broker ");
    s.push_str(
        &(1..=args.brokers)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
    );
    s.push_str(" | brokers read from, per consumer | CPU s: consumers / broker ");
    s.push_str(
        &(1..=args.brokers)
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
    );
    s.push_str(" |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let scenario = &scenarios[row.scenario_index];
        let run = row.median();
        let (low, high) = row.range();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.0}-{:.0} | {} | {} | {} |\n",
            row.partitions,
            scenario.label,
            scenario.consumers,
            if scenario.racks { "rack-i" } else { "none" },
            run.records,
            run.seconds,
            run.records_per_second(),
            run.megabytes_per_second(),
            low,
            high,
            served_text(&run.served, " / "),
            read_from_text(&run.read_from),
            cpu_text(&run.cpu),
        ));
    }
    s.push('\n');
    s.push_str("Produce before the reads (acks=all) and partition leaders:\n\n");
    s.push_str("| partitions | records | records/s | MB/s | p99 ms | leaders (partition 0..) |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for t in topics {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.2} | {} |\n",
            t.partitions,
            t.produce.records,
            t.produce.records_per_second,
            t.produce.megabytes_per_second,
            t.produce.p99_ms,
            t.leaders
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push('\n');
    s.push_str(CONSUME_SECTION_END);
    s.push_str("\n\n");

    let existing =
        std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmark results\n\n".to_string());
    std::fs::write(
        path,
        splice_section(&existing, &s, CONSUME_SECTION_BEGIN, CONSUME_SECTION_END),
    )?;
    Ok(())
}

/// `existing` with its cluster section replaced by `section`; without one, `section` goes
/// before the raw results heading, or at the end.
fn splice_cluster_section(existing: &str, section: &str) -> String {
    splice_section(
        existing,
        section,
        CLUSTER_SECTION_BEGIN,
        CLUSTER_SECTION_END,
    )
}

/// `existing` with the section from `begin` to `end` (markers included) replaced by
/// `section`; without one, `section` goes before the raw results heading, or at the end.
pub(crate) fn splice_section(existing: &str, section: &str, begin: &str, end: &str) -> String {
    if let Some(start) = existing.find(begin) {
        if let Some(length) = existing[start..].find(end) {
            let rest = &existing[start + length + end.len()..];
            return format!(
                "{}{section}{}",
                &existing[..start],
                rest.trim_start_matches('\n')
            );
        }
    }
    let heading = existing
        .match_indices(RAW_RESULTS_HEADING)
        .find(|&(at, _)| at == 0 || existing[..at].ends_with('\n'))
        .map(|(at, _)| at);
    match heading {
        Some(at) => format!("{}{section}{}", &existing[..at], &existing[at..]),
        None => {
            let mut out = existing.to_string();
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
            }
            out.push_str(section);
            out
        }
    }
}

/// Per-broker bytes in MB, joined by `separator`.
pub(crate) fn served_text(served: &[f64], separator: &str) -> String {
    served
        .iter()
        .map(|bytes| format!("{:.0}", bytes / 1e6))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The brokers each consumer read from, e.g. "1 / 2 / 3".
pub(crate) fn read_from_text(read_from: &[BTreeSet<i32>]) -> String {
    read_from
        .iter()
        .map(|brokers| {
            brokers
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// CPU seconds per process, e.g. "1.2 / 0.5 / 0.4 / 0.4" ("?" where unknown).
pub(crate) fn cpu_text(cpu: &[Option<f64>]) -> String {
    cpu.iter()
        .map(|c| c.map_or_else(|| "?".to_string(), |c| format!("{c:.2}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(body: &str) -> String {
        format!("{CLUSTER_SECTION_BEGIN} x -->\n## Cluster\n\n{body}\n\n{CLUSTER_SECTION_END}\n\n")
    }

    #[test]
    fn first_cluster_section_goes_before_the_raw_results() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let out = splice_cluster_section(existing, &section("one"));
        assert_eq!(
            out,
            format!(
                "# Benchmark results\n\n## Summary\n\ntext\n\n{}## Raw results\n\n### Produce\n",
                section("one")
            )
        );
    }

    #[test]
    fn a_rerun_replaces_only_the_cluster_section() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let once = splice_cluster_section(existing, &section("one"));
        let twice = splice_cluster_section(&once, &section("two"));
        assert_eq!(twice, once.replace("one", "two"));
        assert_eq!(twice.matches(CLUSTER_SECTION_BEGIN).count(), 1);
    }

    #[test]
    fn without_raw_results_the_section_is_appended() {
        let out = splice_cluster_section("# Benchmark results\n", &section("one"));
        assert_eq!(out, format!("# Benchmark results\n\n{}", section("one")));
        let again = splice_cluster_section(&out, &section("two"));
        assert_eq!(again, format!("# Benchmark results\n\n{}", section("two")));
    }

    #[test]
    fn the_consume_section_sits_beside_the_cluster_section() {
        let existing =
            "# Benchmark results\n\n## Summary\n\ntext\n\n## Raw results\n\n### Produce\n";
        let cluster = splice_cluster_section(existing, &section("one"));
        let consume =
            format!("{CONSUME_SECTION_BEGIN} x -->\n## Consume\n\nc1\n\n{CONSUME_SECTION_END}\n\n");
        let both = splice_section(
            &cluster,
            &consume,
            CONSUME_SECTION_BEGIN,
            CONSUME_SECTION_END,
        );
        assert_eq!(
            both,
            format!(
                "# Benchmark results\n\n## Summary\n\ntext\n\n{}{consume}## Raw results\n\n### Produce\n",
                section("one")
            )
        );
        let rerun = splice_section(
            &both,
            &consume.replace("c1", "c2"),
            CONSUME_SECTION_BEGIN,
            CONSUME_SECTION_END,
        );
        assert_eq!(rerun, both.replace("c1", "c2"));
        assert_eq!(
            splice_cluster_section(&rerun, &section("two")),
            rerun.replace("one", "two")
        );
    }
}
