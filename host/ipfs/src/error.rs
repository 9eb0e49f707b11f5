//! The connector's one error type: every variant names the call and the daemon it went to.

use std::time::Duration;

/// What went wrong talking to an IPFS daemon.
#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// The configuration cannot be used (bad address, header, credentials or timeout).
    #[error("ipfs connector config: {0}")]
    Config(String),

    /// The daemon answered with an error status; `message` is Kubo's `{"Message":..}` text.
    #[error("ipfs {call} at {daemon}: daemon answered {status}: {message}")]
    Daemon {
        /// The RPC path, e.g. `pin/add`.
        call: &'static str,
        /// The daemon's multiaddr as configured.
        daemon: String,
        /// HTTP status code (200 when the error arrived inside a streamed answer).
        status: u16,
        /// The daemon's error message.
        message: String,
        /// Kubo's numeric error code, when the daemon sent one.
        code: Option<i64>,
    },

    /// The daemon could not be reached or the connection broke.
    #[error("ipfs {call} at {daemon}: cannot reach the daemon: {reason}")]
    Unreachable {
        /// The RPC path.
        call: &'static str,
        /// The daemon's multiaddr as configured.
        daemon: String,
        /// The transport error, with its causes.
        reason: String,
    },

    /// The call did not finish within its timeout.
    #[error("ipfs {call} at {daemon}: no answer within {timeout:?}")]
    Timeout {
        /// The RPC path.
        call: &'static str,
        /// The daemon's multiaddr as configured.
        daemon: String,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// A pin made no progress for `pin_timeout` and was cancelled.
    #[error("ipfs pin/add {cid} at {daemon}: no progress for {timeout:?} (fetched {progress} blocks), cancelled")]
    PinStalled {
        /// The CID being pinned.
        cid: String,
        /// The daemon's multiaddr as configured.
        daemon: String,
        /// `pin_timeout`.
        timeout: Duration,
        /// The last progress value the daemon reported (0 when it reports none).
        progress: u64,
    },

    /// `unpin_disable` is set, so this peer never unpins.
    #[error("ipfs pin/rm {cid} at {daemon}: unpinning is disabled by configuration on this peer (unpin_disable)")]
    UnpinDisabled {
        /// The CID that was to be unpinned.
        cid: String,
        /// The daemon's multiaddr as configured.
        daemon: String,
    },

    /// The daemon's answer could not be understood.
    #[error("ipfs {call} at {daemon}: unexpected answer: {detail}")]
    Malformed {
        /// The RPC path.
        call: &'static str,
        /// The daemon's multiaddr as configured.
        daemon: String,
        /// What was wrong with it.
        detail: String,
    },

    /// An in-process node (the embedded connector) failed the call.
    #[error("ipfs {call} at {daemon}: {message}")]
    Node {
        /// The call, named like the RPC path (`pin/add`).
        call: &'static str,
        /// The node, e.g. `embedded ipfs node at /var/lib/cairn/ipfs`.
        daemon: String,
        /// What went wrong, with its cause.
        message: String,
    },
}

impl IpfsError {
    /// The daemon's own error message, when the daemon answered with one.
    pub fn daemon_message(&self) -> Option<&str> {
        match self {
            IpfsError::Daemon { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True when the daemon could not be reached at all (down, wrong address, connection refused).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, IpfsError::Unreachable { .. })
    }
}

/// Shorthand for the connector's results.
pub type Result<T, E = IpfsError> = std::result::Result<T, E>;
