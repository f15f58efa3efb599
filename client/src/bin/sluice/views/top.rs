//! One refresh of `sluice top`: the topics' rates and lags, then the partitions that need
//! attention most; or one JSON line.

use std::fmt::Write;

use crate::health::top::{PartitionLag, TopView, TopicRates};
use crate::output::{ids, json_line, or_dash, Output, Table};

/// Bytes per second in binary units ("1.5 MiB/s").
pub fn byte_rate(bytes_per_sec: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes_per_sec.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B/s")
    } else {
        format!("{value:.1} {}/s", UNITS[unit])
    }
}

/// A partition's UNREACHABLE cell: the count, as in the topic rows, and which replicas
/// ("0"; "1 (replica 3)"; "2 (replicas 1,3)").
fn unreachable(replicas: &[i32]) -> String {
    match replicas {
        [] => "0".to_string(),
        [one] => format!("1 (replica {one})"),
        many => format!("{} (replicas {})", many.len(), ids(many)),
    }
}

fn records_rate(rate: Option<f64>) -> String {
    or_dash(rate.map(|r| format!("{r:.0}")))
}

/// One refresh of `sluice top`: topics, then the `partitions_max` partitions that need
/// attention most (offline, under-replicated, then the largest lag, then the busiest).
pub fn top(view: &TopView, format: Output, interval_ms: u64, partitions_max: usize) -> String {
    if format == Output::Json {
        return json_line(view);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sluice top  refresh {}  every {interval_ms} ms  (rates over the last {} ms)",
        view.iteration, view.elapsed_ms
    );
    out.push('\n');
    out.push_str(&topics_table(&view.topics).render());
    out.push('\n');
    let order = attention_order(&view.partitions);
    out.push_str(&partitions_table(&order, partitions_max).render());
    if order.len() > partitions_max {
        let _ = writeln!(out, "({} more partitions)", order.len() - partitions_max);
    }
    for (endpoint, error) in &view.metrics_errors {
        let _ = writeln!(out, "metrics {endpoint}: {error}");
    }
    out
}

/// One row per topic.
fn topics_table(topics: &[TopicRates]) -> Table {
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITIONS",
        "RECORDS/S",
        "BYTES IN/S",
        "BYTES OUT/S",
        "UNDER-REPLICATED",
        "OFFLINE",
        "MAX LAG",
        "UNREACHABLE",
    ]);
    for t in topics {
        table.row(vec![
            t.topic.clone(),
            t.partitions.to_string(),
            records_rate(t.records_per_sec),
            or_dash(t.bytes_in_per_sec.map(byte_rate)),
            or_dash(t.bytes_out_per_sec.map(byte_rate)),
            t.under_replicated_partitions.to_string(),
            t.offline_partitions.to_string(),
            or_dash(t.max_lag),
            t.unreachable_replicas.to_string(),
        ]);
    }
    table
}

/// The partitions, those that need attention most first: offline, under-replicated, the
/// largest lag, then the busiest, then by topic and index.
fn attention_order(partitions: &[PartitionLag]) -> Vec<&PartitionLag> {
    let mut order: Vec<_> = partitions.iter().collect();
    order.sort_by(|a, b| {
        let key = |p: &PartitionLag| {
            (
                p.leader.is_some(),
                !p.under_replicated,
                std::cmp::Reverse(p.max_lag.unwrap_or(0)),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| {
                b.records_per_sec
                    .unwrap_or(0.0)
                    .total_cmp(&a.records_per_sec.unwrap_or(0.0))
            })
            .then_with(|| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)))
    });
    order
}

