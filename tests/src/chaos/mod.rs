//! The fault harness's pieces (issue 13), built up over several steps. So far:
//!
//! - [`history`]: a run's events (sends with their outcome, reads, rewinds, commits, and
//!   the nemesis's faults) and their JSON-lines form, so a failed run can be checked again.
//! - [`checker`]: Jepsen's Kafka queue checks over a history: lost, unobserved, duplicated
//!   and reordered writes, inconsistent offsets, non-monotonic reads, committed offsets
//!   going back, and the longest time without an acknowledgement, overall and per fault.
//!
//! Still to come (see the issue): the network-namespace cluster, the nemeses, the workload
//! that records a history, and `scripts/chaos.sh`.

pub mod checker;
pub mod history;

#[cfg(test)]
mod tests;
