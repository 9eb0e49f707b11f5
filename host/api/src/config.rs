//! [`ServerConfig`]: what one API listener needs, in IPFS Cluster's terms (reference §1.8). The
//! daemon builds it from `service.json`; this crate does not read config files.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::Api;

/// Where to listen: one listener per address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address (`/ip4/127.0.0.1/tcp/9094`); port 0 picks a free port.
    Tcp(SocketAddr),
    /// A unix socket path (`/unix/run/cairn.sock`). The file must not exist; it is removed at
    /// shutdown.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// TLS for every listener of the API (`ssl_cert_file`, `ssl_key_file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates. When set, a client certificate is
    /// verified against them and its subject reaches the policy as
    /// [`crate::ApiRequest::client_cert_subject`]. (Beyond IPFS Cluster, which has no client
    /// certificates.)
    pub client_ca_file: Option<PathBuf>,
    /// With a client CA: refuse the handshake without a client certificate. When false, a
    /// client without one gets `client_cert_subject: None` and the policy decides.
    pub client_cert_required: bool,
}

/// Size limits of a `POST /add` body. Exceeding one ends the add with a 400-class message in
/// the stream (or as the answer, before streaming starts).
///
/// The configurable limits may be off; the associated constants are always on, because the
/// multipart reader holds the preamble and each part's headers in memory until their end shows
/// up, and each path level costs the adder memory and an output line carrying the whole path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddLimits {
    /// Whole multipart body, bytes; `None` for no limit (IPFS Cluster has none).
    pub max_body_bytes: Option<u64>,
    /// One part's content, bytes; `None` for no limit.
    pub max_part_bytes: Option<u64>,
}

impl AddLimits {
    /// Bytes before the first boundary (Kubo sends none).
    pub const MAX_PREAMBLE_BYTES: u64 = 64 * 1024;
    /// Bytes of one part's head: the rest of its boundary line and its headers.
    pub const MAX_PART_HEADER_BYTES: u64 = 64 * 1024;
    /// Components of a part's path (its URL-decoded `filename`).
    pub const MAX_PATH_DEPTH: usize = 256;
    /// Bytes of a part's path (URL-decoded; Linux's `PATH_MAX`).
    pub const MAX_PATH_BYTES: usize = 4096;
}

/// One API listener's configuration. Durations of zero mean "no limit", as in Go's
/// `http.Server`; `read_header_timeout` and `idle_timeout` fall back to `read_timeout` when zero,
/// as Go's do.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Which API this is (the policy's `api` field).
    pub api: Api,
    /// Listen addresses (`http_listen_multiaddress`), one listener each.
    pub listen: Vec<ListenAddr>,
    /// TLS for every listener; `None` for plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Whole-request read time, from the first byte of the request (`read_timeout`, default 0).
    pub read_timeout: Duration,
    /// Time to read the request head, from its first byte (`read_header_timeout`, default 5s).
    /// It also bounds the TLS handshake.
    pub read_header_timeout: Duration,
    /// Time to write the response, from the end of the request head (`write_timeout`,
    /// default 0). Long streams need 0.
    pub write_timeout: Duration,
    /// Keep-alive time between requests (`idle_timeout`, default 2m).
    pub idle_timeout: Duration,
    /// Request head size limit (`max_header_bytes`, default 4096; at least 4096). As in Go, the
    /// request line and headers may use this plus 4096 bytes before the answer is 431.
    pub max_header_bytes: usize,
    /// Headers added to every JSON response (`headers`: name → values).
    pub headers: BTreeMap<String, Vec<String>>,
    /// `POST /add` body limits.
    pub add_limits: AddLimits,
    /// How long [`crate::ApiServer::shutdown`] waits for in-flight requests before closing
    /// their connections.
    pub shutdown_timeout: Duration,
    /// Told about every answered request (route pattern, status, time), e.g. for metrics.
    pub observer: Observer,
}

impl ServerConfig {
    /// IPFS Cluster's defaults with these listeners.
    pub fn new(listen: Vec<ListenAddr>) -> Self {
        Self { listen, ..Self::default() }
    }

    /// `max_header_bytes` as IPFS Cluster validates it (0 and anything below 4096 become 4096).
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

const MIN_HEADER_BYTES: usize = 4096;

fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Default for ServerConfig {
    /// The REST API on IPFS Cluster's default `127.0.0.1:9094`, without TLS.
    fn default() -> Self {
        Self {
            api: Api::Restapi,
            listen: vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9094)))],
            tls: None,
            read_timeout: Duration::ZERO,
            read_header_timeout: Duration::from_secs(5),
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(120),
            max_header_bytes: MIN_HEADER_BYTES,
            headers: BTreeMap::new(),
            add_limits: AddLimits::default(),
            shutdown_timeout: Duration::from_secs(10),
            observer: Observer::default(),
        }
    }
}

/// What a server tells about each answered request.
pub trait RequestObserver: Send + Sync {
    /// One request of `api` matched `route` (a pattern such as `/pins/{hash}`, or `other`) and
    /// was answered with `status` after `elapsed` (time to the response head).
    fn observe(&self, api: crate::Api, route: &str, status: u16, elapsed: Duration);
}

/// An optional [`RequestObserver`]; configurations compare equal whatever it holds.
#[derive(Clone, Default)]
pub struct Observer(pub Option<std::sync::Arc<dyn RequestObserver>>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Observer(Some)" } else { "Observer(None)" })
    }
}

impl PartialEq for Observer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
