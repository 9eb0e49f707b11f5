//! Hostile plugins: each is refused at load with a clear error, or its call becomes a
//! fail-safe decision within the deadline — and the next call on a good plugin works.

mod common;

use std::time::{Duration, Instant};

use cairn_policy::types::*;
use cairn_policy::{AuthorizerPlugin, CallFailure, PluginSpec, PolicyError, PolicyRuntime};
use common::{basic, request, runtime, wasm};
use serde_json::json;

/// Slack on top of the deadline for a debug build on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(150);

async fn good_plugin_still_works(rt: &PolicyRuntime) {
    let good = rt
        .load_authorizer(&PluginSpec::builtin("basic-auth", json!({"basic_auth_credentials": {"u": "p"}})))
        .await
        .expect("load basic-auth");
    let d = good.authorize_request(&request("GET", "/id", basic("u", "p"))).await;
    assert_eq!(d, RequestDecision::Allow("u".into()));
}

async fn load(rt: &PolicyRuntime, fixture: &str) -> AuthorizerPlugin {
    rt.load_authorizer(&PluginSpec::file(wasm(fixture), json!(null))).await.expect("fixture loads")
}

fn is_fail_closed(d: &RequestDecision) -> bool {
    matches!(d, RequestDecision::Deny(Denial { status: 500, .. }))
}

