//! RFC 3161 timestamp countersignatures (`io.cncf.notary.timestampSignature`) of Notary
//! Project signatures.
//!
//! The token is a CMS `SignedData` holding a `TSTInfo`. It is walked with a small DER reader
//! rather than typed structures because only a few fields matter and der 0.8 rejects the
//! fractional seconds RFC 3161 allows in `genTime`. Checks, per the Notary Project spec and
//! RFC 3161/5816: the content is a `TSTInfo`; its `messageImprint` is the hash of the envelope's
//! signature bytes; the signed attributes carry the content type, a `messageDigest` equal to
//! the hash of the `TSTInfo`, and an ESS signing-certificate (v2 or v1) naming the TSA
//! certificate; the signature over the signed attributes verifies with the TSA certificate; the
//! TSA certificate has a critical EKU of exactly timeStamping and chains (webpki, at `genTime`)
//! to a certificate of a `tsa` trust store.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use aws_lc_rs::signature::UnparsedPublicKey;
use const_oid::db::rfc5280 as oids;
use der::Decode;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};

use super::CheckError;
use crate::verify::pkix::algorithms::{
    self, Family, Hash, KeyKind, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION,
};
use crate::verify::pkix::der::{
    TAG_CTX0, TAG_CTX1, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE, TAG_SET,
    Tlv, Walker,
};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
const OID_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// DER value of id-kp-timeStamping, for webpki.
const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// The largest token parsed.
const MAX_TOKEN: usize = 256 * 1024;

/// The DER walker, with errors worded for timestamps.
const W: Walker<CheckError> = Walker { context: bad_str };

fn bad_str(what: &str) -> CheckError {
    bad(what)
}

fn bad(what: impl Into<String>) -> CheckError {
    CheckError::Timestamp(format!("the timestamp countersignature {}", what.into()))
}

