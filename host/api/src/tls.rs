//! TLS: the rustls server configuration (ring provider, TLS 1.2 and 1.3) from PEM files, and the
//! subject of a verified client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;
use crate::error::ServeError;

/// Builds the server configuration. Every failure names the file at fault.
pub(crate) fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs("certificate", &tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| ServeError::TlsFile {
        what: "key",
        path: tls.key_file.clone(),
        reason: pem_reason(e, "private key"),
    })?;

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| config_error(tls, e.to_string()))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("client CA", ca_file)? {
                roots.add(cert).map_err(|e| ServeError::TlsFile {
                    what: "client CA",
                    path: ca_file.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.client_cert_required { verifier } else { verifier.allow_unauthenticated() };
            let verifier = verifier.build().map_err(|e| ServeError::TlsFile {
                what: "client CA",
                path: ca_file.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // with_single_cert also checks that the key belongs to the certificate.
    let mut config = builder.with_single_cert(certs, key).map_err(|e| config_error(tls, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn config_error(tls: &TlsConfig, reason: String) -> ServeError {
    ServeError::TlsConfig { cert: tls.cert_file.clone(), key: tls.key_file.clone(), reason }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let fail = |reason: String| ServeError::TlsFile { what, path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(e, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(e, "certificate")))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate found".to_owned()));
    }
    Ok(certs)
}

fn pem_reason(e: rustls::pki_types::pem::Error, item: &str) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => format!("no PEM {item} found"),
        other => format!("invalid PEM: {other:?}"),
    }
}

/// The subject of a DER certificate in RFC 4514 form (`CN=client,O=Example`, the order Go's
/// `pkix.Name.String()` prints), or `None` if it does not parse.
pub(crate) fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let name = short_name(&oid).map_or(oid, str::to_owned);
                match atv.as_str() {
                    Ok(value) => format!("{name}={}", escape_value(value)),
                    Err(_) => {
                        let hex: String = atv.attr_value().data.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{name}=#{hex}")
                    }
                }
            })
            .collect();
        rdns.push(attrs.join("+"));
    }
    // RFC 4514 lists the most specific RDN first: the reverse of the certificate's order.
    rdns.reverse();
    Some(rdns.join(","))
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.17" => "POSTALCODE",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// RFC 4514 §2.4 escaping.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_rfc4514() {
        assert_eq!(escape_value("a,b"), "a\\,b");
        assert_eq!(escape_value(" x "), "\\ x\\ ");
        assert_eq!(escape_value("#1"), "\\#1");
        assert_eq!(escape_value("plain"), "plain");
    }
}
