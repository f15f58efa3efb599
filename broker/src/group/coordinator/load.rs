//! Loading an offsets partition: replay every record from the log start to the log end
//! into a fresh [`Shard`], then let it serve.
//!
//! The whole local log is replayed, not only what is below the high watermark: this broker
//! leads the partition, so its log is the partition's (a leader never truncates its own
//! log; records above the high watermark get committed or the leadership ends, which drops
//! the shard). A record that cannot be decoded stops the load with an error logged and the
//! shard never serving, as Kafka's loader fails the load; an unknown record type is
//! skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::records::decode_records;

use super::shard::Shard;
use super::GroupCoordinator;
use crate::group::offsets_topic::OFFSETS_TOPIC;
use crate::group::records::Record;

/// Bytes read per step (Kafka's `offsets.load.buffer.size` default).
const LOAD_BUFFER_BYTES: usize = 5 * 1024 * 1024;
/// Pause before retrying a read that failed (the replica may still be opening).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub(super) async fn load(coordinator: Arc<GroupCoordinator>, shard: Arc<Shard>) {
    let started = Instant::now();
    let mut next = 0i64;
    let mut records = 0u64;
    loop {
        if !coordinator.is_current(&shard) {
            return;
        }
        let read = match coordinator.replicas.read_led_partition(
            OFFSETS_TOPIC,
            shard.partition,
            next,
            LOAD_BUFFER_BYTES,
        ) {
            Ok(read) => read,
            Err(code) => {
                tracing::debug!(
                    partition = shard.partition,
                    ?code,
                    "offsets partition not readable yet"
                );
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        next = next.max(read.log_start_offset);
        if read.records.is_empty() {
            break;
        }
        match replay(&coordinator, &shard, &read.records) {
            Ok((count, end)) => {
                records += count;
                next = end;
            }
            Err(error) => {
                tracing::error!(partition = shard.partition, offset = next, %error, "loading the group coordinator partition failed: its groups are not served");
                return;
            }
        }
        if next >= read.log_end_offset {
            break;
        }
        tokio::task::yield_now().await;
    }
    if coordinator.is_current(&shard) {
        coordinator.start_loaded_groups(&shard);
        shard.mark_loaded();
        tokio::spawn(coordinator.clone().tick_groups(shard.clone()));
        tokio::spawn(
            coordinator
                .clone()
                .expire_offsets_periodically(shard.clone()),
        );
        let groups = shard.lock().groups.len();
        tracing::info!(
            partition = shard.partition,
            leader_epoch = shard.leader_epoch,
            records,
            groups,
            duration_ms = started.elapsed().as_millis() as u64,
            "loaded group coordinator partition"
        );
    }
}

/// Apply every record of `bytes` (whole batches); returns how many and the offset after
/// the last.
fn replay(
    coordinator: &GroupCoordinator,
    shard: &Shard,
    bytes: &bytes::Bytes,
) -> Result<(u64, i64), String> {
    let consumed = decode_records(bytes).map_err(|e| e.to_string())?;
    let end = sluice_protocol::batch::Batches::new(bytes)
        .filter_map(|item| item.ok())
        .map(|(header, _)| header.next_offset())
        .last()
        .ok_or("no whole batch in a non-empty read")?;
    let mut state = shard.lock();
    let mut count = 0;
    for record in consumed {
        let Some(key) = record.key else {
            continue;
        };
        let decoded = Record::decode(key, record.value).map_err(|e| e.to_string())?;
        if let Record::ConsumerGroup(stored) = &decoded {
            coordinator.replay_consumer_record(&mut state, stored)?;
        } else {
            state.apply(record.offset, &decoded);
        }
        count += 1;
    }
    Ok((count, end))
}