#[tokio::test]
async fn infinite_loop_is_cut_at_the_deadline() {
    let rt = runtime();
    let deadline = rt.limits().call_deadline;
    let p = load(&rt, "hostile_spin").await;
    for _ in 0..3 {
        let started = Instant::now();
        let result = p.try_authorize_request(&request("GET", "/id", Credentials::None)).await;
        let took = started.elapsed();
        assert_eq!(result, Err(CallFailure::Deadline(deadline)));
        // Counted in 1 ms ticks of running time, so up to one tick early.
        assert!(took + Duration::from_millis(2) >= deadline && took < deadline + SLACK, "took {took:?}");
    }
    let started = Instant::now();
    assert!(is_fail_closed(&p.authorize_request(&request("GET", "/id", Credentials::None)).await));
    println!("spin: fail-closed decision after {:?} (deadline {deadline:?})", started.elapsed());
    let stats = p.stats();
    assert_eq!(stats.deadline, 4);
    assert_eq!(stats.failures, 4);
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn unbounded_memory_hits_the_cap() {
    // A long deadline, so it is the memory cap that stops the plugin.
    let rt = common::runtime_with_deadline(Duration::from_secs(2));
    let p = load(&rt, "hostile_memory").await;
    let started = Instant::now();
    let result = p.try_authorize_request(&request("GET", "/id", Credentials::None)).await;
    let took = started.elapsed();
    assert_eq!(result, Err(CallFailure::OutOfMemory(64 << 20)));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    println!("memory hog: refused after {took:?}");
    assert!(is_fail_closed(&p.authorize_request(&request("GET", "/id", Credentials::None)).await));
    assert_eq!(p.stats().out_of_memory, 2);
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn panic_is_a_trap_and_the_instance_is_replaced() {
    let rt = runtime();
    let p = load(&rt, "hostile_panic").await;
    let result = p.try_authorize_request(&request("GET", "/secret", Credentials::None)).await;
    let Err(CallFailure::Trap(message)) = result else { panic!("expected a trap, got {result:?}") };
    assert!(message.contains("hostile plugin refuses to decide /secret"), "{message}");
    assert!(is_fail_closed(&p.authorize_request(&request("GET", "/id", Credentials::None)).await));
    // The poisoned instance was dropped: the same plugin answers its next call.
    let d = p.authorize_peer(&PeerRequest { peer_id: "12D3KooWPeer".into(), action: PeerAction::Id }).await;
    assert_eq!(d, PeerDecision::Allow);
    let stats = p.stats();
    assert_eq!((stats.traps, stats.calls), (2, 3));
    assert!(stats.instances_created >= 3, "{stats:?}");
    good_plugin_still_works(&rt).await;
}

/// Log output written to memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plugin that fails every call must not write a warning per call: one per window, the
/// rest are in the counters.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_plugin_does_not_flood_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    // The current-thread runtime runs every task on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = runtime();
    let p = load(&rt, "hostile_panic").await;
    for _ in 0..20 {
        assert!(is_fail_closed(&p.authorize_request(&request("GET", "/id", Credentials::None)).await));
    }
    assert_eq!(p.stats().traps, 20);
    let text = String::from_utf8_lossy(&captured.0.lock().expect("log buffer")).into_owned();
    assert_eq!(text.matches("plugin call failed").count(), 1, "{text}");
}

#[tokio::test]
async fn filesystem_import_is_refused_at_load() {
    let rt = runtime();
    let err = rt.load_authorizer(&PluginSpec::file(wasm("hostile_fs"), json!(null))).await.err().expect("refused");
    let PolicyError::ForbiddenImport { import, .. } = &err else { panic!("{err}") };
    assert!(import.starts_with("wasi:filesystem/"), "{import}");
    assert!(err.to_string().contains("filesystem access is not allowed"), "{err}");
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn sockets_import_is_refused_at_load() {
    let rt = runtime();
    let err = rt.load_authorizer(&PluginSpec::file(wasm("hostile_sockets"), json!(null))).await.err().expect("refused");
    let PolicyError::ForbiddenImport { import, .. } = &err else { panic!("{err}") };
    assert!(import.starts_with("wasi:sockets/"), "{import}");
    assert!(err.to_string().contains("network access is not allowed"), "{err}");
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn wrong_world_is_refused_at_load() {
    let rt = runtime();
    let err = rt.load_authorizer(&PluginSpec::builtin("cors-config", json!(null))).await.err().expect("refused");
    assert!(matches!(err, PolicyError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("cairn:policy/authorizer-plugin@0.1.0"), "{err}");
    assert!(err.to_string().contains("cairn:policy/cors@0.1.0"), "{err}");
    let err = rt.load_allocator(&PluginSpec::builtin("basic-auth", json!(null))).await.err().expect("refused");
    assert!(matches!(err, PolicyError::WrongWorld { .. }), "{err}");
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn huge_list_gives_no_cors_headers() {
    let rt = runtime();
    let p = rt.load_cors(&PluginSpec::file(wasm("hostile_huge_list"), json!(null))).await.expect("loads");
    let req = PreflightRequest {
        api: Api::Restapi,
        origin: "https://a.example".into(),
        method: "POST".into(),
        headers: vec![],
    };
    let started = Instant::now();
    let result = p.try_preflight(&req).await;
    let took = started.elapsed();
    assert!(matches!(result, Err(CallFailure::Malformed(_)) | Err(CallFailure::Deadline(_))), "{result:?}");
    assert!(took < rt.limits().call_deadline + SLACK, "took {took:?}");
    println!("huge list: {result:?} after {took:?}");
    assert_eq!(p.preflight(&req).await, Vec::<Header>::new());
    good_plugin_still_works(&rt).await;
}

/// Answers that fit in the plugin's memory but not in what the host copies out of it: a
/// 40 MiB principal, 400 000 headers. Refused while being copied, not after.
#[tokio::test]
async fn huge_answers_are_refused_before_the_host_copies_them() {
    // A long deadline, so it is the answer's size that stops the call.
    let rt = common::runtime_with_deadline(Duration::from_secs(5));
    let p = load(&rt, "hostile_huge_answer").await;
    let req = request("GET", "/id", Credentials::None);
    let result = p.try_authorize_request(&req).await;
    let Err(CallFailure::Malformed(message)) = &result else { panic!("expected a malformed answer, got {result:?}") };
    assert!(message.contains("byte limit of a plugin answer"), "{message}");
    let result = p.try_issue_token(&req).await;
    let Err(CallFailure::Malformed(message)) = &result else { panic!("expected a malformed answer, got {result:?}") };
    assert!(message.contains("byte limit of a plugin answer"), "{message}");
    assert!(is_fail_closed(&p.authorize_request(&req).await));
    assert_eq!(p.stats().malformed, 3);
    // The instance that failed was replaced; a small answer still comes through.
    let d = p.authorize_peer(&PeerRequest { peer_id: "12D3KooWPeer".into(), action: PeerAction::Id }).await;
    assert_eq!(d, PeerDecision::Allow);
    good_plugin_still_works(&rt).await;
}

#[tokio::test]
async fn garbage_is_not_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0 this is not a component").expect("write");
    let rt = runtime();
    let err = rt.load_authorizer(&PluginSpec::file(&path, json!(null))).await.err().expect("refused");
    assert!(matches!(err, PolicyError::Invalid { .. }), "{err}");
    let missing =
        rt.load_authorizer(&PluginSpec::file(dir.path().join("nope.wasm"), json!(null))).await.err().expect("refused");
    assert!(matches!(missing, PolicyError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("nope.wasm"), "{missing}");
    good_plugin_still_works(&rt).await;
}

/// A looping plugin yields the thread at every epoch tick: on a single-threaded runtime,
/// another task keeps running while the plugin burns its deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_long_call_does_not_block_the_async_runtime() {
    let rt = common::runtime_with_deadline(Duration::from_millis(200));
    let p = load(&rt, "hostile_spin").await;
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let result = p.try_authorize_request(&request("GET", "/id", Credentials::None)).await;
    ticker.abort();
    assert_eq!(result, Err(CallFailure::Deadline(Duration::from_millis(200))));
    let n = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 10, "the other task ran only {n} times during a 200 ms plugin call");
}

/// Pins the calling thread to one CPU (the first it may use) and returns it.
fn pin_to_one_cpu(cpu: Option<usize>) -> usize {
    // SAFETY: cpu_set_t is plain data; sched_{get,set}affinity(0, ...) act on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let cpu = match cpu {
            Some(cpu) => cpu,
            None => {
                assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
                (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)).expect("some CPU is allowed")
            }
        };
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
        cpu
    }
}

/// On a core shared with another busy thread a call gets about half of it. The deadline is
/// CPU time, so a spinning call is cut once it has used its budget (about twice the deadline
/// in wall time), not when the wall clock reaches the deadline: counting time the OS gave
/// to other threads refused legitimate calls on a loaded machine.
#[test]
fn the_deadline_counts_cpu_time_not_time_preempted_by_the_os() {
    let deadline = Duration::from_millis(40);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let rt = common::runtime_with_deadline(deadline);
    let p = tokio.block_on(load(&rt, "hostile_spin"));

    let cpu = pin_to_one_cpu(None);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin_to_one_cpu(Some(cpu));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    // Let the spinner start and take its share.
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let result = tokio.block_on(p.try_authorize_request(&request("GET", "/id", Credentials::None)));
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner.join().expect("spinner");

    assert_eq!(result, Err(CallFailure::Deadline(deadline)));
    assert!(took >= deadline * 3 / 2, "cut after {took:?} on a shared core: time preempted by the OS was counted");
    // The wall-clock cap (10 x the deadline) still bounds it.
    assert!(took < deadline * 10 + SLACK, "took {took:?}");
}
