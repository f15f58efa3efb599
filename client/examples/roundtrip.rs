//! End-to-end check against a running broker (Sluice or Apache Kafka): for every acks mode
//! and codec, create a topic, produce records with keys and headers, consume them back and
//! verify every field, the partition each key went to, and offsets. Then, optionally, a
//! keyless throughput run.
//!
//! ```text
//! cargo run --release -p sluice-client --example roundtrip -- \
//!     --bootstrap 127.0.0.1:9092 [--records 100000] [--bench-records 1000000]
//! ```
//!
//! Only loopback brokers should be pointed at; every wait is bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use sluice_client::partitioner::partition_for_key;
use sluice_client::{
    Acks, Admin, Compression, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    SeekTo,
};

const PARTITIONS: i32 = 3;
const VALUE_BYTES: usize = 100;
const CONSUME_DEADLINE: Duration = Duration::from_secs(120);

struct Options {
    bootstrap: String,
    records: usize,
    bench_records: usize,
    acks: Vec<Acks>,
    codecs: Vec<Compression>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        bootstrap: "127.0.0.1:9092".to_string(),
        records: 100_000,
        bench_records: 0,
        acks: vec![Acks::None, Acks::Leader, Acks::All],
        codecs: vec![
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bootstrap" => options.bootstrap = value()?,
            "--records" => options.records = value()?.parse()?,
            "--bench-records" => options.bench_records = value()?.parse()?,
            "--acks" => {
                options.acks = value()?
                    .split(',')
                    .map(|a| Acks::parse(a).with_context(|| format!("bad acks {a}")))
                    .collect::<anyhow::Result<_>>()?
            }
            "--codecs" => {
                options.codecs = value()?
                    .split(',')
                    .map(|c| Compression::parse(c).with_context(|| format!("bad codec {c}")))
                    .collect::<anyhow::Result<_>>()?
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

fn value_for(i: usize) -> Bytes {
    let mut value = format!("value-{i:012}-").into_bytes();
    value.resize(VALUE_BYTES, b'x');
    Bytes::from(value)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let admin = Admin::new(&options.bootstrap).await?;
    let run_id = std::process::id();
    for &acks in &options.acks {
        for &codec in &options.codecs {
            let topic = format!("roundtrip-{}-{}-{run_id}", acks.wire_value(), codec.name());
            admin.create_topic(&topic, PARTITIONS, 1, &[]).await?;
            let result = roundtrip(&options, &topic, acks, codec).await;
            admin.delete_topic(&topic).await?;
            result.with_context(|| format!("acks={acks:?} codec={}", codec.name()))?;
        }
    }
    if options.bench_records > 0 {
        let topic = format!("bench-{run_id}");
        admin.create_topic(&topic, 1, 1, &[]).await?;
        let result = bench(&options, &topic).await;
        admin.delete_topic(&topic).await?;
        result?;
    }
    Ok(())
}

async fn roundtrip(
    options: &Options,
    topic: &str,
    acks: Acks,
    codec: Compression,
) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(&options.bootstrap);
    config.acks = acks;
    config.compression = codec;
    let producer = Producer::new(config).await?;
    let started = Instant::now();
    let mut futures = Vec::with_capacity(options.records);
    for i in 0..options.records {
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
    let mut consumer = Consumer::new(ConsumerConfig::new(&options.bootstrap)).await?;
    consumer
        .assign((0..PARTITIONS).map(|p| (topic.to_string(), p)).collect())
        .await?;
    for partition in 0..PARTITIONS {
        consumer.seek(topic, partition, SeekTo::Earliest).await?;
    }
    let mut seen = vec![false; options.records];
    let mut count = 0;
    let deadline = Instant::now() + CONSUME_DEADLINE;
    while count < options.records {
        if Instant::now() >= deadline {
            let missing: Vec<usize> = (0..options.records).filter(|&i| !seen[i]).collect();
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
                options.records
            );
        }
        for record in consumer.poll(Duration::from_secs(1)).await? {
            let key = std::str::from_utf8(record.key.as_deref().context("no key")?)?;
            let i: usize = key.strip_prefix("key-").context("bad key")?.parse()?;
            ensure!(
                i < options.records && !seen[i],
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
        options.records,
        options.records as f64 / produce_elapsed.as_secs_f64(),
        options.records as f64 / consume_elapsed.as_secs_f64(),
    );
    Ok(())
}

/// Keyless 100-byte records, acks=1, one partition: the producer's throughput.
async fn bench(options: &Options, topic: &str) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(&options.bootstrap);
    config.acks = Acks::Leader;
    let producer = Producer::new(config).await?;
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let started = Instant::now();
    let mut last = None;
    for _ in 0..options.bench_records {
        let record = ProducerRecord {
            topic: topic.to_string(),
            value: Some(value.clone()),
            ..ProducerRecord::default()
        };
        last = Some(producer.send(record).await?);
    }
    producer.flush().await;
    if let Some(last) = last {
        last.await?;
    }
    let elapsed = started.elapsed();
    producer.close().await;
    println!(
        "bench: {} records of {VALUE_BYTES} bytes, acks=1: {:.0} rec/s ({:.1} MB/s)",
        options.bench_records,
        options.bench_records as f64 / elapsed.as_secs_f64(),
        (options.bench_records * VALUE_BYTES) as f64 / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}
