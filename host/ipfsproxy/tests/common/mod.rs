//! Test fakes: a fake Kubo (a hyper server that records requests), a fake cluster, a policy
//! that denies on demand, a proxy started in front of them, and HTTP clients.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_api::*;
use cairn_ipfs::DaemonAddr;
use cairn_ipfsproxy::{ProxyCluster, ProxyConfig, ProxyServer, RepoStat};
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};

/// Upper bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
pub const CID2: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
pub const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
pub const PEER2: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";

pub fn cid(s: &str) -> Cid {
    Cid::parse(s).expect("test CID")
}

pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e: Infallible| match e {}).boxed_unsync()
}

// ---------------------------------------------------------------------------------------------
// Fake Kubo

/// A request the fake daemon saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query, as received.
    pub target: String,
    pub headers: HeaderMap,
    /// Bytes of the body (counted; kept for small bodies only).
    pub body_len: usize,
}

/// A fake Kubo RPC API.
#[derive(Default)]
pub struct FakeKubo {
    pub seen: Mutex<Vec<Seen>>,
    pub version_calls: AtomicUsize,
}

impl FakeKubo {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Requests to paths starting with `prefix` (OPTIONS probes and version asks are counted
    /// separately by their own paths).
    pub fn seen_path(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.target.split('?').next() == Some(path)).collect()
    }

    fn record(&self, seen: Seen) {
        self.seen.lock().expect("seen").push(seen);
    }
}

/// Where the fake listens.
pub enum FakeAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn json(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("server", "kubo/fake")
        .body(full(body.to_owned()))
        .expect("response")
}

