//! The swarm task and its handle.
//!
//! One tokio task owns the libp2p `Swarm`; everything else talks to it through a
//! [`SwarmHandle`] (commands over a channel) and receives [`NetworkEvent`]s over a broadcast
//! channel. Keeping the `Swarm` in one task avoids locking around it and keeps the heavy
//! generic code in this crate.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_libp2p_http::{HttpBehaviour, HttpEvent, HttpStream};
use cairn_telemetry::{SwarmMetrics, Telemetry};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::metrics::{Metrics as Libp2pMetrics, Recorder};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, mdns, ping};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::error::SwarmError;
use crate::peerstore::{self, PeerAddrs};
use crate::rpc::{RPC_PROTOCOL, RpcAuthorizer, RpcHandler, RpcRequest, RpcResponse};
use crate::secret::ClusterSecret;

/// The identify protocol version string this peer announces.
pub const IDENTIFY_PROTOCOL: &str = "/cairn/0.1.0";

/// How to build a cluster swarm. [`SwarmConfig::new`] gives IPFS Cluster's defaults.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The peer's identity (from `identity.json`).
    pub keypair: Keypair,
    /// Addresses to listen on (`cluster.listen_multiaddress`).
    pub listen_addrs: Vec<Multiaddr>,
    /// The private-network key; `None` = unprotected network (no pnet layer).
    pub secret: Option<ClusterSecret>,
    /// Peers to connect to and keep connected; each must end in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Where peers' addresses are remembered across restarts; `None` = nowhere.
    pub peerstore_path: Option<PathBuf>,
    /// Discover peers by mDNS on the local network. Off by default: it multicasts on every
    /// interface.
    pub mdns: bool,
    /// How long a connection without active streams is kept open.
    pub idle_timeout: Duration,
    /// Deadline for the whole connection upgrade (pnet + noise + yamux). A secret mismatch
    /// sometimes shows up only as this timeout, so it bounds how long a bad dial takes.
    pub handshake_timeout: Duration,
    /// Deadline for an outgoing RPC to get its answer.
    pub rpc_timeout: Duration,
    /// First delay before redialing a lost peer; doubled per failure up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// Upper bound of the redial delay.
    pub reconnect_max: Duration,
    /// The agent version announced by identify.
    pub agent_version: String,
    /// Serve `/libp2p-http` on this host (the REST API of a raft peer without a separate
    /// libp2p-http host): inbound streams go here. `None` = the protocol is not offered.
    pub libp2p_http: Option<mpsc::Sender<(PeerId, HttpStream)>>,
}

impl SwarmConfig {
    /// Defaults: listen on `/ip4/0.0.0.0/tcp/9096`, no secret, no bootstrap, no peerstore,
    /// mdns off.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen_addrs: vec![Multiaddr::empty().with(Protocol::Ip4([0, 0, 0, 0].into())).with(Protocol::Tcp(9096))],
            secret: None,
            bootstrap: Vec::new(),
            peerstore_path: None,
            mdns: false,
            idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(20),
            rpc_timeout: Duration::from_secs(30),
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            agent_version: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
            libp2p_http: None,
        }
    }
}

/// What the swarm reports to its users.
#[derive(Debug, Clone)]
pub enum NetworkEvent {
    /// A new first connection to a peer.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A peer subscribed to a pubsub topic.
    Subscribed {
        /// The subscriber.
        peer: PeerId,
        /// The topic name.
        topic: String,
    },
    /// A pubsub message (signature already verified).
    Message {
        /// The signing author.
        source: Option<PeerId>,
        /// The topic name.
        topic: String,
        /// The payload.
        data: Vec<u8>,
    },
    /// A connection failed during its handshake; with a private network this usually means the
    /// two peers have different secrets (or one has none).
    HandshakeFailed {
        /// The remote peer, when known.
        peer: Option<PeerId>,
        /// The remote address, when known.
        addr: Option<Multiaddr>,
        /// libp2p's error text.
        error: String,
    },
    /// An incoming RPC was refused by the authorizer.
    RpcDenied {
        /// The caller.
        peer: PeerId,
        /// The method it called.
        method: String,
        /// The authorizer's reason.
        reason: String,
    },
}

