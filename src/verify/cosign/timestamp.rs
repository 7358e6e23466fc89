//! RFC 3161 signed timestamps from a Sigstore bundle's `timestampVerificationData`.
//!
//! A timestamp is a CMS SignedData whose content is a TSTInfo: the TSA signs "this hash existed
//! at genTime". The hash must be that of the signature being timestamped, the CMS signed
//! attributes must carry the TSTInfo's digest, the CMS signature must verify with the key of a
//! timestamp authority of the trust root, and that authority's chain must be valid at genTime
//! with the timeStamping EKU. The DER is walked by hand (a few fixed structures): the `cms`
//! crate is a release candidate, and der 0.8 rejects the fractional seconds RFC 3161 allows in
//! genTime.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::policy::cosign::PublicKey;
use crate::policy::cosign::trust_root::{CertificateAuthority, TrustRoot};
use crate::reason::Reason;
use crate::verify::Failure;
use crate::verify::pkix::algorithms::{self, Hash, KeyKind};
use crate::verify::pkix::der::{
    GeneralizedTime, Reader, TAG_CTX0, TAG_CTX1, TAG_GENERALIZED_TIME, TAG_INTEGER,
    TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET, Tlv,
};

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
/// id-kp-timeStamping (DER value of 1.3.6.1.5.5.7.3.8).
const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

fn invalid(d: impl Into<String>) -> Failure {
    Failure::new(Reason::TimestampInvalid, d)
}

fn hash_alg(oid: &[u8]) -> Option<&'static digest::Algorithm> {
    match oid {
        o if o == OID_SHA256 => Some(&digest::SHA256),
        o if o == OID_SHA384 => Some(&digest::SHA384),
        o if o == OID_SHA512 => Some(&digest::SHA512),
        _ => None,
    }
}

/// The OID inside an AlgorithmIdentifier.
fn alg_oid(alg: Tlv<'_>) -> Option<&[u8]> {
    Reader(alg.value).expect(TAG_OID).map(|o| o.value)
}

/// A parsed timestamp token.
struct Token<'a> {
    tst_info: &'a [u8],
    imprint_alg: &'static digest::Algorithm,
    imprint: &'a [u8],
    gen_time: SystemTime,
    digest_alg: &'static digest::Algorithm,
    /// The signed attributes re-tagged as a SET: what the TSA signed.
    signed_attrs: Vec<u8>,
    message_digest: &'a [u8],
    signature: &'a [u8],
    /// DER certificates the token carries (candidates for the TSA's own certificate).
    certificates: Vec<&'a [u8]>,
}

