//! Per-decision latency of the default plugins through the real runtime, each beside the
//! same policy code compiled natively (no sandbox), plus plugin start-up from a warm
//! compile cache. Criterion reports means; the table printed at the end has p50/p99 from
//! individually timed calls.
//!
//! Run: `cargo bench -p cairn-policy --bench decisions`

use std::time::{Duration, Instant};

use cairn_policy::{Limits, PluginSpec, PolicyRuntime, RuntimeSettings};
use cairn_policy_sdk::{Allocator as _, Authorizer as _, Cors as _};
use criterion::Criterion;
use serde_json::json;

mod host {
    pub use cairn_policy::types::*;
}
mod guest {
    pub use cairn_policy_sdk::types::*;
}

const AUTH_CONFIG: &str = r#"{"basic_auth_credentials":{"alice":"secret","bob":"hunter2"}}"#;
const CORS_CONFIG: &str = r#"{"cors_allowed_origins":["*"],"cors_allowed_methods":["GET"],"cors_allowed_headers":[],"cors_exposed_headers":["Content-Type","X-Stream-Output","X-Chunked-Output","X-Content-Length"],"cors_allow_credentials":true,"cors_max_age":"0s"}"#;
const SAMPLES: usize = 20_000;

fn headers() -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> =
        (0..8).map(|i| (format!("x-header-{i}"), "some header value of thirty b".to_string())).collect();
    h.push(("user-agent".into(), "cairn-bench".into()));
    h.push(("accept".into(), "application/json".into()));
    h
}

fn host_request() -> host::ApiRequest {
    host::ApiRequest {
        api: host::Api::Restapi,
        method: "POST".into(),
        path: "/pins/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
        query: "replication-min=2&replication-max=3".into(),
        headers: headers(),
        remote_addr: "127.0.0.1:40000".into(),
        peer_id: None,
        tls: false,
        credentials: host::Credentials::Basic(host::BasicCredentials {
            user: "alice".into(),
            password: "secret".into(),
        }),
    }
}

fn guest_request() -> guest::ApiRequest {
    guest::ApiRequest {
        api: guest::Api::Restapi,
        method: "POST".into(),
        path: "/pins/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
        query: "replication-min=2&replication-max=3".into(),
        headers: headers(),
        remote_addr: "127.0.0.1:40000".into(),
        peer_id: None,
        tls: false,
        credentials: guest::Credentials::Basic(guest::BasicCredentials {
            user: "alice".into(),
            password: "secret".into(),
        }),
    }
}

/// `n` peers in 3 groups with different free space, as `(peer, group, freespace)`.
fn peers(n: usize) -> Vec<(String, String, u64)> {
    (0..n)
        .map(|i| (format!("12D3KooWPeer{i:04}"), format!("group{}", i % 3), 1_000_000 + (i as u64 * 7919) % 100_000))
        .collect()
}

macro_rules! allocation_request {
    ($pin:path, $mode:expr, $metric:path, $request:path, $n:expr) => {{
        use $metric as Metric;
        use $pin as PinInfo;
        use $request as AllocationRequest;
        let candidates = peers($n)
            .into_iter()
            .map(|(peer_id, group, free)| {
                let metrics = vec![
                    Metric::new("tag:group", &group, 0, true),
                    Metric::new("freespace", &free.to_string(), free as i64, false),
                ];
                (peer_id, metrics)
            })
            .collect();
        let pin = PinInfo {
            cid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
            name: "bench".into(),
            mode: $mode,
            replication_factor_min: 2,
            replication_factor_max: 3,
            shard_size: 0,
            user_allocations: vec![],
            expire_at: None,
            metadata: vec![],
            origins: vec![],
        };
        AllocationRequest::from_rows(pin, vec![], vec![], candidates)
    }};
}

fn preflight_host() -> host::PreflightRequest {
    host::PreflightRequest {
        api: host::Api::Restapi,
        origin: "https://app.example".into(),
        method: "GET".into(),
        headers: vec!["content-type".into()],
    }
}

