//! One request, from arrival to response, in IPFS Cluster's order (reference §1.1; its
//! `api/common/api.go` wraps auth around CORS around strict-slash around the router):
//!
//! 1. a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 with the
//!    policy's preflight headers, unauthenticated;
//! 2. every request but `GET`/`HEAD /health` is authorized, a bare `OPTIONS` included (IPFS
//!    Cluster lets every `OPTIONS` through); a denial is answered with its status, headers and
//!    reason, and *no* CORS headers, since auth sits outside CORS;
//! 3. an allowed request with an `Origin` gets the policy's actual-request CORS headers on
//!    whatever comes next (redirects, 404, 405, errors and successes alike);
//! 4. a path ending in `/` is redirected with 307 (so POST bodies survive), an unclean path with
//!    301 (gorilla/mux's clean-path redirect); a `Location` is always a clean path, so never
//!    `//host`, which a browser would follow to another site;
//! 5. the router: 404 `{"code":404,"message":"not found"}`, 405 with an empty body, or a
//!    handler.
//!
//! The Pinning Service API ([`App::PinSvc`]) runs steps 1–4 unchanged and then its own router
//! (`crate::pinsvc`); there every error body, a denial's included, is the spec's `Failure`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::Instant;

use crate::cluster::ClusterApi;
use crate::config::ServerConfig;
use crate::conn::{Activity, TrackedBody};
use crate::error::ApiError;
use crate::multipart;
use crate::policy::{
    ApiRequest, CorsRequest, Credentials, Header, PreflightRequest, RequestDecision, RequestPolicy, TokenDecision,
};
use crate::query::{self, Query};
use crate::response::{Common, ResBody, bare, empty, full};
use crate::router::{self, NoRoute, Route};
use crate::trailers::Sentinel;
use crate::types::{ErrorBody, PinTypeFilter, Token, TrackerFilter};

/// Largest `POST /peers` body read (it is one small JSON object).
const MAX_JSON_BODY: usize = 1 << 20;

/// Which API a server answers behind the shared listener, auth and CORS machinery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum App {
    /// The IPFS Cluster REST API.
    Rest,
    /// The IPFS Pinning Service API.
    PinSvc,
}

/// What every request of a server shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) api: Arc<dyn ClusterApi>,
    pub(crate) policy: Arc<dyn RequestPolicy>,
    pub(crate) common: Common,
    pub(crate) sentinel: Sentinel,
    pub(crate) app: App,
}

impl Shared {
    /// An error in this API's error body: `{"code":..,"message":..}` for the REST API, a
    /// `Failure` for the Pinning Service API.
    pub(crate) fn error(&self, error: &ApiError) -> Response<ResBody> {
        match self.app {
            App::Rest => self.common.error(error),
            App::PinSvc => crate::pinsvc::failure(&self.common, error),
        }
    }
}

/// What every request of a connection shares.
pub(crate) struct ConnInfo {
    pub(crate) remote_addr: String,
    /// The libp2p peer of a libp2p-http connection.
    pub(crate) peer_id: Option<String>,
    pub(crate) tls: bool,
    pub(crate) client_cert_subject: Option<String>,
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
    let api = shared.config.api;
    // The span's target starts with `cairn`, so it is exported when tracing is on.
    let span = tracing::info_span!("api.request", api = api.name(), method = %method, route = tracing::field::Empty, status = tracing::field::Empty);
    let response = tracing::Instrument::instrument(serve(&shared, &conn, req, started), span.clone()).await;
    let status = response.status().as_u16();
    let route = match shared.app {
        App::Rest => crate::router::pattern(&method, &target),
        App::PinSvc => crate::pinsvc::pattern(&target),
    };
    span.record("route", route);
    span.record("status", status);
    if let Some(observer) = &shared.config.observer.0 {
        observer.observe(api, route, status, started.elapsed());
    }
    tracing::debug!(
        target: "cairn_api::access",
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
        return shared.error(&ApiError::bad_request("invalid URL escape in path"));
    };
    let raw_query = parts.uri.query().unwrap_or("");

