//! ApiVersions: the version table clients negotiate against.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use sluice_protocol::api::SUPPORTED_APIS;
use sluice_protocol::error::ErrorCode;

pub fn handle(error: ErrorCode) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error.code();
    response.api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            let mut v = ApiVersion::default();
            v.api_key = api.key as i16;
            v.min_version = api.min;
            v.max_version = api.max;
            v
        })
        .collect();
    response
}
