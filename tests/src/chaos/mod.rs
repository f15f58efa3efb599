//! The fault harness's pieces (issue 13, `docs/chaos.md`), built up over several steps.
//! So far:
//!
//! - [`history`]: a run's events (sends with their outcome, reads, rewinds, commits, and
//!   the nemesis's faults) and their JSON-lines form, so a failed run can be checked again.
//! - [`checker`]: Jepsen's Kafka queue checks over a history: lost, unobserved, duplicated
//!   and reordered writes, inconsistent offsets, non-monotonic reads, committed offsets
//!   going back, and the longest time a partition went without an acknowledgement,
//!   overall and per fault.
//! - [`run`]: a bounded, seeded run: acks=all producers on every partition of a
//!   replicated topic (and group members reading it) while the nemesis kills, pauses,
//!   restarts, cuts the power of (nodes run as `sluiced-faults`), steps the clock of (nodes
//!   under libfaketime), reassigns, or (nodes in the network lab) isolates nodes, cuts links
//!   and drops, delays or duplicates packets, then a final drain, the history written and checked
//!   (`tests/tests/chaos_*.rs`, `scripts/chaos.sh`).
//! - [`nemesis`]: the kinds of fault and the seeded loop that injects and heals them.
//! - `groups`: the workload's consumer group members (reads, rewinds, commits).
//! - [`java_producer`]: the workload's idempotent producers (Kafka's VerifiableProducer).
//! - `admin`: the operator's nemesis, a reassignment and a preferred leader election
//!   while the faults go on.
//! - The network lab is [`crate::netns`] (the cluster harness runs nodes in it).
//!
//! - [`target`]: what a run runs against, a Sluice cluster or an Apache Kafka one
//!   ([`crate::kafka_cluster`]), so the two are compared under the same faults.

mod admin;
pub mod checker;
mod groups;
pub mod history;
pub mod java_producer;
pub mod nemesis;
pub mod run;
pub mod target;

#[cfg(test)]
mod tests;
