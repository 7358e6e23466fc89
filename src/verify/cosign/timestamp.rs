//! RFC 3161 signed timestamps from a Sigstore bundle's `timestampVerificationData`: the
//! Sigstore policy on top of the shared token verifier ([`crate::verify::pkix::timestamp`]).
//!
//! The token must timestamp the signature being checked, and its CMS signature must verify
//! with the key of a timestamp authority of the trust root (its own certificate, or one the
//! token carries that chains to it), valid at genTime per the trust root and with the
//! timeStamping EKU. The authenticated time is genTime to the whole second.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::policy::cosign::PublicKey;
use crate::policy::cosign::trust_root::{CertificateAuthority, TrustRoot};
use crate::reason::Reason;
use crate::verify::Failure;
use crate::verify::pkix::algorithms::KeyKind;
use crate::verify::pkix::der::GeneralizedTime;
use crate::verify::pkix::timestamp::{
    ChainError, ContentError, TimeStampingEku, Token, chain_at, parse,
};

fn invalid(d: impl Into<String>) -> Failure {
    Failure::new(Reason::TimestampInvalid, d)
}

/// `YYYYMMDDHHMMSS[.f*]Z`; fractional seconds are allowed by RFC 3161 and dropped.
fn parse_generalized_time(b: &[u8]) -> Option<SystemTime> {
    GeneralizedTime::parse(b)?.whole_seconds()
}

/// Verifies a timestamp token over `signature` against the timestamp authorities of `root`;
/// returns the authenticated time and the authority's name.
pub fn verify(
    token: &[u8],
    signature: &[u8],
    root: &TrustRoot,
) -> Result<(SystemTime, String), Failure> {
    let not_a_token = || invalid("the RFC 3161 timestamp is not a valid token");
    let t = parse(token).map_err(|_| not_a_token())?;
    let gen_time = parse_generalized_time(t.gen_time).ok_or_else(not_a_token)?;
    match t.check_content(signature) {
        Ok(()) => {}
        Err(ContentError::OtherSignature) => {
            return Err(invalid("the timestamp is for another signature"));
        }
        Err(ContentError::NoContentType | ContentError::NoMessageDigest) => {
            return Err(not_a_token());
        }
        Err(ContentError::MessageDigest) => {
            return Err(invalid(
                "the timestamp's signed attributes do not match its content",
            ));
        }
    }
    let mut last = invalid("no timestamp authority of the trust root signed this timestamp");
    for tsa in &root.timestamp_authorities {
        match verify_with(&t, gen_time, tsa) {
            Ok(()) => return Ok((gen_time, tsa.name.clone())),
            Err(f) => last = f,
        }
    }
    Err(last)
}

fn verify_with(
    t: &Token<'_>,
    gen_time: SystemTime,
    tsa: &CertificateAuthority,
) -> Result<(), Failure> {
    use der::{Decode, Encode};
    if !tsa.valid_for.contains(gen_time) {
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
    webpki::anchor_from_trusted_cert(&CertificateDer::from(anchor.as_slice()))
        .map_err(|e| invalid(format!("timestamp authority anchor: {e}")))?;
    let inter: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
    let at = UnixTime::since_unix_epoch(
        gen_time
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
        let Some(bits) = super::spki_bits(&key.der) else {
            continue;
        };
        if t.verify_signature(KeyKind::from(key.algorithm), &bits)
            .is_err()
        {
            continue;
        }
        // A self-signed single-certificate TSA is its own anchor.
        if der == anchor.as_slice() {
            return Ok(());
        }
        return chain_at(der, &inter, &[anchor.as_slice()], at, TimeStampingEku::Required)
            .map(|_| ())
            .map_err(|e| match e {
                ChainError::Unusable(e) => {
                    invalid(format!("timestamp authority certificate: {e}"))
                }
                ChainError::NoPath(e) => invalid(format!(
                    "the timestamp authority's certificate does not chain to {:?} at the timestamp's time: {e:?}",
                    tsa.name
                )),
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
