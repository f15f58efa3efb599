//! Checking a history (Jepsen's Kafka queue checks): what was acknowledged must be read,
//! once, at the offset it was acknowledged at, in the order its producer sent it; consumers
//! never go back without saying so; committed offsets never go back; and how long the
//! cluster went without acknowledging anything, overall and during each kind of fault.
//!
//! The workload ends a run by reading every partition from its start to its end (the
//! final drain), so an acknowledged value that no read returned is a lost write if a read
//! got past its offset, and an unobserved one if none did (the drain stopped short: also a
//! failure, of the run rather than the broker).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::history::{Event, SendOutcome};

/// An acknowledged value no read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub partition: i32,
    pub value: u64,
    pub acked_offset: i64,
}

/// What a history shows. [`Report::is_valid`] says whether it shows no anomaly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub acked: usize,
    /// Distinct values read.
    pub read: usize,
    /// Acknowledged, not read, and a read got past its offset.
    pub lost: Vec<Missing>,
    /// Acknowledged, not read, and no read got that far.
    pub unobserved: Vec<Missing>,
    /// (partition, value, the offsets it was read at): one value at several offsets.
    pub duplicated: Vec<(i32, u64, Vec<i64>)>,
    /// (partition, offset, the values seen there): read with two values, or read with
    /// another value than the one acknowledged there.
    pub inconsistent_offsets: Vec<(i32, i64, Vec<u64>)>,
    /// (partition, earlier value, later value): a producer sent the later value after the
    /// earlier one was acknowledged, yet it sits at a lower offset.
    pub reordered: Vec<(i32, u64, u64)>,
    /// (process, partition, previous offset, offset): a consumer read backwards without a
    /// rewind.
    pub non_monotonic_reads: Vec<(u32, i32, i64, i64)>,
    /// (group, partition, previous offset, offset): an acknowledged commit went back.
    pub commits_backwards: Vec<(String, i32, i64, i64)>,
    /// The longest time one partition went without an acknowledged send, from the run's
    /// first send to its last.
    pub longest_unavailable_ms: u64,
    /// The same, for gaps that overlap a fault, by the fault's kind.
    pub unavailable_by_fault: BTreeMap<String, u64>,
}

impl Report {
    /// No anomaly: nothing lost, unobserved, duplicated, inconsistent, reordered, read
    /// backwards or committed backwards. Unavailability is measured, not judged.
    pub fn is_valid(&self) -> bool {
        self.lost.is_empty()
            && self.unobserved.is_empty()
            && self.duplicated.is_empty()
            && self.inconsistent_offsets.is_empty()
            && self.reordered.is_empty()
            && self.non_monotonic_reads.is_empty()
            && self.commits_backwards.is_empty()
    }
}

/// Check `events` (in the order they were recorded).
pub fn check(events: &[Event]) -> Report {
    let mut report = Report::default();
    let reads = read_offsets(events);
    check_reads(&reads, &mut report);
    check_acknowledged(events, &reads, &mut report);
    check_producer_order(events, &reads, &mut report);
    check_ordered_producers(events, &reads, &mut report);
    check_read_order(events, &mut report);
    check_commits(events, &mut report);
    measure_unavailability(events, &mut report);
    report
}

/// Per partition: offset -> values read there, and value -> offsets it was read at.
#[derive(Default)]
struct PartitionReads {
    by_offset: BTreeMap<i64, BTreeSet<u64>>,
    by_value: HashMap<u64, BTreeSet<i64>>,
}

fn read_offsets(events: &[Event]) -> BTreeMap<i32, PartitionReads> {
    let mut reads: BTreeMap<i32, PartitionReads> = BTreeMap::new();
    for event in events {
        if let Event::Read {
            partition, records, ..
        } = event
        {
            let partition_reads = reads.entry(*partition).or_default();
            for &(offset, value) in records {
                partition_reads
                    .by_offset
                    .entry(offset)
                    .or_default()
                    .insert(value);
                partition_reads
                    .by_value
                    .entry(value)
                    .or_default()
                    .insert(offset);
            }
        }
    }
    reads
}

