//! Our own client end to end: produce keyed records with headers for an acks mode and codec,
//! consume them back, and check every field, the partition each key went to (Java's
//! murmur2 placement) and that offsets are dense. Used by `tests/client_roundtrip.rs`
//! against `sluiced`, or against any broker named by `SLUICE_INTEROP_BOOTSTRAP`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use sluice_client::partitioner::partition_for_key;
use sluice_client::{
    Acks, Compression, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo,
};

/// Partitions of every round-trip topic.
pub const PARTITIONS: i32 = 3;
const VALUE_BYTES: usize = 100;
const CONSUME_DEADLINE: Duration = Duration::from_secs(180);

fn value_for(i: usize) -> Bytes {
    let mut value = format!("value-{i:012}-").into_bytes();
    value.resize(VALUE_BYTES, b'x');
    Bytes::from(value)
}

/// Produce `records` keyed records with headers to `topic` (which has [`PARTITIONS`]
/// partitions) with the given acks and codec, then consume them back and check every key,
/// value, header, partition and offset.
pub async fn roundtrip(
    bootstrap: &str,
    records: usize,
    topic: &str,
    acks: Acks,
    codec: Compression,
) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = acks;
    config.compression = codec;
    let producer = Producer::new(config).await?;
    let started = Instant::now();
    let mut futures = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(topic, value_for(i))
            .with_key(format!("key-{i}"))
            .with_header("index", i.to_string())
            .with_header("empty", Bytes::new());
        futures.push(producer.send(record).await?);
    }
    let mut offsets: HashMap<i32, Vec<i64>> = HashMap::new();
    for (i, future) in futures.into_iter().enumerate() {
        let expected_partition = partition_for_key(format!("key-{i}").as_bytes(), PARTITIONS);
        ensure!(
            future.partition() == expected_partition,
            "record {i} went to the wrong partition"
        );
        let metadata = future.await.with_context(|| format!("record {i}"))?;
        offsets
            .entry(metadata.partition)
            .or_default()
            .push(metadata.offset);
    }
    producer.close().await;
    let produce_elapsed = started.elapsed();
    if acks != Acks::None {
        for (partition, mut list) in offsets {
            list.sort_unstable();
            let expected: Vec<i64> = (0..list.len() as i64).collect();
            ensure!(
                list == expected,
                "offsets of partition {partition} are not 0..n"
            );
        }
    }

    let started = Instant::now();
    let mut consumer = Consumer::new(ConsumerConfig::new(bootstrap)).await?;
    consumer
        .assign((0..PARTITIONS).map(|p| (topic.to_string(), p)).collect())
        .await?;
    for partition in 0..PARTITIONS {
        consumer.seek(topic, partition, SeekTo::Earliest).await?;
    }
    let mut seen = vec![false; records];
    let mut count = 0;
    let deadline = Instant::now() + CONSUME_DEADLINE;
    while count < records {
        if Instant::now() >= deadline {
            let missing: Vec<usize> = (0..records).filter(|&i| !seen[i]).collect();
            let mut by_partition: HashMap<i32, (usize, usize, usize)> = HashMap::new();
            for &i in &missing {
                let p = partition_for_key(format!("key-{i}").as_bytes(), PARTITIONS);
                let entry = by_partition.entry(p).or_insert((0, usize::MAX, 0));
                entry.0 += 1;
                entry.1 = entry.1.min(i);
                entry.2 = entry.2.max(i);
            }
            bail!(
                "only {count} of {} records consumed; missing per partition (count, first, last): {by_partition:?}",
                records
            );
        }
        for record in consumer.poll(Duration::from_secs(1)).await? {
            let key = std::str::from_utf8(record.key.as_deref().context("no key")?)?;
            let i: usize = key.strip_prefix("key-").context("bad key")?.parse()?;
            ensure!(
                i < records && !seen[i],
                "record {i} duplicated or out of range"
            );
            seen[i] = true;
            count += 1;
            ensure!(
                record.value.as_ref() == Some(&value_for(i)),
                "record {i}: wrong value"
            );
            ensure!(
                record.partition == partition_for_key(key.as_bytes(), PARTITIONS),
                "record {i}: wrong partition"
            );
            let expected_headers = vec![
                ("index".to_string(), Some(Bytes::from(i.to_string()))),
                ("empty".to_string(), Some(Bytes::new())),
            ];
            ensure!(
                record.headers == expected_headers,
                "record {i}: wrong headers"
            );
        }
    }
    let consume_elapsed = started.elapsed();
    println!(
        "acks={:<4} codec={:<6} records={} produce {:>9.0} rec/s  consume {:>9.0} rec/s  ok",
        match acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        },
        codec.name(),
        records,
        records as f64 / produce_elapsed.as_secs_f64(),
        records as f64 / consume_elapsed.as_secs_f64(),
    );
    Ok(())
}
