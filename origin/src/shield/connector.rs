//! How the shield connects to its upstreams: TCP with the connect timeout and `TCP_NODELAY`,
//! and TLS (rustls) for `https://` upstreams, trusting Mozilla's roots (webpki-roots, so that
//! no system store is needed) and the CAs of `UPSTREAM_TLS_CA_FILE`.

use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::ShieldConfig;

/// The connector every upstream exchange goes through.
pub type UpstreamConnector = HttpsConnector<HttpConnector>;

/// Why the connector could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The CA file is unreadable or holds no certificate.
    #[error("{path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused a CA certificate or its settings.
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// The connector for `config`'s upstreams.
pub fn connector(config: &ShieldConfig) -> Result<UpstreamConnector, ConnectorError> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(config.connect_timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.tls_ca_file {
        for certificate in ca_certificates(path)? {
            roots
                .add(certificate)
                .map_err(|error| ConnectorError::Tls(error.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ConnectorError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp))
}

/// The certificates of the PEM file at `path`: at least one.
pub fn ca_certificates(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let failed = |reason: String| ConnectorError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| failed(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failed(error.to_string()))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in it".to_owned()));
    }
    Ok(certificates)
}
