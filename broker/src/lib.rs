//! The Sluice broker.
//!
//! Dependencies point one way: [`storage`] <- [`server`] (replication and the controller
//! will sit between them), and [`node`] wires one running broker together.

pub mod cluster;
pub mod config;
pub mod controller;
pub mod metrics;
pub mod node;
pub mod replica;
pub mod replication;
pub mod server;
pub mod shutdown;
pub mod storage;
