//! The cluster as the APIs see it ([`cairn_api::ClusterApi`]): each route answered from the
//! local components (pinset, tracker, monitor, IPFS) or by asking every peer over the swarm
//! and merging the answers, as IPFS Cluster's `Cluster` does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use cairn_api::types::{ConnectGraph, GlobalPinInfo, GlobalRepoGc, IpfsRepoGc, PinInfo, PinInfoShort, RepoGc};
use cairn_api::{
    AddRequest, AddedOutput, Alert, ApiError, ApiFuture, ApiStream, Bandwidth, ClusterApi, Id, Metric, PinTypeFilter,
    TrackerFilter, TrackerStatus, Version,
};
use cairn_state::{Cid, Pin, PinOptions, Timestamp};
use cairn_swarm::PeerId;
use futures::StreamExt;
use futures::stream;
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterRpc, NOT_IN_PINSET};

/// `PinTracker.StatusAll` / `RecoverAll` arguments.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StatusAllArgs {
    /// The filter's status names, comma-separated (empty: all).
    #[serde(default)]
    pub filter: String,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// IPFS Cluster maps its "not in the pinset" text to 404; everything else is a 500.
fn api_error(message: String) -> ApiError {
    if message.contains(NOT_IN_PINSET) { ApiError::NotFound(message) } else { ApiError::Internal(message) }
}

impl ClusterRpc {
    /// This peer's `PinInfo` for `cid` (`recover`: re-queue it first when it failed).
    pub(crate) async fn local_pin_info(&self, cid: &Cid, recover: bool) -> Result<PinInfo, String> {
        let tracker = self.tracker()?;
        let store = self.consensus()?.state().clone();
        let lookup = cid.clone();
        let pin = tokio::task::spawn_blocking(move || store.get(&lookup))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let status =
            if recover { tracker.recover(cid, pin.as_ref()).await } else { tracker.status(cid, pin.as_ref()).await };
        Ok(self.pin_info(cid, pin.as_ref(), status))
    }

    /// Every pin's `PinInfo` here that matches `filter` (`recover`: re-queue the failed ones).
    pub(crate) async fn local_status_all(&self, filter: TrackerFilter, recover: bool) -> Result<Vec<PinInfo>, String> {
        let tracker = self.tracker()?;
        let store = self.consensus()?.state().clone();
        let filter = if recover {
            TrackerFilter::of(&[
                TrackerStatus::PinError,
                TrackerStatus::UnpinError,
                TrackerStatus::UnexpectedlyUnpinned,
            ])
        } else {
            filter
        };
        let mut found: Vec<(cairn_tracker::PinStatus, Option<Pin>)> = Vec::new();
        tracker
            .status_all(
                filter,
                |visit: &mut dyn FnMut(Pin)| crate::pinsync::walk(&store, visit),
                |status, pin| found.push((status, pin.cloned())),
            )
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for (status, pin) in found {
            let status = if recover { tracker.recover(&status.cid, pin.as_ref()).await } else { status };
            out.push(self.pin_info(&status.cid.clone(), pin.as_ref(), status));
        }
        Ok(out)
    }

    fn pin_info(&self, cid: &Cid, pin: Option<&Pin>, status: cairn_tracker::PinStatus) -> PinInfo {
        let (ipfs_id, ipfs_addresses) = self.ipfs_identity();
        PinInfo {
            cid: cid.clone(),
            name: pin.map(|p| p.options.name.clone()).unwrap_or_default(),
            peer: self.local_peer(),
            allocations: pin.map(|p| p.allocations.clone()).unwrap_or_default(),
            origins: pin.map(|p| p.options.origins.clone()).unwrap_or_default(),
            created: pin.map(|p| p.timestamp).unwrap_or_default(),
            metadata: pin.map(|p| p.options.metadata.clone()).unwrap_or_default(),
            info: PinInfoShort {
                peername: self.peername().to_string(),
                ipfs_peer_id: ipfs_id,
                ipfs_peer_addresses: ipfs_addresses,
                status: status.status,
                timestamp: status.timestamp,
                error: status.error,
                attempt_count: status.attempt_count,
                priority_pin: status.priority_pin,
            },
        }
    }

