//! One request, from arrival to response:
//!
//! 1. the request policy decides (every request, forwarded or hijacked, `OPTIONS` and `HEAD`
//!    included: beyond IPFS Cluster, whose proxy has no authentication; the default policy
//!    allows everything). A CORS preflight the policy allows only because it is one (browsers
//!    send preflights without credentials) is answered here with the policy's CORS headers,
//!    never forwarded: nothing unauthenticated reaches the daemon while authentication is on;
//! 2. an unclean path (`//`, `.`, `..`) is redirected with 301, as gorilla/mux does;
//! 3. `POST`, `GET` and `PUT` on a hijacked path are answered by the cluster
//!    ([`crate::handlers`]); everything else is forwarded to the daemon ([`crate::forward`]).

use std::net::IpAddr;
use std::sync::Arc;

use cairn_api::query::{self, Query};
use cairn_api::{ApiRequest, ClusterApi, Credentials, Header, PreflightRequest, RequestDecision, RequestPolicy};
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, Method, Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::ProxyCluster;
use crate::body::{ResBody, empty, kubo_error, proxy_error, response};
use crate::config::ProxyConfig;
use crate::conn::{Activity, TrackedBody};
use crate::forward::forward;
use crate::handlers::{self, Call, Hijack, hijack};
use crate::headers::HijackHeaders;
use crate::trailers::Sentinel;
use crate::upstream::Upstream;

/// What every request of a server shares.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) cluster: Arc<dyn ClusterApi>,
    pub(crate) extras: Arc<dyn ProxyCluster>,
    pub(crate) policy: Arc<dyn RequestPolicy>,
    pub(crate) upstream: Upstream,
    pub(crate) headers: HijackHeaders,
    pub(crate) sentinel: Sentinel,
}

