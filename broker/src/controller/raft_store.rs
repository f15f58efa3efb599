//! The Raft state machine: committed entries applied to [`MetadataState`], and snapshots.
//!
//! [`StateMachineStore`] implements openraft's `RaftStateMachine` (storage-v2). It keeps the
//! applied metadata in memory and persists it only as snapshots, in
//! `<data_dir>/controller/snapshot`:
//!
//! ```text
//! [record: snapshot meta (JSON)][record: the MetadataState (JSON)]
//! ```
//!
//! framed like every controller file (length + CRC-32, see
//! [`record_file`](super::record_file)) and written atomically (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves the old snapshot or the new one.
//!
//! After a restart the state machine is the last snapshot; openraft then re-applies the
//! committed entries after it from the log (the log store saves the committed id for this),
//! and the leader supplies the rest. Because the metadata state machine is deterministic and
//! broker epochs are log indexes, re-applying gives exactly the state the node had.
//!
//! `apply` answers every entry: a normal entry with its [`CommandResult`], a blank entry (a
//! new leader's first entry) and a membership entry with a marker. openraft requires one
//! response per entry.
//!
//! Readers elsewhere in the broker see the applied state through a [`MetadataReader`],
//! never ahead of what this node applied.
//!
//! # The copy-on-write image
//!
//! The applied metadata is an immutable image, `Arc<MetadataState>`, in `Applied` behind
//! one `RwLock`. A reader takes the lock only to clone that `Arc`
//! ([`MetadataReader::image`]) and reads with no lock held, however long it takes;
//! [`MetadataReader::read`] is the same with a closure. `apply` writes through
//! `Arc::make_mut` under the write lock: when no reader holds the current image it is
//! changed in place; when one does, it is copied first, shallowly (one pointer per topic,
//! see [`metadata`](super::metadata)), and then only the topics the command changes are
//! copied. The reader keeps the image it took, unchanged; the next `image()` sees the
//! change. A snapshot is a reader like any other: `get_snapshot_builder` takes the image
//! and the snapshot meta under the lock, and `build_snapshot` (which openraft runs in its
//! own task, beside further `apply`s) serialises the image with no lock held.
//!
//! The lock is held only to clone, replace or apply to the image, never while a reader's
//! code or serde runs, so a reader may call back into a [`MetadataReader`] freely.
//!
//! # Invariants
//! - `last_applied` only grows (asserted), except when a snapshot from the leader replaces
//!   the whole state.
//! - A snapshot holds every entry up to its `last_log_id` and nothing after it:
//!   `get_snapshot_builder` takes the image, `last_applied` and the membership together,
//!   under the state lock, and the image it took never changes afterwards.
//! - An image handed out never changes: every write goes through `Arc::make_mut`.
//! - A published image records no changes of its own: `apply` moves the last command's
//!   changes into the journal from the state it wrote, before releasing the lock.
//! - An installed or loaded snapshot passes [`MetadataState::check_invariants`] before it is
//!   used.
//! - The current snapshot never moves backwards: a build that finishes after a newer install
//!   is discarded.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftLogId, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::delta::{ChangeJournal, Delta};
use super::metadata::{
    BrokerId, CommandOutcome, CommandResult, Election, MetadataCommand, MetadataState,
};
use super::record_file::{read_records, remove_leftover_temporary, replace_atomically};
use super::{NodeId, TypeConfig};
use crate::storage::FileSystem;

/// File name of the snapshot inside the controller directory.
pub const SNAPSHOT_FILE_NAME: &str = "snapshot";

/// The response to one applied log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryResponse {
    /// A blank entry (each new leader appends one).
    Blank,
    /// A membership change entry.
    Membership,
    /// A metadata command, and what applying it gave.
    Command(CommandResult),
}

/// What has been applied, shared by the state machine and every [`MetadataReader`].
#[derive(Debug, Default)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    /// The current image; see the module docs.
    metadata: Arc<MetadataState>,
    /// The topics each applied command changed, for readers that reconcile by delta.
    journal: ChangeJournal,
}

/// A read-only view of the applied metadata, for the rest of the broker.
#[derive(Debug, Clone)]
pub struct MetadataReader {
    applied: Arc<RwLock<Applied>>,
}

impl MetadataReader {
    /// The applied metadata as of now: an image no later command changes. The lock is
    /// held only to clone the `Arc`.
    pub fn image(&self) -> Arc<MetadataState> {
        read_lock(&self.applied).metadata.clone()
    }

