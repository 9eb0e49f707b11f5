//! `ipfs_connector.ipfshttp` (IPFS Cluster §4/§5.6) as typed values, plus Cairn's additions for a
//! daemon behind an authenticating proxy (`headers`, `basic_auth`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::IpfsError;

/// The IPFS HTTP connector's configuration; defaults are IPFS Cluster v1.1.6's.
#[derive(Clone, PartialEq, Eq)]
pub struct IpfsHttpConfig {
    /// The daemon's RPC API: `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/http]` or `/unix/<path>`.
    pub node_multiaddress: String,
    /// How long after start to connect this daemon to the other peers' daemons; zero disables it.
    pub connect_swarms_delay: Duration,
    /// Deadline of every call that has no timeout of its own.
    pub ipfs_request_timeout: Duration,
    /// A pin is cancelled when its progress has not grown for this long (not a total deadline).
    pub pin_timeout: Duration,
    /// Deadline of `pin/rm`.
    pub unpin_timeout: Duration,
    /// Deadline of `repo/gc`.
    pub repogc_timeout: Duration,
    /// Every N-th pin, unpin or block put asks the informers to republish; 0 disables it.
    pub informer_trigger_interval: u64,
    /// Refuse every unpin locally.
    pub unpin_disable: bool,
    /// Extra headers sent on every request (Cairn addition, for a daemon behind a proxy).
    pub headers: Vec<(String, String)>,
    /// HTTP Basic credentials sent on every request (Cairn addition).
    pub basic_auth: Option<BasicAuth>,
}

impl Default for IpfsHttpConfig {
    fn default() -> Self {
        IpfsHttpConfig {
            node_multiaddress: "/ip4/127.0.0.1/tcp/5001".to_owned(),
            connect_swarms_delay: Duration::from_secs(30),
            ipfs_request_timeout: Duration::from_secs(5 * 60),
            pin_timeout: Duration::from_secs(2 * 60),
            unpin_timeout: Duration::from_secs(3 * 60 * 60),
            repogc_timeout: Duration::from_secs(24 * 60 * 60),
            informer_trigger_interval: 0,
            unpin_disable: false,
            headers: Vec::new(),
            basic_auth: None,
        }
    }
}

// Hand-written so that credentials and header values (which may carry tokens) never reach a log.
impl fmt::Debug for IpfsHttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("IpfsHttpConfig")
            .field("node_multiaddress", &self.node_multiaddress)
            .field("connect_swarms_delay", &self.connect_swarms_delay)
            .field("ipfs_request_timeout", &self.ipfs_request_timeout)
            .field("pin_timeout", &self.pin_timeout)
            .field("unpin_timeout", &self.unpin_timeout)
            .field("repogc_timeout", &self.repogc_timeout)
            .field("informer_trigger_interval", &self.informer_trigger_interval)
            .field("unpin_disable", &self.unpin_disable)
            .field("headers", &header_names)
            .field("basic_auth", &self.basic_auth)
            .finish()
    }
}

impl IpfsHttpConfig {
    /// The defaults with another daemon address.
    pub fn with_address(node_multiaddress: impl Into<String>) -> Self {
        IpfsHttpConfig { node_multiaddress: node_multiaddress.into(), ..Default::default() }
    }

    /// Checks what IPFS Cluster's `Validate` checks, plus the address and Cairn's additions.
    pub fn validate(&self) -> Result<DaemonAddr, IpfsError> {
        for (key, value) in [
            ("ipfs_request_timeout", self.ipfs_request_timeout),
            ("pin_timeout", self.pin_timeout),
            ("unpin_timeout", self.unpin_timeout),
            ("repogc_timeout", self.repogc_timeout),
        ] {
            if value.is_zero() {
                return Err(IpfsError::Config(format!("{key} must be greater than zero")));
            }
        }
        for (name, value) in &self.headers {
            http::HeaderName::try_from(name.as_str())
                .map_err(|_| IpfsError::Config(format!("headers: {name:?} is not a valid header name")))?;
            http::HeaderValue::try_from(value.as_str())
                .map_err(|_| IpfsError::Config(format!("headers: the value of {name} is not a valid header value")))?;
        }
        if let Some(auth) = &self.basic_auth
            && auth.username.contains(':')
        {
            return Err(IpfsError::Config("basic_auth: the username must not contain ':'".to_owned()));
        }
        DaemonAddr::parse(&self.node_multiaddress)
    }
}

/// HTTP Basic credentials for a daemon behind an authenticating proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name (must not contain `:`).
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Where the daemon's RPC API listens, parsed from `node_multiaddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddr {
    /// TCP to an IP literal or a DNS name.
    Tcp {
        /// IP literal (IPv6 without brackets) or DNS name.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix domain socket.
    Unix(PathBuf),
}

