//! The headers of hijacked answers (reference §3.3): the proxy answers in the daemon's name, so a
//! browser must see the CORS headers the daemon itself would have sent.
//!
//! In IPFS Cluster's order: (1) the CORS headers of the daemon's answer to a preflight for the
//! same path, origin and method; (2) headers learnt from one `POST extract_headers_path`, cached
//! for `extract_headers_ttl`; (3) the proxy's own `Content-Type` and `Server`.

use std::sync::Mutex;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, ORIGIN, SERVER};
use http::{HeaderMap, Method};
use tokio::time::Instant;

use crate::error::ProxyError;
use crate::upstream::Upstream;

/// The `Server` header of hijacked answers. Cairn's own name rather than IPFS Cluster's
/// `ipfs-cluster/ipfsproxy/<version>`: nothing parses it, and it should not claim to be Go code.
pub(crate) const SERVER_NAME: &str = concat!("cairn/ipfsproxy/", env!("CARGO_PKG_VERSION"));

/// Copied from the daemon's answer to the preflight (IPFS Cluster's `corsHeaders`).
const CORS_HEADERS: [&str; 3] = ["access-control-allow-origin", "vary", "access-control-allow-credentials"];

/// Always extracted, before `extract_headers_extra` (IPFS Cluster's `extractHeadersDefault`).
const EXTRACT_DEFAULT: &str = "access-control-expose-headers";

/// The extracted headers and when they were learnt.
struct Learnt {
    at: Instant,
    headers: HeaderMap,
}

/// Builds the headers of hijacked answers.
pub(crate) struct HijackHeaders {
    names: Vec<HeaderName>,
    path: String,
    ttl: Duration,
    learnt: Mutex<Option<Learnt>>,
}

impl HijackHeaders {
    /// Checks the extract configuration.
    pub(crate) fn new(extra: &[String], path: &str, ttl: Duration) -> Result<Self, ProxyError> {
        let mut names = vec![HeaderName::from_static(EXTRACT_DEFAULT)];
        for name in extra {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| ProxyError::Config(format!("extract_headers_extra: {name:?} is not a header name")))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(ProxyError::Config(format!("extract_headers_path: {path:?} is not an absolute URL path")));
        }
        Ok(Self { names, path: path.to_owned(), ttl, learnt: Mutex::new(None) })
    }

    /// The headers of a hijacked answer to `method` on `path` (the raw request path) from a
    /// client that sent `request_headers`. A daemon that does not answer only costs headers.
    pub(crate) async fn for_request(
        &self,
        upstream: &Upstream,
        method: &Method,
        path: &str,
        request_headers: &HeaderMap,
    ) -> HeaderMap {
        let mut out = HeaderMap::new();
        self.cors(upstream, method, path, request_headers, &mut out).await;
        let learnt = self.extracted(upstream).await;
        for name in learnt.keys() {
            // Go assigns `dest[h] = values`: a learnt header replaces a CORS one of that name.
            out.remove(name);
            for value in learnt.get_all(name) {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        out.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
        out
    }

    /// Step 1: an `OPTIONS` to the daemon at the same path with the client's `Origin` and
    /// `Access-Control-Request-Method: <method>`.
    async fn cors(&self, upstream: &Upstream, method: &Method, path: &str, request: &HeaderMap, out: &mut HeaderMap) {
        let mut headers = HeaderMap::new();
        for origin in request.get_all(ORIGIN) {
            headers.append(ORIGIN, origin.clone());
        }
        if let Ok(value) = HeaderValue::try_from(method.as_str()) {
            headers.insert("access-control-request-method", value);
        }
        match upstream.call(Method::OPTIONS, path, headers).await {
            Ok(response) => {
                for name in CORS_HEADERS {
                    for value in response.headers().get_all(name) {
                        out.append(name, value.clone());
                    }
                }
            }
            Err(e) => tracing::error!("ipfsproxy: CORS headers from the IPFS daemon: {e}"),
        }
    }

    /// Step 2: the learnt headers, asked again once the TTL is over. A failed ask is not
    /// cached (IPFS Cluster caches the empty result for a whole TTL), so headers come back as
    /// soon as the daemon does; meanwhile stale values are better than none.
    async fn extracted(&self, upstream: &Upstream) -> HeaderMap {
        let stale = {
            let learnt = self.learnt.lock().unwrap_or_else(|p| p.into_inner());
            match &*learnt {
                Some(l) if self.ttl.is_zero() || l.at.elapsed() < self.ttl => return l.headers.clone(),
                Some(l) => l.headers.clone(),
                None => HeaderMap::new(),
            }
        };
        match upstream.call(Method::POST, &self.path, HeaderMap::new()).await {
            Ok(response) => {
                let mut headers = HeaderMap::new();
                for name in &self.names {
                    for value in response.headers().get_all(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
                *self.learnt.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Learnt { at: Instant::now(), headers: headers.clone() });
                headers
            }
            Err(e) => {
                tracing::error!("ipfsproxy: extracting headers from the IPFS daemon: {e}");
                stale
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        assert!(HijackHeaders::new(&["X-Ipfs-Gateway".into()], "/api/v0/version", Duration::ZERO).is_ok());
        assert!(HijackHeaders::new(&["bad header".into()], "/api/v0/version", Duration::ZERO).is_err());
        assert!(HijackHeaders::new(&[], "api/v0/version", Duration::ZERO).is_err());
        let h = HijackHeaders::new(&["access-control-expose-headers".into(), "X-A".into()], "/v", Duration::ZERO)
            .expect("ok");
        assert_eq!(h.names, [HeaderName::from_static(EXTRACT_DEFAULT), HeaderName::from_static("x-a")]);
    }
}