    /// Run `f` on the applied metadata ([`image`](Self::image)), with no lock held.
    pub fn read<R>(&self, f: impl FnOnce(&MetadataState) -> R) -> R {
        f(&self.image())
    }

    /// Index of the last entry this node applied.
    pub fn last_applied_index(&self) -> Option<u64> {
        read_lock(&self.applied).last_applied.map(|id| id.index)
    }

    /// The index of the last entry applied, and the topics changed after `after` up to it
    /// (`None` when the journal cannot tell: then look at every topic). See
    /// [`ChangeJournal::since`].
    pub fn changes_since(&self, after: Option<u64>) -> (Option<u64>, Option<Delta>) {
        let applied = read_lock(&self.applied);
        (
            applied.last_applied.map(|id| id.index),
            applied.journal.since(after),
        )
    }
}

/// A snapshot as kept on disk and in memory.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// The current snapshot and where it lives; shared with snapshot builders.
#[derive(Debug)]
struct SnapshotSlot {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
}

impl SnapshotSlot {
    /// Make `snapshot` the current one (on disk first) unless a newer one is already current.
    fn store(&self, snapshot: StoredSnapshot) -> io::Result<bool> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = current.as_ref() {
            if existing.meta.last_log_id > snapshot.meta.last_log_id {
                return Ok(false);
            }
        }
        let meta = serde_json::to_vec(&snapshot.meta).map_err(io::Error::other)?;
        replace_atomically(
            self.fs.as_ref(),
            &self.path,
            [meta.as_slice(), snapshot.data.as_slice()],
        )?;
        *current = Some(snapshot);
        Ok(true)
    }

    fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The state machine storage. See the module docs.
#[derive(Debug)]
pub struct StateMachineStore {
    applied: Arc<RwLock<Applied>>,
    snapshot: Arc<SnapshotSlot>,
    /// Snapshots built by this process, for unique snapshot ids.
    snapshots_built: u64,
}

impl StateMachineStore {
    /// Open the state machine in `dir`: the last snapshot if there is one, else empty.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> io::Result<StateMachineStore> {
        fs.create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE_NAME);
        remove_leftover_temporary(fs.as_ref(), &path)?;
        let mut applied = Applied::default();
        let mut current = None;
        if fs.exists(&path)? {
            let snapshot = load_snapshot(fs.as_ref(), &path)?;
            applied = applied_from(&snapshot)?;
            current = Some(snapshot);
        }
        Ok(StateMachineStore {
            applied: Arc::new(RwLock::new(applied)),
            snapshot: Arc::new(SnapshotSlot {
                fs,
                path,
                current: Mutex::new(current),
            }),
            snapshots_built: 0,
        })
    }

    /// A view of the applied metadata for the rest of the broker.
    pub fn reader(&self) -> MetadataReader {
        MetadataReader {
            applied: self.applied.clone(),
        }
    }
}

/// Read a snapshot file. Unlike a log, a snapshot is written atomically, so anything short
/// of two whole records is corruption, not a torn write.
fn load_snapshot(fs: &dyn FileSystem, path: &Path) -> io::Result<StoredSnapshot> {
    let recovered = read_records(fs, path)?;
    let invalid = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot {} is corrupt: {reason}", path.display()),
        )
    };
    if recovered.truncated_bytes != 0 || recovered.records.len() != 2 {
        return Err(invalid(format!(
            "{} whole records and {} bad bytes",
            recovered.records.len(),
            recovered.truncated_bytes
        )));
    }
    let mut records = recovered.records.into_iter().map(|(_, payload)| payload);
    let meta_bytes = records.next().expect("two records");
    let data = records.next().expect("two records");
    let meta = serde_json::from_slice(&meta_bytes).map_err(|e| invalid(e.to_string()))?;
    Ok(StoredSnapshot { meta, data })
}

/// The applied state a snapshot describes, checked.
fn applied_from(snapshot: &StoredSnapshot) -> io::Result<Applied> {
    let metadata: MetadataState = serde_json::from_slice(&snapshot.data).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable snapshot: {error}"),
        )
    })?;
    metadata.check_invariants().map_err(|broken| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot breaks a metadata invariant: {broken}"),
        )
    })?;
    Ok(Applied {
        last_applied: snapshot.meta.last_log_id,
        last_membership: snapshot.meta.last_membership.clone(),
        metadata: Arc::new(metadata),
        // The snapshot replaced everything up to its index without commands.
        journal: ChangeJournal::new(snapshot.meta.last_log_id.map(|id| id.index)),
    })
}

