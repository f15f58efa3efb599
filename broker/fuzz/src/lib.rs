//! Helpers shared by the broker fuzz targets: turning fuzzer bytes into Kafka request frames
//! and checking the broker's answers.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::api::SUPPORTED_APIS;
use sluice_protocol::batch;

/// One request the fuzzer asked for: an API and version Sluice serves, and a body.
pub struct Chunk<'a> {
    pub key: ApiKey,
    pub version: i16,
    pub body: &'a [u8],
}

/// Split `data` into requests, each `[api pick][version pick][length: u16 BE][body]`: the
/// picks index `SUPPORTED_APIS` and the API's version range (so every request is one the
/// dispatcher decodes), and the last body takes whatever is left if the length overruns.
pub fn chunks(mut data: &[u8]) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    while let [pick, version_pick, hi, lo, rest @ ..] = data {
        let api = &SUPPORTED_APIS[usize::from(*pick) % SUPPORTED_APIS.len()];
        let span = i16::try_from(api.max - api.min + 1).unwrap_or(1).max(1);
        let version = api.min + i16::from(*version_pick) % span;
        let length = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (body, after) = rest.split_at(length);
        chunks.push(Chunk {
            key: api.key,
            version,
            body,
        });
        data = after;
    }
    chunks
}

/// A request frame (no length prefix) with a header of the right version for `key`.
pub fn frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("a request header encodes");
    buf.extend_from_slice(body);
    buf.freeze()
}

/// Check a response frame (length prefix included) to a request of `key` at `version`:
/// the length is the frame's, the correlation id is the request's, and the body decodes
/// as that API's response at that version, to the last byte. Panics otherwise.
pub fn check_response(key: ApiKey, version: i16, correlation_id: i32, frame: &Bytes) {
    assert!(
        frame.len() >= 8,
        "{key:?} v{version}: a {}-byte response",
        frame.len()
    );
    let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(length, frame.len() - 4, "{key:?} v{version}: length prefix");
    let mut rest = frame.slice(4..);
    let header = ResponseHeader::decode(&mut rest, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: response header: {e}"));
    assert_eq!(header.correlation_id, correlation_id, "{key:?} v{version}");
    if let Err(e) = ResponseKind::decode(key, &mut rest, version) {
        panic!("{key:?} v{version}: the response does not decode: {e}");
    }
    assert!(
        rest.is_empty(),
        "{key:?} v{version}: {} bytes left over",
        rest.len()
    );
}

/// Copy `data` and overwrite each whole batch's CRC with the right one, so that what
/// follows the CRC check (validation, storage) sees the fuzzer's bytes.
pub fn with_crcs_fixed(data: &[u8]) -> Bytes {
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

/// A directory of its own under the temporary directory (`TMPDIR`; `scripts/fuzz.sh` points
/// it at a directory it removes afterwards).
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    dir
}
