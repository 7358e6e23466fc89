//! Entry points for the fuzz targets in `fuzz/`, compiled only under `cfg(fuzzing)` (which
//! `cargo fuzz` sets), so production builds are unchanged. They drive the private parsers
//! directly with attacker-shaped bytes; a panic or a hang is the finding, results are dropped.

use std::time::SystemTime;

use super::chain::{self, ChainCert};
use super::{crl, envelope, ocsp, revocation_plan, timestamp};

/// A signature envelope as a registry would serve it, then everything derived from it.
pub fn envelope(cose: bool, bytes: &[u8]) {
    let media_type = if cose {
        "application/cose"
    } else {
        "application/jose+json"
    };
    let Ok(env) = envelope::parse(media_type, bytes) else {
        return;
    };
    certificates(&env.chain);
    if let Some(token) = env.timestamp.as_deref() {
        timestamp_token(token);
    }
}

/// A certificate chain (leaf first), as DER.
pub fn certificates(ders: &[Vec<u8>]) {
    let Ok(parsed) = chain::parse(ders) else {
        return;
    };
    let _ = chain::check_integrity(&parsed);
    let _ = chain::leaf_subject(&parsed);
    let _ = revocation_plan::chain_locations(&parsed);
    let _ = chain::invalid_at(&parsed, SystemTime::now());
}

/// An RFC 3161 timestamp token over a fixed signature, with no trusted TSA.
pub fn timestamp_token(token: &[u8]) {
    let _ = timestamp::token_certificates(token);
    let _ = timestamp::verify(token, b"signature", &[]);
}

/// A certificate and its issuer, against which revocation answers are judged.
pub struct Pair {
    cert: ChainCert,
    issuer: ChainCert,
}

impl Pair {
    /// Parses both; `None` when either is not a certificate.
    pub fn new(cert_der: &[u8], issuer_der: &[u8]) -> Option<Pair> {
        let mut parsed = chain::parse(&[cert_der.to_vec(), issuer_der.to_vec()]).ok()?;
        let issuer = parsed.pop()?;
        let cert = parsed.pop()?;
        Some(Pair { cert, issuer })
    }

    /// A DER CRL about the certificate.
    pub fn crl(&self, der: &[u8]) {
        let _ = crl::status(&self.cert, &self.issuer, &[der], SystemTime::now(), None);
        let _ = revocation_plan::fresh_until(der, false);
    }

    /// A DER OCSP response about the certificate.
    pub fn ocsp(&self, der: &[u8]) {
        let _ = ocsp::status(der, &self.cert, &self.issuer, SystemTime::now());
        let _ = ocsp::responder_crl_urls(der);
        let _ = ocsp::next_update(der);
        let _ = revocation_plan::fresh_until(der, true);
    }
}
