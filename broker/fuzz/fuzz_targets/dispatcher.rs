//! Drives the dispatcher of an in-process single-node broker (its own controller, storage
//! under `TMPDIR`) with requests built from fuzzer bytes: every API and version Sluice
//! serves, any body. What a hostile or broken client can do to a broker, past the framing
//! (`protocol/fuzz` covers frames and headers).
//!
//! Input: requests as `[api pick][version pick][length u16][body]` (see
//! `sluice_broker_fuzz::chunks`). Produce bodies that decode get every batch CRC fixed
//! before they are sent, so validation and storage see the fuzzer's batches.
//!
//! Oracles, after every request: no panic or abort; every response frame has the right
//! length and correlation id and decodes, to its last byte, as that API's response at that
//! version (a client must be able to read what we answer); only acks=0 produce answers
//! nothing. After every input the broker still answers ApiVersions. The tokio clock is
//! paused and jumps ahead whenever the broker is idle, so long polls, join delays and
//! session timeouts cost no real time.
//!
//! State (topics, groups, producer ids) lives on across inputs, as it does in a broker.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::{Decodable, Encodable};
use libfuzzer_sys::fuzz_target;
use sluice_broker::server::dispatch::{self, Reply};
use sluice_broker::server::testing::{self, TestBroker};
use sluice_broker::server::Broker;
use sluice_broker_fuzz::{check_response, chunks, frame, scratch_dir, with_crcs_fixed};
use tokio::runtime::Runtime;

struct Harness {
    runtime: Runtime,
    broker: Arc<Broker>,
    _owner: TestBroker,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let owner = runtime.block_on(testing::broker(&scratch_dir("dispatcher")));
        Harness {
            broker: owner.shared(),
            runtime,
            _owner: owner,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let peer = "127.0.0.1:40000".parse().unwrap();
    for (correlation_id, chunk) in chunks(data).into_iter().enumerate() {
        let correlation_id = correlation_id as i32;
        let body = match chunk.key {
            ApiKey::Produce => produce_with_crcs_fixed(chunk.body, chunk.version),
            _ => Bytes::copy_from_slice(chunk.body),
        };
        let request = frame(chunk.key, chunk.version, correlation_id, &body);
        let handled = harness.runtime.block_on(dispatch::handle(
            harness.broker.clone(),
            request,
            Instant::now(),
            peer,
        ));
        match handled.reply {
            Reply::Frame(response) => {
                check_response(chunk.key, chunk.version, correlation_id, &response)
            }
            Reply::None => assert_eq!(chunk.key, ApiKey::Produce, "only acks=0 goes unanswered"),
            Reply::Close(_) => {}
        }
    }
    still_answers(harness);
});

/// The Produce body with every batch CRC fixed, or the body as it is if it does not decode.
fn produce_with_crcs_fixed(body: &[u8], version: i16) -> Bytes {
    let mut bytes = Bytes::copy_from_slice(body);
    let Ok(mut request) = ProduceRequest::decode(&mut bytes, version) else {
        return Bytes::copy_from_slice(body);
    };
    for topic in &mut request.topic_data {
        for partition in &mut topic.partition_data {
            if let Some(records) = &partition.records {
                partition.records = Some(with_crcs_fixed(records));
            }
        }
    }
    let mut encoded = BytesMut::new();
    match request.encode(&mut encoded, version) {
        Ok(()) => encoded.freeze(),
        Err(_) => Bytes::copy_from_slice(body),
    }
}

fn still_answers(harness: &Harness) {
    // Empty client software name and version (compact strings), no tagged fields.
    let request = frame(ApiKey::ApiVersions, 3, -1, &[1, 1, 0]);
    let handled = harness.runtime.block_on(dispatch::handle(
        harness.broker.clone(),
        request,
        Instant::now(),
        "127.0.0.1:40001".parse().unwrap(),
    ));
    let Reply::Frame(response) = handled.reply else {
        panic!("the broker no longer answers ApiVersions");
    };
    check_response(ApiKey::ApiVersions, 3, -1, &response);
}
