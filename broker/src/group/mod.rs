//! The group coordinator: consumer groups and their committed offsets (Kafka's
//! `GroupCoordinator`), built on the replica manager.
//!
//! Being built (issue 11). What is here so far:
//!
//! - [`offsets_topic`]: the internal `__consumer_offsets` topic, how it is created, and which
//!   partition (so which coordinator) a group belongs to.
//!
//! Where group state lives, how a coordinator loads and unloads an offsets partition, and
//! the request handlers come with the coordinator itself.

pub mod offsets_topic;