/// What every request of a connection shares.
pub(crate) struct ConnInfo {
    /// `ip:port`, or `@` on a unix socket (as Go reports it).
    pub(crate) remote_addr: String,
    /// The client's IP, for `X-Forwarded-For`.
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) activity: Arc<Activity>,
}

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<TrackedBody<ResBody>> {
    let guard = conn.activity.request_started();
    let started = Instant::now();
    let method = req.method().clone();
    let target = req.uri().path().to_owned();
    let route = handlers::pattern(&method, &target);
    // The same span as the other APIs' (`cairn_api`), so traces look alike across endpoints.
    let span = tracing::info_span!(
        "api.request",
        api = cairn_api::Api::Ipfsproxy.name(),
        method = %method,
        route,
        status = tracing::field::Empty
    );
    let response = tracing::Instrument::instrument(serve(&shared, &conn, req, started), span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    if let Some(observer) = &shared.config.observer.0 {
        observer.observe(cairn_api::Api::Ipfsproxy, route, status, started.elapsed());
    }
    tracing::debug!(
        target: "cairn_ipfsproxy::access",
        remote = %conn.remote_addr,
        method = %method,
        path = %target,
        status,
        "request"
    );
    response.map(|inner| TrackedBody::new(inner, guard))
}

async fn serve(shared: &Shared, conn: &ConnInfo, req: Request<Incoming>, started: Instant) -> Response<ResBody> {
    let (parts, body) = req.into_parts();
    let Some(path) = query::decode_path(parts.uri.path()) else {
        return proxy_error(400, "invalid URL escape in path");
    };
    let raw_query = parts.uri.query().unwrap_or("");

    // 1. The policy.
    let request = api_request(conn, &parts.method, &parts.headers, &path, raw_query);
    match shared.policy.authorize(&request).await {
        RequestDecision::Allow(principal) => tracing::trace!(principal = %principal, "ipfsproxy request allowed"),
        RequestDecision::Deny(denial) => return denial_response(denial.status, &denial.reason, &denial.headers),
    }
    if let Some(preflight) = PreflightRequest::from_request(cairn_api::Api::Ipfsproxy, &parts.method, &parts.headers)
        && !allowed_as_plain_request(shared, &request).await
    {
        let headers = shared.policy.preflight(&preflight).await;
        return response(204, policy_headers(&headers), empty());
    }

    // 2. gorilla/mux's clean-path redirect.
    let clean = clean_path(&path);
    if clean != path && parts.method != Method::CONNECT {
        let mut location = escape_path(&clean);
        if !raw_query.is_empty() {
            location = format!("{location}?{raw_query}");
        }
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::try_from(location) {
            headers.insert(LOCATION, v);
        }
        return response(301, headers, empty());
    }

    // 3. Hijack or forward.
    let read_deadline = (!shared.config.read_timeout.is_zero()).then(|| started + shared.config.read_timeout);
    let route = match parts.method {
        Method::POST | Method::GET | Method::PUT => hijack(&path),
        _ => None,
    };
    let Some(route) = route else {
        return forward(&shared.upstream, &parts, body, read_deadline, conn.client_ip, shared.sentinel).await;
    };
    let query = Query::parse(raw_query);
    // Plain block/put and dag/put are not hijacked at all (no CORS copy, no headers).
    if matches!(route, Hijack::BlockPut | Hijack::DagPut) && query.get("pin") != "true" {
        return forward(&shared.upstream, &parts, body, read_deadline, conn.client_ip, shared.sentinel).await;
    }
    let call = Call {
        shared,
        parts: &parts,
        query,
        // HTTP/1.0 has no chunked encoding, so no trailers.
        sentinel: (parts.version != Version::HTTP_10).then_some(shared.sentinel),
        read_deadline,
    };
    match route {
        Hijack::PinAdd(arg) => handlers::pin_op(&call, arg, true).await,
        Hijack::PinRm(arg) => handlers::pin_op(&call, arg, false).await,
        Hijack::PinLs(arg) => handlers::pin_ls(&call, arg).await,
        Hijack::PinUpdate => handlers::pin_update(&call).await,
        Hijack::Add => handlers::add(&call, body).await,
        Hijack::RepoStat => handlers::repo_stat(&call).await,
        Hijack::RepoGc => handlers::repo_gc(&call).await,
        Hijack::BlockPut => handlers::put_and_pin(&call, body, false).await,
        Hijack::DagPut => handlers::put_and_pin(&call, body, true).await,
    }
}

/// The policy's view of the request.
fn api_request(conn: &ConnInfo, method: &Method, headers: &HeaderMap, path: &str, raw_query: &str) -> ApiRequest {
    ApiRequest {
        api: cairn_api::Api::Ipfsproxy,
        method: method.to_string(),
        path: path.to_owned(),
        query: raw_query.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        remote_addr: conn.remote_addr.clone(),
        peer_id: None,
        tls: false,
        credentials: Credentials::from_authorization(headers.get("authorization").and_then(|v| v.to_str().ok())),
        client_cert_subject: None,
    }
}

/// Whether the policy allows a preflight in its own right (an open API, or credentials it
/// accepts), rather than only for being a preflight: asked with the preflight headers removed,
/// so that what reaches the daemon never depends on an authorizer's preflight exemption.
async fn allowed_as_plain_request(shared: &Shared, request: &ApiRequest) -> bool {
    let mut plain = request.clone();
    plain.headers.retain(|(name, _)| !name.starts_with("access-control-request-"));
    matches!(shared.policy.authorize(&plain).await, RequestDecision::Allow(_))
}

/// Headers a policy returned, skipping (and logging) invalid ones.
fn policy_headers(extra: &[Header]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(header = %name, "ipfsproxy: request policy returned an invalid header; dropped"),
        }
    }
    headers
}

/// A denial: its status (500 if it is not an error status), its headers, a Kubo error body.
fn denial_response(status: u16, reason: &str, extra: &[Header]) -> Response<ResBody> {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        tracing::warn!(status, "ipfsproxy: request policy denied with a non-error status");
        500
    };
    kubo_error(status, policy_headers(extra), reason)
}

/// gorilla/mux's `cleanPath`: Go's `path.Clean`, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in p.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if p.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Percent-encodes what may not appear raw in a URL path.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::BasicCredentials;

    #[test]
    fn clean_paths_like_gorilla() {
        assert_eq!(clean_path("/api/v0/add"), "/api/v0/add");
        assert_eq!(clean_path("/api/v0/pin/add/"), "/api/v0/pin/add/");
        assert_eq!(clean_path("/api//v0/./pin/../add"), "/api/v0/add");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(escape_path("/a b"), "/a%20b");
    }

    #[test]
    fn credentials_parse() {
        assert_eq!(
            Credentials::from_authorization(Some("basic dTpwOnE=")),
            Credentials::Basic(BasicCredentials { user: "u".into(), password: "p:q".into() })
        );
        assert_eq!(Credentials::from_authorization(Some("Bearer t")), Credentials::Bearer("t".into()));
        assert_eq!(Credentials::from_authorization(Some("Digest x")), Credentials::None);
    }
}
