//! The REST API listener: `api.restapi` mapped onto the `cairn-api` server, and the request
//! policy backed by the section's authorizer and CORS plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_api::{
    Api, ApiRequest, CorsRequest, Credentials, Denial, Header, ListenAddr, PreflightRequest, RequestDecision,
    RequestPolicy, ServerConfig, TlsConfig, TokenDecision,
};
use cairn_policy::types as wit;
use cairn_policy::{AuthorizerPlugin, CorsPlugin, PluginSlot};
use futures::future::BoxFuture;

use crate::config::{ConfigDir, HttpApiConfig};

/// The pseudo-header that carries a verified client certificate's subject to the authorizer.
/// The contract (`wit/types.wit`) has no field for it, so it travels as a header the host
/// sets; a header of that name sent by the client is dropped first, so it cannot be forged.
pub const CLIENT_CERT_HEADER: &str = "x-cairn-client-cert-subject";

/// [`RequestPolicy`] over one API's authorizer and CORS plugin slots (read per request, so a
/// reload applies to the next request).
pub struct PluginPolicy {
    /// The API's authorizer.
    pub authorizer: Arc<PluginSlot<AuthorizerPlugin>>,
    /// The API's CORS policy.
    pub cors: Arc<PluginSlot<CorsPlugin>>,
}

fn wit_api(api: Api) -> wit::Api {
    match api {
        Api::Restapi => wit::Api::Restapi,
        Api::Pinsvcapi => wit::Api::Pinsvcapi,
        Api::Ipfsproxy => wit::Api::Ipfsproxy,
        Api::Libp2pHttp => wit::Api::Libp2pHttp,
    }
}

fn wit_request(req: &ApiRequest) -> wit::ApiRequest {
    let mut headers: Vec<(String, String)> =
        req.headers.iter().filter(|(name, _)| !name.eq_ignore_ascii_case(CLIENT_CERT_HEADER)).cloned().collect();
    if let Some(subject) = &req.client_cert_subject {
        headers.push((CLIENT_CERT_HEADER.to_string(), subject.clone()));
    }
    wit::ApiRequest {
        api: wit_api(req.api),
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers,
        remote_addr: req.remote_addr.clone(),
        peer_id: req.peer_id.clone(),
        tls: req.tls,
        credentials: match &req.credentials {
            Credentials::None => wit::Credentials::None,
            Credentials::Basic(b) => {
                wit::Credentials::Basic(wit::BasicCredentials { user: b.user.clone(), password: b.password.clone() })
            }
            Credentials::Bearer(t) => wit::Credentials::Bearer(t.clone()),
        },
    }
}

fn denial(d: wit::Denial) -> Denial {
    Denial { status: d.status, reason: d.reason, headers: d.headers }
}

impl RequestPolicy for PluginPolicy {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        let plugin = self.authorizer.current();
        let request = wit_request(request);
        Box::pin(async move {
            match plugin.authorize_request(&request).await {
                wit::RequestDecision::Allow(principal) => RequestDecision::Allow(principal),
                wit::RequestDecision::Deny(d) => RequestDecision::Deny(denial(d)),
            }
        })
    }

    fn issue_token<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        let plugin = self.authorizer.current();
        let request = wit_request(request);
        Box::pin(async move {
            match plugin.issue_token(&request).await {
                wit::TokenDecision::Token(token) => TokenDecision::Token(token),
                wit::TokenDecision::Deny(d) => TokenDecision::Deny(denial(d)),
            }
        })
    }

    fn preflight<'a>(&'a self, request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        let plugin = self.cors.current();
        let request = wit::PreflightRequest {
            api: wit_api(request.api),
            origin: request.origin.clone(),
            method: request.method.clone(),
            headers: request.headers.clone(),
        };
        Box::pin(async move { plugin.preflight(&request).await })
    }

    fn cors<'a>(&'a self, request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        let plugin = self.cors.current();
        let request = wit::CorsRequest {
            api: wit_api(request.api),
            origin: request.origin.clone(),
            method: request.method.clone(),
        };
        Box::pin(async move { plugin.actual(&request).await })
    }
}

