//! RFC 3161 timestamp tokens: the one reader and verifier that Notation countersignatures and
//! Cosign bundle timestamps both use, each with its own trust anchors and policy.
//!
//! A token is a CMS `SignedData` (RFC 5652) whose content is a `TSTInfo`: the TSA signs "this
//! hash existed at genTime". [`parse`] reads the structure (one SignerInfo with signed
//! attributes, as RFC 3161 §2.4.2 requires) with the DER walker of [`super::der`], because only
//! a few fields matter, the `cms` crate is a release candidate, and der 0.8 rejects the
//! fractional seconds RFC 3161 allows in `genTime`. [`Token::check_content`] proves the token
//! is about the caller's signature and that its signed attributes cover the `TSTInfo`;
//! [`Token::verify_signature`] checks the TSA's signature with a key of the caller's choosing;
//! [`chain_at`] validates the TSA certificate's path at genTime. What a format adds (the ESS
//! signing-certificate, the TSA certificate's extensions, which authorities to try, accuracy)
//! stays with the format.
//!
//! Must not import the formats (`verify::cosign`, `verify::notation`), `policy`, `registry` or
//! anything with I/O.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::signature::UnparsedPublicKey;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::algorithms::{self, Hash, KeyKind};
use super::der::{
    TAG_CTX0, TAG_CTX1, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE,
    TAG_SET, Tlv, Walker,
};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
const OID_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// DER value of id-kp-timeStamping (1.3.6.1.5.5.7.3.8), for webpki.
pub const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// What is wrong with a token: a phrase that completes "the timestamp ...", such as "has a
/// malformed TSTInfo".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

fn error(what: &str) -> TokenError {
    TokenError(what.to_string())
}

const W: Walker<TokenError> = Walker { context: error };

/// The digest algorithm of an AlgorithmIdentifier.
fn digest_alg(alg_id: &Tlv<'_>) -> Result<&'static digest::Algorithm, TokenError> {
    let parts = W.children(alg_id.value)?;
    let first = parts
        .first()
        .ok_or_else(|| error("has an empty algorithm"))?;
    let oid = W.oid(first)?;
    Hash::digest_of_oid(&oid).ok_or_else(|| {
        TokenError(format!(
            "uses digest algorithm {oid}; SHA-256, SHA-384 or SHA-512 is required"
        ))
    })
}

/// A token's structure, read but not yet verified.
#[derive(Debug)]
pub struct Token<'a> {
    /// The DER `TSTInfo` the TSA signed.
    pub tst_info: &'a [u8],
    /// The hash algorithm and value of `messageImprint`.
    pub imprint: (&'static digest::Algorithm, &'a [u8]),
    /// The raw `genTime` (a GeneralizedTime, possibly with a fraction).
    pub gen_time: &'a [u8],
    /// The raw `accuracy`, if the TSTInfo has one (see [`Token::accuracy`]).
    accuracy: Option<&'a [u8]>,
    /// The DER certificates the token carries.
    pub certificates: Vec<&'a [u8]>,
    /// The SignerInfo's digest algorithm.
    pub digest_alg: &'static digest::Algorithm,
    /// The signed attributes re-tagged as a SET: what the TSA signed.
    pub signed_attrs: Vec<u8>,
    /// The SignerInfo's signatureAlgorithm (dotted OID).
    pub signature_alg: String,
    /// The TSA's signature.
    pub signature: &'a [u8],
    content_type_ok: bool,
    message_digest: Option<Tlv<'a>>,
    /// The ESS signing-certificate (v2, or v1) attribute: the hash of the TSA certificate, or
    /// why it is unreadable.
    pub signing_certificate: Result<Option<(&'static digest::Algorithm, &'a [u8])>, TokenError>,
}

