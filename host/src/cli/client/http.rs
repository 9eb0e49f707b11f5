//! The HTTP side of the client: one HTTP/1.1 connection per request (plain TCP, TLS or a unix
//! socket, failing over between `--host` addresses), credentials, the whole-request
//! `--timeout`, error bodies, and NDJSON streams with their `X-Stream-Error` trailer
//! (reference §1.2).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::endpoint::{Endpoint, Scheme, Target};

/// A request body: empty, or streamed (`add`).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// How long one address may take to accept a connection (and finish TLS): a dead address
/// should fail over quickly even without `--timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The part of an error body read at most: error bodies are one small JSON object.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What went wrong talking to the API, for the exit code and the message format.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error status and (usually) an `{"code","message"}` body.
    #[error("Code: {code}. Message: {message}")]
    Api {
        /// The body's `code` (the HTTP status when the body is not an error object).
        code: u16,
        /// The body's `message`.
        message: String,
    },
    /// No address accepted a connection.
    #[error("cannot reach the Cairn REST API: {tried}\n{hint}")]
    Connect {
        /// Each address tried and why it failed.
        tried: String,
        /// What to check next.
        hint: String,
    },
    /// `--timeout` elapsed.
    #[error("no complete answer within {0:?} (--timeout)")]
    Timeout(Duration),
    /// The stream started but ended with `X-Stream-Error`.
    #[error("the stream ended with an error: {0}")]
    Stream(String),
    /// `--wait-timeout` elapsed before the pin got where it should.
    #[error("{0}")]
    WaitTimeout(String),
}

/// How to verify the API's certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any certificate (`--no-check-certificate`).
    pub no_check: bool,
    /// Trust these PEM CA certificates instead of the system's (`--ca-cert`).
    pub ca_cert: Option<PathBuf>,
}

/// Everything needed to build a [`Client`].
#[derive(Clone, Debug, Default)]
pub struct ClientSettings {
    /// The addresses, tried in order.
    pub endpoints: Vec<Endpoint>,
    /// `--https`.
    pub https: bool,
    /// `--force-http`: credentials do not imply HTTPS.
    pub force_http: bool,
    /// `user:password` for Basic auth.
    pub basic_auth: Option<String>,
    /// A bearer token (from `POST /token`).
    pub token: Option<String>,
    /// TLS verification.
    pub tls: TlsOptions,
    /// Whole-request deadline; `None` for none.
    pub timeout: Option<Duration>,
    /// The cluster secret, the private-network key for a libp2p-http address (`--secret`).
    pub secret: Option<[u8; 32]>,
}