impl Applied {
    /// Apply one metadata command to the image: in place if no reader holds it, else to a
    /// shallow copy (`Arc::make_mut`) that becomes the image.
    fn apply_command(&mut self, index: u64, command: &MetadataCommand) -> CommandResult {
        let metadata = Arc::make_mut(&mut self.metadata);
        let before = leader_before(metadata, command);
        let result = metadata.apply(index, command);
        // From the state `apply` wrote: a copy made above holds the changes, the image a
        // reader kept does not.
        self.journal.record(index, metadata.take_last_changes());
        metrics::counter!(crate::metrics::LEADER_ELECTIONS_TOTAL)
            .increment(leader_elections(before, &result) as u64);
        report(index, &result);
        result
    }
}

fn read_lock(applied: &RwLock<Applied>) -> std::sync::RwLockReadGuard<'_, Applied> {
    applied
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, BasicNode>>,
    verb: ErrorVerb,
    error: io::Error,
) -> StorageError<NodeId> {
    let subject = ErrorSubject::Snapshot(meta.map(SnapshotMeta::signature));
    StorageError::from_io_error(subject, verb, error)
}

/// Builds a snapshot from the image and meta taken, together, when the builder was made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    slot: Arc<SnapshotSlot>,
    meta: SnapshotMeta<NodeId, BasicNode>,
    image: Arc<MetadataState>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // No lock is held here: the image is this builder's own, and no apply changes it.
        let data = serde_json::to_vec(self.image.as_ref()).map_err(|error| {
            snapshot_error(Some(&self.meta), ErrorVerb::Write, io::Error::other(error))
        })?;
        let snapshot = StoredSnapshot {
            meta: self.meta.clone(),
            data,
        };
        let stored = self
            .slot
            .store(snapshot.clone())
            .map_err(|error| snapshot_error(Some(&snapshot.meta), ErrorVerb::Write, error))?;
        if !stored {
            tracing::info!(snapshot = %snapshot.meta.snapshot_id, "a newer snapshot is already current");
        }
        Ok(Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let applied = read_lock(&self.applied);
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut guard = self.applied.write().unwrap_or_else(|p| p.into_inner());
        let applied = &mut *guard;
        for entry in entries {
            let log_id = *entry.get_log_id();
            assert!(
                applied.last_applied < Some(log_id),
                "entry {log_id} applied after {:?}",
                applied.last_applied
            );
            applied.last_applied = Some(log_id);
            let response = match entry.payload {
                EntryPayload::Blank => EntryResponse::Blank,
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(log_id), membership);
                    EntryResponse::Membership
                }
                EntryPayload::Normal(command) => {
                    EntryResponse::Command(applied.apply_command(log_id.index, &command))
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        // The image and the meta from one locked view, so that the snapshot holds exactly
        // the entries up to its last_log_id; serialising waits for `build_snapshot`.
        let (image, last_log_id, last_membership) = {
            let applied = read_lock(&self.applied);
            (
                applied.metadata.clone(),
                applied.last_applied,
                applied.last_membership.clone(),
            )
        };
        let snapshot_id = match last_log_id {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.index, self.snapshots_built
            ),
            None => format!("none-{}", self.snapshots_built),
        };
        SnapshotBuilder {
            slot: self.snapshot.clone(),
            meta: SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id,
            },
            image,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let new_state = applied_from(&stored)
            .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Read, error))?;
        self.snapshot
            .store(stored)
            .map_err(|error| snapshot_error(Some(meta), ErrorVerb::Write, error))?;
        *self.applied.write().unwrap_or_else(|p| p.into_inner()) = new_state;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.snapshot.current().map(|snapshot| Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        }))
    }
}

/// The leader, before `command` applies, of the partition it names, for the commands that
/// can move a leader without reporting a [`PartitionChange`](super::metadata::PartitionChange):
/// an AlterPartition or a reassignment that completes and drops the leader. `None` for
/// other commands and unknown partitions.
fn leader_before(metadata: &MetadataState, command: &MetadataCommand) -> Option<Option<BrokerId>> {
    let (topic_id, partition) = match command {
        MetadataCommand::AlterPartition(alter) => (alter.topic_id, alter.partition),
        MetadataCommand::ReassignPartition {
            topic_id,
            partition,
            ..
        } => (*topic_id, *partition),
        _ => return None,
    };
    metadata
        .partition(&topic_id, partition)
        .map(|partition| partition.leader)
}

