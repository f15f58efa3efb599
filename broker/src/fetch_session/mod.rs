//! Incremental fetch sessions (KIP-227), as Kafka 4.1 keeps them: a fetcher with many
//! partitions sends them all once, then only what changed; the broker answers only the
//! partitions with something new.
//!
//! # Files
//!
//! - `mod.rs`: [`FetchSessionCache`], the broker's sessions by id, how a request picks its
//!   [`FetchContext`] (sessionless, full, incremental or a session error), and eviction.
//! - `session.rs`: [`Session`], one session's partitions in fetch order, and the rule for
//!   which partitions an incremental answer must carry.
//!
//! # Rules (Kafka's `FetchManager.newContext`)
//!
//! - Epoch -1 (Fetch before v7 always): sessionless; a named session is closed.
//! - Epoch 0: a full fetch; a named session is closed, and a new session is created from
//!   the answer if a slot is free or one can be evicted (else session id 0).
//! - Epoch > 0: incremental on the named session. An unknown id is
//!   FETCH_SESSION_ID_NOT_FOUND; an epoch other than the one expected is
//!   INVALID_FETCH_SESSION_EPOCH; a request whose version names topics differently (by id
//!   from v13, by name before) from the session's creator is FETCH_SESSION_TOPIC_ID_ERROR.
//!   A session left empty by its forgotten partitions is closed and answered sessionless.
//! - Eviction, when all slots are taken: the least recently used session if unused for
//!   [`EVICTION_MS`]; otherwise the least valuable evictable session (not privileged before
//!   privileged, then fewest partitions) if the new one is worth more. A session younger
//!   than [`EVICTION_MS`] is evictable only by a follower's, and only if it is a
//!   consumer's.
//!
//! Lock order: the cache's lock, then a session's; never the cache's while holding a
//! session's.

mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sluice_protocol::error::ErrorCode;

use crate::metrics as m;
pub use session::{next_epoch, PartitionKey, PartitionParams, ReadSummary, Session, TopicKey};

/// The session id of "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that creates a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a sessionless fetch.
pub const FINAL_EPOCH: i32 = -1;
/// A session unused this long may be evicted by any new one (Kafka's
/// `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`).
pub const EVICTION_MS: u64 = 120_000;

/// The session part of a Fetch request.
#[derive(Clone, Copy, Debug)]
pub struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    /// Fetch v13+: topics by id.
    pub uses_topic_ids: bool,
    /// A follower's fetch (its sessions are privileged).
    pub from_follower: bool,
}

/// How one Fetch request is served.
#[derive(Debug)]
pub enum FetchContext {
    /// Fetch the request's partitions; answer with session id 0.
    Sessionless,
    /// Fetch the request's partitions; then [`FetchSessionCache::create`] may make them a
    /// session.
    Full,
    /// Fetch the session's partitions (all of them, in its order); then
    /// [`Incremental::select`] picks which the answer carries.
    Incremental(Incremental),
    /// Answer with this top-level error and nothing else.
    Error(ErrorCode),
}

/// An incremental fetch in flight.
#[derive(Debug)]
pub struct Incremental {
    pub session_id: i32,
    /// What to fetch: the session's partitions after the request's changes.
    pub partitions: Vec<(PartitionKey, PartitionParams)>,
    session: Arc<Mutex<Session>>,
    /// The session's epoch once this request was admitted; another request on the same
    /// session in the meantime changes it.
    expected_epoch: i32,
}

