//! InitProducerId: a producer id for an idempotent producer. Transactions are not supported.
//!
//! As Kafka does for a request without a transactional id, every request gets a fresh
//! producer id at epoch 0, including a v3+ request that names its current id and epoch
//! (KIP-360): Kafka's coordinator ignores those for non-transactional producers. The id comes
//! from [`ProducerIdAllocator`](crate::server::producer_ids::ProducerIdAllocator), which
//! never hands out an id twice for the life of the data dir.
//!
//! Error codes:
//! - a transactional id (even an empty one): INVALID_REQUEST. Sluice has no transaction
//!   coordinator; clients treat the code as fatal and report it, rather than retrying.
//! - a producer id without an epoch or the reverse: INVALID_REQUEST, as Kafka.
//! - the next block of ids cannot be made durable: KAFKA_STORAGE_ERROR.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_protocol::error::ErrorCode;

use super::count_error;
use crate::metrics as m;
use crate::server::Broker;

const API: &str = "InitProducerId";

pub fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    match producer_id(broker, &request, version) {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(code) => {
            response.error_code = count_error(API, code);
            response.producer_id = ProducerId(-1);
            response.producer_epoch = -1;
        }
    }
    response
}

fn producer_id(
    broker: &Broker,
    request: &InitProducerIdRequest,
    version: i16,
) -> Result<i64, ErrorCode> {
    if let Some(transactional_id) = &request.transactional_id {
        tracing::info!(
            transactional_id = %transactional_id.0,
            "refused InitProducerId for a transactional producer: Sluice does not support transactions"
        );
        return Err(ErrorCode::InvalidRequest);
    }
    if version >= 3 && ((request.producer_id.0 < 0) != (request.producer_epoch < 0)) {
        tracing::info!(
            producer_id = request.producer_id.0,
            producer_epoch = request.producer_epoch,
            "refused InitProducerId naming a producer id without an epoch or the reverse"
        );
        return Err(ErrorCode::InvalidRequest);
    }
    match broker.producer_ids.allocate() {
        Ok(local) => {
            // Unique across the cluster: each broker hands out ids from its own range.
            let id = cluster_unique_producer_id(broker.identity.node_id, local);
            metrics::counter!(m::PRODUCER_IDS_ALLOCATED_TOTAL).increment(1);
            tracing::debug!(
                producer_id = id,
                previous_producer_id = request.producer_id.0,
                "allocated producer id"
            );
            Ok(id)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            Err(ErrorCode::KafkaStorageError)
        }
    }
}

/// Bits of a producer id that count within one broker; the bits above hold the broker id,
/// so brokers never hand out the same id (Kafka allocates blocks from the controller
/// instead). 2^40 ids per broker, broker ids up to 2^22.
pub const LOCAL_PRODUCER_ID_BITS: u32 = 40;

/// The producer id a broker hands out for its `local`-th id.
pub fn cluster_unique_producer_id(node_id: i32, local: i64) -> i64 {
    (i64::from(node_id.max(0)) << LOCAL_PRODUCER_ID_BITS)
        | (local & ((1 << LOCAL_PRODUCER_ID_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, TransactionalId};
    use sluice_protocol::header;

    use super::*;
    use crate::server::api::str_bytes;
    use crate::server::testing;

    #[tokio::test]
    async fn each_request_gets_a_new_producer_id_at_epoch_zero() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        let first = handle(&broker, request.clone(), 4);
        assert_eq!((first.error_code, first.producer_epoch), (0, 0));
        // A v3+ producer naming its id and epoch (KIP-360) gets a fresh id, as from Kafka.
        request.producer_id = first.producer_id;
        request.producer_epoch = 0;
        let second = handle(&broker, request, 4);
        assert_eq!((second.error_code, second.producer_epoch), (0, 0));
        assert!(second.producer_id.0 > first.producer_id.0);
    }

    #[test]
    fn brokers_hand_out_disjoint_producer_ids() {
        assert_ne!(
            cluster_unique_producer_id(1, 5),
            cluster_unique_producer_id(2, 5)
        );
        assert_eq!(cluster_unique_producer_id(0, 5), 5);
        assert!(cluster_unique_producer_id(4_000_000, (1 << 40) - 1) > 0);
    }

    #[tokio::test]
    async fn producer_ids_stay_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        let first = testing::broker(dir.path()).await;
        let before = handle(&first, request.clone(), 0).producer_id.0;
        first.stop().await;
        let second = testing::broker(dir.path()).await;
        let after = handle(&second, request, 0).producer_id.0;
        assert!(after > before, "{after} after {before}");
    }

    #[tokio::test]
    async fn transactional_id_is_refused_with_invalid_request() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = Some(TransactionalId(str_bytes("txn-1")));
        let response = handle(&broker, request, 4);
        assert_eq!(response.error_code, ErrorCode::InvalidRequest.code());
        assert_eq!((response.producer_id.0, response.producer_epoch), (-1, -1));
    }

    #[tokio::test]
    async fn producer_id_without_epoch_is_refused_with_invalid_request() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        request.producer_id = ProducerId(5);
        request.producer_epoch = -1;
        assert_eq!(
            handle(&broker, request, 3).error_code,
            ErrorCode::InvalidRequest.code()
        );
    }

    #[tokio::test]
    async fn response_encodes_at_every_advertised_version() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let range = sluice_protocol::api::supported_range(ApiKey::InitProducerId as i16).unwrap();
        for version in range.min..=range.max {
            let mut request = InitProducerIdRequest::default();
            request.transactional_id = None;
            let ok = handle(&broker, request.clone(), version);
            header::encode_response(ApiKey::InitProducerId, version, 1, &ok)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            request.transactional_id = Some(TransactionalId(str_bytes("t")));
            let refused = handle(&broker, request, version);
            header::encode_response(ApiKey::InitProducerId, version, 1, &refused)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
