//! TLS with extra certificates (`--cert-dir`): the system's roots plus those, and a certificate
//! found there used directly as the server's own accepted as skopeo accepts it. A plain
//! `openssl req -x509` makes such a certificate marked as a CA, which WebPKI refuses as a server's
//! certificate (`CaUsedAsEndEntity`); a server presenting exactly those bytes holds its key, so
//! it is trusted.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The system's verifier with extra roots, and those roots accepted as servers' own certificates.
#[derive(Debug)]
struct RootsOrOwn {
    verifier: rustls_platform_verifier::Verifier,
    own: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for RootsOrOwn {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

/// The certificates (`*.crt`, `*.pem`) in `dir`.
fn read_cert_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("certificate directory {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_cert = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "crt" || e == "pem");
        if !is_cert {
            continue;
        }
        let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let before = out.len();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            out.push(certificate.map_err(|e| format!("{}: {e}", path.display()))?);
        }
        if out.len() == before {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
    }
    Ok(out)
}

/// A TLS client configuration trusting the system's roots and the certificates in `dir`.
pub fn with_cert_dir(dir: &Path) -> Result<ClientConfig, String> {
    let own = read_cert_dir(dir)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(own.clone(), provider.clone())
            .map_err(|e| format!("certificate directory {}: {e}", dir.display()))?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RootsOrOwn { verifier, own }))
        .with_no_client_auth())
}
