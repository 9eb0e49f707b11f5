//! The IPFS Pinning Service API (spec v1.0.0, `ipfs-pinning-service.yaml`; reference §2) on top
//! of [`crate::ClusterApi`], served by the same listeners, TLS, timeouts, auth and CORS as the
//! REST API ([`crate::serve_pinsvc`]). `POST /token` and `GET`/`HEAD /health` work as in the REST API.
//!
//! It follows the spec where IPFS Cluster does not (reference §2.2):
//! - request ids are unique per request, not the CID (an opaque base64url of the pin's CID and
//!   commit time); re-pinning or replacing gives a new id and retires the old one (404).
//!   Anything else that re-commits the pin (e.g. re-allocation after a peer failure) retires it
//!   too;
//! - `POST /pins` and `POST /pins/{requestid}` answer 202; a replace with the same CID re-pins
//!   it and does not unpin it;
//! - `GET /pins` lists only `pinned` by default, enforces `limit` 1–1000, answers bad queries
//!   with 400, lists newest first (so `before` pages), and keeps only `limit` entries in memory;
//! - every error body is a `Failure` with a code-like `reason` and the message in `details`
//!   (IPFS Cluster puts the message in `reason`), 401 included;
//! - a pin in the pinset that no allocated peer has started on is `queued`, not 404 as in IPFS
//!   Cluster, and only allocated peers decide the status;
//! - `delegates` are the allocated peers' IPFS addresses, else this peer's IPFS addresses,
//!   else (its IPFS node never answered) this cluster peer's own addresses: never empty;
//! - 404 and 405 carry `Failure` bodies; 405 also carries `Allow`.
//!
//! A request's body is at most [`MAX_BODY`] bytes (413 beyond). An empty query parameter counts
//! as absent.

