//! The checker against hand-made histories (one anomaly each) and generated ones: a history
//! recorded from a log that behaves is valid, and losing any acknowledged value from it is
//! caught.

use proptest::prelude::*;

use super::checker::{check, Missing};
use super::history::{Event, SendOutcome};

fn acked(process: u32, partition: i32, value: u64, offset: i64, at: u64) -> Event {
    Event::Send {
        process,
        partition,
        value,
        invoked_ms: at,
        completed_ms: at + 1,
        outcome: SendOutcome::Acked { offset },
        order: None,
        error: None,
    }
}

fn read(process: u32, partition: i32, at: u64, records: &[(i64, u64)]) -> Event {
    Event::Read {
        process,
        partition,
        time_ms: at,
        records: records.to_vec(),
    }
}

fn fault(at: u64, nemesis: &str, start: bool) -> Event {
    Event::Fault {
        time_ms: at,
        nemesis: nemesis.into(),
        start,
        detail: "n1".into(),
    }
}

#[test]
fn a_clean_history_is_valid_and_unavailability_is_measured() {
    let events = vec![
        acked(1, 0, 10, 0, 0),
        fault(5, "kill", true),
        acked(1, 0, 11, 1, 100),
        fault(150, "kill", false),
        acked(1, 0, 12, 2, 160),
        read(2, 0, 200, &[(0, 10), (1, 11), (2, 12)]),
    ];
    let report = check(&events);
    assert!(report.is_valid(), "{report:?}");
    assert_eq!((report.acked, report.read), (3, 3));
    // Acks at 1, 101, 161: the longest gap is 1 -> 101, during the kill.
    assert_eq!(report.longest_unavailable_ms, 100);
    assert_eq!(report.unavailable_by_fault.get("kill"), Some(&100));
}

#[test]
fn unavailability_is_per_partition() {
    // Partition 0 acknowledges every 10 ms; partition 1 nothing between 5 and 3005.
    let mut events: Vec<Event> = (0..400).map(|i| acked(1, 0, i, i as i64, i * 10)).collect();
    events.push(acked(2, 1, 1_000, 0, 4));
    events.push(fault(100, "split", true));
    events.push(acked(2, 1, 1_001, 1, 3_004));
    events.push(fault(3_000, "split", false));
    let report = check(&events);
    assert_eq!(report.longest_unavailable_ms, 3_000);
    assert_eq!(report.unavailable_by_fault.get("split"), Some(&3_000));
}

