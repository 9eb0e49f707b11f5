//! `basic-auth`: IPFS Cluster's API authentication as an authorizer plugin.
//!
//! Config (the API section's keys): `basic_auth_credentials` — `null` or absent leaves
//! the API open, `{}` is a configuration error, otherwise a map user → password.
//! Beyond IPFS Cluster: `token_lifetime` (a Go duration such as `"24h"`; absent or
//! `"0s"` = tokens never expire, as in IPFS Cluster) adds `iat` and `exp` to issued tokens.
//!
//! Requests: OPTIONS and `/health` pass; `Basic` credentials are compared as plain
//! strings (empty user or password never match); `Bearer` tokens are JWTs signed with
//! any HMAC algorithm by the password of the user named in `iss`, with `exp`, `nbf` and
//! `iat` checked only when present. The 401 reasons and `WWW-Authenticate` headers are
//! IPFS Cluster's. `POST /token` issues an HS256 JWT with `iss` = the user.

mod duration;
mod jwt;

use std::collections::BTreeMap;

use cairn_policy_sdk::types::{ApiRequest, Credentials, Denial, RequestDecision, TokenDecision};
use cairn_policy_sdk::{Authorizer, denial};
use serde::Deserialize;

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

    /// The user whose password signs `token`, if the token verifies.
    fn verify_bearer(&self, credentials: &BTreeMap<String, String>, token: &str) -> Option<String> {
        jwt::verify(token, |issuer| credentials.get(issuer).map(String::as_bytes), Self::now()).ok()
    }
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
        // CORS preflights and health checks never need credentials.
        if req.method == "OPTIONS" || req.path == "/health" {
            return RequestDecision::Allow(ANONYMOUS.into());
        }
        match &req.credentials {
            Credentials::Basic(basic) => {
                let ok = !basic.user.is_empty()
                    && !basic.password.is_empty()
                    && credentials.get(&basic.user).is_some_and(|p| *p == basic.password);
                if ok {
                    RequestDecision::Allow(basic.user.clone())
                } else {
                    unauthorized("unauthorized: access denied", &[challenge("Basic", None)])
                }
            }
            Credentials::Bearer(token) => match self.verify_bearer(credentials, token) {
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
        let issuer = match &req.credentials {
            Credentials::Basic(basic) => basic.user.clone(),
            Credentials::Bearer(token) => match self.verify_bearer(credentials, token) {
                Some(user) => user,
                None => return deny(),
            },
            Credentials::None => return deny(),
        };
        let Some(password) = credentials.get(&issuer) else { return deny() };
        let now = Self::now() as u64;
        let expiry = self.token_lifetime_secs.map(|lifetime| (now, now + lifetime));
        TokenDecision::Token(jwt::sign_hs256(&issuer, password.as_bytes(), expiry))
    }
}

cairn_policy_sdk::export_authorizer!(BasicAuth);

#[cfg(test)]
mod tests;