/// A snapshot of the swarm's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwarmStats {
    /// Incoming RPCs answered successfully.
    pub rpc_served: u64,
    /// Incoming RPCs refused by the authorizer.
    pub rpc_denied: u64,
    /// Incoming RPCs whose handler returned an error.
    pub rpc_failed: u64,
    /// Connections that failed during the handshake (a secret mismatch, among others).
    pub handshake_failures: u64,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    rpc: request_response::cbor::Behaviour<RpcRequest, RpcResponse>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    http: Toggle<HttpBehaviour>,
}

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    KnownPeers(oneshot::Sender<PeerAddrs>),
    Connect {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, SwarmError>>,
    },
    Rpc {
        peer: PeerId,
        request: RpcRequest,
        reply: oneshot::Sender<Result<RpcResponse, String>>,
    },
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<bool, SwarmError>>,
    },
    Unsubscribe {
        topic: String,
        reply: oneshot::Sender<bool>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), SwarmError>>,
    },
    /// Start recording libp2p's own metrics (registered in the daemon's registry).
    RecordLibp2p(Box<Libp2pMetrics>),
    Shutdown(oneshot::Sender<()>),
}

/// The way into a running swarm. Cheap to clone; the swarm task stops when
/// [`SwarmHandle::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct SwarmHandle {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NetworkEvent>,
    metrics: SwarmMetrics,
    handler: Arc<dyn RpcHandler>,
}

impl SwarmHandle {
    /// This peer's id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// A new subscription to the swarm's events (only events after this call are seen; a
    /// receiver that falls more than 1024 events behind loses the oldest).
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// The current counters.
    pub fn stats(&self) -> SwarmStats {
        let m = &self.metrics;
        SwarmStats {
            rpc_served: m.rpc_served.get(),
            rpc_denied: m.rpc_denied.get(),
            rpc_failed: m.rpc_failed.get(),
            handshake_failures: m.handshake_failures.get(),
        }
    }

    /// Adds the swarm's families (peer RPC, connections) and libp2p's own (`libp2p_*`:
    /// connections, identify, ping, gossipsub) to `telemetry`, and starts recording the
    /// latter. Call once.
    pub async fn register_metrics(&self, telemetry: &Telemetry) -> Result<(), SwarmError> {
        telemetry.register(|registry| self.metrics.register(registry));
        let libp2p = telemetry.register(Libp2pMetrics::new);
        self.commands.send(Command::RecordLibp2p(Box::new(libp2p))).await.map_err(|_| SwarmError::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SwarmError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| SwarmError::Stopped)?;
        rx.await.map_err(|_| SwarmError::Stopped)
    }

    /// The addresses the swarm listens on (with resolved ports).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, SwarmError> {
        self.ask(Command::ListenAddrs).await
    }

    /// The peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, SwarmError> {
        self.ask(Command::ConnectedPeers).await
    }

    /// The remembered peers and their addresses (what the peerstore file holds).
    pub async fn known_peers(&self) -> Result<PeerAddrs, SwarmError> {
        self.ask(Command::KnownPeers).await
    }

    /// Dials `addr` and waits for the connection (bounded by the handshake timeout). With a
    /// `/p2p/<id>` suffix the peer is also remembered and kept connected.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, SwarmError> {
        self.ask(|reply| Command::Connect { addr, reply }).await?
    }

    /// Calls `method` on `peer`. A call to this peer itself goes straight to the handler,
    /// without authorization, as IPFS Cluster's local calls do.
    pub async fn rpc(&self, peer: PeerId, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, SwarmError> {
        let local = peer == self.local_peer_id;
        let span = tracing::info_span!("rpc.call", method, %peer, local, outcome = tracing::field::Empty);
        async move {
            if local {
                let answer = self.handler.handle(peer, method, payload).await;
                tracing::Span::current().record("outcome", if answer.is_ok() { "ok" } else { "failed" });
                return answer.map_err(|reason| SwarmError::RpcFailed { peer, method: method.to_owned(), reason });
            }
            let started = std::time::Instant::now();
            let traceparent = cairn_telemetry::propagation::current_traceparent();
            let request = RpcRequest { method: method.to_owned(), payload, traceparent };
            let answer = self.ask(|reply| Command::Rpc { peer, request, reply }).await?;
            let outcome = match &answer {
                Ok(RpcResponse::Ok(_)) => "ok",
                Ok(RpcResponse::Denied(_)) => "denied",
                Ok(RpcResponse::Failed(_)) => "failed",
                Err(_) => "error",
            };
            self.metrics.sent(method, outcome, started.elapsed());
            tracing::Span::current().record("outcome", outcome);
            let method = method.to_owned();
            match answer {
                Ok(RpcResponse::Ok(bytes)) => Ok(bytes),
                Ok(RpcResponse::Denied(reason)) => Err(SwarmError::RpcDenied { peer, method, reason }),
                Ok(RpcResponse::Failed(reason)) => Err(SwarmError::RpcFailed { peer, method, reason }),
                Err(reason) => Err(SwarmError::RpcTransport { peer, method, reason }),
            }
        }
        .instrument(span)
        .await
    }

    /// Subscribes to a pubsub topic; `Ok(false)` if already subscribed.
    pub async fn subscribe(&self, topic: &str) -> Result<bool, SwarmError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Subscribe { topic, reply }).await?
    }

    /// Leaves a pubsub topic; `Ok(false)` if not subscribed.
    pub async fn unsubscribe(&self, topic: &str) -> Result<bool, SwarmError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Unsubscribe { topic, reply }).await
    }

    /// Publishes a signed message. Fails with [`SwarmError::Pubsub`] when no connected peer
    /// is known to subscribe to the topic yet.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), SwarmError> {
        let topic = topic.to_owned();
        self.ask(|reply| Command::Publish { topic, data, reply }).await?
    }

    /// Saves the peerstore, closes listeners and connections, and stops the task.
    pub async fn shutdown(&self) -> Result<(), SwarmError> {
        self.ask(Command::Shutdown).await
    }
}

