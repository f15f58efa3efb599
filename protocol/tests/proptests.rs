//! Property tests for everything in `sluice-protocol` that reads peer bytes.
//!
//! Three kinds of property:
//! - building then decoding arbitrary records gives them back, for every codec;
//! - every decoder, given arbitrary bytes, returns a value or an error and never panics; to get
//!   past the CRC, some inputs are valid batches whose bytes are then scrambled and whose CRC
//!   is fixed up again;
//! - flipping any byte a batch's CRC covers makes `batch::validate` fail.
//!
//! Case counts stay at 256 so the suite runs in seconds; `PROPTEST_CASES` raises them.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::batch::{self, Batches, Compression, BATCH_HEADER_BYTES};
use sluice_protocol::frame::FrameCodec;
use sluice_protocol::header::{decode_body, decode_request_header};
use sluice_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, FetchRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest,
};
use sluice_protocol::records::{decode_records, decode_records_with_limit, encode_batch, Record};
use tokio_util::codec::Decoder;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(CODECS.to_vec())
}

fn nullable_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn record() -> impl Strategy<Value = Record> {
    (
        nullable_bytes(40),
        nullable_bytes(200),
        // Repeated keys are allowed and must survive in order.
        proptest::collection::vec(("\\PC{0,8}", nullable_bytes(20)), 0..4),
        // Real timestamps, -1 ("none"), and a spread wide enough for multi-byte deltas.
        prop_oneof![Just(-1i64), 0i64..(1i64 << 45)],
    )
        .prop_map(|(key, value, headers, timestamp)| Record {
            key,
            value,
            headers,
            timestamp,
        })
}

fn records(max: usize) -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(record(), 0..max)
}