/// Reads a token: ContentInfo → SignedData → TSTInfo and its only SignerInfo.
pub fn parse(token: &[u8]) -> Result<Token<'_>, TokenError> {
    let (ci, trailing) = W.expect(token, TAG_SEQUENCE, "ContentInfo")?;
    if !trailing.is_empty() {
        return Err(error("has trailing bytes"));
    }
    let ci = W.children(ci.value)?;
    if ci.len() != 2 || W.oid(&ci[0])? != OID_SIGNED_DATA || ci[1].tag != TAG_CTX0 {
        return Err(error("is not a CMS SignedData"));
    }
    let (sd, _) = W.expect(ci[1].value, TAG_SEQUENCE, "SignedData")?;
    let sd = W.children(sd.value)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    if sd.len() < 4 || sd[0].tag != TAG_INTEGER || sd[1].tag != TAG_SET {
        return Err(error("has a malformed SignedData"));
    }
    let encap = W.children(sd[2].value)?;
    if sd[2].tag != TAG_SEQUENCE || encap.len() != 2 || W.oid(&encap[0])? != OID_TST_INFO {
        return Err(error("does not hold a TSTInfo"));
    }
    if encap[1].tag != TAG_CTX0 {
        return Err(error("has no TSTInfo content"));
    }
    let (tst_octets, _) = W.expect(encap[1].value, TAG_OCTET_STRING, "TSTInfo octets")?;
    let tst_info = tst_octets.value;
    let mut certificates: Vec<&[u8]> = Vec::new();
    let mut signer_infos = None;
    for item in &sd[3..] {
        match item.tag {
            TAG_CTX0 => certificates = W.children(item.value)?.iter().map(|c| c.full).collect(),
            TAG_CTX1 => {}
            TAG_SET => signer_infos = Some(item),
            _ => return Err(error("has an unexpected SignedData field")),
        }
    }
    let signer_infos = W.children(
        signer_infos
            .ok_or_else(|| error("has no SignerInfo"))?
            .value,
    )?;
    if signer_infos.len() != 1 {
        return Err(error("must have exactly one SignerInfo"));
    }

    // TSTInfo: version, policy, messageImprint, serialNumber, genTime, accuracy?, ...
    let (tst, _) = W.expect(tst_info, TAG_SEQUENCE, "TSTInfo")?;
    let tst = W.children(tst.value)?;
    if tst.len() < 5
        || tst[0].tag != TAG_INTEGER
        || tst[1].tag != TAG_OID
        || tst[2].tag != TAG_SEQUENCE
        || tst[3].tag != TAG_INTEGER
        || tst[4].tag != TAG_GENERALIZED_TIME
    {
        return Err(error("has a malformed TSTInfo"));
    }
    let imprint = W.children(tst[2].value)?;
    if imprint.len() != 2 || imprint[0].tag != TAG_SEQUENCE || imprint[1].tag != TAG_OCTET_STRING {
        return Err(error("has a malformed messageImprint"));
    }
    let imprint = (digest_alg(&imprint[0])?, imprint[1].value);
    let accuracy = tst
        .get(5)
        .filter(|t| t.tag == TAG_SEQUENCE)
        .map(|t| t.value);

    // SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature
    let si = W.children(signer_infos[0].value)?;
    if si.len() < 6
        || si[0].tag != TAG_INTEGER
        || si[2].tag != TAG_SEQUENCE
        || si[3].tag != TAG_CTX0
        || si[4].tag != TAG_SEQUENCE
        || si[5].tag != TAG_OCTET_STRING
    {
        return Err(error("has a SignerInfo without signed attributes"));
    }
    let digest_alg = digest_alg(&si[2])?;
    let signature_alg = W.oid(
        W.children(si[4].value)?
            .first()
            .ok_or_else(|| error("has an empty signature algorithm"))?,
    )?;
    let mut content_type_ok = false;
    let mut message_digest = None;
    let mut signing_certificate = Ok(None);
    for attr in W.children(si[3].value)? {
        let parts = W.children(attr.value)?;
        if parts.len() != 2 || parts[1].tag != TAG_SET {
            return Err(error("has a malformed signed attribute"));
        }
        let values = W.children(parts[1].value)?;
        let value = *values
            .first()
            .ok_or_else(|| error("has an empty signed attribute"))?;
        match W.oid(&parts[0])?.as_str() {
            OID_CONTENT_TYPE => content_type_ok = W.oid(&value)? == OID_TST_INFO,
            OID_MESSAGE_DIGEST => message_digest = Some(value),
            OID_SIGNING_CERTIFICATE_V2 if signing_certificate.is_ok() => {
                signing_certificate = ess_v2(&value).map(Some);
            }
            OID_SIGNING_CERTIFICATE if matches!(signing_certificate, Ok(None)) => {
                signing_certificate = ess_v1(&value).map(Some);
            }
            _ => {}
        }
    }
    // The signature is over the DER SET OF the signed attributes (the [0] tag replaced).
    let mut signed_attrs = si[3].full.to_vec();
    signed_attrs[0] = TAG_SET;
    Ok(Token {
        tst_info,
        imprint,
        gen_time: tst[4].value,
        accuracy,
        certificates,
        digest_alg,
        signed_attrs,
        signature_alg,
        signature: si[5].value,
        content_type_ok,
        message_digest,
        signing_certificate,
    })
}

