//! How Raft messages travel between controller nodes.
//!
//! openraft asks a [`RaftNetworkFactory`] for one client per peer and calls three RPCs on it:
//! `append_entries` (replication and heartbeats), `vote` and `install_snapshot` (a snapshot
//! in chunks, for a follower too far behind the leader's log). The receiving side hands each
//! request to its own [`Raft`](openraft::Raft) handle and returns the answer.
//!
//! [`LocalRouter`] does that in process: it holds every node's Raft handle and calls the
//! target directly. In-process cluster tests use it, and it can *isolate* a node (every RPC
//! to or from it fails as unreachable) to simulate a partition or a crash. The TCP transport
//! over the broker's internal listener will implement the same two traits.
//!
//! Errors: an absent or isolated target is `Unreachable` (openraft backs off and retries); an
//! error returned by the target's Raft is a `RemoteError`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};

use super::{ControllerRaft, NodeId, TypeConfig};

#[derive(Default)]
struct Routes {
    nodes: BTreeMap<NodeId, ControllerRaft>,
    isolated: BTreeSet<NodeId>,
}

/// An in-process network: every registered node reaches every other directly.
#[derive(Clone, Default)]
pub struct LocalRouter {
    routes: Arc<Mutex<Routes>>,
}

impl std::fmt::Debug for LocalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.lock();
        f.debug_struct("LocalRouter")
            .field("nodes", &routes.nodes.keys().collect::<Vec<_>>())
            .field("isolated", &routes.isolated)
            .finish()
    }
}

impl LocalRouter {
    pub fn new() -> LocalRouter {
        LocalRouter::default()
    }

    /// Make `raft` reachable as `id` (replacing an earlier node with that id: a restart).
    pub fn register(&self, id: NodeId, raft: ControllerRaft) {
        let mut routes = self.lock();
        routes.nodes.insert(id, raft);
        routes.isolated.remove(&id);
    }

    /// Make `id` unreachable and forget it (a crash).
    pub fn remove(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// Cut `id` off from everyone, in both directions (a partition).
    pub fn isolate(&self, id: NodeId) {
        self.lock().isolated.insert(id);
    }

    /// Undo [`LocalRouter::isolate`].
    pub fn heal(&self, id: NodeId) {
        self.lock().isolated.remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The target's Raft handle, if `source` can reach it.
    fn route(&self, source: NodeId, target: NodeId) -> Result<ControllerRaft, Unreachable> {
        let routes = self.lock();
        if routes.isolated.contains(&source) || routes.isolated.contains(&target) {
            return Err(unreachable(format!("{source} -> {target} is partitioned")));
        }
        routes
            .nodes
            .get(&target)
            .cloned()
            .ok_or_else(|| unreachable(format!("node {target} is not running")))
    }

    /// A factory for node `source`'s outgoing connections.
    pub fn factory_for(&self, source: NodeId) -> LocalNetworkFactory {
        LocalNetworkFactory {
            router: self.clone(),
            source,
        }
    }
}

fn unreachable(reason: String) -> Unreachable {
    Unreachable::new(&io::Error::new(io::ErrorKind::ConnectionRefused, reason))
}

/// Creates [`LocalConnection`]s from one node.
#[derive(Debug, Clone)]
pub struct LocalNetworkFactory {
    router: LocalRouter,
    source: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for LocalNetworkFactory {
    type Network = LocalConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> LocalConnection {
        LocalConnection {
            router: self.router.clone(),
            source: self.source,
            target,
        }
    }
}

/// One node's connection to one peer, through the router.
#[derive(Debug)]
pub struct LocalConnection {
    router: LocalRouter,
    source: NodeId,
    target: NodeId,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl LocalConnection {
    fn target_raft(&self) -> Result<ControllerRaft, Unreachable> {
        self.router.route(self.source, self.target)
    }

    /// The answer must cross the network too: a node isolated while the call ran loses it.
    fn check_return_path(&self) -> Result<(), NetworkError> {
        self.router
            .route(self.target, self.source)
            .map(|_| ())
            .map_err(|error| NetworkError::new(&error))
    }
}

impl RaftNetwork<TypeConfig> for LocalConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let raft = self.target_raft().map_err(RPCError::Unreachable)?;
        let response = raft
            .append_entries(request)
            .await
            .map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))?;
        self.check_return_path().map_err(RPCError::Network)?;
        Ok(response)
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let raft = self.target_raft().map_err(RPCError::Unreachable)?;
        let response = raft
            .install_snapshot(request)
            .await
            .map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))?;
        self.check_return_path().map_err(RPCError::Network)?;
        Ok(response)
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let raft = self.target_raft().map_err(RPCError::Unreachable)?;
        let response = raft
            .vote(request)
            .await
            .map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))?;
        self.check_return_path().map_err(RPCError::Network)?;
        Ok(response)
    }
}
