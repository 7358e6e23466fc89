//! Serving TLS: a certificate resolver that re-reads its files when they change, and the
//! self-signed development certificate `signet serve` makes when given none.
//!
//! Rotation is detected by polling and comparing bytes, not by inotify: Kubernetes updates a
//! mounted Secret by swapping a symlink, which inotify watches on the files miss.
//!
//! Like `server`: must not import `verify`, `registry` or `decision` internals.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::Metrics;

/// A certificate and key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PemPair(<redacted>)")
    }
}

/// Why the serving certificate could not be read, built or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the certificate PEM: {0}")]
    CertificatePem(#[source] rustls_pki_types::pem::Error),
    #[error("the certificate file holds no CERTIFICATE block")]
    NoCertificate,
    #[error("cannot read the private key PEM: {0}")]
    KeyPem(#[source] rustls_pki_types::pem::Error),
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(#[source] rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    #[error("cannot make the self-signed certificate: {0}")]
    SelfSigned(#[source] rcgen::Error),
}

/// Builds a signing key and chain from PEM.
pub fn certified_key(pair: &PemPair) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pair.cert)
        .collect::<Result<_, _>>()
        .map_err(TlsError::CertificatePem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(&pair.key).map_err(TlsError::KeyPem)?;
    let provider = aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(TlsError::Pair)
}

/// Resolves every handshake to the current certificate.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingResolver {
    pub fn new(key: CertifiedKey) -> Self {
        ReloadingResolver {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1 (the API server
/// offers both; hyper-util serves whichever is chosen).
pub fn server_config(resolver: Arc<ReloadingResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Polls the certificate files and swaps them in when they change and parse; a bad pair keeps
/// the previous one and is reported.
pub fn spawn_reloader(
    resolver: Arc<ReloadingResolver>,
    cert: PathBuf,
    key: PathBuf,
    initial: PemPair,
    every: Duration,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = initial;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            // File reads block: on the blocking pool, not on the workers answering reviews.
            let (c, k) = (cert.clone(), key.clone());
            let Ok(Ok(pair)) = tokio::task::spawn_blocking(move || read_pair(&c, &k)).await else {
                continue;
            };
            if pair == last {
                continue;
            }
            match certified_key(&pair) {
                Ok(k) => {
                    resolver.replace(k);
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                    last = pair;
                }
                Err(error) => {
                    metrics.tls_reloads.with_label_values(&["failure"]).inc();
                    tracing::warn!(cert = %cert.display(), %error, "new serving certificate rejected; keeping the previous one");
                    last = pair;
                }
            }
        }
    })
}

/// Reads a certificate and key file.
pub fn read_pair(cert: &Path, key: &Path) -> Result<PemPair, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(PemPair {
        cert: read(cert)?,
        key: read(key)?,
    })
}

/// A development CA and a serving certificate for `localhost`, `127.0.0.1`, `::1` and the
/// given extra names. Returns (serving pair, CA certificate PEM).
pub fn self_signed(extra_names: &[String]) -> Result<(PemPair, String), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let err = TlsError::SelfSigned;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "signet development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    leaf.distinguished_name.push(DnType::CommonName, "signet");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;
    Ok((
        PemPair {
            cert: leaf_cert.pem().into_bytes(),
            key: leaf_key.serialize_pem().into_bytes(),
        },
        ca_cert.pem(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_usable() {
        let (pair, ca) = self_signed(&["signet.signet-system.svc".into()]).unwrap();
        assert!(ca.contains("BEGIN CERTIFICATE"));
        certified_key(&pair).unwrap();
    }

    #[test]
    fn the_warm_up_makes_a_whole_handshake_with_the_serving_certificate() {
        let (pair, _) = self_signed(&[]).unwrap();
        let resolver = Arc::new(ReloadingResolver::new(certified_key(&pair).unwrap()));
        let config = Arc::new(server_config(resolver.clone()).unwrap());
        let steps = warm_up(config, &resolver.current()).unwrap();
        assert_eq!(
            steps.iter().map(|(what, _)| *what).collect::<Vec<_>>(),
            ["key exchange", "signing key", "handshake"]
        );
        // A handshake that cannot complete (no protocol in common) is an error, not a panic.
        let other = Arc::new(ReloadingResolver::new(
            certified_key(&self_signed(&[]).unwrap().0).unwrap(),
        ));
        let mut broken = server_config(other.clone()).unwrap();
        broken.alpn_protocols = vec![b"h3".to_vec()];
        let err = warm_up(Arc::new(broken), &other.current()).unwrap_err();
        assert!(err.to_string().contains("TLS warm-up"), "{err}");
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let (pair, _) = self_signed(&[]).unwrap();
        let err = certified_key(&PemPair {
            cert: b"nope".to_vec(),
            key: pair.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the certificate file holds no CERTIFICATE block"
        );
        let (other, _) = self_signed(&[]).unwrap();
        let err = certified_key(&PemPair {
            cert: pair.cert,
            key: other.key,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Pair(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("certificate and key do not form a usable pair: "),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_file_names_its_path() {
        let err = read_pair(
            Path::new("/nonexistent/tls.crt"),
            Path::new("/nonexistent/tls.key"),
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/tls.crt: "),
            "{err}"
        );
    }
}

/// Accepts the server's certificate whatever it is (a handshake with ourselves, in memory:
/// there is nobody to authenticate), but checks the handshake signatures as any client would,
/// so the warm-up runs the same verification code.
#[derive(Debug)]
struct Ourselves(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Ourselves {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why the TLS warm-up failed; start-up logs it and serves regardless.
#[derive(Debug, thiserror::Error)]
pub enum WarmUpError {
    #[error("TLS warm-up: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS warm-up: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS warm-up: {0}")]
    Name(#[from] rustls_pki_types::InvalidDnsNameError),
    #[error("TLS warm-up: the record came back changed")]
    Changed,
    #[error("TLS warm-up: the handshake did not finish")]
    Unfinished,
}

/// What the first connection after start-up would otherwise initialise on its own time, done
/// before the port opens: each key exchange group once, one signature with the serving key,
/// then one TLS 1.3 handshake between `server` and a client of our own, in memory, with one
/// application record each way (rustls' and hyper-less code paths, aws-lc's first uses).
/// Returns how long each step took, for the start-up log.
pub fn warm_up(
    server: Arc<rustls::ServerConfig>,
    key: &CertifiedKey,
) -> Result<Vec<(&'static str, std::time::Duration)>, WarmUpError> {
    let mut steps = Vec::new();
    let provider = Arc::new(aws_lc_rs::default_provider());
    let start = std::time::Instant::now();
    for group in &provider.kx_groups {
        let ours = group.start()?;
        let theirs = group.start()?;
        let _ = ours.complete(theirs.pub_key());
    }
    steps.push(("key exchange", start.elapsed()));
    let start = std::time::Instant::now();
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    if let Some(signer) = key.key.choose_scheme(&schemes) {
        signer.sign(b"signet warm-up")?;
    }
    steps.push(("signing key", start.elapsed()));
    steps.push(("handshake", handshake(server, provider)?));
    Ok(steps)
}

/// One TLS 1.3 handshake with `server` and one record each way, in memory.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<std::time::Duration, WarmUpError> {
    use std::io::{Read, Write};
    let start = std::time::Instant::now();
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Ourselves(provider)))
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name)?;
    let mut server = rustls::ServerConnection::new(server)?;
    client.writer().write_all(b"ping")?;
    let mut buf = Vec::new();
    let mut got = [0u8; 4];
    // Each round moves every pending record one way, then the other; a handshake takes two.
    for _ in 0..8 {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd)?;
        }
        server.process_new_packets()?;
        if !server.is_handshaking() && server.reader().read_exact(&mut got).is_ok() {
            server.writer().write_all(&got)?;
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd)?;
        }
        client.process_new_packets()?;
        if !client.is_handshaking() && client.reader().read_exact(&mut got).is_ok() {
            return if &got == b"ping" {
                Ok(start.elapsed())
            } else {
                Err(WarmUpError::Changed)
            };
        }
    }
    Err(WarmUpError::Unfinished)
}