mod list;
mod requestid;
#[cfg(test)]
mod tests;
pub mod types;
mod view;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use cairn_state::{Cid, Pin, PinMode, PinOptions, Timestamp, TrackerFilter};
use futures::StreamExt;
use http::header::{ALLOW, HeaderValue};
use http::request::Parts;
use http::{Method, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::time::Instant;

use self::list::{Entry, ListQuery, Newest};
use self::types::{Failure, PinResults, PinStatus, Status, reason_code};
use self::view::Described;
use crate::error::ApiError;
use crate::policy::ApiRequest;
use crate::query::Query;
use crate::response::{Common, ResBody};
use crate::service::{self, Shared};

/// Largest request body read: a `Pin` is small (a 255-character name, 20 origins and a string
/// map).
pub const MAX_BODY: usize = 1 << 20;
/// How much of an oversized body is still read and dropped before answering 413: a client that
/// is still sending when the connection closes would get a reset instead of the answer.
const DRAIN_LIMIT: usize = 8 << 20;
/// How long that draining may take.
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// The spec's limits on a `Pin`.
const MAX_NAME_CHARS: usize = 255;
const MAX_ORIGINS: usize = 20;
const MAX_META: usize = 1000;

/// An error as the spec's `Failure`, with the error's status.
pub(crate) fn failure(common: &Common, error: &ApiError) -> Response<ResBody> {
    let status = error.status();
    common.json(status, &Failure::new(reason_code(status), error.message()))
}

/// The routes of this API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    List,
    Add,
    Get(&'a str),
    Replace(&'a str),
    Delete(&'a str),
    Token,
    Health,
}

/// Why no route matched: 404, or 405 with the methods the path allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoRoute {
    NotFound,
    MethodNotAllowed(&'static str),
}

fn match_route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, NoRoute> {
    let wrong = |allow| Err(NoRoute::MethodNotAllowed(allow));
    match path {
        "/pins" => match *method {
            Method::GET => Ok(Route::List),
            Method::POST => Ok(Route::Add),
            _ => wrong("GET, POST"),
        },
        "/token" => {
            if *method == Method::POST {
                Ok(Route::Token)
            } else {
                wrong("POST")
            }
        }
        // HEAD as well as GET: monitors probe with HEAD, and both are open without credentials.
        "/health" => match *method {
            Method::GET | Method::HEAD => Ok(Route::Health),
            _ => wrong("GET, HEAD"),
        },
        _ => match path.strip_prefix("/pins/") {
            Some(id) if !id.is_empty() && !id.contains('/') => match *method {
                Method::GET => Ok(Route::Get(id)),
                Method::POST => Ok(Route::Replace(id)),
                Method::DELETE => Ok(Route::Delete(id)),
                _ => wrong("GET, POST, DELETE"),
            },
            _ => Err(NoRoute::NotFound),
        },
    }
}

/// The route pattern of a path, for metrics (`other` when none matches).
pub(crate) fn pattern(path: &str) -> &'static str {
    match path {
        "/pins" => "/pins",
        "/token" => "/token",
        "/health" => "/health",
        p if p.strip_prefix("/pins/").is_some_and(|id| !id.is_empty() && !id.contains('/')) => "/pins/{requestid}",
        _ => "other",
    }
}

/// Routes and answers one request (after auth, CORS and redirects, which [`service`] did).
pub(crate) async fn route(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    path: &str,
    raw_query: &str,
    request: &ApiRequest,
    started: Instant,
) -> Response<ResBody> {
    let route = match match_route(&parts.method, path) {
        Ok(route) => route,
        Err(NoRoute::NotFound) => return shared.error(&ApiError::NotFound(format!("no route for {path}"))),
        Err(NoRoute::MethodNotAllowed(allow)) => {
            let mut response = shared.error(&ApiError::Status {
                status: 405,
                message: format!("{} is not allowed on {path}; allowed: {allow}", parts.method),
            });
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
            return response;
        }
    };
    let read_deadline = (!shared.config.read_timeout.is_zero()).then(|| started + shared.config.read_timeout);
    let result = match route {
        Route::List => list(shared, raw_query).await,
        Route::Add => add(shared, parts, body, read_deadline).await,
        Route::Get(id) => get(shared, id).await,
        Route::Replace(id) => replace(shared, parts, body, id, read_deadline).await,
        Route::Delete(id) => delete(shared, id).await,
        Route::Token => return service::token(shared, request).await,
        Route::Health => shared.api.health().await.map(|()| shared.common.no_content(204)),
    };
    result.unwrap_or_else(|e| shared.error(&e))
}

/// `POST /pins`: pin it; 202 with its `PinStatus`.
async fn add(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    deadline: Option<Instant>,
) -> Result<Response<ResBody>, ApiError> {
    let bytes = read_body(parts, body, deadline).await?;
    let request = PinRequest::parse(&bytes)?;
    let pin = shared.api.pin(request.cid.clone(), request.options(None)).await?;
    Ok(shared.common.json(202, &describe_new(shared, &pin).await))
}

/// `GET /pins/{requestid}`: 200 with its `PinStatus`.
async fn get(shared: &Shared, id: &str) -> Result<Response<ResBody>, ApiError> {
    let pin = resolve(shared, id).await?;
    let gpi = shared.api.status(pin.cid.clone(), false).await?;
    let status = view::status_of(&gpi, &pin.allocations);
    let delegates = or_own(shared, view::delegates_of(&gpi, &pin.allocations)).await;
    Ok(shared.common.json(200, &described(&pin).status(status, delegates)))
}

/// `POST /pins/{requestid}`: pin the new CID as an update of the old one (it inherits its
/// allocations and replication), then unpin the old CID unless it is the same; 202 with the new
/// request's `PinStatus`.
async fn replace(
    shared: &Shared,
    parts: &Parts,
    body: Incoming,
    id: &str,
    deadline: Option<Instant>,
) -> Result<Response<ResBody>, ApiError> {
    requestid::decode(id).ok_or_else(invalid_id)?;
    let bytes = read_body(parts, body, deadline).await?;
    let request = PinRequest::parse(&bytes)?;
    let old = resolve(shared, id).await?;
    let pin = shared.api.pin(request.cid.clone(), request.options(Some(old.cid.clone()))).await?;
    let described = describe_new(shared, &pin).await;
    if pin.cid != old.cid {
        match shared.api.unpin(old.cid.clone()).await {
            Ok(_) => {}
            // Removed meanwhile: what the replace wanted anyway.
            Err(e) if e.status() == 404 => {}
            Err(e) => {
                return Err(ApiError::Status {
                    status: e.status(),
                    message: format!(
                        "the new pin was created (requestid {}) but the old pin {} could not be removed: {}",
                        described.requestid,
                        old.cid,
                        e.message()
                    ),
                });
            }
        }
    }
    Ok(shared.common.json(202, &described))
}

/// `DELETE /pins/{requestid}`: unpin; 202 with no body.
async fn delete(shared: &Shared, id: &str) -> Result<Response<ResBody>, ApiError> {
    let pin = resolve(shared, id).await?;
    match shared.api.unpin(pin.cid).await {
        Ok(_) => Ok(shared.common.no_content(202)),
        Err(e) if e.status() == 404 => Err(unknown_request()),
        Err(e) => Err(e),
    }
}

/// `GET /pins`: the filtered pin requests, newest first, at most `limit`, and how many matched.
async fn list(shared: &Shared, raw_query: &str) -> Result<Response<ResBody>, ApiError> {
    let query = ListQuery::parse(&Query::parse(raw_query))?;
    let mut statuses = match &query.cids {
        Some(cids) => shared.api.status_cids(cids.clone(), false),
        None => shared.api.status_all(TrackerFilter::default(), false),
    };
    let mut newest = Newest::new(query.limit);
    while let Some(gpi) = statuses.next().await {
        let gpi = gpi?;
        // No commit time: a status with no pin behind it (e.g. an unpin in flight), so no
        // request.
        if gpi.created == Timestamp::ZERO || !query.matches(&gpi) {
            continue;
        }
        let status = view::status_of(&gpi, &gpi.allocations);
        if query.wants(status) {
            newest.push(Entry { created: requestid::nanos(gpi.created), status, gpi });
        }
    }
    let count = newest.count;
    let mut own: Option<Vec<String>> = None;
    let mut results = Vec::new();
    for Entry { status, gpi, .. } in newest.into_newest_first() {
        let mut delegates = view::delegates_of(&gpi, &gpi.allocations);
        if delegates.is_empty() {
            if own.is_none() {
                own = Some(own_delegates(shared).await);
            }
            delegates = own.clone().unwrap_or_default();
        }
        let described = Described {
            cid: &gpi.cid,
            created: gpi.created,
            name: &gpi.name,
            origins: &gpi.origins,
            meta: &gpi.metadata,
        };
        results.push(described.status(status, delegates));
    }
    Ok(shared.common.json(200, &PinResults { count, results }))
}

fn invalid_id() -> ApiError {
    ApiError::bad_request("requestid: not a request id of this service")
}

fn unknown_request() -> ApiError {
    ApiError::NotFound("no pin request with this requestid (it was removed or replaced)".to_owned())
}

/// The pin a request id names, if it is still that request: the pin of its CID, committed at
/// its time.
async fn resolve(shared: &Shared, id: &str) -> Result<Pin, ApiError> {
    let (cid, created) = requestid::decode(id).ok_or_else(invalid_id)?;
    match shared.api.allocation(cid).await {
        Ok(pin) if requestid::nanos(pin.timestamp) == created => Ok(pin),
        Ok(_) => Err(unknown_request()),
        Err(e) if e.status() == 404 => Err(unknown_request()),
        Err(e) => Err(e),
    }
}

fn described(pin: &Pin) -> Described<'_> {
    Described {
        cid: &pin.cid,
        created: pin.timestamp,
        name: &pin.options.name,
        origins: &pin.options.origins,
        meta: &pin.options.metadata,
    }
}

/// The `PinStatus` of a pin just committed. The pin exists whatever the status call says, so a
/// failing status call makes it `queued` rather than failing the request.
async fn describe_new(shared: &Shared, pin: &Pin) -> PinStatus {
    let (status, delegates) = match shared.api.status(pin.cid.clone(), false).await {
        Ok(gpi) => (view::status_of(&gpi, &pin.allocations), view::delegates_of(&gpi, &pin.allocations)),
        Err(e) => {
            tracing::warn!(cid = %pin.cid, "pinning service: status after pin: {}", e.message());
            (Status::Queued, Vec::new())
        }
    };
    let delegates = or_own(shared, delegates).await;
    described(pin).status(status, delegates)
}

/// The delegates, or this peer's IPFS addresses when there are none.
async fn or_own(shared: &Shared, delegates: Vec<String>) -> Vec<String> {
    if delegates.is_empty() { own_delegates(shared).await } else { delegates }
}

async fn own_delegates(shared: &Shared) -> Vec<String> {
    match shared.api.id().await {
        Ok(id) => view::delegates_of_id(&id),
        Err(e) => {
            tracing::warn!("pinning service: no delegates: {}", e.message());
            Vec::new()
        }
    }
}

/// The body of `POST /pins` and `POST /pins/{requestid}`: the spec's `Pin`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PinRequest {
    cid: Cid,
    name: String,
    origins: Vec<String>,
    meta: BTreeMap<String, String>,
}

