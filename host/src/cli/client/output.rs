//! Text output, as `ipfs-cluster-ctl`'s text format prints each object (its `formatters.go`),
//! so scripts and eyes used to one read the other. Every function returns the text (lines end
//! in `\n`) so it can be tested without a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cairn_api::{
    AddedOutput, Alert, Bandwidth, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, Pin, PinMode, PinType,
    Timestamp,
};

use crate::monitor::rfc3339_nanos;

/// `ID`: `<id> | <name> | Sees N other peers`, then the addresses and the IPFS daemon.
pub fn id(id: &Id) -> String {
    if !id.error.is_empty() {
        return format!("{} | ERROR: {}\n", id.id, id.error);
    }
    let mut out = String::new();
    let _ =
        writeln!(out, "{} | {} | Sees {} other peers", id.id, id.peername, id.cluster_peers.len().saturating_sub(1));
    let mut addrs = id.addresses.clone();
    addrs.sort();
    out.push_str("  > Addresses:\n");
    for addr in &addrs {
        let _ = writeln!(out, "    - {addr}");
    }
    if !id.ipfs.error.is_empty() {
        let _ = writeln!(out, "  > IPFS ERROR: {}", id.ipfs.error);
        return out;
    }
    let mut ipfs_addrs = id.ipfs.addresses.clone();
    ipfs_addrs.sort();
    let _ = writeln!(out, "  > IPFS: {}", id.ipfs.id);
    for addr in &ipfs_addrs {
        let _ = writeln!(out, "    - {addr}");
    }
    out
}

/// Go's `2006-01-02 15:04:05` layout of a time, in the offset it was written with.
fn short_time(t: &Timestamp) -> String {
    let text = t.to_string();
    match text.get(..19) {
        Some(head) => head.replacen('T', " ", 1),
        None => text,
    }
}

/// `Pin`: `<cid> | <name> | PIN | Repl. Factor: 2--3 | Allocations: [a b] | Recursive |
/// Metadata: no | Exp: ∞ | Added: <time>`.
pub fn pin(pin: &Pin) -> String {
    let mut kind = match pin.pin_type {
        PinType::Data => "PIN",
        PinType::Meta => "META-PIN",
        PinType::ClusterDag => "CLUSTERDAG-PIN",
        PinType::Shard => "SHARD-PIN",
    }
    .to_owned();
    if pin.mode() == PinMode::Direct {
        kind.push_str("-DIRECT");
    }
    let o = &pin.options;
    let mut out = format!("{} | {} | {kind} | ", pin.cid, o.name);
    if o.replication_factor_min == -1 && o.replication_factor_max == -1 {
        out.push_str("Repl. Factor: -1 | Allocations: [everywhere]");
    } else {
        let mut allocs = pin.allocations.clone();
        allocs.sort();
        let _ = write!(
            out,
            "Repl. Factor: {}--{} | Allocations: [{}]",
            o.replication_factor_min,
            o.replication_factor_max,
            allocs.join(" ")
        );
    }
    let depth = match pin.max_depth {
        0 => "Direct".to_owned(),
        -1 => "Recursive".to_owned(),
        n => format!("Recursive-{n}"),
    };
    let metadata = if o.metadata.is_empty() { "no" } else { "yes" };
    let expires = if o.expire_at.is_unset() { "∞".to_owned() } else { short_time(&o.expire_at) };
    let added = if pin.timestamp.is_unset() { "unknown".to_owned() } else { short_time(&pin.timestamp) };
    let _ = writeln!(out, " | {depth} | Metadata: {metadata} | Exp: {expires} | Added: {added}");
    out
}

/// `GlobalPinInfo`: `<cid> | <name>:` then one line per peer (sorted by peer id):
/// `    > <peer name>  : PINNED | <time> | Attempts: 0 | Priority: false`.
pub fn status(gpi: &GlobalPinInfo) -> String {
    let mut out = gpi.cid.to_string();
    if !gpi.name.is_empty() {
        let _ = write!(out, " | {}", gpi.name);
    }
    out.push_str(":\n");
    for (peer, info) in &gpi.peer_map {
        let who = if info.peername.is_empty() { peer } else { &info.peername };
        let _ = write!(out, "    > {who:<20} : {}", info.status.name().to_uppercase());
        if !info.error.is_empty() {
            let _ = write!(out, ": {}", info.error);
        }
        let _ =
            writeln!(out, " | {} | Attempts: {} | Priority: {}", info.timestamp, info.attempt_count, info.priority_pin);
    }
    out
}

