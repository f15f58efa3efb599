//! Feeds bytes to the body decoder of every request Sluice serves, at every version it
//! serves (`sluice_protocol::api::SUPPORTED_APIS`): the first input byte picks the API, the
//! second the version, the rest is the body. What the broker's dispatcher decodes from any
//! client, before a handler sees it.
//!
//! The oracle is "no panic, no abort" (a wire count sizing an allocation aborted before the
//! vendored kafka-protocol bounded them), for decoding and for encoding what was decoded.
//! Not "decodes again to the same request": kafka-protocol reads an unknown tagged field's
//! tag past `i32::MAX` as a negative tag, which it then cannot write (the fuzzer found that
//! in seconds); Sluice never re-encodes a request, so that asymmetry is not ours to check.

#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::api::SUPPORTED_APIS;

fuzz_target!(|data: &[u8]| {
    let [pick, version_pick, body @ ..] = data else {
        return;
    };
    let api = &SUPPORTED_APIS[usize::from(*pick) % SUPPORTED_APIS.len()];
    let span = i16::try_from(api.max - api.min + 1).unwrap_or(1).max(1);
    let version = api.min + i16::from(*version_pick) % span;
    let mut bytes = Bytes::copy_from_slice(body);
    let Ok(request) = RequestKind::decode(api.key, &mut bytes, version) else {
        return;
    };
    let mut encoded = BytesMut::new();
    let _ = request.encode(&mut encoded, version);
});
