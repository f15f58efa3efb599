//! The workload's group consumers: members of one consumer group (Kafka's classic
//! protocol, Sluice's client) subscribed to the run's topic while the nemesis acts. Each
//! poll is recorded as reads, then the offsets past what it read are committed
//! synchronously and, once acknowledged, recorded as commits; every (re)assignment is
//! recorded as a rewind, since a member resumes from the group's committed offset. The
//! checker then finds reads going backwards without a rewind and acknowledged commits going
//! backwards (a commit the coordinator lost, or a zombie member's commit it accepted).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_client::{GroupConsumer, GroupConsumerConfig, RebalanceListener, TopicPartition};

use super::history::Event;

/// The consumer group's name.
pub const GROUP: &str = "chaos-group";
/// Process numbers of group members start here (producers are 0.., the drain 1000..).
pub const GROUP_PROCESS_BASE: u32 = 2_000;

/// Where a member records: the run's events and clock (milliseconds since it began).
#[derive(Clone)]
pub(super) struct Recorder {
    pub events: Arc<Mutex<Vec<Event>>>,
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Recorder {
    fn record(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

/// Records a rewind for every partition the member is assigned.
struct Rewinds {
    process: u32,
    recorder: Recorder,
}

impl RebalanceListener for Rewinds {
    fn on_partitions_assigned(&mut self, assigned: &[TopicPartition]) {
        for tp in assigned {
            self.recorder.record(Event::Rewind {
                process: self.process,
                partition: tp.1,
                time_ms: (self.recorder.clock)(),
            });
        }
    }
}

/// One group member on `topic` until `stop`: poll, record, commit, record the commit.
pub(super) async fn group_member(
    bootstrap: String,
    topic: &'static str,
    member: u32,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let process = GROUP_PROCESS_BASE + member;
    let mut config = GroupConsumerConfig::new(bootstrap, GROUP);
    config.enable_auto_commit = false;
    config.session_timeout_ms = 3_000;
    config.heartbeat_interval_ms = 300;
    config.consumer.request_timeout_ms = 5_000;
    let Ok(mut consumer) = GroupConsumer::new(config).await else {
        return;
    };
    consumer.set_rebalance_listener(Rewinds {
        process,
        recorder: recorder.clone(),
    });
    if consumer.subscribe(&[topic]).is_err() {
        return;
    }
    while !stop.load(Ordering::Acquire) {
        let Ok(records) = consumer.poll(Duration::from_millis(500)).await else {
            // A failed poll (coordinator moving, broker down): try again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut read: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
        for r in &records {
            let value = r
                .value
                .as_ref()
                .and_then(|v| Some(super::java_producer::value_of(std::str::from_utf8(v).ok()?)))
                .unwrap_or(0);
            read.entry(r.partition).or_default().push((r.offset, value));
        }
        let time_ms = (recorder.clock)();
        for (&partition, records) in &read {
            recorder.record(Event::Read {
                process,
                partition,
                time_ms,
                records: records.clone(),
            });
        }
        let offsets: BTreeMap<TopicPartition, i64> = read
            .iter()
            .filter_map(|(&partition, records)| {
                let last = records.last()?.0;
                Some(((topic.to_string(), partition), last + 1))
            })
            .collect();
        if offsets.is_empty() {
            continue;
        }
        if consumer.commit(&offsets).await.is_ok() {
            let completed_ms = (recorder.clock)();
            for (tp, offset) in offsets {
                recorder.record(Event::Commit {
                    process,
                    group: GROUP.to_string(),
                    partition: tp.1,
                    offset,
                    completed_ms,
                });
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer.close()).await;
}
