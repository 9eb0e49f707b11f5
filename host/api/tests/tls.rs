//! TLS: serving with rcgen certificates, client-certificate subjects reaching the policy, and
//! startup errors that name the file.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_api::*;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client certificate
/// (`CN=alice, O=Cairn`), as PEM files in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Cairn test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        server_params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let server_cert = server_params.signed_by(&server_key, &ca_cert, &ca_key).expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        // Certificate order O, CN; RFC 4514 prints it most specific first: CN=alice,O=Cairn.
        client_params.distinguished_name = DistinguishedName::new();
        client_params.distinguished_name.push(DnType::OrganizationName, "Cairn");
        client_params.distinguished_name.push(DnType::CommonName, "alice");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &ca_cert, &ca_key).expect("client cert");

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write");
        std::fs::write(dir.path().join("other.key"), KeyPair::generate().expect("key").serialize_pem()).expect("write");
        Self {
            dir,
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self, client_ca: bool) -> TlsConfig {
        TlsConfig {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            client_ca_file: client_ca.then(|| self.path("ca.pem")),
            client_cert_required: false,
        }
    }

    fn connector(&self, with_client_cert: bool) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca der")).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = if with_client_cert {
            let chain = vec![CertificateDer::from_pem_slice(self.client_cert_pem.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    }
}

async fn tls_get(pki: &Pki, addr: std::net::SocketAddr, with_client_cert: bool, path: &str) -> Reply {
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.expect("connect in time").expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio::time::timeout(WAIT, pki.connector(with_client_cert).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    send_on(tls, request("GET", path, &[("authorization", ADMIN_BASIC)], "")).await
}

#[tokio::test]
async fn serves_over_tls_and_plain_http_is_refused() {
    let pki = Pki::new();
    let mut config = local_config();
    config.tls = Some(pki.tls(false));
    let h = start(config).await;

    let r = tls_get(&pki, h.addr, false, "/version").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"version\":\"1.1.6\"}\n");
    let seen = h.policy.last_request().expect("authorized");
    assert!(seen.tls);
    assert_eq!(seen.client_cert_subject, None);

    // Streams and their trailer work through TLS too.
    let r = tls_get(&pki, h.addr, false, "/pins?local=true").await;
    assert_eq!(r.status, 200);
    let trailers = r.trailers.expect("trailers");
    assert_eq!(trailers.get("x-stream-error").and_then(|v| v.to_str().ok()), Some("boom again"));

    // Plain HTTP on a TLS listener gets no HTTP answer.
    let out = raw(h.addr, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(!out.starts_with("HTTP/1.1 200"), "{out}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_subject_reaches_the_policy() {
    let pki = Pki::new();
    let mut config = local_config();
    config.tls = Some(pki.tls(true));
    let h = start(config).await;

    let r = tls_get(&pki, h.addr, true, "/id").await;
    assert_eq!(r.status, 200);
    let seen = h.policy.last_request().expect("authorized");
    assert_eq!(seen.client_cert_subject.as_deref(), Some("CN=alice,O=Cairn"));

    // Optional client auth: a client without a certificate still gets in, without a subject.
    let r = tls_get(&pki, h.addr, false, "/id").await;
    assert_eq!(r.status, 200);
    assert_eq!(h.policy.last_request().expect("authorized").client_cert_subject, None);
    h.server.shutdown().await;

    // Required client auth: no certificate, no connection.
    let mut config = local_config();
    let mut tls = pki.tls(true);
    tls.client_cert_required = true;
    config.tls = Some(tls);
    let h = start(config).await;
    let tcp = TcpStream::connect(h.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let attempt = async {
        let mut stream = pki.connector(false).connect(name, tcp).await?;
        // TLS 1.3 reports the refusal on the first read.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await?;
        if n == 0 { Err(std::io::Error::other("closed")) } else { Ok(buf[..n].to_vec()) }
    };
    let result = tokio::time::timeout(WAIT, attempt).await.expect("in time");
    assert!(result.is_err(), "served without a client certificate: {result:?}");
    let r = tls_get(&pki, h.addr, true, "/id").await;
    assert_eq!(r.status, 200);
    h.server.shutdown().await;
}

async fn start_error(tls: TlsConfig) -> String {
    let mut config = local_config();
    config.tls = Some(tls);
    serve(config, Arc::new(FakeCluster::default()), Arc::new(OpenPolicy)).await.expect_err("refused").to_string()
}

fn shows(message: &str, path: &Path) {
    assert!(message.contains(&path.display().to_string()), "{message} should name {}", path.display());
}

#[tokio::test]
async fn tls_file_errors_name_the_file() {
    let pki = Pki::new();

    let mut tls = pki.tls(false);
    tls.cert_file = pki.path("missing.pem");
    let message = start_error(tls).await;
    shows(&message, &pki.path("missing.pem"));
    assert!(message.starts_with("TLS certificate file"), "{message}");

    let mut tls = pki.tls(false);
    tls.key_file = pki.path("missing.key");
    let message = start_error(tls).await;
    shows(&message, &pki.path("missing.key"));

    // A file without the PEM item.
    let mut tls = pki.tls(false);
    tls.key_file = pki.path("server.pem");
    let message = start_error(tls).await;
    shows(&message, &pki.path("server.pem"));
    assert!(message.contains("no PEM private key"), "{message}");

    // A key that does not belong to the certificate names both files.
    let mut tls = pki.tls(false);
    tls.key_file = pki.path("other.key");
    let message = start_error(tls).await;
    shows(&message, &pki.path("other.key"));
    shows(&message, &pki.path("server.pem"));

    let mut tls = pki.tls(true);
    tls.client_ca_file = Some(pki.path("no-ca.pem"));
    let message = start_error(tls).await;
    shows(&message, &pki.path("no-ca.pem"));
}
