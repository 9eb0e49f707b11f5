//! The Pinning Service API over real HTTP/1.1 against a stateful fake cluster: every route, status
//! code, filter and error body, and that the server keeps serving after each error.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::types::{PinResults, PinStatus, Status};
use crate::*;

const WAIT: Duration = Duration::from_secs(10);
const CID_A: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
const CID_B: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
/// The fake cluster's peers and their IPFS daemons.
const PEER_A: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
const PEER_B: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
const IPFS_A: &str = "12D3KooWHQ6fsMEYB2xp6Gz4Ey9uvzD1qWdykVUnVMVzCjuXqcXq";
const TOKEN: &str = "tok-admin";
const ORIGIN: &str = "/ip4/203.0.113.9/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";

fn cid(s: &str) -> Cid {
    Cid::parse(s).expect("test CID")
}

/// A distinct CIDv1 (raw, sha2-256-shaped digest) per number.
fn nth_cid(n: u64) -> Cid {
    let mut digest = [7u8; 32];
    digest[..8].copy_from_slice(&n.to_be_bytes());
    let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("multihash");
    Cid::from_raw(cid::Cid::new_v1(0x55, hash))
}

fn fake_error<T>() -> Result<T, ApiError> {
    Err(ApiError::internal("not used by the pinning service"))
}

/// A cluster with a pinset: pins get increasing commit times; statuses are `pinned` on peer A
/// unless set; `status_all` fails when `fail_status_all` is set.
struct Fake {
    pins: Mutex<BTreeMap<Cid, Pin>>,
    statuses: Mutex<HashMap<Cid, Vec<(&'static str, TrackerStatus)>>>,
    calls: Mutex<Vec<String>>,
    ticks: AtomicU64,
    fail_status_all: AtomicBool,
    fail_unpin: AtomicBool,
}

impl Fake {
    fn new() -> Self {
        Fake {
            pins: Mutex::new(BTreeMap::new()),
            statuses: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            ticks: AtomicU64::new(0),
            fail_status_all: false.into(),
            fail_unpin: false.into(),
        }
    }

    /// The next commit time: one second apart, with nanoseconds so they must survive the ids.
    fn next_time(&self) -> Timestamp {
        let tick = self.ticks.fetch_add(1, Ordering::SeqCst) + 1;
        let base = Timestamp::parse("2024-01-01T00:00:00Z").expect("time");
        Timestamp(base.0 + Duration::from_secs(tick) + Duration::from_nanos(123_456_789))
    }

    fn set_status(&self, cid: &Cid, peers: Vec<(&'static str, TrackerStatus)>) {
        self.statuses.lock().expect("lock").insert(cid.clone(), peers);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("lock").push(call);
    }

    /// A pin committed directly (as another API would).
    fn insert(&self, cid: Cid, name: &str, meta: &[(&str, &str)]) -> Pin {
        let mut pin = Pin::new(cid.clone());
        pin.options.name = name.to_owned();
        pin.options.metadata = meta.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        pin.timestamp = self.next_time();
        self.pins.lock().expect("lock").insert(cid, pin.clone());
        pin
    }

    fn gpi(&self, cid: &Cid) -> GlobalPinInfo {
        let pin = self.pins.lock().expect("lock").get(cid).cloned();
        let mut gpi = GlobalPinInfo::new(cid.clone());
        let peers = match &pin {
            None => vec![(PEER_A, TrackerStatus::Unpinned)],
            Some(_) => self
                .statuses
                .lock()
                .expect("lock")
                .get(cid)
                .cloned()
                .unwrap_or_else(|| vec![(PEER_A, TrackerStatus::Pinned), (PEER_B, TrackerStatus::Remote)]),
        };
        for (peer, status) in peers {
            let info = if peer == PEER_A {
                PinInfoShort {
                    status,
                    ipfs_peer_id: IPFS_A.into(),
                    ipfs_peer_addresses: vec!["/ip4/127.0.0.1/tcp/4001".into(), "/ip4/198.51.100.1/tcp/4001".into()],
                    ..PinInfoShort::default()
                }
            } else {
                // Peer B's daemon is not known: no usable delegate address.
                PinInfoShort { status, ..PinInfoShort::default() }
            };
            gpi.peer_map.insert(peer.to_owned(), info);
        }
        if let Some(pin) = pin {
            gpi.name = pin.options.name;
            gpi.allocations = pin.allocations;
            gpi.origins = pin.options.origins;
            gpi.created = pin.timestamp;
            gpi.metadata = pin.options.metadata;
        }
        gpi
    }
}

impl ClusterApi for Fake {
    fn id(&self) -> ApiFuture<'_, Id> {
        Box::pin(async {
            Ok(Id {
                id: PEER_A.into(),
                ipfs: IpfsId {
                    id: IPFS_A.into(),
                    addresses: vec!["/ip4/198.51.100.1/tcp/4001".into()],
                    ..IpfsId::default()
                },
                ..Id::default()
            })
        })
    }

