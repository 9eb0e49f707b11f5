//! In-process swarms on 127.0.0.1 (port 0, mdns off). Every wait is bounded by a timeout.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_swarm::{
    AllowList, ClusterSecret, Keypair, Multiaddr, NetworkEvent, PeerId, RpcAuthorizer, RpcHandler, SwarmConfig,
    SwarmError, SwarmHandle, start,
};
use futures::future::BoxFuture;
use libp2p::multiaddr::Protocol;
use tokio::sync::broadcast;
use tokio::time::timeout;

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

const SECRET_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const SECRET_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn secret(hex: &str) -> Option<ClusterSecret> {
    ClusterSecret::parse(hex).expect("valid test secret")
}

/// Echoes `Echo`'s payload, fails `Fail`, answers `Pin` with "pinned".
struct TestHandler;

impl RpcHandler for TestHandler {
    fn handle<'a>(
        &'a self,
        _peer: PeerId,
        method: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        let result = match method {
            "Echo" => Ok(payload),
            "Pin" => Ok(b"pinned".to_vec()),
            "Fail" => Err("boom".to_owned()),
            other => Err(format!("unknown method {other}")),
        };
        Box::pin(std::future::ready(result))
    }
}

fn config(secret: Option<ClusterSecret>) -> SwarmConfig {
    let mut c = SwarmConfig::new(Keypair::generate_ed25519());
    c.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.secret = secret;
    c.handshake_timeout = Duration::from_secs(5);
    c.rpc_timeout = Duration::from_secs(5);
    c.reconnect_initial = Duration::from_millis(100);
    c.reconnect_max = Duration::from_secs(1);
    c
}

fn allow_all() -> Arc<dyn RpcAuthorizer> {
    Arc::new(AllowList::open(["Echo", "Fail", "Pin"]))
}

async fn node(config: SwarmConfig, authorizer: Arc<dyn RpcAuthorizer>) -> SwarmHandle {
    timeout(WAIT, start(config, authorizer, Arc::new(TestHandler))).await.expect("start timed out").expect("start")
}

/// The node's first listen address with its `/p2p/<id>` suffix.
async fn addr_of(node: &SwarmHandle) -> Multiaddr {
    let addrs = node.listen_addrs().await.unwrap();
    addrs[0].clone().with(Protocol::P2p(node.local_peer_id()))
}

async fn connect(from: &SwarmHandle, to: &SwarmHandle) -> Result<PeerId, SwarmError> {
    let addr = addr_of(to).await;
    timeout(WAIT, from.connect(addr)).await.expect("connect timed out")
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = timeout(WAIT, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "timed out waiting for {what}");
}

async fn wait_event(
    events: &mut broadcast::Receiver<NetworkEvent>,
    what: &str,
    mut matches: impl FnMut(&NetworkEvent) -> bool,
) -> NetworkEvent {
    let found = timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e) if matches(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn is_connected(a: &SwarmHandle, b: PeerId) -> bool {
    a.connected_peers().await.unwrap().contains(&b)
}

/// Collects this thread's log output (the tests run on a current-thread runtime, so the swarm
/// task logs on the same thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn same_secret_connects_and_rpc_round_trips() {
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    assert_eq!(connect(&b, &a).await.unwrap(), a.local_peer_id());
    eventually("a to list b", || is_connected(&a, b.local_peer_id())).await;
    assert_eq!(b.connected_peers().await.unwrap(), vec![a.local_peer_id()]);

    let answer = timeout(WAIT, b.rpc(a.local_peer_id(), "Echo", b"hello".to_vec())).await.unwrap().unwrap();
    assert_eq!(answer, b"hello");
    // A handler error reaches the caller as such, not as a denial.
    let err = timeout(WAIT, b.rpc(a.local_peer_id(), "Fail", vec![])).await.unwrap().unwrap_err();
    assert!(matches!(&err, SwarmError::RpcFailed { reason, .. } if reason == "boom"), "{err}");
    // A call to oneself goes to the handler directly.
    assert_eq!(b.rpc(b.local_peer_id(), "Echo", b"me".to_vec()).await.unwrap(), b"me");

    let stats = a.stats();
    assert_eq!((stats.rpc_served, stats.rpc_failed, stats.rpc_denied), (1, 1, 0));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn different_secret_cannot_connect_and_is_logged_with_fingerprint() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let c = node(config(secret(SECRET_B)), allow_all()).await;
    let mut a_events = a.events();

    let err = connect(&c, &a).await.unwrap_err();
    assert!(matches!(err, SwarmError::Dial { .. }), "{err}");
    wait_event(&mut a_events, "a handshake failure", |e| matches!(e, NetworkEvent::HandshakeFailed { .. })).await;
    assert!(a.stats().handshake_failures >= 1);
    assert!(c.stats().handshake_failures >= 1);

    // No RPC either: the call cannot reach A.
    let err = timeout(WAIT, c.rpc(a.local_peer_id(), "Echo", vec![])).await.unwrap().unwrap_err();
    assert!(matches!(err, SwarmError::RpcTransport { .. }), "{err}");
    assert!(a.connected_peers().await.unwrap().is_empty());
    assert!(c.connected_peers().await.unwrap().is_empty());
    assert_eq!(a.stats().rpc_served, 0);

    let text = logs.text();
    let fp_a = secret(SECRET_A).unwrap().fingerprint();
    assert!(text.contains("different cluster secret"), "{text}");
    assert!(text.contains(&fp_a), "A's fingerprint missing from the hint:\n{text}");
    assert!(!text.contains(SECRET_A) && !text.contains(SECRET_B), "a secret leaked into the logs");
    a.shutdown().await.unwrap();
    c.shutdown().await.unwrap();
}