/// The fake's answers.
async fn answer(kubo: Arc<FakeKubo>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let seen =
        Seen { method: parts.method.clone(), target: target.clone(), headers: parts.headers.clone(), body_len: 0 };

    if parts.method == Method::OPTIONS {
        kubo.record(seen);
        let mut builder = Response::builder().status(200).header("vary", "Origin").header("x-kubo-options", "1");
        if let Some(origin) = parts.headers.get("origin") {
            builder = builder
                .header("access-control-allow-origin", origin)
                .header("access-control-allow-credentials", "true");
        }
        return builder.body(full("")).expect("response");
    }
    if parts.method == Method::HEAD {
        kubo.record(seen);
        return Response::builder()
            .status(200)
            .header("x-head", "yes")
            .header("content-length", "42")
            .body(full(""))
            .expect("r");
    }
    // Echo: streams the request body back as it arrives, then a trailer.
    if path == "/api/v0/echo" {
        kubo.record(seen);
        let frames = BodyExt::into_data_stream(body)
            .map(|chunk| chunk.map(Frame::data).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>))
            .chain(futures::stream::once(async {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-stream-error", "echo done".parse().expect("value"));
                Ok(Frame::trailers(trailers))
            }));
        return Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("trailer", "X-Stream-Error")
            .header("x-kubo", "echo")
            .body(StreamBody::new(frames).boxed_unsync())
            .expect("response");
    }
    // Everything else: read the body whole (they are small) and count it.
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    kubo.record(Seen { body_len: bytes.len(), ..seen });
    match path.as_str() {
        "/api/v0/version" => {
            kubo.version_calls.fetch_add(1, Ordering::SeqCst);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("access-control-expose-headers", "X-Stream-Output, X-Chunked-Output, X-Content-Length")
                .header("x-extra", "extra-value")
                .body(full(r#"{"Version":"0.30.0"}"#))
                .expect("response")
        }
        "/api/v0/id" => json(200, &format!(r#"{{"ID":"{PEER}","Addresses":[],"AgentVersion":"kubo/fake"}}"#)),
        "/api/v0/resolve" => {
            if query.contains("missing") {
                json(500, r#"{"Message":"could not resolve name","Code":0,"Type":"error"}"#)
            } else {
                json(200, &format!(r#"{{"Path":"/ipfs/{CID2}"}}"#))
            }
        }
        "/api/v0/block/put" => {
            if query.contains("fail") {
                return json(500, r#"{"Message":"block put failed","Code":0,"Type":"error"}"#);
            }
            json(200, &format!("{{\"Key\":\"{CID}\",\"Size\":{}}}\n{{\"Key\":\"{CID2}\",\"Size\":3}}\n", bytes.len()))
        }
        "/api/v0/dag/put" => json(200, &format!("{{\"Cid\":{{\"/\":\"{CID2}\"}}}}\n")),
        "/api/v0/teapot" => json(418, r#"{"Message":"short and stout","Code":0,"Type":"error"}"#),
        _ => json(404, "404 page not found"),
    }
}

/// Starts a fake Kubo.
pub async fn start_kubo(addr: FakeAddr) -> (Arc<FakeKubo>, DaemonAddr, tokio::task::JoinHandle<()>) {
    let kubo = Arc::new(FakeKubo::default());
    let k = kubo.clone();
    match addr {
        FakeAddr::Tcp(socket) => {
            let listener = TcpListener::bind(socket).await.expect("bind fake kubo");
            let port = listener.local_addr().expect("addr").port();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { return };
                    serve_conn(TokioIo::new(stream), k.clone());
                }
            });
            (kubo, DaemonAddr::Tcp { host: "127.0.0.1".into(), port }, task)
        }
        FakeAddr::Unix(path) => {
            let listener = UnixListener::bind(&path).expect("bind fake kubo socket");
            let task = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { return };
                    serve_conn(TokioIo::new(stream), k.clone());
                }
            });
            (kubo, DaemonAddr::Unix(path), task)
        }
    }
}

/// Serves one connection of the fake on its own task.
pub fn serve_conn<I>(io: I, kubo: Arc<FakeKubo>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req| {
            let kubo = kubo.clone();
            async move { Ok::<_, Infallible>(answer(kubo, req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
    });
}

// ---------------------------------------------------------------------------------------------
// Fake cluster

/// A cluster with a pinset in memory.
#[derive(Default)]
pub struct FakeCluster {
    pub pins: Mutex<BTreeMap<String, Pin>>,
    pub calls: Mutex<Vec<String>>,
    /// `allocations` ends with this error after the pins.
    pub list_error: Mutex<Option<String>>,
    /// `pin` fails for this CID.
    pub pin_fails_for: Mutex<Option<String>>,
}

impl FakeCluster {
    fn record(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    pub fn insert(&self, pin: Pin) {
        self.pins.lock().expect("pins").insert(pin.cid.to_string(), pin);
    }

    fn resolve(path: &str) -> Result<Cid, ApiError> {
        let rest = path.strip_prefix("/ipfs/").ok_or_else(|| ApiError::internal("cannot resolve"))?;
        match rest.split_once('/') {
            None => Cid::parse(rest).map_err(|e| ApiError::internal(e.to_string())),
            Some(_) => Ok(cid(CID2)),
        }
    }
}

fn unsupported<T: Send + 'static>() -> ApiFuture<'static, T> {
    Box::pin(async { Err(ApiError::internal("not in the fake")) })
}

impl ClusterApi for FakeCluster {
    fn id(&self) -> ApiFuture<'_, Id> {
        unsupported()
    }
    fn version(&self) -> ApiFuture<'_, Version> {
        unsupported()
    }
    fn peers(&self) -> ApiStream<Id> {
        futures::stream::empty().boxed()
    }
    fn peer_add(&self, _peer_id: String) -> ApiFuture<'_, Id> {
        unsupported()
    }
    fn peer_remove(&self, _peer_id: String) -> ApiFuture<'_, ()> {
        unsupported()
    }
    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin> {
        self.record(format!("pin {cid} mode={:?}", options.mode));
        Box::pin(async move {
            if self.pin_fails_for.lock().expect("lock").as_deref() == Some(cid.as_str()) {
                return Err(ApiError::internal(format!("cannot pin {cid}")));
            }
            let pin = Pin::with_options(cid, options);
            self.insert(pin.clone());
            Ok(pin)
        })
    }
    fn pin_path(&self, path: String, options: PinOptions) -> ApiFuture<'_, Pin> {
        let update = options.pin_update.as_ref().map(|c| format!(" update={c}")).unwrap_or_default();
        self.record(format!("pin_path {path} mode={:?}{update}", options.mode));
        Box::pin(async move {
            let cid = Self::resolve(&path)?;
            let pin = Pin::with_options(cid, options);
            self.insert(pin.clone());
            Ok(pin)
        })
    }
    fn unpin(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        self.record(format!("unpin {cid}"));
        Box::pin(
            async move { self.pins.lock().expect("pins").remove(cid.as_str()).ok_or_else(ApiError::pin_not_found) },
        )
    }
    fn unpin_path(&self, path: String) -> ApiFuture<'_, Pin> {
        self.record(format!("unpin_path {path}"));
        Box::pin(async move {
            let cid = Self::resolve(&path)?;
            self.pins.lock().expect("pins").remove(cid.as_str()).ok_or_else(ApiError::pin_not_found)
        })
    }
    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        self.record("allocations".into());
        let mut items: Vec<Result<Pin, ApiError>> =
            self.pins.lock().expect("pins").values().filter(|p| filter.matches(p.pin_type)).cloned().map(Ok).collect();
        if let Some(e) = self.list_error.lock().expect("lock").clone() {
            items.push(Err(ApiError::internal(e)));
            items.push(Ok(Pin::new(cid(CID))));
        }
        futures::stream::iter(items).boxed()
    }
    fn allocation(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        self.record(format!("allocation {cid}"));
        Box::pin(async move {
            self.pins
                .lock()
                .expect("pins")
                .get(cid.as_str())
                .cloned()
                .ok_or_else(|| ApiError::NotFound(PIN_NOT_FOUND.into()))
        })
    }
    fn status_all(&self, _filter: TrackerFilter, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::empty().boxed()
    }
    fn status_cids(&self, _cids: Vec<Cid>, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::empty().boxed()
    }
    fn status(&self, _cid: Cid, _local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        unsupported()
    }
    fn recover(&self, _cid: Cid, _local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        unsupported()
    }
    fn recover_all(&self, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::empty().boxed()
    }
    fn ipfs_gc(&self, local: bool) -> ApiFuture<'_, GlobalRepoGc> {
        self.record(format!("ipfs_gc local={local}"));
        Box::pin(async {
            let mut gc = GlobalRepoGc::default();
            gc.peer_map.insert(
                PEER.into(),
                RepoGc {
                    peer: PEER.into(),
                    peername: "p0".into(),
                    keys: vec![
                        IpfsRepoGc { key: Some(cid(CID)), error: String::new() },
                        IpfsRepoGc { key: None, error: "block busy".into() },
                    ],
                    error: String::new(),
                },
            );
            gc.peer_map.insert(
                PEER2.into(),
                RepoGc { peer: PEER2.into(), peername: "p1".into(), keys: vec![], error: "daemon down".into() },
            );
            Ok(gc)
        })
    }
    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph> {
        unsupported()
    }
    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>> {
        unsupported()
    }
    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>> {
        unsupported()
    }
    fn metric_names(&self) -> ApiFuture<'_, Vec<String>> {
        unsupported()
    }
    fn metrics(&self, _name: String) -> ApiFuture<'_, Vec<Metric>> {
        unsupported()
    }
    /// One output per file part (its name, [`CID`], its byte count as the size), then the root
    /// ([`CID2`]); a part named `fail` ends the stream with an error.
    fn add(&self, request: AddRequest) -> ApiStream<AddedOutput> {
        self.record(format!(
            "add layout={:?} no_pin={} stream={}",
            request.params.layout, request.params.no_pin, request.params.stream_channels
        ));
        let mut parts = request.parts;
        async_stream(move |tx| async move {
            while let Some(part) = parts.next().await {
                let mut part = match part {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let name = part.file_name.clone().unwrap_or_default();
                let mut size = 0u64;
                while let Some(chunk) = part.data.next().await {
                    match chunk {
                        Ok(c) => size += c.len() as u64,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if name == "fail" {
                    let _ = tx.send(Err(ApiError::internal("adder failed")));
                    return;
                }
                let _ = tx.send(Ok(AddedOutput { name, cid: Some(cid(CID)), bytes: 0, size, allocations: vec![] }));
            }
            let _ = tx.send(Ok(AddedOutput {
                name: String::new(),
                cid: Some(cid(CID2)),
                bytes: 0,
                size: 7,
                allocations: vec![PEER.into()],
            }));
        })
    }
}

/// A stream fed by a task through an unbounded channel.
fn async_stream<F, Fut>(f: F) -> ApiStream<AddedOutput>
where
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Result<AddedOutput, ApiError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Fixed repo stats.
pub struct FakeExtras;

impl ProxyCluster for FakeExtras {
    fn repo_stat_all(&self) -> ApiFuture<'_, RepoStat> {
        Box::pin(async { Ok(RepoStat { repo_size: 1000, storage_max: 5000, num_objects: 0 }) })
    }
}

/// Denies requests whose path contains `/forbidden` or that carry `x-deny`.
pub struct TestPolicy;

impl RequestPolicy for TestPolicy {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        Box::pin(async move {
            assert_eq!(request.api, Api::Ipfsproxy);
            if request.path.contains("/forbidden") || request.headers.iter().any(|(k, _)| k == "x-deny") {
                RequestDecision::Deny(Denial {
                    status: 403,
                    reason: format!("{} {} is not allowed", request.method, request.path),
                    headers: vec![("x-denied-by".into(), "test".into())],
                })
            } else {
                RequestDecision::Allow("test".into())
            }
        })
    }
    fn issue_token<'a>(&'a self, _request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        Box::pin(async { TokenDecision::Deny(Denial { status: 401, reason: "no".into(), headers: vec![] }) })
    }
    fn preflight<'a>(&'a self, _request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
    fn cors<'a>(&'a self, _request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
}