fn check_reads(reads: &BTreeMap<i32, PartitionReads>, report: &mut Report) {
    for (&partition, r) in reads {
        report.read += r.by_value.len();
        for (&offset, values) in &r.by_offset {
            if values.len() > 1 {
                let values = values.iter().copied().collect();
                report
                    .inconsistent_offsets
                    .push((partition, offset, values));
            }
        }
        let mut duplicated: Vec<_> = r
            .by_value
            .iter()
            .filter(|(_, offsets)| offsets.len() > 1)
            .map(|(&value, offsets)| (partition, value, offsets.iter().copied().collect()))
            .collect();
        duplicated.sort();
        report.duplicated.extend(duplicated);
    }
}

/// Every acknowledged value against the reads: lost, unobserved, or read elsewhere than
/// acknowledged.
fn check_acknowledged(
    events: &[Event],
    reads: &BTreeMap<i32, PartitionReads>,
    report: &mut Report,
) {
    for event in events {
        let Event::Send {
            partition,
            value,
            outcome: SendOutcome::Acked { offset },
            ..
        } = event
        else {
            continue;
        };
        report.acked += 1;
        let partition_reads = reads.get(partition);
        let read_at = partition_reads.and_then(|r| r.by_value.get(value));
        match read_at {
            Some(offsets) => {
                if !offsets.contains(offset) {
                    let mut values: Vec<u64> = partition_reads
                        .and_then(|r| r.by_offset.get(offset))
                        .map(|v| v.iter().copied().collect())
                        .unwrap_or_default();
                    values.push(*value);
                    values.sort_unstable();
                    values.dedup();
                    report
                        .inconsistent_offsets
                        .push((*partition, *offset, values));
                }
            }
            None => {
                let missing = Missing {
                    partition: *partition,
                    value: *value,
                    acked_offset: *offset,
                };
                let furthest = partition_reads.and_then(|r| r.by_offset.keys().next_back());
                if furthest.is_some_and(|&furthest| furthest >= *offset) {
                    report.lost.push(missing);
                } else {
                    report.unobserved.push(missing);
                }
            }
        }
    }
}

/// The lowest offset `value` was read at in `partition`, if it was read.
fn first_read_offset(
    reads: &BTreeMap<i32, PartitionReads>,
    partition: i32,
    value: u64,
) -> Option<i64> {
    reads
        .get(&partition)
        .and_then(|r| r.by_value.get(&value))
        .and_then(|offsets| offsets.iter().next().copied())
}

/// A producer that keeps its order (sends with an `order`): its writes to one partition,
/// taken in that order, must land at increasing offsets (where read, else where
/// acknowledged), however their acknowledgements were ordered. A violation is reported as
/// reordered (partition, earlier value, later value).
fn check_ordered_producers(
    events: &[Event],
    reads: &BTreeMap<i32, PartitionReads>,
    report: &mut Report,
) {
    // (process, partition) -> (order, value, offset) of its sends whose offset is known.
    type Landed = Vec<(u64, u64, i64)>;
    let mut landed: HashMap<(u32, i32), Landed> = HashMap::new();
    for event in events {
        let Event::Send {
            process,
            partition,
            value,
            outcome,
            order: Some(order),
            ..
        } = event
        else {
            continue;
        };
        let read_offset = first_read_offset(reads, *partition, *value);
        let acked_offset = outcome.acked_offset();
        if let Some(offset) = read_offset.or(acked_offset) {
            landed
                .entry((*process, *partition))
                .or_default()
                .push((*order, *value, offset));
        }
    }
    for ((_, partition), mut sends) in landed {
        sends.sort_unstable();
        for pair in sends.windows(2) {
            let ((_, earlier, earlier_offset), (_, later, later_offset)) = (pair[0], pair[1]);
            if later_offset <= earlier_offset {
                report.reordered.push((partition, earlier, later));
            }
        }
    }
}

/// A producer's sends to one partition, each invoked after the previous one was
/// acknowledged, must land at increasing offsets (where read, else where acknowledged).
fn check_producer_order(
    events: &[Event],
    reads: &BTreeMap<i32, PartitionReads>,
    report: &mut Report,
) {
    // (process, partition) -> (value, offset, completed_ms) of the last acknowledged send.
    let mut last: HashMap<(u32, i32), (u64, i64, u64)> = HashMap::new();
    let mut sends: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Send { .. }))
        .collect();
    sends.sort_by_key(|e| match e {
        Event::Send { invoked_ms, .. } => *invoked_ms,
        _ => 0,
    });
    for event in sends {
        let Event::Send {
            process,
            partition,
            value,
            invoked_ms,
            completed_ms,
            outcome,
            order: None,
            ..
        } = event
        else {
            continue;
        };
        let read_offset = first_read_offset(reads, *partition, *value);
        let acked_offset = outcome.acked_offset();
        let Some(offset) = read_offset.or(acked_offset) else {
            continue;
        };
        let key = (*process, *partition);
        if let Some(&(earlier, earlier_offset, earlier_done)) = last.get(&key) {
            if earlier_done <= *invoked_ms && offset < earlier_offset {
                report.reordered.push((*partition, earlier, *value));
            }
        }
        if acked_offset.is_some() {
            last.insert(key, (*value, offset, *completed_ms));
        }
    }
}