#[tokio::test]
async fn peer_without_secret_cannot_connect_to_psk_peer() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let n = node(config(None), allow_all()).await;
    assert!(connect(&n, &a).await.is_err(), "no-secret peer connected to a PSK peer");
    assert!(connect(&a, &n).await.is_err(), "PSK peer connected to a no-secret peer");
    assert!(a.connected_peers().await.unwrap().is_empty());
    assert!(n.connected_peers().await.unwrap().is_empty());
    let text = logs.text();
    assert!(text.contains("cluster will start on unprotected network"), "{text}");
    assert!(text.contains("this peer has no cluster secret"), "{text}");
    assert!(!text.contains(SECRET_A), "the secret leaked into the logs");
    a.shutdown().await.unwrap();
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_address_is_not_reported_as_secret_mismatch() {
    // A port that was just free: the dial is refused before any handshake starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", PeerId::random()).parse().unwrap();
    let err = timeout(WAIT, a.connect(addr)).await.unwrap().unwrap_err();
    assert!(matches!(err, SwarmError::Dial { .. }), "{err}");
    assert_eq!(a.stats().handshake_failures, 0);
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn authorizer_denies_method_and_counts_it() {
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    let c = node(config(secret(SECRET_A)), allow_all()).await;
    // A: Echo for everyone, Pin only for B.
    let auth = AllowList::open(["Echo"]).with_trusted(["Pin"], [b.local_peer_id()]);
    let a = node(config(secret(SECRET_A)), Arc::new(auth)).await;
    let mut a_events = a.events();
    connect(&b, &a).await.unwrap();
    connect(&c, &a).await.unwrap();
    let a_id = a.local_peer_id();

    assert_eq!(timeout(WAIT, c.rpc(a_id, "Echo", b"x".to_vec())).await.unwrap().unwrap(), b"x");
    assert_eq!(timeout(WAIT, b.rpc(a_id, "Pin", vec![])).await.unwrap().unwrap(), b"pinned");
    let err = timeout(WAIT, c.rpc(a_id, "Pin", vec![])).await.unwrap().unwrap_err();
    match &err {
        SwarmError::RpcDenied { method, reason, .. } => {
            assert_eq!(method, "Pin");
            assert!(reason.contains("Pin") && reason.contains(&c.local_peer_id().to_string()), "{reason}");
        }
        other => panic!("expected a denial, got {other}"),
    }
    // A method nobody listed is refused too.
    let err = timeout(WAIT, b.rpc(a_id, "Cluster.Unlisted", vec![])).await.unwrap().unwrap_err();
    assert!(matches!(err, SwarmError::RpcDenied { .. }), "{err}");

    let denied = wait_event(&mut a_events, "denial event", |e| matches!(e, NetworkEvent::RpcDenied { .. })).await;
    assert!(matches!(denied, NetworkEvent::RpcDenied { peer, .. } if peer == c.local_peer_id()));
    let stats = a.stats();
    assert_eq!((stats.rpc_served, stats.rpc_denied), (2, 2));
    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn gossipsub_message_reaches_other_peer() {
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    let topic = "cairn/test";
    let mut a_events = a.events();
    let mut b_events = b.events();
    assert!(a.subscribe(topic).await.unwrap());
    assert!(b.subscribe(topic).await.unwrap());
    assert!(!b.subscribe(topic).await.unwrap(), "second subscribe reports already subscribed");
    connect(&b, &a).await.unwrap();
    let b_id = b.local_peer_id();
    wait_event(
        &mut a_events,
        "b's subscription",
        |e| matches!(e, NetworkEvent::Subscribed { peer, topic: t } if *peer == b_id && t == topic),
    )
    .await;
    a.publish(topic, b"metric".to_vec()).await.unwrap();
    let got = wait_event(&mut b_events, "the message", |e| matches!(e, NetworkEvent::Message { .. })).await;
    match got {
        NetworkEvent::Message { source, topic: t, data } => {
            assert_eq!(source, Some(a.local_peer_id()));
            assert_eq!(t, topic);
            assert_eq!(data, b"metric");
        }
        _ => unreachable!(),
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn peerstore_is_written_and_reloaded_and_peers_are_redialed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("peerstore");
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let a_id = a.local_peer_id();

    let b_key = Keypair::generate_ed25519();
    let mut b_config = config(secret(SECRET_A));
    b_config.keypair = b_key.clone();
    b_config.peerstore_path = Some(store.clone());
    let b = node(b_config.clone(), allow_all()).await;
    connect(&b, &a).await.unwrap();
    eventually("the peerstore file to name A", || {
        let store = store.clone();
        async move { std::fs::read_to_string(&store).map(|t| t.contains(&a_id.to_string())).unwrap_or(false) }
    })
    .await;
    b.shutdown().await.unwrap();
    eventually("a to notice b left", || async { !is_connected(&a, b_config.keypair.public().to_peer_id()).await })
        .await;

    // A new B on the same peerstore, with no bootstrap and no explicit connect, finds A again.
    let b2 = node(b_config, allow_all()).await;
    assert!(b2.known_peers().await.unwrap().contains_key(&a_id));
    eventually("b2 to reconnect to a from the peerstore", || is_connected(&b2, a_id)).await;
    a.shutdown().await.unwrap();
    b2.shutdown().await.unwrap();
}

#[tokio::test]
async fn bootstrap_peer_is_reconnected_after_restart() {
    let b_key = Keypair::generate_ed25519();
    let mut b_config = config(secret(SECRET_A));
    b_config.keypair = b_key;
    let b = node(b_config.clone(), allow_all()).await;
    let b_addr = addr_of(&b).await;
    let b_id = b.local_peer_id();

    let mut a_config = config(secret(SECRET_A));
    a_config.bootstrap = vec![b_addr.clone()];
    let a = node(a_config, allow_all()).await;
    eventually("a to reach its bootstrap peer", || is_connected(&a, b_id)).await;

    // B goes away; A keeps redialing (with backoff) and gets B back once it returns on the
    // same address.
    b.shutdown().await.unwrap();
    eventually("a to notice b left", || async { !is_connected(&a, b_id).await }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut listen = b_addr.clone();
    listen.pop();
    b_config.listen_addrs = vec![listen];
    let b2 = node(b_config, allow_all()).await;
    eventually("a to reconnect to b", || is_connected(&a, b_id)).await;
    a.shutdown().await.unwrap();
    b2.shutdown().await.unwrap();
}

#[tokio::test]
async fn bootstrap_address_without_peer_id_is_refused() {
    let mut c = config(secret(SECRET_A));
    c.bootstrap = vec!["/ip4/127.0.0.1/tcp/9".parse().unwrap()];
    let err = start(c, allow_all(), Arc::new(TestHandler)).await.err().expect("must fail");
    assert!(matches!(err, SwarmError::MissingPeerId(_)), "{err}");
}

#[tokio::test]
async fn metrics_count_rpcs_connections_and_libp2p_events() {
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    let (ta, tb) = (cairn_telemetry::Telemetry::new(), cairn_telemetry::Telemetry::new());
    a.register_metrics(&ta).await.unwrap();
    b.register_metrics(&tb).await.unwrap();
    connect(&b, &a).await.unwrap();
    eventually("a to list b", || is_connected(&a, b.local_peer_id())).await;
    timeout(WAIT, b.rpc(a.local_peer_id(), "Echo", b"hello".to_vec())).await.unwrap().unwrap();
    timeout(WAIT, b.rpc(a.local_peer_id(), "Fail", vec![])).await.unwrap().unwrap_err();

    let text = tb.encode(cairn_telemetry::Format::Prometheus);
    for expected in [
        "cairn_rpc_sent_total{method=\"Echo\",outcome=\"ok\"} 1\n",
        "cairn_rpc_sent_total{method=\"Fail\",outcome=\"failed\"} 1\n",
        "cairn_rpc_sent_duration_seconds_count{method=\"Echo\"} 1\n",
        "cairn_swarm_connected_peers 1\n",
        "# TYPE libp2p_swarm_connections_established_total counter\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = ta.encode(cairn_telemetry::Format::Prometheus);
    for expected in
        ["cairn_rpc_served_total 1\n", "cairn_rpc_failed_total 1\n", "cairn_rpc_served_duration_seconds_count 2\n"]
    {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn libp2p_http_is_served_on_the_cluster_host_only_when_configured() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SECRET_HEX: [u8; 32] = [0x11; 32];
    let (tx, mut streams) = tokio::sync::mpsc::channel(4);
    let mut serving = config(secret(SECRET_A));
    serving.libp2p_http = Some(tx);
    let a = node(serving, allow_all()).await;

    // A client with the cluster secret (not a cluster peer) opens a stream; the swarm hands it
    // over with the client's peer id, and bytes flow both ways.
    let client = timeout(WAIT, cairn_libp2p_http::dial(addr_of(&a).await, Some(SECRET_HEX)))
        .await
        .expect("dial timed out")
        .expect("dial");
    let (peer, mut served) = timeout(WAIT, streams.recv()).await.expect("no stream").expect("channel open");
    assert_eq!(peer, served.peer_id());
    let mut client = client;
    client.write_all(b"GET /id HTTP/1.1\r\n\r\n").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 20];
    timeout(WAIT, served.read_exact(&mut got)).await.expect("read timed out").unwrap();
    assert_eq!(&got, b"GET /id HTTP/1.1\r\n\r\n");
    served.write_all(b"ok").await.unwrap();
    served.flush().await.unwrap();
    let mut answer = [0u8; 2];
    timeout(WAIT, client.read_exact(&mut answer)).await.expect("read timed out").unwrap();
    assert_eq!(&answer, b"ok");

    // Without the secret the client cannot even connect.
    let err = cairn_libp2p_http::dial_with_timeout(addr_of(&a).await, None, Duration::from_secs(3))
        .await
        .expect_err("no secret");
    assert!(
        matches!(err, cairn_libp2p_http::Error::Connect { .. } | cairn_libp2p_http::Error::Timeout { .. }),
        "{err}"
    );

    // A host without the option does not offer the protocol.
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    let err = timeout(WAIT, cairn_libp2p_http::dial(addr_of(&b).await, Some(SECRET_HEX)))
        .await
        .expect("dial timed out")
        .expect_err("not offered");
    assert!(err.to_string().contains("does not support /libp2p-http"), "{err}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// What the fake propagation hook below was asked to continue.
static CONTINUED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[tokio::test]
async fn an_rpc_carries_the_callers_traceparent_to_the_serving_span() {
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    cairn_telemetry::propagation::install(cairn_telemetry::propagation::Hooks {
        current: || Some(TRACEPARENT.to_owned()),
        continue_remote: |_, traceparent| CONTINUED.lock().unwrap().push(traceparent.to_owned()),
    });
    let a = node(config(secret(SECRET_A)), allow_all()).await;
    let b = node(config(secret(SECRET_A)), allow_all()).await;
    connect(&b, &a).await.unwrap();
    let answer = timeout(WAIT, b.rpc(a.local_peer_id(), "Echo", b"traced".to_vec())).await.unwrap().unwrap();
    assert_eq!(answer, b"traced");
    assert!(CONTINUED.lock().unwrap().iter().any(|t| t == TRACEPARENT), "{:?}", CONTINUED.lock().unwrap());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
