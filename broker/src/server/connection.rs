//! One client connection: read frames, work on up to `in_flight_requests_max` requests at
//! once, write the responses in request order.
//!
//! In-flight requests sit in a `FuturesOrdered` in the order they were read, and are first
//! polled in that order (its ready queue is FIFO, and the `select!` is biased towards the
//! pending requests, so a request is usually polled before the next frame is even read).
//! The produce handler relies on that: it appends before its first `.await`, so one
//! connection's appends happen in request order, which an idempotent producer pipelining
//! several requests needs (see `api/produce.rs`, "Ordering"). Keep request handling on this
//! task: spawning requests onto other tasks would lose that order.
//!
//! Frames are read by a [`FrameReader`], which pays for each from the broker-wide pool of
//! request bytes (`--queued-max-request-bytes`) before buffering it, and stops reading the
//! socket while the pool is empty; a request gives its bytes back once its reply is written.
//!
//! A frame with a negative or oversized length, or a request that cannot be parsed, closes
//! the connection with a logged reason and a metric: after a framing error the byte stream
//! cannot be trusted. An acks=0 produce that fails closes the connection too, as Kafka
//! does, since there is no response to carry the error.
//!
//! A connection that reads no whole request and has nothing to answer for
//! `--connections-max-idle-ms` is closed (Kafka's `connections.max.idle.ms`; stricter in one
//! way: bytes of an unfinished frame do not count as activity, so a client holding half a
//! frame is closed too), counted in `sluice_limit_exceeded_total{limit="connections_max_idle_ms"}`.
//!
//! Request metrics: this task notes when each frame was read and, after the flush that
//! sends a reply, records the request's metrics (see `dispatch`, "Request metrics").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use sluice_protocol::frame::FrameError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::watch;

use super::dispatch::{self, Handled, Reply, RequestMetrics};
use super::request_memory::FrameReader;
use super::Broker;
use crate::metrics as m;

pub async fn serve_connection<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut frames = FrameReader::new(
        read,
        broker.limits.frame_bytes_max,
        broker.request_memory.clone(),
    );
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let mut pending = FuturesOrdered::new();
    let in_flight_max = broker.limits.in_flight_requests_max;
    let mut reading = !*shutdown.borrow();
    let mut limit_noted = false;
    // Requests whose replies are written but not yet flushed.
    let mut unflushed: Vec<RequestMetrics> = Vec::new();

    let idle_max = broker.limits.connections_max_idle;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        let can_read = reading && pending.len() < in_flight_max;
        if reading && !can_read && !limit_noted {
            // Stop reading until a response is written: TCP backpressure does the rest.
            metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "in_flight_requests_max")
                .increment(1);
            limit_noted = true;
        }
        tokio::select! {
            biased;
            Some(handled) = pending.next(), if !pending.is_empty() => {
                // Write this reply and every one already finished behind it, then flush once.
                let mut next = Some(handled);
                while let Some((Handled { reply, metrics, memory }, queued)) = next.take() {
                    unflushed.extend(metrics);
                    match reply {
                        Reply::Frame(bytes) => {
                            if let Err(e) = writer.write_all(&bytes).await {
                                tracing::debug!(%peer, error = %e, "write failed; closing connection");
                                return;
                            }
                        }
                        Reply::None => {}
                        Reply::Close(reason) => {
                            tracing::info!(%peer, %reason, "closing connection");
                            let _ = writer.flush().await;
                            record_written(&mut unflushed);
                            return;
                        }
                    }
                    // Written (into the socket or the write buffer): the bytes go back.
                    drop((memory, queued));
                    next = pending.next().now_or_never().flatten();
                }
                if let Err(e) = writer.flush().await {
                    tracing::debug!(%peer, error = %e, "flush failed; closing connection");
                    return;
                }
                record_written(&mut unflushed);
                limit_noted = false;
                idle_since = tokio::time::Instant::now();
            }
            frame = frames.next(), if can_read => {
                idle_since = tokio::time::Instant::now();
                match frame {
                    None => reading = false,
                    Some(Ok((frame, queued))) => {
                        let broker = broker.clone();
                        let received = Instant::now();
                        // The request's bytes count against the pool until its reply is written.
                        let handled = dispatch::handle(broker, frame.freeze(), received, peer)
                            .map(move |handled| (handled, queued));
                        pending.push_back(handled);
                    }
                    Some(Err(FrameError::Io(e))) => {
                        tracing::debug!(%peer, error = %e, "read failed");
                        reading = false;
                    }
                    Some(Err(FrameError::Protocol(e))) => {
                        tracing::warn!(%peer, reason = %e, "bad frame; closing connection");
                        let reason = match e {
                            sluice_protocol::error::ProtocolError::FrameTooLarge { .. } => "frame_too_large",
                            sluice_protocol::error::ProtocolError::NegativeFrameLength(_) => "negative_frame_length",
                            _ => "bad_frame",
                        };
                        metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => reason).increment(1);
                        if reason == "frame_too_large" {
                            metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "frame_bytes_max").increment(1);
                        }
                        // Answer what was already accepted, then close.
                        reading = false;
                    }
                }
            }
            _ = shutdown.changed(), if reading => {
                reading = false;
            }
            () = tokio::time::sleep_until(idle_since + idle_max), if pending.is_empty() => {
                tracing::debug!(%peer, idle_ms = idle_max.as_millis(), "closing an idle connection");
                metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "connections_max_idle_ms")
                    .increment(1);
                break;
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// Record the metrics of requests whose replies were just flushed.
fn record_written(unflushed: &mut Vec<RequestMetrics>) {
    let written = Instant::now();
    for metrics in unflushed.drain(..) {
        metrics.record(written);
    }
}