    /// `repo/gc` on this peer's IPFS daemon.
    pub(crate) async fn local_repo_gc(&self) -> RepoGc {
        let mut gc = RepoGc { peer: self.local_peer(), peername: self.peername().to_string(), ..RepoGc::default() };
        match self.ipfs() {
            Err(e) => gc.error = e,
            Ok(ipfs) => match ipfs.repo_gc().await {
                Ok(report) => {
                    gc.keys = report
                        .removed
                        .into_iter()
                        .map(|c| IpfsRepoGc { key: Some(Cid::from_raw(c)), error: String::new() })
                        .chain(report.errors.into_iter().map(|e| IpfsRepoGc { key: None, error: e }))
                        .collect();
                }
                Err(e) => gc.error = e.to_string(),
            },
        }
        gc
    }
}

/// [`ClusterApi`] over the peer's RPC surface.
pub struct Facade(pub Arc<ClusterRpc>);

impl Facade {
    /// The peers to ask for a global answer: IPFS Cluster's peerset (crdt: this peer and every
    /// peer with a fresh `ping` metric; raft: the voters).
    async fn peerset(&self) -> Vec<String> {
        self.0.peerset().await
    }

    /// Calls `method` on every peer of the peerset (this one directly), in parallel.
    pub(crate) async fn fan_out(&self, method: &str, payload: Vec<u8>) -> Vec<(String, Result<Vec<u8>, String>)> {
        self.fan_out_to(self.peerset().await, method, payload).await
    }

    /// Calls `method` on every peer of `peers` (this one directly), in parallel.
    async fn fan_out_to(
        &self,
        peers: Vec<String>,
        method: &str,
        payload: Vec<u8>,
    ) -> Vec<(String, Result<Vec<u8>, String>)> {
        let me = self.0.local_peer();
        let calls = peers.into_iter().map(|peer| {
            let (payload, method, me) = (payload.clone(), method.to_string(), me.clone());
            let rpc = self.0.clone();
            async move {
                let answer = if peer == me {
                    rpc.handle_local(&method, payload).await
                } else {
                    match peer.parse::<PeerId>() {
                        Ok(id) => rpc.call(id, &method, payload).await,
                        Err(e) => Err(e.to_string()),
                    }
                };
                (peer, answer)
            }
        });
        futures::future::join_all(calls).await
    }

    /// The peers of the peerset the peer authorizer trusts (as `/health/graph`'s trust links
    /// say): pin status is asked of, and believed from, these only.
    async fn trusted_peerset(&self) -> BTreeSet<String> {
        let mut trusted = BTreeSet::new();
        for peer in self.peerset().await {
            if self.0.trusts(&peer).await {
                trusted.insert(peer);
            }
        }
        trusted
    }

    /// Which of `cids` are in the pinset, in one pass off the async threads. When the pinset
    /// cannot be read, none is (peers' answers about it are then not believed).
    async fn pinset_members(&self, cids: BTreeSet<Cid>) -> HashSet<Cid> {
        let store = match self.0.state() {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!("pin status: the pinset cannot be read, other peers' answers are ignored: {e}");
                return HashSet::new();
            }
        };
        let found = tokio::task::spawn_blocking(move || {
            let mut found = HashSet::new();
            for cid in cids {
                if store.get(&cid)?.is_some() {
                    found.insert(cid);
                }
            }
            Ok::<_, cairn_state::StoreError>(found)
        })
        .await;
        match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!("pin status: the pinset cannot be read, other peers' answers are ignored: {e}");
                HashSet::new()
            }
            Err(e) => {
                tracing::warn!("pin status: the pinset lookup failed, other peers' answers are ignored: {e}");
                HashSet::new()
            }
        }
    }

    async fn global_status(&self, cid: &Cid, method: &str) -> Result<GlobalPinInfo, ApiError> {
        let payload = serde_json::to_vec(&crate::cluster::CidArg { cid: cid.to_string() }).map_err(internal)?;
        let trusted = self.trusted_peerset().await;
        let answers = self
            .fan_out_to(trusted.iter().cloned().collect(), method, payload)
            .await
            .into_iter()
            .map(|(peer, answer)| {
                let infos = answer.and_then(|raw| serde_json::from_slice::<PinInfo>(&raw).map_err(|e| e.to_string()));
                (peer, infos.map(|info| vec![info]))
            })
            .collect();
        let pinned = self.pinset_members(BTreeSet::from([cid.clone()])).await.contains(cid);
        // Outside the pinset, a peer may only say it does not pin the CID (IPFS Cluster's
        // answer for an unknown CID), not claim a status the cluster never asked for.
        let accept = |i: &PinInfo| i.cid == *cid && (pinned || i.info.status == TrackerStatus::Unpinned);
        let merged =
            merge_status(answers, std::slice::from_ref(cid), &self.0.local_peer(), &|p| trusted.contains(p), &accept);
        Ok(merged.into_one(cid))
    }

    async fn global_status_all(&self, filter: TrackerFilter, method: &str) -> Vec<GlobalPinInfo> {
        let names = filter.statuses().iter().map(|s| s.name()).collect::<Vec<_>>().join(",");
        let payload = serde_json::to_vec(&StatusAllArgs { filter: names }).unwrap_or_default();
        let trusted = self.trusted_peerset().await;
        let answers: Vec<StatusAnswer> = self
            .fan_out_to(trusted.iter().cloned().collect(), method, payload)
            .await
            .into_iter()
            .map(|(peer, answer)| {
                let infos =
                    answer.and_then(|raw| serde_json::from_slice::<Vec<PinInfo>>(&raw).map_err(|e| e.to_string()));
                (peer, infos)
            })
            .collect();
        let local = self.0.local_peer();
        let named: BTreeSet<Cid> = answers
            .iter()
            .filter(|(peer, _)| *peer != local)
            .filter_map(|(_, answer)| answer.as_ref().ok())
            .flat_map(|infos| infos.iter().map(|i| i.cid.clone()))
            .collect();
        let members = self.pinset_members(named).await;
        let merged = merge_status(answers, &[], &local, &|p| trusted.contains(p), &|i| members.contains(&i.cid));
        merged.pins.into_values().collect()
    }
}

