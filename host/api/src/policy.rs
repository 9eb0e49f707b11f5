//! The request policy: the two plugin decision points of an API listener (authorization and
//! CORS), as plain Rust types that mirror `wit/types.wit` field for field. The daemon adapts its
//! plugin slots to [`RequestPolicy`]; this crate never sees the plugin runtime.

use futures::future::BoxFuture;

/// An HTTP header as (name, value); names are lower-case.
pub type Header = (String, String);

/// The API a request arrived on (WIT `api`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Api {
    /// The REST API.
    #[default]
    Restapi,
    /// The Pinning Service API.
    Pinsvcapi,
    /// The IPFS proxy.
    Ipfsproxy,
    /// The REST API over a libp2p stream.
    Libp2pHttp,
}

impl Api {
    /// The config section name (`restapi`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Api::Restapi => "restapi",
            Api::Pinsvcapi => "pinsvcapi",
            Api::Ipfsproxy => "ipfsproxy",
            Api::Libp2pHttp => "libp2p-http",
        }
    }
}

/// User and password from `Authorization: Basic` (WIT `basic-credentials`).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    // Passwords stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials").field("user", &self.user).finish_non_exhaustive()
    }
}

/// Credentials parsed from the `Authorization` header (WIT `credentials`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No header, or one that is neither well-formed Basic nor Bearer.
    #[default]
    None,
    /// `Basic base64(user:password)`.
    Basic(BasicCredentials),
    /// `Bearer <token>` (the prefix is matched case-insensitively).
    Bearer(String),
}

impl Credentials {
    /// Credentials from an `Authorization` value, read as Go does: `Basic` (case-insensitive,
    /// padded base64 of `user:password`) first, then `Bearer ` (case-insensitive) with the rest
    /// as the token. Every API server and the IPFS proxy read the header this way.
    pub fn from_authorization(authorization: Option<&str>) -> Credentials {
        use base64::Engine as _;
        let Some(value) = authorization else { return Credentials::None };
        if let Some(encoded) = strip_prefix_ignore_case(value, "Basic ")
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded)
            && let Ok(decoded) = String::from_utf8(decoded)
            && let Some((user, password)) = decoded.split_once(':')
        {
            return Credentials::Basic(BasicCredentials { user: user.to_owned(), password: password.to_owned() });
        }
        if let Some(token) = strip_prefix_ignore_case(value, "Bearer ") {
            return Credentials::Bearer(token.to_owned());
        }
        Credentials::None
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &value[prefix.len()..])
}

/// An API request to authorize (WIT `api-request`, plus the verified client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiRequest {
    /// The API.
    pub api: Api,
    /// Upper-case method.
    pub method: String,
    /// Percent-decoded path without the query, as the router sees it.
    pub path: String,
    /// Raw query without `?` (may be empty).
    pub query: String,
    /// Every request header, names lower-cased; values of one name stay together in arrival
    /// order.
    pub headers: Vec<Header>,
    /// `ip:port` of the client (`@` on a unix socket).
    pub remote_addr: String,
    /// The libp2p peer (libp2p-http only; `None` here).
    pub peer_id: Option<String>,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// Parsed `Authorization` header.
    pub credentials: Credentials,
    /// RFC 4514 subject of the client certificate, when TLS verified one.
    pub client_cert_subject: Option<String>,
}

/// Why a request is refused and how to answer (WIT `denial`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// An error status (400..=599); anything else is answered as 500.
    pub status: u16,
    /// Goes into the error body's `message`.
    pub reason: String,
    /// Extra response headers, e.g. `www-authenticate`.
    pub headers: Vec<Header>,
}

/// The authorizer's answer (WIT `request-decision`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDecision {
    /// Serve the request; the principal's name is logged.
    Allow(String),
    /// Refuse it.
    Deny(Denial),
}

/// The answer to `POST /token` (WIT `token-decision`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenDecision {
    /// The issued token.
    Token(String),
    /// Refuse.
    Deny(Denial),
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method` (WIT `preflight-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightRequest {
    /// The API.
    pub api: Api,
    /// `Origin` (empty when absent).
    pub origin: String,
    /// `Access-Control-Request-Method`.
    pub method: String,
    /// `Access-Control-Request-Headers`, split on commas and trimmed.
    pub headers: Vec<String>,
}

/// A non-preflight request that carries an `Origin` (WIT `cors-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsRequest {
    /// The API.
    pub api: Api,
    /// `Origin`.
    pub origin: String,
    /// The request method.
    pub method: String,
}

/// The plugin decision points of one API listener.
pub trait RequestPolicy: Send + Sync {
    /// Decides a request (every request but `GET /health`, `OPTIONS` and preflights).
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision>;
    /// Issues a token for `POST /token` (asked after [`RequestPolicy::authorize`] allowed it).
    fn issue_token<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision>;
    /// The response headers of a preflight (the answer is 204 whatever they are).
    fn preflight<'a>(&'a self, request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>>;
    /// The headers added to the response of an actual cross-origin request.
    fn cors<'a>(&'a self, request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>>;
}

/// Allows everything, issues no tokens and adds no CORS headers: IPFS Cluster with
/// `basic_auth_credentials: null` and no CORS (for tests and embedding).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenPolicy;

impl RequestPolicy for OpenPolicy {
    fn authorize<'a>(&'a self, _request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        Box::pin(async { RequestDecision::Allow("anonymous".to_owned()) })
    }

    fn issue_token<'a>(&'a self, _request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        // IPFS Cluster without credentials answers `POST /token` with 401 `unauthorized`.
        Box::pin(async {
            TokenDecision::Deny(Denial { status: 401, reason: "unauthorized".to_owned(), headers: Vec::new() })
        })
    }

    fn preflight<'a>(&'a self, _request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }

    fn cors<'a>(&'a self, _request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
}
