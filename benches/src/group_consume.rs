//! The consuming half of `sluice-bench groups`: how long a group of consumers takes to
//! become stable, and how fast one consumer reads through a group compared with reading
//! the same partitions it assigned itself. Both use the client crate's consumers, against
//! whichever broker is measured.
//!
//! - **Stable group**: `--members` [`GroupConsumer`]s subscribe at once to a topic of
//!   `--stable-partitions` partitions; the time from the first subscribe until every member
//!   is in the same generation (member epoch, with the consumer protocol) and their
//!   assignments cover every partition once. Measured with the classic protocol, where the
//!   broker's `group.initial.rebalance.delay.ms` is most of it (Kafka's default 3 s; the
//!   reference script starts Kafka with 0 unless `KAFKA_REFERENCE_GROUP_INITIAL_DELAY_MS` says
//!   otherwise, and sluiced takes `--broker-args "--group-initial-rebalance-delay-ms 0"`),
//!   and with the consumer protocol (KIP-848), where the heartbeat interval the broker
//!   hands out (`group.consumer.heartbeat.interval.ms`, 5 s on both) paces reconciliation.
//! - **Group vs assign**: `--consume-records` records of 100 bytes on 8 partitions, read
//!   once by a [`Consumer`] assigned every partition and once by a lone [`GroupConsumer`].
//!   Each clock starts at the first records received, so the group's join (the stable-group
//!   figure) is not counted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sluice_client::{
    Acks, Admin, Consumer, ConsumerConfig, GroupConsumer, GroupConsumerConfig, GroupProtocol,
    OffsetReset, Producer, ProducerConfig, ProducerRecord,
};

/// Partitions of the topic the group-vs-assign comparison reads.
const CONSUME_PARTITIONS: i32 = 8;
/// How long any one measurement may take.
const GIVE_UP: Duration = Duration::from_secs(120);

/// What each member last saw: its generation (`None` while rebalancing) and assignment.
type MemberViews = Arc<Mutex<Vec<(Option<i32>, Vec<i32>)>>>;

/// Seconds until `members` consumers form a stable group over `partitions` partitions.
pub(crate) async fn stable_group_seconds(
    bootstrap: &str,
    tag: &str,
    (members, partitions): (usize, i32),
    protocol: GroupProtocol,
) -> Result<f64> {
    let tag = format!("{tag}-{protocol:?}").to_lowercase();
    let topic = format!("bench-stable-{tag}");
    Admin::new(bootstrap)
        .await?
        .create_topic(&topic, partitions, 1, &[])
        .await?;
    let views: MemberViews = Arc::new(Mutex::new(vec![(None, Vec::new()); members]));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..members)
        .map(|i| {
            let mut config = GroupConsumerConfig::new(bootstrap, format!("bench-stable-{tag}"));
            config.group_protocol = protocol;
            let (topic, views, done) = (topic.clone(), views.clone(), done.clone());
            tokio::spawn(async move { run_member(config, &topic, i, views, done).await })
        })
        .collect();
    let all: BTreeSet<i32> = (0..partitions).collect();
    let seconds = loop {
        if is_stable(&views.lock().unwrap(), &all) {
            break started.elapsed().as_secs_f64();
        }
        if started.elapsed() > GIVE_UP {
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            bail!("the group was not stable after {GIVE_UP:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(seconds)
}

/// Every member in the same generation, their assignments covering `all` once.
fn is_stable(views: &[(Option<i32>, Vec<i32>)], all: &BTreeSet<i32>) -> bool {
    let generations: BTreeSet<Option<i32>> = views.iter().map(|(g, _)| *g).collect();
    let assigned: Vec<i32> = views.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    let unique: BTreeSet<i32> = assigned.iter().copied().collect();
    generations.len() == 1
        && !generations.contains(&None)
        && assigned.len() == unique.len()
        && &unique == all
}

async fn run_member(
    config: GroupConsumerConfig,
    topic: &str,
    index: usize,
    views: MemberViews,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let mut consumer = GroupConsumer::new(config).await?;
    consumer.subscribe(&[topic])?;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        consumer.poll(Duration::from_millis(20)).await?;
        let assignment = consumer.assignment().into_iter().map(|(_, p)| p).collect();
        views.lock().unwrap()[index] = (consumer.member().1, assignment);
    }
    consumer.close().await?;
    Ok(())
}

/// Records per second reading `records` records: assigned, then through a group.
pub(crate) async fn group_vs_assign(
    bootstrap: &str,
    tag: &str,
    records: usize,
) -> Result<(f64, f64)> {
    let topic = format!("bench-consume-{tag}");
    Admin::new(bootstrap)
        .await?
        .create_topic(&topic, CONSUME_PARTITIONS, 1, &[])
        .await?;
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = Acks::Leader;
    let producer = Producer::new(config).await?;
    let value = vec![b'x'; 100];
    let mut pending = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(&topic, value.clone())
            .with_partition(i as i32 % CONSUME_PARTITIONS);
        pending.push(producer.send(record).await?);
    }
    for delivery in pending {
        delivery.await?;
    }
    let assigned = assigned_rate(bootstrap, &topic, records).await?;
    let grouped = group_rate(bootstrap, &topic, tag, records).await?;
    Ok((assigned, grouped))
}

async fn assigned_rate(bootstrap: &str, topic: &str, records: usize) -> Result<f64> {
    let mut config = ConsumerConfig::new(bootstrap);
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(config).await?;
    consumer
        .assign(
            (0..CONSUME_PARTITIONS)
                .map(|p| (topic.to_string(), p))
                .collect(),
        )
        .await?;
    let mut meter = Meter::new(records);
    while !meter.done() {
        let read = consumer.poll(Duration::from_millis(100)).await?.len();
        meter.add(read, "assigned consumer")?;
    }
    Ok(meter.rate())
}

async fn group_rate(bootstrap: &str, topic: &str, tag: &str, records: usize) -> Result<f64> {
    let mut config = GroupConsumerConfig::new(bootstrap, format!("bench-consume-{tag}"));
    config.consumer.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = GroupConsumer::new(config).await?;
    consumer.subscribe(&[topic])?;
    let mut meter = Meter::new(records);
    while !meter.done() {
        let read = consumer.poll(Duration::from_millis(100)).await?.len();
        meter.add(read, "group consumer")?;
    }
    consumer.close().await?;
    Ok(meter.rate())
}

/// Records read, timed from the first ones received (so a group's join is not counted).
struct Meter {
    records: usize,
    read: usize,
    created: Instant,
    /// When the first records came, and how many.
    first: Option<(Instant, usize)>,
}

impl Meter {
    fn new(records: usize) -> Meter {
        Meter {
            records,
            read: 0,
            created: Instant::now(),
            first: None,
        }
    }

    fn add(&mut self, read: usize, who: &str) -> Result<()> {
        if read > 0 && self.first.is_none() {
            self.first = Some((Instant::now(), read));
        }
        self.read += read;
        if self.created.elapsed() > GIVE_UP {
            bail!(
                "{who} read {} of {} records in {GIVE_UP:?}",
                self.read,
                self.records
            );
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.read >= self.records
    }

    /// Records per second after the first batch.
    fn rate(&self) -> f64 {
        let Some((at, first)) = self.first else {
            return 0.0;
        };
        (self.read - first) as f64 / at.elapsed().as_secs_f64().max(1e-9)
    }
}