#[test]
fn each_anomaly_is_reported() {
    // Lost: 11 acknowledged at 1, a read got to offset 2 without it.
    let lost = check(&[
        acked(1, 0, 10, 0, 0),
        acked(1, 0, 11, 1, 10),
        acked(1, 0, 12, 2, 20),
        read(2, 0, 30, &[(0, 10), (2, 12)]),
    ]);
    let missing = Missing {
        partition: 0,
        value: 11,
        acked_offset: 1,
    };
    assert_eq!(lost.lost, vec![missing.clone()]);
    assert!(!lost.is_valid());
    // Unobserved: no read got that far.
    let unobserved = check(&[
        acked(1, 0, 10, 0, 0),
        acked(1, 0, 11, 1, 10),
        read(2, 0, 30, &[(0, 10)]),
    ]);
    assert_eq!(unobserved.unobserved, vec![missing]);
    assert!(unobserved.lost.is_empty());
    // Duplicated: one value at two offsets.
    let duplicated = check(&[acked(1, 0, 10, 0, 0), read(2, 0, 30, &[(0, 10), (1, 10)])]);
    assert_eq!(duplicated.duplicated, vec![(0, 10, vec![0, 1])]);
    // Inconsistent: an offset read with two values, and a value read elsewhere than acked.
    let inconsistent = check(&[
        acked(1, 0, 10, 0, 0),
        read(2, 0, 30, &[(0, 10)]),
        read(3, 0, 30, &[(0, 99)]),
    ]);
    assert_eq!(
        inconsistent.inconsistent_offsets,
        vec![(0, 0, vec![10, 99])]
    );
    let elsewhere = check(&[acked(1, 0, 10, 0, 0), read(2, 0, 30, &[(5, 10)])]);
    assert_eq!(elsewhere.inconsistent_offsets, vec![(0, 0, vec![10])]);
    // Reordered: 11 sent after 10 was acknowledged, yet read before it.
    let reordered = check(&[
        acked(1, 0, 10, 1, 0),
        acked(1, 0, 11, 0, 10),
        read(2, 0, 30, &[(0, 11), (1, 10)]),
    ]);
    assert_eq!(reordered.reordered, vec![(0, 10, 11)]);
    // Non-monotonic: a consumer went back without a rewind; with one it may.
    let backwards = [
        acked(1, 0, 10, 0, 0),
        acked(1, 0, 11, 1, 10),
        read(2, 0, 30, &[(0, 10), (1, 11)]),
        read(2, 0, 40, &[(0, 10)]),
    ];
    assert_eq!(check(&backwards).non_monotonic_reads, vec![(2, 0, 1, 0)]);
    let mut rewound = backwards.to_vec();
    rewound.insert(
        3,
        Event::Rewind {
            process: 2,
            partition: 0,
            time_ms: 35,
        },
    );
    assert!(check(&rewound).is_valid());
    // A commit going back.
    let commit = |offset, at| Event::Commit {
        process: 1,
        group: "g".into(),
        partition: 0,
        offset,
        completed_ms: at,
    };
    let commits = check(&[commit(5, 10), commit(7, 20), commit(6, 30)]);
    assert_eq!(commits.commits_backwards, vec![("g".to_string(), 0, 7, 6)]);
}

#[test]
fn failed_and_unknown_sends_need_not_be_read_and_concurrent_sends_may_interleave() {
    let events = vec![
        Event::Send {
            process: 1,
            partition: 0,
            value: 1,
            invoked_ms: 0,
            completed_ms: 50,
            outcome: SendOutcome::Unknown,
            order: None,
            error: None,
        },
        Event::Send {
            process: 1,
            partition: 0,
            value: 2,
            invoked_ms: 1,
            completed_ms: 2,
            outcome: SendOutcome::Failed,
            order: None,
            error: None,
        },
        // Two sends in flight at once: their order is not constrained.
        Event::Send {
            process: 3,
            partition: 0,
            value: 3,
            invoked_ms: 10,
            completed_ms: 20,
            outcome: SendOutcome::Acked { offset: 1 },
            order: None,
            error: None,
        },
        Event::Send {
            process: 3,
            partition: 0,
            value: 4,
            invoked_ms: 11,
            completed_ms: 15,
            outcome: SendOutcome::Acked { offset: 0 },
            order: None,
            error: None,
        },
        read(2, 0, 60, &[(0, 4), (1, 3), (2, 1)]),
    ];
    let report = check(&events);
    assert!(report.is_valid(), "{report:?}");
}

