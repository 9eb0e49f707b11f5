//! How a cluster pin looks in this API: its spec [`Status`] from the global status, and its
//! `delegates` from the IPFS addresses of the peers that hold it.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use cairn_state::{Cid, Timestamp, TrackerStatus};
use multiaddr::{Multiaddr, Protocol};

use super::requestid;
use super::types::{PinObject, PinStatus, Status};
use crate::types::{GlobalPinInfo, Id};

/// The spec's limit on `delegates`.
pub(crate) const MAX_DELEGATES: usize = 20;

/// Whether a peer of the peer map speaks for the pin: an allocated peer, or any peer when the pin
/// is allocated everywhere (no allocations).
fn relevant(allocations: &[String], peer: &str) -> bool {
    allocations.is_empty() || allocations.iter().any(|a| a == peer)
}

/// The spec status of a pin in the pinset. Only allocated peers count, so that an unreachable
/// peer that was never asked to pin does not fail every pin. In order: any error → failed; any
/// pin queued → queued; any pinning → pinning; any pinned → pinned; otherwise queued, because
/// the pin is committed and no peer has started on it yet (e.g. all `remote`/`unpinned` right
/// after the commit).
pub(crate) fn status_of(gpi: &GlobalPinInfo, allocations: &[String]) -> Status {
    let (mut failed, mut queued, mut pinning, mut pinned) = (false, false, false, false);
    for (_, info) in gpi.peer_map.iter().filter(|(peer, _)| relevant(allocations, peer)) {
        match info.status {
            TrackerStatus::ClusterError | TrackerStatus::PinError | TrackerStatus::UnpinError => failed = true,
            TrackerStatus::PinQueued => queued = true,
            TrackerStatus::Pinning => pinning = true,
            TrackerStatus::Pinned => pinned = true,
            _ => {}
        }
    }
    if failed {
        Status::Failed
    } else if queued {
        Status::Queued
    } else if pinning {
        Status::Pinning
    } else if pinned {
        Status::Pinned
    } else {
        Status::Queued
    }
}

/// The IPFS addresses of the allocated peers in a global status (at most 20; may be empty).
pub(crate) fn delegates_of(gpi: &GlobalPinInfo, allocations: &[String]) -> Vec<String> {
    let addrs = gpi
        .peer_map
        .iter()
        .filter(|(peer, _)| relevant(allocations, peer))
        .flat_map(|(_, info)| info.ipfs_peer_addresses.iter().filter_map(|a| with_peer(a, &info.ipfs_peer_id)));
    finish(addrs)
}

/// The fallback delegates from this peer's `Id`: its IPFS addresses, or, when its IPFS node's
/// addresses are unknown (the daemon never answered), the cluster peer's own addresses, so the
/// list keeps the spec's minimum of one.
pub(crate) fn delegates_of_id(id: &Id) -> Vec<String> {
    let ipfs = finish(id.ipfs.addresses.iter().filter_map(|a| with_peer(a, &id.ipfs.id)));
    if !ipfs.is_empty() {
        return ipfs;
    }
    finish(id.addresses.iter().filter_map(|a| with_peer(a, &id.id)))
}

/// An address that ends in `/p2p/<id>`, as the spec requires of delegates: as given when it
/// does, with the IPFS peer id appended when it does not, `None` when neither works.
fn with_peer(addr: &str, peer_id: &str) -> Option<String> {
    let mut addr = Multiaddr::from_str(addr).ok()?;
    if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        let peer = libp2p_identity::PeerId::from_str(peer_id).ok()?;
        addr.push(Protocol::P2p(peer));
    }
    Some(addr.to_string())
}

/// Whether a client elsewhere cannot dial it (loopback, private, link-local).
fn is_local(addr: &str) -> bool {
    let Ok(addr) = Multiaddr::from_str(addr) else { return false };
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback() || ip.is_unspecified() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
        _ => false,
    }
}

/// Unique, public addresses first (the spec says to avoid local ones, but a local address is
/// better than none on a LAN-only cluster), at most [`MAX_DELEGATES`].
fn finish(addrs: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    let (public, local): (Vec<String>, Vec<String>) =
        addrs.filter(|a| seen.insert(a.clone())).partition(|a| !is_local(a));
    public.into_iter().chain(local).take(MAX_DELEGATES).collect()
}

