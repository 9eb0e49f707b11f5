//! CORS policy that reproduces IPFS Cluster v1.1.6's REST API and Pinning Service API
//! CORS behaviour, which is the Go library rs/cors v1.11.1 configured from the API
//! section's `cors_*` keys (`api/common/config.go`, `CorsOptions()`).
//!
//! Config: the API section as a JSON object, e.g.
//!
//! ```json
//! {"cors_allowed_origins":["*"],"cors_allowed_methods":["GET"],"cors_allowed_headers":[],
//!  "cors_exposed_headers":["Content-Type","X-Stream-Output","X-Chunked-Output","X-Content-Length"],
//!  "cors_allow_credentials":true,"cors_max_age":"0s"}
//! ```
//!
//! Every list falls back to rs/cors's default when it is missing, `null` *or empty*
//! (rs/cors tests `len(list) == 0`, so `[]` and nil behave the same):
//! origins → all (`*`); methods → `GET`, `POST`, `HEAD`; request headers → `accept`,
//! `content-type`, `x-requested-with` (`Origin` is not implicitly allowed in v1.11.1);
//! exposed headers → none. Credentials default to false, `cors_max_age` to `"0s"`.
//!
//! Headers come back with lower-case names, values exactly as rs/cors writes them.
//! rs/cors sets one `Vary` field value per response path, so we return one `vary` header:
//! `Origin, Access-Control-Request-Method, Access-Control-Request-Headers` on preflights
//! (even rejected ones) and `Origin` on actual requests (even rejected ones).

mod config;
mod goduration;
mod gostr;

use cairn_policy_sdk::Cors;
use cairn_policy_sdk::types::{CorsRequest, Header, PreflightRequest};

pub use config::{KEY_CREDENTIALS, KEY_EXPOSED, KEY_HEADERS, KEY_MAX_AGE, KEY_METHODS, KEY_ORIGINS, RawConfig};

/// `Vary` value rs/cors puts on every preflight answer (`preflightVary`, cors.go:234;
/// IPFS Cluster never enables `AllowPrivateNetwork`, so that variant is not needed).
pub const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
/// `Vary` value rs/cors puts on every actual response (`headerVaryOrigin`, cors.go:33).
pub const ACTUAL_VARY: &str = "Origin";

/// rs/cors's `maxOWSBytes`: optional whitespace tolerated around each requested header name.
const MAX_OWS_BYTES: usize = 1;
/// rs/cors's `maxEmptyElements`: empty list elements tolerated in `Access-Control-Request-Headers`.
const MAX_EMPTY_ELEMENTS: usize = 16;

/// Which origins may make cross-origin requests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    /// The list was empty/nil or contained `*`: `Access-Control-Allow-Origin: *`.
    All,
    /// Lower-cased plain origins, and one-`*` patterns split around the first `*`.
    Listed { exact: Vec<String>, wildcards: Vec<Wildcard> },
}

/// An origin pattern with one `*` standing for zero or more characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wildcard {
    prefix: String,
    suffix: String,
}

impl Wildcard {
    /// rs/cors `wildcard.match` (utils.go:12): length check first, so `*` never
    /// lets the prefix and suffix overlap (`foo*oof` does not match `foof`).
    fn matches(&self, s: &str) -> bool {
        s.len() >= self.prefix.len() + self.suffix.len() && s.starts_with(&self.prefix) && s.ends_with(&self.suffix)
    }
}

/// Which request headers a preflight may announce.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHeaders {
    /// The list contained a literal `*`.
    All,
    /// Lower-cased, sorted, de-duplicated names (rs/cors `internal.SortedSet`).
    Set { names: Vec<String>, max_len: usize },
}

impl AllowedHeaders {
    fn set(mut names: Vec<String>) -> Self {
        // Byte-wise order, as Go's sort.Strings; positions in this order decide
        // whether the request's names come sorted (see `accepts`).
        names.sort_unstable();
        names.dedup();
        let max_len = names.iter().map(String::len).max().unwrap_or(0);
        AllowedHeaders::Set { names, max_len }
    }

    /// rs/cors `SortedSet.Accepts` (internal/sortedset.go:60), applied to the values
    /// the host split from `Access-Control-Request-Headers`.
    ///
    /// Matching is byte-exact against the lower-cased config: browsers send lower-case
    /// names (Fetch standard), and rs/cors v1.11.1 does not lower-case the request side,
    /// so `X-Foo` is refused even when `x-foo` is allowed. Names must also arrive
    /// sorted and without duplicates (as browsers send them), each with at most one byte
    /// of surrounding space/tab, and at most 16 empty elements are tolerated.
    fn accepts(&self, values: &[String]) -> bool {
        let (names, max_len) = match self {
            AllowedHeaders::All => return true,
            AllowedHeaders::Set { names, max_len } => (names, *max_len),
        };
        // rs/cors only looks for a comma within this many leading bytes, so a name
        // longer than any allowed one swallows the rest of the value and fails lookup.
        let window = MAX_OWS_BYTES + max_len + MAX_OWS_BYTES + 1;
        let mut last_pos: Option<usize> = None;
        let mut empty = 0usize;
        for value in values {
            let mut s = value.as_str();
            loop {
                let (name, rest, comma) = cut_at_comma(s, window);
                s = rest;
                let Some(name) = trim_ows(name, MAX_OWS_BYTES) else {
                    return false;
                };
                if name.is_empty() {
                    empty += 1;
                    if empty > MAX_EMPTY_ELEMENTS {
                        return false;
                    }
                    if !comma {
                        break;
                    }
                    continue;
                }
                let Ok(pos) = names.binary_search_by(|n| n.as_str().cmp(name)) else {
                    return false;
                };
                if last_pos.is_some_and(|l| pos <= l) {
                    return false;
                }
                last_pos = Some(pos);
                if !comma {
                    break;
                }
            }
        }
        true
    }
}

