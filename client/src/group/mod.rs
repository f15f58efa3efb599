//! Consumer groups, classic protocol: [`GroupConsumer`] subscribes to topics and consumes
//! the partitions its group assigns it, with committed offsets.
//!
//! The group protocol as Kafka's consumer speaks it (the broker's side is
//! `broker/src/group`, docs/groups.md):
//!
//! 1. FindCoordinator names the broker coordinating the group; the member keeps a
//!    dedicated connection to it (`coordinator`).
//! 2. JoinGroup, with the subscription encoded once per offered assignor. A new dynamic
//!    member is first refused with MEMBER_ID_REQUIRED and a member id to join with. The
//!    coordinator waits for every member, picks an assignor all offer and a leader.
//! 3. The leader runs the assignor (`assignor`: range, roundrobin) over all subscriptions
//!    and sends the result in SyncGroup; everyone's SyncGroup answers with their share.
//! 4. Positions start from the group's committed offsets (OffsetFetch), or the reset policy.
//! 5. A background task heartbeats (`heartbeat`); an answer of REBALANCE_IN_PROGRESS makes
//!    the next `poll` revoke everything (eager protocol; with `cooperative-sticky` only what
//!    moves, after the join), commit, and go back to step 2.
//! 6. Commits (OffsetCommit) carry the member id and generation; close leaves the group
//!    (LeaveGroup) unless the member is static (`group.instance.id`).
//!
//! Modules: `config` (settings), `assignor` (pure assignment functions), `coordinator`
//! (finding the coordinator, building and sending the group requests), `member` (member
//! id, generation, rejoin and fatal state shared with the heartbeat task), `heartbeat`,
//! `consumer` (the [`GroupConsumer`] itself: its state, `poll`, `close`), and beside it
//! `rebalance` (revoke, join, sync, take the assignment), `pattern` (regex
//! subscriptions), `commits` (OffsetCommit,
//! auto-commit, OffsetFetch), `positions` (what the application has seen; seek, pause),
//! [`metrics`] (metric names).
//!
//! With `group_protocol: GroupProtocol::Consumer` (KIP-848) steps 2-5 are replaced by
//! ConsumerGroupHeartbeat: the coordinator assigns and the member reconciles
//! incrementally (`kip848`); commits and positions are shared.

mod assignor;
mod commits;
mod config;
mod consumer;
mod coordinator;
mod heartbeat;
mod kip848;
mod member;
pub mod metrics;
mod pattern;
mod positions;
mod rebalance;
mod sticky;

pub use assignor::{Assignment, Assignor, MemberSubscription};
pub use commits::PendingCommit;
pub use config::{GroupConsumerConfig, GroupProtocol};
pub use consumer::{GroupConsumer, TopicPartition};
pub use rebalance::RebalanceListener;
