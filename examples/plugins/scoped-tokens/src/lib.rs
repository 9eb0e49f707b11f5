//! `scoped-tokens`: an example Cairn API authorizer with per-user roles and expiring,
//! role-scoped bearer tokens.
//!
//! Every configured user has a password and one role:
//!
//! - `reader` may read: `GET`, `HEAD`, `OPTIONS` (and the IPFS proxy's read calls);
//! - `pinner` may also pin: `POST`/`PUT` on `/pins`, `/pins/...` and `/add` (the proxy's
//!   `add`, `pin/add`, `pin/update`), but not unpin;
//! - `admin` may do everything, unpinning and the cluster's admin endpoints included.
//!
//! Users authenticate with Basic credentials, or with a bearer token from `POST /token`: an
//! HS256 JWT, signed with `token_secret`, that carries the user, the role and an expiry. A
//! token stops working when it expires, when its user is removed from the config, or when
//! the user's role changes. See the README for the config.

mod token;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_policy_sdk::types::{Api, ApiRequest, Credentials, Denial, RequestDecision, TokenDecision};
use cairn_policy_sdk::{Authorizer, denial};
use serde::Deserialize;

use token::{Claims, TokenError};

/// The realm named in `WWW-Authenticate` challenges.
const REALM: &str = "cairn";
/// Principal of the requests that need no credentials.
const ANONYMOUS: &str = "anonymous";
/// Shortest `token_secret` accepted: HS256 wants a key of at least its output size.
const MIN_SECRET_LEN: usize = 32;
/// Token lifetime when the config sets none: one hour.
const DEFAULT_LIFETIME_SECS: u64 = 3600;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Pinner,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Pinner => "pinner",
            Role::Admin => "admin",
        }
    }

    fn may(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Pinner => matches!(action, Action::Read | Action::Pin | Action::Token),
            Role::Reader => matches!(action, Action::Read | Action::Token),
        }
    }
}

/// What a request does, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Pin,
    Unpin,
    /// Anything else: peers, recovery of the whole cluster, the proxy's other calls, ...
    Admin,
    /// `POST /token`: every authenticated user may ask for a token of their own role.
    Token,
}

impl Action {
    /// The action as the end of "role ... may not ...".
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Pin => "pin",
            Action::Unpin => "unpin",
            Action::Admin => "use admin endpoints",
            Action::Token => "get a token",
        }
    }

    /// Classify a request by API, method and path.
    pub fn of(req: &ApiRequest) -> Action {
        let method = req.method.as_str();
        let path = req.path.trim_end_matches('/');
        if method == "POST" && path == "/token" {
            return Action::Token;
        }
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            return Action::Read;
        }
        if req.api == Api::Ipfsproxy {
            // The IPFS RPC API takes every call as POST, so its path says what it does.
            return match path {
                "/api/v0/add" | "/api/v0/pin/add" | "/api/v0/pin/update" => Action::Pin,
                "/api/v0/pin/rm" => Action::Unpin,
                "/api/v0/pin/ls" | "/api/v0/id" | "/api/v0/version" | "/api/v0/repo/stat" => Action::Read,
                _ => Action::Admin,
            };
        }
        let pins = path == "/pins" || path.starts_with("/pins/");
        match method {
            "POST" | "PUT" if pins || path == "/add" => Action::Pin,
            "DELETE" if pins => Action::Unpin,
            _ => Action::Admin,
        }
    }
}

/// The plugin's config; unknown keys are refused so that a typo fails at load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    users: BTreeMap<String, User>,
    token_secret: String,
    #[serde(default = "default_lifetime")]
    token_lifetime_secs: u64,
}

fn default_lifetime() -> u64 {
    DEFAULT_LIFETIME_SECS
}

/// One user's password and role.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    role: Role,
    password: String,
}

/// The policy: the users, and the key and lifetime of the tokens.
pub struct ScopedTokens {
    users: BTreeMap<String, User>,
    secret: Vec<u8>,
    lifetime_secs: u64,
}