/// One peer's decoded status answer: who answered (the peer called, not a field of the
/// answer) and its `PinInfo`s, or why it gave none.
type StatusAnswer = (String, Result<Vec<PinInfo>, String>);

/// Merges the peers' status answers about `listed` (always in the result) and whatever CIDs
/// the answers name. An answer is peer input: only an answerer `trusted` says yes to counts,
/// only its own entries (`peer` equal to the answerer), and, unless it is `local` (this
/// peer), only the entries `accept` says yes to (the pinset check). A trusted peer that
/// gave no answer is a cluster_error on every CID listed (IPFS Cluster).
fn merge_status(
    answers: Vec<StatusAnswer>,
    listed: &[Cid],
    local: &str,
    trusted: &dyn Fn(&str) -> bool,
    accept: &dyn Fn(&PinInfo) -> bool,
) -> Merged {
    let mut merged = Merged::default();
    for cid in listed {
        merged.pins.entry(cid.clone()).or_insert_with(|| GlobalPinInfo::new(cid.clone()));
    }
    let mut failed = Vec::new();
    for (peer, answer) in answers.into_iter().filter(|(peer, _)| trusted(peer)) {
        match answer {
            Ok(infos) => {
                infos.into_iter().filter(|i| i.peer == peer && (peer == local || accept(i))).for_each(|i| merged.add(i))
            }
            Err(e) => failed.push((peer, e)),
        }
    }
    for (peer, e) in failed {
        let cids: Vec<Cid> = merged.pins.keys().cloned().collect();
        for cid in cids {
            merged.peer_error(&cid, &peer, &e);
        }
    }
    merged
}

/// Per-peer `PinInfo`s merged into `GlobalPinInfo`s.
#[derive(Default)]
struct Merged {
    pins: BTreeMap<Cid, GlobalPinInfo>,
}

impl Merged {
    fn add(&mut self, info: PinInfo) {
        let entry = self.pins.entry(info.cid.clone()).or_insert_with(|| GlobalPinInfo::new(info.cid.clone()));
        // Top-level fields from the first answer that is not a cluster_error.
        if entry.peer_map.values().all(|p| p.status == TrackerStatus::ClusterError)
            && info.info.status != TrackerStatus::ClusterError
        {
            entry.name = info.name.clone();
            entry.allocations = info.allocations.clone();
            entry.origins = info.origins.clone();
            entry.created = info.created;
            entry.metadata = info.metadata.clone();
        }
        entry.peer_map.insert(info.peer.clone(), info.info);
    }

    fn peer_error(&mut self, cid: &Cid, peer: &str, error: &str) {
        let entry = self.pins.entry(cid.clone()).or_insert_with(|| GlobalPinInfo::new(cid.clone()));
        entry.peer_map.insert(
            peer.to_string(),
            PinInfoShort {
                status: TrackerStatus::ClusterError,
                error: error.to_string(),
                timestamp: Timestamp::now(),
                ..PinInfoShort::default()
            },
        );
    }

