//! Instances and calls: the per-store host state, the sandbox limits, a pool of warm
//! instances per plugin, and the mapping of every failure to a [`CallFailure`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_telemetry::LogThrottle;
use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{authorizer_world, host, types};
use crate::compile::{Compiler, EPOCH_TICK, TickClock};
use crate::error::{CallFailure, PolicyError};
use crate::runtime::{Limits, PluginKind};
use crate::stderr::TailPipe;

/// Log lines one call may write; the rest are dropped so a plugin cannot flood the log.
const LOG_LINES_PER_CALL: u32 = 16;
/// Longest log line kept from a plugin.
const LOG_LINE_MAX: usize = 1024;
/// Table elements one instance may hold, all its tables together.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Bytes the host copies out of a plugin in one answer (or one call of a host function):
/// wasmtime's hostcall fuel, spent on every string and list element as it is copied, so a
/// huge answer — or many strings pointing at the same large buffer — is refused while being
/// copied rather than allocated first. The largest legitimate answer, an allocation over
/// tens of thousands of peers, is far smaller.
pub(crate) const MAX_ANSWER_BYTES: usize = 2 << 20;
/// What wasmtime's error says when the hostcall fuel ran out (its type is private).
const FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";
/// One "plugin call failed" warning per plugin per this window; the counters have them all.
const FAILURE_LOG_WINDOW: Duration = Duration::from_secs(10);
/// `resumed_at` when the call is not parked.
const NOT_PARKED: u64 = u64::MAX;

/// How many times its deadline a call may stay on a thread (running, or preempted by the
/// OS) before it is cut even though it has not used its CPU budget.
const WALL_SLACK: u64 = 10;

/// The calling thread's CPU time in nanoseconds (0 if it cannot be read, which leaves the
/// wall-clock cap in force).
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// What a store carries: the plugin's identity and config, a deny-all WASI context, and
/// the bookkeeping that enforces the deadline and memory cap.
pub(crate) struct HostState {
    plugin: Arc<str>,
    config: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    output: TailPipe,
    memory_cap: usize,
    /// Bytes of all the instance's linear memories: a component instance may have several
    /// (up to `memories()`), and the cap is for all of them together.
    memory_used: usize,
    /// Elements of all the instance's tables, likewise.
    table_elements: usize,
    out_of_memory: bool,
    /// The deadline of the current call (or instance start), for reporting.
    deadline: Duration,
    clock: TickClock,
    /// The CPU time the current call may use, and has used so far (nanoseconds).
    budget_cpu: u64,
    used_cpu: u64,
    /// Ticks the current call may spend on a thread (running or preempted by the OS): a
    /// hard cap of `WALL_SLACK` times the deadline, in case CPU time cannot be read.
    budget_ticks: u64,
    used_ticks: u64,
    /// The tick, and the thread's CPU time, at which the call's current running stretch began.
    segment_start: u64,
    segment_cpu: u64,
    /// Set by the yield future to the tick at which a parked call was resumed.
    resumed_at: Arc<AtomicU64>,
    /// Set by the yield future to the resuming thread's CPU time, before `resumed_at`.
    resumed_cpu: Arc<AtomicU64>,
    logs_left: u32,
}

impl HostState {
    fn new(plugin: Arc<str>, config: Arc<str>, limits: &Limits, clock: TickClock) -> Self {
        let output = TailPipe::default();
        // No preopens, no network, no environment, no arguments, empty stdin.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().stdout(output.clone()).stderr(output.clone()).build();
        HostState {
            plugin,
            config,
            wasi,
            table: ResourceTable::new(),
            output,
            memory_cap: limits.memory_bytes,
            memory_used: 0,
            table_elements: 0,
            out_of_memory: false,
            deadline: limits.call_deadline,
            clock,
            budget_cpu: 0,
            used_cpu: 0,
            budget_ticks: 0,
            used_ticks: 0,
            segment_start: 0,
            segment_cpu: 0,
            resumed_at: Arc::new(AtomicU64::new(NOT_PARKED)),
            resumed_cpu: Arc::new(AtomicU64::new(0)),
            logs_left: LOG_LINES_PER_CALL,
        }
    }