/// rs/cors `cutAtComma`: split at the first comma among the first `n` bytes.
fn cut_at_comma(s: &str, n: usize) -> (&str, &str, bool) {
    let end = s.len().min(n);
    match s.as_bytes()[..end].iter().position(|&b| b == b',') {
        // A comma is ASCII, so both sides are on char boundaries.
        Some(i) => (&s[..i], &s[i + 1..], true),
        None => (s, "", false),
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// rs/cors `trimOWS`: `None` when more than `n` bytes of OWS sit on either side.
fn trim_ows(s: &str, n: usize) -> Option<&str> {
    if s.is_empty() {
        return Some(s);
    }
    let mut t = s;
    // Right side first, as rs/cors does. The `i > n` test comes before looking at the
    // byte, so exactly n+1 trimmed bytes with text left over is already a failure.
    let mut i = 0;
    while let Some(&last) = t.as_bytes().last() {
        if i > n {
            return None;
        }
        if !is_ows(last) {
            break;
        }
        t = &t[..t.len() - 1];
        i += 1;
    }
    let mut i = 0;
    while let Some(&first) = t.as_bytes().first() {
        if i > n {
            return None;
        }
        if !is_ows(first) {
            break;
        }
        t = &t[1..];
        i += 1;
    }
    Some(t)
}

/// The CORS policy: rs/cors v1.11.1 as IPFS Cluster v1.1.6 configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Origins,
    allowed_headers: AllowedHeaders,
    /// Case-sensitive, as in rs/cors v1.11.1 (`"get"` does not allow `GET`).
    allowed_methods: Vec<String>,
    /// Pre-joined `Access-Control-Expose-Headers` value, if any.
    exposed_headers: Option<String>,
    allow_credentials: bool,
    /// Pre-rendered `Access-Control-Max-Age` value; `None` sends no header.
    max_age: Option<String>,
}

impl CorsPolicy {
    /// Build the policy from decoded keys: IPFS Cluster's validation of `cors_max_age`,
    /// then rs/cors `New` (cors.go:140) with its defaults.
    pub fn from_raw(raw: RawConfig) -> Result<Self, String> {
        // IPFS Cluster: an empty/missing `cors_max_age` means "0s" (config.go:275), a
        // parse error fails loading (config/util.go ParseDurations) and a negative
        // duration fails Validate ("<section>.cors_max_age is invalid", config.go:187).
        let max_age_text = if raw.max_age.is_empty() { "0s" } else { raw.max_age.as_str() };
        let nanos = goduration::parse(max_age_text).map_err(|e| format!("error parsing {KEY_MAX_AGE}: {e}"))?;
        if nanos < 0 {
            return Err(format!("{KEY_MAX_AGE} is invalid: negative duration {max_age_text:?}"));
        }
        // `int(cfg.CORSMaxAge / time.Second)`: truncating, so "300ms" and "0s" give 0,
        // and rs/cors sends Access-Control-Max-Age only for a positive value.
        let secs = nanos / 1_000_000_000;
        let max_age = (secs > 0).then(|| secs.to_string());

        let origins = match raw.allowed_origins {
            None => Origins::All,
            Some(list) if list.is_empty() => Origins::All,
            Some(list) => {
                let mut exact = Vec::new();
                let mut wildcards = Vec::new();
                let mut all = false;
                for origin in &list {
                    // rs/cors lower-cases configured origins (and the request origin),
                    // deliberately ignoring the spec's case-sensitive comparison.
                    let origin = gostr::lower(origin);
                    if origin == "*" {
                        all = true;
                        break;
                    } else if let Some(i) = origin.find('*') {
                        // Only the first `*` is a wildcard; any later one is literal.
                        wildcards
                            .push(Wildcard { prefix: origin[..i].to_string(), suffix: origin[i + 1..].to_string() });
                    } else {
                        exact.push(origin);
                    }
                }
                if all { Origins::All } else { Origins::Listed { exact, wildcards } }
            }
        };

        let allowed_headers = match raw.allowed_headers {
            Some(list) if !list.is_empty() => {
                // The `*` test is on the configured spelling, before lower-casing.
                if list.iter().any(|h| h == "*") {
                    AllowedHeaders::All
                } else {
                    AllowedHeaders::set(list.iter().map(|h| gostr::lower(h)).collect())
                }
            }
            _ => AllowedHeaders::set(vec![
                "accept".to_string(),
                "content-type".to_string(),
                "x-requested-with".to_string(),
            ]),
        };

        let allowed_methods = match raw.allowed_methods {
            Some(list) if !list.is_empty() => list,
            _ => vec!["GET".to_string(), "POST".to_string(), "HEAD".to_string()],
        };

        let exposed_headers = match raw.exposed_headers {
            Some(list) if !list.is_empty() => {
                Some(list.iter().map(|h| gostr::canonical_header_key(h)).collect::<Vec<_>>().join(", "))
            }
            _ => None,
        };

        Ok(CorsPolicy {
            origins,
            allowed_headers,
            allowed_methods,
            exposed_headers,
            allow_credentials: raw.allow_credentials,
            max_age,
        })
    }

    /// rs/cors `isOriginAllowed` (cors.go:462) for the list-based configuration.
    fn origin_allowed(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::All => true,
            Origins::Listed { exact, wildcards } => {
                let origin = gostr::lower(origin);
                exact.contains(&origin) || wildcards.iter().any(|w| w.matches(&origin))
            }
        }
    }

    /// rs/cors `isMethodAllowed` (cors.go:485).
    fn method_allowed(&self, method: &str) -> bool {
        // Unreachable with defaults applied (an empty list becomes GET/POST/HEAD), kept
        // so the rule reads like rs/cors: no methods means nothing, not even OPTIONS.
        if self.allowed_methods.is_empty() {
            return false;
        }
        // A non-preflight OPTIONS request is always allowed.
        method == "OPTIONS" || self.allowed_methods.iter().any(|m| m == method)
    }

    /// `Access-Control-Allow-Origin` value: a literal `*` when all origins are allowed,
    /// even with credentials (browsers then refuse credentialed requests; rs/cors does
    /// not special-case it), otherwise the request's `Origin` as sent (not lower-cased).
    fn allow_origin_value(&self, origin: &str) -> String {
        match self.origins {
            Origins::All => "*".to_string(),
            Origins::Listed { .. } => origin.to_string(),
        }
    }
}