/// Authentication as the `basic-auth` plugin does it: Basic `admin:secret`, and a real CORS
/// preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) allowed without
/// credentials, since browsers never send them on preflights. Remembers the preflights it answers.
#[derive(Default)]
pub struct AuthPolicy {
    pub preflights: Mutex<Vec<PreflightRequest>>,
}

/// `Authorization` for [`AuthPolicy`]'s user.
pub const ADMIN_BASIC: &str = "Basic YWRtaW46c2VjcmV0";

impl RequestPolicy for AuthPolicy {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        Box::pin(async move {
            let has = |name: &str| request.headers.iter().any(|(k, v)| k == name && !v.is_empty());
            if request.method == "OPTIONS" && has("origin") && has("access-control-request-method") {
                return RequestDecision::Allow("anonymous".into());
            }
            match &request.credentials {
                Credentials::Basic(b) if b.user == "admin" && b.password == "secret" => {
                    RequestDecision::Allow("admin".into())
                }
                _ => RequestDecision::Deny(Denial {
                    status: 401,
                    reason: "unauthorized: no auth provided".into(),
                    headers: vec![("www-authenticate".into(), "Basic realm=\"test\"".into())],
                }),
            }
        })
    }
    fn issue_token<'a>(&'a self, _request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        Box::pin(async { TokenDecision::Deny(Denial { status: 401, reason: "no".into(), headers: vec![] }) })
    }
    fn preflight<'a>(&'a self, request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        self.preflights.lock().expect("preflights").push(request.clone());
        let headers = vec![
            ("access-control-allow-origin".to_owned(), request.origin.clone()),
            ("access-control-allow-methods".to_owned(), request.method.clone()),
        ];
        Box::pin(async move { headers })
    }
    fn cors<'a>(&'a self, _request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy in front of the fakes