/// The digest algorithm of an AlgorithmIdentifier.
fn digest_alg(alg_id: &Tlv<'_>) -> Result<&'static digest::Algorithm, CheckError> {
    let parts = W.children(alg_id.value)?;
    let first = parts.first().ok_or_else(|| bad("has an empty algorithm"))?;
    match W.oid(first)?.as_str() {
        "2.16.840.1.101.3.4.2.1" => Ok(&digest::SHA256),
        "2.16.840.1.101.3.4.2.2" => Ok(&digest::SHA384),
        "2.16.840.1.101.3.4.2.3" => Ok(&digest::SHA512),
        other => Err(bad(format!(
            "uses digest algorithm {other}; SHA-256, SHA-384 or SHA-512 is required"
        ))),
    }
}

/// A verified timestamp.
#[derive(Debug)]
pub struct Verified {
    /// genTime minus its accuracy.
    pub earliest: SystemTime,
    /// genTime plus its accuracy.
    pub latest: SystemTime,
    /// The TSA's chain as verified (DER, TSA certificate first, ending with the trusted
    /// certificate of the `tsa` store), for its revocation check.
    pub chain: Vec<Vec<u8>>,
}

/// Verifies a timestamp token over `signature` against the `tsa` trust store certificates and
/// returns the interval it attests (genTime minus and plus its accuracy) and the TSA chain.
pub fn verify(token: &[u8], signature: &[u8], tsa_certs: &[&[u8]]) -> Result<Verified, CheckError> {
    if token.len() > MAX_TOKEN {
        return Err(bad(format!("is larger than {MAX_TOKEN} bytes")));
    }
    // ContentInfo
    let (ci, trailing) = W.expect(token, TAG_SEQUENCE, "ContentInfo")?;
    if !trailing.is_empty() {
        return Err(bad("has trailing bytes"));
    }
    let ci = W.children(ci.value)?;
    if ci.len() != 2 || W.oid(&ci[0])? != OID_SIGNED_DATA || ci[1].tag != TAG_CTX0 {
        return Err(bad("is not a CMS SignedData"));
    }
    let (sd, _) = W.expect(ci[1].value, TAG_SEQUENCE, "SignedData")?;
    let sd = W.children(sd.value)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    if sd.len() < 4 || sd[0].tag != TAG_INTEGER || sd[1].tag != TAG_SET {
        return Err(bad("has a malformed SignedData"));
    }
    let encap = W.children(sd[2].value)?;
    if sd[2].tag != TAG_SEQUENCE || encap.len() != 2 || W.oid(&encap[0])? != OID_TST_INFO {
        return Err(bad("does not hold a TSTInfo"));
    }
    if encap[1].tag != TAG_CTX0 {
        return Err(bad("has no TSTInfo content"));
    }
    let (tst_octets, _) = W.expect(encap[1].value, TAG_OCTET_STRING, "TSTInfo octets")?;
    let tst_der = tst_octets.value;
    let mut certs: Vec<&[u8]> = Vec::new();
    let mut signer_infos = None;
    for item in &sd[3..] {
        match item.tag {
            TAG_CTX0 => certs = W.children(item.value)?.iter().map(|c| c.full).collect(),
            TAG_CTX1 => {}
            TAG_SET => signer_infos = Some(item),
            _ => return Err(bad("has an unexpected SignedData field")),
        }
    }
    let signer_infos = W.children(signer_infos.ok_or_else(|| bad("has no SignerInfo"))?.value)?;
    if signer_infos.len() != 1 {
        return Err(bad("must have exactly one SignerInfo"));
    }

    // TSTInfo: version, policy, messageImprint, serialNumber, genTime, accuracy?, ...
    let (tst, _) = W.expect(tst_der, TAG_SEQUENCE, "TSTInfo")?;
    let tst = W.children(tst.value)?;
    if tst.len() < 5 || tst[2].tag != TAG_SEQUENCE || tst[4].tag != TAG_GENERALIZED_TIME {
        return Err(bad("has a malformed TSTInfo"));
    }
    let imprint = W.children(tst[2].value)?;
    if imprint.len() != 2 || imprint[0].tag != TAG_SEQUENCE || imprint[1].tag != TAG_OCTET_STRING {
        return Err(bad("has a malformed messageImprint"));
    }
    let imprint_alg = digest_alg(&imprint[0])?;
    if digest::digest(imprint_alg, signature).as_ref() != imprint[1].value {
        return Err(bad(
            "does not timestamp this signature (messageImprint differs from the signature's hash)",
        ));
    }
    let gen_time = W.generalized_time(tst[4].value)?;
    let accuracy = match tst.get(5) {
        Some(t) if t.tag == TAG_SEQUENCE => parse_accuracy(t.value)?,
        _ => Duration::ZERO,
    };

    // SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature
    let si = W.children(signer_infos[0].value)?;
    if si.len() < 6 || si[3].tag != TAG_CTX0 || si[5].tag != TAG_OCTET_STRING {
        return Err(bad("has a SignerInfo without signed attributes"));
    }
    let si_digest = digest_alg(&si[2])?;
    let mut content_type_ok = false;
    let mut message_digest_ok = false;
    let mut ess_cert_hash: Option<(&'static digest::Algorithm, &[u8])> = None;
    for attr in W.children(si[3].value)? {
        let parts = W.children(attr.value)?;
        if parts.len() != 2 || parts[1].tag != TAG_SET {
            return Err(bad("has a malformed signed attribute"));
        }
        let values = W.children(parts[1].value)?;
        let value = values
            .first()
            .ok_or_else(|| bad("has an empty signed attribute"))?;
        match W.oid(&parts[0])?.as_str() {
            OID_CONTENT_TYPE => content_type_ok = W.oid(value)? == OID_TST_INFO,
            OID_MESSAGE_DIGEST => {
                message_digest_ok = value.tag == TAG_OCTET_STRING
                    && digest::digest(si_digest, tst_der).as_ref() == value.value;
            }
            OID_SIGNING_CERTIFICATE_V2 => ess_cert_hash = Some(ess_v2(value)?),
            OID_SIGNING_CERTIFICATE if ess_cert_hash.is_none() => {
                ess_cert_hash = Some(ess_v1(value)?)
            }
            _ => {}
        }
    }
    if !content_type_ok {
        return Err(bad("has no content-type attribute naming TSTInfo"));
    }
    if !message_digest_ok {
        return Err(bad("has a messageDigest that does not match its TSTInfo"));
    }
    let (ess_alg, ess_hash) =
        ess_cert_hash.ok_or_else(|| bad("has no signing-certificate attribute"))?;
    let signer_der = certs
        .iter()
        .copied()
        .find(|c| digest::digest(ess_alg, c).as_ref() == ess_hash)
        .ok_or_else(|| bad("does not carry the TSA certificate its signing-certificate names"))?;
    let signer = Certificate::from_der(signer_der)
        .map_err(|_| bad("carries an unreadable TSA certificate"))?;

    // The signature is over the DER SET OF the signed attributes (the [0] tag replaced).
    let mut signed_attrs = si[3].full.to_vec();
    signed_attrs[0] = TAG_SET;
    verify_signer(&signer, &si[4], si_digest, &signed_attrs, si[5].value)?;
    check_tsa_cert(&signer)?;

    // The TSA certificate chains to a tsa trust store at genTime.
    let tsa_ders: Vec<CertificateDer<'_>> =
        tsa_certs.iter().map(|c| CertificateDer::from(*c)).collect();
    let anchors: Vec<_> = tsa_ders
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    let signer_cert = CertificateDer::from(signer_der);
    let ee = webpki::EndEntityCert::try_from(&signer_cert)
        .map_err(|e| bad(format!("has an unusable TSA certificate: {e}")))?;
    let intermediates: Vec<CertificateDer<'_>> = certs
        .iter()
        .filter(|c| **c != signer_der)
        .map(|c| CertificateDer::from(*c))
        .collect();
    let at = gen_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| bad("has a genTime before 1970"))?;
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(at),
            webpki::KeyUsage::required_if_present(EKU_TIME_STAMPING),
            None,
            None,
        )
        .map_err(|e| {
            CheckError::Timestamp(format!(
                "the timestamp's TSA certificate ({}) does not chain to a tsa trust store: {e}",
                signer.tbs_certificate().subject()
            ))
        })?;
    let mut chain = vec![signer_der.to_vec()];
    chain.extend(path.intermediate_certificates().map(|c| c.der().to_vec()));
    let anchor = path.anchor();
    // The store certificate the path ended at (webpki gives the anchor, not its DER).
    if let Some(root) = tsa_ders.iter().find(|c| {
        webpki::anchor_from_trusted_cert(c).is_ok_and(|a| {
            a.subject == anchor.subject
                && a.subject_public_key_info == anchor.subject_public_key_info
        })
    }) && !chain.iter().any(|c| c.as_slice() == root.as_ref())
    {
        chain.push(root.to_vec());
    }
    let latest = gen_time
        .checked_add(accuracy)
        .ok_or_else(|| bad("has an absurd accuracy"))?;
    Ok(Verified {
        earliest: gen_time.checked_sub(accuracy).unwrap_or(gen_time),
        latest,
        chain,
    })
}

