//! Cairn's HTTP APIs: the IPFS Cluster REST API server ([`serve`]) and the IPFS Pinning
//! Service API server ([`serve_pinsvc`], see [`pinsvc`]), on the same server machinery.
//!
//! The server is mechanism only. What the cluster does is behind [`ClusterApi`] (one method per
//! route); who may call and which CORS headers a browser gets is behind [`RequestPolicy`] (the
//! authorizer and CORS plugin decision points, as plain Rust types). The daemon implements both;
//! this crate depends on neither the daemon nor the plugin runtime.
//!
//! ```no_run
//! # async fn run(api: std::sync::Arc<dyn cairn_api::ClusterApi>) -> Result<(), cairn_api::ServeError> {
//! use std::sync::Arc;
//! use cairn_api::{ListenAddr, OpenPolicy, ServerConfig, serve};
//!
//! let config = ServerConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())]);
//! let server = serve(config, api, Arc::new(OpenPolicy)).await?;
//! println!("listening on {:?}", server.local_addrs());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour follows IPFS Cluster v1.1.6 (reference §1): routes and their status codes, JSON
//! field names, NDJSON streams (`Content-Type: application/json`, 204 for an empty stream, the
//! `X-Stream-Error` trailer always sent), 404/405 bodies, 307 trailing-slash redirects, the auth
//! / CORS order, and Go's server timeouts. Deliberate differences:
//! - `POST /pins/{cid}?mode=direct` pins directly (IPFS Cluster forces recursive, §10.3);
//! - a query that fails to parse is answered 400 and nothing else (IPFS Cluster writes 400 and
//!   still calls the cluster);
//! - `GET /` is 404 (IPFS Cluster redirects `/` to itself forever);
//! - an error before the first item of a stream is answered with the error's own status
//!   (IPFS Cluster always uses 500; [`ApiError::Internal`] is 500 here too);
//! - TLS uses rustls's cipher suites (TLS 1.2 ECDHE-AEAD and TLS 1.3) rather than Go's list, and
//!   may verify client certificates.

#![warn(missing_docs)]

mod cluster;
mod config;
pub mod conn;
mod error;
pub mod listen;
pub mod multipart;
pub mod pinsvc;
mod policy;
pub mod query;
mod response;
mod router;
mod server;
mod service;
mod tls;
pub mod trailers;
pub mod types;

pub use cairn_state::{Cid, Pin, PinMode, PinOptions, PinType, Timestamp};
pub use cluster::{AddFormat, AddLayout, AddParams, AddPart, AddRequest, ApiFuture, ApiStream, ClusterApi};
pub use config::{AddLimits, ListenAddr, Observer, RequestObserver, ServerConfig, TlsConfig};
pub use error::{ApiError, PIN_NOT_FOUND, ServeError};
pub use listen::{ApiServer, IncomingStream, StreamIo};
pub use policy::{
    Api, ApiRequest, BasicCredentials, CorsRequest, Credentials, Denial, Header, OpenPolicy, PreflightRequest,
    RequestDecision, RequestPolicy, TokenDecision,
};
pub use server::{serve, serve_pinsvc, serve_streams};
pub use types::{
    AddedOutput, Alert, Bandwidth, ConnectGraph, ErrorBody, GlobalPinInfo, GlobalRepoGc, Id, IpfsId, IpfsRepoGc,
    Metric, PinInfo, PinInfoShort, PinTypeFilter, RepoGc, Token, TrackerFilter, TrackerStatus, Version,
};
