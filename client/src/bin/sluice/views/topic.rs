//! `sluice topic describe`: a header line as Kafka's tool prints it, then one row per
//! replica with its state, log end offset and lag.

use std::fmt::Write;

use crate::health::topic::{PartitionHealth, TopicHealth};
use crate::output::{ids, json_pretty, or_dash, Output, Table};

/// `sluice topic describe`: a header line as Kafka's tool prints it, then one row per
/// replica (partition columns on its first replica's row); under-replicated partitions are
/// marked `!` and counted on a last line.
pub fn topic_health(health: &TopicHealth, format: Output) -> String {
    if format == Output::Json {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::health::topic::ReplicaHealth;
    use crate::health::Unavailable;

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
        let text = topic_health(&topic(), Output::Table);
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
            serde_json::from_str(&topic_health(&topic(), Output::Json)).unwrap();
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
}
