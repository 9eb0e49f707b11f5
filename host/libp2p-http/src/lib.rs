//! HTTP over libp2p streams, protocol `/libp2p-http` (IPFS Cluster's go-libp2p-http).
//!
//! The server side ([`Libp2pHttpHost`]) runs its own libp2p swarm (TCP, optional pnet PSK,
//! noise, yamux, identify, ping) and yields each inbound `/libp2p-http` stream with the
//! remote's peer id; the caller serves HTTP/1.1 on it (e.g. hyper). The client side
//! ([`dial`], [`Libp2pHttpClient`]) opens such streams to `/…/p2p/<peer id>` addresses, as
//! `ipfs-cluster-ctl --host /ip4/…/tcp/…/p2p/<id> --secret <hex>` does. Another swarm (the
//! cluster host in raft mode) can serve the protocol too by embedding [`HttpBehaviour`].

mod client;
mod host;
mod protocol;
mod transport;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
pub use libp2p::identity::Keypair;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

pub use client::{Libp2pHttpClient, dial, dial_with_timeout};
pub use host::Libp2pHttpHost;
pub use libp2p::{Multiaddr, PeerId};
pub use protocol::{Behaviour as HttpBehaviour, Event as HttpEvent, PROTOCOL};
pub use transport::tcp_transport;

/// How long connecting (and the connection handshake) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of this crate; each names the address or peer involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configured `id` is not a peer id.
    #[error("invalid peer id {id:?}: {reason}")]
    InvalidPeerId {
        /// The text given.
        id: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The configured `private_key` is not a base64 libp2p private key.
    #[error("invalid private_key: {0}")]
    InvalidPrivateKey(String),
    /// `id` and `private_key` belong to different peers.
    #[error("id {id} does not match private_key, whose peer id is {derived}")]
    IdMismatch {
        /// The configured id (text: two `PeerId`s would make every `Result` 160 bytes).
        id: String,
        /// The id the private key yields.
        derived: String,
    },
    /// The swarm could not be built, or no tokio runtime is running.
    #[error("cannot build the libp2p-http swarm: {0}")]
    Build(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// libp2p's reason.
        reason: String,
    },
    /// A dial target without the trailing `/p2p/<peer id>`.
    #[error("{addr} does not end in /p2p/<peer id>, so it names no libp2p peer")]
    NoPeerId {
        /// The target given.
        addr: Multiaddr,
    },
    /// The connection to the peer failed.
    #[error("cannot connect to {peer} at {addr}: {reason}")]
    Connect {
        /// The target's peer id.
        peer: PeerId,
        /// The target address.
        addr: Multiaddr,
        /// libp2p's reason.
        reason: String,
    },
    /// Connected, but the `/libp2p-http` stream could not be opened.
    #[error("cannot open a /libp2p-http stream to {peer} at {addr}: {reason}")]
    OpenStream {
        /// The target's peer id.
        peer: PeerId,
        /// The target address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Nothing usable came back in time.
    #[error(
        "no /libp2p-http stream to {peer} at {addr} within {timeout:?}: the peer is unreachable, \
         or its private network secret differs"
    )]
    Timeout {
        /// The target's peer id.
        peer: PeerId,
        /// The target address.
        addr: Multiaddr,
        /// The limit that expired.
        timeout: Duration,
    },
    /// The swarm task has stopped.
    #[error("the libp2p-http swarm has shut down")]
    Closed,
}

/// Parse restapi's `id` / `private_key` (base64 of the protobuf-encoded key, as identity.json)
/// and check that they belong together.
pub fn host_identity(id: &str, private_key_base64: &str) -> Result<Keypair, Error> {
    let peer_id: PeerId =
        id.trim().parse().map_err(|e| Error::InvalidPeerId { id: id.to_owned(), reason: format!("{e}") })?;
    let bytes = BASE64
        .decode(private_key_base64.trim())
        .map_err(|e| Error::InvalidPrivateKey(format!("not valid base64: {e}")))?;
    let keypair = Keypair::from_protobuf_encoding(&bytes)
        .map_err(|e| Error::InvalidPrivateKey(format!("not a libp2p private key: {e}")))?;
    let derived = keypair.public().to_peer_id();
    if derived != peer_id {
        return Err(Error::IdMismatch { id: peer_id.to_string(), derived: derived.to_string() });
    }
    Ok(keypair)
}

/// Hands an inbound stream (an [`HttpEvent::Inbound`]) to `queue` without waiting: when the
/// queue is full or closed the stream is dropped, which resets it, since a swarm task must
/// never block on the HTTP server.
pub fn deliver(queue: &mpsc::Sender<(PeerId, HttpStream)>, peer: PeerId, stream: libp2p::Stream) {
    match queue.try_send((peer, HttpStream::new(stream, peer, None))) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(%peer, "libp2p-http: {} streams await the server; resetting a new one", queue.max_capacity())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::debug!(%peer, "libp2p-http: nobody accepts streams; resetting")
        }
    }
}

/// One `/libp2p-http` stream as a tokio byte stream; hand it to hyper via `TokioIo`.
pub struct HttpStream {
    // Declared first so it drops before the client swarm it may keep alive.
    inner: Compat<libp2p::Stream>,
    peer: PeerId,
    // A dialed stream keeps its client swarm running; the last holder's drop stops it.
    _client: Option<Arc<client::ClientInner>>,
}

impl HttpStream {
    fn new(stream: libp2p::Stream, peer: PeerId, client: Option<Arc<client::ClientInner>>) -> Self {
        HttpStream { inner: stream.compat(), peer, _client: client }
    }

    /// The peer at the other end (authenticated by noise).
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl AsyncRead for HttpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_identity_checks_the_pair() {
        let key = Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let b64 = BASE64.encode(key.to_protobuf_encoding().expect("encode"));
        assert_eq!(host_identity(&id.to_string(), &b64).expect("match").public().to_peer_id(), id);

        let other = Keypair::generate_ed25519().public().to_peer_id();
        let e = host_identity(&other.to_string(), &b64).expect_err("mismatch");
        let text = e.to_string();
        assert!(text.contains(&other.to_string()) && text.contains(&id.to_string()), "{text}");

        let e = host_identity("bogus", &b64).expect_err("bad id");
        assert!(e.to_string().contains("\"bogus\""), "{e}");
        let e = host_identity(&id.to_string(), "%%%").expect_err("bad base64");
        assert!(e.to_string().contains("base64"), "{e}");
        let e = host_identity(&id.to_string(), &BASE64.encode(b"not a key")).expect_err("bad key");
        assert!(e.to_string().contains("not a libp2p private key"), "{e}");
    }
}
