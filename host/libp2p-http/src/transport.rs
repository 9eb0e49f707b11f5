//! The swarm both ends use: TCP → pnet (only with a PSK) → noise → yamux, identify and ping.

use std::error::Error as StdError;
use std::time::Duration;

use futures::future::Either;
use libp2p::core::Transport;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::transport::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{PeerId, Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

use crate::{Error, protocol};

/// Identify's protocol version string for these hosts.
const IDENTIFY_PROTOCOL: &str = "/cairn/libp2p-http/0.1.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) http: protocol::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Build a swarm. `handshake_timeout` bounds the connection upgrade, which is where a wrong
/// PSK shows up (pnet has no handshake of its own; the other side just reads noise).
pub(crate) fn build(
    keypair: Keypair,
    psk: Option<[u8; 32]>,
    accept_inbound: bool,
    handshake_timeout: Duration,
    idle_timeout: Duration,
) -> Result<Swarm<Behaviour>, Error> {
    let build_err = |e: &dyn std::fmt::Display| Error::Build(e.to_string());
    let psk = psk.map(PreSharedKey::new);
    let identify_config = identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
        .with_agent_version(format!("cairn-libp2p-http/{}", env!("CARGO_PKG_VERSION")));
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(move |key| -> Result<_, Box<dyn StdError + Send + Sync>> {
            Ok(tcp_transport(key, psk, handshake_timeout)?)
        })
        .map_err(|e| build_err(&e))?
        .with_behaviour(|_| Behaviour {
            http: protocol::Behaviour::new(accept_inbound),
            identify: identify::Behaviour::new(identify_config),
            ping: ping::Behaviour::default(),
        })
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

/// The TCP stack of Cairn's libp2p hosts (the cluster host and the libp2p-http hosts):
/// TCP → pnet (only with a pre-shared key) → noise → yamux, the whole upgrade bounded by
/// `handshake_timeout`. `with_tcp` has no hook for pnet, so it is assembled by hand.
pub fn tcp_transport(
    key: &Keypair,
    psk: Option<PreSharedKey>,
    handshake_timeout: Duration,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let noise = noise::Config::new(key)?;
    Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .and_then(move |socket, _| async move {
            match psk {
                Some(psk) => PnetConfig::new(psk).handshake(socket).await.map(Either::Left),
                None => Ok(Either::Right(socket)),
            }
        })
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(handshake_timeout)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// The error and its sources on one line: libp2p nests the useful part several levels deep.
pub(crate) fn error_chain(e: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn StdError> = Some(e);
    while let Some(s) = source {
        let text = s.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
