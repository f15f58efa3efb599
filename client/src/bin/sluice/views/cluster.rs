//! `sluice cluster status`: the cluster id and controller, the brokers, the controller
//! quorum and its members' lag, and the partition counts.

use std::fmt::Write;

use crate::health::cluster::{ClusterStatus, FencedSource, QuorumMember, QuorumStatus};
use crate::output::{json_pretty, or_dash, yes, Output, Table};

/// `sluice cluster status`.
pub fn cluster_status(status: &ClusterStatus, format: Output, now_ms: i64) -> String {
    if format == Output::Json {
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
    push_brokers(&mut out, status);
    out.push('\n');
    match &status.quorum {
        Some(quorum) => push_quorum(&mut out, quorum, now_ms),
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

/// The brokers' table, and what "fenced" means when it was derived.
fn push_brokers(out: &mut String, status: &ClusterStatus) {
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
}

/// The quorum's line (leader, epoch, high watermark) and its members' table.
fn push_quorum(out: &mut String, quorum: &QuorumStatus, now_ms: i64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::cluster::{BrokerStatus, PartitionCounts};

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
    fn cluster_status_table_shows_brokers_quorum_and_counts() {
        let text = cluster_status(&cluster(), Output::Table, 10_250);
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
        let text = cluster_status(&status, Output::Table, 0);
        assert!(
            text.contains("Quorum: - (the cluster does not answer DescribeQuorum)"),
            "{text}"
        );
        assert!(!text.contains("(fenced:"), "{text}");

        status.quorum_error = Some(
            sluice_client::Error::NoQuorumLeader(
                "the quorum leader (node 2, named by broker 3) did not answer (refused)".into(),
            )
            .to_string(),
        );
        let text = cluster_status(&status, Output::Table, 0);
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
            serde_json::from_str(&cluster_status(&cluster(), Output::Json, 0)).unwrap();
        assert_eq!(json["controller_id"], 1);
        assert_eq!(json["brokers"][1]["fenced"], true);
        assert_eq!(json["brokers"][1]["address"], serde_json::Value::Null);
        assert_eq!(json["fenced_source"], "derived");
        assert_eq!(json["quorum"]["leader_id"], 1);
        assert_eq!(json["quorum"]["leader_epoch"], 5);
        assert_eq!(json["quorum"]["voters"][1]["lag"], 20);
        assert_eq!(json["partitions"]["under_replicated"], 1);
    }
}
