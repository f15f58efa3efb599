//! Records through the cluster: produce to a partition's leader (once, or until
//! acknowledged), fetch from a node, read a partition back from its leader, and check that
//! acknowledged batches are committed where their acknowledgements said.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FetchResponse};
use sluice_protocol::records::{decode_records, ConsumedRecord};

use super::{AckedBatch, Cluster, ACKED_BATCH_DEADLINE};
use crate::raw::{self, fetch_request};

impl Cluster {
    /// Produce `values` as one batch to the partition's leader (as the live nodes report
    /// it) until a response without error, retrying on any error or lost connection, at
    /// most `timeout`; returns (leader, base offset). A retry may duplicate the batch.
    pub fn produce_until_acked<V: AsRef<[u8]>>(
        &mut self,
        topic: &str,
        partition: i32,
        values: &[V],
        acks: i16,
        timeout: Duration,
    ) -> (i32, i64) {
        let mut last_error = String::from("no leader known");
        let deadline = Instant::now() + timeout;
        let acked = self.poll_until(deadline, |cluster| {
            let leader = cluster.partition_state(topic, partition)?.leader?;
            let mut conn = match cluster.connect(leader) {
                Ok(conn) => conn,
                Err(e) => {
                    last_error = format!("connect to node {leader}: {e}");
                    return None;
                }
            };
            // The produce's own timeout, then some slack for the answer.
            let _ = conn.set_read_timeout(Duration::from_secs(15));
            match raw::try_produce_values(&mut conn, topic, partition, values, acks, 10_000) {
                Ok((0, base_offset)) => Some((leader, base_offset)),
                Ok((code, _)) => {
                    last_error = format!("node {leader} answered error {code}");
                    None
                }
                Err(e) => {
                    last_error = format!("node {leader}: {e}");
                    None
                }
            }
        });
        acked.unwrap_or_else(|| {
            panic!(
                "producing {} records with acks={acks} to {topic}-{partition}: not acknowledged within {timeout:?}; last error: {last_error}\n{}",
                values.len(),
                self.logs()
            )
        })
    }

    /// [`produce_until_acked`](Self::produce_until_acked) of `values` with acks=all, at
    /// most [`ACKED_BATCH_DEADLINE`]; returns the batch with the base offset it was
    /// acknowledged at.
    pub fn produce_acked_batch(
        &mut self,
        topic: &str,
        partition: i32,
        values: Vec<String>,
    ) -> AckedBatch {
        let (_, base_offset) =
            self.produce_until_acked(topic, partition, &values, -1, ACKED_BATCH_DEADLINE);
        AckedBatch {
            values,
            base_offset,
        }
    }

    /// One Produce of `values` as a batch to node `id`, whatever it leads, without retry
    /// (5 s produce timeout, 20 s to answer); returns the partition's (error code, base
    /// offset). Panics with every node's log if the node does not answer.
    pub fn produce_once<V: AsRef<[u8]>>(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        values: &[V],
        acks: i16,
    ) -> (i16, i64) {
        let mut conn = self
            .connect(id)
            .unwrap_or_else(|e| panic!("connect to node {id}: {e}\n{}", self.logs()));
        conn.set_read_timeout(Duration::from_secs(20)).unwrap();
        raw::try_produce_values(&mut conn, topic, partition, values, acks, 5_000)
            .unwrap_or_else(|e| panic!("produce to node {id}: {e}\n{}", self.logs()))
    }

    /// A consumer's Fetch (replica id -1) of one partition from `offset`, sent to `id`.
    pub fn fetch_from(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> std::io::Result<FetchResponse> {
        let mut conn = self.connect(id)?;
        conn.request(
            ApiKey::Fetch,
            raw::FETCH_VERSION,
            &fetch_request(topic, partition, offset, 4 << 20),
        )
    }

    /// The high watermark the partition's leader reports (asking the current leader as
    /// metadata names it); `None` if no leader answers without an error.
    pub fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let leader = self.partition_state(topic, partition)?.leader?;
        let response = self.fetch_from(leader, topic, partition, 0).ok()?;
        let p = response.responses.first()?.partitions.first()?;
        (p.error_code == 0).then_some(p.high_watermark)
    }

    /// Every record a consumer can read from node `id` (which must lead the partition),
    /// from offset 0 to the high watermark, by raw Fetch requests.
    pub fn read_from_leader(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
    ) -> Result<(i64, Vec<ConsumedRecord>), String> {
        let mut conn = self
            .connect(id)
            .map_err(|e| format!("connect to node {id}: {e}"))?;
        conn.set_read_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut records: Vec<ConsumedRecord> = Vec::new();
        let mut offset = 0;
        // Bounded: every round either ends or moves the offset forward.
        for _ in 0..1_000_000 {
            let response = raw::fetch(&mut conn, &fetch_request(topic, partition, offset, 4 << 20));
            let p = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or("fetch response without the partition")?;
            if p.error_code != 0 {
                return Err(format!(
                    "fetch {topic}-{partition} at {offset} from node {id}: error {}",
                    p.error_code
                ));
            }
            let bytes = p.records.clone().unwrap_or_default();
            let batch: Vec<ConsumedRecord> = decode_records(&bytes)
                .map_err(|e| format!("decode records at {offset}: {e}"))?
                .into_iter()
                .filter(|r| r.offset >= offset)
                .collect();
            if batch.is_empty() {
                if offset < p.high_watermark {
                    return Err(format!(
                        "node {id} returned no records at {offset} below its high watermark {}",
                        p.high_watermark
                    ));
                }
                return Ok((p.high_watermark, records));
            }
            for r in batch {
                if r.offset >= p.high_watermark {
                    return Err(format!(
                        "node {id} returned offset {} at or above its high watermark {}",
                        r.offset, p.high_watermark
                    ));
                }
                offset = r.offset + 1;
                records.push(r);
            }
        }
        Err("fetch loop did not end".to_string())
    }

    /// Wait (at most `timeout`) until the partition's high watermark covers every batch of
    /// `batches`, then read the partition from node `leader` (see
    /// [`read_from_leader`](Self::read_from_leader)) and assert that every record of
    /// `batches` is at the offset its acknowledgement implies. Returns the high watermark
    /// waited for and the records read.
    pub fn assert_batches_committed(
        &mut self,
        leader: i32,
        topic: &str,
        partition: i32,
        batches: &[AckedBatch],
        timeout: Duration,
    ) -> (i64, Vec<ConsumedRecord>) {
        let needed = AckedBatch::end_of(batches).expect("batches acknowledged");
        let high_watermark = self.wait_for_high_watermark(topic, partition, needed, timeout);
        let (_, records) = self
            .read_from_leader(leader, topic, partition)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
        for batch in batches {
            for (i, value) in batch.values.iter().enumerate() {
                let offset = batch.base_offset + i as i64;
                let found = records.iter().find(|r| r.offset == offset);
                assert_eq!(
                    found.and_then(|r| r.value.as_deref()),
                    Some(value.as_bytes()),
                    "acknowledged {value} at offset {offset}\n{}",
                    self.logs()
                );
            }
        }
        (high_watermark, records)
    }
}