impl PinRequest {
    /// Parses and checks a `Pin`; the 400 messages name the field. Unknown fields are ignored;
    /// `null` is an absent optional field.
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request(m);
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("request body is not valid JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(bad("request body must be a JSON object (a Pin)".to_owned()));
        };
        let cid = match fields.remove("cid") {
            None | Some(Value::Null) => return Err(bad("cid: required".to_owned())),
            Some(Value::String(s)) => Cid::parse(&s).map_err(|e| bad(format!("cid: {e}")))?,
            Some(_) => return Err(bad("cid: must be a string".to_owned())),
        };
        let name = match fields.remove("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.chars().count() > MAX_NAME_CHARS => {
                return Err(bad(format!("name: longer than {MAX_NAME_CHARS} characters")));
            }
            Some(Value::String(s)) => s,
            Some(_) => return Err(bad("name: must be a string".to_owned())),
        };
        let origins = match fields.remove("origins") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_ORIGINS {
                    return Err(bad(format!("origins: more than {MAX_ORIGINS} multiaddrs")));
                }
                let mut origins: Vec<String> = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let Value::String(s) = item else {
                        return Err(bad(format!("origins[{i}]: must be a string")));
                    };
                    let origin = origin(&s).map_err(|why| bad(format!("origins[{i}]: {why}")))?;
                    if origins.contains(&origin) {
                        return Err(bad(format!("origins[{i}]: {s:?} is given twice")));
                    }
                    origins.push(origin);
                }
                origins
            }
            Some(_) => return Err(bad("origins: must be an array of multiaddr strings".to_owned())),
        };
        let meta = match fields.remove("meta") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(entries)) => {
                if entries.len() > MAX_META {
                    return Err(bad(format!("meta: more than {MAX_META} entries")));
                }
                let mut meta = BTreeMap::new();
                for (k, v) in entries {
                    let Value::String(v) = v else {
                        return Err(bad(format!("meta.{k}: must be a string")));
                    };
                    meta.insert(k, v);
                }
                meta
            }
            Some(_) => return Err(bad("meta: must be an object of string values".to_owned())),
        };
        Ok(Self { cid, name, origins, meta })
    }

    /// The cluster pin's options: recursive, the cluster's default replication, the name, the
    /// origins, the meta as metadata, and the pin it replaces.
    fn options(&self, pin_update: Option<Cid>) -> PinOptions {
        PinOptions {
            name: self.name.clone(),
            mode: PinMode::Recursive,
            metadata: self.meta.clone(),
            origins: self.origins.clone(),
            pin_update,
            ..PinOptions::default()
        }
    }
}

