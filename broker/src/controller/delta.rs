//! Metadata deltas: which topics each applied command changed, so that a broker reconciles
//! only those (Kafka's `MetadataDelta` / `TopicsDelta.localChanges`) instead of every topic
//! on every change.
//!
//! [`MetadataState::apply`](super::MetadataState::apply) notes the topics one command
//! changed ([`TopicChange`]: a topic created or any of its partitions changed, or a topic
//! deleted) in a [`LastChanges`]; the state machine moves them into a [`ChangeJournal`]
//! under the command's log index. A reader remembers the index it last reconciled through
//! and asks the journal for what changed after it ([`ChangeJournal::since`]).
//!
//! # Invariants
//! - The journal holds every change with an index above its `horizon`, in index order. It
//!   forgets the oldest entries beyond [`JOURNAL_ENTRIES_MAX`] and then raises the horizon,
//!   so a reader that fell further behind is told to reconcile everything (`None`), never
//!   handed a partial delta.
//! - Installing a snapshot replaces the whole state without commands: the journal is reset
//!   with the horizon at the snapshot's index, for the same reason.
//! - [`LastChanges`] is bookkeeping of the last `apply`, not replicated state: serde skips
//!   it and it compares equal to any other, so two states that agree on the metadata are
//!   equal whatever command brought them there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use uuid::Uuid;

/// Most topic changes the journal keeps: a reader more than this many changes behind
/// reconciles everything instead.
pub const JOURNAL_ENTRIES_MAX: usize = 200_000;

/// What one command did to one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicChange {
    /// Created, grown, or any of its partitions changed (leader, ISR, replicas, epochs).
    Changed(Uuid),
    /// Deleted; the name is kept so that a broker can find its local log.
    Deleted { id: Uuid, name: String },
}

/// The topics the last applied command changed, each once.
#[derive(Debug, Clone, Default)]
pub struct LastChanges(Vec<TopicChange>);

impl PartialEq for LastChanges {
    /// Always equal: see the module docs.
    fn eq(&self, _other: &LastChanges) -> bool {
        true
    }
}

impl Eq for LastChanges {}

impl LastChanges {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn changed(&mut self, id: Uuid) {
        let change = TopicChange::Changed(id);
        // A command touching many partitions of one topic does so one after the other:
        // skip the repeats here, the rest in `take`.
        if self.0.last() != Some(&change) {
            self.0.push(change);
        }
    }

    pub(super) fn deleted(&mut self, id: Uuid, name: String) {
        self.0.push(TopicChange::Deleted { id, name });
    }

    /// The changes, each topic once, in the order first seen; leaves this empty.
    pub fn take(&mut self) -> Vec<TopicChange> {
        let mut seen = std::collections::HashSet::new();
        let mut changes = std::mem::take(&mut self.0);
        changes.retain(|change| seen.insert(change.clone()));
        changes
    }
}

/// What changed after some log index: the topics to look at again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Topics created or changed (and not deleted afterwards).
    pub changed: BTreeSet<Uuid>,
    /// Topics deleted, by id, with their names.
    pub deleted: BTreeMap<Uuid, String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }

    fn add(&mut self, change: &TopicChange) {
        match change {
            TopicChange::Changed(id) => {
                self.changed.insert(*id);
            }
            TopicChange::Deleted { id, name } => {
                self.changed.remove(id);
                self.deleted.insert(*id, name.clone());
            }
        }
    }
}

/// Recent topic changes by log index. See the module docs.
#[derive(Debug, Clone)]
pub struct ChangeJournal {
    entries: VecDeque<(u64, TopicChange)>,
    /// Changes at or below this index are not (all) in the journal.
    horizon: Option<u64>,
    entries_max: usize,
}

impl Default for ChangeJournal {
    /// An empty journal of a state built from the first command on.
    fn default() -> ChangeJournal {
        ChangeJournal::new(None)
    }
}

impl ChangeJournal {
    /// An empty journal that knows nothing at or before `horizon`.
    pub fn new(horizon: Option<u64>) -> ChangeJournal {
        ChangeJournal::with_capacity(horizon, JOURNAL_ENTRIES_MAX)
    }