/// A history from a log that behaves: `sends` (partition, process) appended in order, some
/// of them failing (never written) or unknown (written or not); reads of contiguous ranges
/// by several consumers, then a final drain of every partition.
fn behaving_history(sends: &[(i32, u32, u8)], reads: &[(u32, i32, usize, usize)]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut logs: Vec<Vec<u64>> = vec![Vec::new(); 3];
    for (i, &(partition, process, fate)) in sends.iter().enumerate() {
        let value = i as u64 + 1;
        let at = i as u64 * 10;
        let log = &mut logs[partition as usize];
        let outcome = match fate % 5 {
            0 => SendOutcome::Failed,
            1 => {
                if value.is_multiple_of(2) {
                    log.push(value);
                }
                SendOutcome::Unknown
            }
            _ => {
                log.push(value);
                SendOutcome::Acked {
                    offset: log.len() as i64 - 1,
                }
            }
        };
        events.push(Event::Send {
            process,
            partition,
            value,
            invoked_ms: at,
            completed_ms: at + 5,
            outcome,
            order: None,
            error: None,
        });
    }
    let end = sends.len() as u64 * 10 + 10;
    for &(process, partition, from, len) in reads {
        let log = &logs[partition as usize];
        let from = from.min(log.len());
        let records: Vec<(i64, u64)> = (from..(from + len).min(log.len()))
            .map(|o| (o as i64, log[o]))
            .collect();
        events.push(Event::Rewind {
            process,
            partition,
            time_ms: end,
        });
        events.push(read(process, partition, end, &records));
    }
    for (partition, log) in logs.iter().enumerate() {
        let records: Vec<(i64, u64)> = log
            .iter()
            .enumerate()
            .map(|(o, v)| (o as i64, *v))
            .collect();
        events.push(read(99, partition as i32, end + 1, &records));
    }
    events
}

proptest! {
    #[test]
    fn a_behaving_log_is_valid_and_a_dropped_acknowledged_value_is_caught(
        sends in prop::collection::vec((0..3i32, 0..4u32, any::<u8>()), 1..60),
        reads in prop::collection::vec((0..4u32, 0..3i32, 0..40usize, 0..40usize), 0..8),
        drop_pick in any::<prop::sample::Index>(),
    ) {
        let events = behaving_history(&sends, &reads);
        let report = check(&events);
        prop_assert!(report.is_valid(), "{:?}", report);
        let acked: Vec<u64> = events.iter().filter_map(|e| match e {
            Event::Send { value, outcome: SendOutcome::Acked { .. }, .. } => Some(*value),
            _ => None,
        }).collect();
        prop_assume!(!acked.is_empty());
        let dropped = acked[drop_pick.index(acked.len())];
        let without: Vec<Event> = events.into_iter().map(|e| match e {
            Event::Read { process, partition, time_ms, records } => Event::Read {
                process, partition, time_ms,
                records: records.into_iter().filter(|&(_, v)| v != dropped).collect(),
            },
            other => other,
        }).collect();
        let report = check(&without);
        let missing: Vec<u64> = report.lost.iter().chain(&report.unobserved).map(|m| m.value).collect();
        prop_assert_eq!(missing, vec![dropped]);
    }
}

/// An ordered (idempotent) producer's send `order` acknowledged at `at` with `offset`.
fn ordered(value: u64, order: u64, offset: i64, at: u64) -> Event {
    Event::Send {
        process: 3_000,
        partition: 0,
        value,
        invoked_ms: at,
        completed_ms: at,
        outcome: SendOutcome::Acked { offset },
        order: Some(order),
        error: None,
    }
}

#[test]
fn an_ordered_producer_is_held_to_its_order_not_to_its_acknowledgement_times() {
    // Sends 1 and 2 retried: acknowledged after 3, yet written before it, in order.
    let in_order = vec![
        ordered(103, 3, 12, 10),
        ordered(101, 1, 10, 20),
        ordered(102, 2, 11, 20),
        Event::Read {
            process: 1_000,
            partition: 0,
            time_ms: 30,
            records: vec![(10, 101), (11, 102), (12, 103)],
        },
    ];
    assert!(check(&in_order).is_valid(), "{:?}", check(&in_order));
    // Send 2 written after send 3: reordered, whatever the times say.
    let out_of_order = vec![
        ordered(101, 1, 10, 10),
        ordered(102, 2, 12, 11),
        ordered(103, 3, 11, 12),
        Event::Read {
            process: 1_000,
            partition: 0,
            time_ms: 30,
            records: vec![(10, 101), (11, 103), (12, 102)],
        },
    ];
    assert_eq!(check(&out_of_order).reordered, vec![(0, 102, 103)]);
}
