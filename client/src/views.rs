//! The text of the operator views, `sluice cluster status`, `sluice topic describe` and
//! `sluice top`: human-readable tables (the default) or JSON for scripts. Pure functions
//! from what [`crate::health`] gathered to a `String`; the CLI prints it.
//!
//! Tables are left-aligned columns two spaces apart, with "-" for what is unknown. JSON is
//! the serialized [`crate::health`] type, pretty-printed for the one-shot views and one
//! object per line (JSON lines) for `top`.

use std::fmt::Write;

use serde::Serialize;

use crate::health::{
    ClusterStatus, FencedSource, PartitionHealth, QuorumMember, TopView, TopicHealth,
};

/// How a view is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// JSON for a script.
    Json,
}

/// A table of left-aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rows, each cell padded to its column's width, trailing blanks trimmed.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A value or "-".
fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Broker ids, comma-separated ("-" for none).
fn ids(list: &[i32]) -> String {
    if list.is_empty() {
        return "-".to_string();
    }
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn yes(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// `value` pretty-printed as JSON, ending with a newline.
pub fn json_pretty<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

/// `value` as one line of JSON, ending with a newline.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

/// `sluice cluster status`.
pub fn cluster_status(status: &ClusterStatus, format: OutputFormat, now_ms: i64) -> String {
    if format == OutputFormat::Json {
        return json_pretty(status);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster: {}  Controller: {}",
        status.cluster_id.as_deref().unwrap_or("-"),
        or_dash(status.controller_id)
    );
    out.push('\n');
    let mut brokers = Table::new(&["BROKER", "ADDRESS", "RACK", "FENCED", "CONTROLLER"]);
    for b in &status.brokers {
        brokers.row(vec![
            b.id.to_string(),
            b.address.clone().unwrap_or_else(|| "-".to_string()),
            b.rack.clone().unwrap_or_else(|| "-".to_string()),
            yes(b.fenced).to_string(),
            yes(b.controller).to_string(),
        ]);
    }
    out.push_str(&brokers.render());
    if status.fenced_source == FencedSource::Derived && status.brokers.iter().any(|b| b.fenced) {
        out.push_str(
            "(fenced: known to the cluster, as a replica or quorum member, but not listed as a live broker)\n",
        );
    }
    out.push('\n');
    match &status.quorum {
        Some(quorum) => {
            let _ = writeln!(
                out,
                "Quorum: leader {}  epoch {}  high watermark {}",
                or_dash(quorum.leader_id),
                quorum.leader_epoch,
                quorum.high_watermark
            );
            let mut members = Table::new(&["MEMBER", "ROLE", "LOG END", "LAG", "CAUGHT UP"]);
            let mut add = |m: &QuorumMember, role: &str| {
                let role = if quorum.leader_id == Some(m.id) {
                    "leader"
                } else {
                    role
                };
                members.row(vec![
                    m.id.to_string(),
                    role.to_string(),
                    or_dash(m.log_end_offset),
                    or_dash(m.lag),
                    or_dash(
                        m.last_caught_up_timestamp
                            .map(|at| format!("{} ms ago", (now_ms - at).max(0))),
                    ),
                ]);
            };
            for m in &quorum.voters {
                add(m, "voter");
            }
            for m in &quorum.observers {
                add(m, "observer");
            }
            out.push_str(&members.render());
        }
        None => {
            let why = status
                .quorum_error
                .as_deref()
                .unwrap_or("the cluster does not answer DescribeQuorum");
            let _ = writeln!(out, "Quorum: - ({why})");
        }
    }
    out.push('\n');
    let p = &status.partitions;
    let _ = writeln!(
        out,
        "Topics: {}  Partitions: {}  Under-replicated: {}  Offline: {}",
        p.topics, p.partitions, p.under_replicated, p.offline
    );
    out
}

/// `sluice topic describe`: a header line as Kafka's tool prints it, then one row per
/// replica (partition columns on its first replica's row); under-replicated partitions are
/// marked `!` and counted on a last line.
pub fn topic_health(health: &TopicHealth, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return json_pretty(health);
    }
    let mut out = String::new();
    let configs: Vec<String> = health
        .configs
        .iter()
        .map(|(name, value)| format!("{name}={}", value.as_deref().unwrap_or("<sensitive>")))
        .collect();
    let _ = writeln!(
        out,
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        health.topic,
        health.partition_count,
        health.replication_factor,
        configs.join(",")
    );
    let mut table = Table::new(&[
        "",
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "HIGH WATERMARK",
        "REPLICA",
        "STATE",
        "LOG END",
        "LAG",
        "LAG MS",
    ]);
    for p in &health.partitions {
        add_partition_rows(&mut table, p);
    }
    out.push_str(&table.render());
    let _ = writeln!(
        out,
        "Under-replicated partitions: {} of {}{}",
        health.under_replicated_partitions,
        health.partition_count,
        if health.under_replicated_partitions > 0 {
            " (marked !: fewer in-sync replicas than replicas)"
        } else {
            ""
        }
    );
    out
}

fn add_partition_rows(table: &mut Table, p: &PartitionHealth) {
    let partition_cells = vec![
        if p.under_replicated { "!" } else { "" }.to_string(),
        p.partition.to_string(),
        or_dash(p.leader),
        p.leader_epoch.to_string(),
        ids(&p.replicas),
        ids(&p.isr),
        or_dash(p.high_watermark),
    ];
    let blank = vec![String::new(); partition_cells.len()];
    if p.replica_states.is_empty() {
        table.row(partition_cells);
        return;
    }
    for (index, r) in p.replica_states.iter().enumerate() {
        let mut row = if index == 0 {
            partition_cells.clone()
        } else {
            blank.clone()
        };
        let state = if r.leader {
            "leader"
        } else if r.in_isr {
            "in-sync"
        } else {
            "out-of-sync"
        };
        let log_end = match (&r.log_end_offset, &r.unavailable) {
            (Some(end), _) => end.to_string(),
            (None, Some(unavailable)) => unavailable.short().to_string(),
            (None, None) => "-".to_string(),
        };
        row.extend([
            r.broker.to_string(),
            state.to_string(),
            log_end,
            or_dash(r.lag),
            or_dash(r.lag_ms),
        ]);
        table.row(row);
    }
}

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
pub fn top(
    view: &TopView,
    format: OutputFormat,
    interval_ms: u64,
    partitions_max: usize,
) -> String {
    if format == OutputFormat::Json {
        return json_line(view);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sluice top  refresh {}  every {interval_ms} ms  (rates over the last {} ms)",
        view.iteration, view.elapsed_ms
    );
    out.push('\n');
    let mut topics = Table::new(&[
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
    for t in &view.topics {
        topics.row(vec![
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
    out.push_str(&topics.render());
    out.push('\n');

    let mut order: Vec<_> = view.partitions.iter().collect();
    order.sort_by(|a, b| {
        let key = |p: &crate::health::PartitionLag| {
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
    let mut partitions = Table::new(&[
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
        partitions.row(vec![
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
    out.push_str(&partitions.render());
    if order.len() > partitions_max {
        let _ = writeln!(out, "({} more partitions)", order.len() - partitions_max);
    }
    for (endpoint, error) in &view.metrics_errors {
        let _ = writeln!(out, "metrics {endpoint}: {error}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::health::{
        BrokerStatus, PartitionCounts, PartitionLag, QuorumStatus, ReplicaHealth, TopicRates,
        Unavailable,
    };

    fn cluster() -> ClusterStatus {
        let member =
            |id, end: Option<i64>, lag: Option<i64>, caught_up: Option<i64>| QuorumMember {
                id,
                log_end_offset: end,
                lag,
                last_fetch_timestamp: None,
                last_caught_up_timestamp: caught_up,
            };
        ClusterStatus {
            cluster_id: Some("abc".to_string()),
            controller_id: Some(1),
            brokers: vec![
                BrokerStatus {
                    id: 1,
                    address: Some("127.0.0.1:9091".to_string()),
                    rack: Some("r1".to_string()),
                    fenced: false,
                    controller: true,
                },
                BrokerStatus {
                    id: 3,
                    address: None,
                    rack: None,
                    fenced: true,
                    controller: false,
                },
            ],
            fenced_source: FencedSource::Derived,
            quorum: Some(QuorumStatus {
                leader_id: Some(1),
                leader_epoch: 5,
                high_watermark: 120,
                voters: vec![
                    member(1, Some(121), Some(0), Some(10_000)),
                    member(3, Some(100), Some(20), None),
                ],
                observers: vec![member(4, None, None, None)],
            }),
            quorum_error: None,
            partitions: PartitionCounts {
                topics: 2,
                partitions: 6,
                under_replicated: 1,
                offline: 0,
            },
        }
    }

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut table = Table::new(&["A", "LONGER", "C"]);
        table.row(vec![
            "wide cell".to_string(),
            "x".to_string(),
            String::new(),
        ]);
        assert_eq!(table.render(), "A          LONGER  C\nwide cell  x\n");
    }

    #[test]
    fn cluster_status_table_shows_brokers_quorum_and_counts() {
        let text = cluster_status(&cluster(), OutputFormat::Table, 10_250);
        let expected = "\
Cluster: abc  Controller: 1

BROKER  ADDRESS         RACK  FENCED  CONTROLLER
1       127.0.0.1:9091  r1    no      yes
3       -               -     yes     no
(fenced: known to the cluster, as a replica or quorum member, but not listed as a live broker)

Quorum: leader 1  epoch 5  high watermark 120
MEMBER  ROLE      LOG END  LAG  CAUGHT UP
1       leader    121      0    250 ms ago
3       voter     100      20   -
4       observer  -        -    -

Topics: 2  Partitions: 6  Under-replicated: 1  Offline: 0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn cluster_status_without_a_quorum_says_why() {
        let mut status = cluster();
        status.quorum = None;
        status.fenced_source = FencedSource::Reported;
        let text = cluster_status(&status, OutputFormat::Table, 0);
        assert!(
            text.contains("Quorum: - (the cluster does not answer DescribeQuorum)"),
            "{text}"
        );
        assert!(!text.contains("(fenced:"), "{text}");

        status.quorum_error = Some(
            crate::Error::NoQuorumLeader(
                "the quorum leader (node 2, named by broker 3) did not answer (refused)".into(),
            )
            .to_string(),
        );
        let text = cluster_status(&status, OutputFormat::Table, 0);
        assert!(
            text.contains(
                "Quorum: - (the quorum leader (node 2, named by broker 3) did not answer \
                 (refused); an election may be in progress)"
            ),
            "{text}"
        );
    }

    #[test]
    fn cluster_status_json_has_every_field() {
        let json: serde_json::Value =
            serde_json::from_str(&cluster_status(&cluster(), OutputFormat::Json, 0)).unwrap();
        assert_eq!(json["controller_id"], 1);
        assert_eq!(json["brokers"][1]["fenced"], true);
        assert_eq!(json["brokers"][1]["address"], serde_json::Value::Null);
        assert_eq!(json["fenced_source"], "derived");
        assert_eq!(json["quorum"]["leader_id"], 1);
        assert_eq!(json["quorum"]["leader_epoch"], 5);
        assert_eq!(json["quorum"]["voters"][1]["lag"], 20);
        assert_eq!(json["partitions"]["under_replicated"], 1);
    }

    fn replica(
        broker: i32,
        end: Option<i64>,
        lag: Option<i64>,
        lag_ms: Option<i64>,
    ) -> ReplicaHealth {
        ReplicaHealth {
            broker,
            leader: broker == 1,
            in_isr: broker != 3,
            log_end_offset: end,
            lag,
            lag_ms,
            unavailable: end
                .is_none()
                .then(|| Unavailable::Unreachable("connection refused".to_string())),
        }
    }

    fn topic() -> TopicHealth {
        TopicHealth {
            topic: "orders".to_string(),
            internal: false,
            partition_count: 2,
            replication_factor: 3,
            configs: BTreeMap::from([("min.insync.replicas".to_string(), Some("2".to_string()))]),
            under_replicated_partitions: 1,
            partitions: vec![
                PartitionHealth {
                    partition: 0,
                    leader: Some(1),
                    leader_epoch: 4,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    offline_replicas: vec![],
                    high_watermark: Some(500),
                    under_replicated: false,
                    replica_states: vec![
                        replica(1, Some(500), Some(0), Some(0)),
                        replica(2, Some(500), Some(0), Some(0)),
                        ReplicaHealth {
                            in_isr: true,
                            ..replica(3, Some(500), Some(0), Some(0))
                        },
                    ],
                },
                PartitionHealth {
                    partition: 1,
                    leader: Some(1),
                    leader_epoch: 6,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    offline_replicas: vec![],
                    high_watermark: Some(480),
                    under_replicated: true,
                    replica_states: vec![
                        replica(1, Some(490), Some(0), Some(0)),
                        replica(2, Some(485), Some(5), None),
                        replica(3, None, None, None),
                    ],
                },
            ],
        }
    }

    #[test]
    fn topic_describe_table_marks_under_replicated_partitions() {
        let text = topic_health(&topic(), OutputFormat::Table);
        let expected = "\
Topic: orders\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: min.insync.replicas=2
   PARTITION  LEADER  EPOCH  REPLICAS  ISR    HIGH WATERMARK  REPLICA  STATE        LOG END      LAG  LAG MS
   0          1       4      1,2,3     1,2,3  500             1        leader       500          0    0
                                                              2        in-sync      500          0    0
                                                              3        in-sync      500          0    0
!  1          1       6      1,2,3     1,2    480             1        leader       490          0    0
                                                              2        in-sync      485          5    -
                                                              3        out-of-sync  unreachable  -    -
Under-replicated partitions: 1 of 2 (marked !: fewer in-sync replicas than replicas)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn topic_describe_json_has_replica_states() {
        let json: serde_json::Value =
            serde_json::from_str(&topic_health(&topic(), OutputFormat::Json)).unwrap();
        assert_eq!(json["under_replicated_partitions"], 1);
        let p1 = &json["partitions"][1];
        assert_eq!(p1["under_replicated"], true);
        assert_eq!(p1["high_watermark"], 480);
        assert_eq!(p1["replica_states"][1]["lag"], 5);
        assert_eq!(p1["replica_states"][1]["lag_ms"], serde_json::Value::Null);
        assert_eq!(
            p1["replica_states"][2]["log_end_offset"],
            serde_json::Value::Null
        );
        assert_eq!(
            p1["replica_states"][2]["unavailable"]["kind"],
            "unreachable"
        );
        assert_eq!(json["configs"]["min.insync.replicas"], "2");
    }

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
        let text = top(&top_view(), OutputFormat::Table, 1_000, 2);
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
        let text = top(&view, OutputFormat::Table, 1_000, 0);
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
        let text = top(&top_view(), OutputFormat::Json, 1_000, 2);
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
