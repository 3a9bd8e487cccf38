//! TLS for the network sinks (rustls with the ring provider): the trust roots, the client
//! certificate for mutual TLS, and errors that say which certificate failed and why.
//!
//! Roots: `tls.ca_file` when given (only those CAs), else the system store (what
//! rustls-native-certs finds: /etc/ssl/certs, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), where an
//! in-house CA is installed by the usual tools (update-ca-certificates).
//! Everything is read when the sink connects first and again after SIGHUP, so rotated
//! certificates are used without a restart.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    AlertDescription, CertificateError, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
};

use crate::config::SinkTls;

/// Why the TLS settings of a sink cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{field} {path}: {message}")]
    File {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("no trusted CA certificates in the system store ({0}); set tls.ca_file")]
    NoSystemRoots(String),
    #[error("tls.crt_file / tls.key_file do not go together: {0}")]
    ClientCert(rustls::Error),
}

/// ring, not aws-lc: it builds without cmake or a C toolchain for aws-lc. rustls deprecates
/// ring's provider for lacking post-quantum key exchange; classical X25519/P-256 remain.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |message: String| TlsError::File {
        field,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The CA certificates the receiver's certificate must chain to.
pub fn roots(tls: &SinkTls) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if let Some(path) = &tls.ca_file {
        return read_certs("ca_file", path);
    }
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map_or("none found".to_owned(), |e| e.to_string());
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(found.certs)
}

/// The client certificate chain and key, when mutual TLS is configured.
pub fn client_cert(
    tls: &SinkTls,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    let (Some(crt), Some(key_path)) = (&tls.crt_file, &tls.key_file) else {
        return Ok(None);
    };
    let chain = read_certs("crt_file", crt)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::File {
        field: "key_file",
        path: key_path.clone(),
        message: format!("no PEM private key: {e}"),
    })?;
    Ok(Some((chain, key)))
}

/// A rustls client configuration (for syslog over TLS).
pub fn client_config(tls: &SinkTls) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(roots(tls)?);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::ClientCert)?
        .with_root_certificates(store);
    let config = match client_cert(tls)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::ClientCert)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The same settings for ureq (the http sink).
pub fn ureq_config(tls: &SinkTls) -> Result<ureq::tls::TlsConfig, TlsError> {
    let roots = roots(tls)?;
    let client = client_cert(tls)?
        .map(|(chain, key)| {
            let chain: Vec<ureq::tls::Certificate<'static>> = chain
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            // ureq names the key's kind in its own type, which only its PEM reader fills in;
            // the file was just read and checked by client_cert().
            drop(key);
            let path = tls.key_file.clone().unwrap_or_default();
            let pem = std::fs::read(&path).map_err(|e| TlsError::File {
                field: "key_file",
                path: path.clone(),
                message: e.to_string(),
            })?;
            let key = ureq::tls::PrivateKey::from_pem(&pem).map_err(|e| TlsError::File {
                field: "key_file",
                path,
                message: format!("no PEM private key: {e}"),
            })?;
            Ok::<_, TlsError>(ureq::tls::ClientCert::new_with_certs(&chain, key))
        })
        .transpose()?;
    let roots: Vec<ureq::tls::Certificate<'static>> = roots
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider())
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .client_cert(client)
        .build())
}

/// A TLS failure in words an operator can act on; `name` is the name the receiver's
/// certificate was checked against, `ca` where the trusted CAs came from.
pub fn explain(err: &rustls::Error, name: &str, tls: &SinkTls) -> String {
    let ca = tls.ca_file.as_ref().map_or_else(
        || "the system store".to_owned(),
        |p| format!("tls.ca_file {}", p.display()),
    );
    let why = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the receiver's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the receiver's certificate is not valid yet (check both clocks)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the receiver's certificate is not valid for the name {name:?} (set \
                     tls.server_name to a name it holds when the receiver is reached by address)"
                )
            }
            CertificateError::UnknownIssuer => {
                format!("the receiver's certificate is not signed by a CA trusted here ({ca})")
            }
            CertificateError::Revoked => "the receiver's certificate is revoked".to_owned(),
            _ => "the receiver's certificate was refused".to_owned(),
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) if tls.crt_file.is_none() => {
            "the receiver requires a client certificate (set tls.crt_file and tls.key_file)"
                .to_owned()
        }
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::HandshakeFailure,
        ) => format!(
            "the receiver refused our client certificate (tls.crt_file {})",
            tls.crt_file
                .as_deref()
                .map_or(String::new(), |p| p.display().to_string())
        ),
        _ => "TLS failed".to_owned(),
    };
    format!("{why}: {err}")
}

/// The rustls error inside an I/O error, if that is what it is.
pub fn rustls_error(err: &std::io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