    fn version(&self) -> ApiFuture<'_, Version> {
        Box::pin(async { fake_error() })
    }

    fn peers(&self) -> ApiStream<Id> {
        futures::stream::empty().boxed()
    }

    fn peer_add(&self, _peer_id: String) -> ApiFuture<'_, Id> {
        Box::pin(async { fake_error() })
    }

    fn peer_remove(&self, _peer_id: String) -> ApiFuture<'_, ()> {
        Box::pin(async { fake_error() })
    }

    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin> {
        Box::pin(async move {
            self.record(format!(
                "pin {cid} name={} mode={:?} repl={}/{} meta={:?} origins={:?} update={:?}",
                options.name,
                options.mode,
                options.replication_factor_min,
                options.replication_factor_max,
                options.metadata,
                options.origins,
                options.pin_update.as_ref().map(Cid::to_string),
            ));
            let mut pins = self.pins.lock().expect("lock");
            let mut pin = Pin::with_options(cid.clone(), options);
            if let Some(from) = &pin.options.pin_update {
                let source = pins.get(from).ok_or_else(|| ApiError::internal("pin_update: source not pinned"))?;
                pin.allocations = source.allocations.clone();
            }
            pin.timestamp = self.next_time();
            pins.insert(cid, pin.clone());
            Ok(pin)
        })
    }

    fn pin_path(&self, _path: String, _options: PinOptions) -> ApiFuture<'_, Pin> {
        Box::pin(async { fake_error() })
    }

    fn unpin(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async move {
            self.record(format!("unpin {cid}"));
            if self.fail_unpin.load(Ordering::SeqCst) {
                return Err(ApiError::internal("consensus is down"));
            }
            self.pins.lock().expect("lock").remove(&cid).ok_or_else(ApiError::pin_not_found)
        })
    }

    fn unpin_path(&self, _path: String) -> ApiFuture<'_, Pin> {
        Box::pin(async { fake_error() })
    }

    fn allocations(&self, _filter: PinTypeFilter) -> ApiStream<Pin> {
        futures::stream::empty().boxed()
    }

    fn allocation(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        // The facade answers an absent pin with IPFS Cluster's text as an internal error.
        Box::pin(async move {
            self.pins.lock().expect("lock").get(&cid).cloned().ok_or_else(|| ApiError::internal(PIN_NOT_FOUND))
        })
    }

    /// The pinset one item at a time, plus an unpin in flight (no pin behind it); counts what it
    /// yields.
    fn status_all(&self, _filter: TrackerFilter, _local: bool) -> ApiStream<GlobalPinInfo> {
        if self.fail_status_all.load(Ordering::SeqCst) {
            return futures::stream::iter([Err(ApiError::internal("tracker unavailable"))]).boxed();
        }
        // The keys first: `gpi` takes the lock again.
        let cids: Vec<Cid> = self.pins.lock().expect("lock").keys().cloned().collect();
        let mut items: Vec<GlobalPinInfo> = cids.iter().map(|c| self.gpi(c)).collect();
        let mut unpinning = GlobalPinInfo::new(nth_cid(999_999));
        unpinning
            .peer_map
            .insert(PEER_A.into(), PinInfoShort { status: TrackerStatus::Pinned, ..PinInfoShort::default() });
        items.push(unpinning);
        futures::stream::iter(items.into_iter().map(Ok)).boxed()
    }

    fn status_cids(&self, cids: Vec<Cid>, _local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!("status_cids {}", cids.len()));
        let items: Vec<_> = cids.iter().map(|c| Ok(self.gpi(c))).collect();
        futures::stream::iter(items).boxed()
    }

    fn status(&self, cid: Cid, _local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        Box::pin(async move { Ok(self.gpi(&cid)) })
    }

    fn recover(&self, _cid: Cid, _local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        Box::pin(async { fake_error() })
    }

    fn recover_all(&self, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::empty().boxed()
    }

    fn ipfs_gc(&self, _local: bool) -> ApiFuture<'_, GlobalRepoGc> {
        Box::pin(async { fake_error() })
    }

    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph> {
        Box::pin(async { fake_error() })
    }

    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>> {
        Box::pin(async { fake_error() })
    }

    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>> {
        Box::pin(async { fake_error() })
    }

    fn metric_names(&self) -> ApiFuture<'_, Vec<String>> {
        Box::pin(async { fake_error() })
    }

    fn metrics(&self, _name: String) -> ApiFuture<'_, Vec<Metric>> {
        Box::pin(async { fake_error() })
    }

    fn add(&self, _request: AddRequest) -> ApiStream<AddedOutput> {
        futures::stream::empty().boxed()
    }
}

fn header(name: &str, value: &str) -> Header {
    (name.to_owned(), value.to_owned())
}

/// Bearer `tok-admin` or Basic `admin:secret`; anything else is 401 with IPFS Cluster's texts.
/// Remembers the API of each request it decides.
#[derive(Default)]
struct Policy {
    apis: Mutex<Vec<Api>>,
}

