//! Finding a group's coordinator and sending to it: FindCoordinator (key type 0, group),
//! the connection to the broker it names, and the retries with a growing backoff, bounded by
//! the admin's request timeout, that every group request goes through. Also the version
//! negotiation of the group APIs against [`GROUP_API_VERSIONS`].

use std::future::Future;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::{missing_group, GROUP_API_VERSIONS, NOT_COORDINATOR};
use crate::admin::{message, restates_error_name, Admin};
use crate::cluster::BrokerInfo;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// FindCoordinator's key type of a consumer group.
pub(super) const KEY_TYPE_GROUP: i8 = 0;

/// First wait before asking again after a retriable error; doubles up to the max.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
impl Admin {
    /// The coordinator of a group: FindCoordinator, asked again after a backoff while the
    /// answer is COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS, until the
    /// request timeout.
    pub async fn find_group_coordinator(&self, group_id: &str) -> Result<BrokerInfo> {
        self.retrying(|| self.find_coordinator_once(group_id)).await
    }

    pub(super) async fn find_coordinator_once(&self, group_id: &str) -> Result<BrokerInfo> {
        let connection = self.cluster.any_connection().await?;
        let version = group_api_version(&connection, ApiKey::FindCoordinator)?;
        let request = find_coordinator_request(group_id, version);
        let response = connection
            .send_versioned(request, version, connection.request_timeout())
            .await?;
        let (code, error_message, node_id, host, port) = if version >= 4 {
            let found = response
                .coordinators
                .into_iter()
                .find(|c| &*c.key == group_id)
                .ok_or_else(|| missing_group("FindCoordinator", group_id))?;
            (
                found.error_code,
                found.error_message,
                found.node_id,
                found.host,
                found.port,
            )
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
                response.host,
                response.port,
            )
        };
        if code != 0 {
            let error_message =
                message(&error_message).filter(|m| !restates_error_name(m, code) && m != "NONE");
            return Err(Error::broker(
                format!("finding the coordinator of group '{group_id}'"),
                code,
                error_message,
            ));
        }
        Ok(BrokerInfo {
            id: node_id.0,
            host: host.to_string(),
            port,
            rack: None,
        })
    }

    /// A connection to a coordinator: the cluster's to that broker, or, when metadata does
    /// not list it yet, one to the address FindCoordinator named.
    async fn coordinator_connection(&self, coordinator: &BrokerInfo) -> Result<Connection> {
        match self.cluster.broker_connection(coordinator.id).await {
            Ok(connection) => Ok(connection),
            Err(Error::NoBrokerAvailable(_)) => {
                Connection::connect(&coordinator.address(), &self.cluster.config().connection).await
            }
            Err(error) => Err(error),
        }
    }

    /// Run `request` against the group's coordinator. A retriable error (coordinator
    /// loading or unavailable, NOT_COORDINATOR, a failed connection or timeout) looks the
    /// coordinator up again and retries after a backoff, until the request timeout.
    pub(super) async fn with_coordinator<T, F, Fut>(&self, group_id: &str, request: F) -> Result<T>
    where
        F: Fn(Connection, BrokerInfo) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying(|| async {
            let coordinator = self.find_coordinator_once(group_id).await?;
            let connection = self.coordinator_connection(&coordinator).await?;
            request(connection, coordinator).await
        })
        .await
    }

    /// `attempt` until it succeeds, fails for good, or the request timeout has passed;
    /// retriable errors wait a growing backoff.
    pub(super) async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            match attempt().await {
                Err(error) if error.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!(%error, "group request failed; retrying");
                    if error.needs_metadata_refresh() || error.kafka_code() == Some(NOT_COORDINATOR)
                    {
                        let _ = self.cluster.refresh().await;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }
}

/// The version of a group API to use with this broker: the highest both sides speak.
pub(super) fn group_api_version(connection: &Connection, api: ApiKey) -> Result<i16> {
    let (ours_min, ours_max) = GROUP_API_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
        .unwrap_or((0, -1));
    let unsupported = |theirs: String| Error::UnsupportedVersion {
        broker: connection.broker().to_string(),
        api,
        ours_min,
        ours_max,
        theirs,
    };
    let Some((theirs_min, theirs_max)) = connection.api_versions().range(api) else {
        return Err(unsupported("none".to_string()));
    };
    let chosen = ours_max.min(theirs_max);
    if chosen < ours_min.max(theirs_min) {
        return Err(unsupported(format!("{theirs_min}..={theirs_max}")));
    }
    Ok(chosen)
}

/// FindCoordinator for a group at `version`: one key before v4, a batch of one from v4.
pub(super) fn find_coordinator_request(group_id: &str, version: i16) -> FindCoordinatorRequest {
    let key = StrBytes::from_string(group_id.to_string());
    let mut request = FindCoordinatorRequest::default();
    if version >= 1 {
        request.key_type = KEY_TYPE_GROUP;
    }
    if version >= 4 {
        request.coordinator_keys = vec![key];
    } else {
        request.key = key;
    }
    request
}
