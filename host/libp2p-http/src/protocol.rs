//! The `/libp2p-http` stream behaviour: a minimal `NetworkBehaviour` + `ConnectionHandler`.
//!
//! Hand-rolled rather than `libp2p-stream` because libp2p-stream 0.4.0-alpha hands inbound
//! streams to the application through a zero-capacity channel from the connection tasks and
//! drops a stream whenever the channel is momentarily full, so concurrent HTTP requests would
//! be reset at random. Here inbound streams travel as ordinary handler → behaviour → swarm
//! events, which have backpressure instead of loss.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound, ListenUpgradeError,
};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, Stream, StreamProtocol, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, swarm::behaviour::ConnectionEstablished};
use tokio::sync::oneshot;

/// The stream protocol id of go-libp2p-http (what IPFS Cluster's REST API registers).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p-http");

/// Where the outcome of one outbound stream request goes; errors are libp2p's text.
pub(crate) type OpenReply = oneshot::Sender<Result<Stream, String>>;

/// Negotiates `/libp2p-http`, or nothing at all for an endpoint that does not accept streams.
#[derive(Debug, Clone)]
pub struct Upgrade(Option<StreamProtocol>);

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = std::option::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_inbound(self, socket: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(socket))
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_outbound(self, socket: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(socket))
    }
}

/// Per-connection state.
pub struct Handler {
    accept_inbound: bool,
    /// Requests from the behaviour not yet turned into substream requests.
    to_open: VecDeque<OpenReply>,
    /// Substream requests under negotiation; they keep the connection alive.
    negotiating: usize,
    /// Negotiated inbound streams not yet reported.
    inbound: VecDeque<Stream>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = OpenReply;
    type ToBehaviour = Stream;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OpenReply;

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        SubstreamProtocol::new(Upgrade(self.accept_inbound.then_some(PROTOCOL)), ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Open streams keep the connection alive on their own (libp2p counts them); this
        // covers the window before a stream exists.
        !self.to_open.is_empty() || self.negotiating > 0 || !self.inbound.is_empty()
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ConnectionHandlerEvent<Upgrade, OpenReply, Stream>> {
        if let Some(stream) = self.inbound.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(stream));
        }
        if let Some(reply) = self.to_open.pop_front() {
            self.negotiating += 1;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(Upgrade(Some(PROTOCOL)), reply),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, reply: OpenReply) {
        self.to_open.push_back(reply);
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Upgrade, Upgrade, (), OpenReply>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) => {
                self.inbound.push_back(stream);
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol: stream, info: reply }) => {
                self.negotiating = self.negotiating.saturating_sub(1);
                // The requester may have given up (timeout); the stream is then just dropped.
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: reply, error }) => {
                self.negotiating = self.negotiating.saturating_sub(1);
                let text = match error {
                    StreamUpgradeError::NegotiationFailed => format!("the peer does not support {PROTOCOL}"),
                    StreamUpgradeError::Timeout => format!("negotiating {PROTOCOL} timed out"),
                    StreamUpgradeError::Io(e) => format!("negotiating {PROTOCOL}: {e}"),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(text));
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { error, .. }) => match error {},
            _ => {}
        }
    }
}

/// What the behaviour reports to the swarm owner.
#[derive(Debug)]
pub enum Event {
    /// A peer opened a `/libp2p-http` stream.
    Inbound {
        /// Who opened it (authenticated by noise).
        peer: PeerId,
        /// The stream; [`crate::deliver`] hands it on as an [`crate::HttpStream`].
        stream: Stream,
    },
}

/// The `/libp2p-http` protocol for a swarm: reports inbound streams (when accepting them) and
/// routes outbound stream requests to a connection.
pub struct Behaviour {
    accept_inbound: bool,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    actions: VecDeque<ToSwarm<Event, OpenReply>>,
}

impl Behaviour {
    /// `accept_inbound`: whether peers may open `/libp2p-http` streams to us.
    pub fn new(accept_inbound: bool) -> Self {
        Behaviour { accept_inbound, connections: HashMap::new(), actions: VecDeque::new() }
    }

    /// Open a stream on an existing connection to `peer`; the reply says why not otherwise.
    pub(crate) fn open_stream(&mut self, peer: PeerId, reply: OpenReply) {
        match self.connections.get(&peer).and_then(|c| c.last()) {
            Some(&connection) => self.actions.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: reply,
            }),
            None => {
                let _ = reply.send(Err(format!("not connected to {peer}")));
            }
        }
    }

    fn handler(&self) -> Handler {
        Handler {
            accept_inbound: self.accept_inbound,
            to_open: VecDeque::new(),
            negotiating: 0,
            inbound: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { peer_id, connection_id, .. }) => {
                self.connections.entry(peer_id).or_default().push(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { peer_id, connection_id, .. }) => {
                if let Some(list) = self.connections.get_mut(&peer_id) {
                    list.retain(|c| *c != connection_id);
                    if list.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, peer: PeerId, _: ConnectionId, stream: THandlerOutEvent<Self>) {
        self.actions.push_back(ToSwarm::GenerateEvent(Event::Inbound { peer, stream }));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
            None => Poll::Pending,
        }
    }
}
