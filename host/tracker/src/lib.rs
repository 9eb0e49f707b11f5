//! Cairn's pin tracker (IPFS Cluster's stateless tracker, reference §9): it turns the pinset
//! into IPFS pin and unpin operations for the pins allocated to this peer, and reports each
//! pin's status from the operations in flight plus what IPFS has pinned.
//!
//! - Pin operations wait in a priority queue (young pins with few attempts) or the normal
//!   queue, served by `concurrent_pins` workers, priority first; unpins have one worker.
//! - At most `max_pin_queue_size` pins wait; beyond that a pin goes straight to `pin_error`
//!   ("queue is full").
//! - A failed operation stays, with its error and attempt count, until `recover` (or the
//!   periodic recover the daemon schedules) queues it again or a newer operation replaces it.
//! - A finished operation is dropped: from then on the status comes from the pinset and IPFS
//!   (`pinned`, `remote`, `unexpectedly_unpinned`, `unpinned`), as in IPFS Cluster's
//!   stateless tracker, so nothing but the operations in flight is kept in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cairn_state::{Cid, Pin, PinMode, PinType, Timestamp};
use cairn_telemetry::{PinStates, Telemetry, TrackerMetrics};
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

pub use cairn_state::{TrackerFilter, TrackerStatus};

/// How IPFS holds a CID (`pin/ls` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpfsPinType {
    /// The whole DAG.
    Recursive,
    /// The root block only.
    Direct,
    /// Held because a recursive pin includes it.
    Indirect,
}

/// What the tracker needs from the IPFS connector.
pub trait IpfsPins: Send + Sync + 'static {
    /// Pins `cid` (the connector applies `pin_timeout` to the pin's progress).
    fn pin(&self, cid: &Cid, mode: PinMode) -> BoxFuture<'_, Result<(), String>>;
    /// Unpins `cid`; "not pinned" is success.
    fn unpin(&self, cid: &Cid) -> BoxFuture<'_, Result<(), String>>;
    /// How IPFS holds `cid` (`None`: not pinned).
    fn pin_ls(&self, cid: &Cid) -> BoxFuture<'_, Result<Option<IpfsPinType>, String>>;
    /// Every pinned CID (recursive and direct; indirect ones need not be listed), keyed by the
    /// CID's multihash bytes: IPFS daemons key pins by multihash and may list a CID in
    /// another version or codec than the one pinned.
    fn pin_ls_all(&self) -> BoxFuture<'_, Result<HashMap<Vec<u8>, IpfsPinType>, String>>;
}

/// The tracker's settings (`pin_tracker.stateless`, plus who this peer is).
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// This peer's id: pins allocated to it are pinned here.
    pub peer: String,
    /// `concurrent_pins`.
    pub concurrent_pins: usize,
    /// `priority_pin_max_age`.
    pub priority_pin_max_age: Duration,
    /// `priority_pin_max_retries`.
    pub priority_pin_max_retries: u32,
    /// `max_pin_queue_size`.
    pub max_pin_queue_size: usize,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            peer: String::new(),
            concurrent_pins: 10,
            priority_pin_max_age: Duration::from_secs(24 * 3600),
            priority_pin_max_retries: 5,
            max_pin_queue_size: 1_000_000,
        }
    }
}

/// One pin's status on this peer: the per-peer fields of IPFS Cluster's `PinInfo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PinStatus {
    /// The CID.
    pub cid: Cid,
    /// The status.
    pub status: TrackerStatus,
    /// Why it failed, when it did.
    pub error: String,
    /// How many times the current operation was attempted.
    pub attempt_count: u32,
    /// Whether the operation is (or was) in the priority queue.
    pub priority_pin: bool,
    /// When this status was set.
    pub timestamp: Timestamp,
}

