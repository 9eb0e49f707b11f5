//! Trace context across peers: the swarm puts the calling span's W3C `traceparent` on each peer
//! RPC, and the serving peer's span continues that trace, so one API request's work on several
//! peers is one trace. The OpenTelemetry side is installed by the trace pipeline
//! ([`crate::otlp::install_propagation`], only when tracing is on); until then both functions
//! do nothing, so components call them unconditionally.

use std::sync::OnceLock;

/// Longest `traceparent` accepted from a peer (the W3C form is 55 characters).
const MAX_TRACEPARENT: usize = 128;

/// The OpenTelemetry operations behind this module.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// The current span's context as a `traceparent` value; `None` when there is none.
    pub current: fn() -> Option<String>,
    /// Makes a span that has not been entered yet a child of a remote `traceparent`.
    pub continue_remote: fn(&tracing::Span, &str),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the hooks (once per process; later calls are ignored).
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// The current span's W3C `traceparent`, to send along with a call.
pub fn current_traceparent() -> Option<String> {
    HOOKS.get().and_then(|h| (h.current)())
}

/// Makes `span` (created, not yet entered) continue the caller's trace. A value that is too
/// long or malformed is ignored: the span then starts a trace of its own.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if traceparent.len() > MAX_TRACEPARENT {
        return;
    }
    if let Some(hooks) = HOOKS.get() {
        (hooks.continue_remote)(span, traceparent);
    }
}