/// Builds the swarm, starts listening (waiting until every listen address is bound), loads the
/// peerstore and spawns the task that drives everything. Incoming RPCs go through
/// `authorizer` and then `handler`.
pub async fn start(
    config: SwarmConfig,
    authorizer: Arc<dyn RpcAuthorizer>,
    handler: Arc<dyn RpcHandler>,
) -> Result<SwarmHandle, SwarmError> {
    // Validate the bootstrap list before touching the network.
    let mut bootstrap = Vec::new();
    for addr in &config.bootstrap {
        bootstrap.push(peerstore::split_peer_addr(addr).ok_or_else(|| SwarmError::MissingPeerId(addr.clone()))?);
    }
    match &config.secret {
        Some(secret) => tracing::info!(fingerprint = %secret.fingerprint(), "cluster swarm uses a private network"),
        None => tracing::warn!("no cluster secret: cluster will start on unprotected network"),
    }

    let mut swarm = build_swarm(&config)?;
    let local_peer_id = *swarm.local_peer_id();

    let mut pending_listeners = HashSet::new();
    for addr in &config.listen_addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| SwarmError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        pending_listeners.insert((id, addr.clone()));
    }
    // Drive the swarm until each listener reports its bound address, so that
    // `listen_addrs()` is meaningful as soon as `start` returns (port 0 in tests).
    let bind_deadline = Instant::now() + Duration::from_secs(10);
    while !pending_listeners.is_empty() {
        let event =
            tokio::time::timeout_at(bind_deadline, swarm.select_next_some()).await.map_err(|_| SwarmError::Listen {
                addr: pending_listeners.iter().next().map(|(_, a)| a.clone()).unwrap_or_else(Multiaddr::empty),
                reason: "no bound address reported within 10 s".into(),
            })?;
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                tracing::info!(%address, "cluster swarm listening");
                pending_listeners.retain(|(id, _)| *id != listener_id);
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                if let Some((_, addr)) = pending_listeners.iter().find(|(id, _)| *id == listener_id) {
                    let reason = reason.err().map(|e| e.to_string()).unwrap_or_else(|| "listener closed".into());
                    return Err(SwarmError::Listen { addr: addr.clone(), reason });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some((_, addr)) = pending_listeners.iter().find(|(id, _)| *id == listener_id) {
                    return Err(SwarmError::Listen { addr: addr.clone(), reason: error.to_string() });
                }
            }
            _ => {}
        }
    }

    let mut known = match &config.peerstore_path {
        Some(path) => peerstore::load(path).await?,
        None => PeerAddrs::new(),
    };
    known.remove(&local_peer_id);
    let mut dirty = false;
    for (peer, addr) in bootstrap {
        if peer != local_peer_id {
            dirty |= peerstore::add(&mut known, peer, addr);
        }
    }

    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (events, _) = broadcast::channel(1024);
    let (resp_tx, resp_rx) = mpsc::unbounded_channel();
    let metrics = SwarmMetrics::default();
    let now = Instant::now();
    let redial = known.keys().map(|p| (*p, Redial { delay: config.reconnect_initial, next: now })).collect();
    let task = Task {
        swarm,
        secret: config.secret,
        peerstore_path: config.peerstore_path.clone(),
        reconnect_initial: config.reconnect_initial,
        reconnect_max: config.reconnect_max,
        known,
        dirty,
        redial,
        redialing: HashSet::new(),
        pending_connects: HashMap::new(),
        pending_rpcs: HashMap::new(),
        events: events.clone(),
        metrics: metrics.clone(),
        libp2p_metrics: None,
        authorizer,
        handler: handler.clone(),
        resp_tx,
        libp2p_http: config.libp2p_http,
    };
    tokio::spawn(task.run(cmd_rx, resp_rx));
    Ok(SwarmHandle { local_peer_id, commands: cmd_tx, events, metrics, handler })
}

