//! Fulcio certificates: the chain to the trust root, the leaf's own constraints, the signer's
//! identity, and the embedded SCT.
//!
//! Trust comes only from the trust root: intermediates a signature carries along are ignored,
//! and every CA chain of the trust root is tried with its own intermediates. rustls-webpki
//! checks the path at the signing time (the validity of **every** certificate in it, so an
//! intermediate that had expired at signing time fails even when the leaf was valid), but it
//! ignores KeyUsage and, with `required_if_present`, accepts a leaf with no EKU at all: the
//! leaf checks here close both gaps. The issuer identity comes from Fulcio's extension
//! 1.3.6.1.4.1.57264.1.8 (a DER UTF8String), falling back to the legacy 1.3.6.1.4.1.57264.1.1
//! (raw bytes) that certificates issued before 2023 carry.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Tagged};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, SubjectAltName};

use crate::policy::cosign::trust_root::{CertificateAuthority, LogKey, TrustRoot};
use crate::policy::cosign::{Identity, PublicKey};
use crate::reason::Reason;
use crate::verify::Failure;

use super::log_signature_verifies;

/// Code signing, the EKU Fulcio puts in every leaf (DER value of 1.3.6.1.5.5.7.3.3).
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const CODE_SIGNING_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// Fulcio's OIDC issuer, v2 (DER UTF8String).
pub const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Fulcio's OIDC issuer, v1 (raw string bytes, deprecated).
pub const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// The embedded SCT list (RFC 6962 §3.3).
pub const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// A parsed leaf certificate with what the identity check needs.
pub struct Leaf {
    pub der: Vec<u8>,
    pub cert: Certificate,
    /// The leaf's public key, for the payload signature.
    pub key: PublicKey,
    /// Email and URI subject alternative names.
    pub sans: Vec<String>,
    /// The OIDC issuer Fulcio recorded, if any.
    pub issuer: Option<String>,
}