    // 1. Preflights never reach authorization or the router.
    if let Some(preflight) = PreflightRequest::from_request(shared.config.api, &parts.method, &parts.headers) {
        let headers = shared.policy.preflight(&preflight).await;
        let mut response = bare(204, empty());
        append_policy_headers(response.headers_mut(), &headers);
        return response;
    }

    // 2. Authorization.
    let request = api_request(shared, conn, &parts, &path, raw_query);
    // Health checks come from monitors without credentials; a bare OPTIONS is a request like any.
    let open = (parts.method == Method::GET || parts.method == Method::HEAD) && path == "/health";
    if !open {
        match shared.policy.authorize(&request).await {
            RequestDecision::Allow(principal) => {
                tracing::trace!(principal = %principal, "request allowed");
            }
            RequestDecision::Deny(denial) => {
                return denial_response(shared, denial.status, &denial.reason, &denial.headers);
            }
        }
    }

    // 3. Actual-request CORS headers, added to whatever the request gets from here on.
    let cors = match header_str(&parts.headers, "origin") {
        Some(origin) => {
            let request =
                CorsRequest { api: shared.config.api, origin: origin.to_owned(), method: parts.method.to_string() };
            shared.policy.cors(&request).await
        }
        None => Vec::new(),
    };

    let mut response = route(shared, &parts, body, &path, raw_query, &request, started).await;
    append_policy_headers(response.headers_mut(), &cors);
    response
}

