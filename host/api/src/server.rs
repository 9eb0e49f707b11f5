//! The API servers: [`serve`] (REST API) and [`serve_pinsvc`] (Pinning Service API) open one
//! listener per address (TCP or unix socket, optionally TLS), [`serve_streams`] serves the REST
//! API on libp2p streams; each runs HTTP/1.1 on its connections ([`crate::listen`]).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::cluster::ClusterApi;
use crate::config::ServerConfig;
use crate::conn::{Activity, ConnIo, Io, Limits};
use crate::error::ServeError;
use crate::listen::{Accepted, ApiServer, Bound, IncomingStream};
use crate::policy::{Api, RequestPolicy};
use crate::response::Common;
use crate::service::{App, ConnInfo, Shared, handle};
use crate::tls;
use crate::trailers::Sentinel;

/// Serves the REST API on connections accepted elsewhere (the libp2p-http host), as
/// [`Api::Libp2pHttp`]: the same routes, auth and CORS as [`serve`], with the remote peer id
/// given to the policy. `config.listen` and `config.tls` are ignored (libp2p encrypts).
pub async fn serve_streams(
    mut config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
    incoming: mpsc::Receiver<IncomingStream>,
) -> Result<ApiServer, ServeError> {
    config.api = Api::Libp2pHttp;
    config.tls = None;
    let common = Common { headers: configured_headers(&config)? };
    let shared = Arc::new(Shared { config, api, policy, common, sentinel: Sentinel::new(), app: App::Rest });
    Ok(run(Bound::streams(incoming), shared, None))
}

/// Starts the REST API server: checks the configuration (TLS files, headers), binds every
/// address, and serves until [`ApiServer::shutdown`].
pub async fn serve(
    config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
) -> Result<ApiServer, ServeError> {
    start(config, api, policy, App::Rest).await
}

/// Starts the Pinning Service API server (`api.pinsvcapi`) on the same machinery as [`serve`]:
/// listeners, TLS, timeouts, the policy's auth and CORS, `POST /token` and `GET /health`.
/// `config.api` is set to [`Api::Pinsvcapi`], so the policy always sees which API is asked.
pub async fn serve_pinsvc(
    mut config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
) -> Result<ApiServer, ServeError> {
    config.api = Api::Pinsvcapi;
    start(config, api, policy, App::PinSvc).await
}

async fn start(
    config: ServerConfig,
    api: Arc<dyn ClusterApi>,
    policy: Arc<dyn RequestPolicy>,
    app: App,
) -> Result<ApiServer, ServeError> {
    if config.listen.is_empty() {
        return Err(ServeError::NoListenAddress);
    }
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?.map(TlsAcceptor::from);
    let common = Common { headers: configured_headers(&config)? };
    let bound =
        crate::listen::bind(&config.listen).await.map_err(|(addr, source)| ServeError::Bind { addr, source })?;
    for addr in bound.local_addrs() {
        tracing::info!(api = config.api.name(), tls = tls.is_some(), "API listening on {addr}");
    }
    let shared = Arc::new(Shared { config, api, policy, common, sentinel: Sentinel::new(), app });
    Ok(run(bound, shared, tls))
}

/// Serves `bound`'s listeners with `shared`'s application.
fn run(bound: Bound, shared: Arc<Shared>, tls: Option<TlsAcceptor>) -> ApiServer {
    let timeout = shared.config.shutdown_timeout;
    ApiServer::start(bound, "API", timeout, move |accepted, shutdown| {
        connection(accepted, shared.clone(), tls.clone(), shutdown)
    })
}

fn configured_headers(config: &ServerConfig) -> Result<HeaderMap, ServeError> {
    let mut headers = HeaderMap::new();
    for (name, values) in &config.headers {
        let invalid = |reason: String| ServeError::InvalidHeader { name: name.clone(), reason };
        let header = HeaderName::try_from(name.as_str()).map_err(|e| invalid(e.to_string()))?;
        for value in values {
            headers.append(&header, HeaderValue::try_from(value.as_str()).map_err(|e| invalid(e.to_string()))?);
        }
    }
    Ok(headers)
}

async fn connection(
    accepted: Accepted,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    let Accepted { io: stream, remote_addr, peer_id, .. } = accepted;
    let config = &shared.config;
    let header_timeout = config.effective_header_timeout();
    let (stream, client_cert_subject): (Box<dyn Io>, Option<String>) = match tls {
        None => (stream, None),
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            let result = match header_timeout {
                Some(limit) => match tokio::time::timeout(limit, handshake).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(remote = %remote_addr, "TLS handshake timeout");
                        return;
                    }
                },
                None => handshake.await,
            };
            match result {
                Ok(stream) => {
                    let subject =
                        stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| tls::subject_of(c));
                    (Box::new(stream), subject)
                }
                Err(e) => {
                    tracing::debug!(remote = %remote_addr, "TLS handshake failed: {e}");
                    return;
                }
            }
        }
    };

    let activity = Activity::new();
    let info = Arc::new(ConnInfo {
        remote_addr,
        peer_id,
        tls: config.tls.is_some(),
        client_cert_subject,
        activity: activity.clone(),
    });
    let io = ConnIo::new(stream, activity.clone(), shared.sentinel.rewriter());
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let info = info.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(shared, info, req).await) }
        })
    };
    let conn = crate::listen::http1(config.effective_max_header_bytes()).serve_connection(TokioIo::new(io), service);
    let limits = Limits {
        header: header_timeout,
        idle: config.effective_idle_timeout(),
        write: (!config.write_timeout.is_zero()).then_some(config.write_timeout),
    };
    crate::listen::drive(conn, activity, limits, shutdown, "API").await;
}