impl Leaf {
    /// Parses a DER certificate; errors are `Malformed`.
    pub fn from_der(der: &[u8]) -> Result<Self, Failure> {
        let malformed = |d: String| Failure::new(Reason::Malformed, d);
        let cert = Certificate::from_der(der)
            .map_err(|e| malformed(format!("the signing certificate is not DER X.509: {e}")))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| malformed(format!("the certificate's public key: {e}")))?;
        let key = PublicKey::from_der(&spki)
            .map_err(|e| malformed(format!("the certificate's public key: {e}")))?;
        let mut sans = Vec::new();
        if let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() {
            for name in san.0 {
                match name {
                    GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                        sans.push(s.to_string())
                    }
                    _ => {}
                }
            }
        }
        let mut v1 = None;
        let mut v2 = None;
        for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
            if ext.extn_id == ISSUER_V2 {
                v2 = der::asn1::Utf8StringRef::from_der(ext.extn_value.as_bytes())
                    .ok()
                    .map(|s| s.as_str().to_string());
            } else if ext.extn_id == ISSUER_V1 {
                v1 = std::str::from_utf8(ext.extn_value.as_bytes())
                    .ok()
                    .map(str::to_string);
            }
        }
        Ok(Leaf {
            der: der.to_vec(),
            cert,
            key,
            sans,
            issuer: v2.or(v1),
        })
    }

    /// Parses a PEM certificate (the `dev.sigstore.cosign/certificate` annotation).
    pub fn from_pem(pem: &str) -> Result<Self, Failure> {
        use rustls_pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            Failure::new(
                Reason::Malformed,
                format!("the certificate annotation is not a PEM certificate: {e}"),
            )
        })?;
        Self::from_der(der.as_ref())
    }

    /// The first identity of the policy this certificate satisfies, if any.
    pub fn matching_identity<'a>(&self, identities: &'a [Identity]) -> Option<&'a Identity> {
        let issuer = self.issuer.as_deref()?;
        identities
            .iter()
            .find(|id| id.issuer.matches(issuer) && self.sans.iter().any(|s| id.subject.matches(s)))
    }

    /// The identity check as a `Failure` naming what the certificate holds.
    pub fn check_identity(&self, identities: &[Identity]) -> Result<String, Failure> {
        if let Some(id) = self.matching_identity(identities) {
            let subject = self
                .sans
                .iter()
                .find(|s| id.subject.matches(s))
                .cloned()
                .unwrap_or_default();
            return Ok(format!(
                "{subject} (issuer {})",
                self.issuer.as_deref().unwrap_or_default()
            ));
        }
        let wanted = identities
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        Err(Failure::new(
            Reason::IdentityMismatch,
            match &self.issuer {
                None => format!(
                    "the certificate has no Fulcio issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1); the policy wants {wanted}"
                ),
                Some(issuer) => format!(
                    "the certificate is for subject {:?} issuer {issuer:?}; the policy wants {wanted}",
                    self.sans
                ),
            },
        ))
    }

    /// The leaf's own constraints that webpki does not check: a code-signing EKU must be
    /// present, and KeyUsage (when present) must allow digital signatures.
    pub fn check_usage(&self) -> Result<(), Failure> {
        let invalid = |d: &str| Failure::new(Reason::CertificateInvalid, d.to_string());
        match self
            .cert
            .tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
        {
            Ok(Some((_, eku))) if eku.0.contains(&CODE_SIGNING_OID) => {}
            Ok(_) => {
                return Err(invalid(
                    "the certificate's extended key usage lacks codeSigning",
                ));
            }
            Err(_) => {
                return Err(invalid(
                    "the certificate's extended key usage is unreadable",
                ));
            }
        }
        match self.cert.tbs_certificate().get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if !ku.digital_signature() => Err(invalid(
                "the certificate's key usage lacks digitalSignature",
            )),
            Ok(_) => Ok(()),
            Err(_) => Err(invalid("the certificate's key usage is unreadable")),
        }
    }

    /// Validates the path from this leaf to a certificate authority of `root` at `at`, the
    /// established signing time. Returns the authority and the leaf's direct issuer (DER).
    pub fn verify_chain<'r>(
        &self,
        root: &'r TrustRoot,
        at: SystemTime,
    ) -> Result<(&'r CertificateAuthority, &'r [u8]), Failure> {
        let leaf_der = CertificateDer::from(self.der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| {
            Failure::new(
                Reason::CertificateInvalid,
                format!("the signing certificate cannot be parsed for path validation: {e}"),
            )
        })?;
        let time = UnixTime::since_unix_epoch(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        );
        let mut last: Option<Failure> = None;
        for ca in &root.certificate_authorities {
            if !ca.valid_for.contains(at) {
                last.get_or_insert_with(|| {
                    Failure::new(
                        Reason::CertificateInvalid,
                        format!(
                            "certificate authority {:?} of the trust root was not valid at the signing time",
                            ca.name
                        ),
                    )
                });
                continue;
            }
            let Some((anchor_der, intermediates)) = ca.chain.split_last() else {
                continue;
            };
            let anchor_cert = CertificateDer::from(anchor_der.as_slice());
            let Ok(anchor) = webpki::anchor_from_trusted_cert(&anchor_cert) else {
                continue;
            };
            // webpki does not check the anchor's own validity period.
            if let Err(f) = validity_contains(anchor_der, at) {
                last = Some(f);
                continue;
            }
            let inter: Vec<CertificateDer<'_>> = intermediates
                .iter()
                .map(|c| CertificateDer::from(c.as_slice()))
                .collect();
            match ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &inter,
                time,
                webpki::KeyUsage::required_if_present(CODE_SIGNING),
                None,
                None,
            ) {
                Ok(_) => {
                    let issuer = self.direct_issuer(ca).unwrap_or(anchor_der.as_slice());
                    return Ok((ca, issuer));
                }
                Err(e) => {
                    let reason = match e {
                        webpki::Error::CertExpired { .. }
                        | webpki::Error::CertNotValidYet { .. } => Reason::Expired,
                        _ => Reason::CertificateInvalid,
                    };
                    // An expiry is more telling than "unknown issuer" from another CA.
                    if last.as_ref().is_none_or(|l| l.reason != Reason::Expired) {
                        last = Some(Failure::new(
                            reason,
                            format!(
                                "the signing certificate does not chain to {:?} at the signing time: {e:?}",
                                ca.name
                            ),
                        ));
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::new(
                Reason::CertificateInvalid,
                "the trust root has no usable certificate authority",
            )
        }))
    }

    /// The certificate of `ca` whose subject is this leaf's issuer.
    fn direct_issuer<'r>(&self, ca: &'r CertificateAuthority) -> Option<&'r [u8]> {
        let want = self.cert.tbs_certificate().issuer();
        ca.chain.iter().map(Vec::as_slice).find(|der| {
            Certificate::from_der(der).is_ok_and(|c| c.tbs_certificate().subject() == want)
        })
    }

    /// Verifies an embedded SCT from a `ctlogs` key of `root`, over the precertificate that
    /// the CT log saw (this TBS without the SCT extension, RFC 6962 §3.2).
    pub fn verify_sct(&self, root: &TrustRoot, issuer_der: &[u8]) -> Result<String, Failure> {
        let invalid = |d: String| Failure::new(Reason::CertificateInvalid, d);
        let list = self
            .cert
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == SCT_LIST)
            .ok_or_else(|| {
                invalid(
                    "the certificate carries no embedded SCT, and the policy requires one".into(),
                )
            })?;
        // The extension value is an OCTET STRING wrapping the TLS-encoded list.
        let tls = der::asn1::OctetString::from_der(list.extn_value.as_bytes())
            .map_err(|e| invalid(format!("the SCT extension is not an OCTET STRING: {e}")))?;
        let scts = parse_sct_list(tls.as_bytes())
            .ok_or_else(|| invalid("the SCT list is malformed".into()))?;
        let tbs = precert_tbs(&self.cert)
            .map_err(|e| invalid(format!("cannot rebuild the precertificate: {e}")))?;
        let issuer = Certificate::from_der(issuer_der)
            .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der())
            .map_err(|e| invalid(format!("the issuer's public key: {e}")))?;
        let issuer_key_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &issuer);
        for sct in &scts {
            let Some(log) = root.ctlogs.iter().find(|l| l.log_id == sct.log_id) else {
                continue;
            };
            if !log
                .valid_for
                .contains(SystemTime::UNIX_EPOCH + Duration::from_millis(sct.timestamp))
            {
                continue;
            }
            let mut signed = Vec::with_capacity(tbs.len() + 64);
            signed.push(0); // v1
            signed.push(0); // certificate_timestamp
            signed.extend_from_slice(&sct.timestamp.to_be_bytes());
            signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
            signed.extend_from_slice(issuer_key_hash.as_ref());
            let Ok(len) = u32::try_from(tbs.len()) else {
                continue;
            };
            signed.extend_from_slice(&len.to_be_bytes()[1..]);
            signed.extend_from_slice(&tbs);
            let Ok(ext_len) = u16::try_from(sct.extensions.len()) else {
                continue;
            };
            signed.extend_from_slice(&ext_len.to_be_bytes());
            signed.extend_from_slice(&sct.extensions);
            if log_signature_verifies(&log.key, &signed, &sct.signature) {
                return Ok(log_name(log));
            }
        }
        Err(invalid(format!(
            "none of the {} embedded SCT(s) verifies with a CT log key of the trust root",
            scts.len()
        )))
    }
}

