//! The Sluice broker.
//!
//! Dependencies point one way: [`storage`] <- [`replication`] <- [`replica`] (the replica
//! manager, the one owner of hosted partitions) <- [`group`] (the group coordinator, on
//! `__consumer_offsets`) <- [`server`] (the Kafka listener and one handler per API);
//! [`controller`] (the metadata quorum) <- [`cluster`] (membership) and [`replica`];
//! [`fetch_session`] (KIP-227 incremental fetch sessions, standing alone) <- [`server`];
//! [`node`] wires one running broker together. `docs/architecture.md` draws
//! the layers and the produce and fetch paths through them.

pub mod cluster;
pub mod config;
pub mod controller;
pub mod fetch_session;
pub mod group;
pub mod metrics;
pub mod node;
pub mod replica;
pub mod replication;
pub mod server;
pub mod shutdown;
pub mod storage;
