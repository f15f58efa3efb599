//! The Kafka wire protocol as Sluice speaks it.
//!
//! This crate owns everything that is a matter of bytes on the wire and nothing that runs:
//! no runtime, no sockets, no logging setup. Broker and client both build on it, so nothing
//! is encoded twice.
//!
//! - [`frame`]: the 4-byte length-prefixed framing as a tokio-util codec, with the size limit
//!   checked before any buffer is reserved.
//! - [`header`]: request header parsing (v0-v2, flexible versions) in front of the
//!   `kafka-protocol` message codecs.
//! - [`api`]: the API version table Sluice advertises, and request values with a fixed
//!   meaning (the debugging replica id, the metadata topic's name).
//! - [`clock`]: the wall clock in Kafka's timestamp unit (ms since the epoch).
//! - [`batch`]: a zero-copy view over RecordBatch v2: iterate, validate, stamp offsets.
//! - [`records`]: building and decoding batches with keys, values, headers and the four codecs.
//! - [`error`]: errors of this crate and the Kafka error codes.
//! - [`consumer_protocol`]: the subscription and assignment bytes of classic `consumer` groups.
//! - [`uuid_string`]: a UUID printed as Kafka prints member and topic ids.

pub mod api;
pub mod batch;
pub mod clock;
pub mod consumer_protocol;
pub mod error;
pub mod frame;
pub mod header;
pub mod records;
pub mod uuid_string;

pub use kafka_protocol;