fn preflight_guest() -> guest::PreflightRequest {
    guest::PreflightRequest {
        api: guest::Api::Restapi,
        origin: "https://app.example".into(),
        method: "GET".into(),
        headers: vec!["content-type".into()],
    }
}

struct Row {
    name: String,
    p50: Duration,
    p99: Duration,
}

/// Time `SAMPLES` calls one by one (after a warm-up) and return p50 and p99.
async fn percentiles<F, Fut>(mut call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..1000 {
        call().await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[SAMPLES / 2], samples[SAMPLES * 99 / 100])
}

fn main() {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let cache = tempfile::tempdir().expect("tempdir");
    let settings = RuntimeSettings { cache_dir: Some(cache.path().to_path_buf()), limits: Limits::default() };
    let rt = PolicyRuntime::new(settings.clone()).expect("runtime");
    let fresh_rt = PolicyRuntime::new(RuntimeSettings {
        cache_dir: Some(cache.path().to_path_buf()),
        limits: Limits { max_calls_per_instance: 1, ..Limits::default() },
    })
    .expect("runtime");

    let cfg = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
    let (auth, auth_fresh, cors, alloc) = tokio.block_on(async {
        (
            rt.load_authorizer(&PluginSpec::builtin("basic-auth", cfg(AUTH_CONFIG))).await.expect("basic-auth"),
            fresh_rt.load_authorizer(&PluginSpec::builtin("basic-auth", cfg(AUTH_CONFIG))).await.expect("basic-auth"),
            rt.load_cors(&PluginSpec::builtin("cors-config", cfg(CORS_CONFIG))).await.expect("cors-config"),
            rt.load_allocator(&PluginSpec::builtin("balanced", json!(null))).await.expect("balanced"),
        )
    });
    // The contract's own cost: an allocator that does no work.
    let minimal = tokio
        .block_on(rt.load_allocator(&PluginSpec::file(
            std::path::Path::new(env!("CAIRN_PLUGIN_WASM_DIR")).join("minimal_allocator.wasm"),
            json!(null),
        )))
        .expect("minimal allocator");
    let native_auth = basic_auth::BasicAuth::from_config(AUTH_CONFIG).expect("native basic-auth");
    let native_cors = cors_config::CorsPolicy::from_config(CORS_CONFIG).expect("native cors");
    let native_alloc = balanced::Balanced::from_config("null").expect("native balanced");

    let (hreq, greq) = (host_request(), guest_request());
    let (hpre, gpre) = (preflight_host(), preflight_guest());
    let sizes = [3usize, 10, 100];
    let halloc: Vec<host::AllocationRequest> = sizes
        .iter()
        .map(|&n| {
            allocation_request!(
                host::PinInfo,
                host::PinMode::Recursive,
                cairn_policy::PeerMetric,
                host::AllocationRequest,
                n
            )
        })
        .collect();
    let galloc: Vec<guest::AllocationRequest> = sizes
        .iter()
        .map(|&n| {
            allocation_request!(
                guest::PinInfo,
                guest::PinMode::Recursive,
                cairn_policy_sdk::PeerMetric,
                guest::AllocationRequest,
                n
            )
        })
        .collect();

    // Sanity: the sandboxed and native answers agree.
    tokio.block_on(async {
        assert!(matches!(auth.authorize_request(&hreq).await, host::RequestDecision::Allow(_)));
        assert_eq!(cors.preflight(&hpre).await, native_cors.preflight(&gpre));
        for (h, g) in halloc.iter().zip(&galloc) {
            assert_eq!(alloc.allocate(h).await, native_alloc.allocate(g));
        }
    });

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut group = c.benchmark_group("decision");
    group.bench_function("authorize/basic+10-headers/wasm", |b| {
        b.iter(|| tokio.block_on(auth.authorize_request(&hreq)))
    });
    group.bench_function("authorize/basic+10-headers/native", |b| b.iter(|| native_auth.authorize_request(&greq)));
    group.bench_function("cors/preflight/wasm", |b| b.iter(|| tokio.block_on(cors.preflight(&hpre))));
    group.bench_function("cors/preflight/native", |b| b.iter(|| native_cors.preflight(&gpre)));
    for (i, n) in sizes.iter().enumerate() {
        group.bench_function(format!("allocate/{n}-candidates/wasm"), |b| {
            b.iter(|| tokio.block_on(alloc.allocate(&halloc[i])))
        });
        group.bench_function(format!("allocate/{n}-candidates/native"), |b| {
            b.iter(|| native_alloc.allocate(&galloc[i]))
        });
    }
    group.finish();

    let mut rows = Vec::new();
    tokio.block_on(async {
        let mut push = |name: &str, (p50, p99): (Duration, Duration)| rows.push(Row { name: name.into(), p50, p99 });
        push(
            "authorize basic+10 headers  wasm (pooled instance)",
            percentiles(|| async {
                std::hint::black_box(auth.authorize_request(&hreq).await);
            })
            .await,
        );
        push(
            "authorize basic+10 headers  wasm (fresh instance)",
            percentiles(|| async {
                std::hint::black_box(auth_fresh.authorize_request(&hreq).await);
            })
            .await,
        );
        push(
            "authorize basic+10 headers  native",
            percentiles(|| async {
                std::hint::black_box(native_auth.authorize_request(&greq));
            })
            .await,
        );
        push(
            "cors preflight              wasm",
            percentiles(|| async {
                std::hint::black_box(cors.preflight(&hpre).await);
            })
            .await,
        );
        push(
            "cors preflight              native",
            percentiles(|| async {
                std::hint::black_box(native_cors.preflight(&gpre));
            })
            .await,
        );
        for (i, n) in sizes.iter().enumerate() {
            let (h, g) = (&halloc[i], &galloc[i]);
            push(
                &format!("allocate {n:>3} candidates      wasm"),
                percentiles(|| async {
                    let _ = std::hint::black_box(alloc.allocate(h).await);
                })
                .await,
            );
            push(
                &format!("allocate {n:>3} candidates      native"),
                percentiles(|| async {
                    let _ = std::hint::black_box(native_alloc.allocate(g));
                })
                .await,
            );
            push(
                &format!("allocate {n:>3} candidates      wasm, no-op policy"),
                percentiles(|| async {
                    let _ = std::hint::black_box(minimal.allocate(h).await);
                })
                .await,
            );
        }
    });

    // Start-up: all four default plugins, from a warm on-disk cache, in a fresh runtime.
    let mut loads = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        tokio.block_on(async {
            let rt = PolicyRuntime::new(settings.clone()).expect("runtime");
            rt.load_authorizer(&PluginSpec::builtin("basic-auth", cfg(AUTH_CONFIG))).await.expect("basic-auth");
            rt.load_authorizer(&PluginSpec::builtin("trusted-peers", json!({"trusted_peers": ["*"]})))
                .await
                .expect("trusted-peers");
            rt.load_cors(&PluginSpec::builtin("cors-config", cfg(CORS_CONFIG))).await.expect("cors-config");
            rt.load_allocator(&PluginSpec::builtin("balanced", json!(null))).await.expect("balanced");
        });
        loads.push(started.elapsed());
    }
    loads.sort();

    println!("\nper-decision latency ({SAMPLES} calls each, timed one by one)");
    println!("{:<52} {:>10} {:>10}", "decision", "p50", "p99");
    for row in &rows {
        println!("{:<52} {:>10.2?} {:>10.2?}", row.name, row.p50, row.p99);
    }
    println!(
        "load all four default plugins, warm compile cache: median {:.2?}, max {:.2?} (20 runs)",
        loads[loads.len() / 2],
        loads[loads.len() - 1]
    );
}