/// An origin in canonical form; it must end in `/p2p/<peer id>`, as the spec says.
fn origin(s: &str) -> Result<String, String> {
    let addr = multiaddr::Multiaddr::from_str(s).map_err(|e| format!("{s:?} is not a multiaddr: {e}"))?;
    if !matches!(addr.iter().last(), Some(multiaddr::Protocol::P2p(_))) {
        return Err(format!("{s:?} does not end with /p2p/<peer id>"));
    }
    Ok(addr.to_string())
}

/// Reads a small body: 413 beyond [`MAX_BODY`], 400 when it cannot be read in time.
async fn read_body(parts: &Parts, body: Incoming, deadline: Option<Instant>) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::Status { status: 413, message: format!("request body larger than {MAX_BODY} bytes") };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Too big to drain: answer now; hyper closes the connection.
    if declared.is_some_and(|n| n > (MAX_BODY + DRAIN_LIMIT) as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut data = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            if let Ok(chunk) = frame.into_data() {
                if data.len() + chunk.len() > MAX_BODY {
                    return Ok(false);
                }
                data.extend_from_slice(&chunk);
            }
        }
        Ok(true)
    };
    let complete = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| ApiError::bad_request("reading the request body: read timeout"))?,
        None => read.await,
    }?;
    if complete {
        return Ok(data.into());
    }
    let mut drained = 0usize;
    let drain = async {
        while drained <= DRAIN_LIMIT
            && let Some(Ok(frame)) = body.frame().await
        {
            drained += frame.data_ref().map_or(0, Bytes::len);
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Err(too_large())
}