fn log_name(log: &LogKey) -> String {
    if log.name.is_empty() {
        hex::encode(&log.log_id)
    } else {
        log.name.clone()
    }
}

/// Checks that a certificate's own validity period contains `at`.
fn validity_contains(der: &[u8], at: SystemTime) -> Result<(), Failure> {
    let cert = Certificate::from_der(der).map_err(|e| {
        Failure::new(
            Reason::CertificateInvalid,
            format!("a trust root certificate is unreadable: {e}"),
        )
    })?;
    let v = cert.tbs_certificate().validity();
    if at < v.not_before.to_system_time() || at > v.not_after.to_system_time() {
        return Err(Failure::new(
            Reason::Expired,
            "the trust root's CA certificate was not valid at the signing time",
        ));
    }
    Ok(())
}

/// One SCT of an embedded list.
struct Sct {
    log_id: Vec<u8>,
    timestamp: u64,
    extensions: Vec<u8>,
    signature: Vec<u8>,
}

/// Parses a TLS `SignedCertificateTimestampList` (RFC 6962 §3.3). Only v1 SCTs are kept.
fn parse_sct_list(b: &[u8]) -> Option<Vec<Sct>> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u16(&mut self) -> Option<usize> {
            self.take(2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        }
    }
    let mut r = R(b);
    let total = r.u16()?;
    let mut list = R(r.take(total)?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let len = list.u16()?;
        let mut s = R(list.take(len)?);
        let version = s.take(1)?[0];
        let log_id = s.take(32)?.to_vec();
        let ts = s.take(8)?;
        let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
        let ext_len = s.u16()?;
        let extensions = s.take(ext_len)?.to_vec();
        let _hash_and_sig_alg = s.take(2)?;
        let sig_len = s.u16()?;
        let signature = s.take(sig_len)?.to_vec();
        if version == 0 {
            out.push(Sct {
                log_id,
                timestamp,
                extensions,
                signature,
            });
        }
    }
    Some(out)
}

/// The DER TBSCertificate without the SCT-list extension: what the CT log signed.
pub fn precert_tbs(cert: &Certificate) -> Result<Vec<u8>, der::Error> {
    let tbs = cert.tbs_certificate().to_der()?;
    let fields: Vec<der::Any> = Vec::from_der(&tbs)?;
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let is_extensions = matches!(
            f.tag(),
            der::Tag::ContextSpecific { constructed: true, number } if number.value() == 3
        );
        if !is_extensions {
            out.push(f);
            continue;
        }
        let exts: x509_cert::ext::Extensions = Vec::from_der(f.value())?;
        let kept: x509_cert::ext::Extensions =
            exts.into_iter().filter(|e| e.extn_id != SCT_LIST).collect();
        out.push(der::Any::new(f.tag(), kept.to_der()?)?);
    }
    out.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn sct_list_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_sct_list(&bytes);
        }
    }

    #[test]
    fn sct_list_parses_one_v1_entry_and_rejects_truncation() {
        let mut sct = vec![0u8];
        sct.extend_from_slice(&[7u8; 32]);
        sct.extend_from_slice(&1234u64.to_be_bytes());
        sct.extend_from_slice(&[0, 0, 4, 3, 0, 2, 0xaa, 0xbb]);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let parsed = parse_sct_list(&list).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].timestamp, 1234);
        assert_eq!(parsed[0].signature, vec![0xaa, 0xbb]);
        assert!(parse_sct_list(&list[..list.len() - 1]).is_none());
    }
}
