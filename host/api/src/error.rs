//! Errors: [`ApiError`] is what a [`crate::ClusterApi`] call answers and what the client sees;
//! [`ServeError`] is why the server could not start.

use std::path::PathBuf;

use crate::config::ListenAddr;
use crate::types::ErrorBody;

/// IPFS Cluster's `state.ErrNotFound` text. An error with exactly this message is answered with
/// 404 whatever its kind, because IPFS Cluster picks 404 by comparing the text (reference §1.1,
/// §10.2) and remote peers' errors arrive as text.
pub const PIN_NOT_FOUND: &str = "pin is not part of the pinset";

/// An API failure: an HTTP status and the message that goes into the error body
/// `{"code":..,"message":..}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the object does not exist (e.g. [`PIN_NOT_FOUND`]).
    #[error("{0}")]
    NotFound(String),
    /// 500, or 404 when the message is [`PIN_NOT_FOUND`].
    #[error("{0}")]
    Internal(String),
    /// Any other error status.
    #[error("{message}")]
    Status {
        /// The HTTP status; values outside 400..=599 are answered as 500.
        status: u16,
        /// The message.
        message: String,
    },
}

impl ApiError {
    /// 404 `pin is not part of the pinset`.
    pub fn pin_not_found() -> Self {
        ApiError::NotFound(PIN_NOT_FOUND.to_owned())
    }

    /// 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// 500 (or 404 for [`PIN_NOT_FOUND`]) with this message.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal(message.into())
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Internal(m) if m == PIN_NOT_FOUND => 404,
            ApiError::Internal(_) => 500,
            ApiError::Status { status, .. } if (400..=599).contains(status) => *status,
            ApiError::Status { .. } => 500,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::Internal(m) => m,
            ApiError::Status { message, .. } => message,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.status(), message: self.message().to_owned() }
    }
}

/// Why [`crate::serve`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No listen address was configured.
    #[error("neither the libp2p nor the HTTP endpoints are enabled")]
    NoListenAddress,
    /// A listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file is missing, unreadable or holds no usable PEM item.
    #[error("TLS {what} file {}: {reason}", path.display())]
    TlsFile {
        /// `certificate`, `key` or `client CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate and key were read but do not make a TLS configuration (e.g. they do not
    /// match).
    #[error("TLS certificate {} and key {}: {reason}", cert.display(), key.display())]
    TlsConfig {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// A configured response header is not a valid HTTP header.
    #[error("headers: {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_cluster_mapping() {
        assert_eq!(ApiError::pin_not_found().status(), 404);
        // A remote peer's error arrives as text: the exact text still means 404.
        assert_eq!(ApiError::internal(PIN_NOT_FOUND).status(), 404);
        assert_eq!(ApiError::internal("boom").status(), 500);
        assert_eq!(ApiError::bad_request("x").status(), 400);
        assert_eq!(ApiError::Status { status: 409, message: "x".into() }.status(), 409);
        assert_eq!(ApiError::Status { status: 200, message: "x".into() }.status(), 500);
        assert_eq!(ApiError::internal("boom").body(), ErrorBody { code: 500, message: "boom".into() });
    }
}