    fn begin_call(&mut self, deadline: Duration) {
        self.deadline = deadline;
        self.budget_cpu = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.used_cpu = 0;
        let ticks = u64::try_from(deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos())).unwrap_or(u64::MAX).max(1);
        self.budget_ticks = ticks.saturating_mul(WALL_SLACK);
        self.used_ticks = 0;
        self.segment_cpu = thread_cpu_nanos();
        // A refused growth that the guest survived must not label a later failure.
        self.out_of_memory = false;
        self.segment_start = self.clock.now();
        self.resumed_at.store(NOT_PARKED, Ordering::Release);
        self.logs_left = LOG_LINES_PER_CALL;
    }

    /// Called at each epoch tick that passes while the call runs. The deadline is a CPU
    /// budget: what counts is the CPU time the calling thread spent while the call ran — not
    /// time parked behind other tasks after a yield, which a busy executor would eat, nor
    /// time the OS gave the core to another thread, which a busy machine would eat (a
    /// legitimate call was refused that way under load). A call that stays on its thread
    /// `WALL_SLACK` times its deadline without using it is cut anyway.
    fn on_tick(&mut self) -> UpdateDeadline {
        let now = self.clock.now();
        let cpu = thread_cpu_nanos();
        let resumed = self.resumed_at.swap(NOT_PARKED, Ordering::AcqRel);
        if resumed != NOT_PARKED {
            self.segment_start = resumed;
            self.segment_cpu = self.resumed_cpu.load(Ordering::Acquire);
        }
        let ran = now.saturating_sub(self.segment_start);
        // A stretch cannot use more CPU than the wall time it lasted (+1 tick for the
        // tick's resolution); this also bounds a reading taken on another thread.
        let ran_wall = u64::try_from(EPOCH_TICK.as_nanos()).unwrap_or(u64::MAX).saturating_mul(ran.saturating_add(1));
        let ran_cpu = cpu.saturating_sub(self.segment_cpu).min(ran_wall);
        self.segment_start = now;
        self.segment_cpu = cpu;
        self.used_ticks = self.used_ticks.saturating_add(ran);
        self.used_cpu = self.used_cpu.saturating_add(ran_cpu);
        if self.used_cpu >= self.budget_cpu || self.used_ticks >= self.budget_ticks {
            return UpdateDeadline::Interrupt;
        }
        if ran == 0 {
            // Just resumed after ticks passed while parked: keep running, count from here.
            return UpdateDeadline::Continue(1);
        }
        // Give the executor its thread back at every tick of a long call.
        let (resumed_at, resumed_cpu, clock) = (self.resumed_at.clone(), self.resumed_cpu.clone(), self.clock.clone());
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                // Possibly another thread now: the CPU time is this thread's.
                resumed_cpu.store(thread_cpu_nanos(), Ordering::Release);
                resumed_at.store(clock.now(), Ordering::Release);
            }),
        )
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for HostState {
    // Called for each memory and table of the store (one store per instance), also when it
    // is created (current 0). A growth that fails after being allowed stays counted, which
    // errs on the safe side.
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_add(desired.saturating_sub(current));
        if total > self.memory_cap {
            // Refuse the growth; the guest then fails its allocation and traps. The flag
            // lets the trap be reported as what it is.
            self.out_of_memory = true;
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_add(desired.saturating_sub(current));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        8
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: host::LogLevel, mut message: String) {
        if self.logs_left == 0 {
            return;
        }
        self.logs_left -= 1;
        if message.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            host::LogLevel::Trace => tracing::trace!(target: "cairn::plugin", plugin, "{message}"),
            host::LogLevel::Debug => tracing::debug!(target: "cairn::plugin", plugin, "{message}"),
            host::LogLevel::Info => tracing::info!(target: "cairn::plugin", plugin, "{message}"),
            host::LogLevel::Warn => tracing::warn!(target: "cairn::plugin", plugin, "{message}"),
            host::LogLevel::Error => tracing::error!(target: "cairn::plugin", plugin, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }
}

impl types::Host for HostState {}

/// The one linker every plugin is instantiated against: the contract's host interface
/// plus WASI backed by a deny-all context. Which imports a plugin may actually use is
/// decided before linking, by `sandbox::verdict`.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    authorizer_world::AuthorizerPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// One plugin kind's generated bindings, as the generic pool needs them.
pub(crate) trait Kind: Send + Sync + 'static {
    const KIND: PluginKind;
    type Pre: Send + Sync + 'static;
    type Bindings: Send + Sync + 'static;
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Bindings>> + Send;
    fn init(
        bindings: &Self::Bindings,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Result<(), String>>> + Send;
}

/// Upper bounds (seconds) of the call latency buckets of [`CallLatency`]: 10 µs to about
/// 38 ms, ×2.5 (the default call deadline is 10 ms); a last bucket takes the rest.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.000_01, 0.000_025, 0.000_062_5, 0.000_156_25, 0.000_39, 0.000_977, 0.002_44, 0.006_1, 0.015_3, 0.038_1];

/// A histogram of call latencies (checkout to answer, waiting for an instance included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallLatency {
    /// Calls per bucket of [`LATENCY_BUCKETS`], not cumulative, plus one last bucket for
    /// slower calls (`LATENCY_BUCKETS.len() + 1` entries once a call was made).
    pub counts: Vec<u64>,
    /// Sum of the latencies, in nanoseconds.
    pub sum_nanos: u64,
}