/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, ... };
/// ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING, ... }.
fn ess_v2<'a>(value: &Tlv<'a>) -> Result<(&'static digest::Algorithm, &'a [u8]), TokenError> {
    let (certs, _) = W.expect(value.value, TAG_SEQUENCE, "ESSCertIDv2 list")?;
    let (first, _) = W.expect(certs.value, TAG_SEQUENCE, "ESSCertIDv2")?;
    let parts = W.children(first.value)?;
    match parts.as_slice() {
        [h, ..] if h.tag == TAG_OCTET_STRING => Ok((&digest::SHA256, h.value)),
        [a, h, ..] if a.tag == TAG_SEQUENCE && h.tag == TAG_OCTET_STRING => {
            Ok((digest_alg(a)?, h.value))
        }
        _ => Err(error("has a malformed signing-certificate-v2 attribute")),
    }
}

/// SigningCertificate (v1): ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1), ... }.
fn ess_v1<'a>(value: &Tlv<'a>) -> Result<(&'static digest::Algorithm, &'a [u8]), TokenError> {
    let (certs, _) = W.expect(value.value, TAG_SEQUENCE, "ESSCertID list")?;
    let (first, _) = W.expect(certs.value, TAG_SEQUENCE, "ESSCertID")?;
    let (hash, _) = W.expect(first.value, TAG_OCTET_STRING, "ESSCertID hash")?;
    Ok((&digest::SHA1_FOR_LEGACY_USE_ONLY, hash.value))
}

/// Why the content of a token does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentError {
    /// The messageImprint is not the hash of the caller's signature.
    OtherSignature,
    /// No content-type attribute names TSTInfo.
    NoContentType,
    /// No messageDigest attribute (an OCTET STRING) is there.
    NoMessageDigest,
    /// The messageDigest attribute is not the hash of the TSTInfo.
    MessageDigest,
}

/// Why the TSA's signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The key and hash make no signature signet verifies.
    Unsupported,
    /// The signature does not verify with the key.
    Invalid,
}

impl Token<'_> {
    /// The token timestamps `signature`, and its signed attributes name and cover its TSTInfo.
    pub fn check_content(&self, signature: &[u8]) -> Result<(), ContentError> {
        let (imprint_alg, imprint) = self.imprint;
        if digest::digest(imprint_alg, signature).as_ref() != imprint {
            return Err(ContentError::OtherSignature);
        }
        if !self.content_type_ok {
            return Err(ContentError::NoContentType);
        }
        match self.message_digest {
            Some(v) if v.tag == TAG_OCTET_STRING => {
                if digest::digest(self.digest_alg, self.tst_info).as_ref() == v.value {
                    Ok(())
                } else {
                    Err(ContentError::MessageDigest)
                }
            }
            _ => Err(ContentError::NoMessageDigest),
        }
    }

    /// The hash the SignerInfo names, for [`algorithms`].
    pub fn hash(&self) -> Hash {
        Hash::of_digest(self.digest_alg).unwrap_or(Hash::Sha512)
    }

    /// Whether the TSA's signature over the signed attributes verifies with a `kind` key whose
    /// SPKI bits are `key`, over the SignerInfo's hash.
    pub fn verify_signature(&self, kind: KeyKind, key: &[u8]) -> Result<(), SignatureError> {
        let algorithm = algorithms::asn1(kind, self.hash()).ok_or(SignatureError::Unsupported)?;
        UnparsedPublicKey::new(algorithm, key)
            .verify(&self.signed_attrs, self.signature)
            .map_err(|_| SignatureError::Invalid)
    }

    /// Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis \[0\] INTEGER OPTIONAL,
    /// micros \[1\] INTEGER OPTIONAL }; zero when the TSTInfo states none.
    pub fn accuracy(&self) -> Result<Duration, TokenError> {
        let mut total = Duration::ZERO;
        for part in W.children(self.accuracy.unwrap_or_default())? {
            if part.value.len() > 4 {
                return Err(error("has an absurd accuracy"));
            }
            let n = part
                .value
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            total += match part.tag {
                TAG_INTEGER => Duration::from_secs(n),
                0x80 => Duration::from_millis(n),
                0x81 => Duration::from_micros(n),
                _ => return Err(error("has a malformed accuracy")),
            };
        }
        Ok(total)
    }
}