impl PinStatus {
    fn plain(cid: Cid, status: TrackerStatus) -> Self {
        PinStatus {
            cid,
            status,
            error: String::new(),
            attempt_count: 0,
            priority_pin: false,
            timestamp: Timestamp::now(),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct TrackerStats {
    /// Pins IPFS completed.
    pub pins_done: AtomicU64,
    /// Pin attempts that failed.
    pub pin_errors: AtomicU64,
    /// Unpins IPFS completed.
    pub unpins_done: AtomicU64,
    /// Unpin attempts that failed.
    pub unpin_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pin,
    Unpin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    InProgress,
    Failed,
}

#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    phase: Phase,
    mode: PinMode,
    /// Distinguishes this operation from a newer one on the same CID.
    generation: u64,
    error: String,
    attempts: u32,
    priority: bool,
    timestamp: Timestamp,
    /// When the pin entered the pinset (decides priority).
    pinned_at: Timestamp,
    /// Unpin only if IPFS has it pinned (a pin that is remote here was most likely never
    /// pinned here); an IPFS error then drops the operation instead of failing it.
    only_if_pinned: bool,
}

impl Op {
    fn status(&self) -> TrackerStatus {
        match (self.kind, self.phase) {
            (Kind::Pin, Phase::Queued) => TrackerStatus::PinQueued,
            (Kind::Pin, Phase::InProgress) => TrackerStatus::Pinning,
            (Kind::Pin, Phase::Failed) => TrackerStatus::PinError,
            (Kind::Unpin, Phase::Queued) => TrackerStatus::UnpinQueued,
            (Kind::Unpin, Phase::InProgress) => TrackerStatus::Unpinning,
            (Kind::Unpin, Phase::Failed) => TrackerStatus::UnpinError,
        }
    }

    fn info(&self, cid: &Cid) -> PinStatus {
        PinStatus {
            cid: cid.clone(),
            status: self.status(),
            error: self.error.clone(),
            attempt_count: self.attempts,
            priority_pin: self.priority,
            timestamp: self.timestamp,
        }
    }
}

/// The statuses an operation in flight can have, in the order of [`Queues::counts`].
const OP_STATUSES: [TrackerStatus; 6] = [
    TrackerStatus::PinQueued,
    TrackerStatus::Pinning,
    TrackerStatus::PinError,
    TrackerStatus::UnpinQueued,
    TrackerStatus::Unpinning,
    TrackerStatus::UnpinError,
];

/// The statuses of pins with no operation in flight, which only a walk of the pinset counts.
const SETTLED_STATUSES: [TrackerStatus; 4] =
    [TrackerStatus::Pinned, TrackerStatus::Remote, TrackerStatus::UnexpectedlyUnpinned, TrackerStatus::Sharded];

#[derive(Default)]
struct Queues {
    ops: HashMap<Cid, Op>,
    /// Operations per status of [`OP_STATUSES`], kept in step with `ops` (for metrics).
    counts: [u64; OP_STATUSES.len()],
    priority: VecDeque<(Cid, u64)>,
    normal: VecDeque<(Cid, u64)>,
    unpins: VecDeque<(Cid, u64)>,
}

impl Queues {
    fn pin_queue_len(&self) -> usize {
        self.priority.len() + self.normal.len()
    }

    /// Sets the operation on `cid`, replacing any other.
    fn insert(&mut self, cid: Cid, op: Op) {
        self.counts[op_slot(op.status())] += 1;
        if let Some(old) = self.ops.insert(cid, op) {
            self.counts[op_slot(old.status())] -= 1;
        }
    }

    fn remove(&mut self, cid: &Cid) {
        if let Some(old) = self.ops.remove(cid) {
            self.counts[op_slot(old.status())] -= 1;
        }
    }

    /// Moves the count of an operation whose status changed.
    fn moved(&mut self, from: TrackerStatus, to: TrackerStatus) {
        self.counts[op_slot(from)] -= 1;
        self.counts[op_slot(to)] += 1;
    }
}

fn op_slot(status: TrackerStatus) -> usize {
    OP_STATUSES.iter().position(|s| *s == status).unwrap_or(0)
}

struct Inner {
    settings: TrackerSettings,
    ipfs: Arc<dyn IpfsPins>,
    queues: Mutex<Queues>,
    pin_ready: Notify,
    unpin_ready: Notify,
    generation: AtomicU64,
    stats: TrackerStats,
    metrics: TrackerMetrics,
    /// Counts of [`SETTLED_STATUSES`] from the last [`PinTracker::scan_statuses`].
    settled: Mutex<Option<[u64; SETTLED_STATUSES.len()]>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_priority(&self, op: &Op) -> bool {
        let age = time_since(op.pinned_at);
        age <= self.settings.priority_pin_max_age && op.attempts < self.settings.priority_pin_max_retries
    }

    /// Queues a pin operation for `cid`, replacing any other operation on it.
    fn enqueue_pin(&self, cid: Cid, mode: PinMode, pinned_at: Timestamp, attempts: u32) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let mut op = Op {
            kind: Kind::Pin,
            phase: Phase::Queued,
            mode,
            generation,
            error: String::new(),
            attempts,
            priority: false,
            timestamp: Timestamp::now(),
            pinned_at,
            only_if_pinned: false,
        };
        let mut q = self.lock();
        if q.pin_queue_len() >= self.settings.max_pin_queue_size {
            op.phase = Phase::Failed;
            op.error = "queue is full".into();
            q.insert(cid, op);
            self.metrics.queue_full();
            return;
        }
        op.priority = self.is_priority(&op);
        if op.priority {
            q.priority.push_back((cid.clone(), generation));
        } else {
            q.normal.push_back((cid.clone(), generation));
        }
        q.insert(cid, op);
        drop(q);
        self.pin_ready.notify_one();
    }

    /// Queues an unpin operation for `cid`, replacing any other operation on it.
    fn enqueue_unpin(&self, cid: Cid, attempts: u32) {
        self.enqueue_unpin_with(cid, attempts, false);
    }

    fn enqueue_unpin_with(&self, cid: Cid, attempts: u32, only_if_pinned: bool) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let op = Op {
            kind: Kind::Unpin,
            phase: Phase::Queued,
            mode: PinMode::Recursive,
            generation,
            error: String::new(),
            attempts,
            priority: false,
            timestamp: Timestamp::now(),
            pinned_at: Timestamp::now(),
            only_if_pinned,
        };
        let mut q = self.lock();
        q.unpins.push_back((cid.clone(), generation));
        q.insert(cid, op);
        drop(q);
        self.unpin_ready.notify_one();
    }