fn check_read_order(events: &[Event], report: &mut Report) {
    let mut position: HashMap<(u32, i32), i64> = HashMap::new();
    for event in events {
        match event {
            Event::Read {
                process,
                partition,
                records,
                ..
            } => {
                for &(offset, _) in records {
                    let key = (*process, *partition);
                    if let Some(&previous) = position.get(&key) {
                        if offset <= previous {
                            report
                                .non_monotonic_reads
                                .push((*process, *partition, previous, offset));
                        }
                    }
                    position.insert(key, offset);
                }
            }
            Event::Rewind {
                process, partition, ..
            } => {
                position.remove(&(*process, *partition));
            }
            _ => {}
        }
    }
}

fn check_commits(events: &[Event], report: &mut Report) {
    let mut commits: Vec<(&String, i32, i64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Commit {
                group,
                partition,
                offset,
                completed_ms,
                ..
            } => Some((group, *partition, *offset, *completed_ms)),
            _ => None,
        })
        .collect();
    commits.sort_by_key(|&(_, _, _, completed)| completed);
    let mut last: HashMap<(&String, i32), i64> = HashMap::new();
    for (group, partition, offset, _) in commits {
        if let Some(&previous) = last.get(&(group, partition)) {
            if offset < previous {
                report
                    .commits_backwards
                    .push((group.clone(), partition, previous, offset));
                continue;
            }
        }
        last.insert((group, partition), offset);
    }
}

/// Per partition, the gaps between acknowledgements (from the run's first send to its last
/// completion): the longest over all partitions, and the longest overlapping each kind of
/// fault. A partition whose leader is cut off counts even while the others go on.
fn measure_unavailability(events: &[Event], report: &mut Report) {
    let mut acks: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    let (mut first, mut end) = (u64::MAX, 0);
    for event in events {
        if let Event::Send {
            partition,
            invoked_ms,
            completed_ms,
            outcome,
            ..
        } = event
        {
            first = first.min(*invoked_ms);
            end = end.max(*completed_ms);
            let partition_acks = acks.entry(*partition).or_default();
            if matches!(outcome, SendOutcome::Acked { .. }) {
                partition_acks.push(*completed_ms);
            }
        }
    }
    if first == u64::MAX {
        return;
    }
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    for mut partition_acks in acks.into_values() {
        partition_acks.sort_unstable();
        let mut marks = vec![first];
        marks.extend(partition_acks);
        marks.push(end.max(first));
        gaps.extend(marks.windows(2).map(|w| (w[0], w[1].max(w[0]))));
    }
    report.longest_unavailable_ms = gaps.iter().map(|(a, b)| b - a).max().unwrap_or(0);
    for (nemesis, start, stop) in fault_intervals(events, end) {
        let longest = gaps
            .iter()
            .filter(|&&(a, b)| a < stop && b > start)
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or(0);
        let entry = report.unavailable_by_fault.entry(nemesis).or_insert(0);
        *entry = (*entry).max(longest);
    }
}

/// Each fault's (kind, start, stop); one never healed lasts until `end`.
fn fault_intervals(events: &[Event], end: u64) -> Vec<(String, u64, u64)> {
    let mut open: HashMap<(String, String), u64> = HashMap::new();
    let mut intervals = Vec::new();
    for event in events {
        if let Event::Fault {
            time_ms,
            nemesis,
            start,
            detail,
        } = event
        {
            let key = (nemesis.clone(), detail.clone());
            if *start {
                open.insert(key, *time_ms);
            } else if let Some(began) = open.remove(&key) {
                intervals.push((nemesis.clone(), began, *time_ms));
            }
        }
    }
    intervals.extend(
        open.into_iter()
            .map(|((nemesis, _), began)| (nemesis, began, end.max(began))),
    );
    intervals.sort();
    intervals
}