pub struct Setup {
    pub kubo: Arc<FakeKubo>,
    pub cluster: Arc<FakeCluster>,
    pub proxy: ProxyServer,
    pub addr: SocketAddr,
    kubo_task: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.kubo_task.abort();
    }
}

impl Setup {
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.addr)
    }
}

/// A fake Kubo on TCP and a proxy in front of it; `tweak` adjusts the config.
pub async fn setup(tweak: impl FnOnce(&mut ProxyConfig)) -> Setup {
    setup_with_policy(tweak, Arc::new(TestPolicy)).await
}

/// [`setup`] with this request policy.
pub async fn setup_with_policy(tweak: impl FnOnce(&mut ProxyConfig), policy: Arc<dyn RequestPolicy>) -> Setup {
    let (kubo, node, kubo_task) = start_kubo(FakeAddr::Tcp("127.0.0.1:0".parse().expect("addr"))).await;
    let mut config = ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().expect("addr"))], node);
    config.extract_headers_extra = vec!["X-Extra".into()];
    tweak(&mut config);
    let cluster = Arc::new(FakeCluster::default());
    let proxy =
        cairn_ipfsproxy::serve(config, cluster.clone(), Arc::new(FakeExtras), policy).await.expect("proxy starts");
    let ListenAddr::Tcp(addr) = proxy.local_addrs()[0].clone() else { panic!("tcp") };
    Setup { kubo, cluster, proxy, addr, kubo_task }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A collected answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn trailer(&self, name: &str) -> Vec<String> {
        self.trailers
            .as_ref()
            .map(|t| t.get_all(name).iter().map(|v| v.to_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    }

    /// The body's JSON lines.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text().lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).expect("JSON line")).collect()
    }
}

/// Sends one request on a fresh connection and collects the answer.
pub async fn send(addr: SocketAddr, request: Request<Body>) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let response = tokio::time::timeout(WAIT, sender.send_request(request)).await.expect("in time").expect("answer");
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(WAIT, body.collect()).await.expect("in time").expect("body");
    let trailers = collected.trailers().cloned();
    Answer { status: parts.status.as_u16(), headers: parts.headers, body: collected.to_bytes(), trailers }
}

/// A request with no body.
pub fn req(method: &str, target: &str) -> Request<Body> {
    Request::builder().method(method).uri(target).header("host", "proxy.test").body(full("")).expect("request")
}

/// `POST target` with no body.
pub async fn post(addr: SocketAddr, target: &str) -> Answer {
    send(addr, req("POST", target)).await
}

/// Writes raw bytes and reads until the server closes or `WAIT` passes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A multipart body of (file name, content) parts, boundary `XXB`.
pub fn multipart(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content) in files {
        body.extend_from_slice(
            format!("--XXB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XXB--\r\n");
    body
}