    fn into_one(mut self, cid: &Cid) -> GlobalPinInfo {
        self.pins.remove(cid).unwrap_or_else(|| GlobalPinInfo::new(cid.clone()))
    }
}

/// A single peer's `PinInfo` as a `GlobalPinInfo` (the `local=true` answers).
fn global_from_local(info: PinInfo) -> GlobalPinInfo {
    let mut merged = Merged::default();
    let cid = info.cid.clone();
    merged.add(info);
    merged.into_one(&cid)
}

fn ready<T: Send + 'static>(result: Result<T, ApiError>) -> ApiFuture<'static, T> {
    Box::pin(std::future::ready(result))
}

impl ClusterApi for Facade {
    fn id(&self) -> ApiFuture<'_, Id> {
        Box::pin(async move { self.0.api_id().await.map_err(internal) })
    }

    fn version(&self) -> ApiFuture<'_, Version> {
        ready(Ok(Version { version: crate::cluster::VERSION.to_string() }))
    }

    fn peers(&self) -> ApiStream<Id> {
        let facade = Facade(self.0.clone());
        stream::once(async move {
            let answers = facade.fan_out("Cluster.ID", Vec::new()).await;
            answers
                .into_iter()
                .map(|(peer, answer)| {
                    match answer.and_then(|raw| serde_json::from_slice::<Id>(&raw).map_err(|e| e.to_string())) {
                        Ok(id) => Ok(id),
                        // IPFS Cluster lists an unreachable peer with its error.
                        Err(e) => Ok(Id { id: peer, error: e, ..Id::default() }),
                    }
                })
                .collect::<Vec<_>>()
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn peer_add(&self, peer_id: String) -> ApiFuture<'_, Id> {
        Box::pin(async move {
            self.0.add_peer(&peer_id).await.map_err(api_error)?;
            Ok(Id { id: peer_id, ..Id::default() })
        })
    }

    fn peer_remove(&self, peer_id: String) -> ApiFuture<'_, ()> {
        Box::pin(async move { self.0.remove_peer(&peer_id).await.map_err(api_error) })
    }

    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin> {
        Box::pin(async move { self.0.pin(Pin::with_options(cid, options)).await.map_err(api_error) })
    }

    fn pin_path(&self, path: String, options: PinOptions) -> ApiFuture<'_, Pin> {
        Box::pin(async move {
            let cid = self.0.resolve(&path).await.map_err(api_error)?;
            self.0.pin(Pin::with_options(cid, options)).await.map_err(api_error)
        })
    }

    fn unpin(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async move { self.0.unpin(cid).await.map_err(api_error) })
    }

    fn unpin_path(&self, path: String) -> ApiFuture<'_, Pin> {
        Box::pin(async move {
            let cid = self.0.resolve(&path).await.map_err(api_error)?;
            self.0.unpin(cid).await.map_err(api_error)
        })
    }

    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        let store = match self.0.state() {
            Ok(store) => store,
            Err(e) => return stream::once(std::future::ready(Err(internal(e)))).boxed(),
        };
        // Page by page from the store: memory stays bounded by one page.
        stream::unfold(Some(None::<Cid>), move |cursor| {
            let store = store.clone();
            async move {
                let after = cursor?;
                let page = tokio::task::spawn_blocking(move || store.page(after.as_ref(), 1_000)).await;
                match page {
                    Ok(Ok(page)) => {
                        let pins: Vec<Result<Pin, ApiError>> =
                            page.pins.into_iter().filter(|p| filter.matches(p.pin_type)).map(Ok).collect();
                        Some((stream::iter(pins), page.next.map(Some)))
                    }
                    Ok(Err(e)) => Some((stream::iter(vec![Err(internal(e))]), None)),
                    Err(e) => Some((stream::iter(vec![Err(internal(e))]), None)),
                }
            }
        })
        .flatten()
        .boxed()
    }

    fn allocation(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async move {
            let store = self.0.state().map_err(internal)?;
            let pin =
                tokio::task::spawn_blocking(move || store.get(&cid)).await.map_err(internal)?.map_err(internal)?;
            pin.ok_or_else(|| ApiError::NotFound(NOT_IN_PINSET.to_string()))
        })
    }

    fn status_all(&self, filter: TrackerFilter, local: bool) -> ApiStream<GlobalPinInfo> {
        let facade = Facade(self.0.clone());
        stream::once(async move {
            if local {
                match facade.0.local_status_all(filter, false).await {
                    Ok(infos) => infos.into_iter().map(|i| Ok(global_from_local(i))).collect(),
                    Err(e) => vec![Err(internal(e))],
                }
            } else {
                facade.global_status_all(filter, "PinTracker.StatusAll").await.into_iter().map(Ok).collect::<Vec<_>>()
            }
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn status_cids(&self, cids: Vec<Cid>, local: bool) -> ApiStream<GlobalPinInfo> {
        let facade = Facade(self.0.clone());
        stream::iter(cids)
            .then(move |cid| {
                let facade = Facade(facade.0.clone());
                async move {
                    if local {
                        facade.0.local_pin_info(&cid, false).await.map(global_from_local).map_err(internal)
                    } else {
                        facade.global_status(&cid, "PinTracker.Status").await
                    }
                }
            })
            .boxed()
    }

    fn status(&self, cid: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        Box::pin(async move {
            if local {
                self.0.local_pin_info(&cid, false).await.map(global_from_local).map_err(internal)
            } else {
                self.global_status(&cid, "PinTracker.Status").await
            }
        })
    }

    fn recover(&self, cid: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        Box::pin(async move {
            if local {
                self.0.local_pin_info(&cid, true).await.map(global_from_local).map_err(internal)
            } else {
                self.global_status(&cid, "PinTracker.Recover").await
            }
        })
    }

    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo> {
        let facade = Facade(self.0.clone());
        stream::once(async move {
            if local {
                match facade.0.local_status_all(TrackerFilter::ALL, true).await {
                    Ok(infos) => infos.into_iter().map(|i| Ok(global_from_local(i))).collect(),
                    Err(e) => vec![Err(internal(e))],
                }
            } else {
                facade
                    .global_status_all(TrackerFilter::ALL, "PinTracker.RecoverAll")
                    .await
                    .into_iter()
                    .map(Ok)
                    .collect()
            }
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn ipfs_gc(&self, local: bool) -> ApiFuture<'_, GlobalRepoGc> {
        Box::pin(async move {
            if local {
                return Ok(GlobalRepoGc::from_local(self.0.local_repo_gc().await));
            }
            let mut out = GlobalRepoGc::default();
            for (peer, answer) in self.fan_out("IPFSConnector.RepoGC", Vec::new()).await {
                let gc = answer
                    .and_then(|raw| serde_json::from_slice::<RepoGc>(&raw).map_err(|e| e.to_string()))
                    .unwrap_or_else(|e| RepoGc { peer: peer.clone(), error: e, ..RepoGc::default() });
                out.peer_map.insert(peer, gc);
            }
            Ok(out)
        })
    }

    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph> {
        Box::pin(async move {
            let mut graph = ConnectGraph { cluster_id: self.0.local_peer(), ..ConnectGraph::default() };
            for (peer, answer) in self.fan_out("Cluster.Links", Vec::new()).await {
                let Ok(links) = answer.and_then(|raw| serde_json::from_slice::<Links>(&raw).map_err(|e| e.to_string()))
                else {
                    continue;
                };
                graph.id_to_peername.insert(peer.clone(), links.peername);
                graph.cluster_trust_links.insert(peer.clone(), self.0.trusts(&peer).await);
                if !links.ipfs_id.is_empty() {
                    graph.cluster_to_ipfs.insert(peer.clone(), links.ipfs_id.clone());
                    graph.ipfs_links.insert(links.ipfs_id, links.ipfs_peers);
                }
                graph.cluster_links.insert(peer, links.cluster_peers);
            }
            Ok(graph)
        })
    }

    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>> {
        Box::pin(async move {
            let alerts = self.0.monitor_alerts();
            serde_json::from_value(serde_json::to_value(alerts).map_err(internal)?).map_err(internal)
        })
    }

    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>> {
        // Per-protocol byte counters are not collected yet; the answer is an empty map.
        ready(Ok(BTreeMap::new()))
    }

    fn metric_names(&self) -> ApiFuture<'_, Vec<String>> {
        ready(Ok(self.0.monitor_metric_names()))
    }

    fn metrics(&self, name: String) -> ApiFuture<'_, Vec<Metric>> {
        Box::pin(async move { Ok(self.0.monitor_metrics(&name)) })
    }

    fn add(&self, request: AddRequest) -> ApiStream<AddedOutput> {
        crate::add::add(self.0.clone(), request)
    }
}

/// `Cluster.Links`: a peer's links for `/health/graph`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Links {
    /// The peer's name.
    pub peername: String,
    /// Cluster peers it is connected to.
    pub cluster_peers: Vec<String>,
    /// Its IPFS daemon's id (empty when unknown).
    pub ipfs_id: String,
    /// The IPFS daemon's swarm peers.
    pub ipfs_peers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    /// The empty identity CID: not in the pinset of these tests.
    const STRAY: &str = "bafkqaaa";

    fn cid(text: &str) -> Cid {
        Cid::parse(text).expect("cid")
    }

    fn info(cid_text: &str, peer: &str, status: TrackerStatus) -> PinInfo {
        PinInfo {
            cid: cid(cid_text),
            name: format!("named by {peer}"),
            peer: peer.to_string(),
            allocations: Vec::new(),
            origins: Vec::new(),
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            info: PinInfoShort { peername: peer.to_string(), status, ..PinInfoShort::default() },
        }
    }

    fn in_pinset(i: &PinInfo) -> bool {
        i.cid == cid(PINNED)
    }

    fn peers_of(merged: &Merged, cid_text: &str) -> Vec<String> {
        merged.pins.get(&cid(cid_text)).map(|g| g.peer_map.keys().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn an_answer_counts_only_for_the_peer_that_gave_it() {
        // "b" answers with an entry claiming to be "c" (and its own): only its own counts.
        let answers = vec![
            ("a".to_string(), Ok(vec![info(PINNED, "a", TrackerStatus::Pinned)])),
            (
                "b".to_string(),
                Ok(vec![info(PINNED, "c", TrackerStatus::Pinned), info(PINNED, "b", TrackerStatus::PinError)]),
            ),
        ];
        let merged = merge_status(answers, &[], "a", &|_| true, &in_pinset);
        assert_eq!(peers_of(&merged, PINNED), ["a", "b"]);
        assert_eq!(merged.pins[&cid(PINNED)].peer_map["b"].status, TrackerStatus::PinError);
    }

    #[test]
    fn remote_entries_for_cids_outside_the_pinset_are_dropped() {
        // A peer whose writes were refused still lists its own pins: they are not the cluster's.
        let answers = vec![
            ("a".to_string(), Ok(vec![info(PINNED, "a", TrackerStatus::Pinned)])),
            (
                "b".to_string(),
                Ok(vec![info(PINNED, "b", TrackerStatus::Pinned), info(STRAY, "b", TrackerStatus::Pinned)]),
            ),
        ];
        let merged = merge_status(answers, &[], "a", &|_| true, &in_pinset);
        assert_eq!(merged.pins.keys().cloned().collect::<Vec<_>>(), [cid(PINNED)]);
        assert_eq!(peers_of(&merged, PINNED), ["a", "b"]);
    }

    #[test]
    fn this_peers_own_entries_are_kept_outside_the_pinset() {
        // An unpin in flight: the CID left the pinset but this peer still reports it.
        let answers = vec![("a".to_string(), Ok(vec![info(STRAY, "a", TrackerStatus::Unpinning)]))];
        let merged = merge_status(answers, &[], "a", &|_| true, &in_pinset);
        assert_eq!(peers_of(&merged, STRAY), ["a"]);
    }

    #[test]
    fn untrusted_answerers_are_ignored_even_their_failures() {
        let answers = vec![
            ("a".to_string(), Ok(vec![info(PINNED, "a", TrackerStatus::Pinned)])),
            ("evil".to_string(), Ok(vec![info(PINNED, "evil", TrackerStatus::PinError)])),
            ("evil2".to_string(), Err("unreachable".to_string())),
            ("down".to_string(), Err("unreachable".to_string())),
        ];
        let trusted = |p: &str| p != "evil" && p != "evil2";
        let merged = merge_status(answers, &[], "a", &trusted, &in_pinset);
        assert_eq!(peers_of(&merged, PINNED), ["a", "down"]);
        assert_eq!(merged.pins[&cid(PINNED)].peer_map["down"].status, TrackerStatus::ClusterError);
        // Top-level fields come from a trusted answer.
        assert_eq!(merged.pins[&cid(PINNED)].name, "named by a");
    }

    #[test]
    fn a_listed_cid_gets_every_failure_even_without_answers() {
        let answers = vec![("b".to_string(), Err("timeout".to_string()))];
        let merged = merge_status(answers, &[cid(PINNED)], "a", &|_| true, &in_pinset);
        assert_eq!(peers_of(&merged, PINNED), ["b"]);
    }
}