/// Largest pubsub message (a consensus delta batch).
pub const MAX_PUBSUB_MESSAGE: usize = 2 * 1024 * 1024;
/// Largest RPC request.
pub const MAX_RPC_REQUEST: u64 = 4 * 1024 * 1024;
/// Largest RPC answer (a page of pinset records during a sync).
pub const MAX_RPC_RESPONSE: u64 = 32 * 1024 * 1024;

fn build_swarm(config: &SwarmConfig) -> Result<Swarm<Behaviour>, SwarmError> {
    let build_err = |e: &dyn std::fmt::Display| SwarmError::Build(e.to_string());
    let psk = config.secret.map(|s| s.psk());
    let handshake_timeout = config.handshake_timeout;
    let gossip_config = gossipsub::ConfigBuilder::default()
        // Strict: every message must be signed by its author, as Go's StrictSign default.
        .validation_mode(ValidationMode::Strict)
        .message_id_fn(go_message_id)
        // Consensus deltas batch thousands of pins; the 64 KiB default would split them finely.
        .max_transmit_size(MAX_PUBSUB_MESSAGE)
        .build()
        .map_err(|e| build_err(&e))?;
    let rpc_config = request_response::Config::default().with_request_timeout(config.rpc_timeout);
    let identify_config = identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), config.keypair.public())
        .with_agent_version(config.agent_version.clone());
    let mdns_on = config.mdns;
    let http_on = config.libp2p_http.is_some();

    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        // TCP -> pnet (only with a secret) -> noise -> yamux.
        .with_other_transport(move |key| -> Result<_, Box<dyn StdError + Send + Sync>> {
            Ok(cairn_libp2p_http::tcp_transport(key, psk, handshake_timeout)?)
        })
        .map_err(|e| build_err(&e))?
        .with_dns()
        .map_err(|e| build_err(&e))?
        .with_behaviour(move |key| -> Result<_, Box<dyn StdError + Send + Sync>> {
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id())?)
            } else {
                None
            };
            Ok(Behaviour {
                identify: identify::Behaviour::new(identify_config),
                ping: ping::Behaviour::default(),
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?,
                rpc: request_response::cbor::Behaviour::with_codec(
                    request_response::cbor::codec::Codec::default()
                        .set_request_size_maximum(MAX_RPC_REQUEST)
                        .set_response_size_maximum(MAX_RPC_RESPONSE),
                    [(RPC_PROTOCOL, ProtocolSupport::Full)],
                    rpc_config,
                ),
                mdns: Toggle::from(mdns),
                http: Toggle::from(http_on.then(|| HttpBehaviour::new(true))),
            })
        })
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// go-libp2p-pubsub's `DefaultMsgIdFn` (author bytes + big-endian seqno): message ids travel in
/// IHAVE/IWANT, so they must match Go peers' ids.
fn go_message_id(m: &gossipsub::Message) -> MessageId {
    let mut id = m.source.map(|p| p.to_bytes()).unwrap_or_default();
    id.extend_from_slice(&m.sequence_number.unwrap_or_default().to_be_bytes());
    MessageId::new(&id)
}

struct Redial {
    delay: Duration,
    next: Instant,
}

