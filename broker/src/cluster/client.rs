//! Talking to the active controller from any broker.
//!
//! Requests go to the leader this node's Raft knows of (every broker follows the metadata
//! log, as voter or learner, so it knows the leader), else to each voter in turn; a
//! `NotController` answer names the leader to try next. When the active controller is this
//! very node the request is handled in-process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::controller::tcp::ControllerConnections;
use crate::controller::{
    CommandResult, Controller, ControllerRequest, ControllerResponse, ControllerService,
    MetadataCommand, NodeId,
};

/// Longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts when no controller answered.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct ControllerClient {
    controller: Controller,
    service: Arc<ControllerService>,
    /// Voter id -> internal listener address.
    voters: BTreeMap<NodeId, String>,
    connections: Arc<ControllerConnections>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("voters", &self.voters)
            .finish_non_exhaustive()
    }
}

impl ControllerClient {
    pub fn new(
        controller: Controller,
        service: Arc<ControllerService>,
        voters: BTreeMap<NodeId, String>,
    ) -> ControllerClient {
        ControllerClient {
            controller,
            service,
            voters,
            connections: Arc::default(),
        }
    }

    /// Send `request` to the active controller, retrying on other nodes until `deadline`.
    /// Never returns `NotController`.
    pub async fn request(
        &self,
        request: ControllerRequest,
        deadline: Instant,
    ) -> Result<ControllerResponse, String> {
        let mut hint: Option<NodeId> = None;
        let mut round_robin = self.voters.keys().copied().cycle();
        let mut last_error;
        loop {
            let target = hint
                .take()
                .or_else(|| self.controller.current_leader())
                .or_else(|| round_robin.next());
            let timeout = ATTEMPT_TIMEOUT
                .min(deadline.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(10));
            let answer = match target {
                // Bounded too: a leader that lost its quorum never commits the command.
                Some(id) if id == self.controller.node_id() => {
                    tokio::time::timeout(timeout, self.service.handle(request.clone()))
                        .await
                        .map_err(|_| format!("no answer from this node within {timeout:?}"))
                }
                Some(id) => match self.voters.get(&id) {
                    Some(addr) => self.connections.call(addr, request.clone(), timeout).await,
                    None => Err(format!("controller {id} is not a known voter")),
                },
                None => Err("no voters configured".to_string()),
            };
            match answer {
                Ok(ControllerResponse::NotController { leader }) => {
                    last_error = format!("node {target:?} is not the controller");
                    if leader.is_some() && leader != target {
                        hint = leader;
                        continue;
                    }
                    // Election under way: try the next voter after a pause.
                    hint = round_robin.next();
                }
                Ok(ControllerResponse::Error(error)) => last_error = error,
                Ok(response) => return Ok(response),
                Err(error) => {
                    last_error = error;
                    hint = round_robin.next();
                }
            }
            if Instant::now() + RETRY_BACKOFF >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Propose `command` and wait for its committed result.
    pub async fn submit(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<(u64, CommandResult), String> {
        match self
            .request(ControllerRequest::Submit(command), Instant::now() + timeout)
            .await?
        {
            ControllerResponse::Applied { index, result } => Ok((index, result)),
            other => Err(format!("unexpected controller answer {other:?}")),
        }
    }

    /// Wait until this node's metadata has applied the log up to `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut metrics = self.controller.raft().metrics();
        let wait =
            metrics.wait_for(|m| m.last_applied.is_some_and(|applied| applied.index >= index));
        tokio::time::timeout(timeout, wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }
}