impl CallLatency {
    /// (upper bound in seconds, calls in that bucket) pairs; the last bound is infinity.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, le)| (le, self.counts.get(i).copied().unwrap_or(0)))
            .collect()
    }

    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The atomic side of [`CallLatency`].
#[derive(Default)]
struct LatencyCounters {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyCounters {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|&le| seconds <= le).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn snapshot(&self) -> CallLatency {
        CallLatency {
            counts: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one loaded plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed, all causes.
    pub failures: u64,
    /// Calls that ran past the deadline.
    pub deadline: u64,
    /// Calls that hit the memory cap.
    pub out_of_memory: u64,
    /// Calls that trapped for another reason (panic, exit, ...).
    pub traps: u64,
    /// Calls whose answer broke the contract's limits.
    pub malformed: u64,
    /// Instances created (the first one, replacements, recycling).
    pub instances_created: u64,
    /// Deny answers (authorizer plugins; a failure's fail-safe denial is not counted).
    pub denials: u64,
    /// How long calls took.
    pub latency: CallLatency,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    failures: AtomicU64,
    deadline: AtomicU64,
    out_of_memory: AtomicU64,
    traps: AtomicU64,
    malformed: AtomicU64,
    instances_created: AtomicU64,
    denials: AtomicU64,
    latency: LatencyCounters,
}

/// A warm instance and its store.
pub(crate) struct Slot<K: Kind> {
    store: Store<HostState>,
    bindings: K::Bindings,
    calls: u64,
}

/// An instance checked out for one call; dropping it (e.g. when the caller's future is
/// cancelled mid-call) discards the instance instead of returning it to the pool.
pub(crate) struct Lease<'a, K: Kind> {
    slot: Slot<K>,
    _permit: SemaphorePermit<'a>,
    /// When the call asked for an instance.
    started: Instant,
}

impl<K: Kind> Lease<'_, K> {
    /// The bindings and the store to call them with.
    pub(crate) fn parts(&mut self) -> (&K::Bindings, &mut Store<HostState>) {
        (&self.slot.bindings, &mut self.slot.store)
    }
}

/// A loaded plugin of kind `K`: its pre-linked instance template and a pool of warm
/// instances. Cheap to clone.
pub(crate) struct Loaded<K: Kind>(Arc<Inner<K>>);

impl<K: Kind> Clone for Loaded<K> {
    fn clone(&self) -> Self {
        Loaded(self.0.clone())
    }
}

struct Inner<K: Kind> {
    name: Arc<str>,
    config: Arc<str>,
    engine: Engine,
    clock: TickClock,
    pre: K::Pre,
    limits: Limits,
    idle: Mutex<Vec<Slot<K>>>,
    permits: Semaphore,
    counters: Counters,
    /// A failing plugin fails every call: its warnings are rate-limited.
    failure_log: LogThrottle,
}