    /// Takes the next queued operation of `kind` that is still current, marking it in progress.
    fn next(&self, kind: Kind) -> Option<(Cid, Op)> {
        let mut guard = self.lock();
        let q = &mut *guard;
        loop {
            let (cid, generation) = match kind {
                Kind::Pin => q.priority.pop_front().or_else(|| q.normal.pop_front())?,
                Kind::Unpin => q.unpins.pop_front()?,
            };
            let Some(op) = q.ops.get_mut(&cid) else { continue };
            if op.generation != generation || op.phase != Phase::Queued {
                continue; // superseded while it waited
            }
            let before = op.status();
            op.phase = Phase::InProgress;
            op.attempts += 1;
            op.timestamp = Timestamp::now();
            let (after, op) = (op.status(), op.clone());
            q.moved(before, after);
            return Some((cid, op));
        }
    }

    /// Records the outcome of operation `generation` on `cid`, unless a newer one replaced it;
    /// `elapsed`: how long the IPFS operation took, when one was made.
    fn finish(&self, cid: &Cid, generation: u64, result: Result<(), String>, elapsed: Option<Duration>) {
        let mut guard = self.lock();
        let q = &mut *guard;
        let Some(op) = q.ops.get_mut(cid) else { return };
        if op.generation != generation {
            return;
        }
        let (done, errors, name) = match op.kind {
            Kind::Pin => (&self.stats.pins_done, &self.stats.pin_errors, "pin"),
            Kind::Unpin => (&self.stats.unpins_done, &self.stats.unpin_errors, "unpin"),
        };
        if let Some(elapsed) = elapsed {
            self.metrics.finished(name, result.is_ok(), elapsed);
        }
        match result {
            Ok(()) => {
                done.fetch_add(1, Ordering::Relaxed);
                q.remove(cid);
            }
            Err(error) => {
                errors.fetch_add(1, Ordering::Relaxed);
                let before = op.status();
                op.phase = Phase::Failed;
                op.error = error;
                op.timestamp = Timestamp::now();
                let after = op.status();
                q.moved(before, after);
            }
        }
    }
}