struct Task {
    swarm: Swarm<Behaviour>,
    secret: Option<ClusterSecret>,
    peerstore_path: Option<PathBuf>,
    reconnect_initial: Duration,
    reconnect_max: Duration,
    /// Every peer we want to stay connected to, with its addresses (the peerstore).
    known: PeerAddrs,
    /// `known` changed since the last peerstore write.
    dirty: bool,
    redial: HashMap<PeerId, Redial>,
    /// Peers with a redial in flight, so the tick does not stack dials.
    redialing: HashSet<PeerId>,
    pending_connects: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, SwarmError>>)>,
    pending_rpcs: HashMap<OutboundRequestId, oneshot::Sender<Result<RpcResponse, String>>>,
    events: broadcast::Sender<NetworkEvent>,
    metrics: SwarmMetrics,
    /// libp2p's own metrics, once the daemon registered them.
    libp2p_metrics: Option<Box<Libp2pMetrics>>,
    authorizer: Arc<dyn RpcAuthorizer>,
    handler: Arc<dyn RpcHandler>,
    resp_tx: mpsc::UnboundedSender<(request_response::ResponseChannel<RpcResponse>, RpcResponse)>,
    /// Where inbound `/libp2p-http` streams go (bounded: the task never waits on the API).
    libp2p_http: Option<mpsc::Sender<(PeerId, HttpStream)>>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut responses: mpsc::UnboundedReceiver<(request_response::ResponseChannel<RpcResponse>, RpcResponse)>,
    ) {
        // The tick drives redials and debounced peerstore writes; its period bounds how late a
        // redial can be relative to its backoff.
        let mut tick = tokio::time::interval(Duration::from_millis(250).min(self.reconnect_initial));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.save_peerstore().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        self.save_peerstore().await;
                        break;
                    }
                },
                Some((channel, response)) = responses.recv() => {
                    // Err only means the caller went away; nothing to answer then.
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, response);
                }
                _ = tick.tick() => {
                    self.redial_due();
                    if self.dirty {
                        self.save_peerstore().await;
                    }
                }
            }
        }
        tracing::debug!("cluster swarm stopped");
    }

    fn emit(&self, event: NetworkEvent) {
        // No subscribers is fine: events are informational.
        let _ = self.events.send(event);
    }

    async fn save_peerstore(&mut self) {
        let Some(path) = &self.peerstore_path else { return };
        match peerstore::save(path, &self.known).await {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(error = %e, "cannot save the peerstore"),
        }
    }

    fn remember(&mut self, peer: PeerId, addr: Multiaddr) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        // An address we could not dial back (0.0.0.0, ::) is useless in the peerstore.
        if addr.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        }) {
            return;
        }
        if peerstore::add(&mut self.known, peer, addr) {
            self.dirty = true;
        }
        let initial = self.reconnect_initial;
        self.redial.entry(peer).or_insert_with(|| Redial { delay: initial, next: Instant::now() + initial });
    }

    fn redial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .redial
            .iter()
            .filter(|(p, r)| r.next <= now && !self.redialing.contains(*p) && !self.swarm.is_connected(p))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let addrs = self.known.get(&peer).cloned().unwrap_or_default();
            if addrs.is_empty() {
                continue;
            }
            let opts =
                DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing).build();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(%peer, "redialing peer");
                    self.redialing.insert(peer);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "redial not started");
                    self.backoff(peer);
                }
            }
        }
    }

    fn backoff(&mut self, peer: PeerId) {
        let max = self.reconnect_max;
        if let Some(r) = self.redial.get_mut(&peer) {
            r.next = Instant::now() + r.delay;
            r.delay = (r.delay * 2).min(max);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::KnownPeers(reply) => {
                let _ = reply.send(self.known.clone());
            }
            Command::Connect { addr, reply } => self.connect(addr, reply),
            Command::Rpc { peer, request, reply } => {
                let addrs = self.known.get(&peer).cloned().unwrap_or_default();
                let rpc = &mut self.swarm.behaviour_mut().rpc;
                let id = rpc.send_request_with_addresses(&peer, request, addrs);
                self.pending_rpcs.insert(id, reply);
            }
            Command::Subscribe { topic, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&IdentTopic::new(topic))
                    .map_err(|e| SwarmError::Pubsub(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Unsubscribe { topic, reply } => {
                let _ = reply.send(self.swarm.behaviour_mut().gossipsub.unsubscribe(&IdentTopic::new(topic)));
            }
            Command::Publish { topic, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| SwarmError::Pubsub(e.to_string()));
                let _ = reply.send(result);
            }
            Command::RecordLibp2p(metrics) => self.libp2p_metrics = Some(metrics),
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn connect(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, SwarmError>>) {
        let opts = match peerstore::split_peer_addr(&addr) {
            Some((peer, base)) => {
                if self.swarm.is_connected(&peer) {
                    self.remember(peer, base);
                    let _ = reply.send(Ok(peer));
                    return;
                }
                // Remembered only once the connection works (see ConnectionEstablished), so a
                // mistyped address does not end up redialed forever.
                DialOpts::peer_id(peer).addresses(vec![base]).condition(PeerCondition::Always).build()
            }
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let connection_id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_connects.insert(connection_id, (addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(SwarmError::Dial { addr, reason: e.to_string() }));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(metrics) = &self.libp2p_metrics {
            metrics.record(&event);
        }
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                self.redialing.remove(&peer_id);
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    let base = peerstore::split_peer_addr(address).map(|(_, a)| a).unwrap_or_else(|| address.clone());
                    self.remember(peer_id, base);
                }
                if let Some(r) = self.redial.get_mut(&peer_id) {
                    r.delay = self.reconnect_initial;
                }
                if let Some((_, reply)) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    self.metrics.connected_peers.set(self.swarm.connected_peers().count() as i64);
                    tracing::info!(peer = %peer_id, "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                self.metrics.connected_peers.set(self.swarm.connected_peers().count() as i64);
                tracing::info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                let initial = self.reconnect_initial;
                if let Some(r) = self.redial.get_mut(&peer_id) {
                    r.next = Instant::now() + initial;
                }
                self.emit(NetworkEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                if let Some(peer) = peer_id
                    && self.redialing.remove(&peer)
                {
                    self.backoff(peer);
                }
                let addr = match &error {
                    DialError::Transport(errors) => errors.first().map(|(a, _)| a.clone()),
                    _ => None,
                };
                if let DialError::Transport(errors) = &error {
                    for (addr, e) in errors {
                        if looks_like_handshake_failure(e) {
                            self.handshake_failed(peer_id, Some(addr.clone()), error_chain(e));
                        }
                    }
                }
                if let Some((dialed, reply)) = self.pending_connects.remove(&connection_id) {
                    let reason = match &error {
                        DialError::Transport(errors) => {
                            errors.iter().map(|(_, e)| error_chain(e)).collect::<Vec<_>>().join("; ")
                        }
                        other => other.to_string(),
                    };
                    let _ = reply.send(Err(SwarmError::Dial { addr: addr.unwrap_or(dialed), reason }));
                } else {
                    tracing::debug!(peer = ?peer_id, error = %error, "outgoing connection failed");
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, peer_id, .. } => {
                // The TCP connection was accepted, so a transport error here happened during
                // the upgrade: the handshake.
                if let ListenError::Transport(e) = &error {
                    self.handshake_failed(peer_id, Some(send_back_addr), error_chain(e));
                } else {
                    tracing::debug!(error = %error, "incoming connection refused");
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "cluster swarm listening"),
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn handshake_failed(&self, peer: Option<PeerId>, addr: Option<Multiaddr>, error: String) {
        self.metrics.handshake_failures.inc();
        // Only the fingerprint is logged: it identifies the secret without revealing it.
        match &self.secret {
            Some(secret) => tracing::warn!(
                peer = %display_opt(&peer),
                addr = %display_opt(&addr),
                fingerprint = %secret.fingerprint(),
                error = %error,
                "connection handshake failed; the remote peer probably has a different cluster secret \
                 (or none) — compare secret fingerprints (ours is {})",
                secret.fingerprint()
            ),
            None => tracing::warn!(
                peer = %display_opt(&peer),
                addr = %display_opt(&addr),
                error = %error,
                "connection handshake failed; this peer has no cluster secret, the remote peer probably has one"
            ),
        }
        self.emit(NetworkEvent::HandshakeFailed { peer, addr, error });
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        if let Some(metrics) = &self.libp2p_metrics {
            match &event {
                BehaviourEvent::Identify(e) => metrics.record(e),
                BehaviourEvent::Ping(e) => metrics.record(e),
                BehaviourEvent::Gossipsub(e) => metrics.record(e),
                _ => {}
            }
        }
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.remember(peer_id, addr);
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                self.emit(NetworkEvent::Message {
                    source: message.source,
                    topic: message.topic.into_string(),
                    data: message.data,
                });
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.emit(NetworkEvent::Subscribed { peer: peer_id, topic: topic.into_string() });
            }
            BehaviourEvent::Rpc(event) => self.on_rpc_event(event),
            BehaviourEvent::Http(HttpEvent::Inbound { peer, stream }) => {
                if let Some(queue) = &self.libp2p_http {
                    cairn_libp2p_http::deliver(queue, peer, stream);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "mdns discovered peer");
                    self.remember(peer, addr);
                }
            }
            _ => {}
        }
    }

    fn on_rpc_event(&mut self, event: request_response::Event<RpcRequest, RpcResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                let authorizer = self.authorizer.clone();
                let handler = self.handler.clone();
                let metrics = self.metrics.clone();
                let events = self.events.clone();
                let resp_tx = self.resp_tx.clone();
                let span = tracing::info_span!(
                    "rpc.serve",
                    method = %request.method,
                    %peer,
                    outcome = tracing::field::Empty
                );
                if let Some(traceparent) = &request.traceparent {
                    cairn_telemetry::propagation::continue_trace(&span, traceparent);
                }
                // Authorization and handling may be slow (plugin calls, IPFS), so they run off
                // the swarm task; the answer comes back through `resp_tx`.
                tokio::spawn(
                    async move {
                        let started = std::time::Instant::now();
                        let RpcRequest { method, payload, .. } = request;
                        let response = match authorizer.authorize(peer, &method).await {
                            Err(reason) => {
                                metrics.rpc_denied.inc();
                                // A peer can repeat a denied call at will: one line per window and
                                // (peer, method), the count of the rest in the next line and the metrics.
                                static DENIED_LOG: cairn_telemetry::LogThrottle =
                                    cairn_telemetry::LogThrottle::new(Duration::from_secs(10));
                                if let Some(suppressed) = DENIED_LOG.admit_kind((&peer, &method)) {
                                    tracing::warn!(%peer, %method, %reason, suppressed, "peer rpc denied");
                                }
                                let _ = events.send(NetworkEvent::RpcDenied {
                                    peer,
                                    method: method.clone(),
                                    reason: reason.clone(),
                                });
                                RpcResponse::Denied(reason)
                            }
                            Ok(()) => match handler.handle(peer, &method, payload).await {
                                Ok(bytes) => {
                                    metrics.rpc_served.inc();
                                    RpcResponse::Ok(bytes)
                                }
                                Err(reason) => {
                                    metrics.rpc_failed.inc();
                                    tracing::debug!(%peer, %method, %reason, "peer rpc failed");
                                    RpcResponse::Failed(reason)
                                }
                            },
                        };
                        metrics.served(started.elapsed());
                        let outcome = match &response {
                            RpcResponse::Ok(_) => "ok",
                            RpcResponse::Denied(_) => "denied",
                            RpcResponse::Failed(_) => "failed",
                        };
                        tracing::Span::current().record("outcome", outcome);
                        let _ = resp_tx.send((channel, response));
                    }
                    .instrument(span),
                );
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                if let Some(reply) = self.pending_rpcs.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.pending_rpcs.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, error = %error, "inbound rpc failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

fn display_opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "unknown".to_owned())
}

/// The error and all its sources, joined: libp2p wraps the interesting part several levels
/// deep.
fn error_chain(e: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn StdError> = Some(e);
    while let Some(s) = source {
        // Some wrappers display as "" or repeat their source; keep each text once, on one line.
        let text = s.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether a dial error happened after the TCP connection was made (an upgrade/handshake
/// failure) rather than while reaching the address. pnet has no handshake of its own: a wrong
/// key shows up as a failed protocol negotiation, a reset, an EOF or the upgrade timeout.
fn looks_like_handshake_failure(e: &(dyn StdError + 'static)) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable) {
                return false;
            }
        }
        source = s.source();
    }
    let text = format!("{} {:?}", error_chain(e), e);
    !(text.contains("MultiaddrNotSupported") || text.contains("Connection refused"))
}
