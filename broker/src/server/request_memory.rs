//! The bound on request bytes held across all client connections
//! (`--queued-max-request-bytes`, Kafka's `queued.max.request.bytes` memory pool), and the
//! frame reader that respects it.
//!
//! [`RequestMemory`] is a pool of bytes shared by every connection. [`FrameReader`] reads a
//! frame's 4-byte length first and takes that many bytes (plus the prefix) from the pool
//! *before* it reserves a buffer for the body. When the pool is empty it stops reading the
//! socket until enough bytes come back: TCP flow control then stops the client, and nothing
//! is buffered without limit however many clients send at once. The bytes go back to the
//! pool when the request's [`QueuedBytes`] is dropped: once its reply has been written (the
//! connection keeps it beside the request's future and the reply), so requests waiting for
//! replication or a long poll keep counting.
//!
//! # Invariants
//! - The pool never hands out more than its size; a frame is never larger than the pool
//!   (`frame-bytes-max <= queued-max-request-bytes`, checked in `config`), so every frame can
//!   eventually be read.
//! - A connection buffers at most [`READ_CHUNK_BYTES`] bytes it has not taken from the pool
//!   (read ahead past the frame it is reading), so the pool plus that per connection bounds
//!   the memory of requests being read.
//! - A frame's length is checked against `frame_bytes_max` before anything is taken or
//!   reserved, so a bad length costs nothing (and closes the connection).
//! - [`FrameReader::next`] is cancel-safe: it keeps its state (buffered bytes, the bytes
//!   taken for the frame being read) in the reader, and each await either completes or
//!   leaves that state as it was. The connection polls it inside `select!`.
//!
//! Consumer fetch responses are paid for from the same pool (`replica::fetch`,
//! [`ResponseBudget`]): a fetch takes what the pool has, up to its `max_bytes`, without
//! waiting (with nothing left it still answers the first batch), and keeps it until the
//! response is written; a fetch cut short is counted in
//! `sluice_limit_exceeded_total{limit="queued_max_request_bytes_fetch"}`.
//!
//! Waits are counted in `sluice_limit_exceeded_total{limit="queued_max_request_bytes"}`;
//! the bytes held now are the `sluice_queued_request_bytes` gauge.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use sluice_protocol::error::ProtocolError;
use sluice_protocol::frame::{frame_length, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics as m;
use crate::replica::ResponseBudget;

/// Bytes read at once while the frame length is not known yet.
const READ_CHUNK_BYTES: usize = 1024;

/// The pool of request bytes shared by all client connections.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    pool: Arc<Semaphore>,
    bytes_max: usize,
}

impl RequestMemory {
    /// A pool of `bytes_max` bytes (at most tokio's semaphore limit, `usize::MAX >> 3`).
    pub fn new(bytes_max: usize) -> RequestMemory {
        let bytes_max = bytes_max.min(Semaphore::MAX_PERMITS);
        RequestMemory {
            pool: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
        }
    }

    /// Bytes held by requests now.
    pub fn in_use(&self) -> usize {
        self.bytes_max - self.pool.available_permits()
    }

    /// Take `bytes` from the pool, waiting for them if they are not there.
    async fn take(&self, bytes: usize) -> QueuedBytes {
        // Frames are under 2 GiB (an i32 length), so this never saturates in practice.
        let permits = u32::try_from(bytes.min(self.bytes_max)).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&self.pool).try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "queued_max_request_bytes")
                    .increment(1);
                Arc::clone(&self.pool)
                    .acquire_many_owned(permits)
                    .await
                    .expect("the request pool is never closed")
            }
        };
        QueuedBytes::new(permit)
    }
}

/// Consumer fetch responses come out of the same pool, without waiting: a fetch takes
/// what is there, up to its `max_bytes` (see `replica::fetch`).
impl ResponseBudget for RequestMemory {
    type Grant = QueuedBytes;

    fn take_up_to(&self, bytes: usize) -> (usize, QueuedBytes) {
        let wanted = u32::try_from(bytes.min(self.bytes_max)).unwrap_or(u32::MAX);
        let available = u32::try_from(self.pool.available_permits()).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.pool)
            .try_acquire_many_owned(wanted.min(available))
            .or_else(|_| Arc::clone(&self.pool).try_acquire_many_owned(0))
            .expect("the request pool is never closed");
        let taken = permit.num_permits();
        if taken < wanted as usize {
            metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "queued_max_request_bytes_fetch")
                .increment(1);
        }
        (taken, QueuedBytes::new(permit))
    }
}

/// Bytes of one request taken from the [`RequestMemory`] pool; given back on drop.
#[derive(Debug)]
pub struct QueuedBytes {
    permit: OwnedSemaphorePermit,
}

impl QueuedBytes {
    /// Counted in the gauge from here until [`Drop`].
    fn new(permit: OwnedSemaphorePermit) -> QueuedBytes {
        metrics::gauge!(m::QUEUED_REQUEST_BYTES).increment(permit.num_permits() as f64);
        QueuedBytes { permit }
    }
}

impl Drop for QueuedBytes {
    fn drop(&mut self) {
        metrics::gauge!(m::QUEUED_REQUEST_BYTES).decrement(self.permit.num_permits() as f64);
    }
}

