//! The group's timers: each member's session (re-armed by every heartbeat, removing the
//! member when it passes) and rebalance timeout (armed while the member has partitions to
//! revoke, removing it if it is still at that epoch when it passes). [`ConsumerGroup::tick`]
//! fires the due ones as Kafka's timer callbacks would.

use super::member::MemberState;
use super::types::{Effect, TimerKind};
use super::{ConsumerGroup, Deadline};

impl ConsumerGroup {
    /// Fires every timer due at `now_ms` (deadline <= `now_ms`), earliest first; a removed
    /// member's records come out as one [`Effect::Persist`] per removal. Timers armed while
    /// firing wait for the next tick.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let armed_before = self.timer_seq;
        while let Some(timer) = self.next_due(now_ms, armed_before) {
            self.timers.remove(&timer);
            let mut records = Vec::new();
            match timer {
                TimerKind::Session(member_id) => {
                    if self.has_member(&member_id) {
                        self.fence_member(&member_id, &mut records);
                    }
                }
                TimerKind::Rebalance(member_id) => {
                    let armed_epoch = self.rebalance_timer_epochs.remove(&member_id);
                    let member = self.data.members.get(&member_id);
                    let epoch = member.map(|m| m.member_epoch());
                    if epoch.is_some() && epoch == armed_epoch {
                        self.fence_member(&member_id, &mut records);
                    }
                }
            }
            if !records.is_empty() {
                effects.push(Effect::Persist { records });
            }
        }
        effects
    }

    /// Arms the timers of a group just loaded by `replay` (Kafka's `onLoaded`): every
    /// member's session, and the rebalance timeout of members with partitions to revoke.
    pub fn start_timers(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let members: Vec<(String, MemberState, i32, i32)> = self
            .data
            .members
            .values()
            .map(|m| {
                let timeout_ms = m.metadata.rebalance_timeout_ms;
                (m.member_id.clone(), m.state(), m.member_epoch(), timeout_ms)
            })
            .collect();
        let session_ms = self.config.session_timeout_ms;
        for (member_id, state, epoch, rebalance_ms) in members {
            self.schedule(
                TimerKind::Session(member_id.clone()),
                session_ms,
                now_ms,
                &mut effects,
            );
            if state == MemberState::UnrevokedPartitions {
                self.rebalance_timer_epochs.insert(member_id.clone(), epoch);
                let timer = TimerKind::Rebalance(member_id);
                self.schedule(timer, rebalance_ms, now_ms, &mut effects);
            }
        }
        effects
    }

    fn next_due(&self, now_ms: i64, armed_before: u64) -> Option<TimerKind> {
        self.timers
            .iter()
            .filter(|(_, d)| d.at_ms <= now_ms && d.armed_seq <= armed_before)
            .min_by_key(|(_, d)| (d.at_ms, d.armed_seq))
            .map(|(timer, _)| timer.clone())
    }

    /// (Re)arms `timer` to fire `delay_ms` from now.
    pub(super) fn schedule(
        &mut self,
        timer: TimerKind,
        delay_ms: i32,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) {
        self.timer_seq += 1;
        let deadline = Deadline {
            at_ms: now_ms + i64::from(delay_ms.max(0)),
            armed_seq: self.timer_seq,
        };
        self.timers.insert(timer.clone(), deadline);
        effects.push(Effect::ScheduleTimer {
            timer,
            deadline_ms: deadline.at_ms,
        });
    }

    pub(super) fn cancel(&mut self, timer: &TimerKind) {
        self.timers.remove(timer);
        if let TimerKind::Rebalance(member_id) = timer {
            self.rebalance_timer_epochs.remove(member_id);
        }
    }

    pub(super) fn cancel_member_timers(&mut self, member_id: &str) {
        self.cancel(&TimerKind::Session(member_id.to_string()));
        self.cancel(&TimerKind::Rebalance(member_id.to_string()));
    }
}
