//! Kafka framing: every request and response is a 4-byte big-endian length, then that many
//! bytes.
//!
//! The length is checked against `frame_bytes_max` before any buffer is reserved, so a peer
//! cannot make us allocate by announcing a huge frame; a negative length is an error too.
//! Both close the connection (the caller logs the reason), as Kafka does.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtocolError;

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

/// Length-prefixed frame codec. Decodes to the frame body without the length prefix.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    frame_bytes_max: usize,
}

impl FrameCodec {
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameCodec { frame_bytes_max }
    }

    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

/// The body length a frame's 4-byte prefix announces, refused when negative or over
/// `frame_bytes_max` (before anything is reserved for it).
pub fn frame_length(prefix: [u8; 4], frame_bytes_max: usize) -> Result<usize, ProtocolError> {
    let length = i32::from_be_bytes(prefix);
    let length = usize::try_from(length).map_err(|_| ProtocolError::NegativeFrameLength(length))?;
    if length > frame_bytes_max {
        return Err(ProtocolError::FrameTooLarge {
            length,
            limit: frame_bytes_max,
        });
    }
    Ok(length)
}

/// Error type of the codec: either the peer's bytes were wrong or the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let length = frame_length(prefix.try_into().expect("four bytes"), self.frame_bytes_max)?;
        if src.len() < 4 + length {
            // Reserve only now that the length is known to be within the limit.
            src.reserve(4 + length - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(length)))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        let length = i32::try_from(item.len()).map_err(|_| ProtocolError::FrameTooLarge {
            length: item.len(),
            limit: i32::MAX as usize,
        })?;
        dst.reserve(4 + item.len());
        dst.put_i32(length);
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// Prepend the 4-byte length to an encoded message body, in place where there is room.
pub fn encode_frame(body: &[u8], dst: &mut BytesMut) {
    dst.reserve(4 + body.len());
    dst.put_i32(body.len() as i32);
    dst.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_whole_frame_then_splits() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[3, 0, 0]);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3]);
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn rejects_negative_length() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        match codec.decode(&mut buf) {
            Err(FrameError::Protocol(ProtocolError::NegativeFrameLength(-5))) => {}
            other => panic!("expected negative length error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_oversized_length_without_reserving() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&(1_000_000_000i32).to_be_bytes()[..]);
        let capacity_before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Protocol(ProtocolError::FrameTooLarge { .. }))
        ));
        assert_eq!(buf.capacity(), capacity_before);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
    }
}
