//! Authorizer plugins: API requests, peer actions, `POST /token`. Every failure denies.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::authorizer_world::{AuthorizerPlugin as Bindings, AuthorizerPluginPre};
use crate::bindings::types::{ApiRequest, Denial, PeerDecision, PeerRequest, RequestDecision, TokenDecision};
use crate::error::CallFailure;
use crate::instance::{HostState, Kind, Loaded, PluginStats};
use crate::runtime::PluginKind;

/// Longest principal name, token, reason or header value accepted from a plugin.
const MAX_PRINCIPAL: usize = 256;
const MAX_TOKEN: usize = 8192;
const MAX_REASON: usize = 1024;
const MAX_HEADERS: usize = 16;
const MAX_HEADER_VALUE: usize = 4096;

pub(crate) struct AuthorizerKind;

impl Kind for AuthorizerKind {
    const KIND: PluginKind = PluginKind::Authorizer;
    type Pre = AuthorizerPluginPre<HostState>;
    type Bindings = Bindings;

    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        AuthorizerPluginPre::new(pre)
    }

    async fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        pre.instantiate_async(store).await
    }

    async fn init(b: &Bindings, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), String>> {
        b.cairn_policy_authorizer().call_init(store).await
    }
}

/// A loaded authorizer plugin. Cheap to clone; safe to call from many tasks at once.
#[derive(Clone)]
pub struct AuthorizerPlugin(Loaded<AuthorizerKind>);

impl AuthorizerPlugin {
    pub(crate) fn new(loaded: Loaded<AuthorizerKind>) -> Self {
        AuthorizerPlugin(loaded)
    }

    /// The plugin's name for logs.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Call counters.
    pub fn stats(&self) -> PluginStats {
        self.0.stats()
    }

    /// Decide an API request. A failed plugin denies with 500 (fail closed).
    pub async fn authorize_request(&self, req: &ApiRequest) -> RequestDecision {
        self.try_authorize_request(req).await.unwrap_or_else(|f| RequestDecision::Deny(failure_denial(&f)))
    }

    /// Decide an API request, reporting a failed call instead of denying.
    pub async fn try_authorize_request(&self, req: &ApiRequest) -> Result<RequestDecision, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_authorizer().call_authorize_request(store, req).await;
        let decision = self.0.finish(lease, result)?;
        check_request_decision(&decision).map_err(|why| self.0.malformed(why))?;
        if matches!(decision, RequestDecision::Deny(_)) {
            self.0.denied();
        }
        Ok(decision)
    }

    /// Decide a peer action. A failed plugin denies.
    pub async fn authorize_peer(&self, req: &PeerRequest) -> PeerDecision {
        self.try_authorize_peer(req)
            .await
            .unwrap_or_else(|f| PeerDecision::Deny(format!("peer authorization failed: authorizer plugin {f}")))
    }

    /// Decide a peer action, reporting a failed call instead of denying.
    pub async fn try_authorize_peer(&self, req: &PeerRequest) -> Result<PeerDecision, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_authorizer().call_authorize_peer(store, req).await;
        let decision = self.0.finish(lease, result)?;
        if let PeerDecision::Deny(reason) = &decision {
            check_text("deny reason", reason, MAX_REASON).map_err(|why| self.0.malformed(why))?;
            self.0.denied();
        }
        Ok(decision)
    }

    /// Issue a token for `POST /token`. A failed plugin denies with 500.
    pub async fn issue_token(&self, req: &ApiRequest) -> TokenDecision {
        self.try_issue_token(req).await.unwrap_or_else(|f| TokenDecision::Deny(failure_denial(&f)))
    }

    /// Issue a token, reporting a failed call instead of denying.
    pub async fn try_issue_token(&self, req: &ApiRequest) -> Result<TokenDecision, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_authorizer().call_issue_token(store, req).await;
        let decision = self.0.finish(lease, result)?;
        let checked = match &decision {
            TokenDecision::Token(token) => check_token(token),
            TokenDecision::Deny(denial) => check_denial(denial),
        };
        checked.map_err(|why| self.0.malformed(why))?;
        if matches!(decision, TokenDecision::Deny(_)) {
            self.0.denied();
        }
        Ok(decision)
    }
}

/// What the client sees when the authorizer failed: a 500 without plugin internals
/// (those go to the peer's log).
fn failure_denial(_failure: &CallFailure) -> Denial {
    Denial {
        status: 500,
        reason: "authorization failed: the authorizer plugin did not answer".into(),
        headers: Vec::new(),
    }
}

fn check_request_decision(decision: &RequestDecision) -> Result<(), String> {
    match decision {
        RequestDecision::Allow(principal) => check_text("principal", principal, MAX_PRINCIPAL),
        RequestDecision::Deny(denial) => check_denial(denial),
    }
}

fn check_denial(denial: &Denial) -> Result<(), String> {
    if !(400..=599).contains(&denial.status) {
        return Err(format!("deny status {} is not an HTTP error status (400-599)", denial.status));
    }
    check_text("deny reason", &denial.reason, MAX_REASON)?;
    check_headers(&denial.headers, |_| true)
}

fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() || token.len() > MAX_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("token must be 1-{MAX_TOKEN} printable ASCII characters"));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{what} is {} bytes, over the {max}-byte limit", text.len()));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

/// Headers a plugin asks the host to send: a bounded number of valid lower-case names
/// (accepted by `allowed`) with single-line values.
pub(crate) fn check_headers(headers: &[(String, String)], allowed: impl Fn(&str) -> bool) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("{} headers, over the limit of {MAX_HEADERS}", headers.len()));
    }
    for (name, value) in headers {
        let token = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_!#$%&'*+.^`|~".contains(&b));
        if !token {
            return Err(format!("header name {name:?} is not a lower-case HTTP token"));
        }
        if !allowed(name) {
            return Err(format!("header {name:?} may not be set by this kind of plugin"));
        }
        if value.len() > MAX_HEADER_VALUE || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("header {name:?} has an invalid value"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(status: u16) -> Denial {
        Denial { status, reason: "no".into(), headers: vec![] }
    }

    #[test]
    fn denial_checks() {
        assert!(check_denial(&denial(401)).is_ok());
        assert!(check_denial(&denial(200)).is_err());
        assert!(check_denial(&Denial { headers: vec![("x\r\n".into(), "v".into())], ..denial(403) }).is_err());
        assert!(
            check_denial(&Denial { headers: vec![("www-authenticate".into(), "a\nb".into())], ..denial(403) }).is_err()
        );
        assert!(check_denial(&Denial { headers: vec![("a".into(), "b".into()); 17], ..denial(403) }).is_err());
        assert!(check_request_decision(&RequestDecision::Allow("x".repeat(257))).is_err());
        assert!(check_token("a b").is_err());
        assert!(check_token("eyJ.a.b").is_ok());
    }
}