/// A REST API client.
pub struct Client {
    endpoints: Vec<(Endpoint, Scheme)>,
    /// Whether HTTPS was chosen only because credentials were given (for the hint).
    implied_https: bool,
    authorization: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Option<Duration>,
    secret: Option<[u8; 32]>,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Client {
    /// Checks the settings and loads the TLS trust roots when some address uses HTTPS.
    pub fn new(settings: ClientSettings) -> anyhow::Result<Self> {
        let authorization = match (&settings.basic_auth, &settings.token) {
            (Some(_), Some(_)) => bail!("give --basic-auth or --token, not both"),
            (Some(pair), None) => {
                let Some((user, _)) = pair.split_once(':') else {
                    bail!("--basic-auth needs user:password (cairn does not prompt for the password)");
                };
                if user.is_empty() {
                    bail!("--basic-auth: the user is empty");
                }
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            }
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        // ipfs-cluster-ctl: credentials imply HTTPS so that they do not cross the network in
        // clear, unless --force-http; an address that names its scheme is taken as written.
        let implied_https = authorization.is_some() && !settings.https && !settings.force_http;
        let default = if settings.https || implied_https { Scheme::Https } else { Scheme::Http };
        let endpoints: Vec<(Endpoint, Scheme)> = settings
            .endpoints
            .into_iter()
            .map(|e| {
                let scheme = e.scheme.unwrap_or(default);
                (e, scheme)
            })
            .collect();
        let implied_https = implied_https && endpoints.iter().any(|(e, s)| e.scheme.is_none() && *s == Scheme::Https);
        let tls =
            if endpoints.iter().any(|(_, s)| *s == Scheme::Https) { Some(tls_config(&settings.tls)?) } else { None };
        Ok(Self { endpoints, implied_https, authorization, tls, timeout: settings.timeout, secret: settings.secret })
    }

    /// A request whose answer is one JSON value (`None` for 204).
    pub async fn call(&self, method: Method, path: &str) -> anyhow::Result<Option<Value>> {
        self.bounded(async {
            let response = self.send(method, path, empty(), None).await?;
            let bytes = response.into_body().collect().await.context("read the answer")?.to_bytes();
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let value = serde_json::from_slice(&bytes)
                .with_context(|| format!("the answer is not JSON: {}", String::from_utf8_lossy(&bytes)))?;
            Ok(Some(value))
        })
        .await
    }

    /// `GET` with a JSON answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Option<Value>> {
        self.call(Method::GET, path).await
    }

    /// A streaming request: `on_item` gets each NDJSON value as it arrives. A 204 is an empty
    /// stream. A non-empty `X-Stream-Error` trailer fails after the items were handled.
    /// Returns how many items there were.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
        mut on_item: impl FnMut(Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        self.bounded(async {
            let response = self.send(method, path, body, content_type).await?;
            let mut body = response.into_body();
            let mut pending: Vec<u8> = Vec::new();
            let mut count = 0;
            let mut stream_errors = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("read the answer")?;
                let frame = match frame.into_data() {
                    Ok(data) => {
                        pending.extend_from_slice(&data);
                        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = pending.drain(..=end).collect();
                            count += handle_line(&line, &mut on_item)?;
                        }
                        continue;
                    }
                    Err(frame) => frame,
                };
                if let Ok(trailers) = frame.into_trailers() {
                    for value in trailers.get_all("x-stream-error") {
                        let text = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
                        if !text.is_empty() {
                            stream_errors.push(text);
                        }
                    }
                }
            }
            count += handle_line(&pending, &mut on_item)?;
            if !stream_errors.is_empty() {
                return Err(ClientError::Stream(stream_errors.join("; ")).into());
            }
            Ok(count)
        })
        .await
    }

    /// Applies `--timeout` to a whole exchange.
    async fn bounded<T>(&self, exchange: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        match self.timeout {
            None => exchange.await,
            Some(limit) => tokio::time::timeout(limit, exchange).await.map_err(|_| ClientError::Timeout(limit))?,
        }
    }

    /// Sends one request on a fresh connection; an error status becomes [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
    ) -> anyhow::Result<Response<Incoming>> {
        let (mut sender, endpoint) = self.connect().await?;
        let mut request = Request::builder().method(method.clone()).uri(path).header("host", endpoint.authority());
        if let Some(value) = &self.authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        let request = request.body(body).with_context(|| format!("build the request {method} {path}"))?;
        let response = sender.send_request(request).await.with_context(|| format!("{method} {path} on {endpoint}"))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response).await.into())
    }

    /// The first address that accepts a connection, with the HTTP/1.1 handshake done.
    async fn connect(&self) -> anyhow::Result<(SendRequest<Body>, &Endpoint)> {
        let mut tried = Vec::new();
        for (endpoint, scheme) in &self.endpoints {
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.connect_one(endpoint, *scheme)).await;
            match attempt {
                Ok(Ok(sender)) => return Ok((sender, endpoint)),
                Ok(Err(e)) => tried.push(format!("{}://{endpoint}: {e:#}", scheme_name(*scheme))),
                Err(_) => tried
                    .push(format!("{}://{endpoint}: no connection within {CONNECT_TIMEOUT:?}", scheme_name(*scheme))),
            }
        }
        let mut hint = "Is `cairn daemon` running there with api.restapi enabled? Pass --host <multiaddr|url> to \
                        ask another address."
            .to_owned();
        if self.implied_https {
            hint.push_str(" (HTTPS was used because credentials were given; pass --force-http for a plain-HTTP API.)");
        }
        Err(ClientError::Connect { tried: tried.join("; "), hint }.into())
    }

    async fn connect_one(&self, endpoint: &Endpoint, scheme: Scheme) -> anyhow::Result<SendRequest<Body>> {
        let io: Box<dyn Io> = match &endpoint.target {
            Target::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                // Small requests and NDJSON lines should not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
            Target::Unix(path) => Box::new(UnixStream::connect(path).await?),
            Target::Libp2p { addr, .. } => {
                let addr = addr.parse().with_context(|| format!("invalid multiaddr {addr}"))?;
                Box::new(cairn_libp2p_http::dial(addr, self.secret).await?)
            }
        };
        let io: Box<dyn Io> = match (scheme, &self.tls) {
            (Scheme::Http, _) => io,
            (Scheme::Https, Some(config)) => {
                let name = match &endpoint.target {
                    Target::Tcp { host, .. } => host.clone(),
                    Target::Unix(_) | Target::Libp2p { .. } => "localhost".to_owned(),
                };
                let name = ServerName::try_from(name).context("server name for TLS")?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                Box::new(connector.connect(name, io).await.context("TLS handshake")?)
            }
            (Scheme::Https, None) => bail!("no TLS configuration (internal error)"),
        };
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.context("HTTP handshake")?;
        // The connection's own errors reach the caller through the request; nothing to do here.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// One NDJSON line to `on_item`; blank lines (and the empty rest of a stream) are skipped.
fn handle_line(line: &[u8], on_item: &mut impl FnMut(Value) -> anyhow::Result<()>) -> anyhow::Result<usize> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    let value = serde_json::from_slice(line).with_context(|| {
        format!("the API sent a line that is not JSON: {}", String::from_utf8_lossy(line).trim_end())
    })?;
    on_item(value)?;
    Ok(1)
}

