//! Commits of a [`GroupConsumer`] (OffsetCommit): `commit_sync`, `commit_async`, explicit
//! offsets with `commit`, auto-commit; and reading the group's committed offsets
//! (OffsetFetch) with `committed`. What is committed is the positions (`positions`), so
//! nothing is ever committed ahead of what `poll` returned.
//!
//! Commits carry the member id and generation of a stable generation, never anything
//! else; a member that is rebalancing or was dropped cannot commit (REBALANCE_IN_PROGRESS,
//! ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID are returned, and records since the last commit
//! may be consumed again by the partition's next owner). Synchronous commits retry
//! COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR (after finding the coordinator again) and
//! failed connections until the request timeout; asynchronous ones are put on the wire at
//! once, in order, and not retried (as in Kafka).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::OffsetCommitResponse;

use crate::error::{is_retriable_code, kafka_error_name, Error, Result};
use crate::group::consumer::{GroupConsumer, TopicPartition};
use crate::group::coordinator::{
    codes, commit_error, is_coordinator_moved, Coordinator, MemberIdentityRef,
};
use crate::group::member::Member;
use crate::group::metrics as gm;

/// An asynchronous commit started by [`GroupConsumer::commit_async`]. It completes
/// whether or not it is awaited.
#[derive(Debug)]
pub struct PendingCommit {
    task: tokio::task::JoinHandle<Result<()>>,
}

impl PendingCommit {
    /// Wait for the coordinator's answer.
    pub async fn wait(self) -> Result<()> {
        self.task.await.unwrap_or(Err(Error::Closed))
    }
}
impl GroupConsumer {
    /// What a commit of the current positions sends.
    fn consumed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions.clone()
    }

    /// Commit the positions of every assigned partition (what `poll` has returned) and
    /// wait for the coordinator's answer.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit(&offsets).await
    }

    /// Commit the positions without waiting: the request is on the wire when this returns
    /// (if the coordinator is known), so commits reach the coordinator in the order made.
    pub fn commit_async(&mut self) -> PendingCommit {
        start_commit(
            self.coordinator.clone(),
            self.member.clone(),
            self.consumed_offsets(),
        )
    }

    /// Commit these offsets (each the offset of the next record to read) and wait. Retries
    /// coordinator moves and failed connections until the request timeout.
    pub async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let Some(identity) = self.member.stable_identity() else {
                return Err(not_in_a_generation(self.coordinator.group_id()));
            };
            let connection = self.coordinator.connection(deadline).await?;
            let error = match commit_once(
                &self.coordinator,
                &self.member,
                &identity,
                &connection,
                offsets,
            )
            .await
            {
                CommitOutcome::Committed => return Ok(()),
                CommitOutcome::Failed(error) => return Err(error),
                CommitOutcome::Retry(error) => error,
            };
            if Instant::now() + self.coordinator.retry_backoff() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(self.coordinator.retry_backoff()).await;
        }
    }

    /// The group's committed offsets for these partitions (None: nothing committed), from
    /// the coordinator. Any partitions, assigned to this member or not.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let connection = self.coordinator.connection(deadline).await?;
            let error = match self
                .coordinator
                .fetch_offsets(&connection, partitions)
                .await
            {
                Ok(Ok(committed)) => return Ok(committed),
                Ok(Err(code)) => {
                    let error = Error::broker(
                        format!(
                            "fetching the committed offsets of group '{}'",
                            self.coordinator.group_id()
                        ),
                        code,
                        None,
                    );
                    if is_coordinator_moved(code) {
                        self.coordinator.mark_unknown(&kafka_error_name(code));
                    } else if !matches!(
                        code,
                        codes::COORDINATOR_LOAD_IN_PROGRESS | codes::UNSTABLE_OFFSET_COMMIT
                    ) {
                        return Err(error);
                    }
                    error
                }
                Err(error) if error.is_retriable() => {
                    self.coordinator.mark_unknown(&error.to_string());
                    error
                }
                Err(error) => return Err(error),
            };
            if Instant::now() + self.coordinator.retry_backoff() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(self.coordinator.retry_backoff()).await;
        }
    }
    /// Start an asynchronous commit when auto-commit is due.
    pub(super) fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        if self.positions.is_empty() || self.member.stable_identity().is_none() {
            return;
        }
        let pending = self.commit_async();
        let group = self.coordinator.group_id().to_string();
        tokio::spawn(async move {
            if let Err(error) = pending.wait().await {
                tracing::warn!(%group, %error, "auto-commit failed");
            }
        });
    }
}

fn not_in_a_generation(group: &str) -> Error {
    Error::broker(
        format!("committing offsets of group '{group}': the member is not in a stable generation"),
        codes::REBALANCE_IN_PROGRESS,
        None,
    )
}

/// How one OffsetCommit went.
enum CommitOutcome {
    Committed,
    /// Worth retrying (the coordinator moved or is loading, the connection failed).
    Retry(Error),
    Failed(Error),
}