impl<K: Kind> Loaded<K> {
    /// Pre-link the component and start one instance, which runs the plugin's `init`
    /// (its config check) so a bad config refuses the plugin now, not at the first call.
    pub(crate) async fn new(
        name: String,
        compiler: &Compiler,
        component: &Component,
        config: String,
        limits: Limits,
    ) -> Result<Self, PolicyError> {
        let pre = compiler
            .linker()
            .instantiate_pre(component)
            .and_then(K::pre)
            .map_err(|e| PolicyError::Invalid { source_name: name.clone(), reason: format!("{e:#}") })?;
        let loaded = Loaded(Arc::new(Inner {
            name: Arc::from(name.as_str()),
            config: Arc::from(config.as_str()),
            engine: compiler.engine().clone(),
            clock: compiler.clock().clone(),
            pre,
            permits: Semaphore::new(limits.max_instances.max(1)),
            limits,
            idle: Mutex::new(Vec::new()),
            counters: Counters::default(),
            failure_log: LogThrottle::new(FAILURE_LOG_WINDOW),
        }));
        let slot = match loaded.fresh_slot().await {
            Ok(slot) => slot,
            Err(StartError::Config(message)) => return Err(PolicyError::Config { source_name: name, message }),
            Err(StartError::Failed(failure)) => return Err(PolicyError::Start { source_name: name, failure }),
        };
        loaded.park(slot);
        Ok(loaded)
    }

    /// The plugin's name for logs (`builtin:<name>` or the file path).
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> PluginStats {
        let c = &self.0.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PluginStats {
            calls: get(&c.calls),
            failures: get(&c.failures),
            deadline: get(&c.deadline),
            out_of_memory: get(&c.out_of_memory),
            traps: get(&c.traps),
            malformed: get(&c.malformed),
            instances_created: get(&c.instances_created),
            denials: get(&c.denials),
            latency: c.latency.snapshot(),
        }
    }

    /// Count a deny answer.
    pub(crate) fn denied(&self) {
        self.0.counters.denials.fetch_add(1, Ordering::Relaxed);
    }