/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, ... };
/// ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING, ... }.
fn ess_v2<'a>(value: &Tlv<'a>) -> Result<(&'static digest::Algorithm, &'a [u8]), CheckError> {
    let (certs, _) = W.expect(value.value, TAG_SEQUENCE, "ESSCertIDv2 list")?;
    let (first, _) = W.expect(certs.value, TAG_SEQUENCE, "ESSCertIDv2")?;
    let parts = W.children(first.value)?;
    match parts.as_slice() {
        [h, ..] if h.tag == TAG_OCTET_STRING => Ok((&digest::SHA256, h.value)),
        [a, h, ..] if a.tag == TAG_SEQUENCE && h.tag == TAG_OCTET_STRING => {
            Ok((digest_alg(a)?, h.value))
        }
        _ => Err(bad("has a malformed signing-certificate-v2 attribute")),
    }
}

/// SigningCertificate (v1): ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1), ... }.
fn ess_v1<'a>(value: &Tlv<'a>) -> Result<(&'static digest::Algorithm, &'a [u8]), CheckError> {
    let (certs, _) = W.expect(value.value, TAG_SEQUENCE, "ESSCertID list")?;
    let (first, _) = W.expect(certs.value, TAG_SEQUENCE, "ESSCertID")?;
    let (hash, _) = W.expect(first.value, TAG_OCTET_STRING, "ESSCertID hash")?;
    Ok((&digest::SHA1_FOR_LEGACY_USE_ONLY, hash.value))
}