/// `cairn_pins`' samples: operation statuses live, settled ones once a scan has counted them.
fn pin_state_counts(inner: &Inner) -> Vec<(&'static str, i64)> {
    let mut out: Vec<(&'static str, i64)> = {
        let q = inner.lock();
        OP_STATUSES.iter().zip(q.counts).map(|(s, n)| (s.name(), i64::try_from(n).unwrap_or(i64::MAX))).collect()
    };
    if let Some(settled) = *inner.settled.lock().unwrap_or_else(|p| p.into_inner()) {
        out.extend(SETTLED_STATUSES.iter().zip(settled).map(|(s, n)| (s.name(), i64::try_from(n).unwrap_or(i64::MAX))));
    }
    out
}

/// The key [`IpfsPins::pin_ls_all`] uses for `cid`.
pub fn multihash_of(cid: &Cid) -> Vec<u8> {
    cid.raw().hash().to_bytes()
}

fn time_since(t: Timestamp) -> Duration {
    let now = Timestamp::now();
    let secs = (now.0 - t.0).whole_milliseconds();
    Duration::from_millis(u64::try_from(secs).unwrap_or(0))
}

/// The pin tracker. Cheap to clone.
#[derive(Clone)]
pub struct PinTracker {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stop: Arc<watch::Sender<bool>>,
}