async fn route(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    path: &str,
    raw_query: &str,
    request: &ApiRequest,
    started: Instant,
) -> Response<ResBody> {
    let common = &shared.common;

    // 4. Redirects.
    if let Some(trimmed) = path.strip_suffix('/').filter(|t| !t.is_empty()) {
        let location = trailing_slash_location(parts.uri.path(), trimmed);
        return redirect(307, &with_query(&location, raw_query), &parts.method);
    }
    let clean = router::clean_path(path);
    if clean != path {
        let mut response = bare(301, empty());
        if let Ok(v) = HeaderValue::try_from(with_query(&escape_path(&clean), raw_query)) {
            response.headers_mut().insert(LOCATION, v);
        }
        return response;
    }

    if shared.app == App::PinSvc {
        return crate::pinsvc::route(shared, parts, body, path, raw_query, request, started).await;
    }

    // 5. The router.
    let route = match router::route(&parts.method, path) {
        Ok(route) => route,
        Err(NoRoute::NotFound) => return common.error(&ApiError::NotFound("not found".to_owned())),
        // gorilla/mux's default: the status and nothing else.
        Err(NoRoute::MethodNotAllowed) => return bare(405, empty()),
    };
    let query = Query::parse(raw_query);
    let api = &shared.api;
    let local = query.is_true("local");
    let read_deadline = (!shared.config.read_timeout.is_zero()).then(|| started + shared.config.read_timeout);
    // HTTP/1.0 has no chunked encoding, so no trailers.
    let sentinel = (parts.version != Version::HTTP_10).then_some(shared.sentinel);

    match route {
        Route::Id => common.result(api.id().await),
        Route::Version => common.result(api.version().await),
        Route::Peers => common.stream(api.peers(), sentinel).await,
        Route::PeerAdd => {
            #[derive(Deserialize)]
            struct PeerAddBody {
                #[serde(default)]
                peer_id: String,
            }
            let Ok(bytes) = read_body(body, MAX_JSON_BODY, read_deadline).await else {
                return common.error(&ApiError::bad_request("error decoding request body"));
            };
            // Go's json.Decoder reads the first value and ignores what follows.
            let mut values = serde_json::Deserializer::from_slice(&bytes).into_iter::<PeerAddBody>();
            let Some(Ok(add)) = values.next() else {
                return common.error(&ApiError::bad_request("error decoding request body"));
            };
            let Some(peer) = query::parse_peer_id(&add.peer_id) else {
                return common.error(&ApiError::bad_request("error decoding peer_id"));
            };
            common.result(api.peer_add(peer).await)
        }
        Route::PeerRemove(peer) => match query::parse_peer_id(peer) {
            None => common.error(&ApiError::bad_request(format!("error decoding Peer ID: invalid peer ID {peer:?}"))),
            Some(peer) => match api.peer_remove(peer).await {
                Ok(()) => common.no_content(204),
                Err(e) => common.error(&e),
            },
        },
        Route::Add => add(shared, parts, body, &query, read_deadline, sentinel).await,
        Route::Allocations => match PinTypeFilter::parse(query.get("filter")) {
            None => common.error(&ApiError::bad_request("invalid filter value")),
            Some(filter) => common.stream(api.allocations(filter), sentinel).await,
        },
        Route::Allocation(hash) => match cid_and_options(hash, &query) {
            Err(e) => common.error(&e),
            Ok((cid, _)) => common.result(api.allocation(cid).await),
        },
        Route::StatusAll => {
            let cids = query.get("cids");
            if !cids.is_empty() {
                match cids.split(',').map(query::parse_cid).collect::<Result<Vec<_>, _>>() {
                    Err(e) => common.error(&e),
                    Ok(cids) => common.stream(api.status_cids(cids, local), sentinel).await,
                }
            } else {
                match TrackerFilter::parse(query.get("filter")) {
                    None => common.error(&ApiError::bad_request("invalid filter value")),
                    Some(filter) => common.stream(api.status_all(filter, local), sentinel).await,
                }
            }
        }
        Route::Status(hash) => match cid_and_options(hash, &query) {
            Err(e) => common.error(&e),
            Ok((cid, _)) => common.result(api.status(cid, local).await),
        },
        Route::Recover(hash) => match cid_and_options(hash, &query) {
            Err(e) => common.error(&e),
            Ok((cid, _)) => common.result(api.recover(cid, local).await),
        },
        Route::RecoverAll => common.stream(api.recover_all(local), sentinel).await,
        // The mode of the query is honoured (IPFS Cluster forces recursive here; §10.3).
        Route::Pin(hash) => match cid_and_options(hash, &query) {
            Err(e) => common.error(&e),
            Ok((cid, options)) => common.result(api.pin(cid, options).await),
        },
        Route::PinPath(key_type, rest) => match path_and_options(key_type, rest, &query) {
            Err(e) => common.error(&e),
            Ok((path, options)) => common.result(api.pin_path(path, options).await),
        },
        Route::Unpin(hash) => match cid_and_options(hash, &query) {
            Err(e) => common.error(&e),
            Ok((cid, _)) => common.result(api.unpin(cid).await),
        },
        Route::UnpinPath(key_type, rest) => match path_and_options(key_type, rest, &query) {
            Err(e) => common.error(&e),
            Ok((path, _)) => common.result(api.unpin_path(path).await),
        },
        Route::RepoGc => common.result(api.ipfs_gc(local).await),
        Route::Graph => common.result(api.health_graph().await),
        Route::Alerts => common.result(api.alerts().await),
        Route::Bandwidth => common.result(api.bandwidth().await),
        Route::Metrics(name) => common.result(api.metrics(name.to_owned()).await),
        Route::MetricNames => common.result(api.metric_names().await),
        Route::Token => token(shared, request).await,
        Route::Health => match api.health().await {
            Ok(()) => common.no_content(204),
            Err(e) => common.error(&e),
        },
    }
}

/// Where a path ending in `/` is redirected: `trimmed` is the decoded path without that slash.
/// The client's own spelling (its escapes kept) when it is already clean; otherwise the clean
/// path, so `//evil.example/` goes to `/evil.example`, never to the scheme-relative
/// `//evil.example` (another site), and a backslash (`/\host`, which browsers read as `//host`)
/// is never sent raw.
fn trailing_slash_location(raw: &str, trimmed: &str) -> String {
    let clean = router::clean_path(trimmed);
    match raw.strip_suffix('/') {
        Some(raw_trimmed) if clean == trimmed && !raw_trimmed.contains('\\') => raw_trimmed.to_owned(),
        _ => escape_path(&clean),
    }
}

