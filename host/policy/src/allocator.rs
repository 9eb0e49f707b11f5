//! Allocator plugins: choose the peers of a pin. Every failure fails the allocation with
//! a message saying why.

use std::collections::{HashMap, HashSet};

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::allocator_world::{AllocatorPlugin as Bindings, AllocatorPluginPre};
use crate::bindings::types::{AllocationRequest, MetricColumn, MetricEntry, PinInfo};
use crate::error::CallFailure;
use crate::instance::{HostState, Kind, Loaded, PluginStats};
use crate::runtime::PluginKind;

/// Longest error message accepted from a plugin.
const MAX_ERROR: usize = 4096;

pub(crate) struct AllocatorKind;

impl Kind for AllocatorKind {
    const KIND: PluginKind = PluginKind::Allocator;
    type Pre = AllocatorPluginPre<HostState>;
    type Bindings = Bindings;

    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        AllocatorPluginPre::new(pre)
    }

    async fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        pre.instantiate_async(store).await
    }

    async fn init(b: &Bindings, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), String>> {
        b.cairn_policy_allocator().call_init(store).await
    }
}

/// A loaded allocator plugin. Cheap to clone; safe to call from many tasks at once.
#[derive(Clone)]
pub struct AllocatorPlugin(Loaded<AllocatorKind>);

impl AllocatorPlugin {
    pub(crate) fn new(loaded: Loaded<AllocatorKind>) -> Self {
        AllocatorPlugin(loaded)
    }

    /// The plugin's name for logs.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Call counters.
    pub fn stats(&self) -> PluginStats {
        self.0.stats()
    }

    /// The ordered allocation, or the message the user gets: the plugin's own (e.g. "not
    /// enough peers ...") or, when the plugin failed, what went wrong.
    pub async fn allocate(&self, req: &AllocationRequest) -> Result<Vec<String>, String> {
        match self.try_allocate(req).await {
            Ok(answer) => answer,
            Err(failure) => Err(format!("allocation failed: allocator plugin {} {failure}", self.name())),
        }
    }

    /// The plugin's answer, or the failed call.
    pub async fn try_allocate(&self, req: &AllocationRequest) -> Result<Result<Vec<String>, String>, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_allocator().call_allocate(store, req).await;
        let answer = self.0.finish(lease, result)?;
        check_answer(req, &answer).map_err(|why| self.0.malformed(why))?;
        Ok(answer)
    }
}

/// One peer's metric as the monitor holds it (IPFS Cluster's `Metric`); rows of these
/// build an [`AllocationRequest`], whose metrics travel as columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetric {
    pub name: String,
    pub value: String,
    pub weight: i64,
    pub partitionable: bool,
    /// Expiry, Unix nanoseconds.
    pub expire: i64,
}

impl PeerMetric {
    /// A metric that never expires.
    pub fn new(name: &str, value: &str, weight: i64, partitionable: bool) -> Self {
        PeerMetric { name: name.into(), value: value.into(), weight, partitionable, expire: i64::MAX }
    }
}

impl AllocationRequest {
    /// A request from per-peer rows: `candidates` in order, each with its metrics. Columns
    /// appear in the order their names are first seen.
    pub fn from_rows(
        pin: PinInfo,
        current: Vec<String>,
        priority: Vec<String>,
        candidates: Vec<(String, Vec<PeerMetric>)>,
    ) -> Self {
        // Per column: the column and an index of its distinct values.
        let mut columns: Vec<(MetricColumn, HashMap<String, u32>)> = Vec::new();
        let mut ids = Vec::with_capacity(candidates.len());
        for (peer, (id, row)) in candidates.into_iter().enumerate() {
            ids.push(id);
            for m in row {
                let at = match columns.iter().position(|(c, _)| c.name == m.name) {
                    Some(at) => at,
                    None => {
                        let column = MetricColumn { name: m.name, distinct_values: Vec::new(), entries: Vec::new() };
                        columns.push((column, HashMap::new()));
                        columns.len() - 1
                    }
                };
                let (column, index) = &mut columns[at];
                let value = *index.entry(m.value).or_insert_with_key(|v| {
                    column.distinct_values.push(v.clone());
                    (column.distinct_values.len() - 1) as u32
                });
                column.entries.push(MetricEntry {
                    peer: peer as u32,
                    value,
                    weight: m.weight,
                    partitionable: m.partitionable,
                    expire: m.expire,
                });
            }
        }
        let metrics = columns.into_iter().map(|(c, _)| c).collect();
        AllocationRequest { pin, current, priority, candidates: ids, metrics }
    }
}

/// Every peer returned must be a current allocation or a candidate, at most once.
fn check_answer(req: &AllocationRequest, answer: &Result<Vec<String>, String>) -> Result<(), String> {
    match answer {
        Err(message) if message.len() > MAX_ERROR => {
            Err(format!("error message is {} bytes, over the {MAX_ERROR}-byte limit", message.len()))
        }
        Err(_) => Ok(()),
        Ok(peers) => {
            let known: HashSet<&str> =
                req.current.iter().map(String::as_str).chain(req.candidates.iter().map(String::as_str)).collect();
            if peers.len() > known.len() {
                return Err(format!("{} peers returned but only {} were offered", peers.len(), known.len()));
            }
            let mut seen = HashSet::with_capacity(peers.len());
            for peer in peers {
                if !known.contains(peer.as_str()) {
                    return Err(format!("peer {peer:?} was neither a candidate nor a current allocation"));
                }
                if !seen.insert(peer.as_str()) {
                    return Err(format!("peer {peer} returned twice"));
                }
            }
            Ok(())
        }
    }
}