/// The first `partitions_max` of `order`, offline and under-replicated ones marked `!`.
fn partitions_table(order: &[&PartitionLag], partitions_max: usize) -> Table {
    let mut table = Table::new(&[
        "",
        "TOPIC",
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "RECORDS/S",
        "MAX LAG",
        "UNREACHABLE",
    ]);
    for p in order.iter().take(partitions_max) {
        let max_lag = match (p.max_lag, p.max_lag_replica) {
            (Some(lag), Some(replica)) if lag > 0 => format!("{lag} (replica {replica})"),
            (lag, _) => or_dash(lag),
        };
        table.row(vec![
            if p.leader.is_none() || p.under_replicated {
                "!"
            } else {
                ""
            }
            .to_string(),
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(p.leader),
            ids(&p.replicas),
            ids(&p.isr),
            records_rate(p.records_per_sec),
            max_lag,
            unreachable(&p.unavailable_replicas),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn top_view() -> TopView {
        let lag = |partition,
                   leader: Option<i32>,
                   isr: &[i32],
                   rate,
                   max_lag,
                   replica,
                   unavailable: &[i32]| PartitionLag {
            topic: "orders".to_string(),
            partition,
            leader,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            under_replicated: isr.len() < 3,
            records_per_sec: rate,
            max_lag,
            max_lag_replica: replica,
            unavailable_replicas: unavailable.to_vec(),
        };
        TopView {
            iteration: 2,
            time_ms: 0,
            elapsed_ms: 1_003,
            topics: vec![TopicRates {
                topic: "orders".to_string(),
                partitions: 3,
                records_per_sec: Some(1_500.4),
                bytes_in_per_sec: Some(1_572_864.0),
                bytes_out_per_sec: Some(0.0),
                under_replicated_partitions: 1,
                offline_partitions: 0,
                max_lag: Some(70),
                unreachable_replicas: 1,
            }],
            partitions: vec![
                lag(0, Some(1), &[1, 2, 3], Some(500.0), Some(0), Some(1), &[]),
                lag(1, Some(2), &[2, 3], Some(900.0), Some(70), Some(1), &[1]),
                lag(2, Some(3), &[3, 1, 2], Some(100.4), Some(3), Some(2), &[]),
            ],
            metrics_errors: BTreeMap::from([("127.0.0.1:9644".to_string(), "refused".to_string())]),
        }
    }

    #[test]
    fn top_table_puts_the_partitions_needing_attention_first() {
        let text = top(&top_view(), Output::Table, 1_000, 2);
        let expected = "\
sluice top  refresh 2  every 1000 ms  (rates over the last 1003 ms)

TOPIC   PARTITIONS  RECORDS/S  BYTES IN/S  BYTES OUT/S  UNDER-REPLICATED  OFFLINE  MAX LAG  UNREACHABLE
orders  3           1500       1.5 MiB/s   0 B/s        1                 0        70       1

   TOPIC   PARTITION  LEADER  REPLICAS  ISR    RECORDS/S  MAX LAG         UNREACHABLE
!  orders  1          2       1,2,3     2,3    900        70 (replica 1)  1 (replica 1)
   orders  2          3       1,2,3     3,1,2  100        3 (replica 2)   0
(1 more partitions)
metrics 127.0.0.1:9644: refused
";
        assert_eq!(text, expected);
    }

    #[test]
    fn unreachable_cells_count_like_the_topic_rows_and_name_the_replicas() {
        assert_eq!(unreachable(&[]), "0");
        assert_eq!(unreachable(&[3]), "1 (replica 3)");
        assert_eq!(unreachable(&[1, 3]), "2 (replicas 1,3)");
    }

    #[test]
    fn top_shows_unknown_byte_rates_as_a_dash() {
        let mut view = top_view();
        view.topics[0].bytes_in_per_sec = None;
        view.topics[0].bytes_out_per_sec = None;
        let text = top(&view, Output::Table, 1_000, 0);
        let row = text
            .lines()
            .find(|line| line.starts_with("orders"))
            .expect("a topic row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["orders", "3", "1500", "-", "-", "1", "0", "70", "1"]
        );
    }

    #[test]
    fn top_json_is_one_line_per_refresh() {
        let text = top(&top_view(), Output::Json, 1_000, 2);
        assert_eq!(text.lines().count(), 1);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["iteration"], 2);
        assert_eq!(json["topics"][0]["records_per_sec"], 1_500.4);
        assert_eq!(
            json["partitions"].as_array().unwrap().len(),
            3,
            "JSON has them all"
        );
    }

    #[test]
    fn byte_rates_use_binary_units() {
        assert_eq!(byte_rate(0.0), "0 B/s");
        assert_eq!(byte_rate(1023.0), "1023 B/s");
        assert_eq!(byte_rate(1536.0), "1.5 KiB/s");
        assert_eq!(byte_rate(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB/s");
    }
}