fn parse(token: &[u8]) -> Option<Token<'_>> {
    let ci = Reader(token).expect(TAG_SEQUENCE)?;
    let mut r = Reader(ci.value);
    if r.expect(TAG_OID)?.value != OID_SIGNED_DATA {
        return None;
    }
    let sd = Reader(r.expect(TAG_CTX0)?.value).expect(TAG_SEQUENCE)?;
    let mut sd = Reader(sd.value);
    sd.expect(TAG_INTEGER)?; // version
    sd.expect(TAG_SET)?; // digestAlgorithms
    let encap = sd.expect(TAG_SEQUENCE)?;
    let mut e = Reader(encap.value);
    if e.expect(TAG_OID)?.value != OID_TST_INFO {
        return None;
    }
    let tst_info = Reader(e.expect(TAG_CTX0)?.value)
        .expect(TAG_OCTET_STRING)?
        .value;
    let mut certificates = Vec::new();
    let mut next = sd.next()?;
    if next.tag == TAG_CTX0 {
        certificates.extend(
            Reader(next.value)
                .filter(|c| c.tag == TAG_SEQUENCE)
                .map(|c| c.full),
        );
        next = sd.next()?;
    }
    if next.tag == TAG_CTX1 {
        next = sd.next()?; // crls
    }
    if next.tag != TAG_SET {
        return None;
    }
    // Exactly the first SignerInfo: TSAs sign once.
    let si = Reader(next.value).expect(TAG_SEQUENCE)?;
    let mut si = Reader(si.value);
    si.expect(TAG_INTEGER)?;
    si.next()?; // sid
    let digest_alg = hash_alg(alg_oid(si.expect(TAG_SEQUENCE)?)?)?;
    let attrs = si.expect(TAG_CTX0)?;
    si.expect(TAG_SEQUENCE)?; // signatureAlgorithm: the key and digest decide
    let signature = si.expect(TAG_OCTET_STRING)?.value;

    let mut signed_attrs = attrs.full.to_vec();
    signed_attrs[0] = TAG_SET;
    let mut message_digest = None;
    let mut content_type_ok = false;
    for attr in Reader(attrs.value) {
        let mut ar = Reader(attr.value);
        let oid = ar.expect(TAG_OID)?.value;
        let values = ar.expect(TAG_SET)?;
        if oid == OID_MESSAGE_DIGEST {
            message_digest = Some(Reader(values.value).expect(TAG_OCTET_STRING)?.value);
        } else if oid == OID_CONTENT_TYPE {
            content_type_ok = Reader(values.value).expect(TAG_OID)?.value == OID_TST_INFO;
        }
    }
    if !content_type_ok {
        return None;
    }

    let tst = Reader(tst_info).expect(TAG_SEQUENCE)?;
    let mut t = Reader(tst.value);
    t.expect(TAG_INTEGER)?; // version
    t.expect(TAG_OID)?; // policy
    let mi = t.expect(TAG_SEQUENCE)?;
    let mut mi = Reader(mi.value);
    let imprint_alg = hash_alg(alg_oid(mi.expect(TAG_SEQUENCE)?)?)?;
    let imprint = mi.expect(TAG_OCTET_STRING)?.value;
    t.expect(TAG_INTEGER)?; // serialNumber
    let gen_time = parse_generalized_time(t.skip_to(TAG_GENERALIZED_TIME)?.value)?;
    Some(Token {
        tst_info,
        imprint_alg,
        imprint,
        gen_time,
        digest_alg,
        signed_attrs,
        message_digest: message_digest?,
        signature,
        certificates,
    })
}

/// `YYYYMMDDHHMMSS[.f*]Z`; fractional seconds are allowed by RFC 3161 and dropped.
fn parse_generalized_time(b: &[u8]) -> Option<SystemTime> {
    GeneralizedTime::parse(b)?.whole_seconds()
}

/// Whether `raw` verifies over `message` with `key`, the digest given by the CMS signer info.
fn cms_signature_verifies(
    key: &PublicKey,
    digest_alg: &'static digest::Algorithm,
    message: &[u8],
    raw: &[u8],
) -> bool {
    let algorithm =
        Hash::of_digest(digest_alg).and_then(|h| algorithms::asn1(KeyKind::from(key.algorithm), h));
    super::asn1_verifies(key, algorithm, message, raw)
}

/// Verifies a timestamp token over `signature` against the timestamp authorities of `root`;
/// returns the authenticated time and the authority's name.
pub fn verify(
    token: &[u8],
    signature: &[u8],
    root: &TrustRoot,
) -> Result<(SystemTime, String), Failure> {
    let t = parse(token).ok_or_else(|| invalid("the RFC 3161 timestamp is not a valid token"))?;
    if digest::digest(t.imprint_alg, signature).as_ref() != t.imprint {
        return Err(invalid("the timestamp is for another signature"));
    }
    if digest::digest(t.digest_alg, t.tst_info).as_ref() != t.message_digest {
        return Err(invalid(
            "the timestamp's signed attributes do not match its content",
        ));
    }
    let mut last = invalid("no timestamp authority of the trust root signed this timestamp");
    for tsa in &root.timestamp_authorities {
        match verify_with(&t, tsa) {
            Ok(()) => return Ok((t.gen_time, tsa.name.clone())),
            Err(f) => last = f,
        }
    }
    Err(last)
}

