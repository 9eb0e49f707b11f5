//! The reverse proxy (Go's `httputil.ReverseProxy` to a single host): everything the proxy does
//! not hijack goes to the daemon, the request body streamed up and the answer (chunked, NDJSON,
//! trailers and all) streamed back, never held whole.

use std::net::IpAddr;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{Piece, ResBody, proxy_error, streamed};
use crate::trailers::Sentinel;
use crate::upstream::{BoxError, ReqBody, Upstream};

/// Go's `hopHeaders`: meaningful for one connection only, never forwarded.
const HOP_HEADERS: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, and those the `Connection` header names. `Trailer` stays: unlike
/// Go's transport, hyper keeps it in the headers, and the client needs to know what follows.
fn strip_hop_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter_map(|name| HeaderName::try_from(name).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_HEADERS {
        headers.remove(name);
    }
}

/// The request to the daemon for a client's request: same method, path and query (as sent),
/// headers without hop-by-hop ones (plus `TE: trailers`), the body streamed.
/// `keep_host` keeps the client's `Host` (Go's reverse proxy does; its replays of `block/put`
/// and `dag/put` use the daemon's). `client_ip` goes into `X-Forwarded-For` (forwarded calls
/// only, as in Go, where the replays skip the reverse proxy).
pub(crate) fn upstream_request(
    upstream: &Upstream,
    parts: &Parts,
    path_and_query: &str,
    body: ReqBody,
    keep_host: bool,
    client_ip: Option<IpAddr>,
) -> Result<Request<ReqBody>, String> {
    let mut headers = parts.headers.clone();
    strip_hop_headers(&mut headers);
    // Always asked for, whatever the client said: Go daemons send trailers anyway, hyper-based
    // ones only when asked, and the proxy can pass them to any HTTP/1.1 client (trailers.rs).
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if !keep_host {
        headers.remove(HOST);
    }
    if let Some(ip) = client_ip {
        let prior: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let value = if prior.is_empty() { ip.to_string() } else { format!("{}, {ip}", prior.join(", ")) };
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert("x-forwarded-for", value);
        }
    }
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = upstream.uri(path_and_query)?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The client's body, failing once the read deadline (`read_timeout`) passes.
pub(crate) fn request_body(body: Incoming, deadline: Option<Instant>) -> ReqBody {
    let Some(deadline) = deadline else {
        return body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    };
    let frames = futures::stream::unfold(Some(BodyStream::new(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(frame))) => Some((Ok(frame), Some(body))),
            Ok(Some(Err(e))) => Some((Err(Box::new(e) as BoxError), None)),
            Ok(None) => None,
            Err(_) => Some((Err("request read timeout".into()), None)),
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// The daemon's body as pieces: data, then its trailers.
pub(crate) fn pieces(body: Incoming) -> impl Stream<Item = Result<Piece, BoxError>> + Send + 'static {
    BodyStream::new(body).flat_map(|frame| {
        let pieces: Vec<Result<Piece, BoxError>> = match frame {
            Err(e) => vec![Err(Box::new(e) as BoxError)],
            Ok(frame) => match frame.into_data() {
                Ok(data) => vec![Ok(Piece::Data(data))],
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => trailers
                        .iter()
                        .map(|(name, value)| {
                            Ok(Piece::Trailer(
                                canonical(name.as_str()),
                                String::from_utf8_lossy(value.as_bytes()).into_owned(),
                            ))
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                },
            },
        };
        futures::stream::iter(pieces)
    })
}

/// Go's canonical header spelling (`x-stream-error` → `X-Stream-Error`), which Go clients
/// reading trailers by exact key rely on.
pub(crate) fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
        upper = c == '-';
    }
    out
}

/// Whether trailers can follow this answer: an HTTP/1.1 client, a body of unknown length (so
/// chunked), and a method that has a body.
pub(crate) fn trailers_allowed(version: Version, method: &Method, headers: &HeaderMap) -> bool {
    version != Version::HTTP_10 && *method != Method::HEAD && !headers.contains_key(CONTENT_LENGTH)
}

/// Forwards a request and streams the answer back; a daemon that cannot be reached is answered
/// with 502, as Go's reverse proxy does (with a Kubo-style error body rather than none).
pub(crate) async fn forward(
    upstream: &Upstream,
    parts: &Parts,
    body: Incoming,
    read_deadline: Option<Instant>,
    client_ip: Option<IpAddr>,
    sentinel: Sentinel,
) -> Response<ResBody> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let request =
        match upstream_request(upstream, parts, path_and_query, request_body(body, read_deadline), true, client_ip) {
            Ok(request) => request,
            Err(e) => return proxy_error(502, &e),
        };
    match upstream.send(request).await {
        Ok(answer) => relay(answer, parts, sentinel),
        Err(e) => {
            tracing::error!("ipfsproxy: forwarding {} {}: {e}", parts.method, parts.uri.path());
            proxy_error(502, &e)
        }
    }
}

/// The daemon's answer as the client's: status, headers without hop-by-hop ones, body and
/// trailers streamed.
pub(crate) fn relay(answer: Response<Incoming>, request: &Parts, sentinel: Sentinel) -> Response<ResBody> {
    let (mut head, body) = answer.into_parts();
    strip_hop_headers(&mut head.headers);
    let sentinel = trailers_allowed(request.version, &request.method, &head.headers).then_some(sentinel);
    let mut response = Response::new(streamed(pieces(body), sentinel));
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    response
}

/// Bytes of a daemon body, for re-reading it (block/put, dag/put).
pub(crate) fn data_only(body: Incoming) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
    pieces(body).filter_map(|piece| async move {
        match piece {
            Ok(Piece::Data(data)) => Some(Ok(data)),
            Ok(Piece::Trailer(name, value)) => {
                // A daemon error after its 200: surface it like a broken stream.
                (name == "X-Stream-Error" && !value.is_empty()).then(|| Err(value.into()))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, X-Private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("trailer", HeaderValue::from_static("X-Stream-Error"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_headers(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["content-type", "trailer"]);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-stream-error"), "X-Stream-Error");
        assert_eq!(canonical("ETAG"), "Etag");
    }
}
