//! The signing certificate chain: Notary Project certificate requirements, chain signatures,
//! trust-store membership and validity periods.
//!
//! The split follows notation-go: whether the chain *itself* is well formed (leaf and CA
//! rules, each certificate issued by the next, ending in a self-signed root, key sizes,
//! algorithms) is part of integrity and always enforced; whether one of its certificates is in
//! a trust store is authenticity; whether the certificates are within their validity period is
//! the authentic-timestamp check. So path validation (rustls-webpki) runs at a time inside every
//! certificate's validity period, and validity against the clock is checked on its own.
//!
//! webpki applies the code-signing EKU to intermediates too and ignores KeyUsage, hence
//! `KeyUsage::required_if_present` there and the leaf's EKU and KeyUsage checked here.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::Decode;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

use super::CheckError;
use super::envelope::Algorithm;
use crate::policy::notation::DistinguishedName;
use crate::verify::pkix::algorithms::{
    KeyKind, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION, named_curve,
};

/// DER value of id-kp-codeSigning (1.3.6.1.5.5.7.3.3), for webpki.
pub(super) const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// One parsed certificate of the chain.
pub struct ChainCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub subject: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl ChainCert {
    fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate().subject() == self.cert.tbs_certificate().issuer()
    }
}

/// The public key of the leaf, ready for envelope signature verification.
pub enum LeafKey {
    /// PKCS#1 RSAPublicKey DER and its modulus size in bits.
    Rsa(Vec<u8>, usize),
    /// Uncompressed EC point and the curve size in bits.
    Ec(Vec<u8>, usize),
}

impl LeafKey {
    /// The only envelope algorithm the Notary Project allows for this key.
    pub fn algorithm(&self) -> Result<Algorithm, CheckError> {
        match self {
            LeafKey::Rsa(_, 2048) => Ok(Algorithm::Ps256),
            LeafKey::Rsa(_, 3072) => Ok(Algorithm::Ps384),
            LeafKey::Rsa(_, 4096) => Ok(Algorithm::Ps512),
            LeafKey::Ec(_, 256) => Ok(Algorithm::Es256),
            LeafKey::Ec(_, 384) => Ok(Algorithm::Es384),
            LeafKey::Ec(_, 521) => Ok(Algorithm::Es512),
            LeafKey::Rsa(_, bits) => Err(CheckError::Certificate(format!(
                "the signing key is RSA-{bits}; RSA keys must be 2048, 3072 or 4096 bits"
            ))),
            LeafKey::Ec(_, bits) => Err(CheckError::Certificate(format!(
                "the signing key is on a {bits}-bit curve; P-256, P-384 and P-521 are allowed"
            ))),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            LeafKey::Rsa(b, _) | LeafKey::Ec(b, _) => b,
        }
    }
}

/// Parses the chain (leaf first), capped at [`super::envelope::MAX_CHAIN`].
pub fn parse(ders: &[Vec<u8>]) -> Result<Vec<ChainCert>, CheckError> {
    if ders.is_empty() || ders.len() > super::envelope::MAX_CHAIN {
        return Err(CheckError::Malformed(format!(
            "the certificate chain has {} certificates (1 to {} allowed)",
            ders.len(),
            super::envelope::MAX_CHAIN
        )));
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            let cert = Certificate::from_der(der).map_err(|e| {
                CheckError::Malformed(format!("certificate {i} of the chain is not X.509: {e}"))
            })?;
            let tbs = cert.tbs_certificate();
            Ok(ChainCert {
                der: der.clone(),
                subject: tbs.subject().to_string(),
                not_before: tbs.validity().not_before.to_system_time(),
                not_after: tbs.validity().not_after.to_system_time(),
                cert,
            })
        })
        .collect()
}

/// The subject of the leaf, for identity matching.
pub fn leaf_subject(chain: &[ChainCert]) -> Result<DistinguishedName, CheckError> {
    let leaf = chain
        .first()
        .ok_or_else(|| CheckError::Malformed("empty certificate chain".into()))?;
    DistinguishedName::from_x509(leaf.cert.tbs_certificate().subject())
        .map_err(|e| CheckError::Identity(e.to_string()))
}