fn verify_with(t: &Token<'_>, tsa: &CertificateAuthority) -> Result<(), Failure> {
    use der::{Decode, Encode};
    if !tsa.valid_for.contains(t.gen_time) {
        return Err(invalid(format!(
            "timestamp authority {:?} was not valid at the timestamp's time",
            tsa.name
        )));
    }
    // The signing certificate: the leaf of the trust root's chain, or one the token carries
    // that chains to it.
    let (anchor, rest) = tsa
        .chain
        .split_last()
        .ok_or_else(|| invalid("empty timestamp authority chain"))?;
    let mut candidates: Vec<&[u8]> = tsa.chain.iter().map(Vec::as_slice).collect();
    candidates.extend(t.certificates.iter().copied());
    let anchor_der = CertificateDer::from(anchor.as_slice());
    let anchor_ta = webpki::anchor_from_trusted_cert(&anchor_der)
        .map_err(|e| invalid(format!("timestamp authority anchor: {e}")))?;
    let inter: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let at = UnixTime::since_unix_epoch(
        t.gen_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    );
    for der in candidates {
        let Ok(cert) = x509_cert::Certificate::from_der(der) else {
            continue;
        };
        let Ok(spki) = cert.tbs_certificate().subject_public_key_info().to_der() else {
            continue;
        };
        let Ok(key) = PublicKey::from_der(&spki) else {
            continue;
        };
        if !cms_signature_verifies(&key, t.digest_alg, &t.signed_attrs, t.signature) {
            continue;
        }
        let leaf = CertificateDer::from(der);
        // A self-signed single-certificate TSA is its own anchor.
        if der == anchor.as_slice() {
            return Ok(());
        }
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| invalid(format!("timestamp authority certificate: {e}")))?;
        return ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor_ta),
                &inter,
                at,
                webpki::KeyUsage::required(TIME_STAMPING),
                None,
                None,
            )
            .map(|_| ())
            .map_err(|e| {
                invalid(format!(
                    "the timestamp authority's certificate does not chain to {:?} at the timestamp's time: {e:?}",
                    tsa.name
                ))
            });
    }
    Err(invalid(format!(
        "the timestamp's signature does not verify with a certificate of {:?}",
        tsa.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_with_and_without_fractions() {
        let t = parse_generalized_time(b"20261122134906Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_795_355_346
        );
        assert_eq!(parse_generalized_time(b"20261122134906.027Z"), Some(t));
        for bad in [
            &b"2026112213490Z"[..],
            b"20261322134906Z",
            b"20261122134906",
            b"2026112213490xZ",
        ] {
            assert!(parse_generalized_time(bad).is_none());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }
    }

    /// Tokens made by `openssl ts` for a throwaway TSA verify; forgeries do not.
    #[test]
    fn openssl_timestamps_verify_and_forgeries_do_not() {
        let Some(tsa) = super::super::testkit::Tsa::new() else {
            return;
        };
        let signature = b"the DSSE signature bytes";
        let token = tsa.stamp(signature);
        let (leaf, root_cert) = (tsa.leaf_der.clone(), tsa.root_der.clone());
        let authority = |chain: Vec<Vec<u8>>| TrustRoot {
            timestamp_authorities: vec![tsa.authority(chain)],
            ..TrustRoot::default()
        };
        let root = authority(vec![leaf.clone(), root_cert.clone()]);
        let (at, name) = verify(&token, signature, &root).unwrap();
        assert_eq!(name, "test tsa");
        let now = SystemTime::now();
        assert!(at <= now + Duration::from_secs(5) && at + Duration::from_secs(600) > now);
        // Also with only the root in the trust root: the token carries the TSA certificate.
        verify(&token, signature, &authority(vec![root_cert.clone()])).unwrap();

        // For another signature.
        assert_eq!(
            verify(&token, b"another signature", &root)
                .unwrap_err()
                .reason,
            Reason::TimestampInvalid
        );
        // Another TSA's trust root.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut op = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        op.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other_root = op.self_signed(&other).unwrap();
        assert!(
            verify(
                &token,
                signature,
                &authority(vec![other_root.der().to_vec()])
            )
            .is_err()
        );
        // A TSA window that closed before the timestamp.
        let mut closed = root.clone();
        closed.timestamp_authorities[0].valid_for.end = Some(SystemTime::UNIX_EPOCH);
        assert!(verify(&token, signature, &closed).is_err());
        // A flipped byte in the TSA's signature.
        let mut bad = token.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(verify(&bad, signature, &root).is_err());
    }
}
