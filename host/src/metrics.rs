//! The Prometheus endpoint (`observations.metrics`): when `enable_stats` is on, the peer
//! serves `GET /metrics` on `prometheus_endpoint` (127.0.0.1:8888 by default; like IPFS
//! Cluster's, it has no auth, so keep it on localhost). Counters come from the swarm and
//! from every decision point's plugin.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_policy::PluginStats;
use cairn_swarm::SwarmHandle;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Where the numbers come from.
pub struct Sources {
    pub swarm: SwarmHandle,
    /// Each decision point's key and a way to read its active plugin's counters.
    pub plugins: Vec<(String, Box<dyn Fn() -> PluginStats + Send + Sync>)>,
}

/// `/ip4/<ip>/tcp/<port>` or `/ip6/<ip>/tcp/<port>` as a socket address.
pub fn socket_addr(multiaddr: &str) -> anyhow::Result<SocketAddr> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "ip6", ip, "tcp", port] => {
            let ip: std::net::IpAddr = ip.parse().with_context(|| format!("{ip:?} is not an IP address"))?;
            let port: u16 = port.parse().with_context(|| format!("{port:?} is not a TCP port"))?;
            Ok(SocketAddr::new(ip, port))
        }
        _ => bail!("{multiaddr:?} is not of the form /ip4/<ip>/tcp/<port>"),
    }
}

/// Serve `/metrics` on `addr` until the returned task is aborted; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let sources = sources.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sources = sources.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&sources, &req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((bound, task))
}

async fn respond(sources: &Sources, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    }
    let connected = sources.swarm.connected_peers().await.map(|p| p.len()).unwrap_or(0);
    let mut response = Response::new(Full::new(Bytes::from(render(sources, connected))));
    if let Ok(value) = "text/plain; version=0.0.4".parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// The Prometheus text exposition of every counter.
fn render(sources: &Sources, connected_peers: usize) -> String {
    let swarm = sources.swarm.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    metric(
        "cairn_swarm_connected_peers",
        "gauge",
        "Peers connected to the cluster swarm.",
        &one(connected_peers as u64),
    );
    metric("cairn_rpc_served_total", "counter", "Peer RPC calls served.", &one(swarm.rpc_served));
    metric(
        "cairn_rpc_denied_total",
        "counter",
        "Peer RPC calls refused by the peer authorizer.",
        &one(swarm.rpc_denied),
    );
    metric("cairn_rpc_failed_total", "counter", "Peer RPC calls whose handler failed.", &one(swarm.rpc_failed));
    metric(
        "cairn_swarm_handshake_failures_total",
        "counter",
        "Connections that failed their handshake (often a cluster secret mismatch).",
        &one(swarm.handshake_failures),
    );
    let stats: Vec<(String, PluginStats)> = sources.plugins.iter().map(|(key, read)| (key.clone(), read())).collect();
    let per_point = |f: &dyn Fn(&PluginStats) -> u64| -> Vec<(String, u64)> {
        stats.iter().map(|(key, s)| (format!("{{point=\"{key}\"}}"), f(s))).collect()
    };
    metric(
        "cairn_plugin_calls_total",
        "counter",
        "Calls into the decision point's active plugin.",
        &per_point(&|s| s.calls),
    );
    metric(
        "cairn_plugin_failures_total",
        "counter",
        "Plugin calls that failed and fell back to the fail-safe decision.",
        &per_point(&|s| s.failures),
    );
    metric(
        "cairn_plugin_deadline_total",
        "counter",
        "Plugin calls stopped at their CPU deadline.",
        &per_point(&|s| s.deadline),
    );
    metric(
        "cairn_plugin_instances_created_total",
        "counter",
        "Plugin instances started (first, replacements, recycling).",
        &per_point(&|s| s.instances_created),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::socket_addr;

    #[test]
    fn endpoint_multiaddrs() {
        assert_eq!(socket_addr("/ip4/127.0.0.1/tcp/8888").expect("addr").to_string(), "127.0.0.1:8888");
        assert_eq!(socket_addr("/ip6/::1/tcp/0").expect("addr").to_string(), "[::1]:0");
        assert!(socket_addr("/ip4/127.0.0.1/udp/8888").is_err());
        assert!(socket_addr("/dns4/localhost/tcp/8888").is_err());
    }
}