async fn commit_once(
    coordinator: &Coordinator,
    member: &Member,
    identity: &MemberIdentityRef,
    connection: &crate::connection::Connection,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> CommitOutcome {
    let (request, version) = match coordinator.commit_request(connection, identity, offsets) {
        Ok(built) => built,
        Err(error) => return CommitOutcome::Failed(error),
    };
    let sent = Instant::now();
    let result = connection
        .send_versioned(request, version, coordinator.request_timeout())
        .await;
    classify_commit(coordinator, member, identity, result, sent)
}

/// Act on an OffsetCommit answer: metrics, the member's state, what the caller does next.
fn classify_commit(
    coordinator: &Coordinator,
    member: &Member,
    identity: &MemberIdentityRef,
    result: Result<OffsetCommitResponse>,
    sent: Instant,
) -> CommitOutcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!(gm::COMMIT_ERRORS_TOTAL, "error" => crate::metrics::error_label(&error))
                .increment(1);
            if error.is_retriable() {
                coordinator.mark_unknown(&error.to_string());
                return CommitOutcome::Retry(error);
            }
            return CommitOutcome::Failed(error);
        }
    };
    metrics::histogram!(gm::COMMIT_LATENCY_SECONDS).record(sent.elapsed().as_secs_f64());
    let Some(code) = commit_error(&response) else {
        metrics::counter!(gm::COMMITS_TOTAL).increment(1);
        return CommitOutcome::Committed;
    };
    metrics::counter!(gm::COMMIT_ERRORS_TOTAL, "error" => kafka_error_name(code)).increment(1);
    let error = Error::broker(
        format!("committing offsets of group '{}'", coordinator.group_id()),
        code,
        None,
    );
    // Only act on the member if it is still in the generation the commit was made in.
    let current = member.stable_identity().as_ref() == Some(identity);
    match code {
        code if is_coordinator_moved(code) => {
            coordinator.mark_unknown(&kafka_error_name(code));
            CommitOutcome::Retry(error)
        }
        codes::COORDINATOR_LOAD_IN_PROGRESS => CommitOutcome::Retry(error),
        // Consumer protocol: the epoch moved on; the retry carries the new one.
        codes::STALE_MEMBER_EPOCH => CommitOutcome::Retry(error),
        codes::REBALANCE_IN_PROGRESS => {
            if current {
                member.request_rejoin("commit: REBALANCE_IN_PROGRESS");
            }
            CommitOutcome::Failed(error)
        }
        codes::ILLEGAL_GENERATION => {
            if current {
                member.reset_generation("commit: ILLEGAL_GENERATION");
            }
            CommitOutcome::Failed(error)
        }
        codes::UNKNOWN_MEMBER_ID => {
            if current {
                member.reset_member_id("commit: UNKNOWN_MEMBER_ID");
            }
            CommitOutcome::Failed(error)
        }
        codes::FENCED_INSTANCE_ID => {
            member.set_fatal(error.clone());
            CommitOutcome::Failed(error)
        }
        code if is_retriable_code(code) => CommitOutcome::Retry(error),
        _ => CommitOutcome::Failed(error),
    }
}

/// Start an asynchronous commit: on the wire now if the coordinator is known (so commits
/// keep their order), else once it is found. Not retried.
fn start_commit(
    coordinator: Arc<Coordinator>,
    member: Arc<Member>,
    offsets: BTreeMap<TopicPartition, i64>,
) -> PendingCommit {
    let identity = member.stable_identity();
    let started = match (&identity, coordinator.cached()) {
        (Some(identity), Some(connection)) if !offsets.is_empty() => Some(
            coordinator
                .commit_request(&connection, identity, &offsets)
                .and_then(|(request, version)| {
                    connection.start_send_versioned(
                        &request,
                        version,
                        coordinator.request_timeout(),
                    )
                }),
        ),
        _ => None,
    };
    let sent = Instant::now();
    let task = tokio::spawn(async move {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(identity) = identity else {
            return Err(not_in_a_generation(coordinator.group_id()));
        };
        let outcome = match started {
            Some(Ok(pending)) => {
                let result = pending.response().await;
                classify_commit(&coordinator, &member, &identity, result, sent)
            }
            Some(Err(error)) => CommitOutcome::Failed(error),
            None => {
                let deadline = Instant::now() + coordinator.request_timeout();
                match coordinator.connection(deadline).await {
                    Ok(connection) => {
                        commit_once(&coordinator, &member, &identity, &connection, &offsets).await
                    }
                    Err(error) => CommitOutcome::Failed(error),
                }
            }
        };
        match outcome {
            CommitOutcome::Committed => Ok(()),
            CommitOutcome::Retry(error) | CommitOutcome::Failed(error) => Err(error),
        }
    });
    PendingCommit { task }
}