    /// Take a warm instance (or make one) and start the call's deadline.
    pub(crate) async fn checkout(&self) -> Result<Lease<'_, K>, CallFailure> {
        let started = Instant::now();
        self.0.counters.calls.fetch_add(1, Ordering::Relaxed);
        // The semaphore is never closed, so acquire cannot fail.
        let permit =
            self.0.permits.acquire().await.map_err(|_| CallFailure::Instantiate("instance pool closed".into()))?;
        let idle = self.0.idle.lock().ok().and_then(|mut v| v.pop());
        let mut slot = match idle {
            Some(slot) => slot,
            None => self.fresh_slot().await.map_err(|e| {
                let failure = match e {
                    StartError::Config(m) => CallFailure::Instantiate(format!("init failed: {m}")),
                    StartError::Failed(f) => f,
                };
                self.record(&failure);
                self.0.counters.latency.observe(started.elapsed());
                failure
            })?,
        };
        start_deadline(&mut slot.store, self.0.limits.call_deadline);
        Ok(Lease { slot, _permit: permit, started })
    }

    /// End a call: keep the instance for the next call on success, discard it (it may be
    /// poisoned) on failure, and classify the failure.
    pub(crate) fn finish<R>(&self, lease: Lease<'_, K>, result: wasmtime::Result<R>) -> Result<R, CallFailure> {
        self.0.counters.latency.observe(lease.started.elapsed());
        let mut slot = lease.slot;
        match result {
            Ok(value) => {
                slot.calls += 1;
                if slot.calls < self.0.limits.max_calls_per_instance {
                    self.park(slot);
                }
                Ok(value)
            }
            Err(error) => {
                let failure = classify(&error, slot.store.data());
                self.record(&failure);
                Err(failure)
            }
        }
    }

    /// Count and log an answer that broke the contract's limits.
    pub(crate) fn malformed(&self, why: String) -> CallFailure {
        let failure = CallFailure::Malformed(why);
        self.record(&failure);
        failure
    }

    fn park(&self, slot: Slot<K>) {
        if let Ok(mut idle) = self.0.idle.lock() {
            idle.push(slot);
        }
    }

    fn record(&self, failure: &CallFailure) {
        let c = &self.0.counters;
        c.failures.fetch_add(1, Ordering::Relaxed);
        let counter = match failure {
            CallFailure::Deadline(_) => &c.deadline,
            CallFailure::OutOfMemory(_) => &c.out_of_memory,
            CallFailure::Trap(_) | CallFailure::Instantiate(_) => &c.traps,
            CallFailure::Malformed(_) => &c.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // One window per kind of failure: a flood of traps does not hide the first deadline.
        if let Some(suppressed) = self.0.failure_log.admit_kind(std::mem::discriminant(failure)) {
            tracing::warn!(
                target: "cairn::plugin",
                plugin = &*self.0.name,
                suppressed,
                "plugin call failed, decision fails safe: {failure}"
            );
        }
    }

    async fn fresh_slot(&self) -> Result<Slot<K>, StartError> {
        let inner = &self.0;
        inner.counters.instances_created.fetch_add(1, Ordering::Relaxed);
        let state = HostState::new(inner.name.clone(), inner.config.clone(), &inner.limits, inner.clock.clone());
        let mut store = new_store(&inner.engine, state);
        start_deadline(&mut store, inner.limits.start_deadline);
        let fail = |store: &Store<HostState>, e: wasmtime::Error| {
            StartError::Failed(match classify(&e, store.data()) {
                CallFailure::Trap(m) => CallFailure::Instantiate(m),
                other => other,
            })
        };
        let bindings = match K::instantiate(&inner.pre, &mut store).await {
            Ok(b) => b,
            Err(e) => return Err(fail(&store, e)),
        };
        match K::init(&bindings, &mut store).await {
            Ok(Ok(())) => Ok(Slot { store, bindings, calls: 0 }),
            Ok(Err(message)) => Err(StartError::Config(message)),
            Err(e) => Err(fail(&store, e)),
        }
    }
}

enum StartError {
    Config(String),
    Failed(CallFailure),
}

/// A store for one instance, with the sandbox's limiter and deadline callback installed.
fn new_store(engine: &Engine, state: HostState) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    store.set_hostcall_fuel(MAX_ANSWER_BYTES);
    store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().on_tick()));
    store
}

fn start_deadline(store: &mut Store<HostState>, deadline: Duration) {
    store.data_mut().begin_call(deadline);
    store.set_epoch_deadline(1);
}

