//! Spans reach an `https://` OTLP collector whose certificate the system trust store (here
//! `SSL_CERT_FILE`) vouches for, and not one it does not. Its own test binary: it sets
//! `SSL_CERT_FILE` before any thread exists.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_telemetry::otlp::{self, OtlpSettings};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing_subscriber::layer::SubscriberExt as _;

/// A CA, and a certificate it signed for 127.0.0.1: (CA PEM, server cert DER, server key DER).
fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("server params");
    params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
    (ca.pem(), cert.der().clone(), key)
}

/// An HTTPS collector counting the exports it could decode; returns its base URL.
async fn tls_collector(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>, count: Arc<AtomicUsize>) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let count = count.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if ExportTraceServiceRequest::decode(body).is_ok() {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    format!("https://{addr}")
}

/// Exports one span to `endpoint`; whether the flush succeeded.
async fn export_one(endpoint: String) -> bool {
    let settings = OtlpSettings {
        endpoint,
        service_name: "https-test".into(),
        attributes: Vec::new(),
        sampling_prob: 1.0,
        timeout: Duration::from_secs(5),
    };
    let provider = otlp::provider(&settings, tokio::runtime::Handle::current()).expect("provider");
    let subscriber = tracing_subscriber::registry().with(otlp::layer(&provider, "otlp_https"));
    tracing::subscriber::with_default(subscriber, || tracing::info_span!("rpc.call").in_scope(|| {}));
    tokio::task::spawn_blocking(move || {
        let flushed = provider.force_flush();
        let _ = provider.shutdown();
        flushed.is_ok()
    })
    .await
    .expect("flush task")
}

#[test]
fn spans_reach_an_https_collector_the_trust_store_vouches_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca_pem, cert, key) = pki();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write ca");
    // SAFETY: no other thread exists yet in this test binary (one test, no runtime started).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let trusted = Arc::new(AtomicUsize::new(0));
        let endpoint = tls_collector(cert, key, trusted.clone()).await;
        assert!(export_one(endpoint).await, "the export to the trusted collector failed");
        assert!(trusted.load(Ordering::SeqCst) >= 1, "the collector decoded no export");

        // Another CA's certificate: the TLS handshake fails, nothing arrives.
        let (_, other_cert, other_key) = pki();
        let untrusted = Arc::new(AtomicUsize::new(0));
        let endpoint = tls_collector(other_cert, other_key, untrusted.clone()).await;
        export_one(endpoint).await;
        assert_eq!(untrusted.load(Ordering::SeqCst), 0, "an untrusted collector received spans");
    });
}