impl Incremental {
    /// Which partitions the answer carries (one flag per entry of `answered`, which are
    /// [`Incremental::partitions`] with their answers), or INVALID_FETCH_SESSION_EPOCH if
    /// another request used the session while this one was being served.
    pub fn select(&self, answered: &[(PartitionKey, ReadSummary)]) -> Result<Vec<bool>, ErrorCode> {
        let mut session = lock(&self.session);
        if session.epoch != self.expected_epoch {
            tracing::info!(
                session = self.session_id,
                expected = self.expected_epoch,
                found = session.epoch,
                "incremental fetch session used by another request meanwhile (a duplicate request?)"
            );
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        Ok(session.select(answered))
    }
}

/// The broker's fetch sessions.
pub struct FetchSessionCache {
    slots: usize,
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<i32, Arc<Mutex<Session>>>,
    /// Partitions over all sessions.
    partitions: usize,
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions (Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 turns sessions off.
    pub fn new(slots: usize) -> FetchSessionCache {
        FetchSessionCache {
            slots,
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Milliseconds on this cache's monotonic clock, for [`FetchSessionCache::context`]
    /// and [`FetchSessionCache::create`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How the request is served; an incremental request's changes are applied to its
    /// session here.
    pub fn context(
        &self,
        request: SessionRequest,
        requested: &[(PartitionKey, PartitionParams)],
        forgotten: &[PartitionKey],
        now_ms: u64,
    ) -> FetchContext {
        let mut inner = self.lock();
        if request.epoch == INITIAL_EPOCH || request.epoch == FINAL_EPOCH {
            if request.session_id != INVALID_SESSION_ID
                && inner.remove(request.session_id).is_some()
            {
                tracing::debug!(
                    session = request.session_id,
                    "fetch session closed by a full fetch"
                );
            }
            inner.publish();
            return if request.epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            };
        }
        let Some(session) = inner.sessions.get(&request.session_id).cloned() else {
            return FetchContext::Error(ErrorCode::FetchSessionIdNotFound);
        };
        let mut guard = lock(&session);
        if guard.epoch != request.epoch {
            return FetchContext::Error(ErrorCode::InvalidFetchSessionEpoch);
        }
        if guard.uses_topic_ids != request.uses_topic_ids {
            return FetchContext::Error(ErrorCode::FetchSessionTopicIdError);
        }
        let before = guard.len();
        guard.update(requested, forgotten);
        inner.partitions = inner.partitions + guard.len() - before;
        if guard.is_empty() {
            drop(guard);
            inner.remove(request.session_id);
            inner.publish();
            return FetchContext::Sessionless;
        }
        guard.last_used_ms = now_ms;
        guard.epoch = next_epoch(guard.epoch);
        let incremental = Incremental {
            session_id: request.session_id,
            partitions: guard.partitions(),
            expected_epoch: guard.epoch,
            session: session.clone(),
        };
        drop(guard);
        inner.publish();
        FetchContext::Incremental(incremental)
    }

    /// After a full fetch: a new session holding its partitions and their answers, if a
    /// slot is free or can be freed; its id, or [`INVALID_SESSION_ID`].
    pub fn create(
        &self,
        request: SessionRequest,
        answered: Vec<(PartitionKey, PartitionParams, ReadSummary)>,
        now_ms: u64,
    ) -> i32 {
        let mut inner = self.lock();
        let size = answered.len();
        if inner.sessions.len() >= self.slots
            && !inner.evict_one(request.from_follower, size, now_ms)
        {
            tracing::debug!(
                privileged = request.from_follower,
                size,
                "no fetch session slot free"
            );
            return INVALID_SESSION_ID;
        }
        let id = inner.new_id();
        let session = Session::new(
            id,
            request.from_follower,
            request.uses_topic_ids,
            now_ms,
            answered,
        );
        inner.partitions += session.len();
        inner.sessions.insert(id, Arc::new(Mutex::new(session)));
        inner.publish();
        id
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions over all sessions.
    pub fn partitions(&self) -> usize {
        self.lock().partitions
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn remove(&mut self, id: i32) -> Option<Arc<Mutex<Session>>> {
        let session = self.sessions.remove(&id)?;
        self.partitions -= lock(&session).len();
        Some(session)
    }

    /// A random positive id no session has.
    fn new_id(&self) -> i32 {
        loop {
            let id = rand::random_range(1..i32::MAX);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Make room for a session of `size` partitions (a follower's if `privileged`), by
    /// Kafka's rules (module docs); whether a session was evicted.
    fn evict_one(&mut self, privileged: bool, size: usize, now_ms: u64) -> bool {
        let mut least_recent: Option<(u64, i32)> = None;
        let mut least_valuable: Option<((bool, usize, i32), i32)> = None;
        for (id, session) in &self.sessions {
            let s = lock(session);
            if least_recent.is_none_or(|(used, lid)| (s.last_used_ms, s.id) < (used, lid)) {
                least_recent = Some((s.last_used_ms, *id));
            }
            let old = now_ms.saturating_sub(s.created_ms) > EVICTION_MS;
            let evictable = old || (privileged && !s.privileged);
            let key = (s.privileged, s.len(), s.id);
            if evictable && least_valuable.is_none_or(|(k, _)| key < k) {
                least_valuable = Some((key, *id));
            }
        }
        let victim = match (least_recent, least_valuable) {
            (Some((used, id)), _) if now_ms.saturating_sub(used) > EVICTION_MS => Some(id),
            (_, Some(((p, n, _), id))) if (privileged, size) > (p, n) => Some(id),
            _ => None,
        };
        let Some(id) = victim else {
            return false;
        };
        self.remove(id);
        tracing::debug!(session = id, "fetch session evicted");
        metrics::counter!(m::FETCH_SESSION_EVICTIONS_TOTAL).increment(1);
        true
    }

    fn publish(&self) {
        metrics::gauge!(m::FETCH_SESSIONS).set(self.sessions.len() as f64);
        metrics::gauge!(m::FETCH_SESSION_PARTITIONS).set(self.partitions as f64);
    }
}

fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