/// The `{"code","message"}` of an error answer; the status and body text when it is not one.
async fn api_error(response: Response<Incoming>) -> ClientError {
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > MAX_ERROR_BODY {
                bytes.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: u16,
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => ClientError::Api { code: e.code, message: e.message },
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
            ClientError::Api { code: status.as_u16(), message }
        }
    }
}

/// The rustls client configuration: TLS 1.2/1.3 with ring, trusting `--ca-cert` or the system's
/// CA bundle, or nothing at all with `--no-check-certificate`.
fn tls_config(options: &TlsOptions) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?;
    let mut config = if options.no_check {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let file = match &options.ca_cert {
            Some(path) => path.clone(),
            None => system_ca_bundle().context(
                "no system CA bundle found (set SSL_CERT_FILE, or pass --ca-cert <pem> or --no-check-certificate)",
            )?,
        };
        let certs = CertificateDer::pem_file_iter(&file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", file.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("{}: no usable CA certificate", file.display());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `$SSL_CERT_FILE`, else the first CA bundle found where common systems keep one.
fn system_ca_bundle() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(file));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Gentoo
        "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",             // openSUSE
        "/etc/ssl/cert.pem",                  // Alpine, macOS, BSDs
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.is_file())
    .map(Path::to_path_buf)
}

/// `--no-check-certificate`: any certificate is accepted, but the handshake signatures are
/// still checked so that the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Go's `url.QueryEscape`: what query values and kubo's multipart file names are escaped with.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Escapes one path segment (`/` inside it included), as Go's `url.PathEscape`.
pub fn path_escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'$' | b'&' | b'+' | b',' | b':' | b'=' | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string builder: `path?k=v&k2=v2`, values escaped.
#[derive(Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Adds `key=value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Adds `key=true` when `on`.
    pub fn flag(&mut self, key: &str, on: bool) -> &mut Self {
        if on {
            self.push(key, "true");
        }
        self
    }

    /// `path` followed by the query, if any.
    pub fn on(&self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_owned();
        }
        let pairs: Vec<String> =
            self.0.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect();
        format!("{path}?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(query_escape("a b/c&d=é"), "a+b%2Fc%26d%3D%C3%A9");
        assert_eq!(path_escape("a b/c:d"), "a%20b%2Fc:d");
        let mut q = Query::default();
        q.push("name", "my pin").push("meta-k", "v=1").flag("local", false).flag("wrap", true);
        assert_eq!(q.on("/pins"), "/pins?name=my+pin&meta-k=v%3D1&wrap=true");
        assert_eq!(Query::default().on("/id"), "/id");
    }

    #[test]
    fn credentials_imply_https_unless_forced_or_written() {
        let endpoints = super::super::endpoint::parse_hosts("/ip4/127.0.0.1/tcp/1,http://127.0.0.1:2").expect("hosts");
        let settings = ClientSettings {
            endpoints,
            basic_auth: Some("admin:secret".into()),
            tls: TlsOptions { no_check: true, ca_cert: None },
            ..ClientSettings::default()
        };
        let client = Client::new(settings.clone()).expect("client");
        assert_eq!(client.endpoints[0].1, Scheme::Https);
        assert_eq!(client.endpoints[1].1, Scheme::Http, "an explicit http:// URL is kept");
        assert!(client.implied_https);
        assert_eq!(client.authorization.as_deref(), Some("Basic YWRtaW46c2VjcmV0"));

        let forced = Client::new(ClientSettings { force_http: true, ..settings.clone() }).expect("client");
        assert_eq!(forced.endpoints[0].1, Scheme::Http);
        assert!(forced.tls.is_none());

        let no_password = ClientSettings { basic_auth: Some("admin".into()), ..settings.clone() };
        assert!(format!("{:#}", Client::new(no_password).err().expect("refused")).contains("user:password"));
        let both = ClientSettings { token: Some("t".into()), ..settings };
        assert!(Client::new(both).is_err());
    }

    #[test]
    fn lines_are_items_and_blank_lines_are_not() {
        let mut seen = Vec::new();
        let mut push = |v: Value| {
            seen.push(v);
            Ok(())
        };
        assert_eq!(handle_line(b"{\"a\":1}\n", &mut push).expect("json"), 1);
        assert_eq!(handle_line(b"  \n", &mut push).expect("blank"), 0);
        assert!(handle_line(b"nope\n", &mut push).is_err());
        assert_eq!(seen, [serde_json::json!({"a": 1})]);
    }
}