impl RequestPolicy for Policy {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        self.apis.lock().expect("lock").push(request.api);
        let deny = |reason: &str| {
            RequestDecision::Deny(Denial {
                status: 401,
                reason: reason.to_owned(),
                headers: vec![header("www-authenticate", "Bearer realm=\"Restricted IPFS Cluster API\"")],
            })
        };
        let decision = match &request.credentials {
            Credentials::Bearer(t) if t == TOKEN => RequestDecision::Allow("admin".into()),
            Credentials::Basic(b) if b.user == "admin" && b.password == "secret" => {
                RequestDecision::Allow("admin".into())
            }
            Credentials::None => deny("unauthorized: no auth provided"),
            _ => deny("unauthorized: invalid token"),
        };
        Box::pin(async move { decision })
    }

    fn issue_token<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        let decision = match &request.credentials {
            Credentials::Basic(b) if b.user == "admin" => TokenDecision::Token(TOKEN.into()),
            _ => TokenDecision::Deny(Denial { status: 401, reason: "unauthorized".into(), headers: Vec::new() }),
        };
        Box::pin(async move { decision })
    }

    fn preflight<'a>(&'a self, request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        let headers = vec![header("access-control-allow-origin", &request.origin)];
        Box::pin(async move { headers })
    }

    fn cors<'a>(&'a self, request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        let headers = vec![header("access-control-allow-origin", &request.origin)];
        Box::pin(async move { headers })
    }
}

struct Harness {
    server: ApiServer,
    addr: SocketAddr,
    fake: Arc<Fake>,
    policy: Arc<Policy>,
}

async fn start() -> Harness {
    let fake = Arc::new(Fake::new());
    let policy = Arc::new(Policy::default());
    // A REST-API config: serve_pinsvc makes it the pinning service's.
    let config = ServerConfig::new(vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))]);
    let server = tokio::time::timeout(WAIT, serve_pinsvc(config, fake.clone(), policy.clone()))
        .await
        .expect("serve in time")
        .expect("server starts");
    let addr = match server.local_addrs().first() {
        Some(ListenAddr::Tcp(addr)) => *addr,
        other => panic!("expected a TCP listener, got {other:?}"),
    };
    Harness { server, addr, fake, policy }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn pin_status(&self) -> PinStatus {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("PinStatus ({e}): {}", self.text()))
    }

    fn results(&self) -> PinResults {
        assert_eq!(self.status, 200, "{}", self.text());
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("PinResults ({e}): {}", self.text()))
    }

    /// Asserts a `Failure` body with this status and reason; the details.
    fn failure(&self, status: u16, reason: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["error"]["reason"], reason, "{v}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "only `error`: {v}");
        v["error"]["details"].as_str().expect("details").to_owned()
    }
}

async fn send_as(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
    let mut builder = Request::builder().method(method).uri(path).header("host", "localhost");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body)).expect("request");
    let exchange = async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply { status: parts.status.as_u16(), headers: parts.headers, body }
    };
    tokio::time::timeout(WAIT, exchange).await.expect("request in time")
}

/// An authorized request.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    send_as(
        addr,
        method,
        path,
        &[("authorization", &auth), ("content-type", "application/json")],
        Bytes::from(body.to_owned()),
    )
    .await
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, "").await
}

