//! The commit path: reaching the leader, doing a write or membership change as the leader, and
//! batching concurrent pin operations into one log entry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::{ConsensusError, PeerNetwork};
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::metrics::WaitError;
use openraft::{ChangeMembers, Raft};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::network::FORWARD;
use crate::settings::RaftSettings;
use crate::types::{PeerNode, PinBatch, PinOp, TypeConfig, node_id};

/// Most operations in one log entry. An AppendEntries message carries up to
/// `max_append_entries` entries, so this bounds it too (64 × 64 pins of ≈ 300 bytes ≈ 1.2 MB),
/// and openraft must send it within one heartbeat interval.
const MAX_BATCH_OPS: usize = 64;

/// Batches a peer has in flight at once. More than one lets a batch fill while others are
/// being flushed, replicated and applied; a few are enough to keep every stage busy.
const MAX_IN_FLIGHT_BATCHES: usize = 4;

/// What a follower asks the leader to do (`Raft.Forward`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardRequest {
    /// Commit these pin operations (one log entry).
    Write(Vec<PinOp>),
    /// Add a peer (as learner, then voter).
    AddPeer(String),
    /// Remove a voter.
    RmPeer(String),
}

/// Why the leader (or this peer, acting as one) did not do a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardError {
    /// The callee is not the leader (it may know who is).
    NotLeader { leader: Option<String> },
    /// Not done within the bound (a quorum may be unreachable); it may still commit later.
    Timeout,
    /// The callee's raft is stopping.
    ShuttingDown,
    /// Refused for good (e.g. removing the last voter).
    Failed(String),
}

/// Why one commit attempt failed. Cloneable: one batch's outcome answers all its callers.
#[derive(Debug, Clone)]
pub(crate) enum AttemptError {
    /// Worth another attempt (leader changed, call failed or timed out).
    Retry { peer: String, reason: String },
    /// No leader within `wait_for_leader_timeout` (also worth another attempt).
    NoLeader { waited_ms: u64 },
    /// This peer is stopping.
    ShuttingDown,
    /// Refused for good.
    Refused(String),
}

impl AttemptError {
    /// Whether another attempt may succeed.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, AttemptError::Retry { .. } | AttemptError::NoLeader { .. })
    }
}

impl From<AttemptError> for ConsensusError {
    fn from(e: AttemptError) -> Self {
        match e {
            AttemptError::Retry { peer, reason } => ConsensusError::Network { peer, reason },
            AttemptError::NoLeader { waited_ms } => ConsensusError::NoLeader { waited_ms },
            AttemptError::ShuttingDown => ConsensusError::ShuttingDown,
            AttemptError::Refused(reason) => ConsensusError::Refused(reason),
        }
    }
}

type ClientError = RaftError<u64, ClientWriteError<u64, PeerNode>>;

fn client_error(e: ClientError) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ForwardError::NotLeader { leader: f.leader_node.map(|n| n.peer_id) }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => ForwardError::Failed(c.to_string()),
        RaftError::Fatal(Fatal::Stopped) => ForwardError::ShuttingDown,
        RaftError::Fatal(f) => ForwardError::Failed(f.to_string()),
    }
}

/// What the commit path and the RPC server share: the raft handle and how to reach peers.
pub(crate) struct Shared {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) network: Arc<dyn PeerNetwork>,
    pub(crate) settings: RaftSettings,
    pub(crate) local_peer: String,
    pub(crate) local_id: u64,
}

impl Shared {
    /// The leader's node id and peer id, if one is known.
    pub(crate) fn known_leader(&self) -> Option<(u64, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some((id, node.peer_id.clone()))
    }