    /// [`ChangeJournal::new`] keeping at most `entries_max` changes (tests shrink it).
    pub fn with_capacity(horizon: Option<u64>, entries_max: usize) -> ChangeJournal {
        ChangeJournal {
            entries: VecDeque::new(),
            horizon,
            entries_max: entries_max.max(1),
        }
    }

    /// Note the changes of the command at log `index` (indexes grow).
    pub fn record(&mut self, index: u64, changes: Vec<TopicChange>) {
        debug_assert!(self.entries.back().is_none_or(|(last, _)| *last <= index));
        for change in changes {
            self.entries.push_back((index, change));
        }
        while self.entries.len() > self.entries_max {
            if let Some((forgotten, _)) = self.entries.pop_front() {
                self.horizon = self.horizon.max(Some(forgotten));
            }
        }
    }

    /// Forget everything: the state was replaced as of `index` (a snapshot install).
    pub fn reset(&mut self, index: Option<u64>) {
        self.entries.clear();
        self.horizon = index;
    }

    /// The topics changed by commands after `after`, or `None` when the journal cannot
    /// tell (`after` is `None`, or at or below the horizon while the journal forgot
    /// something): then the reader must look at everything.
    pub fn since(&self, after: Option<u64>) -> Option<Delta> {
        let after = after?;
        if self.horizon.is_some_and(|horizon| after < horizon) {
            return None;
        }
        let first = self.entries.partition_point(|(index, _)| *index <= after);
        let mut delta = Delta::default();
        for (_, change) in self.entries.range(first..) {
            delta.add(change);
        }
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn since_returns_only_later_changes() {
        let mut journal = ChangeJournal::new(Some(0));
        journal.record(1, vec![TopicChange::Changed(id(1))]);
        journal.record(2, vec![TopicChange::Changed(id(2))]);
        journal.record(3, vec![TopicChange::Changed(id(1))]);
        let delta = journal.since(Some(1)).unwrap();
        assert_eq!(delta.changed, BTreeSet::from([id(1), id(2)]));
        assert!(journal.since(Some(3)).unwrap().is_empty());
        assert_eq!(
            journal.since(Some(2)).unwrap().changed,
            BTreeSet::from([id(1)])
        );
    }

    #[test]
    fn a_deletion_overrides_earlier_changes_of_the_topic() {
        let mut journal = ChangeJournal::new(Some(0));
        journal.record(1, vec![TopicChange::Changed(id(1))]);
        journal.record(
            2,
            vec![TopicChange::Deleted {
                id: id(1),
                name: "t".into(),
            }],
        );
        let delta = journal.since(Some(0)).unwrap();
        assert!(delta.changed.is_empty());
        assert_eq!(delta.deleted, BTreeMap::from([(id(1), "t".to_string())]));
    }

    #[test]
    fn a_reader_behind_the_forgotten_changes_must_reconcile_everything() {
        let mut journal = ChangeJournal::with_capacity(Some(0), 2);
        for index in 1..=4 {
            journal.record(index, vec![TopicChange::Changed(id(u128::from(index)))]);
        }
        // Entries 1 and 2 were forgotten: a reader at 1 would miss 2.
        assert_eq!(journal.since(Some(1)), None);
        assert_eq!(
            journal.since(Some(2)).unwrap().changed,
            BTreeSet::from([id(3), id(4)])
        );
        assert_eq!(journal.since(None), None);
    }

    #[test]
    fn a_reset_forgets_everything_before_the_snapshot() {
        let mut journal = ChangeJournal::new(Some(0));
        journal.record(1, vec![TopicChange::Changed(id(1))]);
        journal.reset(Some(10));
        assert_eq!(journal.since(Some(5)), None);
        assert!(journal.since(Some(10)).unwrap().is_empty());
    }

    #[test]
    fn last_changes_report_each_topic_once() {
        let mut last = LastChanges::default();
        last.changed(id(1));
        last.changed(id(1));
        last.changed(id(2));
        last.changed(id(1));
        assert_eq!(
            last.take(),
            vec![TopicChange::Changed(id(1)), TopicChange::Changed(id(2))]
        );
        assert!(last.take().is_empty());
    }
}
