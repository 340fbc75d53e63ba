//! TLS for the gRPC server (rustls): the certificate and key are read from PEM files and read
//! again, without a restart, when either file changes (a renewed certificate is served to the
//! next connection); with a client CA, every client must present a certificate it issued
//! (mTLS), and the certificate's subject common name names the organization its calls must
//! belong to.

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's TLS material is.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA (PEM) whose certificates clients must present; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// The rustls configuration serving `files`, refused with a message naming the file and the
/// setting when something cannot be read.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificate = Arc::new(ReloadingCertificate::load(files, provider.clone())?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(path, "DUNNING_TLS_CLIENT_CA")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{} (DUNNING_TLS_CLIENT_CA): {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{} (DUNNING_TLS_CLIENT_CA): {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS handshake of one accepted connection, at most [`HANDSHAKE_TIMEOUT`]; why it
/// failed otherwise (a wrong CA, no client certificate, plain text).
pub async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    socket: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let _ = socket.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

/// The organization a client certificate (DER) names: its subject's common name.
pub fn organization_of(certificate: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let name = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(name)
}

/// The server's certificate, read again from its files when they change: checked at each
/// handshake (two `stat` calls), so the next connection after a renewal gets the new one.
/// A renewal that cannot be read (half-written, key and certificate not matching yet) is
/// logged and the previous certificate kept.
#[derive(Debug)]
struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    key: Arc<CertifiedKey>,
}

/// What identifies a version of the two files.
type Stamp = [(Option<SystemTime>, u64); 2];

impl ReloadingCertificate {
    fn load(
        files: &TlsFiles,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, String> {
        let stamp = stamp(&files.cert, &files.key);
        let key = certified_key(&files.cert, &files.key, &provider)?;
        Ok(Self {
            cert: files.cert.clone(),
            key: files.key.clone(),
            provider,
            current: Mutex::new(Loaded {
                stamp,
                key: Arc::new(key),
            }),
        })
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.cert, &self.key);
        if now != current.stamp {
            current.stamp = now;
            match certified_key(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    current.key = Arc::new(key);
                    tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "the TLS certificate changed but cannot be used; still serving the previous one"
                ),
            }
        }
        Some(current.key.clone())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| {
        std::fs::metadata(path)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    })
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = read_certificates(cert, "DUNNING_TLS_CERT")?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{} (DUNNING_TLS_KEY): {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        format!(
            "{} and {} (DUNNING_TLS_CERT, DUNNING_TLS_KEY): {e}",
            cert.display(),
            key.display()
        )
    })
}

fn read_certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{} ({setting}): {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} ({setting}): no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}