/// Reads length-prefixed request frames, each under `frame_bytes_max` and paid for from
/// the [`RequestMemory`] pool before its body is buffered. See the module documentation.
pub struct FrameReader<R> {
    read: R,
    buf: BytesMut,
    frame_bytes_max: usize,
    memory: RequestMemory,
    /// Bytes taken for the frame being read, once its length is known.
    taken: Option<QueuedBytes>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(read: R, frame_bytes_max: usize, memory: RequestMemory) -> FrameReader<R> {
        FrameReader {
            read,
            buf: BytesMut::new(),
            frame_bytes_max,
            memory,
            taken: None,
        }
    }

    /// The next frame (without its length prefix) and the pool bytes it holds; `None` when
    /// the peer closed the connection between frames. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<(BytesMut, QueuedBytes), FrameError>> {
        loop {
            // Read at most what the frame lacks, plus one chunk of what follows it (small
            // pipelined requests arrive in one read): the unpaid-for bytes a connection
            // buffers stay under READ_CHUNK_BYTES.
            let wanted = match self.frame_length() {
                Err(error) => return Some(Err(error.into())),
                Ok(Some(length)) => {
                    if self.taken.is_none() {
                        self.taken = Some(self.memory.take(4 + length).await);
                    }
                    if self.buf.len() >= 4 + length {
                        self.buf.advance(4);
                        let frame = self.buf.split_to(length);
                        let taken = self.taken.take().expect("taken above");
                        return Some(Ok((frame, taken)));
                    }
                    4 + length - self.buf.len() + READ_CHUNK_BYTES
                }
                Ok(None) => READ_CHUNK_BYTES,
            };
            self.buf.reserve(wanted);
            let mut limited = (&mut self.read).take(wanted as u64);
            match limited.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return None,
                Ok(0) => {
                    let error = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection closed in the middle of a frame",
                    );
                    return Some(Err(error.into()));
                }
                Ok(_) => {}
                Err(error) => return Some(Err(error.into())),
            }
        }
    }

    /// The length of the frame at the front of the buffer, once its prefix is there.
    fn frame_length(&self) -> Result<Option<usize>, ProtocolError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        frame_length(prefix.try_into().expect("four bytes"), self.frame_bytes_max).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn frames_arriving_in_pieces_are_read_whole_and_hold_their_bytes() {
        let memory = RequestMemory::new(1024);
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1000, memory.clone());
        let writer = tokio::spawn(async move {
            let bytes = [frame(&[7; 300]), frame(b"second")].concat();
            for piece in bytes.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
        });
        let (first, first_bytes) = reader.next().await.unwrap().unwrap();
        assert_eq!(&first[..], &[7; 300][..]);
        assert_eq!(memory.in_use(), 304);
        let (second, second_bytes) = reader.next().await.unwrap().unwrap();
        assert_eq!(&second[..], b"second");
        assert_eq!(memory.in_use(), 304 + 10);
        drop((first_bytes, second_bytes));
        assert_eq!(memory.in_use(), 0);
        writer.await.unwrap();
        assert!(
            reader.next().await.is_none(),
            "a clean close between frames"
        );
    }

    #[tokio::test]
    async fn a_full_pool_stops_reading_until_bytes_come_back() {
        // Frames bigger than a read chunk, and a pool with room for one of them.
        let size = 3 * READ_CHUNK_BYTES;
        let memory = RequestMemory::new(size + 100);
        let (mut client, server) = tokio::io::duplex(8 * size);
        let mut reader = FrameReader::new(server, size + 100, memory.clone());
        client.write_all(&frame(&vec![1; size])).await.unwrap();
        client.write_all(&frame(&vec![2; size])).await.unwrap();
        let (_, held) = reader.next().await.unwrap().unwrap();
        // The second frame is sent but cannot be paid for: it waits, its body unread.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), reader.next()).await;
        assert!(waited.is_err(), "read a frame the pool had no room for");
        assert!(
            reader.buf.len() < size,
            "buffered {} bytes of a frame it has not paid for",
            reader.buf.len()
        );
        drop(held);
        let (second, _) = reader.next().await.unwrap().unwrap();
        assert_eq!(&second[..], &vec![2; size][..]);
    }

    #[tokio::test]
    async fn bad_lengths_cost_nothing_and_are_errors() {
        let memory = RequestMemory::new(1 << 20);
        for prefix in [(-1i32).to_be_bytes(), 5000i32.to_be_bytes()] {
            let (mut client, server) = tokio::io::duplex(64);
            let mut reader = FrameReader::new(server, 4096, memory.clone());
            client.write_all(&prefix).await.unwrap();
            let error = reader.next().await.unwrap().unwrap_err();
            assert!(matches!(error, FrameError::Protocol(_)), "{error}");
            assert_eq!(memory.in_use(), 0);
        }
    }

    #[tokio::test]
    async fn a_close_inside_a_frame_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 4096, RequestMemory::new(4096));
        client.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(client);
        let error = reader.next().await.unwrap().unwrap_err();
        assert!(matches!(error, FrameError::Io(_)), "{error}");
    }
}
