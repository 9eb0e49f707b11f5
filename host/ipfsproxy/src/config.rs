//! [`ProxyConfig`]: the `ipfsproxy` section of `service.json` (reference §3.4), already parsed by
//! the daemon (listen addresses as sockets, the node address as a [`DaemonAddr`], durations).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_api::{AddLimits, ListenAddr, Observer};
use cairn_ipfs::DaemonAddr;

/// IPFS Cluster's default `extract_headers_path`.
pub const DEFAULT_EXTRACT_HEADERS_PATH: &str = "/api/v0/version";
/// IPFS Cluster's default `extract_headers_ttl` (5 minutes).
pub const DEFAULT_EXTRACT_HEADERS_TTL: Duration = Duration::from_secs(300);
/// Below this, `max_header_bytes` is raised to it (IPFS Cluster's validation).
const MIN_HEADER_BYTES: usize = 4096;

/// The proxy's configuration. Durations of zero mean "no limit", as in Go's `http.Server`;
/// `read_header_timeout` and `idle_timeout` fall back to `read_timeout` when zero, as Go's do.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Listen addresses (`listen_multiaddress`, default `127.0.0.1:9095`), one listener each.
    pub listen: Vec<ListenAddr>,
    /// The IPFS daemon's RPC API (`node_multiaddress`, default `127.0.0.1:5001`).
    pub node: DaemonAddr,
    /// Talk HTTPS to the daemon (`node_https`), verified against the system's trust store.
    pub node_https: bool,
    /// Extra PEM CA certificates trusted for `node_https` (beyond IPFS Cluster, which only uses
    /// the system's store), e.g. for a daemon behind a TLS proxy with a private CA.
    pub node_ca_file: Option<PathBuf>,
    /// Whole-request read time (`read_timeout`, default 0).
    pub read_timeout: Duration,
    /// Time to read a request head, from its first byte (`read_header_timeout`, default 5s).
    pub read_header_timeout: Duration,
    /// Time to write a response, from the end of the request head (`write_timeout`,
    /// default 0). Long streams (pin/ls, add, forwarded calls) need 0.
    pub write_timeout: Duration,
    /// Keep-alive wait between requests (`idle_timeout`, default 1m).
    pub idle_timeout: Duration,
    /// Request head size limit (`max_header_bytes`, default 4096; at least 4096). As in Go, the
    /// request line and headers may use this plus 4096 bytes before the answer is 431.
    pub max_header_bytes: usize,
    /// Header names copied from the daemon's answer to `extract_headers_path`, on top of
    /// `Access-Control-Expose-Headers` (`extract_headers_extra`, default none).
    pub extract_headers_extra: Vec<String>,
    /// The daemon path POSTed to learn those headers (`extract_headers_path`).
    pub extract_headers_path: String,
    /// How long learnt headers are reused (`extract_headers_ttl`, default 5m; 0 = forever).
    pub extract_headers_ttl: Duration,
    /// `add` body limits (beyond IPFS Cluster, which has none; default none).
    pub add_limits: AddLimits,
    /// How long [`crate::ProxyServer::shutdown`] waits for in-flight requests before closing
    /// their connections.
    pub shutdown_timeout: Duration,
    /// Told about every answered request (the peer's API request metrics), when set.
    pub observer: Observer,
}

impl ProxyConfig {
    /// IPFS Cluster's defaults with these listeners and this daemon.
    pub fn new(listen: Vec<ListenAddr>, node: DaemonAddr) -> Self {
        Self { listen, node, ..Self::default() }
    }

    /// `max_header_bytes` as IPFS Cluster validates it (anything below 4096 becomes 4096).
    pub fn effective_max_header_bytes(&self) -> usize {
        self.max_header_bytes.max(MIN_HEADER_BYTES)
    }

    /// `read_header_timeout`, or `read_timeout` when it is zero; `None` for no limit.
    pub fn effective_header_timeout(&self) -> Option<Duration> {
        non_zero(self.read_header_timeout).or_else(|| non_zero(self.read_timeout))
    }

    /// `idle_timeout`, or `read_timeout` when it is zero; `None` for no limit.
    pub fn effective_idle_timeout(&self) -> Option<Duration> {
        non_zero(self.idle_timeout).or_else(|| non_zero(self.read_timeout))
    }
}

fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Default for ProxyConfig {
    /// IPFS Cluster's defaults: `127.0.0.1:9095` in front of `127.0.0.1:5001`.
    fn default() -> Self {
        Self {
            listen: vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9095)))],
            node: DaemonAddr::Tcp { host: "127.0.0.1".to_owned(), port: 5001 },
            node_https: false,
            node_ca_file: None,
            read_timeout: Duration::ZERO,
            read_header_timeout: Duration::from_secs(5),
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: MIN_HEADER_BYTES,
            extract_headers_extra: Vec::new(),
            extract_headers_path: DEFAULT_EXTRACT_HEADERS_PATH.to_owned(),
            extract_headers_ttl: DEFAULT_EXTRACT_HEADERS_TTL,
            add_limits: AddLimits::default(),
            shutdown_timeout: Duration::from_secs(10),
            observer: Observer::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ipfs_clusters() {
        let c = ProxyConfig::default();
        assert_eq!(c.listen, [ListenAddr::Tcp("127.0.0.1:9095".parse().expect("addr"))]);
        assert_eq!(c.node, DaemonAddr::parse("/ip4/127.0.0.1/tcp/5001").expect("addr"));
        assert_eq!(c.effective_header_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(c.effective_idle_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(ProxyConfig { max_header_bytes: 10, ..c.clone() }.effective_max_header_bytes(), 4096);
        let zero = ProxyConfig {
            read_timeout: Duration::from_secs(3),
            read_header_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            ..c
        };
        assert_eq!(zero.effective_header_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(zero.effective_idle_timeout(), Some(Duration::from_secs(3)));
    }
}