/// How many partitions `result` gave a new leader (Kafka's LeaderElectionRateAndTimeMs):
/// the reported changes that elected one, or for an AlterPartition or reassignment whose
/// partition had leader `before`, whether it now has another one. A partition going offline
/// and the first leaders of new partitions are no elections.
fn leader_elections(before: Option<Option<BrokerId>>, result: &CommandResult) -> usize {
    let Ok(outcome) = result else {
        return 0;
    };
    match outcome {
        CommandOutcome::LeadersElected { results } => results
            .iter()
            .filter(|(_, _, result)| result.as_ref().is_ok_and(|c| c.election.is_some()))
            .count(),
        CommandOutcome::PartitionAltered { partition }
        | CommandOutcome::ReassignmentAltered { partition } => usize::from(
            before.is_some_and(|leader| partition.leader.is_some() && partition.leader != leader),
        ),
        other => other
            .changes()
            .iter()
            .filter(|change| change.election.is_some())
            .count(),
    }
}

/// Log and count what deserves attention: unclean elections and partitions going offline.
fn report(index: u64, result: &CommandResult) {
    let Ok(outcome) = result else {
        return;
    };
    let elected: Vec<&crate::controller::metadata::PartitionChange> = match outcome {
        crate::controller::CommandOutcome::LeadersElected { results } => results
            .iter()
            .filter_map(|(_, _, result)| result.as_ref().ok())
            .collect(),
        other => other.changes().iter().collect(),
    };
    for change in elected {
        if change.election == Some(Election::Unclean) {
            metrics::counter!(crate::metrics::UNCLEAN_LEADER_ELECTIONS_TOTAL).increment(1);
            tracing::warn!(
                index,
                topic_id = %change.topic_id,
                partition = change.partition,
                leader = ?change.leader,
                "unclean leader election: acknowledged records may be lost"
            );
        }
        if change.leader.is_none() {
            tracing::warn!(
                index,
                topic_id = %change.topic_id,
                partition = change.partition,
                "partition offline: no eligible ISR member"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::testing::{blank_ent, log_id, membership_ent};
    use openraft::Membership;
    use uuid::Uuid;

    use super::*;
    use crate::controller::metadata::{CommandOutcome, Endpoint, MetadataCommand};
    use crate::storage::StdFileSystem;

    fn open(dir: &Path) -> StateMachineStore {
        StateMachineStore::open(Arc::new(StdFileSystem), dir).unwrap()
    }

    fn normal(index: u64, command: MetadataCommand) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(1, 1, index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn register(id: i32) -> MetadataCommand {
        MetadataCommand::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(7),
            endpoints: vec![Endpoint {
                listener: "INTERNAL".into(),
                host: "localhost".into(),
                port: 9093,
            }],
            rack: None,
            cluster_id: None,
        }
    }

    /// A membership entry, a broker registered and unfenced, and a topic.
    async fn apply_some(sm: &mut StateMachineStore) -> Vec<EntryResponse> {
        let entries = vec![
            membership_ent::<TypeConfig>(1, 1, 1, vec![BTreeSet::from([1])]),
            blank_ent::<TypeConfig>(1, 1, 2),
            normal(3, register(1)),
            normal(4, MetadataCommand::UnfenceBroker { id: 1, epoch: 3 }),
            normal(
                5,
                MetadataCommand::CreateTopic {
                    name: "t".into(),
                    id: Uuid::from_u128(55),
                    partitions: 2,
                    replication_factor: 1,
                    configs: Default::default(),
                },
            ),
        ];
        sm.apply(entries).await.unwrap()
    }

    #[tokio::test]
    async fn apply_answers_every_entry_including_blank_and_membership() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let responses = apply_some(&mut sm).await;
        assert_eq!(responses.len(), 5);
        assert_eq!(responses[0], EntryResponse::Membership);
        assert_eq!(responses[1], EntryResponse::Blank);
        assert!(matches!(
            responses[2],
            EntryResponse::Command(Ok(CommandOutcome::BrokerRegistered {
                broker_epoch: 3,
                ..
            }))
        ));
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 1, 5)));
        assert_eq!(
            membership.membership(),
            &Membership::new(vec![BTreeSet::from([1])], None)
        );
        let reader = sm.reader();
        assert_eq!(reader.last_applied_index(), Some(5));
        assert_eq!(
            reader.read(|m| m.topic_by_name("t").unwrap().partitions.len()),
            2
        );
    }

    #[tokio::test]
    async fn a_snapshot_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        apply_some(&mut sm).await;
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let expected = sm.reader().read(Clone::clone);
        drop(sm);

        let mut reopened = open(dir.path());
        assert_eq!(reopened.reader().read(Clone::clone), expected);
        let (applied, _) = reopened.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 1, 5)));
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    }

    #[tokio::test]
    async fn installing_a_snapshot_replaces_the_state() {
        let leader_dir = tempfile::tempdir().unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let mut leader = open(leader_dir.path());
        apply_some(&mut leader).await;
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let mut follower = open(follower_dir.path());
        follower.apply([normal(1, register(9))]).await.unwrap();
        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        *receiving = *snapshot.snapshot;
        follower
            .install_snapshot(&snapshot.meta, receiving)
            .await
            .unwrap();
        let expected = leader.reader().read(Clone::clone);
        assert_eq!(follower.reader().read(Clone::clone), expected);
        assert!(follower.reader().read(|m| m.broker(9).is_none()));
        drop(follower);
        assert_eq!(
            open(follower_dir.path()).reader().read(Clone::clone),
            expected
        );
    }

    #[tokio::test]
    async fn a_snapshot_that_breaks_an_invariant_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let mut receiving = sm.begin_receiving_snapshot().await.unwrap();
        *receiving = Cursor::new(b"{\"not\": \"metadata\"}".to_vec());
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(1, 1, 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "bad".into(),
        };
        assert!(sm.install_snapshot(&meta, receiving).await.is_err());
        assert_eq!(sm.applied_state().await.unwrap().0, None);
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_file_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        apply_some(&mut sm).await;
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        drop(sm);
        let path = dir.path().join(SNAPSHOT_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let error = StateMachineStore::open(Arc::new(StdFileSystem), dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    fn create_partitions(index: u64, topic_id: Uuid, count: i32) -> Entry<TypeConfig> {
        normal(
            index,
            MetadataCommand::CreatePartitions {
                topic_id,
                count,
                assignment: None,
            },
        )
    }

    /// `apply_some`, and a second topic "u" at index 6.
    async fn apply_two_topics(sm: &mut StateMachineStore) -> (Uuid, Uuid) {
        apply_some(sm).await;
        let create = MetadataCommand::CreateTopic {
            name: "u".into(),
            id: Uuid::from_u128(66),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        };
        sm.apply([normal(6, create)]).await.unwrap();
        (Uuid::from_u128(55), Uuid::from_u128(66))
    }

    #[tokio::test]
    async fn an_image_is_unchanged_by_later_commands_and_shares_what_they_did_not_touch() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let (t, u) = apply_two_topics(&mut sm).await;
        let reader = sm.reader();
        let before = reader.image();
        sm.apply([create_partitions(7, t, 3)]).await.unwrap();
        let after = reader.image();

        assert_eq!(before.topic(&t).unwrap().partitions.len(), 2);
        assert_eq!(before.last_command_index(), Some(6));
        assert_eq!(after.topic(&t).unwrap().partitions.len(), 3);
        assert_eq!(after.last_command_index(), Some(7));
        let topic = |image: &MetadataState, id| image.topic_arc(&id).unwrap().clone();
        assert!(Arc::ptr_eq(&topic(&before, u), &topic(&after, u)));
        assert!(!Arc::ptr_eq(&topic(&before, t), &topic(&after, t)));
        before.check_invariants().unwrap();
    }

    #[tokio::test]
    async fn read_runs_with_no_lock_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        apply_some(&mut sm).await;
        let applied = sm.applied.clone();
        let writable = sm.reader().read(|_| applied.try_write().is_ok());
        assert!(writable, "the closure ran under the state lock");
    }

    #[tokio::test]
    async fn changes_are_journalled_per_command_while_readers_hold_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let (t, u) = apply_two_topics(&mut sm).await;
        let reader = sm.reader();
        let _held = reader.image();
        sm.apply([create_partitions(7, t, 3)]).await.unwrap();
        let _held_too = reader.image();
        sm.apply([create_partitions(8, u, 2)]).await.unwrap();
        let changed = |after| reader.changes_since(Some(after)).1.unwrap().changed;
        assert_eq!(changed(6), BTreeSet::from([t, u]));
        assert_eq!(changed(7), BTreeSet::from([u]));
        assert!(changed(8).is_empty());
    }

    #[tokio::test]
    async fn a_snapshot_holds_the_image_its_builder_took_not_later_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let (t, _) = apply_two_topics(&mut sm).await;
        let image = sm.reader().image();
        let mut builder = sm.get_snapshot_builder().await;
        // openraft builds in its own task, while the state machine goes on applying.
        sm.apply([create_partitions(7, t, 3)]).await.unwrap();
        let built = builder.build_snapshot().await.unwrap();

        assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 6)));
        let data = built.snapshot.into_inner();
        assert_eq!(data, serde_json::to_vec(image.as_ref()).unwrap());
        let restored: MetadataState = serde_json::from_slice(&data).unwrap();
        assert_eq!(restored, *image);
        assert_eq!(restored.topic(&t).unwrap().partitions.len(), 2);
        assert_eq!(sm.reader().read(|m| m.last_command_index()), Some(7));
    }

    /// Apply `command` at `index` as `apply` does; returns the elections it counts.
    fn elections_of(state: &mut MetadataState, index: u64, command: MetadataCommand) -> usize {
        let before = leader_before(state, &command);
        let result = state.apply(index, &command);
        assert!(result.is_ok(), "{command:?}: {result:?}");
        leader_elections(before, &result)
    }

    #[test]
    fn leader_elections_count_new_leaders_not_offline_partitions_or_first_leaders() {
        let mut state = MetadataState::new();
        let topic = Uuid::from_u128(55);
        let mut index = 0;
        let mut next = || {
            index += 1;
            index
        };
        for id in [1, 2] {
            let epoch = next();
            assert_eq!(elections_of(&mut state, epoch, register(id)), 0);
            let unfence = MetadataCommand::UnfenceBroker {
                id,
                epoch: epoch as i64,
            };
            assert_eq!(elections_of(&mut state, next(), unfence), 0);
        }
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            id: topic,
            partitions: 1,
            replication_factor: 2,
            configs: Default::default(),
        };
        assert_eq!(elections_of(&mut state, next(), create), 0, "first leaders");
        let leader = state.partition(&topic, 0).unwrap().leader.unwrap();
        let follower = 3 - leader;
        // Fencing the leader moves leadership to the follower: one election.
        let fence = |id: i32, state: &MetadataState| MetadataCommand::FenceBroker {
            id,
            epoch: state.broker(id).unwrap().epoch,
        };
        let command = fence(leader, &state);
        assert_eq!(elections_of(&mut state, next(), command), 1);
        assert_eq!(state.partition(&topic, 0).unwrap().leader, Some(follower));
        // Fencing the last ISR member takes the partition offline: no election.
        let command = fence(follower, &state);
        assert_eq!(elections_of(&mut state, next(), command), 0);
        assert_eq!(state.partition(&topic, 0).unwrap().leader, None);
        // Its last ISR member coming back leads it again: an election; the other broker
        // coming back and joining the ISR is none.
        let epoch = state.broker(follower).unwrap().epoch;
        let unfence = MetadataCommand::UnfenceBroker {
            id: follower,
            epoch,
        };
        assert_eq!(elections_of(&mut state, next(), unfence), 1, "back online");
        let unfence = MetadataCommand::UnfenceBroker {
            id: leader,
            epoch: state.broker(leader).unwrap().epoch,
        };
        assert_eq!(elections_of(&mut state, next(), unfence), 0);
        let partition = state.partition(&topic, 0).unwrap().clone();
        let alter = MetadataCommand::AlterPartition(crate::controller::AlterPartition {
            leader_id: follower,
            broker_epoch: epoch,
            topic_id: topic,
            partition: 0,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            new_isr: vec![follower, leader],
            leader_recovery_state: partition.leader_recovery_state,
        });
        assert_eq!(elections_of(&mut state, next(), alter), 0);
        assert_eq!(state.partition(&topic, 0).unwrap().isr.len(), 2);
    }
}
