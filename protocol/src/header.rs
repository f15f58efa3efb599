//! Request and response headers.
//!
//! A request frame starts with api_key (i16), api_version (i16) and correlation_id (i32) in
//! every header version; the rest (client id, tagged fields) depends on the header version
//! the API key and version imply. [`peek_preamble`] reads the fixed part without trusting
//! anything else, so the server can answer an unknown API key or version with
//! UNSUPPORTED_VERSION instead of failing to decode it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::ProtocolError;

/// The fixed first eight bytes of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPreamble {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Read the fixed part of a request header without consuming it.
pub fn peek_preamble(frame: &[u8]) -> Result<RequestPreamble, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::TruncatedHeader(frame.len()));
    }
    Ok(RequestPreamble {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decode the whole request header of a frame, leaving `frame` at the start of the body.
pub fn decode_request_header(frame: &mut Bytes) -> Result<(ApiKey, RequestHeader), ProtocolError> {
    let preamble = peek_preamble(frame)?;
    let api_key = ApiKey::try_from(preamble.api_key)
        .map_err(|_| ProtocolError::UnknownApiKey(preamble.api_key))?;
    let header_version = api_key.request_header_version(preamble.api_version);
    let header =
        RequestHeader::decode(frame, header_version).map_err(|e| malformed("request header", e))?;
    Ok((api_key, header))
}

/// Decode a message body at the given version, requiring that it consumes the whole buffer.
pub fn decode_body<T: Decodable>(
    what: &'static str,
    body: &mut Bytes,
    version: i16,
) -> Result<T, ProtocolError> {
    let message = T::decode(body, version).map_err(|e| malformed(what, e))?;
    Ok(message)
}

/// Encode a response (header + body) into a frame, length prefix included.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| malformed("response header", e))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| malformed("response body", e))?;
    let length = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf.freeze())
}

/// Encode a request (header + body) into a frame, length prefix included.
pub fn encode_request<T: Encodable>(
    api_key: ApiKey,
    header: &RequestHeader,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let header_version = api_key.request_header_version(header.request_api_version);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| malformed("request header", e))?;
    body.encode(&mut buf, header.request_api_version)
        .map_err(|e| malformed("request body", e))?;
    let length = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf.freeze())
}

/// Decode a response frame (without its length prefix): header, then body.
pub fn decode_response<T: Decodable>(
    api_key: ApiKey,
    api_version: i16,
    frame: &mut Bytes,
) -> Result<(i32, T), ProtocolError> {
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::decode(frame, header_version)
        .map_err(|e| malformed("response header", e))?;
    let body = T::decode(frame, api_version).map_err(|e| malformed("response body", e))?;
    Ok((header.correlation_id, body))
}

/// Read the correlation id of a response frame without decoding the rest.
pub fn peek_response_correlation_id(frame: &[u8]) -> Result<i32, ProtocolError> {
    if frame.len() < 4 {
        return Err(ProtocolError::TruncatedHeader(frame.len()));
    }
    Ok((&frame[0..4]).get_i32())
}

fn malformed(what: &'static str, error: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Malformed {
        what,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn request_round_trips_through_header_and_body() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let body = MetadataRequest::default();
        let frame = encode_request(ApiKey::Metadata, &header, &body).unwrap();
        let mut frame = frame.slice(4..);
        let preamble = peek_preamble(&frame).unwrap();
        assert_eq!(preamble.correlation_id, 77);
        let (key, decoded) = decode_request_header(&mut frame).unwrap();
        assert_eq!(key, ApiKey::Metadata);
        assert_eq!(decoded.client_id.as_deref(), Some("test"));
        let _: MetadataRequest = decode_body("metadata", &mut frame, 12).unwrap();
        assert!(frame.is_empty());
    }

    #[test]
    fn unknown_api_key_is_an_error_not_a_panic() {
        let mut frame = Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode_request_header(&mut frame).unwrap_err(),
            ProtocolError::UnknownApiKey(0x7f7f)
        );
        let _ = ApiVersionsRequest::default();
    }
}