/// Recompute a batch's CRC after its covered bytes were changed.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Run every batch-level reader over `buf`; only panics matter.
fn read_batches_every_way(buf: &Bytes) {
    let _ = batch::validate(buf);
    let _ = batch::validate_for_append(buf);
    let _ = batch::BatchHeader::parse(buf);
    let _ = batch::batch_size_from_prefix(buf);
    let mut batches = Batches::new(buf);
    for (header, bytes) in batches.by_ref().flatten() {
        assert_eq!(header.size_bytes(), bytes.len());
        let _ = batch::validate(bytes);
    }
    assert!(batches.position() <= buf.len());
    for limit in [0, 64, 1 << 20] {
        let _ = batch::validate_records(buf, limit);
    }
    let _ = decode_records(buf);
    let _ = decode_records_with_limit(buf, 4096);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn records_round_trip_through_every_codec(records in records(50)) {
        for codec in CODECS {
            let batch = encode_batch(&records, codec).unwrap();
            if records.is_empty() {
                prop_assert!(batch.is_empty());
            } else {
                let header = batch::validate_for_append(&batch).unwrap();
                prop_assert_eq!(header.records_count as usize, records.len());
                prop_assert_eq!(header.base_sequence, -1);
            }
            let decoded = decode_records(&batch).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (sent, got)) in records.iter().zip(&decoded).enumerate() {
                prop_assert_eq!(got.offset, i as i64);
                prop_assert_eq!(got.timestamp, sent.timestamp);
                prop_assert_eq!(&got.key, &sent.key);
                prop_assert_eq!(&got.value, &sent.value);
                prop_assert_eq!(&got.headers, &sent.headers);
            }
        }
    }

    #[test]
    fn uncompressed_estimate_matches_built_size(records in records(20)) {
        let mut builder = sluice_protocol::records::BatchBuilder::new(Compression::None);
        for record in records {
            builder.push(record);
        }
        let estimate = builder.estimated_bytes();
        prop_assert_eq!(builder.build().unwrap().len(), estimate);
    }

    #[test]
    fn frame_codec_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..300),
        frame_bytes_max in prop_oneof![Just(0usize), 0usize..64, Just(1usize << 20)],
    ) {
        let mut codec = FrameCodec::new(frame_bytes_max);
        let mut buf = BytesMut::from(&input[..]);
        // Drain whole frames until the codec wants more bytes or refuses.
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            prop_assert!(frame.len() <= frame_bytes_max);
        }
    }

    #[test]
    fn request_header_decode_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = Bytes::from(input);
        let _ = decode_request_header(&mut frame);
    }

    #[test]
    fn request_header_with_a_known_preamble_never_panics(
        api_key in prop_oneof![0i16..=80, any::<i16>()],
        api_version in prop_oneof![-1i16..=20, any::<i16>()],
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&api_key.to_be_bytes());
        frame.extend_from_slice(&api_version.to_be_bytes());
        frame.extend_from_slice(&7i32.to_be_bytes());
        frame.extend_from_slice(&tail);
        let _ = decode_request_header(&mut frame.freeze());
    }

    #[test]
    fn batch_readers_never_panic_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        read_batches_every_way(&Bytes::from(input));
    }

    #[test]
    fn batch_readers_never_panic_on_crc_valid_garbage(
        records in records(8),
        codec in codec(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        header_fields in proptest::collection::vec((21usize..61, any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!records.is_empty());
        let mut batch = BytesMut::from(&encode_batch(&records, codec).unwrap()[..]);
        // Scramble records bytes and header fields past the CRC, then make the CRC agree, so
        // the record decoder and the decompressors see the garbage.
        let len = batch.len();
        for (at, byte) in edits {
            let at = BATCH_HEADER_BYTES + at.index(len - BATCH_HEADER_BYTES);
            batch[at] = byte;
        }
        for (at, byte) in header_fields {
            batch[at] = byte;
        }
        fix_crc(&mut batch);
        let whole = batch.freeze();
        read_batches_every_way(&whole);
        // And cut anywhere: a partial tail, or the length field disagreeing with the bytes.
        read_batches_every_way(&whole.slice(..cut.index(whole.len() + 1)));
    }

    #[test]
    fn batch_readers_never_panic_on_a_valid_header_over_arbitrary_payload(
        codec in codec(),
        count in prop_oneof![0i32..10, any::<i32>()],
        timestamps in (any::<i64>(), any::<i64>()),
        base_offset in any::<i64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut batch = vec![0u8; BATCH_HEADER_BYTES];
        batch.extend_from_slice(&payload);
        let length = (batch.len() - 12) as i32;
        batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        batch[16] = 2;
        batch[21..23].copy_from_slice(&(codec as i16).to_be_bytes());
        batch[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
        batch[27..35].copy_from_slice(&timestamps.0.to_be_bytes());
        batch[35..43].copy_from_slice(&timestamps.1.to_be_bytes());
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        fix_crc(&mut batch);
        read_batches_every_way(&Bytes::from(batch));
    }

    #[test]
    fn flipping_any_crc_covered_byte_fails_validation(
        records in records(20),
        codec in codec(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        prop_assume!(!records.is_empty());
        let mut batch = BytesMut::from(&encode_batch(&records, codec).unwrap()[..]);
        prop_assert!(batch::validate(&batch).is_ok());
        let at = 21 + at.index(batch.len() - 21);
        batch[at] ^= mask;
        prop_assert!(batch::validate(&batch).is_err(), "flip at {} with {:#04x} passed", at, mask);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes as request bodies of every API the broker answers. kafka-protocol
    /// 0.18 sized `Vec::with_capacity` from an array count read off the wire, so a count
    /// near i32::MAX aborted the process; the workspace patches that (vendor/kafka-protocol,
    /// upstream PRs #152, #161, #200) and this test fails if the patch is lost.
    #[test]
    fn request_body_decode_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..200),
        version in prop_oneof![-1i16..=16, Just(i16::MAX)],
    ) {
        let body = Bytes::from(input);
        let _ = decode_body::<ProduceRequest>("produce", &mut body.clone(), version);
        let _ = decode_body::<FetchRequest>("fetch", &mut body.clone(), version);
        let _ = decode_body::<MetadataRequest>("metadata", &mut body.clone(), version);
        let _ = decode_body::<ApiVersionsRequest>("api versions", &mut body.clone(), version);
        let _ = decode_body::<ListOffsetsRequest>("list offsets", &mut body.clone(), version);
        let _ = decode_body::<CreateTopicsRequest>("create topics", &mut body.clone(), version);
        let _ = decode_body::<DeleteTopicsRequest>("delete topics", &mut body.clone(), version);
        let _ = decode_body::<CreatePartitionsRequest>("create partitions", &mut body.clone(), version);
        let _ = decode_body::<DescribeConfigsRequest>("describe configs", &mut body.clone(), version);
        let _ = decode_body::<DescribeClusterRequest>("describe cluster", &mut body.clone(), version);
    }
}

/// A header then a Produce body, as the broker decodes them, over arbitrary tails. The body
/// decode runs only on tails too short to hold an array count, which is as far as it can go
/// without hitting the kafka-protocol allocation abort (see `request_body_decode_never_panics`).
#[test]
fn short_produce_bodies_decode_or_fail_cleanly() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (3i16..=13, proptest::collection::vec(any::<u8>(), 0..8));
    runner
        .run(&strategy, |(version, tail)| {
            for version in [version, 0, 2, 14, -1] {
                let _ = decode_body::<ProduceRequest>(
                    "produce",
                    &mut Bytes::from(tail.clone()),
                    version,
                );
            }
            Ok(())
        })
        .unwrap();
}

/// The abort, pinned: twelve bytes of a ProduceRequest v3 body (null transactional
/// id, acks 1, timeout 0, topic count i32::MAX) make kafka-protocol 0.18 request ~200 GB.
#[test]
fn produce_body_with_huge_topic_count_is_an_error_not_an_abort() {
    let mut body = Bytes::from_static(&[0xff, 0xff, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    assert!(decode_body::<ProduceRequest>("produce", &mut body, 3).is_err());
}
