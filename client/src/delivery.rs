//! Delivery reports: how a caller of `Producer::send` learns where its record landed.
//!
//! Owns [`BatchCompletion`], one shared cell per batch that is filled exactly once with the
//! batch's outcome (base offset or error), and [`DeliveryFuture`], one per record, which is
//! the batch's cell plus the record's index in the batch. A record's offset is
//! `base_offset + index`. One allocation per batch, none per record: the future is an `Arc`
//! clone and an integer.
//!
//! Invariant: the result is set before any waker is taken, and a poller checks the result
//! under the waker lock, so no wake-up is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    /// The record's offset; -1 with acks=0, where the broker does not say.
    pub offset: i64,
}

/// Outcome cell of one batch, shared by the producer and every record's future.
#[derive(Debug)]
pub struct BatchCompletion {
    partition: i32,
    /// Base offset (-1 when unknown, acks=0) or the error that failed the batch.
    result: OnceLock<Result<i64>>,
    wakers: Mutex<Vec<Waker>>,
}

impl BatchCompletion {
    pub fn new(partition: i32) -> Arc<BatchCompletion> {
        Arc::new(BatchCompletion {
            partition,
            result: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        })
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Fill the cell and wake every waiting record. Later calls are ignored (first wins).
    pub fn complete(&self, result: Result<i64>) {
        if self.result.set(result).is_err() {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers {
            waker.wake();
        }
    }

    pub fn is_complete(&self) -> bool {
        self.result.get().is_some()
    }

    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<&Result<i64>> {
        if let Some(result) = self.result.get() {
            return Poll::Ready(result);
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(result) = self.result.get() {
            return Poll::Ready(result);
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Wait for the batch's outcome.
    pub async fn wait(self: Arc<Self>) -> Result<i64> {
        BatchWait { completion: self }.await
    }
}

struct BatchWait {
    completion: Arc<BatchCompletion>,
}

impl Future for BatchWait {
    type Output = Result<i64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.completion.poll_result(cx).map(|r| r.clone())
    }
}

/// Resolves to where one record landed once its batch is acknowledged (or failed for good).
#[derive(Debug)]
#[must_use = "a DeliveryFuture reports whether the record was written; await it or drop it knowingly"]
pub struct DeliveryFuture {
    completion: Arc<BatchCompletion>,
    index: u32,
}

impl DeliveryFuture {
    pub(crate) fn new(completion: Arc<BatchCompletion>, index: u32) -> DeliveryFuture {
        DeliveryFuture { completion, index }
    }

    /// The partition the record was assigned to (known before delivery).
    pub fn partition(&self) -> i32 {
        self.completion.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        let partition = self.completion.partition;
        self.completion.poll_result(cx).map(|result| match result {
            Ok(base_offset) if *base_offset < 0 => Ok(RecordMetadata {
                partition,
                offset: -1,
            }),
            Ok(base_offset) => Ok(RecordMetadata {
                partition,
                offset: base_offset + i64::from(index),
            }),
            Err(error) => Err(Error::clone(error)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_resolve_to_base_offset_plus_index() {
        let completion = BatchCompletion::new(3);
        let first = DeliveryFuture::new(completion.clone(), 0);
        let third = DeliveryFuture::new(completion.clone(), 2);
        let waiter = tokio::spawn(third);
        tokio::task::yield_now().await;
        completion.complete(Ok(100));
        assert_eq!(
            first.await.unwrap(),
            RecordMetadata {
                partition: 3,
                offset: 100
            }
        );
        assert_eq!(waiter.await.unwrap().unwrap().offset, 102);
    }

    #[tokio::test]
    async fn acks_zero_reports_offset_minus_one_and_errors_reach_every_record() {
        let completion = BatchCompletion::new(0);
        completion.complete(Ok(-1));
        assert_eq!(DeliveryFuture::new(completion, 5).await.unwrap().offset, -1);

        let completion = BatchCompletion::new(0);
        completion.complete(Err(Error::Closed));
        completion.complete(Ok(7)); // ignored: first outcome wins
        assert!(matches!(
            DeliveryFuture::new(completion.clone(), 1).await,
            Err(Error::Closed)
        ));
        assert!(completion.wait().await.is_err());
    }
}