async fn add(addr: SocketAddr, body: Value) -> PinStatus {
    let r = send(addr, "POST", "/pins", &body.to_string()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.pin_status()
}

/// The server still answers an ordinary request.
async fn still_serving(addr: SocketAddr) {
    assert_eq!(get(addr, "/pins").await.status, 200);
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn auth_token_health_and_preflight_are_shared() {
    let h = start().await;
    // No credentials: the policy's 401, as a Failure, with its challenge and no CORS headers.
    let r = send_as(h.addr, "GET", "/pins", &[("origin", "https://app.example")], Bytes::new()).await;
    assert_eq!(r.failure(401, "UNAUTHORIZED"), "unauthorized: no auth provided");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"Restricted IPFS Cluster API\""));
    assert!(r.header("access-control-allow-origin").is_none());
    let r = send_as(h.addr, "POST", "/pins", &[("authorization", "Bearer wrong")], Bytes::from("{}")).await;
    assert_eq!(r.failure(401, "UNAUTHORIZED"), "unauthorized: invalid token");
    assert!(h.policy.apis.lock().expect("lock").iter().all(|a| *a == Api::Pinsvcapi));

    // Health needs no credentials, to GET or HEAD.
    for method in ["GET", "HEAD"] {
        let r = send_as(h.addr, method, "/health", &[], Bytes::new()).await;
        assert_eq!(r.status, 204, "{method}");
        assert!(r.body.is_empty());
    }

    // A token from Basic credentials, then used as the spec's bearer token.
    let r = send_as(h.addr, "POST", "/token", &[("authorization", "Basic YWRtaW46c2VjcmV0")], Bytes::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"token": TOKEN}));
    let r =
        send_as(h.addr, "POST", "/token", &[("authorization", format!("Bearer {TOKEN}").as_str())], Bytes::new()).await;
    assert_eq!(r.failure(401, "UNAUTHORIZED"), "unauthorized");

    // A preflight is answered by the policy without auth; an allowed request gets CORS headers.
    let r = send_as(
        h.addr,
        "OPTIONS",
        "/pins",
        &[("origin", "https://app.example"), ("access-control-request-method", "POST")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    let auth = format!("Bearer {TOKEN}");
    let r =
        send_as(h.addr, "GET", "/pins", &[("authorization", &auth), ("origin", "https://app.example")], Bytes::new())
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));

    // An OPTIONS that is no preflight, and /health other than GET/HEAD, need credentials.
    for (method, path) in [("OPTIONS", "/pins"), ("OPTIONS", "/health"), ("POST", "/health")] {
        let r = send_as(h.addr, method, path, &[("origin", "https://app.example")], Bytes::new()).await;
        assert_eq!(r.failure(401, "UNAUTHORIZED"), "unauthorized: no auth provided", "{method} {path}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn redirects_stay_on_this_host() {
    let h = start().await;
    for (target, expected) in
        [("//evil.example/", "/evil.example"), ("//evil.example/?limit=1", "/evil.example?limit=1")]
    {
        let r = get(h.addr, target).await;
        assert_eq!((r.status, r.header("location")), (307, Some(expected)), "{target}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_paths_are_failures() {
    let h = start().await;
    assert!(get(h.addr, "/id").await.failure(404, "NOT_FOUND").contains("/id"));
    get(h.addr, "/pins/a/b").await.failure(404, "NOT_FOUND");
    get(h.addr, "/").await.failure(404, "NOT_FOUND");
    for (method, path, allow) in [
        ("PUT", "/pins", "GET, POST"),
        ("DELETE", "/pins", "GET, POST"),
        ("PATCH", "/pins/abc", "GET, POST, DELETE"),
        ("GET", "/token", "POST"),
        ("POST", "/health", "GET, HEAD"),
    ] {
        let r = send(h.addr, method, path, "").await;
        r.failure(405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    get(h.addr, "/pins/%zz").await.failure(400, "BAD_REQUEST");
    // The shared strict-slash redirect.
    let r = get(h.addr, "/pins/").await;
    assert_eq!((r.status, r.header("location")), (307, Some("/pins")));
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn add_is_202_with_a_unique_request_id() {
    let h = start().await;
    let s = add(
        h.addr,
        json!({"cid": CID_A, "name": "precious", "origins": [ORIGIN], "meta": {"app": "x"}, "vendor": {"ignored": true}}),
    )
    .await;
    assert_ne!(s.requestid, CID_A);
    assert_eq!(s.status, Status::Pinned);
    assert_eq!(s.pin.cid, cid(CID_A));
    assert_eq!((s.pin.name.as_str(), s.pin.origins.as_slice()), ("precious", [ORIGIN.to_owned()].as_slice()));
    assert_eq!(s.pin.meta.get("app").map(String::as_str), Some("x"));
    assert!(s.info.is_empty());
    // Delegates: peer A's IPFS addresses with its id, public first; peer B has none usable.
    assert_eq!(
        s.delegates,
        [format!("/ip4/198.51.100.1/tcp/4001/p2p/{IPFS_A}"), format!("/ip4/127.0.0.1/tcp/4001/p2p/{IPFS_A}")]
    );
    let committed = h.fake.pins.lock().expect("lock")[&cid(CID_A)].timestamp;
    assert_eq!(s.created, committed);
    let raw = send(h.addr, "GET", &format!("/pins/{}", s.requestid), "").await.json();
    assert_eq!(raw["created"], "2024-01-01T00:00:01.123456789Z");
    assert_eq!(raw["info"], json!({}));
    assert_eq!(
        h.fake.calls(),
        [format!(
            "pin {CID_A} name=precious mode=Recursive repl=0/0 meta={{\"app\": \"x\"}} origins=[\"{ORIGIN}\"] update=None"
        )]
    );

    // Only the CID is required; pinning it again is a new request with a new id, and the old
    // one is retired.
    let again = add(h.addr, json!({"cid": CID_A})).await;
    assert_ne!(again.requestid, s.requestid);
    assert_eq!(again.pin.name, "");
    get(h.addr, &format!("/pins/{}", s.requestid)).await.failure(404, "NOT_FOUND");
    assert_eq!(get(h.addr, &format!("/pins/{}", again.requestid)).await.status, 200);

    // A pin no peer has started on yet is queued.
    h.fake.set_status(&cid(CID_B), vec![(PEER_A, TrackerStatus::Unpinned), (PEER_B, TrackerStatus::Remote)]);
    assert_eq!(add(h.addr, json!({"cid": CID_B})).await.status, Status::Queued);
    h.server.shutdown().await;
}

#[tokio::test]
async fn bad_pin_bodies_are_400_naming_the_field() {
    let h = start().await;
    let long = "n".repeat(256);
    let origins21: Vec<String> = (0..21).map(|i| format!("/ip4/203.0.113.{i}/tcp/4001/p2p/{PEER_B}")).collect();
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "request body is not valid JSON"),
        ("".into(), "request body is not valid JSON"),
        (format!("{{\"cid\":\"{CID_A}\"}} trailing"), "request body is not valid JSON"),
        (json!([CID_A]).to_string(), "request body must be a JSON object"),
        (json!({"name": "x"}).to_string(), "cid: required"),
        (json!({"cid": null}).to_string(), "cid: required"),
        (json!({"cid": 42}).to_string(), "cid: must be a string"),
        (json!({"cid": "QmNotACid"}).to_string(), "cid: invalid CID \"QmNotACid\""),
        (json!({"cid": CID_A, "name": long}).to_string(), "name: longer than 255 characters"),
        (json!({"cid": CID_A, "name": 7}).to_string(), "name: must be a string"),
        (json!({"cid": CID_A, "origins": "x"}).to_string(), "origins: must be an array"),
        (
            json!({"cid": CID_A, "origins": ["/ip4/1.2.3.4/tcp/1"]}).to_string(),
            "origins[0]: \"/ip4/1.2.3.4/tcp/1\" does not end with /p2p/",
        ),
        (json!({"cid": CID_A, "origins": [ORIGIN, "nope"]}).to_string(), "origins[1]: \"nope\" is not a multiaddr"),
        (json!({"cid": CID_A, "origins": [ORIGIN, ORIGIN]}).to_string(), "origins[1]: "),
        (json!({"cid": CID_A, "origins": [1]}).to_string(), "origins[0]: must be a string"),
        (json!({"cid": CID_A, "origins": origins21}).to_string(), "origins: more than 20"),
        (json!({"cid": CID_A, "meta": {"a": 1}}).to_string(), "meta.a: must be a string"),
        (json!({"cid": CID_A, "meta": ["a"]}).to_string(), "meta: must be an object"),
    ];
    for (body, details) in cases {
        let r = send(h.addr, "POST", "/pins", &body).await;
        let got = r.failure(400, "BAD_REQUEST");
        assert!(got.starts_with(details), "{body}: {got}");
        still_serving(h.addr).await;
    }
    // 255 characters of several bytes each are fine.
    add(h.addr, json!({"cid": CID_A, "name": "é".repeat(255)})).await;
    assert!(h.fake.calls().len() == 1, "only the valid pin reached the cluster: {:?}", h.fake.calls());
    h.server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_and_the_server_goes_on() {
    let h = start().await;
    let name = "x".repeat(super::MAX_BODY);
    let body = json!({"cid": CID_A, "name": name}).to_string();
    let r = send(h.addr, "POST", "/pins", &body).await;
    assert!(r.failure(413, "PAYLOAD_TOO_LARGE").contains("larger than"));
    // Chunked, with no length announced.
    let auth = format!("Bearer {TOKEN}");
    let chunks = futures::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(vec![b' '; 64 * 1024])))),
    );
    let request = Request::builder()
        .method("POST")
        .uri("/pins")
        .header("host", "localhost")
        .header("authorization", &auth)
        .body(http_body_util::StreamBody::new(chunks))
        .expect("request");
    let exchange = async {
        let stream = TcpStream::connect(h.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        let response = sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    };
    let (status, body) = tokio::time::timeout(WAIT, exchange).await.expect("in time");
    assert_eq!(status, 413);
    let failure: super::types::Failure = serde_json::from_slice(&body).expect("Failure");
    assert_eq!(failure.error.reason, "PAYLOAD_TOO_LARGE");
    // A body announced far beyond what is drained is refused at once (none of it is sent).
    let raw = raw_exchange(
        h.addr,
        format!("POST /pins HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100000000\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    assert!(raw.contains("PAYLOAD_TOO_LARGE"), "{raw}");
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

/// Writes raw bytes and reads until the server closes the connection.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(WAIT, exchange).await.expect("raw exchange in time")
}

#[tokio::test]
async fn get_by_request_id_maps_the_global_status() {
    let h = start().await;
    let s = add(h.addr, json!({"cid": CID_A})).await;
    let path = format!("/pins/{}", s.requestid);
    let a = cid(CID_A);
    use TrackerStatus::*;
    for (peers, want) in [
        (vec![(PEER_A, Pinned), (PEER_B, PinError)], Status::Failed),
        (vec![(PEER_A, Pinned), (PEER_B, ClusterError)], Status::Failed),
        (vec![(PEER_A, Pinning), (PEER_B, PinQueued)], Status::Queued),
        (vec![(PEER_A, Pinning), (PEER_B, Pinned)], Status::Pinning),
        (vec![(PEER_A, Pinned), (PEER_B, Remote)], Status::Pinned),
        // Committed, no peer on it yet: queued, not 404 as in IPFS Cluster.
        (vec![(PEER_A, Remote), (PEER_B, Unpinned)], Status::Queued),
        (vec![(PEER_A, UnexpectedlyUnpinned)], Status::Queued),
    ] {
        h.fake.set_status(&a, peers.clone());
        let r = get(h.addr, &path).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let got = r.pin_status();
        assert_eq!(got.status, want, "{peers:?}");
        assert_eq!(got.requestid, s.requestid);
        assert!(!got.delegates.is_empty());
    }
    // Only peer B, whose IPFS daemon is unknown: this peer's own IPFS addresses.
    h.fake.set_status(&a, vec![(PEER_B, Pinned)]);
    assert_eq!(get(h.addr, &path).await.pin_status().delegates, [format!("/ip4/198.51.100.1/tcp/4001/p2p/{IPFS_A}")]);

    // Not an id of ours: 400. A well-formed id of no request: 404.
    for bad in [CID_A, "abc", "AAAA", "-_-_"] {
        get(h.addr, &format!("/pins/{bad}")).await.failure(400, "BAD_REQUEST");
    }
    let unknown = super::requestid::encode(&cid(CID_B), Timestamp::ZERO);
    assert!(get(h.addr, &format!("/pins/{unknown}")).await.failure(404, "NOT_FOUND").contains("requestid"));
    let stale = super::requestid::encode(&a, Timestamp::ZERO);
    get(h.addr, &format!("/pins/{stale}")).await.failure(404, "NOT_FOUND");
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn replace_pins_the_new_cid_unpins_the_old_and_retires_its_id() {
    let h = start().await;
    let old = add(h.addr, json!({"cid": CID_A, "name": "v1"})).await;
    let r = send(h.addr, "POST", &format!("/pins/{}", old.requestid), &json!({"cid": CID_B, "name": "v2"}).to_string())
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let new = r.pin_status();
    assert_ne!(new.requestid, old.requestid);
    assert_eq!((new.pin.cid.clone(), new.pin.name.as_str()), (cid(CID_B), "v2"));
    let calls = h.fake.calls();
    assert!(
        calls[1].starts_with(&format!("pin {CID_B} name=v2 "))
            && calls[1].ends_with(&format!("update=Some(\"{CID_A}\")")),
        "{calls:?}"
    );
    assert_eq!(calls[2], format!("unpin {CID_A}"));
    get(h.addr, &format!("/pins/{}", old.requestid)).await.failure(404, "NOT_FOUND");
    assert_eq!(get(h.addr, &format!("/pins/{}", new.requestid)).await.status, 200);
    // The retired id cannot be replaced or deleted either.
    send(h.addr, "POST", &format!("/pins/{}", old.requestid), &json!({"cid": CID_A}).to_string())
        .await
        .failure(404, "NOT_FOUND");
    send(h.addr, "DELETE", &format!("/pins/{}", old.requestid), "").await.failure(404, "NOT_FOUND");

    // Same CID: re-pinned (new commit time, new id), not unpinned.
    let r = send(h.addr, "POST", &format!("/pins/{}", new.requestid), &json!({"cid": CID_B, "name": "v3"}).to_string())
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let same = r.pin_status();
    assert_ne!(same.requestid, new.requestid);
    assert_eq!(same.pin.name, "v3");
    assert!(!h.fake.calls().contains(&format!("unpin {CID_B}")));
    get(h.addr, &format!("/pins/{}", new.requestid)).await.failure(404, "NOT_FOUND");
    assert_eq!(get(h.addr, &format!("/pins/{}", same.requestid)).await.pin_status().pin.name, "v3");

    // Bad id, bad body.
    send(h.addr, "POST", &format!("/pins/{CID_B}"), &json!({"cid": CID_A}).to_string())
        .await
        .failure(400, "BAD_REQUEST");
    let details = send(h.addr, "POST", &format!("/pins/{}", same.requestid), "{}").await.failure(400, "BAD_REQUEST");
    assert_eq!(details, "cid: required");

    // The old pin cannot be removed: the error says so and names the new request.
    h.fake.fail_unpin.store(true, Ordering::SeqCst);
    let r = send(h.addr, "POST", &format!("/pins/{}", same.requestid), &json!({"cid": CID_A}).to_string()).await;
    let details = r.failure(500, "INTERNAL_SERVER_ERROR");
    assert!(
        details.contains("the new pin was created (requestid ") && details.contains("consensus is down"),
        "{details}"
    );
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn delete_is_202_then_404() {
    let h = start().await;
    let s = add(h.addr, json!({"cid": CID_A})).await;
    let path = format!("/pins/{}", s.requestid);
    let r = send(h.addr, "DELETE", &path, "").await;
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    assert_eq!(h.fake.calls().last().map(String::as_str), Some(format!("unpin {CID_A}").as_str()));
    send(h.addr, "DELETE", &path, "").await.failure(404, "NOT_FOUND");
    get(h.addr, &path).await.failure(404, "NOT_FOUND");
    send(h.addr, "DELETE", "/pins/not-an-id", "").await.failure(400, "BAD_REQUEST");
    h.fake.fail_unpin.store(true, Ordering::SeqCst);
    let s = add(h.addr, json!({"cid": CID_B})).await;
    let details =
        send(h.addr, "DELETE", &format!("/pins/{}", s.requestid), "").await.failure(500, "INTERNAL_SERVER_ERROR");
    assert_eq!(details, "consensus is down");
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

/// Six pins, oldest first: names, meta and statuses to filter on.
fn seed(fake: &Fake) -> Vec<Pin> {
    let pins = vec![
        fake.insert(nth_cid(1), "Alpha", &[("app", "x")]),
        fake.insert(nth_cid(2), "alphabet", &[("app", "x"), ("k", "v")]),
        fake.insert(nth_cid(3), "beta", &[("app", "y")]),
        fake.insert(nth_cid(4), "gamma", &[]),
        fake.insert(nth_cid(5), "ALPHA", &[("app", "x")]),
        fake.insert(nth_cid(6), "delta", &[]),
    ];
    fake.set_status(&nth_cid(3), vec![(PEER_A, TrackerStatus::PinQueued)]);
    fake.set_status(&nth_cid(4), vec![(PEER_A, TrackerStatus::PinError)]);
    fake.set_status(&nth_cid(6), vec![(PEER_A, TrackerStatus::Pinning)]);
    pins
}

fn names(results: &PinResults) -> Vec<&str> {
    results.results.iter().map(|s| s.pin.name.as_str()).collect()
}

#[tokio::test]
async fn list_defaults_to_pinned_newest_first_with_count() {
    let h = start().await;
    let pins = seed(&h.fake);
    let r = get(h.addr, "/pins").await.results();
    // The in-flight unpin (no pin behind it) is not a request.
    assert_eq!(r.count, 3);
    assert_eq!(names(&r), ["ALPHA", "alphabet", "Alpha"]);
    let first = &r.results[0];
    assert_eq!(first.requestid, super::requestid::encode(&pins[4].cid, pins[4].timestamp));
    assert_eq!(first.status, Status::Pinned);
    assert_eq!(first.created, pins[4].timestamp);
    assert!(!first.delegates.is_empty());
    // The ids of a list are the ids GET knows.
    assert_eq!(get(h.addr, &format!("/pins/{}", first.requestid)).await.pin_status(), *first);

    let r = get(h.addr, "/pins?status=queued,failed,pinning").await.results();
    assert_eq!(names(&r), ["delta", "gamma", "beta"]);
    assert_eq!(
        r.results.iter().map(|s| s.status).collect::<Vec<_>>(),
        [Status::Pinning, Status::Failed, Status::Queued]
    );
    let r = get(h.addr, "/pins?status=pinned,queued,pinning,failed").await.results();
    assert_eq!((r.count, r.results.len()), (6, 6));
    // An empty value is no filter; unknown keys are ignored.
    assert_eq!(get(h.addr, "/pins?status=&name=&whatever=1").await.results().count, 3);
    for bad in ["status=done", "status=pinned,", "status=Pinned"] {
        assert!(get(h.addr, &format!("/pins?{bad}")).await.failure(400, "BAD_REQUEST").starts_with("status:"), "{bad}");
    }
    h.fake.fail_status_all.store(true, Ordering::SeqCst);
    assert_eq!(get(h.addr, "/pins").await.failure(500, "INTERNAL_SERVER_ERROR"), "tracker unavailable");
    h.fake.fail_status_all.store(false, Ordering::SeqCst);
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn list_name_match_modes() {
    let h = start().await;
    seed(&h.fake);
    let all = "status=pinned,queued,pinning,failed";
    for (query, want) in [
        ("name=Alpha", vec!["Alpha"]),
        ("name=Alpha&match=exact", vec!["Alpha"]),
        ("name=alpha&match=iexact", vec!["ALPHA", "Alpha"]),
        ("name=lpha&match=partial", vec!["alphabet", "Alpha"]),
        ("name=ALP&match=ipartial", vec!["ALPHA", "alphabet", "Alpha"]),
        ("name=et&match=partial", vec!["beta", "alphabet"]),
        ("name=nothing&match=ipartial", vec![]),
    ] {
        let r = get(h.addr, &format!("/pins?{all}&{query}")).await.results();
        assert_eq!(names(&r), want, "{query}");
        assert_eq!(r.count as usize, want.len());
    }
    assert!(get(h.addr, "/pins?match=fuzzy").await.failure(400, "BAD_REQUEST").starts_with("match:"));
    let long = "n".repeat(256);
    assert!(get(h.addr, &format!("/pins?name={long}")).await.failure(400, "BAD_REQUEST").starts_with("name:"));
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn list_limit_bounds_and_paging_with_before_and_after() {
    let h = start().await;
    let pins = seed(&h.fake);
    let all = "status=pinned,queued,pinning,failed";
    let r = get(h.addr, &format!("/pins?{all}&limit=2")).await.results();
    assert_eq!((r.count, names(&r)), (6, vec!["delta", "ALPHA"]));
    assert_eq!(get(h.addr, &format!("/pins?{all}&limit=1000")).await.results().results.len(), 6);
    assert_eq!(get(h.addr, &format!("/pins?{all}&limit=1")).await.results().results.len(), 1);
    for bad in ["limit=0", "limit=1001", "limit=ten", "limit=-1", "limit=1.5"] {
        assert!(get(h.addr, &format!("/pins?{bad}")).await.failure(400, "BAD_REQUEST").starts_with("limit:"), "{bad}");
    }

    // Page through everything with before=<oldest created of the page>.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/pins?{all}&limit=4");
        if let Some(b) = &before {
            path.push_str(&format!("&before={}", enc(b)));
        }
        let page = get(h.addr, &path).await.results();
        if page.results.is_empty() {
            break;
        }
        seen.extend(page.results.iter().map(|s| s.pin.cid.clone()));
        before = page.results.last().map(|s| s.created.to_string());
    }
    let newest_first: Vec<Cid> = pins.iter().rev().map(|p| p.cid.clone()).collect();
    assert_eq!(seen, newest_first);

    // after is exclusive too; both together make a window.
    let after = enc(&pins[1].timestamp.to_string());
    let r = get(h.addr, &format!("/pins?{all}&after={after}")).await.results();
    assert_eq!(names(&r), ["delta", "ALPHA", "gamma", "beta"]);
    let before = enc(&pins[4].timestamp.to_string());
    let r = get(h.addr, &format!("/pins?{all}&after={after}&before={before}")).await.results();
    assert_eq!(names(&r), ["gamma", "beta"]);
    // Other offsets name the same instant.
    let r = get(h.addr, &format!("/pins?{all}&after={}", enc("2024-01-01T02:00:02.5+02:00"))).await.results();
    assert_eq!(r.count, 4);
    for bad in ["before=yesterday", "after=2024-01-01", "before=2024-01-01T00:00:00"] {
        get(h.addr, &format!("/pins?{bad}")).await.failure(400, "BAD_REQUEST");
    }
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn list_meta_subset_and_cid_filters() {
    let h = start().await;
    let pins = seed(&h.fake);
    let all = "status=pinned,queued,pinning,failed";
    let meta = |v: Value| enc(&v.to_string());
    let r = get(h.addr, &format!("/pins?{all}&meta={}", meta(json!({"app": "x"})))).await.results();
    assert_eq!(names(&r), ["ALPHA", "alphabet", "Alpha"]);
    let r = get(h.addr, &format!("/pins?{all}&meta={}", meta(json!({"app": "x", "k": "v"})))).await.results();
    assert_eq!(names(&r), ["alphabet"]);
    let r = get(h.addr, &format!("/pins?{all}&meta={}", meta(json!({"app": "z"})))).await.results();
    assert_eq!((r.count, r.results.len()), (0, 0));
    assert_eq!(get(h.addr, &format!("/pins?{all}&meta={}", meta(json!({})))).await.results().count, 6);
    for bad in [meta(json!({"app": 1})), meta(json!(["app"])), enc("{app:x}")] {
        assert!(get(h.addr, &format!("/pins?meta={bad}")).await.failure(400, "BAD_REQUEST").starts_with("meta:"));
    }

    // cid: only these, asked one by one; the default status filter still applies.
    let list = format!("{},{},{}", pins[0].cid, pins[3].cid, nth_cid(77));
    let r = get(h.addr, &format!("/pins?cid={list}")).await.results();
    assert_eq!(names(&r), ["Alpha"]);
    let r = get(h.addr, &format!("/pins?{all}&cid={list}")).await.results();
    assert_eq!(names(&r), ["gamma", "Alpha"]);
    assert_eq!(h.fake.calls().last().map(String::as_str), Some("status_cids 3"));
    let ten: Vec<String> = (1..=10).map(|n| nth_cid(n).to_string()).collect();
    assert_eq!(get(h.addr, &format!("/pins?{all}&cid={}", ten.join(","))).await.results().count, 6);
    let eleven: Vec<String> = (1..=11).map(|n| nth_cid(n).to_string()).collect();
    get(h.addr, &format!("/pins?cid={}", eleven.join(","))).await.failure(400, "BAD_REQUEST");
    for bad in ["cid=nope", &format!("cid={},,{}", pins[0].cid, pins[1].cid)] {
        assert!(get(h.addr, &format!("/pins?{bad}")).await.failure(400, "BAD_REQUEST").starts_with("cid:"), "{bad}");
    }
    still_serving(h.addr).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn list_keeps_the_newest_of_a_large_pinset() {
    let h = start().await;
    for n in 0..3000 {
        h.fake.insert(nth_cid(n), &format!("p{n}"), &[]);
    }
    let r = get(h.addr, "/pins?limit=5").await.results();
    assert_eq!(r.count, 3000);
    assert_eq!(names(&r), ["p2999", "p2998", "p2997", "p2996", "p2995"]);
    h.server.shutdown().await;
}
