//! The Prometheus endpoint (`observations.metrics`): when `enable_stats` (or `--stats`) is on,
//! the peer serves `GET /metrics` on `prometheus_endpoint` (127.0.0.1:8888 by default; like IPFS
//! Cluster's, it has no auth, so keep it on localhost).
//!
//! Everything comes from one [`Telemetry`] registry (`host/telemetry` lists every family): the
//! swarm's peer RPC figures and libp2p's own, the tracker's operations and pins per status,
//! consensus commits and sync figures, IPFS requests, API requests and each decision point's
//! plugin figures. A scraper that asks for OpenMetrics (Prometheus does) gets it; anything else
//! gets the classic text format 0.0.4, as IPFS Cluster serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_api::listen;
use cairn_api::{ListenAddr, ServerConfig};
use cairn_consensus::Consensus;
use cairn_policy::{PluginKind, PluginStats, ReloadStats};
use cairn_state::Pin;
use cairn_telemetry::{Format, PluginFigures, Telemetry};
use cairn_tracker::PinTracker;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

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

/// What `cairn_pins` needs to count the statuses of pins with no operation in flight: the
/// tracker, the pinset, and how often to walk it.
pub struct PinScan {
    pub tracker: PinTracker,
    pub consensus: Arc<dyn Consensus>,
    pub every: Duration,
}

/// Serve `/metrics` on `addr` until the returned task is aborted (the task also runs the
/// periodic pin status scan); returns the bound address. Connections get the APIs' defaults
/// (`read_header_timeout` 5s, `idle_timeout` 2m, `max_header_bytes` 4096).
pub async fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    scan: Option<PinScan>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(addr, telemetry, scan, ServerConfig::new(Vec::new())).await
}

/// [`serve`] with the timeouts and limits of `config` (its listen addresses are not used).
pub async fn serve_with(
    addr: SocketAddr,
    telemetry: Telemetry,
    scan: Option<PinScan>,
    config: ServerConfig,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let bound = listen::bind(&[ListenAddr::Tcp(addr)])
        .await
        .map_err(|(_, e)| e)
        .with_context(|| format!("listen on {addr}"))?;
    let local = match bound.local_addrs().first() {
        Some(ListenAddr::Tcp(local)) => *local,
        _ => addr,
    };
    // The same accept loop, HTTP/1.1 settings and timeouts as the API servers.
    let server = listen::serve_plain(bound, "metrics", &config, move |req| respond(&telemetry, &req));
    let task = tokio::spawn(async move {
        // Aborting the task drops the server, which stops it.
        let _server = server;
        match scan {
            Some(scan) => scan_pin_states(scan).await,
            None => std::future::pending().await,
        }
    });
    Ok((local, task))
}

fn respond(telemetry: &Telemetry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    }
    let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut response = Response::new(Full::new(Bytes::from(telemetry.encode(format))));
    if let Ok(value) = format.content_type().parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Counts the pins' settled statuses (pinned, remote, ...) every `scan.every`: one walk of the
/// pinset and one `pin/ls` of IPFS, as `cairn status --local` does.
async fn scan_pin_states(scan: PinScan) {
    loop {
        let store = scan.consensus.state().clone();
        let walk = |visit: &mut dyn FnMut(Pin)| crate::pinsync::walk(&store, visit);
        if let Err(e) = scan.tracker.scan_statuses(walk).await {
            tracing::debug!("pin status scan for the metrics failed: {e}");
        }
        tokio::time::sleep(scan.every).await;
    }
}

/// A decision point's figures for `cairn_plugin_*`.
pub fn plugin_figures(plugin: &str, kind: PluginKind, stats: PluginStats, reloads: ReloadStats) -> PluginFigures {
    PluginFigures {
        plugin: plugin.to_owned(),
        kind: kind.to_string(),
        calls: stats.calls,
        failures: stats.failures,
        deadline: stats.deadline,
        out_of_memory: stats.out_of_memory,
        traps: stats.traps,
        malformed: stats.malformed,
        denials: stats.denials,
        instances_created: stats.instances_created,
        latency_buckets: stats.latency.buckets(),
        latency_sum: stats.latency.sum_nanos as f64 / 1e9,
        reloads: reloads.reloads,
        reload_failures: reloads.failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_multiaddrs() {
        assert_eq!(socket_addr("/ip4/127.0.0.1/tcp/8888").expect("addr").to_string(), "127.0.0.1:8888");
        assert_eq!(socket_addr("/ip6/::1/tcp/0").expect("addr").to_string(), "[::1]:0");
        assert!(socket_addr("/ip4/127.0.0.1/udp/8888").is_err());
        assert!(socket_addr("/dns4/localhost/tcp/8888").is_err());
    }

    /// The endpoint serves the registry in the format the scraper asks for.
    #[tokio::test]
    async fn metrics_endpoint_negotiates_the_format() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let telemetry = Telemetry::new();
        let stats = PluginStats { calls: 3, denials: 1, ..PluginStats::default() };
        let figures = plugin_figures("builtin:basic-auth", PluginKind::Authorizer, stats, ReloadStats::default());
        assert_eq!(figures.latency_buckets.len(), cairn_policy::LATENCY_BUCKETS.len() + 1);
        telemetry.register_collector(cairn_telemetry::PluginCollector::new(vec![cairn_telemetry::PluginSource::new(
            "api.restapi.authorizer_plugin",
            move || figures.clone(),
        )]));
        let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), telemetry, None).await.expect("serve");
        let get = |accept: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        };
        let text = get("").await;
        assert!(text.contains("content-type: text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("cairn_plugin_calls_total{point=\"api.restapi.authorizer_plugin\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE cairn_plugin_calls_total counter\n"), "{text}");
        let open = get("Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n").await;
        assert!(open.contains("content-type: application/openmetrics-text"), "{open}");
        assert!(open.contains("# TYPE cairn_plugin_calls counter\n") && open.ends_with("# EOF\n"), "{open}");
        task.abort();
    }

    /// Issue #14.6: a half-sent request head and an idle keep-alive connection are closed after
    /// the APIs' header and idle timeouts, instead of staying open forever.
    #[tokio::test]
    async fn metrics_connections_are_cut_by_the_header_and_idle_timeouts() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut config = cairn_api::ServerConfig::new(Vec::new());
        config.read_header_timeout = Duration::from_millis(200);
        config.idle_timeout = Duration::from_millis(300);
        let (addr, task) =
            serve_with("127.0.0.1:0".parse().expect("addr"), Telemetry::new(), None, config).await.expect("serve");
        // Generous bound: only a server without the timeouts takes this long.
        let closed_within = Duration::from_secs(5);

        let mut half = tokio::net::TcpStream::connect(addr).await.expect("connect");
        half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(closed_within, half.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a half-sent request head is still open after {closed_within:?}");
        assert!(rest.is_empty(), "nothing is answered to a request that never ended: {rest:?}");

        let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
        idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(closed_within, idle.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "an idle keep-alive connection is still open after {closed_within:?}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        task.abort();
    }
}