/// A `PinStatus` of a cluster pin's fields.
pub(crate) struct Described<'a> {
    pub(crate) cid: &'a Cid,
    pub(crate) created: Timestamp,
    pub(crate) name: &'a str,
    pub(crate) origins: &'a [String],
    pub(crate) meta: &'a BTreeMap<String, String>,
}

impl Described<'_> {
    /// The `PinStatus` with this status and these delegates.
    pub(crate) fn status(&self, status: Status, delegates: Vec<String>) -> PinStatus {
        PinStatus {
            requestid: requestid::encode(self.cid, self.created),
            status,
            created: self.created,
            pin: PinObject {
                cid: self.cid.clone(),
                name: self.name.to_owned(),
                origins: self.origins.to_vec(),
                meta: self.meta.clone(),
            },
            delegates,
            info: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PinInfoShort;

    const IPFS: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    fn gpi(peers: &[(&str, TrackerStatus)]) -> GlobalPinInfo {
        let mut g = GlobalPinInfo::new(Cid::parse("QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco").expect("cid"));
        for (peer, status) in peers {
            g.peer_map.insert((*peer).to_owned(), PinInfoShort { status: *status, ..PinInfoShort::default() });
        }
        g
    }

    #[test]
    fn status_precedence() {
        use TrackerStatus::*;
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("b", PinError)]), &[]), Status::Failed);
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("b", UnpinError)]), &[]), Status::Failed);
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("b", PinQueued), ("c", Pinning)]), &[]), Status::Queued);
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("c", Pinning)]), &[]), Status::Pinning);
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("c", Remote)]), &[]), Status::Pinned);
        assert_eq!(status_of(&gpi(&[("a", Remote), ("c", Unpinned)]), &[]), Status::Queued);
        assert_eq!(status_of(&gpi(&[]), &[]), Status::Queued);
        // An unreachable peer the pin is not allocated to does not fail it.
        let allocated = ["a".to_owned()];
        assert_eq!(status_of(&gpi(&[("a", Pinned), ("z", ClusterError)]), &allocated), Status::Pinned);
        assert_eq!(status_of(&gpi(&[("a", ClusterError), ("z", Pinned)]), &allocated), Status::Failed);
    }

    #[test]
    fn delegates_end_in_p2p_are_unique_and_public_first() {
        let mut g = gpi(&[("a", TrackerStatus::Pinned), ("b", TrackerStatus::Remote)]);
        let a = g.peer_map.get_mut("a").expect("a");
        a.ipfs_peer_id = IPFS.to_owned();
        a.ipfs_peer_addresses = vec![
            "/ip4/127.0.0.1/tcp/4001".into(),
            "/ip4/203.0.113.1/tcp/4001".into(),
            format!("/ip4/203.0.113.1/tcp/4001/p2p/{IPFS}"),
            "not an address".into(),
        ];
        g.peer_map.get_mut("b").expect("b").ipfs_peer_addresses = vec!["/ip4/203.0.113.2/tcp/4001".into()];
        // b has no IPFS id, so its address cannot end in /p2p and is left out; b is not
        // allocated anyway.
        assert_eq!(
            delegates_of(&g, &["a".to_owned()]),
            [format!("/ip4/203.0.113.1/tcp/4001/p2p/{IPFS}"), format!("/ip4/127.0.0.1/tcp/4001/p2p/{IPFS}")]
        );
        let many = (0..30).map(|i| format!("/ip4/203.0.113.{i}/tcp/4001")).collect();
        let id = Id {
            ipfs: crate::types::IpfsId { id: IPFS.into(), addresses: many, error: String::new() },
            ..Id::default()
        };
        assert_eq!(delegates_of_id(&id).len(), MAX_DELEGATES);

        // No IPFS address known: the cluster peer's own, never an empty list.
        let cluster = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
        let id = Id { id: cluster.into(), addresses: vec!["/ip4/127.0.0.1/tcp/9096".into()], ..Id::default() };
        assert_eq!(delegates_of_id(&id), [format!("/ip4/127.0.0.1/tcp/9096/p2p/{cluster}")]);
    }
}