    /// The leader, waiting up to `wait_for_leader_timeout` for one.
    pub(crate) async fn wait_for_leader(&self) -> Result<(u64, String), AttemptError> {
        if let Some(leader) = self.known_leader() {
            return Ok(leader);
        }
        let timeout = self.settings.wait_for_leader_timeout;
        let waited = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|id| m.membership_config.membership().get_node(&id).is_some()),
                "a raft leader",
            )
            .await;
        let no_leader = || AttemptError::NoLeader { waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) };
        match waited {
            Ok(_) => self.known_leader().ok_or_else(no_leader),
            Err(WaitError::Timeout(..)) => Err(no_leader()),
            Err(WaitError::ShuttingDown) => Err(AttemptError::ShuttingDown),
        }
    }

    /// How long one attempt may take: membership changes wait for a learner to catch up.
    fn bound(&self, request: &ForwardRequest) -> Duration {
        match request {
            ForwardRequest::Write(_) => self.settings.network_timeout,
            ForwardRequest::AddPeer(_) | ForwardRequest::RmPeer(_) => self.settings.network_timeout * 3,
        }
    }

    /// Does `request` as the leader (openraft answers `NotLeader` when this peer is not).
    pub(crate) async fn execute(&self, request: ForwardRequest) -> Result<(), ForwardError> {
        let bound = self.bound(&request);
        let work = async {
            match request {
                ForwardRequest::Write(ops) => {
                    self.raft.client_write(PinBatch(ops)).await.map(|_| ()).map_err(client_error)
                }
                ForwardRequest::AddPeer(peer) => self.add_as_leader(peer).await,
                ForwardRequest::RmPeer(peer) => self.remove_as_leader(peer).await,
            }
        };
        tokio::time::timeout(bound, work).await.unwrap_or(Err(ForwardError::Timeout))
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }

    async fn add_as_leader(&self, peer: String) -> Result<(), ForwardError> {
        let id = node_id(&peer);
        if self.voters().contains(&id) {
            return Ok(());
        }
        // Blocking: returns once the learner's log is close to the leader's, so promoting it
        // does not stall commits on a quorum member that is still catching up.
        self.raft.add_learner(id, PeerNode { peer_id: peer }, true).await.map_err(client_error)?;
        let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.raft.change_membership(promote, false).await.map_err(client_error)?;
        Ok(())
    }

    async fn remove_as_leader(&self, peer: String) -> Result<(), ForwardError> {
        let id = node_id(&peer);
        let voters = self.voters();
        if !voters.contains(&id) {
            return Ok(());
        }
        if voters.len() == 1 {
            return Err(ForwardError::Failed(format!("{peer} is the last raft voter; it cannot be removed")));
        }
        let remove = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        self.raft.change_membership(remove, false).await.map_err(client_error)?;
        Ok(())
    }

    /// One attempt at `request`: done here when this peer leads, else forwarded to the leader.
    pub(crate) async fn attempt(&self, request: &ForwardRequest) -> Result<(), AttemptError> {
        let (leader_id, leader) = self.wait_for_leader().await?;
        let local = leader_id == self.local_id;
        let outcome = if local { self.execute(request.clone()).await } else { self.forward(&leader, request).await? };
        outcome.map_err(|e| match e {
            ForwardError::NotLeader { leader: hint } => AttemptError::Retry {
                peer: leader.clone(),
                reason: format!("no longer the raft leader (new leader: {})", hint.as_deref().unwrap_or("unknown")),
            },
            ForwardError::Timeout => AttemptError::Retry {
                peer: leader.clone(),
                reason: format!("not committed within {:?}", self.bound(request)),
            },
            ForwardError::ShuttingDown if local => AttemptError::ShuttingDown,
            ForwardError::ShuttingDown => {
                AttemptError::Retry { peer: leader.clone(), reason: "raft leader is stopping".into() }
            }
            ForwardError::Failed(reason) => AttemptError::Refused(reason),
        })
    }

    /// Sends `request` to the leader; the outer error is the call's, the inner one the leader's.
    async fn forward(&self, leader: &str, request: &ForwardRequest) -> Result<Result<(), ForwardError>, AttemptError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| AttemptError::Refused(format!("cannot encode the request: {e}")))?;
        let bound = self.bound(request);
        let answer = match tokio::time::timeout(bound, self.network.call(leader, FORWARD, payload)).await {
            Err(_) => {
                return Err(AttemptError::Retry { peer: leader.into(), reason: format!("no answer within {bound:?}") });
            }
            Ok(Err(reason)) => return Err(AttemptError::Retry { peer: leader.into(), reason }),
            Ok(Ok(answer)) => answer,
        };
        serde_json::from_slice(&answer)
            .map_err(|e| AttemptError::Refused(format!("undecodable answer from the leader {leader}: {e}")))
    }

    /// Serves `Raft.Forward`: the answer is JSON of `Result<(), ForwardError>`.
    pub(crate) async fn serve_forward(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let request: ForwardRequest =
            serde_json::from_slice(payload).map_err(|e| format!("malformed {FORWARD} request: {e}"))?;
        let outcome = self.execute(request).await;
        serde_json::to_vec(&outcome).map_err(|e| e.to_string())
    }
}

struct Pending {
    op: PinOp,
    reply: oneshot::Sender<Result<(), AttemptError>>,
}

/// Groups the pin operations committed concurrently on this peer into batches, one log entry
/// (or one forwarded call) each.
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the batching task (it ends when the batcher is dropped or the task aborted).
    pub(crate) fn spawn(shared: Arc<Shared>) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Batcher { tx }, tokio::spawn(run_batches(shared, rx)))
    }

    /// One attempt at committing `op`, in whatever batch it lands in.
    pub(crate) async fn attempt(&self, op: PinOp) -> Result<(), AttemptError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Pending { op, reply }).map_err(|_| AttemptError::ShuttingDown)?;
        answer.await.map_err(|_| AttemptError::ShuttingDown)?
    }
}

async fn run_batches(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BATCHES));
    while let Some(first) = rx.recv().await {
        // While every slot is busy, arriving operations wait in the channel and join the next
        // batch: the busier the cluster, the larger the batches.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        // Callers answered by the previous batch commit their next operations right away; one
        // yield lets them reach the channel, instead of this batch leaving with only the first.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let (ops, replies): (Vec<PinOp>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
            let outcome = shared.attempt(&ForwardRequest::Write(ops)).await;
            drop(slot);
            for reply in replies {
                // A caller that gave up (shutdown) needs no answer.
                let _ = reply.send(outcome.clone());
            }
        });
    }
}
