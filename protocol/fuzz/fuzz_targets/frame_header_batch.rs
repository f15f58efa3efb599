//! Feeds bytes through everything the broker and client read from a peer: framing, request
//! header, a Produce body, batch validation, and record decoding with decompression.
//!
//! The first input byte picks a mode, so the fuzzer can reach each layer directly:
//! - 0: a stream of frames, each decoded as a request; Produce bodies have their records
//!   validated and decoded;
//! - 1: records bytes as they are (almost never passes the CRC);
//! - 2: records bytes with the CRC of every whole batch fixed up first, so the record
//!   parser and the decompressors see the rest of the input.
//!
//! With the `skip-produce-body` feature, mode 0 stops after the request header (see
//! README.md for why).
//!
//! Besides "no panic, no abort", one oracle: records that decode, re-encoded, decode to the
//! same keys, values, headers and timestamps.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_protocol::batch::{self, Batches, Compression};
use sluice_protocol::frame::FrameCodec;
use sluice_protocol::header::{decode_body, decode_request_header};
use sluice_protocol::kafka_protocol::messages::{ApiKey, ProduceRequest};
use sluice_protocol::records::{decode_records, decode_records_with_limit, encode_batch, Record};
use tokio_util::codec::Decoder;

const FRAME_BYTES_MAX: usize = 1 << 20;
const BATCH_BYTES_MAX: usize = 1 << 20;
/// Smaller than the 256 MiB default so a bomb costs milliseconds, not seconds, per run.
const DECOMPRESSED_BATCH_BYTES_MAX: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => frames(rest),
        1 => records(&Bytes::copy_from_slice(rest)),
        _ => records(&with_crcs_fixed(rest)),
    }
});

fn frames(data: &[u8]) {
    let mut codec = FrameCodec::new(FRAME_BYTES_MAX);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() <= FRAME_BYTES_MAX);
        request(frame.freeze());
    }
}

fn request(mut frame: Bytes) {
    let Ok((api_key, header)) = decode_request_header(&mut frame) else {
        return;
    };
    if api_key != ApiKey::Produce || cfg!(feature = "skip-produce-body") {
        return;
    }
    let Ok(produce) =
        decode_body::<ProduceRequest>("produce", &mut frame, header.request_api_version)
    else {
        return;
    };
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            if let Some(buf) = &partition.records {
                records(buf);
            }
        }
    }
}

fn records(buf: &Bytes) {
    let _ = batch::validate_records(buf, BATCH_BYTES_MAX);
    for (header, bytes) in Batches::new(buf).flatten() {
        assert_eq!(header.size_bytes(), bytes.len());
        let _ = batch::validate_for_append(bytes);
    }
    let Ok(decoded) = decode_records_with_limit(buf, DECOMPRESSED_BATCH_BYTES_MAX) else {
        return;
    };
    let again: Vec<Record> = decoded
        .iter()
        .map(|r| Record {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp,
        })
        .collect();
    // Timestamps too far apart to encode as deltas are refused, not wrapped: skip those.
    let Ok(rebuilt) = encode_batch(&again, Compression::Lz4) else {
        return;
    };
    let redecoded = decode_records(&rebuilt).expect("a batch we built must decode");
    assert_eq!(redecoded.len(), decoded.len());
    for (i, (first, second)) in decoded.iter().zip(&redecoded).enumerate() {
        assert_eq!(second.offset, i as i64);
        assert_eq!(second.timestamp, first.timestamp);
        assert_eq!(second.key, first.key);
        assert_eq!(second.value, first.value);
        assert_eq!(second.headers, first.headers);
    }
}

/// Copy `data`, then walk it batch by batch and overwrite each whole batch's CRC with the
/// right one.
fn with_crcs_fixed(data: &[u8]) -> Bytes {
    let mut buf = data.to_vec();
    let mut position = 0;
    while let Ok(size) = batch::batch_size_from_prefix(&buf[position..]) {
        let Some(end) = position.checked_add(size).filter(|&end| end <= buf.len()) else {
            break;
        };
        let crc = crc32c::crc32c(&buf[position + 21..end]);
        buf[position + 17..position + 21].copy_from_slice(&crc.to_be_bytes());
        position = end;
    }
    Bytes::from(buf)
}