impl PreflightRequest {
    /// The CORS preflight a request is, if it is one: `OPTIONS` with a non-empty
    /// `Access-Control-Request-Method` (rs/cors's test). Every API server and the IPFS proxy
    /// recognise preflights this way.
    pub fn from_request(api: crate::Api, method: &Method, headers: &HeaderMap) -> Option<PreflightRequest> {
        if *method != Method::OPTIONS {
            return None;
        }
        let requested = header_str(headers, "access-control-request-method").filter(|v| !v.is_empty())?;
        Some(PreflightRequest {
            api,
            origin: header_str(headers, "origin").unwrap_or("").to_owned(),
            method: requested.to_owned(),
            headers: headers
                .get_all("access-control-request-headers")
                .iter()
                .flat_map(|v| {
                    String::from_utf8_lossy(v.as_bytes()).split(',').map(|h| h.trim().to_owned()).collect::<Vec<_>>()
                })
                .collect(),
        })
    }
}

/// `POST /token` (reference §1.7), the same on every API.
pub(crate) async fn token(shared: &Shared, request: &ApiRequest) -> Response<ResBody> {
    match shared.policy.issue_token(request).await {
        TokenDecision::Token(token) => shared.common.json(200, &Token { token }),
        TokenDecision::Deny(d) => denial_response(shared, d.status, &d.reason, &d.headers),
    }
}

/// `POST /add` (reference §1.6).
async fn add(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    query: &Query,
    read_deadline: Option<Instant>,
    sentinel: Option<Sentinel>,
) -> Response<ResBody> {
    let common = &shared.common;
    let boundary = match multipart::boundary(header_str(&parts.headers, "content-type")) {
        Ok(b) => b,
        Err(e) => return common.error(&e),
    };
    let params = match query::add_params_from_query(query) {
        Ok(p) => p,
        Err(e) => return common.error(&e),
    };
    let stream_channels = params.stream_channels;
    let body = multipart::deadline_stream(body.into_data_stream(), read_deadline);
    let request = match multipart::add_request(params, body, boundary, shared.config.add_limits).await {
        Ok(r) => r,
        Err(e) => return common.error(&e),
    };
    let mut outputs = shared.api.add(request);

    let mut response = if stream_channels {
        // The status goes out before the add runs; a failure only shows in the trailer.
        let mut response = bare(200, crate::response::ndjson(None, outputs, sentinel));
        common.set_headers(response.headers_mut());
        let headers = response.headers_mut();
        headers.insert("x-chunked-output", HeaderValue::from_static("1"));
        headers.insert(http::header::TRAILER, HeaderValue::from_static(crate::response::STREAM_ERROR));
        response
    } else {
        let mut all = Vec::new();
        let mut failure = None;
        while let Some(item) = outputs.next().await {
            match item {
                Ok(output) => all.push(output),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            // Buffered mode answers any failure with 500, as IPFS Cluster's adder does.
            Some(e) => common.json(500, &ErrorBody { code: 500, message: e.message().to_owned() }),
            None => common.json(200, &all),
        }
    };
    let headers = response.headers_mut();
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn cid_and_options(hash: &str, query: &Query) -> Result<(cairn_state::Cid, cairn_state::PinOptions), ApiError> {
    let cid = query::parse_cid(hash)?;
    Ok((cid, query::pin_options_from_query(query)?))
}

fn path_and_options(key_type: &str, rest: &str, query: &Query) -> Result<(String, cairn_state::PinOptions), ApiError> {
    let path = query::parse_ipfs_path(key_type, rest)?;
    Ok((path, query::pin_options_from_query(query)?))
}

/// Reads a whole (small) body within the size limit and the read deadline.
async fn read_body(body: Incoming, limit: usize, deadline: Option<Instant>) -> Result<Bytes, ()> {
    let collect = Limited::new(body, limit).collect();
    let collected = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, collect).await.map_err(|_| ())?,
        None => collect.await,
    };
    collected.map(|c| c.to_bytes()).map_err(|_| ())
}

