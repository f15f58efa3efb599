//! Deleting groups (DeleteGroups, asked of each group's coordinator); a group's committed
//! offsets go with it.

use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest};

use super::coordinator::group_api_version;
use super::{group_key, group_not_found, missing_group, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP};
use crate::admin::Admin;
use crate::error::{Error, Result};

impl Admin {
    /// Delete groups, each asked of its coordinator (concurrently); one result per id, in
    /// order. A group with members is NON_EMPTY_GROUP, one that does not exist
    /// GROUP_ID_NOT_FOUND; deleting a group deletes its committed offsets.
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Vec<(String, Result<()>)> {
        let answers =
            futures::future::join_all(group_ids.iter().map(|id| self.delete_group(id))).await;
        group_ids
            .iter()
            .map(|id| id.to_string())
            .zip(answers)
            .collect()
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.with_coordinator(group_id, |connection, _| async move {
            let version = group_api_version(&connection, ApiKey::DeleteGroups)?;
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![group_key(group_id)]);
            let response = connection
                .send_versioned(request, version, connection.request_timeout())
                .await?;
            let result = response
                .results
                .iter()
                .find(|r| &*r.group_id.0 == group_id)
                .ok_or_else(|| missing_group("DeleteGroups", group_id))?;
            match result.error_code {
                0 => Ok(()),
                GROUP_ID_NOT_FOUND => Err(group_not_found(group_id)),
                NON_EMPTY_GROUP => Err(Error::broker(
                    format!(
                        "group '{group_id}' has active members and cannot be deleted (stop its \
                         consumers first)"
                    ),
                    NON_EMPTY_GROUP,
                    None,
                )),
                code => Err(Error::broker(
                    format!("deleting group '{group_id}'"),
                    code,
                    None,
                )),
            }
        })
        .await
    }
}
