//! `basic-auth`: IPFS Cluster's API authentication as an authorizer plugin.
//!
//! Config (the API section's keys): `basic_auth_credentials` — `null` or absent leaves
//! the API open, `{}` is a configuration error, otherwise a map user → password.
//! Beyond IPFS Cluster: `token_lifetime` (a Go duration such as `"24h"`; absent or
//! `"0s"` = tokens never expire, as in IPFS Cluster) adds `iat` and `exp` to issued tokens.
//!
//! Requests: only a real CORS preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) and `GET`/`HEAD /health` on the REST and Pinning Service
//! APIs pass without credentials (IPFS Cluster lets every `OPTIONS` through, which on the IPFS
//! proxy would reach the daemon). `Basic` credentials are compared in constant time (empty user
//! or password never match); `Bearer` tokens are JWTs signed with any HMAC algorithm by the
//! non-empty password of the user named in `iss`, with `exp`, `nbf` and `iat` checked only when
//! present. The 401 reasons and `WWW-Authenticate` headers are IPFS Cluster's. `POST /token`
//! issues an HS256 JWT with `iss` = the user, for `Basic` credentials only (IPFS Cluster also
//! re-issues for a token, which would let a token outlive `token_lifetime` forever).

mod duration;
mod jwt;

use std::collections::BTreeMap;

use cairn_policy_sdk::types::{Api, ApiRequest, BasicCredentials, Credentials, Denial, RequestDecision, TokenDecision};
use cairn_policy_sdk::{Authorizer, denial};
use serde::Deserialize;
use sha2::{Digest, Sha256};

const REALM: &str = "Restricted IPFS Cluster API";
/// Principal of requests on an open API or on the unauthenticated routes.
const ANONYMOUS: &str = "anonymous";

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    basic_auth_credentials: Option<BTreeMap<String, String>>,
    #[serde(default)]
    token_lifetime: Option<String>,
}

/// The configured users, or none for an open API.
pub struct BasicAuth {
    credentials: Option<BTreeMap<String, String>>,
    token_lifetime_secs: Option<u64>,
}

impl BasicAuth {
    fn now() -> f64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    }

    /// The user whose password signs `token`, if the token verifies. As with Basic, an empty
    /// user or password never authenticates.
    fn verify_bearer(credentials: &BTreeMap<String, String>, token: &str) -> Option<String> {
        let key_for = |issuer: &str| {
            if issuer.is_empty() {
                return None;
            }
            credentials.get(issuer).map(String::as_bytes)
        };
        jwt::verify(token, key_for, Self::now()).ok()
    }
}

/// Whether Basic credentials match a configured user; empty users and passwords never do.
fn basic_matches(credentials: &BTreeMap<String, String>, basic: &BasicCredentials) -> bool {
    !basic.user.is_empty()
        && !basic.password.is_empty()
        && credentials.get(&basic.user).is_some_and(|p| !p.is_empty() && secrets_equal(p, &basic.password))
}

/// A real CORS preflight: what a browser sends before a cross-origin request, never with
/// credentials. A bare `OPTIONS` is an ordinary request.
fn is_preflight(req: &ApiRequest) -> bool {
    let has = |name: &str| req.headers.iter().any(|(k, v)| k == name && !v.is_empty());
    req.method == "OPTIONS" && has("origin") && has("access-control-request-method")
}

/// A health check of the cluster peer itself. The IPFS proxy forwards `/health` to the IPFS
/// daemon, so it is not open there.
fn is_health_check(req: &ApiRequest) -> bool {
    req.path == "/health"
        && matches!(req.method.as_str(), "GET" | "HEAD")
        && matches!(req.api, Api::Restapi | Api::Pinsvcapi | Api::Libp2pHttp)
}

/// Password comparison that does not reveal, through its timing, how much of a guess matches:
/// the SHA-256 digests (equal length, so the length does not leak either) compared in constant
/// time.
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    constant_time_eq(&Sha256::digest(a.as_bytes()), &Sha256::digest(b.as_bytes()))
}

/// Byte comparison whose time depends only on the lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

fn unauthorized(reason: &str, challenges: &[String]) -> RequestDecision {
    RequestDecision::Deny(Denial {
        status: 401,
        reason: reason.to_string(),
        headers: challenges.iter().map(|c| ("www-authenticate".to_string(), c.clone())).collect(),
    })
}

fn challenge(scheme: &str, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("{scheme} realm=\"{REALM}\", error=\"{e}\""),
        None => format!("{scheme} realm=\"{REALM}\""),
    }
}

impl Authorizer for BasicAuth {
    fn from_config(config: &str) -> Result<Self, String> {
        let config: Option<Config> = serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))?;
        let config = config.unwrap_or_default();
        if config.basic_auth_credentials.as_ref().is_some_and(BTreeMap::is_empty) {
            return Err("basic_auth_credentials should be null or have at least one entry".into());
        }
        let token_lifetime_secs = match config.token_lifetime.as_deref() {
            None => None,
            Some(text) => match duration::parse_go_duration(text) {
                Ok(secs) if secs > 0.0 => Some(secs.ceil() as u64),
                Ok(_) => None,
                Err(e) => return Err(format!("token_lifetime: {e}")),
            },
        };
        Ok(BasicAuth { credentials: config.basic_auth_credentials, token_lifetime_secs })
    }

    fn authorize_request(&self, req: &ApiRequest) -> RequestDecision {
        let Some(credentials) = &self.credentials else {
            return RequestDecision::Allow(ANONYMOUS.into());
        };
        // Browsers send preflights without credentials; health checks come from monitors.
        if is_preflight(req) || is_health_check(req) {
            return RequestDecision::Allow(ANONYMOUS.into());
        }
        match &req.credentials {
            Credentials::Basic(basic) => {
                if basic_matches(credentials, basic) {
                    RequestDecision::Allow(basic.user.clone())
                } else {
                    unauthorized("unauthorized: access denied", &[challenge("Basic", None)])
                }
            }
            Credentials::Bearer(token) => match Self::verify_bearer(credentials, token) {
                Some(user) => RequestDecision::Allow(user),
                None => unauthorized("unauthorized: invalid token", &[challenge("Bearer", Some("invalid_token"))]),
            },
            Credentials::None => {
                unauthorized("unauthorized: no auth provided", &[challenge("Bearer", None), challenge("Basic", None)])
            }
        }
    }

    fn issue_token(&self, req: &ApiRequest) -> TokenDecision {
        let deny = || TokenDecision::Deny(denial(401, "unauthorized"));
        let Some(credentials) = &self.credentials else { return deny() };
        let basic = match &req.credentials {
            Credentials::Basic(basic) => basic,
            // A token minting a fresh token would extend `token_lifetime` without end.
            Credentials::Bearer(_) => {
                return TokenDecision::Deny(Denial {
                    status: 401,
                    reason: "unauthorized: tokens are issued for Basic credentials only".into(),
                    headers: vec![("www-authenticate".into(), challenge("Basic", None))],
                });
            }
            Credentials::None => return deny(),
        };
        // Checked here too: a host may ask without authorizing the request first.
        if !basic_matches(credentials, basic) {
            return deny();
        }
        let Some(password) = credentials.get(&basic.user) else { return deny() };
        let now = Self::now() as u64;
        let expiry = self.token_lifetime_secs.map(|lifetime| (now, now.saturating_add(lifetime)));
        TokenDecision::Token(jwt::sign_hs256(&basic.user, password.as_bytes(), expiry))
    }
}

cairn_policy_sdk::export_authorizer!(BasicAuth);

#[cfg(test)]
mod tests;