/// `AddedOutput`: `added <cid> <name>` (a progress line without a CID prints nothing).
pub fn added(output: &AddedOutput) -> String {
    match &output.cid {
        Some(cid) => format!("added {cid} {}\n", output.name),
        None => String::new(),
    }
}

/// `Metric`: `<peer> | <name>: <value> | Expires in: 12.5s` (or `Expired: 3.0s ago`). A
/// `freespace` metric shows its weight (bytes) in human units, as ipfs-cluster-ctl does.
pub fn metric(m: &Metric, now_nanos: i64) -> String {
    let value = if m.name == "freespace" && m.weight > 0 { human_bytes(m.weight as u64) } else { m.value.clone() };
    let left = (m.expire - now_nanos) as f64 / 1e9;
    let when = if left >= 0.0 { format!("Expires in: {left:.1}s") } else { format!("Expired: {:.1}s ago", -left) };
    format!("{} | {}: {value} | {when} ({})\n", m.peer, m.name, rfc3339_nanos(m.expire))
}

/// `Alert`: `<peer>: <name>. Expired at: <time>. Triggered at: <time>`.
pub fn alert(a: &Alert) -> String {
    format!(
        "{}: {}. Expired at: {}. Triggered at: {}\n",
        a.metric.peer,
        a.metric.name,
        rfc3339_nanos(a.metric.expire),
        a.triggered_at
    )
}

/// `GlobalRepoGC`: per peer (sorted), its name or id and the removed CIDs.
pub fn repo_gc(gc: &GlobalRepoGc) -> String {
    let mut out = String::new();
    for (peer, item) in &gc.peer_map {
        let who = if item.peername.is_empty() { peer } else { &item.peername };
        if item.error.is_empty() {
            let _ = writeln!(out, "{who:<15}");
        } else {
            let _ = writeln!(out, "{who:<15} | ERROR: {}", item.error);
        }
        out.push_str("  > CIDs:\n");
        for key in &item.keys {
            match (&key.key, key.error.is_empty()) {
                (_, false) => {
                    let _ = writeln!(out, "    - ERROR: {}", key.error);
                }
                (Some(cid), true) => {
                    let _ = writeln!(out, "    - {cid}");
                }
                (None, true) => {}
            }
        }
    }
    out
}

/// `health bandwidth`: `<protocol> | in: <total> (<rate>/s) | out: <total> (<rate>/s)`.
pub fn bandwidth(by_protocol: &BTreeMap<String, Bandwidth>) -> String {
    let mut out = String::new();
    for (protocol, b) in by_protocol {
        let _ = writeln!(
            out,
            "{protocol} | in: {} ({}/s) | out: {} ({}/s)",
            human_bytes(b.total_in.max(0) as u64),
            human_bytes(b.rate_in.max(0.0) as u64),
            human_bytes(b.total_out.max(0) as u64),
            human_bytes(b.rate_out.max(0.0) as u64)
        );
    }
    out
}

/// Bytes in SI units as Go's `humanize.Bytes` prints them: `12 MB`, `1.5 kB`, `999 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let exp = ((n as f64).log10() / 3.0).floor() as usize;
    let exp = exp.min(UNITS.len() - 1);
    let value = n as f64 / 1000f64.powi(exp as i32);
    if value < 10.0 && exp > 0 { format!("{value:.1} {}", UNITS[exp]) } else { format!("{value:.0} {}", UNITS[exp]) }
}