fn verify_signer(
    signer: &Certificate,
    sig_alg: &Tlv<'_>,
    digest_alg: &'static digest::Algorithm,
    message: &[u8],
    sig: &[u8],
) -> Result<(), CheckError> {
    let spki = signer.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let alg_oid = W.oid(
        W.children(sig_alg.value)?
            .first()
            .ok_or_else(|| bad("has an empty signature algorithm"))?,
    )?;
    let key_oid = spki.algorithm.oid.to_string();
    let hash = Hash::of_digest(digest_alg).unwrap_or(Hash::Sha512);
    let sha = hash.bits();
    let algorithm = if key_oid == OID_RSA_ENCRYPTION {
        // rsaEncryption, or the shaNWithRSAEncryption of the SignerInfo's own digest.
        let named = alg_oid == OID_RSA_ENCRYPTION
            || algorithms::x509_signature(&alg_oid) == Some((Family::Rsa, hash));
        named
            .then(|| algorithms::asn1(KeyKind::Rsa, hash))
            .flatten()
            .ok_or_else(|| {
                bad(format!(
                    "uses signature algorithm {alg_oid}, which signet does not support for RSA"
                ))
            })?
    } else if key_oid == OID_EC_PUBLIC_KEY {
        let curve = algorithms::named_curve(spki).unwrap_or_default();
        KeyKind::from_curve(&curve)
            .and_then(|k| algorithms::asn1(k, hash))
            .ok_or_else(|| {
                bad(format!(
                    "uses an EC key ({curve}) and digest (SHA-{sha}) signet does not support"
                ))
            })?
    } else {
        return Err(bad("has a TSA key that is neither RSA nor EC"));
    };
    UnparsedPublicKey::new(algorithm, key)
        .verify(message, sig)
        .map_err(|_| bad("has a signature that does not verify with the TSA certificate"))
}

/// RFC 3161 §2.3: the TSA certificate has one critical EKU, timeStamping; the Notary
/// certificate requirements add a critical keyUsage with digitalSignature.
fn check_tsa_cert(signer: &Certificate) -> Result<(), CheckError> {
    let tbs = signer.tbs_certificate();
    match tbs.get_extension::<ExtendedKeyUsage>() {
        Ok(Some((true, eku))) if eku.0 == [oids::ID_KP_TIME_STAMPING] => {}
        _ => {
            return Err(bad(
                "was made by a certificate without a critical extendedKeyUsage of only \
                 timeStamping",
            ));
        }
    }
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((true, ku))) if ku.digital_signature() => Ok(()),
        _ => Err(bad(
            "was made by a certificate without a critical keyUsage with digitalSignature",
        )),
    }
}

/// Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER OPTIONAL,
/// micros [1] INTEGER OPTIONAL }.
fn parse_accuracy(v: &[u8]) -> Result<Duration, CheckError> {
    let mut total = Duration::ZERO;
    for part in W.children(v)? {
        if part.value.len() > 4 {
            return Err(bad("has an absurd accuracy"));
        }
        let n = part
            .value
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        total += match part.tag {
            TAG_INTEGER => Duration::from_secs(n),
            0x80 => Duration::from_millis(n),
            0x81 => Duration::from_micros(n),
            _ => return Err(bad("has a malformed accuracy")),
        };
    }
    Ok(total)
}

/// The certificates a token carries, unverified (to know whether any names revocation
/// locations, and for tests that build trust stores from real tokens).
pub(super) fn token_certificates(token: &[u8]) -> Vec<Vec<u8>> {
    let Ok((ci, _)) = W.read(token) else {
        return Vec::new();
    };
    let Ok(ci) = W.children(ci.value) else {
        return Vec::new();
    };
    let Some(Ok((sd, _))) = ci.get(1).map(|c| W.read(c.value)) else {
        return Vec::new();
    };
    W.children(sd.value)
        .unwrap_or_default()
        .iter()
        .filter(|t| t.tag == TAG_CTX0)
        .flat_map(|t| W.children(t.value).unwrap_or_default())
        .map(|c| c.full.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_with_fraction() {
        let t = W.generalized_time(b"20250121091746.641Z").unwrap();
        let want = time::macros::datetime!(2025-01-21 09:17:46.641 UTC);
        assert_eq!(t, SystemTime::from(want));
        assert!(W.generalized_time(b"20250121091746Z").is_ok());
        for bad in [
            &b"2025012109174Z"[..],
            b"20251321091746Z",
            b"20250121091746.Z",
            b"x",
        ] {
            assert!(W.generalized_time(bad).is_err());
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(verify(input, b"sig", &[]).is_err());
        }
    }
}
