//! The group's timers: member sessions (and the new-member join timeout), the join phase
//! (rebalance timeout, initial delay) and the sync deadline; [`ClassicGroup::tick`] fires
//! the due ones as Kafka's timer callbacks would.

use super::{ClassicGroup, Deadline, Effect, GroupState, JoinTimer, TimerKind};

impl ClassicGroup {
    /// Fires every timer due at `now_ms` (deadline <= `now_ms`), earliest first. Timers
    /// armed while firing wait for the next tick, so a zero timeout cannot loop.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        let armed_before = self.timer_seq;
        while let Some(timer) = self.next_due(now_ms, armed_before) {
            self.fire(timer, now_ms, &mut out);
        }
        out
    }

    fn next_due(&self, now_ms: i64, armed_before: u64) -> Option<TimerKind> {
        let due = |d: &Deadline| d.at_ms <= now_ms && d.armed_seq <= armed_before;
        let heartbeats = self
            .heartbeat_timers
            .iter()
            .filter(|(_, d)| due(d))
            .map(|(id, d)| (*d, TimerKind::Heartbeat(id.clone())));
        let join = self
            .join_timer
            .iter()
            .filter(|(d, _)| due(d))
            .map(|(d, _)| (*d, TimerKind::Join));
        let sync = self
            .sync_timer
            .iter()
            .filter(|(d, _)| due(d))
            .map(|(d, _)| (*d, TimerKind::Sync));
        heartbeats
            .chain(join)
            .chain(sync)
            .min_by_key(|(d, _)| (d.at_ms, d.armed_seq))
            .map(|(_, timer)| timer)
    }

    fn fire(&mut self, timer: TimerKind, now_ms: i64, out: &mut Vec<Effect>) {
        match timer {
            TimerKind::Heartbeat(member_id) => {
                self.heartbeat_timers.remove(&member_id);
                self.expire_heartbeat(&member_id, now_ms, out);
            }
            TimerKind::Join => match self.join_timer.take().map(|(_, kind)| kind) {
                Some(JoinTimer::Rebalance) => self.complete_join(now_ms, out),
                Some(JoinTimer::InitialDelay {
                    delay_ms,
                    remaining_ms,
                }) => self.complete_initial_rebalance_or_wait(delay_ms, remaining_ms, now_ms, out),
                None => {}
            },
            TimerKind::Sync => {
                if let Some((_, generation_id)) = self.sync_timer.take() {
                    self.expire_pending_sync(generation_id, now_ms, out);
                }
            }
        }
    }

    fn arm(&mut self, delay_ms: i32, now_ms: i64) -> Deadline {
        self.timer_seq += 1;
        Deadline {
            at_ms: now_ms + i64::from(delay_ms.max(0)),
            armed_seq: self.timer_seq,
        }
    }

    /// (Re)starts `member_id`'s session timer (Kafka's `rescheduleClassicGroupMemberHeartbeat`).
    pub(super) fn schedule_heartbeat(
        &mut self,
        member_id: &str,
        timeout_ms: i32,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let deadline = self.arm(timeout_ms, now_ms);
        self.heartbeat_timers
            .insert(member_id.to_string(), deadline);
        out.push(Effect::ScheduleTimer {
            timer: TimerKind::Heartbeat(member_id.to_string()),
            deadline_ms: deadline.at_ms,
        });
    }

    pub(super) fn schedule_join_timer(
        &mut self,
        timer: JoinTimer,
        delay_ms: i32,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let deadline = self.arm(delay_ms, now_ms);
        self.join_timer = Some((deadline, timer));
        out.push(Effect::ScheduleTimer {
            timer: TimerKind::Join,
            deadline_ms: deadline.at_ms,
        });
    }

    pub(super) fn schedule_sync_timer(
        &mut self,
        delay_ms: i32,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let deadline = self.arm(delay_ms, now_ms);
        self.sync_timer = Some((deadline, self.generation_id));
        out.push(Effect::ScheduleTimer {
            timer: TimerKind::Sync,
            deadline_ms: deadline.at_ms,
        });
    }

    /// Kafka's `expireClassicGroupMemberHeartbeat`: a pending member goes; a member goes
    /// unless it is parked in a rebalance (and not new).
    fn expire_heartbeat(&mut self, member_id: &str, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state == GroupState::Dead {
            return;
        }
        if self.pending_members.contains(member_id) {
            self.remove_member(member_id, out);
            if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(now_ms, out);
            }
            return;
        }
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        if !member.has_satisfied_heartbeat() {
            self.remove_member_and_rebalance(member_id, now_ms, out);
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup`.
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        self.remove_member(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now_ms, out)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms, out)
            }
            _ => {}
        }
    }

    /// Kafka's `expirePendingSync`: members that got the JoinGroup response but did not
    /// sync within the rebalance timeout are removed, and the group rebalances.
    fn expire_pending_sync(&mut self, generation_id: i32, now_ms: i64, out: &mut Vec<Effect>) {
        let syncing = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if generation_id != self.generation_id || !syncing || self.pending_sync_members.is_empty() {
            return;
        }
        let laggards: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        for member_id in &laggards {
            self.remove_member(member_id, out);
        }
        self.prepare_rebalance(now_ms, out);
    }
}
