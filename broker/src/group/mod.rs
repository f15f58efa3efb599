//! The group coordinator: consumer groups and their committed offsets (Kafka's
//! `GroupCoordinator`), built on the replica manager.
//!
//! Being built (issue 11). What is here so far:
//!
//! - [`coordinator`]: [`coordinator::GroupCoordinator`], which loads the offsets partitions
//!   this broker leads and serves their groups' committed offsets (OffsetCommit,
//!   OffsetFetch).
//! - [`offsets_topic`]: the internal `__consumer_offsets` topic, how it is created, and which
//!   partition (so which coordinator) a group belongs to.
//! - `records`: the key and value schemas of the records in `__consumer_offsets` (Kafka's
//!   `OffsetCommitKey/Value`, `GroupMetadataKey/Value`), byte for byte as Kafka writes them,
//!   so a partition written by either can be read by the other's tools.
//! - `classic`: the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as a
//!   sans-IO state machine per group: requests and the time go in, responses to send, records
//!   to append and timers to set come out.
//!
//! Where group state lives, how a coordinator loads and unloads an offsets partition, and
//! the request handlers come with the coordinator itself.

pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod offsets_topic;
// used by the coordinator (issue 11), being built
#[allow(dead_code)]
mod records;
