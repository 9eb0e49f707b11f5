//! [`ProxyError`]: why [`crate::serve`] could not start.

use std::path::PathBuf;

use cairn_api::ListenAddr;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No listen address was configured.
    #[error("ipfsproxy: no listen address configured")]
    NoListenAddress,
    /// A listener could not be opened.
    #[error("ipfsproxy: listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value cannot be used (a header name, the extract path).
    #[error("ipfsproxy: {0}")]
    Config(String),
    /// The TLS client for `node_https` could not be set up (CA file, trust store).
    #[error("ipfsproxy: node_https: {}: {reason}", path.as_ref().map_or("system trust store".to_owned(), |p| p.display().to_string()))]
    Tls {
        /// The CA file, or `None` for the system's store.
        path: Option<PathBuf>,
        /// Why.
        reason: String,
    },
}
