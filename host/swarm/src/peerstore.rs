//! The peerstore file: one `/…/p2p/<peer id>` multiaddr per line, as IPFS Cluster's
//! `peerstore` file, so that a restarted peer can reconnect without bootstrap addresses.

use std::collections::BTreeMap;
use std::path::Path;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::error::SwarmError;

/// Addresses remembered per peer. A BTreeMap keeps the file stable between writes.
pub type PeerAddrs = BTreeMap<PeerId, Vec<Multiaddr>>;

/// At most this many addresses are kept per peer, so a peer that advertises many interfaces
/// cannot grow the file without bound.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// Splits `/…/p2p/<id>` into the peer id and the address without the suffix.
pub fn split_peer_addr(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

/// Reads the peerstore. A missing file is an empty peerstore; unparsable lines are skipped
/// with a warning, because a damaged cache must not keep the peer from starting.
pub async fn load(path: &Path) -> Result<PeerAddrs, SwarmError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PeerAddrs::new()),
        Err(e) => {
            return Err(SwarmError::Peerstore { path: path.display().to_string(), reason: e.to_string() });
        }
    };
    let mut peers = PeerAddrs::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<Multiaddr>().ok().and_then(|a| split_peer_addr(&a)) {
            Some((peer, addr)) => {
                add(&mut peers, peer, addr);
            }
            None => tracing::warn!(
                path = %path.display(),
                line = n + 1,
                "ignoring peerstore line that is not a multiaddr ending in /p2p/<peer id>"
            ),
        }
    }
    Ok(peers)
}

/// Remembers `addr` for `peer`; returns whether it was new.
pub fn add(peers: &mut PeerAddrs, peer: PeerId, addr: Multiaddr) -> bool {
    let list = peers.entry(peer).or_default();
    if list.contains(&addr) {
        return false;
    }
    if list.len() >= MAX_ADDRS_PER_PEER {
        // The oldest address is the most likely to be stale.
        list.remove(0);
    }
    list.push(addr);
    true
}

/// Writes the peerstore atomically (temporary file + rename), so a crash mid-write leaves the
/// previous file intact.
pub async fn save(path: &Path, peers: &PeerAddrs) -> Result<(), SwarmError> {
    let err = |e: std::io::Error| SwarmError::Peerstore { path: path.display().to_string(), reason: e.to_string() };
    let mut text = String::new();
    for (peer, addrs) in peers {
        for addr in addrs {
            text.push_str(&addr.clone().with(Protocol::P2p(*peer)).to_string());
            text.push('\n');
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    tokio::fs::write(&tmp, text).await.map_err(err)?;
    tokio::fs::rename(&tmp, path).await.map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peerstore");
        assert!(load(&path).await.unwrap().is_empty());
        let peer = PeerId::random();
        let mut peers = PeerAddrs::new();
        assert!(add(&mut peers, peer, "/ip4/127.0.0.1/tcp/1".parse().unwrap()));
        assert!(!add(&mut peers, peer, "/ip4/127.0.0.1/tcp/1".parse().unwrap()));
        save(&path, &peers).await.unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}\n"));
        text.push_str("garbage\n/ip4/127.0.0.1/tcp/2\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(load(&path).await.unwrap(), peers);
    }

    #[test]
    fn caps_addresses_per_peer() {
        let peer = PeerId::random();
        let mut peers = PeerAddrs::new();
        for port in 0..20 {
            add(&mut peers, peer, format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap());
        }
        assert_eq!(peers[&peer].len(), MAX_ADDRS_PER_PEER);
        assert_eq!(peers[&peer][MAX_ADDRS_PER_PEER - 1], "/ip4/127.0.0.1/tcp/19".parse::<Multiaddr>().unwrap());
    }
}