/// The Notary Project certificate requirements and the chain's own signatures. Integrity.
pub fn check_integrity(chain: &[ChainCert]) -> Result<LeafKey, CheckError> {
    let leaf = chain
        .first()
        .ok_or_else(|| CheckError::Malformed("empty certificate chain".into()))?;
    check_leaf(leaf)?;
    let last = chain.len() - 1;
    for (i, c) in chain.iter().enumerate().skip(1) {
        check_ca(c, i)?;
        if i != last && c.is_self_issued() {
            return Err(CheckError::Certificate(format!(
                "certificate {i} ({}) is self-signed but is not the last certificate of the chain",
                c.subject
            )));
        }
        key_size(c, i)?;
    }
    for i in 0..last {
        let (child, parent) = (&chain[i], &chain[i + 1]);
        if child.cert.tbs_certificate().issuer() != parent.cert.tbs_certificate().subject() {
            return Err(CheckError::Certificate(format!(
                "the chain is out of order: certificate {i} ({}) is not issued by certificate {} \
                 ({})",
                child.subject,
                i + 1,
                parent.subject
            )));
        }
    }
    let root = &chain[last];
    if !root.is_self_issued() {
        return Err(CheckError::Certificate(format!(
            "the chain does not end in a self-signed root certificate (it ends with {})",
            root.subject
        )));
    }
    if last > 0 && leaf.is_self_issued() {
        return Err(CheckError::Certificate(
            "the signing certificate is self-signed but the chain has more certificates".into(),
        ));
    }
    verify_path(chain)?;
    leaf_key(leaf)
}

fn check_leaf(leaf: &ChainCert) -> Result<(), CheckError> {
    let tbs = leaf.cert.tbs_certificate();
    let bad = |what: String| {
        CheckError::Certificate(format!("signing certificate ({}): {what}", leaf.subject))
    };
    if let Some((_, bc)) = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| bad(format!("unreadable basicConstraints: {e}")))?
        && bc.ca
    {
        return Err(bad(
            "it is a CA certificate (basicConstraints CA=true)".into()
        ));
    }
    let (critical, ku) = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| bad(format!("unreadable keyUsage: {e}")))?
        .ok_or_else(|| bad("it has no keyUsage extension".into()))?;
    if !critical {
        return Err(bad("its keyUsage extension is not critical".into()));
    }
    if !ku.digital_signature() {
        return Err(bad("its keyUsage lacks digitalSignature".into()));
    }
    for (set, name) in [
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ] {
        if set {
            return Err(bad(format!(
                "its keyUsage has {name}, which a signing certificate must not have"
            )));
        }
    }
    match tbs
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|e| bad(format!("unreadable extendedKeyUsage: {e}")))?
    {
        // The certificate requirements make EKU optional (notation's own expired-certificate
        // fixture has none). When present, signet requires codeSigning in it (the spec says
        // MAY; webpki's path check requires it anyway, and a signing certificate whose EKU
        // names other purposes only is not meant for code signing).
        None => {}
        Some((_, eku)) => {
            if eku.0.contains(&ANY_EKU) {
                return Err(bad(
                    "its extendedKeyUsage contains anyExtendedKeyUsage, which is not allowed"
                        .into(),
                ));
            }
            for (forbidden, name) in [
                (oids::ID_KP_SERVER_AUTH, "serverAuth"),
                (oids::ID_KP_CLIENT_AUTH, "clientAuth"),
                (oids::ID_KP_EMAIL_PROTECTION, "emailProtection"),
                (oids::ID_KP_TIME_STAMPING, "timeStamping"),
                (OCSP_SIGNING, "OCSPSigning"),
            ] {
                if eku.0.contains(&forbidden) {
                    return Err(bad(format!(
                        "its extendedKeyUsage contains {name}, which a code-signing \
                         certificate must not have"
                    )));
                }
            }
            if !eku.0.contains(&oids::ID_KP_CODE_SIGNING) {
                return Err(bad("its extendedKeyUsage lacks codeSigning".into()));
            }
        }
    }
    Ok(())
}

fn check_ca(c: &ChainCert, i: usize) -> Result<(), CheckError> {
    let tbs = c.cert.tbs_certificate();
    let bad = |what: &str| {
        CheckError::Certificate(format!(
            "CA certificate {i} of the chain ({}): {what}",
            c.subject
        ))
    };
    match tbs
        .get_extension::<BasicConstraints>()
        .map_err(|_| bad("unreadable basicConstraints"))?
    {
        Some((true, bc)) if bc.ca => {}
        Some((false, _)) => return Err(bad("basicConstraints is not critical")),
        _ => return Err(bad("it is not a CA (basicConstraints CA=true is required)")),
    }
    match tbs
        .get_extension::<KeyUsage>()
        .map_err(|_| bad("unreadable keyUsage"))?
    {
        Some((true, ku)) if ku.key_cert_sign() => Ok(()),
        Some((false, _)) => Err(bad("keyUsage is not critical")),
        _ => Err(bad("keyUsage lacks keyCertSign")),
    }
}