/// The certificates a token carries, unverified (to know whether any names revocation
/// locations, and for tests that build trust stores from real tokens).
pub fn token_certificates(token: &[u8]) -> Vec<Vec<u8>> {
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

/// How the TSA certificate's extendedKeyUsage is judged on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStampingEku {
    /// It must name timeStamping.
    Required,
    /// If it has one, it must name timeStamping.
    RequiredIfPresent,
}

/// A TSA certificate's validated path.
#[derive(Debug)]
pub struct Path {
    /// The intermediates of the path (DER, from the TSA certificate up).
    pub intermediates: Vec<Vec<u8>>,
    /// The certificate of `anchors` the path ends at.
    pub anchor: Vec<u8>,
}

/// Why a TSA certificate has no valid path.
#[derive(Debug)]
pub enum ChainError {
    /// webpki cannot use the certificate.
    Unusable(webpki::Error),
    /// It does not chain to an anchor at the time.
    NoPath(webpki::Error),
}

/// Validates (webpki) that `signer` chains through `intermediates` to one of `anchors` (DER
/// certificates; unusable ones are skipped) at `at`, the token's genTime.
pub fn chain_at(
    signer: &[u8],
    intermediates: &[&[u8]],
    anchors: &[&[u8]],
    at: UnixTime,
    eku: TimeStampingEku,
) -> Result<Path, ChainError> {
    let anchor_ders: Vec<CertificateDer<'_>> =
        anchors.iter().map(|c| CertificateDer::from(*c)).collect();
    let trust: Vec<(usize, _)> = anchor_ders
        .iter()
        .enumerate()
        .filter_map(|(i, c)| webpki::anchor_from_trusted_cert(c).ok().map(|a| (i, a)))
        .collect();
    let trust_anchors: Vec<_> = trust.iter().map(|(_, a)| a.clone()).collect();
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(*c))
        .collect();
    let leaf = CertificateDer::from(signer);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(ChainError::Unusable)?;
    let usage = match eku {
        TimeStampingEku::Required => webpki::KeyUsage::required(EKU_TIME_STAMPING),
        TimeStampingEku::RequiredIfPresent => {
            webpki::KeyUsage::required_if_present(EKU_TIME_STAMPING)
        }
    };
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust_anchors,
            &inter,
            at,
            usage,
            None,
            None,
        )
        .map_err(ChainError::NoPath)?;
    let used = path.anchor();
    let anchor = trust
        .iter()
        .find(|(_, a)| {
            a.subject == used.subject && a.subject_public_key_info == used.subject_public_key_info
        })
        .map(|(i, _)| anchors[*i].to_vec())
        .unwrap_or_default();
    Ok(Path {
        intermediates: path
            .intermediate_certificates()
            .map(|c| c.der().to_vec())
            .collect(),
        anchor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x00],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(parse(input).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(t) = parse(&bytes) {
                let _ = t.check_content(b"signature");
                let _ = t.accuracy();
                let _ = t.verify_signature(KeyKind::EcP256, &[]);
            }
            let _ = token_certificates(&bytes);
        }
    }
}
