//! Why the embedded node could not start; calls on a running node fail with
//! [`cairn_ipfs::IpfsError`] like every connector.

use std::path::PathBuf;

use cairn_ipfs::IpfsError;

/// A configuration or startup failure of the embedded node; every variant names what failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// A key of `ipfs_connector.embedded` has an unusable value.
    #[error("embedded ipfs config: {key}: {reason}")]
    Config {
        /// The key, e.g. `pin_timeout`.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// `private_network` is on but the cluster has no secret to use as the pre-shared key.
    #[error(
        "embedded ipfs config: private_network is true but the cluster has no secret; set cluster.secret \
         or set private_network to false (the node would then accept any libp2p peer)"
    )]
    NoClusterSecret,

    /// The data folder cannot be created, written or opened as a repository.
    #[error("embedded ipfs data folder {folder}: {reason}")]
    DataFolder {
        /// The data folder.
        folder: PathBuf,
        /// What went wrong, with its cause.
        reason: String,
    },

    /// Another node (in this or another process) holds the data folder's repository lock.
    #[error("embedded ipfs data folder {folder} is in use by another IPFS node (its repo_lock is held)")]
    DataFolderInUse {
        /// The data folder.
        folder: PathBuf,
    },

    /// The node's key file cannot be read, decoded or written.
    #[error("embedded ipfs identity file {file}: {reason}")]
    Identity {
        /// The key file.
        file: PathBuf,
        /// What went wrong, with its cause.
        reason: String,
    },

    /// A `listen_multiaddress` could not be listened on.
    #[error("embedded ipfs cannot listen on {address}: {reason}")]
    Listen {
        /// The address as configured.
        address: String,
        /// The transport's error.
        reason: String,
    },
}

impl From<EmbeddedError> for IpfsError {
    fn from(e: EmbeddedError) -> IpfsError {
        match e {
            EmbeddedError::Config { .. } | EmbeddedError::NoClusterSecret => IpfsError::Config(e.to_string()),
            other => {
                IpfsError::Unreachable { call: "start", daemon: "embedded ipfs".to_owned(), reason: other.to_string() }
            }
        }
    }
}
