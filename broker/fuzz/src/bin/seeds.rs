//! Writes a starting corpus for each broker fuzz target into `corpus/<target>/`: a few
//! well-formed inputs the fuzzer mutates from, so it starts past the decoders. Run by
//! `scripts/fuzz.sh` when a target's corpus is empty.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_broker::controller::MetadataCommand;
use sluice_broker::storage::{FileSystem, LogConfig, LogManager, StdFileSystem};
use sluice_protocol::api::SUPPORTED_APIS;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{encode_batch, Record};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    dispatcher(&root.join("dispatcher"));
    controller(&root.join("controller_frames"));
    log(&root.join("log_recovery"));
    println!("seeds written under {}", root.display());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// `[api pick][version pick][length][body]` for `key` at `version` (see `chunks`).
fn chunk(key: ApiKey, version: i16, body: &impl Encodable) -> Vec<u8> {
    let (pick, api) = SUPPORTED_APIS
        .iter()
        .enumerate()
        .find(|(_, api)| api.key == key)
        .expect("a served API");
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).unwrap();
    let mut out = vec![pick as u8, (version - api.min) as u8];
    out.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
    out.extend_from_slice(&encoded);
    out
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn records() -> Bytes {
    let record = |i: i64| Record {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(format!("v{i}"))),
        headers: Vec::new(),
        timestamp: 1_700_000_000_000 + i,
    };
    encode_batch(&[record(0), record(1)], Compression::None).unwrap()
}

fn dispatcher(dir: &Path) {
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("fuzz"))
            .with_num_partitions(2)
            .with_replication_factor(1)])
        .with_timeout_ms(1000);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("fuzz"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records()))])]);
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic("fuzz"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic("fuzz"))),
    ]));
    let create = chunk(ApiKey::CreateTopics, 7, &create);
    let produce = chunk(ApiKey::Produce, 9, &produce);
    let fetch = chunk(ApiKey::Fetch, 12, &fetch);
    let metadata = chunk(ApiKey::Metadata, 12, &metadata);
    write(dir, "create", &create);
    write(
        dir,
        "create-produce-fetch",
        &[&create[..], &produce, &fetch].concat(),
    );
    write(dir, "metadata-produce", &[&metadata[..], &produce].concat());
}

fn controller(dir: &Path) {
    let commands = [
        MetadataCommand::RegisterBroker {
            id: 1,
            incarnation: uuid::Uuid::from_u128(1),
            endpoints: Vec::new(),
            rack: None,
            cluster_id: Some("fuzz".into()),
        },
        MetadataCommand::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(7),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
        },
        MetadataCommand::DeleteTopic {
            id: uuid::Uuid::from_u128(7),
        },
    ];
    let lines: Vec<String> = commands
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    let joined = lines.join("\n");
    write(dir, "commands", &[&[2u8][..], joined.as_bytes()].concat());
    write(dir, "raft-log", &[&[3u8][..], joined.as_bytes()].concat());
    write(dir, "payload", &[&[1u8][..], br#"{"Vote":{}}"#].concat());
}

fn log(dir: &Path) {
    // flags 0 (unclean, files as written), 3 batches, bytes appended at the end: a torn
    // half of a real batch.
    let batch = records();
    let mut torn = vec![0u8, 3, 0xff, 0xff];
    torn.extend_from_slice(&((batch.len() / 2) as u16).to_be_bytes());
    torn.extend_from_slice(&batch[..batch.len() / 2]);
    write(dir, "torn-tail", &torn);
    let mut whole = vec![0u8, 2, 0xff, 0xff];
    whole.extend_from_slice(&(batch.len() as u16).to_be_bytes());
    whole.extend_from_slice(&batch);
    write(dir, "whole-batch", &whole);
    // Index files of a real log, replaced as they are (flags 1|2).
    let tmp = std::env::temp_dir().join(format!("sluice-fuzz-seeds-{}", std::process::id()));
    let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
    let logs = LogManager::open(
        fs,
        tmp.clone(),
        LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        },
    )
    .unwrap();
    logs.create_topic("t", 1, BTreeMap::new()).unwrap();
    let log = logs.partition("t", 0).unwrap();
    for _ in 0..4 {
        log.append(BytesMut::from(&batch[..]), 0, 1_700_000_000_000)
            .unwrap();
    }
    logs.shutdown().unwrap();
    let index = std::fs::read(tmp.join("t-0/00000000000000000000.index")).unwrap();
    let time_index = std::fs::read(tmp.join("t-0/00000000000000000000.timeindex")).unwrap();
    let mut indexes = vec![3u8, 0, 0, 0, 0, 0];
    indexes.extend_from_slice(&(index.len().min(4096) as u16).to_be_bytes());
    indexes.extend_from_slice(&index[..index.len().min(4096)]);
    indexes.extend_from_slice(&time_index[..time_index.len().min(4096)]);
    write(dir, "indexes", &indexes);
    std::fs::remove_dir_all(&tmp).unwrap();
}