/// The policy's view of the request.
fn api_request(shared: &Shared, conn: &ConnInfo, parts: &Parts, path: &str, raw_query: &str) -> ApiRequest {
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    ApiRequest {
        api: shared.config.api,
        method: parts.method.to_string(),
        path: path.to_owned(),
        query: raw_query.to_owned(),
        headers,
        remote_addr: conn.remote_addr.clone(),
        peer_id: conn.peer_id.clone(),
        tls: conn.tls,
        credentials: Credentials::from_authorization(header_str(&parts.headers, "authorization")),
        client_cert_subject: conn.client_cert_subject.clone(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A denial as IPFS Cluster's auth handler answers: the status, the denial's headers, the
/// configured headers and the API's error body. A status that is not an error status is a
/// policy bug and is answered 500.
fn denial_response(shared: &Shared, status: u16, reason: &str, headers: &[Header]) -> Response<ResBody> {
    let error = if (400..=599).contains(&status) {
        ApiError::Status { status, message: reason.to_owned() }
    } else {
        tracing::warn!(status, "request policy denied with a non-error status");
        ApiError::internal(format!("request denied with invalid status {status}"))
    };
    let mut response = shared.error(&error);
    append_policy_headers(response.headers_mut(), headers);
    response
}

/// Appends headers a policy returned, skipping (and logging) invalid ones.
fn append_policy_headers(target: &mut HeaderMap, headers: &[Header]) {
    for (name, value) in headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                target.append(name, value);
            }
            _ => tracing::warn!(header = %name, "request policy returned an invalid header; dropped"),
        }
    }
}

/// Go's `http.Redirect`: `Location`, and for GET a small HTML body.
fn redirect(status: u16, location: &str, method: &Method) -> Response<ResBody> {
    let body = if *method == Method::GET {
        full(format!("<a href=\"{}\">Temporary Redirect</a>.\n\n", html_escape(location)))
    } else {
        empty()
    };
    let mut response = bare(status, body);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::try_from(location) {
        headers.insert(LOCATION, v);
    }
    if *method == Method::GET || *method == Method::HEAD {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    }
    response
}

fn with_query(path: &str, raw_query: &str) -> String {
    if raw_query.is_empty() { path.to_owned() } else { format!("{path}?{raw_query}") }
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

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BasicCredentials;

    #[test]
    fn credentials_parse_like_go() {
        let basic = |s: &str| Credentials::from_authorization(Some(s));
        assert_eq!(
            basic("Basic dXNlcjpwYXNz"),
            Credentials::Basic(BasicCredentials { user: "user".into(), password: "pass".into() })
        );
        // Case-insensitive scheme; the password may hold colons.
        assert_eq!(
            basic("basic dTpwOnE="),
            Credentials::Basic(BasicCredentials { user: "u".into(), password: "p:q".into() })
        );
        assert_eq!(basic("Basic !!!"), Credentials::None);
        assert_eq!(basic("Basic dXNlcg=="), Credentials::None); // no colon
        assert_eq!(basic("bearer abc"), Credentials::Bearer("abc".into()));
        assert_eq!(basic("Bearer "), Credentials::Bearer(String::new()));
        assert_eq!(basic("Digest x"), Credentials::None);
        assert_eq!(Credentials::from_authorization(None), Credentials::None);
    }

    #[test]
    fn trailing_slash_redirects_stay_on_this_host() {
        // (raw path, decoded path without its trailing slash, Location)
        for (raw, trimmed, location) in [
            ("/pins/", "/pins", "/pins"),
            ("/pins/a%20b/", "/pins/a b", "/pins/a%20b"),
            ("//evil.example/", "//evil.example", "/evil.example"),
            ("/%2Fevil.example/", "//evil.example", "/evil.example"),
            ("/\\evil.example/", "/\\evil.example", "/%5Cevil.example"),
            ("/a/../b/", "/a/../b", "/b"),
            ("/../", "/..", "/"),
        ] {
            let got = trailing_slash_location(raw, trimmed);
            assert_eq!(got, location, "{raw}");
            assert!(!got.starts_with("//") && !got.starts_with("/\\"), "{raw} -> {got}");
        }
    }

    #[test]
    fn redirect_helpers() {
        assert_eq!(escape_path("/pins/a b"), "/pins/a%20b");
        assert_eq!(with_query("/pins", "a=1"), "/pins?a=1");
        assert_eq!(html_escape("<a&'\">"), "&lt;a&amp;&#39;&#34;&gt;");
    }
}
