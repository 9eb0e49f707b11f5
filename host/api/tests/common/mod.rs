//! Test fakes and clients: a fake [`ClusterApi`], a fake [`RequestPolicy`] with Basic auth and a
//! token check, a hyper client per connection, and raw HTTP/1.1 over TCP for exact bytes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_api::*;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
pub const CID2: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
pub const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
pub const PEER2: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
/// `admin:secret`.
pub const ADMIN_BASIC: &str = "Basic YWRtaW46c2VjcmV0";
pub const TOKEN: &str = "tok-admin";

pub fn cid(s: &str) -> Cid {
    Cid::parse(s).expect("test CID")
}

fn gpi(c: &str) -> GlobalPinInfo {
    let mut g = GlobalPinInfo::new(cid(c));
    g.peer_map.insert(PEER.into(), PinInfoShort { status: TrackerStatus::Pinned, ..PinInfoShort::default() });
    g
}

/// A cluster with fixed answers.
#[derive(Default)]
pub struct FakeCluster {
    /// The pinset of `GET /allocations` (empty: 204).
    pub pins: Vec<Pin>,
    /// Calls seen, for assertions.
    pub calls: Mutex<Vec<String>>,
}

impl FakeCluster {
    fn record(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

impl ClusterApi for FakeCluster {
    fn id(&self) -> ApiFuture<'_, Id> {
        Box::pin(async {
            Ok(Id { id: PEER.into(), version: "1.1.6".into(), peername: "peer0".into(), ..Id::default() })
        })
    }

    fn version(&self) -> ApiFuture<'_, Version> {
        Box::pin(async { Ok(Version { version: "1.1.6".into() }) })
    }

    fn peers(&self) -> ApiStream<Id> {
        let ids = vec![
            Ok(Id { id: PEER.into(), ..Id::default() }),
            Ok(Id { id: PEER2.into(), error: "dial backoff".into(), ..Id::default() }),
        ];
        futures::stream::iter(ids).boxed()
    }

    fn peer_add(&self, peer_id: String) -> ApiFuture<'_, Id> {
        self.record(format!("peer_add {peer_id}"));
        Box::pin(async move { Ok(Id { id: peer_id, ..Id::default() }) })
    }

    fn peer_remove(&self, peer_id: String) -> ApiFuture<'_, ()> {
        self.record(format!("peer_remove {peer_id}"));
        Box::pin(async { Ok(()) })
    }

    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin> {
        Box::pin(async move { Ok(Pin::with_options(cid, options)) })
    }

    fn pin_path(&self, path: String, options: PinOptions) -> ApiFuture<'_, Pin> {
        self.record(format!("pin_path {path}"));
        Box::pin(async move { Ok(Pin::with_options(cid(CID), options)) })
    }

    fn unpin(&self, _cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async { Err(ApiError::pin_not_found()) })
    }

    fn unpin_path(&self, path: String) -> ApiFuture<'_, Pin> {
        self.record(format!("unpin_path {path}"));
        Box::pin(async { Ok(Pin::new(cid(CID))) })
    }

    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        let pins: Vec<_> = self.pins.iter().filter(|p| filter.matches(p.pin_type)).cloned().map(Ok).collect();
        futures::stream::iter(pins).boxed()
    }

    fn allocation(&self, _cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async { Err(ApiError::internal(PIN_NOT_FOUND)) })
    }

    /// Two items; with `local`, one item and then an error.
    fn status_all(&self, _filter: TrackerFilter, local: bool) -> ApiStream<GlobalPinInfo> {
        let items = if local {
            vec![Ok(gpi(CID)), Err(ApiError::internal("boom\nagain"))]
        } else {
            vec![Ok(gpi(CID)), Ok(gpi(CID2))]
        };
        futures::stream::iter(items).boxed()
    }

    fn status_cids(&self, cids: Vec<Cid>, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::iter(cids.into_iter().map(|c| Ok(GlobalPinInfo::new(c)))).boxed()
    }

    fn status(&self, cid: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        self.record(format!("status {cid} local={local}"));
        Box::pin(async move { Ok(GlobalPinInfo::new(cid)) })
    }

    fn recover(&self, cid: Cid, _local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        Box::pin(async move { Ok(GlobalPinInfo::new(cid)) })
    }

    /// Fails before the first item.
    fn recover_all(&self, _local: bool) -> ApiStream<GlobalPinInfo> {
        futures::stream::iter([Err(ApiError::internal("no tracker"))]).boxed()
    }

    fn ipfs_gc(&self, _local: bool) -> ApiFuture<'_, GlobalRepoGc> {
        Box::pin(async { Ok(GlobalRepoGc::default()) })
    }

    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph> {
        Box::pin(async { Ok(ConnectGraph { cluster_id: PEER.into(), ..ConnectGraph::default() }) })
    }

    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }

    fn metric_names(&self) -> ApiFuture<'_, Vec<String>> {
        Box::pin(async { Ok(vec!["ping".to_owned(), "freespace".to_owned()]) })
    }

    /// `slow` takes 300 ms (for the shutdown test).
    fn metrics(&self, name: String) -> ApiFuture<'_, Vec<Metric>> {
        Box::pin(async move {
            if name == "slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(vec![Metric { name, peer: PEER.into(), valid: true, ..Metric::default() }])
        })
    }

    /// One output per part (name = file name, size = bytes read); a part named `fail` fails the
    /// add.
    fn add(&self, request: AddRequest) -> ApiStream<AddedOutput> {
        futures::stream::unfold(Some(request.parts), |parts| async move {
            let mut parts = parts?;
            let mut part = match parts.next().await? {
                Ok(part) => part,
                Err(e) => return Some((Err(e), None)),
            };
            let name = part.file_name.clone().unwrap_or_default();
            if name == "fail" {
                return Some((Err(ApiError::internal("adder failed")), None));
            }
            let mut size = 0u64;
            while let Some(chunk) = part.data.next().await {
                match chunk {
                    Ok(bytes) => size += bytes.len() as u64,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            drop(part);
            Some((Ok(AddedOutput { name, cid: Some(cid(CID)), size, ..AddedOutput::default() }), Some(parts)))
        })
        .boxed()
    }
}

fn header(name: &str, value: &str) -> Header {
    (name.to_owned(), value.to_owned())
}

fn denial(status: u16, reason: &str, headers: Vec<Header>) -> Denial {
    Denial { status, reason: reason.to_owned(), headers }
}

/// IPFS Cluster's Basic/Bearer rules for user `admin` (password `secret`, token `tok-admin`),
/// and CORS that allows every origin. Remembers what it was asked.
#[derive(Default)]
pub struct FakePolicy {
    pub authorized: Mutex<Vec<ApiRequest>>,
    pub preflights: Mutex<Vec<PreflightRequest>>,
}

impl FakePolicy {
    pub fn last_request(&self) -> Option<ApiRequest> {
        self.authorized.lock().expect("lock").last().cloned()
    }
}

const REALM: &str = "realm=\"Restricted IPFS Cluster API\"";

impl RequestPolicy for FakePolicy {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        self.authorized.lock().expect("lock").push(request.clone());
        let decision = match &request.credentials {
            Credentials::Basic(b) if b.user == "admin" && b.password == "secret" => {
                RequestDecision::Allow("admin".into())
            }
            Credentials::Basic(_) => RequestDecision::Deny(denial(
                401,
                "unauthorized: access denied",
                vec![header("www-authenticate", &format!("Basic {REALM}"))],
            )),
            Credentials::Bearer(t) if t == TOKEN => RequestDecision::Allow("admin".into()),
            Credentials::Bearer(_) => RequestDecision::Deny(denial(
                401,
                "unauthorized: invalid token",
                vec![header("www-authenticate", &format!("Bearer {REALM}, error=\"invalid_token\""))],
            )),
            Credentials::None => RequestDecision::Deny(denial(
                401,
                "unauthorized: no auth provided",
                vec![
                    header("www-authenticate", &format!("Bearer {REALM}")),
                    header("www-authenticate", &format!("Basic {REALM}")),
                ],
            )),
        };
        Box::pin(async move { decision })
    }

    fn issue_token<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        let decision = match &request.credentials {
            Credentials::Basic(b) if b.user == "admin" => TokenDecision::Token(TOKEN.into()),
            Credentials::Bearer(t) if t == TOKEN => TokenDecision::Token(TOKEN.into()),
            _ => TokenDecision::Deny(denial(401, "unauthorized", Vec::new())),
        };
        Box::pin(async move { decision })
    }

    fn preflight<'a>(&'a self, request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        self.preflights.lock().expect("lock").push(request.clone());
        let headers = vec![
            header("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            header("access-control-allow-origin", &request.origin),
            header("access-control-allow-methods", &request.method),
        ];
        Box::pin(async move { headers })
    }

    fn cors<'a>(&'a self, request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        let headers = vec![header("vary", "Origin"), header("access-control-allow-origin", &request.origin)];
        Box::pin(async move { headers })
    }
}