impl DaemonAddr {
    /// Parses `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/http]` or `/unix/<path>`.
    pub fn parse(multiaddr: &str) -> Result<DaemonAddr, IpfsError> {
        let bad = |why: &str| IpfsError::Config(format!("node_multiaddress {multiaddr:?}: {why}"));
        let Some(rest) = multiaddr.strip_prefix('/') else {
            return Err(bad("a multiaddr starts with '/'"));
        };
        let mut parts = rest.split('/');
        let proto = parts.next().unwrap_or_default();
        if proto == "unix" {
            // The path is everything after /unix; newer multiaddr libraries percent-encode it as
            // one segment (/unix/%2Ftmp%2Fapi.sock), older ones write it plainly (/unix/tmp/api.sock).
            let raw: Vec<&str> = parts.collect();
            let decoded = percent_decode(&raw.join("/")).ok_or_else(|| bad("invalid percent-encoding in the path"))?;
            if decoded.is_empty() {
                return Err(bad("/unix needs a socket path"));
            }
            let path = if decoded.starts_with('/') { decoded } else { format!("/{decoded}") };
            return Ok(DaemonAddr::Unix(PathBuf::from(path)));
        }
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(|| bad("missing host"))?;
        match proto {
            "ip4" => {
                host.parse::<Ipv4Addr>().map_err(|_| bad("invalid IPv4 address"))?;
            }
            "ip6" => {
                host.parse::<Ipv6Addr>().map_err(|_| bad("invalid IPv6 address"))?;
            }
            "dns" | "dns4" | "dns6" => {}
            other => {
                return Err(bad(&format!("unsupported protocol /{other} (use ip4, ip6, dns, dns4, dns6 or unix)")));
            }
        }
        if parts.next() != Some("tcp") {
            return Err(bad("expected /tcp/<port> after the host"));
        }
        let port = parts
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("invalid TCP port"))?;
        match parts.next() {
            None | Some("http") => {}
            Some("https" | "tls") => return Err(bad("TLS to the IPFS daemon is not supported")),
            Some(other) => return Err(bad(&format!("unexpected /{other} after the port"))),
        }
        if parts.next().is_some() {
            return Err(bad("unexpected components after the port"));
        }
        Ok(DaemonAddr::Tcp { host: host.to_owned(), port })
    }

    /// The URL prefix requests are written against (a unix socket gets a nominal `localhost`).
    pub(crate) fn base_url(&self) -> String {
        match self {
            DaemonAddr::Tcp { host, port } if host.contains(':') => format!("http://[{host}]:{port}"),
            DaemonAddr::Tcp { host, port } => format!("http://{host}:{port}"),
            DaemonAddr::Unix(_) => "http://localhost".to_owned(),
        }
    }
}

/// Decodes `%XX` escapes; None when an escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix_addresses() {
        let tcp = |h: &str, p| DaemonAddr::Tcp { host: h.to_owned(), port: p };
        assert_eq!(DaemonAddr::parse("/ip4/127.0.0.1/tcp/5001").unwrap(), tcp("127.0.0.1", 5001));
        assert_eq!(DaemonAddr::parse("/ip6/::1/tcp/5001/http").unwrap(), tcp("::1", 5001));
        assert_eq!(DaemonAddr::parse("/dns4/ipfs.local/tcp/80").unwrap(), tcp("ipfs.local", 80));
        assert_eq!(DaemonAddr::parse("/dns/ipfs/tcp/5001").unwrap(), tcp("ipfs", 5001));
        assert_eq!(
            DaemonAddr::parse("/unix/tmp/ipfs/api.sock").unwrap(),
            DaemonAddr::Unix("/tmp/ipfs/api.sock".into())
        );
        assert_eq!(DaemonAddr::parse("/unix/%2Ftmp%2Fapi.sock").unwrap(), DaemonAddr::Unix("/tmp/api.sock".into()));
        assert_eq!(DaemonAddr::parse("/ip6/::1/tcp/5001").unwrap().base_url(), "http://[::1]:5001");
    }

    #[test]
    fn refuses_bad_addresses_with_a_reason() {
        for (addr, why) in [
            ("127.0.0.1:5001", "starts with '/'"),
            ("/ip4/1.2.3/tcp/5001", "invalid IPv4"),
            ("/ip4/127.0.0.1/udp/5001", "expected /tcp"),
            ("/ip4/127.0.0.1/tcp/99999", "invalid TCP port"),
            ("/ip4/127.0.0.1/tcp/5001/https", "TLS"),
            ("/dnsaddr/example.com", "unsupported protocol"),
            ("/unix", "socket path"),
        ] {
            let err = DaemonAddr::parse(addr).unwrap_err().to_string();
            assert!(err.contains(why), "{addr}: {err}");
        }
    }

    #[test]
    fn validate_checks_timeouts_headers_and_credentials() {
        let mut config = IpfsHttpConfig { pin_timeout: Duration::ZERO, ..Default::default() };
        assert!(config.validate().unwrap_err().to_string().contains("pin_timeout"));
        config.pin_timeout = Duration::from_secs(1);
        config.headers.push(("bad header".into(), "v".into()));
        assert!(config.validate().unwrap_err().to_string().contains("header name"));
        config.headers.clear();
        config.basic_auth = Some(BasicAuth { username: "a:b".into(), password: "p".into() });
        assert!(config.validate().unwrap_err().to_string().contains("username"));
        config.basic_auth = Some(BasicAuth { username: "ab".into(), password: "secret".into() });
        assert!(config.validate().is_ok());
        assert!(!format!("{config:?}").contains("secret"));
    }
}