impl PinTracker {
    /// Starts the workers.
    pub fn start(settings: TrackerSettings, ipfs: Arc<dyn IpfsPins>) -> Self {
        let workers = settings.concurrent_pins.max(1);
        let inner = Arc::new(Inner {
            settings,
            ipfs,
            queues: Mutex::default(),
            pin_ready: Notify::new(),
            unpin_ready: Notify::new(),
            generation: AtomicU64::new(1),
            stats: TrackerStats::default(),
            metrics: TrackerMetrics::default(),
            settled: Mutex::new(None),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..workers {
            tasks.push(tokio::spawn(worker(inner.clone(), Kind::Pin, stop_rx.clone())));
        }
        tasks.push(tokio::spawn(worker(inner.clone(), Kind::Unpin, stop_rx)));
        PinTracker { inner, tasks: Arc::new(Mutex::new(tasks)), stop: Arc::new(stop) }
    }

    /// Whether `pin` is to be pinned by this peer's IPFS.
    pub fn allocated_here(&self, pin: &Pin) -> bool {
        pin.allocations.is_empty() || pin.allocations.iter().any(|p| *p == self.inner.settings.peer)
    }

    /// The pinset has `pin` (new or updated): pin it here if allocated here, otherwise make
    /// sure it is not pinned here. A meta-pin is never pinned in IPFS.
    pub fn track(&self, pin: &Pin) {
        if pin.pin_type == PinType::Meta {
            return;
        }
        if self.allocated_here(pin) {
            let current = {
                let q = self.inner.lock();
                q.ops.get(&pin.cid).map(|op| (op.kind, op.phase, op.mode))
            };
            // Already being pinned the same way: nothing to do.
            if matches!(current, Some((Kind::Pin, Phase::Queued | Phase::InProgress, m)) if m == pin.mode()) {
                return;
            }
            self.inner.enqueue_pin(pin.cid.clone(), pin.mode(), pin.timestamp, 0);
        } else {
            // Remote here: an earlier allocation may have pinned it. A pending pin of it is
            // replaced either way.
            self.inner.enqueue_unpin_with(pin.cid.clone(), 0, true);
        }
    }

    /// The pinset no longer has `cid`: unpin it here.
    pub fn untrack(&self, cid: &Cid) {
        self.inner.enqueue_unpin(cid.clone(), 0);
    }

    /// Pins waiting in the queues (the `pinqueue` informer's value).
    pub fn queued(&self) -> usize {
        self.inner.lock().pin_queue_len()
    }

    /// The tracker's counters.
    pub fn stats(&self) -> &TrackerStats {
        &self.inner.stats
    }

    /// Adds the tracker's families to `telemetry`: operations, their errors and durations, and
    /// `cairn_pins{status}` (statuses of operations in flight live, the others from the last
    /// [`scan_statuses`](Self::scan_statuses)). Call once.
    pub fn register_metrics(&self, telemetry: &Telemetry) {
        telemetry.register(|registry| self.inner.metrics.register(registry));
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        telemetry.register_collector(PinStates::new(move || {
            let Some(inner) = inner.upgrade() else { return Vec::new() };
            pin_state_counts(&inner)
        }));
    }

    /// Operations in flight per status (pin_queued, pinning, pin_error, unpin_queued,
    /// unpinning, unpin_error).
    pub fn operation_counts(&self) -> Vec<(TrackerStatus, u64)> {
        let q = self.inner.lock();
        OP_STATUSES.iter().copied().zip(q.counts).collect()
    }

    /// Counts every pin's status, walking the pinset through `pins` as
    /// [`status_all`](Self::status_all) does (one `pin/ls` of IPFS), and keeps the counts of
    /// pinned, remote, unexpectedly_unpinned and sharded pins for `cairn_pins`.
    pub async fn scan_statuses(
        &self,
        pins: impl FnOnce(&mut dyn FnMut(Pin)) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut counts = [0u64; SETTLED_STATUSES.len()];
        let settled = TrackerFilter::of(&SETTLED_STATUSES);
        self.status_all(settled, pins, |status, _| {
            if let Some(i) = SETTLED_STATUSES.iter().position(|s| *s == status.status) {
                counts[i] += 1;
            }
        })
        .await?;
        *self.inner.settled.lock().unwrap_or_else(|p| p.into_inner()) = Some(counts);
        Ok(())
    }

    /// The status of `cid` here, given the pinset's `pin` for it (`None`: not in the pinset).
    pub async fn status(&self, cid: &Cid, pin: Option<&Pin>) -> PinStatus {
        if let Some(op) = self.inner.lock().ops.get(cid) {
            return op.info(cid);
        }
        let Some(pin) = pin else { return PinStatus::plain(cid.clone(), TrackerStatus::Unpinned) };
        if pin.pin_type == PinType::Meta {
            return PinStatus::plain(cid.clone(), TrackerStatus::Sharded);
        }
        if !self.allocated_here(pin) {
            return PinStatus::plain(cid.clone(), TrackerStatus::Remote);
        }
        match self.inner.ipfs.pin_ls(cid).await {
            Ok(found) => self.settled(cid, pin, found),
            Err(e) => PinStatus { error: e, ..PinStatus::plain(cid.clone(), TrackerStatus::ClusterError) },
        }
    }

    /// The status of an allocated pin with no operation in flight, from IPFS's answer.
    fn settled(&self, cid: &Cid, pin: &Pin, found: Option<IpfsPinType>) -> PinStatus {
        match found {
            Some(IpfsPinType::Recursive) | Some(IpfsPinType::Direct) => {
                PinStatus::plain(cid.clone(), TrackerStatus::Pinned)
            }
            // Indirect counts as not pinned (§9).
            Some(IpfsPinType::Indirect) | None => PinStatus {
                error: format!("expected to be pinned ({:?}) but IPFS does not have it pinned", pin.mode())
                    .to_lowercase(),
                ..PinStatus::plain(cid.clone(), TrackerStatus::UnexpectedlyUnpinned)
            },
        }
    }

    /// Statuses of every pin, visiting the pinset through `pins` (a streaming walk) and
    /// answering from one `pin/ls` of IPFS. Operations on CIDs no longer in the pinset
    /// (unpins in flight) are reported too. Only statuses matching `filter` are passed to
    /// `visit`; when the filter needs no state, only operations are listed.
    pub async fn status_all<F>(
        &self,
        filter: TrackerFilter,
        pins: impl FnOnce(&mut dyn FnMut(Pin)) -> Result<(), String>,
        mut visit: F,
    ) -> Result<(), String>
    where
        F: FnMut(PinStatus, Option<&Pin>),
    {
        let ops: HashMap<Cid, Op> = self.inner.lock().ops.clone();
        if !filter.needs_state() {
            for (cid, op) in &ops {
                let info = op.info(cid);
                if filter.matches(info.status) {
                    visit(info, None);
                }
            }
            return Ok(());
        }
        let ipfs = self.inner.ipfs.pin_ls_all().await?;
        let mut seen_ops: std::collections::HashSet<Cid> = std::collections::HashSet::new();
        pins(&mut |pin: Pin| {
            let info = match ops.get(&pin.cid) {
                Some(op) => {
                    seen_ops.insert(pin.cid.clone());
                    op.info(&pin.cid)
                }
                None if pin.pin_type == PinType::Meta => PinStatus::plain(pin.cid.clone(), TrackerStatus::Sharded),
                None if !self.allocated_here(&pin) => PinStatus::plain(pin.cid.clone(), TrackerStatus::Remote),
                None => self.settled(&pin.cid, &pin, ipfs.get(&multihash_of(&pin.cid)).copied()),
            };
            if filter.matches(info.status) {
                visit(info, Some(&pin));
            }
        })?;
        // Operations on CIDs that already left the pinset (unpins in flight).
        for (cid, op) in ops.iter().filter(|(cid, _)| !seen_ops.contains(*cid)) {
            let info = op.info(cid);
            if filter.matches(info.status) {
                visit(info, None);
            }
        }
        Ok(())
    }

    /// Re-queues `cid` if it is in `pin_error` or `unexpectedly_unpinned` (pin again) or in
    /// `unpin_error` (unpin again); returns its status afterwards.
    pub async fn recover(&self, cid: &Cid, pin: Option<&Pin>) -> PinStatus {
        let current = self.status(cid, pin).await;
        let attempts = current.attempt_count;
        match (current.status, pin) {
            (TrackerStatus::PinError | TrackerStatus::UnexpectedlyUnpinned, Some(pin)) => {
                self.inner.enqueue_pin(cid.clone(), pin.mode(), pin.timestamp, attempts);
            }
            (TrackerStatus::PinError, None) => {
                // The pin left the pinset since it failed: nothing to pin any more.
                self.inner.lock().remove(cid);
            }
            (TrackerStatus::UnpinError, _) => self.inner.enqueue_unpin(cid.clone(), attempts),
            _ => return current,
        }
        self.status(cid, pin).await
    }

    /// Stops the workers (operations in progress are abandoned; they are redone from the
    /// pinset at the next start).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.inner.pin_ready.notify_waiters();
        self.inner.unpin_ready.notify_waiters();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn worker(inner: Arc<Inner>, kind: Kind, mut stop: watch::Receiver<bool>) {
    let ready = match kind {
        Kind::Pin => &inner.pin_ready,
        Kind::Unpin => &inner.unpin_ready,
    };
    loop {
        // Register interest before checking the queue, so a notify in between is not lost.
        let notified = ready.notified();
        match inner.next(kind) {
            Some((cid, op)) => {
                let started = Instant::now();
                let pin_span = || tracing::info_span!("tracker.pin", %cid, attempt = op.attempts);
                let unpin_span = || tracing::info_span!("tracker.unpin", %cid, attempt = op.attempts);
                // `measured`: an IPFS operation was made (not a remote pin found not pinned here).
                let (result, measured) = match kind {
                    Kind::Pin => (inner.ipfs.pin(&cid, op.mode).instrument(pin_span()).await, true),
                    Kind::Unpin if op.only_if_pinned => match inner.ipfs.pin_ls(&cid).await {
                        Ok(Some(IpfsPinType::Recursive | IpfsPinType::Direct)) => {
                            (inner.ipfs.unpin(&cid).instrument(unpin_span()).await, true)
                        }
                        Ok(_) => (Ok(()), false),
                        Err(e) => {
                            tracing::debug!(%cid, "not checking a remote pin while IPFS fails: {e}");
                            (Ok(()), false)
                        }
                    },
                    Kind::Unpin => (inner.ipfs.unpin(&cid).instrument(unpin_span()).await, true),
                };
                inner.finish(&cid, op.generation, result, measured.then(|| started.elapsed()));
            }
            None => {
                tokio::select! {
                    _ = notified => {}
                    _ = stop.changed() => return,
                }
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}
