//! Where the REST API is: `--host` (multiaddrs or URLs, comma-separated for failover), else the
//! `api.restapi` listen addresses of the config folder's service.json, else IPFS Cluster's
//! default `/ip4/127.0.0.1/tcp/9094`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use multiaddr::{Multiaddr, Protocol};

use crate::config::{ConfigDir, load_service, process_env};

/// IPFS Cluster's default REST API address.
pub const DEFAULT_HOST: &str = "/ip4/127.0.0.1/tcp/9094";

/// HTTP or HTTPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// How to reach the API's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A host name or IP literal and a port.
    Tcp {
        /// Name or IP (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix socket path (`/unix/<path>`).
    Unix(PathBuf),
    /// A peer's libp2p-http API: the whole multiaddr, ending in `/p2p/<peer id>`.
    Libp2p {
        /// The multiaddr to dial.
        addr: String,
        /// The peer id it ends in (the `Host` header, as go-libp2p-http sends it).
        peer: String,
    },
}

/// One address of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The socket.
    pub target: Target,
    /// The scheme, when the address says it (`https://`, `/tls/http`, a config with a
    /// certificate); `None` leaves it to `--https` and the credentials rule.
    pub scheme: Option<Scheme>,
}

impl Endpoint {
    /// The `Host` header value.
    pub fn authority(&self) -> String {
        match &self.target {
            Target::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Tcp { host, port } => format!("{host}:{port}"),
            // Go's client sends the URL's host; for a unix socket there is none worth naming.
            Target::Unix(_) => "localhost".to_owned(),
            Target::Libp2p { peer, .. } => peer.clone(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Tcp { .. } => write!(f, "{}", self.authority()),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Libp2p { addr, .. } => write!(f, "libp2p:{addr}"),
        }
    }
}

/// Parses `--host`: comma-separated multiaddrs (`/ip4/…/tcp/…`, `/dns/…/tcp/…`,
/// `/unix/<path>`, optionally ending in `/http`, `/https` or `/tls/http`) or `http(s)://` URLs.
pub fn parse_hosts(text: &str) -> anyhow::Result<Vec<Endpoint>> {
    let endpoints = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_host(s).with_context(|| format!("--host {s:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if endpoints.is_empty() {
        bail!("--host is empty");
    }
    Ok(endpoints)
}

fn parse_host(text: &str) -> anyhow::Result<Endpoint> {
    if let Some(rest) = text.strip_prefix("http://") {
        return parse_url_authority(rest, Scheme::Http, 80);
    }
    if let Some(rest) = text.strip_prefix("https://") {
        return parse_url_authority(rest, Scheme::Https, 443);
    }
    if let Some(path) = text.strip_prefix("/unix/") {
        // Go's multiaddr takes the rest of the address as the path; the Rust crate takes one
        // segment, so the path is cut here.
        return Ok(Endpoint { target: Target::Unix(PathBuf::from(format!("/{path}"))), scheme: None });
    }
    if !text.starts_with('/') {
        bail!("expected a multiaddr such as {DEFAULT_HOST} or an http(s):// URL");
    }
    parse_multiaddr(text)
}

fn parse_url_authority(rest: &str, scheme: Scheme, default_port: u16) -> anyhow::Result<Endpoint> {
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('?') || authority.contains('@') {
        bail!("give only scheme, host and port (the API lives at the root; credentials go in --basic-auth)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').context("unclosed [ in an IPv6 address")?;
        match after.strip_prefix(':') {
            Some(port) => (host, parse_port(port)?),
            None if after.is_empty() => (host, default_port),
            None => bail!("unexpected {after:?} after the IPv6 address"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        bail!("no host");
    }
    Ok(Endpoint { target: Target::Tcp { host: host.to_owned(), port }, scheme: Some(scheme) })
}

fn parse_port(text: &str) -> anyhow::Result<u16> {
    text.parse().with_context(|| format!("invalid port {text:?}"))
}

fn parse_multiaddr(text: &str) -> anyhow::Result<Endpoint> {
    let addr = Multiaddr::from_str(text).map_err(|e| anyhow::anyhow!("invalid multiaddr: {e}"))?;
    let mut host = None;
    let mut port = None;
    let mut scheme = None;
    let mut tls = false;
    for proto in addr.iter() {
        match proto {
            Protocol::Ip4(ip) => host = Some(ip.to_string()),
            Protocol::Ip6(ip) => host = Some(ip.to_string()),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => host = Some(name.into_owned()),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Tls => tls = true,
            Protocol::Http => scheme = Some(if tls { Scheme::Https } else { Scheme::Http }),
            Protocol::Https => scheme = Some(Scheme::Https),
            Protocol::P2p(peer) => {
                // libp2p-http: the stream is encrypted by libp2p, so plain HTTP inside.
                return Ok(Endpoint {
                    target: Target::Libp2p { addr: text.to_owned(), peer: peer.to_string() },
                    scheme: Some(Scheme::Http),
                });
            }
            other => bail!("unsupported protocol /{} (expected /ip4, /ip6 or /dns, then /tcp)", other.tag()),
        }
    }
    match (host, port) {
        (Some(host), Some(port)) => Ok(Endpoint { target: Target::Tcp { host, port }, scheme }),
        _ => bail!("a multiaddr needs a host (/ip4, /ip6, /dns) and a /tcp port"),
    }
}

/// Where to find the API when `--host` is not given: the REST API's listen addresses in the
/// config folder's service.json (an unspecified IP becomes loopback; `https` when the API has a
/// certificate), or the default address when there is no service.json.
pub fn from_config(dir: Option<&ConfigDir>) -> anyhow::Result<Vec<Endpoint>> {
    let service = match dir.map(ConfigDir::service) {
        Some(path) if path.exists() => path,
        _ => return parse_hosts(DEFAULT_HOST),
    };
    let loaded = load_service(&service, &process_env)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("read the REST API address from {} (pass --host to skip it)", service.display()))?;
    let Some(api) = loaded.config.api.restapi.as_ref() else {
        bail!("{} has no api.restapi section, so its peer serves no REST API; pass --host", service.display());
    };
    let scheme = if api.ssl_cert_file.is_empty() { Scheme::Http } else { Scheme::Https };
    let mut endpoints = Vec::new();
    for addr in &api.http_listen_multiaddress.0 {
        let dialable = addr.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/").replace("/ip6/::/", "/ip6/::1/");
        let mut endpoint = parse_host(&dialable)
            .with_context(|| format!("{}: api.restapi.http_listen_multiaddress", service.display()))?;
        endpoint.scheme = Some(scheme);
        endpoints.push(endpoint);
    }
    if endpoints.is_empty() {
        return parse_hosts(DEFAULT_HOST);
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16, scheme: Option<Scheme>) -> Endpoint {
        Endpoint { target: Target::Tcp { host: host.into(), port }, scheme }
    }

    #[test]
    fn multiaddrs_and_urls() {
        assert_eq!(parse_hosts(DEFAULT_HOST).expect("default"), [tcp("127.0.0.1", 9094, None)]);
        assert_eq!(
            parse_hosts("/dns/cluster.example/tcp/443/https, http://[::1]:9094/").expect("two"),
            [tcp("cluster.example", 443, Some(Scheme::Https)), tcp("::1", 9094, Some(Scheme::Http))]
        );
        assert_eq!(parse_hosts("/ip6/::1/tcp/1/tls/http").expect("tls")[0].scheme, Some(Scheme::Https));
        assert_eq!(parse_hosts("https://h").expect("url")[0], tcp("h", 443, Some(Scheme::Https)));
        assert_eq!(
            parse_hosts("/unix/run/cairn/api.sock").expect("unix")[0].target,
            Target::Unix("/run/cairn/api.sock".into())
        );
        assert_eq!(tcp("::1", 9094, None).authority(), "[::1]:9094");
    }

    #[test]
    fn refuses_what_it_cannot_dial() {
        for bad in [
            "127.0.0.1:9094",
            "/ip4/127.0.0.1",
            "/ip4/127.0.0.1/udp/9094",
            "http://h:port",
            "http://user:pw@h:1",
            "http://h/api",
            ",",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn a_p2p_address_is_the_libp2p_http_api() {
        let addr = "/ip4/127.0.0.1/tcp/9096/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let endpoint = parse_hosts(addr).expect("libp2p-http")[0].clone();
        assert_eq!(
            endpoint.target,
            Target::Libp2p {
                addr: addr.to_owned(),
                peer: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".to_owned()
            }
        );
        assert_eq!(endpoint.scheme, Some(Scheme::Http), "libp2p encrypts; HTTP inside");
        assert_eq!(endpoint.authority(), "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    }
}