/// A config on a free loopback port.
pub fn local_config() -> ServerConfig {
    ServerConfig::new(vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))])
}

/// A running server with the fakes.
pub struct Harness {
    pub server: ApiServer,
    pub addr: SocketAddr,
    pub cluster: Arc<FakeCluster>,
    pub policy: Arc<FakePolicy>,
}

pub async fn start(config: ServerConfig) -> Harness {
    start_with(config, FakeCluster::default()).await
}

pub async fn start_with(config: ServerConfig, cluster: FakeCluster) -> Harness {
    let cluster = Arc::new(cluster);
    let policy = Arc::new(FakePolicy::default());
    let server = tokio::time::timeout(WAIT, serve(config, cluster.clone(), policy.clone()))
        .await
        .expect("serve in time")
        .expect("server starts");
    let addr = match server.local_addrs().first() {
        Some(ListenAddr::Tcp(addr)) => *addr,
        other => panic!("expected a TCP listener, got {other:?}"),
    };
    Harness { server, addr, cluster, policy }
}

/// What a response was.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    }
}

/// Sends one request over a fresh HTTP/1.1 connection on `io` with hyper's client.
pub async fn send_on<S>(io: S, request: Request<Full<Bytes>>) -> Reply
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let exchange = async move {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.expect("handshake");
        tokio::spawn(conn);
        let response = sender.send_request(request).await.expect("response");
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body frame");
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        Reply { status: parts.status.as_u16(), headers: parts.headers, body: data.into(), trailers }
    };
    tokio::time::timeout(WAIT, exchange).await.expect("request in time")
}

/// Builds a request (with `Host`).
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path).header("host", "localhost");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// Sends one request to a TCP server.
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.expect("connect in time").expect("connect");
    send_on(stream, request(method, path, headers, body.to_owned())).await
}

/// An authorized GET.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[("authorization", ADMIN_BASIC)], "").await
}

/// Writes raw bytes and reads until the server closes the connection.
pub async fn raw_on<S>(mut io: S, bytes: &[u8]) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        io.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        // A reset after the answer still leaves the answer in `out`.
        let _ = io.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(WAIT, exchange).await.expect("raw exchange in time")
}

pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.expect("connect in time").expect("connect");
    raw_on(stream, bytes).await
}