fn header(name: &str, value: impl Into<String>) -> Header {
    (name.to_string(), value.into())
}

impl Cors for CorsPolicy {
    fn from_config(config: &str) -> Result<Self, String> {
        CorsPolicy::from_raw(RawConfig::from_json(config)?)
    }

    /// rs/cors `handlePreflight` (cors.go:329). Any failed check returns only the Vary
    /// header, which the browser reads as a refusal; the host answers 204 regardless.
    fn preflight(&self, req: &PreflightRequest) -> Vec<Header> {
        let mut out = Vec::with_capacity(6);
        // Set before any check: caches must key on these even for refusals.
        out.push(header("vary", PREFLIGHT_VARY));
        if req.origin.is_empty() || !self.origin_allowed(&req.origin) {
            return out;
        }
        if !self.method_allowed(&req.method) {
            return out;
        }
        // rs/cors checks headers only when Access-Control-Request-Headers is present;
        // an empty list is our only signal for "absent".
        let found = !req.headers.is_empty();
        if found && !self.allowed_headers.accepts(&req.headers) {
            return out;
        }
        out.push(header("access-control-allow-origin", self.allow_origin_value(&req.origin)));
        // rs/cors echoes the requested method rather than listing every allowed one.
        out.push(header("access-control-allow-methods", req.method.as_str()));
        // rs/cors echoes the raw request header; browsers send names joined by a bare
        // comma, so joining the host's split values with "," gives back the same bytes.
        // An empty raw value gets no Allow-Headers.
        if found {
            let echoed = req.headers.join(",");
            if !echoed.is_empty() {
                out.push(header("access-control-allow-headers", echoed));
            }
        }
        if self.allow_credentials {
            out.push(header("access-control-allow-credentials", "true"));
        }
        if let Some(max_age) = &self.max_age {
            out.push(header("access-control-max-age", max_age.as_str()));
        }
        out
    }

    /// rs/cors `handleActualRequest` (cors.go:400). A refused origin or method gets
    /// only `Vary: Origin`; the response itself is still served by the host.
    fn actual(&self, req: &CorsRequest) -> Vec<Header> {
        let mut out = Vec::with_capacity(4);
        out.push(header("vary", ACTUAL_VARY));
        if req.origin.is_empty() || !self.origin_allowed(&req.origin) {
            return out;
        }
        // Not required by the CORS spec for simple requests; rs/cors does it anyway.
        if !self.method_allowed(&req.method) {
            return out;
        }
        out.push(header("access-control-allow-origin", self.allow_origin_value(&req.origin)));
        if let Some(exposed) = &self.exposed_headers {
            out.push(header("access-control-expose-headers", exposed.as_str()));
        }
        if self.allow_credentials {
            out.push(header("access-control-allow-credentials", "true"));
        }
        out
    }
}

cairn_policy_sdk::export_cors!(CorsPolicy);

#[cfg(test)]
mod tests;
