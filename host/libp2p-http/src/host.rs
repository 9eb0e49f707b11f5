//! The serving side: a swarm that accepts `/libp2p-http` streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::transport::{self, Behaviour, BehaviourEvent, error_chain};
use crate::{DEFAULT_TIMEOUT, Error, HttpStream, protocol};

/// Streams waiting for `accept`; beyond this, new streams are reset rather than queued
/// without bound (the swarm task must never block on a slow acceptor).
const INCOMING_QUEUE: usize = 1024;

/// How long an unused connection stays open; clients open one stream per request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for connections to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Incoming = (PeerId, HttpStream);

/// A libp2p host serving `/libp2p-http`; dropping it stops the swarm too.
pub struct Libp2pHttpHost {
    peer_id: PeerId,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Libp2pHttpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2pHttpHost").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

impl Libp2pHttpHost {
    /// Start listening on `listen` (with the PSK's private network when given); returns once
    /// every address is bound.
    pub async fn start(keypair: Keypair, listen: Vec<Multiaddr>, psk: Option<[u8; 32]>) -> Result<Self, Error> {
        Self::start_with_timeout(keypair, listen, psk, DEFAULT_TIMEOUT).await
    }

    /// As [`Self::start`], with the limit on binding and on each inbound connection handshake.
    pub async fn start_with_timeout(
        keypair: Keypair,
        listen: Vec<Multiaddr>,
        psk: Option<[u8; 32]>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        tokio::runtime::Handle::try_current().map_err(|e| Error::Build(e.to_string()))?;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = transport::build(keypair, psk, true, timeout, IDLE_TIMEOUT)?;
        let mut pending: HashMap<ListenerId, Multiaddr> = HashMap::new();
        for addr in listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| Error::Listen { addr: addr.clone(), reason: error_chain(&e) })?;
            pending.insert(id, addr);
        }

        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let mut task = HostTask { swarm, listen_addrs: Arc::new(Mutex::new(Vec::new())), incoming: incoming_tx };
        // Wait for each listener's first address so `listen_addrs` is meaningful at once (a
        // `/tcp/0` port is only known then).
        let bound = tokio::time::timeout(timeout, async {
            while !pending.is_empty() {
                match task.swarm.select_next_some().await {
                    SwarmEvent::ListenerClosed { listener_id, reason, .. } if pending.contains_key(&listener_id) => {
                        let reason = match reason {
                            Err(e) => error_chain(&e),
                            Ok(()) => "the listener closed".to_owned(),
                        };
                        return Err(Error::Listen {
                            addr: pending.remove(&listener_id).unwrap_or_else(Multiaddr::empty),
                            reason,
                        });
                    }
                    SwarmEvent::ListenerError { listener_id, error } if pending.contains_key(&listener_id) => {
                        let addr = pending.remove(&listener_id).unwrap_or_else(Multiaddr::empty);
                        return Err(Error::Listen { addr, reason: error_chain(&error) });
                    }
                    event => {
                        if let SwarmEvent::NewListenAddr { listener_id, .. } = &event {
                            pending.remove(listener_id);
                        }
                        task.on_event(event);
                    }
                }
            }
            Ok(())
        })
        .await;
        match bound {
            Ok(result) => result?,
            Err(_) => {
                let addrs: Vec<String> = pending.values().map(|a| a.to_string()).collect();
                return Err(Error::Listen {
                    addr: pending.into_values().next().unwrap_or_else(Multiaddr::empty),
                    reason: format!("no listen address reported within {timeout:?} ({})", addrs.join(", ")),
                });
            }
        }

        let listen_addrs = task.listen_addrs.clone();
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = tokio::spawn(task.run(stop_rx));
        tracing::info!(%peer_id, addrs = ?listen_addrs.lock().unwrap_or_else(PoisonError::into_inner), "libp2p-http host listening");
        Ok(Libp2pHttpHost {
            peer_id,
            listen_addrs,
            incoming: tokio::sync::Mutex::new(incoming_rx),
            stop: Mutex::new(Some(stop_tx)),
            task: Mutex::new(Some(handle)),
        })
    }

    /// This host's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses listened on now (`/tcp/0` resolved, `0.0.0.0` expanded per interface).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The listen addresses with `/p2p/<peer id>` appended: what a client dials.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs().into_iter().map(|a| a.with(Protocol::P2p(self.peer_id))).collect()
    }

    /// The next inbound `/libp2p-http` stream and who opened it; `None` once shut down.
    pub async fn accept(&self) -> Option<(PeerId, HttpStream)> {
        self.incoming.lock().await.recv().await
    }

    /// Stop the swarm: listeners close, connections (and their streams) close.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct HostTask {
    swarm: Swarm<Behaviour>,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    incoming: mpsc::Sender<Incoming>,
}

impl HostTask {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                // A dropped sender (the host was dropped) stops the task as well.
                _ = &mut stop => break,
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
        self.listen_addrs.lock().unwrap_or_else(PoisonError::into_inner).clear();
        close_gracefully(&mut self.swarm).await;
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Http(protocol::Event::Inbound { peer, stream })) => {
                crate::deliver(&self.incoming, peer, stream);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                self.listen_addrs.lock().unwrap_or_else(PoisonError::into_inner).push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.lock().unwrap_or_else(PoisonError::into_inner).retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                tracing::debug!(%peer_id, remote = %endpoint.get_remote_address(), "libp2p-http: connection");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                // A client with another PSK lands here.
                tracing::debug!(remote = %send_back_addr, error = %error_chain(&error), "libp2p-http: inbound connection failed");
            }
            _ => {}
        }
    }
}

/// Close every connection and give them a moment to say so to the peer, rather than
/// dropping sockets mid-frame.
pub(crate) async fn close_gracefully(swarm: &mut Swarm<Behaviour>) {
    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
    for peer in peers {
        let _ = swarm.disconnect_peer_id(peer);
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while swarm.network_info().num_peers() > 0 {
            swarm.select_next_some().await;
        }
    })
    .await;
}