/// RSA ≥ 2048 bits, EC ≥ 256 bits, for every certificate of the chain.
fn key_size(c: &ChainCert, i: usize) -> Result<(), CheckError> {
    match public_key(c)? {
        LeafKey::Rsa(_, bits) if bits < 2048 => Err(CheckError::Certificate(format!(
            "certificate {i} ({}) has an RSA-{bits} key; at least 2048 bits are required",
            c.subject
        ))),
        LeafKey::Ec(_, bits) if bits < 256 => Err(CheckError::Certificate(format!(
            "certificate {i} ({}) has a {bits}-bit EC key; at least 256 bits are required",
            c.subject
        ))),
        _ => Ok(()),
    }
}

fn leaf_key(leaf: &ChainCert) -> Result<LeafKey, CheckError> {
    let key = public_key(leaf)?;
    key.algorithm()?;
    Ok(key)
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn public_key(c: &ChainCert) -> Result<LeafKey, CheckError> {
    let spki = c.cert.tbs_certificate().subject_public_key_info();
    let bits = spki.subject_public_key.raw_bytes().to_vec();
    let bad = |what: String| CheckError::Certificate(format!("{}: {what}", c.subject));
    match spki.algorithm.oid.to_string().as_str() {
        OID_RSA_ENCRYPTION => {
            let key = RsaPublicKey::from_der(&bits)
                .map_err(|e| bad(format!("unreadable RSA public key: {e}")))?;
            let _ = key.public_exponent;
            let m = key.modulus.as_bytes();
            let size = match m.first() {
                Some(&top) => m.len() * 8 - top.leading_zeros() as usize,
                None => 0,
            };
            Ok(LeafKey::Rsa(bits, size))
        }
        OID_EC_PUBLIC_KEY => {
            let curve =
                named_curve(spki).ok_or_else(|| bad("EC key without a named curve".into()))?;
            let size = match KeyKind::from_curve(&curve) {
                Some(KeyKind::EcP256) => 256,
                Some(KeyKind::EcP384) => 384,
                Some(KeyKind::EcP521) => 521,
                _ => return Err(bad(format!("EC curve {curve} is not supported"))),
            };
            Ok(LeafKey::Ec(bits, size))
        }
        other => Err(bad(format!(
            "public key algorithm {other} is not supported (RSA or EC)"
        ))),
    }
}

/// Verifies each certificate's signature by the next, with webpki, rooted at the chain's own
/// last certificate. Trust is decided elsewhere (by byte equality with a trust store), so this
/// only proves the chain is one chain.
fn verify_path(chain: &[ChainCert]) -> Result<(), CheckError> {
    let at = path_time(chain)?;
    let ders: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let last = ders.len() - 1;
    let anchor = webpki::anchor_from_trusted_cert(&ders[last])
        .map_err(|e| CheckError::Certificate(format!("the root certificate is not usable: {e}")))?;
    let ee = webpki::EndEntityCert::try_from(&ders[0]).map_err(|e| {
        CheckError::Certificate(format!("the signing certificate is not usable: {e}"))
    })?;
    let intermediates = if last > 1 { &ders[1..last] } else { &[][..] };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        at,
        webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| CheckError::Certificate(format!("the certificate chain does not verify: {e}")))?;
    Ok(())
}

/// A time inside every certificate's validity period (the latest notBefore). If there is none,
/// the chain could never have been valid.
fn path_time(chain: &[ChainCert]) -> Result<UnixTime, CheckError> {
    let latest_start = chain
        .iter()
        .map(|c| c.not_before)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Some(c) = chain.iter().find(|c| c.not_after < latest_start) {
        return Err(CheckError::Certificate(format!(
            "the chain was never valid at one time: {} expired before another certificate of \
             the chain became valid",
            c.subject
        )));
    }
    let since = latest_start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Ok(UnixTime::since_unix_epoch(since))
}

/// The first certificate not valid at `t`, described.
pub fn invalid_at(chain: &[ChainCert], t: SystemTime) -> Option<(String, bool)> {
    chain.iter().find_map(|c| {
        if t < c.not_before {
            Some((
                format!(
                    "certificate {} is not valid yet: it is valid from {}",
                    c.subject,
                    super::fmt_time(c.not_before)
                ),
                false,
            ))
        } else if t > c.not_after {
            Some((
                format!(
                    "certificate {} expired at {}",
                    c.subject,
                    super::fmt_time(c.not_after)
                ),
                true,
            ))
        } else {
            None
        }
    })
}

/// The DER bytes of the chain, for trust-store comparison.
pub fn contains_der<'a>(chain: &'a [ChainCert], der: &[u8]) -> Option<&'a ChainCert> {
    chain.iter().find(|c| c.der == der)
}