/// One listener address from a multiaddr: `/ip4|ip6/<ip>/tcp/<port>` or `/unix/<path>`.
pub fn listen_addr(multiaddr: &str) -> anyhow::Result<ListenAddr> {
    if let Some(path) = multiaddr.strip_prefix("/unix") {
        if path.is_empty() {
            bail!("{multiaddr:?} has no socket path");
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    Ok(ListenAddr::Tcp(crate::metrics::socket_addr(multiaddr)?))
}

fn in_folder(dir: &Path, file: &str) -> PathBuf {
    let path = PathBuf::from(file);
    if path.is_absolute() { path } else { dir.join(path) }
}

/// The server settings of an `api.restapi`/`api.pinsvcapi` section; errors name the key.
pub fn server_config(dir: &ConfigDir, key: &str, api: Api, section: &HttpApiConfig) -> anyhow::Result<ServerConfig> {
    let file = dir.service();
    let mut listen = Vec::new();
    for addr in &section.http_listen_multiaddress.0 {
        listen.push(listen_addr(addr).with_context(|| format!("{}: {key}.http_listen_multiaddress", file.display()))?);
    }
    if listen.is_empty() {
        // IPFS Cluster keeps the default address for an empty value (§10.6).
        let port = if api == Api::Pinsvcapi { 9097 } else { 9094 };
        listen.push(ListenAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port))));
    }
    let tls = match (section.ssl_cert_file.is_empty(), section.ssl_key_file.is_empty()) {
        (true, true) => None,
        (false, false) => Some(TlsConfig {
            cert_file: in_folder(&dir.0, &section.ssl_cert_file),
            key_file: in_folder(&dir.0, &section.ssl_key_file),
            client_ca_file: section.ssl_client_ca_file.as_deref().map(|f| in_folder(&dir.0, f)),
            client_cert_required: section.ssl_client_cert_required,
        }),
        (true, false) => bail!("{}: {key}.ssl_cert_file: is empty but ssl_key_file is set", file.display()),
        (false, true) => bail!("{}: {key}.ssl_key_file: is empty but ssl_cert_file is set", file.display()),
    };
    Ok(ServerConfig {
        api,
        listen,
        tls,
        read_timeout: section.read_timeout.0,
        read_header_timeout: section.read_header_timeout.0,
        write_timeout: section.write_timeout.0,
        idle_timeout: section.idle_timeout.0,
        max_header_bytes: usize::try_from(section.max_header_bytes).unwrap_or(usize::MAX),
        headers: section.headers.clone(),
        add_limits: section.add_limits(),
        ..ServerConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_addr("/ip4/127.0.0.1/tcp/9094").expect("tcp"),
            ListenAddr::Tcp("127.0.0.1:9094".parse().expect("addr"))
        );
        assert_eq!(listen_addr("/unix/tmp/api.sock").expect("unix"), ListenAddr::Unix("/tmp/api.sock".into()));
        assert!(listen_addr("/dns4/example.com/tcp/1").is_err());
    }

    #[test]
    fn a_forged_client_certificate_header_is_dropped() {
        let req = ApiRequest {
            headers: vec![(CLIENT_CERT_HEADER.into(), "CN=admin".into()), ("accept".into(), "*/*".into())],
            client_cert_subject: None,
            ..ApiRequest::default()
        };
        assert_eq!(wit_request(&req).headers, vec![("accept".to_string(), "*/*".to_string())]);
        let req = ApiRequest { client_cert_subject: Some("CN=alice".into()), ..req };
        assert!(wit_request(&req).headers.contains(&(CLIENT_CERT_HEADER.to_string(), "CN=alice".to_string())));
    }
}