impl ScopedTokens {
    /// The user named by valid credentials, with the role in force, or the 401 to answer.
    fn authenticate(&self, credentials: &Credentials) -> Result<(String, Role), Denial> {
        match credentials {
            Credentials::Basic(basic) => match self.users.get(&basic.user) {
                Some(user) if constant_time_eq(user.password.as_bytes(), basic.password.as_bytes()) => {
                    Ok((basic.user.clone(), user.role))
                }
                _ => Err(unauthorized("unauthorized: invalid user or password", &[challenge("Basic", None)])),
            },
            Credentials::Bearer(token) => {
                let invalid = |reason: &str| unauthorized(reason, &[challenge("Bearer", Some("invalid_token"))]);
                let claims = match token::verify(token, &self.secret, now()) {
                    Ok(claims) => claims,
                    Err(TokenError::Expired) => return Err(invalid("unauthorized: token expired")),
                    Err(TokenError::Malformed | TokenError::BadSignature) => {
                        return Err(invalid("unauthorized: invalid token"));
                    }
                };
                // A token is only as good as the config that issued it: removing a user or
                // changing their role revokes their tokens.
                match self.users.get(&claims.sub) {
                    Some(user) if user.role.name() == claims.role => Ok((claims.sub, user.role)),
                    _ => Err(invalid("unauthorized: token revoked (its user or role changed)")),
                }
            }
            Credentials::None => Err(unauthorized(
                "unauthorized: credentials required",
                &[challenge("Basic", None), challenge("Bearer", None)],
            )),
        }
    }
}

impl Authorizer for ScopedTokens {
    fn from_config(config: &str) -> Result<Self, String> {
        let config: Option<Config> =
            serde_json::from_str(config).map_err(|e| format!("invalid scoped-tokens config: {e}"))?;
        let Some(config) = config else {
            return Err("scoped-tokens needs a config with `users` and `token_secret`".into());
        };
        if config.users.is_empty() {
            return Err("`users` is empty: configure at least one user".into());
        }
        for (name, user) in &config.users {
            // Basic credentials are `user:password`, so a colon would make the user unreachable.
            if name.is_empty() || name.contains(':') {
                return Err(format!("user name {name:?} must be non-empty and without ':'"));
            }
            if user.password.is_empty() {
                return Err(format!("user {name:?} has an empty password"));
            }
        }
        if config.token_secret.len() < MIN_SECRET_LEN {
            return Err(format!("`token_secret` must have at least {MIN_SECRET_LEN} bytes"));
        }
        if config.token_lifetime_secs == 0 {
            return Err("`token_lifetime_secs` must be positive".into());
        }
        Ok(ScopedTokens {
            users: config.users,
            secret: config.token_secret.into_bytes(),
            lifetime_secs: config.token_lifetime_secs,
        })
    }

    fn authorize_request(&self, req: &ApiRequest) -> RequestDecision {
        // CORS preflights and health checks never carry credentials.
        if req.method == "OPTIONS" || (req.method == "GET" && req.path == "/health") {
            return RequestDecision::Allow(ANONYMOUS.into());
        }
        let (user, role) = match self.authenticate(&req.credentials) {
            Ok(who) => who,
            Err(denial) => return RequestDecision::Deny(denial),
        };
        let action = Action::of(req);
        if role.may(action) {
            RequestDecision::Allow(user)
        } else {
            let reason = format!(
                "forbidden: user {user:?} has role {:?}, which may not {} ({} {})",
                role.name(),
                action.verb(),
                req.method,
                req.path
            );
            RequestDecision::Deny(denial(403, reason))
        }
    }

    fn issue_token(&self, req: &ApiRequest) -> TokenDecision {
        // Only a password buys a token: a token that bought another would never expire.
        if let Credentials::Bearer(_) = req.credentials {
            return TokenDecision::Deny(denial(401, "unauthorized: a token is issued for a user and password only"));
        }
        let (user, role) = match self.authenticate(&req.credentials) {
            Ok(who) => who,
            Err(denial) => return TokenDecision::Deny(denial),
        };
        let iat = now();
        let claims = Claims { sub: user, role: role.name().into(), iat, exp: iat.saturating_add(self.lifetime_secs) };
        match token::sign(&claims, &self.secret) {
            Ok(token) => TokenDecision::Token(token),
            Err(e) => TokenDecision::Deny(denial(500, e)),
        }
    }

    // authorize_peer keeps the SDK's default, deny: this plugin guards the APIs; the peer
    // authorizer (e.g. builtin:trusted-peers) decides what cluster peers may do.
}

cairn_policy_sdk::export_authorizer!(ScopedTokens);

/// Unix seconds (wasi:clocks inside Cairn).
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn unauthorized(reason: &str, challenges: &[String]) -> Denial {
    Denial {
        status: 401,
        reason: reason.into(),
        headers: challenges.iter().map(|c| ("www-authenticate".to_string(), c.clone())).collect(),
    }
}

fn challenge(scheme: &str, error: Option<&str>) -> String {
    match error {
        Some(error) => format!("{scheme} realm=\"{REALM}\", error=\"{error}\""),
        None => format!("{scheme} realm=\"{REALM}\""),
    }
}

/// Compares without an early exit, so response times do not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
