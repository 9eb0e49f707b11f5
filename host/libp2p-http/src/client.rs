//! The dialing side: a swarm with a random key that opens `/libp2p-http` streams.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::host::close_gracefully;
use crate::protocol::OpenReply;
use crate::transport::{self, Behaviour, error_chain};
use crate::{DEFAULT_TIMEOUT, Error, HttpStream};

/// How long an unused client connection stays open for the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Dial `target` (`/…/p2p/<peer id>`) with a throwaway swarm and open one `/libp2p-http`
/// stream; the swarm lives as long as the stream. Gives up after [`DEFAULT_TIMEOUT`].
pub async fn dial(target: Multiaddr, psk: Option<[u8; 32]>) -> Result<HttpStream, Error> {
    dial_with_timeout(target, psk, DEFAULT_TIMEOUT).await
}

/// As [`dial`], giving up after `timeout`.
pub async fn dial_with_timeout(
    target: Multiaddr,
    psk: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<HttpStream, Error> {
    Libp2pHttpClient::new(psk, timeout)?.open(&target).await
}

enum Command {
    Connect { peer: PeerId, addr: Multiaddr, reply: oneshot::Sender<Result<(), String>> },
    Open { peer: PeerId, reply: OpenReply },
}

/// Held by the client and by every stream it opened; the last drop stops the swarm task.
pub(crate) struct ClientInner {
    commands: mpsc::UnboundedSender<Command>,
}

/// One client swarm (random key) reused for many streams, to one or more peers.
#[derive(Clone)]
pub struct Libp2pHttpClient {
    inner: Arc<ClientInner>,
    peer_id: PeerId,
    timeout: Duration,
}

impl std::fmt::Debug for Libp2pHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2pHttpClient").field("peer_id", &self.peer_id).field("timeout", &self.timeout).finish()
    }
}

impl Libp2pHttpClient {
    /// Start a client swarm (in the current tokio runtime); `timeout` bounds each `open`.
    pub fn new(psk: Option<[u8; 32]>, timeout: Duration) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| Error::Build(e.to_string()))?;
        let keypair = Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let swarm = transport::build(keypair, psk, false, timeout, IDLE_TIMEOUT)?;
        let (commands, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(swarm, rx));
        Ok(Libp2pHttpClient { inner: Arc::new(ClientInner { commands }), peer_id, timeout })
    }

    /// The client's own (random) peer id, which the server sees.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Open a `/libp2p-http` stream to `target` (`/…/p2p/<peer id>`), connecting if needed.
    pub async fn open(&self, target: &Multiaddr) -> Result<HttpStream, Error> {
        let (addr, peer) = split_target(target)?;
        let work = async {
            let (reply, answer) = oneshot::channel();
            self.send(Command::Connect { peer, addr, reply })?;
            answer.await.map_err(|_| Error::Closed)?.map_err(|reason| Error::Connect {
                peer,
                addr: target.clone(),
                reason,
            })?;

            let (reply, answer) = oneshot::channel();
            self.send(Command::Open { peer, reply })?;
            let stream = answer
                .await
                .map_err(|_| "the connection closed while opening the stream".to_owned())
                .and_then(|r| r)
                .map_err(|reason| Error::OpenStream { peer, addr: target.clone(), reason })?;
            Ok(HttpStream::new(stream, peer, Some(self.inner.clone())))
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| Error::Timeout {
            peer,
            addr: target.clone(),
            timeout: self.timeout,
        })?
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.inner.commands.send(command).map_err(|_| Error::Closed)
    }
}

/// Split `/ip4/…/tcp/…/p2p/<id>` into the transport address and the peer id.
fn split_target(target: &Multiaddr) -> Result<(Multiaddr, PeerId), Error> {
    let mut addr = target.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok((addr, peer)),
        _ => Err(Error::NoPeerId { addr: target.clone() }),
    }
}

async fn run(mut swarm: Swarm<Behaviour>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<(), String>>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                // The client and all its streams are gone.
                None => break,
                Some(Command::Connect { peer, addr, reply }) => {
                    if swarm.is_connected(&peer) {
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    // Always: a concurrent dial to the same peer must not fail the second caller.
                    let opts = DialOpts::peer_id(peer).addresses(vec![addr]).condition(PeerCondition::Always).build();
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            dials.insert(id, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(describe(&e)));
                        }
                    }
                }
                Some(Command::Open { peer, reply }) => swarm.behaviour_mut().http.open_stream(peer, reply),
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                    if let Some(reply) = dials.remove(&connection_id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some(reply) = dials.remove(&connection_id) {
                        let _ = reply.send(Err(describe(&error)));
                    }
                }
                _ => {}
            },
        }
    }
    close_gracefully(&mut swarm).await;
}

/// libp2p's dial error, plus a hint when the TCP connection was made but the handshake
/// failed: with pnet, a wrong secret looks like a garbled protocol negotiation or a reset.
fn describe(e: &DialError) -> String {
    match e {
        // DialError's own text repeats the address per attempt; the caller names it already.
        DialError::Transport(attempts) => {
            let text = attempts.iter().map(|(_, e)| error_chain(e)).collect::<Vec<_>>().join("; ");
            if handshake_failed(e) {
                format!(
                    "{text} (connected, but the handshake failed: do both sides use the same private network secret?)"
                )
            } else {
                text
            }
        }
        _ => error_chain(e),
    }
}

fn handshake_failed(e: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable)
        {
            return false;
        }
        source = s.source();
    }
    let text = format!("{} {e:?}", error_chain(e));
    !(text.contains("MultiaddrNotSupported") || text.contains("Connection refused"))
}
