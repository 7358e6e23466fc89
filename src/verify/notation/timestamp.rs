//! RFC 3161 timestamp countersignatures (`io.cncf.notary.timestampSignature`) of Notary
//! Project signatures: the Notary policy on top of the shared token verifier
//! ([`crate::verify::pkix::timestamp`]).
//!
//! Checks, per the Notary Project spec and RFC 3161/5816: the content is a `TSTInfo`; its
//! `messageImprint` is the hash of the envelope's signature bytes; the signed attributes carry
//! the content type, a `messageDigest` equal to the hash of the `TSTInfo`, and an ESS
//! signing-certificate (v2 or v1) naming the TSA certificate; the signature over the signed
//! attributes verifies with the TSA certificate; the TSA certificate has a critical EKU of
//! exactly timeStamping and chains (webpki, at `genTime`) to a certificate of a `tsa` trust
//! store. `genTime` keeps its fractional seconds.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::SystemTime;

use aws_lc_rs::digest;
use const_oid::db::rfc5280 as oids;
use der::Decode;
use rustls_pki_types::UnixTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};

use super::CheckError;
use crate::verify::pkix::algorithms::{
    self, Family, KeyKind, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION,
};
use crate::verify::pkix::der::Walker;
use crate::verify::pkix::timestamp::{
    self as rfc3161, ChainError, ContentError, SignatureError, TimeStampingEku, Token,
};

// For tests and the fuzz targets, which build trust stores from real tokens.
#[cfg(any(test, fuzzing))]
pub(super) use crate::verify::pkix::timestamp::token_certificates;

/// The largest token parsed.
const MAX_TOKEN: usize = 256 * 1024;

/// The DER walker, with errors worded for timestamps (for `genTime`).
const W: Walker<CheckError> = Walker { context: bad_str };

fn bad_str(what: &str) -> CheckError {
    bad(what)
}

fn bad(what: impl Into<String>) -> CheckError {
    CheckError::Timestamp(format!("the timestamp countersignature {}", what.into()))
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
    let t = rfc3161::parse(token).map_err(|e| bad(e.0))?;
    match t.check_content(signature) {
        Ok(()) => {}
        Err(ContentError::OtherSignature) => {
            return Err(bad(
                "does not timestamp this signature (messageImprint differs from the signature's \
                 hash)",
            ));
        }
        Err(ContentError::NoContentType) => {
            return Err(bad("has no content-type attribute naming TSTInfo"));
        }
        Err(ContentError::NoMessageDigest | ContentError::MessageDigest) => {
            return Err(bad("has a messageDigest that does not match its TSTInfo"));
        }
    }
    let gen_time = W.generalized_time(t.gen_time)?;
    let accuracy = t.accuracy().map_err(|e| bad(e.0))?;
    let (ess_alg, ess_hash) = t
        .signing_certificate
        .clone()
        .map_err(|e| bad(e.0))?
        .ok_or_else(|| bad("has no signing-certificate attribute"))?;
    let signer_der = t
        .certificates
        .iter()
        .copied()
        .find(|c| digest::digest(ess_alg, c).as_ref() == ess_hash)
        .ok_or_else(|| bad("does not carry the TSA certificate its signing-certificate names"))?;
    let signer = Certificate::from_der(signer_der)
        .map_err(|_| bad("carries an unreadable TSA certificate"))?;
    verify_signer(&t, &signer)?;
    check_tsa_cert(&signer)?;

    // The TSA certificate chains to a tsa trust store at genTime.
    let intermediates: Vec<&[u8]> = t
        .certificates
        .iter()
        .copied()
        .filter(|c| *c != signer_der)
        .collect();
    let at = gen_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| bad("has a genTime before 1970"))?;
    let path = rfc3161::chain_at(
        signer_der,
        &intermediates,
        tsa_certs,
        UnixTime::since_unix_epoch(at),
        TimeStampingEku::RequiredIfPresent,
    )
    .map_err(|e| match e {
        ChainError::Unusable(e) => bad(format!("has an unusable TSA certificate: {e}")),
        ChainError::NoPath(e) => CheckError::Timestamp(format!(
            "the timestamp's TSA certificate ({}) does not chain to a tsa trust store: {e}",
            signer.tbs_certificate().subject()
        )),
    })?;
    let mut chain = vec![signer_der.to_vec()];
    chain.extend(path.intermediates);
    // The store certificate the path ended at.
    if !path.anchor.is_empty() && !chain.contains(&path.anchor) {
        chain.push(path.anchor);
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

/// The TSA's signature, with an RSA or EC key: for RSA the signature algorithm must be
/// rsaEncryption or name the SignerInfo's own hash.
fn verify_signer(t: &Token<'_>, signer: &Certificate) -> Result<(), CheckError> {
    let spki = signer.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let alg_oid = &t.signature_alg;
    let hash = t.hash();
    let key_oid = spki.algorithm.oid.to_string();
    let kind = if key_oid == OID_RSA_ENCRYPTION {
        let named = alg_oid == OID_RSA_ENCRYPTION
            || algorithms::x509_signature(alg_oid) == Some((Family::Rsa, hash));
        if !named {
            return Err(bad(format!(
                "uses signature algorithm {alg_oid}, which signet does not support for RSA"
            )));
        }
        KeyKind::Rsa
    } else if key_oid == OID_EC_PUBLIC_KEY {
        let curve = algorithms::named_curve(spki).unwrap_or_default();
        KeyKind::from_curve(&curve)
            .filter(|k| algorithms::asn1(*k, hash).is_some())
            .ok_or_else(|| {
                bad(format!(
                    "uses an EC key ({curve}) and digest (SHA-{}) signet does not support",
                    hash.bits()
                ))
            })?
    } else {
        return Err(bad("has a TSA key that is neither RSA nor EC"));
    };
    t.verify_signature(kind, key).map_err(|e| match e {
        SignatureError::Unsupported => bad(format!(
            "uses signature algorithm {alg_oid}, which signet does not support for RSA"
        )),
        SignatureError::Invalid => {
            bad("has a signature that does not verify with the TSA certificate")
        }
    })
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
