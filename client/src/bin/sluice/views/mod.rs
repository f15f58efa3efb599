//! The text of the operator views, `sluice cluster status`, `sluice topic describe` and
//! `sluice top`: human-readable tables (the default) or JSON for scripts. Pure functions
//! from what [`crate::health`] gathered to a `String`; the commands print it.
//!
//! Tables are left-aligned columns two spaces apart, with "-" for what is unknown. JSON is
//! the serialized [`crate::health`] type, pretty-printed for the one-shot views and one
//! object per line (JSON lines) for `top` (the shared pieces are in [`crate::output`]).
//!
//! One file per view: `cluster.rs` (`cluster status`), `topic.rs` (`topic describe`),
//! `top.rs` (`top`).

mod cluster;
mod top;
mod topic;

pub use cluster::cluster_status;
pub use top::top;
pub use topic::topic_health;