/// The connectivity graph as Graphviz DOT: cluster peers as boxes (named), IPFS daemons as
/// ellipses, cluster links solid (dashed when untrusted), peer → its daemon dotted. IPFS
/// daemons that are not some cluster peer's are left out unless `all_ipfs_peers`.
pub fn graph_dot(graph: &ConnectGraph, all_ipfs_peers: bool) -> String {
    // DOT strings: backslash and quote escaped; labels add their `\n` line breaks after.
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let quote = |s: &str| format!("\"{s}\"");
    let node = |kind: char, id: &str| quote(&format!("{kind}{}", esc(id)));
    let short = |id: &str| esc(id.get(id.len().saturating_sub(6)..).unwrap_or(id));
    let own_daemons: Vec<&String> = graph.cluster_to_ipfs.values().collect();
    let shown_ipfs = |id: &String| all_ipfs_peers || own_daemons.contains(&id);

    let mut out = String::from("digraph cluster {\n");
    out.push_str("  /* cluster peers */\n");
    let mut cluster_peers: Vec<&String> = graph.cluster_links.keys().collect();
    for id in graph.id_to_peername.keys().chain(graph.cluster_links.values().flatten()) {
        if !cluster_peers.contains(&id) {
            cluster_peers.push(id);
        }
    }
    cluster_peers.sort();
    for id in &cluster_peers {
        let name = graph.id_to_peername.get(*id).map(String::as_str).unwrap_or("");
        let label = if name.is_empty() { short(id) } else { format!("{}\\n{}", esc(name), short(id)) };
        let trusted = graph.cluster_trust_links.get(*id).copied().unwrap_or(false);
        let style = if **id == graph.cluster_id {
            ", style=bold"
        } else if trusted {
            ""
        } else {
            ", style=dashed"
        };
        let _ = writeln!(out, "  {} [label={}, shape=box{style}];", node('C', id), quote(&label));
    }
    out.push_str("  /* IPFS daemons */\n");
    let mut ipfs_peers: Vec<&String> = graph.ipfs_links.keys().chain(graph.ipfs_links.values().flatten()).collect();
    ipfs_peers.extend(graph.cluster_to_ipfs.values());
    ipfs_peers.sort();
    ipfs_peers.dedup();
    for id in ipfs_peers.iter().filter(|id| shown_ipfs(id)) {
        let _ =
            writeln!(out, "  {} [label={}, shape=ellipse];", node('I', id), quote(&format!("IPFS\\n{}", short(id))));
    }
    out.push_str("  /* links */\n");
    for (from, tos) in &graph.cluster_links {
        for to in tos {
            let _ = writeln!(out, "  {} -> {};", node('C', from), node('C', to));
        }
    }
    for (cluster, ipfs) in &graph.cluster_to_ipfs {
        let _ = writeln!(out, "  {} -> {} [style=dotted];", node('C', cluster), node('I', ipfs));
    }
    for (from, tos) in graph.ipfs_links.iter().filter(|(from, _)| shown_ipfs(from)) {
        for to in tos.iter().filter(|to| shown_ipfs(to)) {
            let _ = writeln!(out, "  {} -> {} [color=gray];", node('I', from), node('I', to));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use cairn_api::{Cid, IpfsId, PinInfoShort, PinOptions, RepoGc, TrackerStatus};

    use super::*;

    const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
    const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    const PEER2: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";

    fn cid() -> Cid {
        Cid::parse(CID).expect("cid")
    }

    #[test]
    fn id_lines_follow_ipfs_cluster_ctl() {
        let mut peer = Id {
            id: PEER.into(),
            peername: "peer0".into(),
            cluster_peers: vec![PEER.into(), PEER2.into()],
            addresses: vec!["/ip4/127.0.0.1/tcp/9096".into()],
            ipfs: IpfsId { id: PEER2.into(), addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()], error: String::new() },
            ..Id::default()
        };
        assert_eq!(
            id(&peer),
            format!(
                "{PEER} | peer0 | Sees 1 other peers\n  > Addresses:\n    - /ip4/127.0.0.1/tcp/9096\n  > IPFS: {PEER2}\n    - /ip4/127.0.0.1/tcp/4001\n"
            )
        );
        peer.ipfs.error = "connection refused".into();
        assert!(id(&peer).ends_with("  > IPFS ERROR: connection refused\n"));
        peer.error = "dial backoff".into();
        assert_eq!(id(&peer), format!("{PEER} | ERROR: dial backoff\n"));
    }

    #[test]
    fn pin_line_shows_type_replication_and_times() {
        let mut p = Pin::with_options(
            cid(),
            PinOptions {
                name: "docs".into(),
                replication_factor_min: 2,
                replication_factor_max: 3,
                metadata: [("k".to_owned(), "v".to_owned())].into(),
                ..PinOptions::default()
            },
        );
        p.allocations = vec![PEER2.into(), PEER.into()];
        p.timestamp = Timestamp::parse("2024-03-05T10:11:12.5Z").expect("time");
        assert_eq!(
            pin(&p),
            format!(
                "{CID} | docs | PIN | Repl. Factor: 2--3 | Allocations: [{PEER} {PEER2}] | Recursive | Metadata: yes | Exp: ∞ | Added: 2024-03-05 10:11:12\n"
            )
        );
        p.options.replication_factor_min = -1;
        p.options.replication_factor_max = -1;
        p.max_depth = 0;
        p.timestamp = Timestamp::ZERO;
        p.options.expire_at = Timestamp::parse("2030-01-02T03:04:05Z").expect("time");
        let line = pin(&p);
        assert!(line.contains("| PIN-DIRECT | Repl. Factor: -1 | Allocations: [everywhere] | Direct |"), "{line}");
        assert!(line.ends_with("| Exp: 2030-01-02 03:04:05 | Added: unknown\n"), "{line}");
    }

    #[test]
    fn status_lists_each_peer_by_name() {
        let mut gpi = GlobalPinInfo::new(cid());
        gpi.name = "docs".into();
        gpi.peer_map.insert(
            PEER.into(),
            PinInfoShort { peername: "peer0".into(), status: TrackerStatus::Pinned, ..PinInfoShort::default() },
        );
        gpi.peer_map.insert(
            PEER2.into(),
            PinInfoShort {
                status: TrackerStatus::PinError,
                error: "boom".into(),
                attempt_count: 2,
                ..PinInfoShort::default()
            },
        );
        assert_eq!(
            status(&gpi),
            format!(
                "{CID} | docs:\n    > peer0                : PINNED | 0001-01-01T00:00:00Z | Attempts: 0 | Priority: false\n    > {PEER2} : PIN_ERROR: boom | 0001-01-01T00:00:00Z | Attempts: 2 | Priority: false\n"
            )
        );
    }

    #[test]
    fn small_objects() {
        let out = AddedOutput { name: "a.txt".into(), cid: Some(cid()), ..AddedOutput::default() };
        assert_eq!(added(&out), format!("added {CID} a.txt\n"));
        assert_eq!(added(&AddedOutput { bytes: 5, ..AddedOutput::default() }), "");

        let m = Metric { name: "ping".into(), peer: PEER.into(), expire: 2_500_000_000, ..Metric::default() };
        assert_eq!(metric(&m, 0), format!("{PEER} | ping:  | Expires in: 2.5s (1970-01-01T00:00:02.5Z)\n"));
        assert!(metric(&m, 3_000_000_000).contains("Expired: 0.5s ago"));
        let free = Metric { name: "freespace".into(), weight: 12_000_000, value: "12000000".into(), ..m.clone() };
        assert!(metric(&free, 0).contains("freespace: 12 MB |"));

        let a = Alert { metric: m, triggered_at: Timestamp::parse("1970-01-01T00:00:03Z").expect("time") };
        assert_eq!(
            alert(&a),
            format!("{PEER}: ping. Expired at: 1970-01-01T00:00:02.5Z. Triggered at: 1970-01-01T00:00:03Z\n")
        );

        let gc = GlobalRepoGc::from_local(RepoGc {
            peer: PEER.into(),
            peername: "peer0".into(),
            keys: vec![
                cairn_api::types::IpfsRepoGc { key: Some(cid()), error: String::new() },
                cairn_api::types::IpfsRepoGc { key: None, error: "locked".into() },
            ],
            error: String::new(),
        });
        assert_eq!(repo_gc(&gc), format!("peer0          \n  > CIDs:\n    - {CID}\n    - ERROR: locked\n"));

        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(262_144), "262 kB");
    }

    #[test]
    fn dot_graph_names_peers_and_hides_foreign_daemons() {
        let graph = ConnectGraph {
            cluster_id: PEER.into(),
            id_to_peername: [(PEER.to_owned(), "peer0".to_owned())].into(),
            cluster_links: [(PEER.to_owned(), vec![PEER2.to_owned()])].into(),
            cluster_trust_links: [(PEER.to_owned(), true)].into(),
            cluster_to_ipfs: [(PEER.to_owned(), "QmIpfsA".to_owned())].into(),
            ipfs_links: [("QmIpfsA".to_owned(), vec!["QmOutsider".to_owned()])].into(),
        };
        let dot = graph_dot(&graph, false);
        assert!(dot.starts_with("digraph cluster {\n") && dot.ends_with("}\n"), "{dot}");
        assert!(dot.contains(&format!("\"C{PEER}\" [label=\"peer0\\nAJU5SA\", shape=box, style=bold];")), "{dot}");
        assert!(dot.contains(&format!("\"C{PEER}\" -> \"C{PEER2}\";")), "{dot}");
        assert!(dot.contains(&format!("\"C{PEER}\" -> \"IQmIpfsA\" [style=dotted];")), "{dot}");
        assert!(!dot.contains("QmOutsider"), "{dot}");
        assert!(graph_dot(&graph, true).contains("\"IQmIpfsA\" -> \"IQmOutsider\" [color=gray];"));
    }
}