/// Name what went wrong, with the tail of the guest's output (a panic message) if any.
fn classify(error: &wasmtime::Error, state: &HostState) -> CallFailure {
    if state.out_of_memory {
        return CallFailure::OutOfMemory(state.memory_cap);
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return CallFailure::Deadline(state.deadline);
    }
    if format!("{error:#}").contains(FUEL_EXHAUSTED) {
        return CallFailure::Malformed(format!(
            "answer (or host call) over the {MAX_ANSWER_BYTES}-byte limit of a plugin answer"
        ));
    }
    let mut message = match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        Some(exit) => format!("called exit({})", exit.0),
        None => format!("{error:#}"),
    };
    let output = state.output.take();
    if !output.is_empty() {
        let tail: String = output.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
        message.push_str(&format!("; plugin output: {tail}"));
    }
    CallFailure::Trap(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component whose two core instances each own one memory of one page, exporting
    /// `grow-a` and `grow-b` (`memory.grow` on each; -1 when refused).
    fn two_memory_component() -> Vec<u8> {
        use wasm_encoder as we;
        let mut types = we::TypeSection::new();
        types.ty().function([we::ValType::I32], [we::ValType::I32]);
        let mut funcs = we::FunctionSection::new();
        funcs.function(0);
        let mut memories = we::MemorySection::new();
        memories.memory(we::MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = we::ExportSection::new();
        exports.export("grow", we::ExportKind::Func, 0);
        let mut code = we::CodeSection::new();
        let mut body = we::Function::new([]);
        body.instruction(&we::Instruction::LocalGet(0));
        body.instruction(&we::Instruction::MemoryGrow(0));
        body.instruction(&we::Instruction::End);
        code.function(&body);
        let mut module = we::Module::new();
        module.section(&types).section(&funcs).section(&memories).section(&exports).section(&code);

        let mut component = we::Component::new();
        component.section(&we::ModuleSection(&module));
        let mut instances = we::InstanceSection::new();
        instances.instantiate(0, Vec::<(&str, we::ModuleArg)>::new());
        instances.instantiate(0, Vec::<(&str, we::ModuleArg)>::new());
        component.section(&instances);
        let mut aliases = we::ComponentAliasSection::new();
        for instance in 0..2 {
            aliases.alias(we::Alias::CoreInstanceExport { instance, kind: we::ExportKind::Func, name: "grow" });
        }
        component.section(&aliases);
        let mut ctypes = we::ComponentTypeSection::new();
        ctypes
            .function()
            .params([("pages", we::ComponentValType::Primitive(we::PrimitiveValType::U32))])
            .result(Some(we::ComponentValType::Primitive(we::PrimitiveValType::S32)));
        component.section(&ctypes);
        let mut canon = we::CanonicalFunctionSection::new();
        canon.lift(0, 0, []);
        canon.lift(1, 0, []);
        component.section(&canon);
        let mut cexports = we::ComponentExportSection::new();
        cexports.export("grow-a", we::ComponentExportKind::Func, 0, None);
        cexports.export("grow-b", we::ComponentExportKind::Func, 1, None);
        component.section(&cexports);
        component.finish()
    }

    #[tokio::test]
    async fn memory_cap_covers_all_memories_of_an_instance() {
        const PAGE: usize = 64 << 10;
        let compiler = Compiler::new(None).expect("compiler");
        let component = Component::new(compiler.engine(), two_memory_component()).expect("component");
        // 64 pages in all; each memory starts with one.
        let limits = Limits { memory_bytes: 64 * PAGE, ..Limits::default() };
        let state = HostState::new("test".into(), "null".into(), &limits, compiler.clock().clone());
        let mut store = new_store(compiler.engine(), state);
        start_deadline(&mut store, Duration::from_secs(10));
        let instance = compiler.linker().instantiate_async(&mut store, &component).await.expect("instantiate");
        let grow_a = instance.get_typed_func::<(u32,), (i32,)>(&mut store, "grow-a").expect("grow-a");
        let grow_b = instance.get_typed_func::<(u32,), (i32,)>(&mut store, "grow-b").expect("grow-b");

        // Each memory to 48 pages, under the cap on its own: the second must be refused.
        assert_eq!(grow_a.call_async(&mut store, (47,)).await.expect("grow a").0, 1);
        assert_eq!(grow_b.call_async(&mut store, (47,)).await.expect("grow b").0, -1, "8 memories = 8 caps");
        assert!(store.data().out_of_memory);
        // Exactly up to the cap is allowed, one page more is not.
        assert_eq!(grow_b.call_async(&mut store, (15,)).await.expect("grow b").0, 1);
        assert_eq!(grow_a.call_async(&mut store, (1,)).await.expect("grow a").0, -1);
    }

    #[test]
    fn latency_buckets() {
        let latency = LatencyCounters::default();
        latency.observe(Duration::from_micros(5));
        latency.observe(Duration::from_micros(10));
        latency.observe(Duration::from_millis(3));
        latency.observe(Duration::from_secs(1));
        let snapshot = latency.snapshot();
        assert_eq!(snapshot.count(), 4);
        assert_eq!(snapshot.sum_nanos, 1_003_015_000);
        let buckets = snapshot.buckets();
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(buckets[0], (0.000_01, 2));
        assert_eq!(buckets[7], (0.006_1, 1));
        assert_eq!(buckets[10], (f64::INFINITY, 1));
        assert_eq!(CallLatency::default().buckets().iter().map(|b| b.1).sum::<u64>(), 0);
    }
}
