//! The one table from signature algorithms to aws-lc-rs verification algorithms, for every
//! signature the verifiers check: X.509 and CMS signatures (CRLs, OCSP responses, RFC 3161
//! timestamp tokens), JWS and COSE signatures of Notary Project envelopes, and Cosign
//! signatures and transparency-log signatures.
//!
//! A signature is named by the kind of key that made it ([`KeyKind`], from the key's SPKI) and
//! the hash it signs ([`Hash`](enum@Hash)); [`asn1`] answers for DER-encoded signatures, [`fixed`] for the
//! fixed-width ECDSA of JOSE and COSE and [`rsa_pss`] for RSASSA-PSS. What a format accepts is a
//! subset of this table and stays with the format: `None` means signet verifies no such
//! signature.
//!
//! Must not import the formats (`verify::cosign`, `verify::notation`), `policy`, `registry` or
//! anything with I/O.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// rsaEncryption, the SPKI algorithm of RSA keys.
pub const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// id-ecPublicKey, the SPKI algorithm of EC keys (the curve is in the parameters).
pub const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// secp256r1 (P-256).
pub const OID_P256: &str = "1.2.840.10045.3.1.7";
/// secp384r1 (P-384).
pub const OID_P384: &str = "1.3.132.0.34";
/// secp521r1 (P-521).
pub const OID_P521: &str = "1.3.132.0.35";

/// The kind of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

impl KeyKind {
    /// The EC key kind of a named curve (dotted OID).
    pub fn from_curve(curve: &str) -> Option<Self> {
        match curve {
            OID_P256 => Some(Self::EcP256),
            OID_P384 => Some(Self::EcP384),
            OID_P521 => Some(Self::EcP521),
            _ => None,
        }
    }

    /// The curve's own hash (SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521), and
    /// SHA-256 for RSA: what transparency logs sign with.
    pub fn natural_hash(self) -> Hash {
        match self {
            Self::EcP384 => Hash::Sha384,
            Self::EcP521 => Hash::Sha512,
            Self::Rsa | Self::EcP256 | Self::Ed25519 => Hash::Sha256,
        }
    }
}

/// A SHA-2 hash a signature is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash of an aws-lc-rs digest algorithm, if it is one of these.
    pub fn of_digest(d: &'static digest::Algorithm) -> Option<Self> {
        if d == &digest::SHA256 {
            Some(Self::Sha256)
        } else if d == &digest::SHA384 {
            Some(Self::Sha384)
        } else if d == &digest::SHA512 {
            Some(Self::Sha512)
        } else {
            None
        }
    }

    /// The digest algorithm of a hash OID (dotted).
    pub fn digest_of_oid(oid: &str) -> Option<&'static digest::Algorithm> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(&digest::SHA256),
            "2.16.840.1.101.3.4.2.2" => Some(&digest::SHA384),
            "2.16.840.1.101.3.4.2.3" => Some(&digest::SHA512),
            _ => None,
        }
    }

    /// Its output size in bits, for messages.
    pub fn bits(self) -> u16 {
        match self {
            Self::Sha256 => 256,
            Self::Sha384 => 384,
            Self::Sha512 => 512,
        }
    }
}

/// A DER signature (X.509, CMS, Cosign): PKCS#1 v1.5 for RSA, ASN.1 ECDSA, Ed25519 (which
/// hashes internally, whatever `hash` says).
pub fn asn1(key: KeyKind, hash: Hash) -> Option<&'static dyn VerificationAlgorithm> {
    use Hash::*;
    use KeyKind::*;
    Some(match (key, hash) {
        (Rsa, Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (Rsa, Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (Rsa, Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (EcP256, Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (EcP256, Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (EcP384, Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (EcP384, Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        (EcP521, Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
        (Ed25519, _) => &sig::ED25519,
        (EcP256 | EcP384, Sha512) | (EcP521, Sha256 | Sha384) => return None,
    })
}

/// A fixed-width (r ‖ s) ECDSA signature, as JOSE and COSE encode them, over the curve's own
/// hash.
pub fn fixed(curve: KeyKind) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match curve {
        KeyKind::EcP256 => &sig::ECDSA_P256_SHA256_FIXED,
        KeyKind::EcP384 => &sig::ECDSA_P384_SHA384_FIXED,
        KeyKind::EcP521 => &sig::ECDSA_P521_SHA512_FIXED,
        KeyKind::Rsa | KeyKind::Ed25519 => return None,
    })
}

/// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash.
pub fn rsa_pss(hash: Hash) -> &'static dyn VerificationAlgorithm {
    match hash {
        Hash::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
        Hash::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
        Hash::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
    }
}

/// The family of key an X.509 signatureAlgorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
}

/// An X.509 signatureAlgorithm (dotted OID): the key family and hash it names.
pub fn x509_signature(oid: &str) -> Option<(Family, Hash)> {
    Some(match oid {
        "1.2.840.113549.1.1.11" => (Family::Rsa, Hash::Sha256),
        "1.2.840.113549.1.1.12" => (Family::Rsa, Hash::Sha384),
        "1.2.840.113549.1.1.13" => (Family::Rsa, Hash::Sha512),
        "1.2.840.10045.4.3.2" => (Family::Ec, Hash::Sha256),
        "1.2.840.10045.4.3.3" => (Family::Ec, Hash::Sha384),
        "1.2.840.10045.4.3.4" => (Family::Ec, Hash::Sha512),
        _ => return None,
    })
}

/// The named curve (OID, dotted) of an EC key's parameters.
pub fn named_curve(spki: &SubjectPublicKeyInfoOwned) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .map(|o| o.to_string())
}

/// Why an X.509 signature (of a CRL, an OCSP response) does not verify: a phrase that follows
/// what was signed in the caller's message ("a CRL naming … as issuer has a signature…").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum X509SignatureError {
    #[error("uses signature algorithm {0}, which signet does not support")]
    Unsupported(String),
    #[error("has a signature that does not verify")]
    DoesNotVerify,
}

/// Verifies a signature made by the key of `spki` with the X.509 signature algorithm
/// `alg_oid` (CRLs, OCSP responses).
pub fn verify_x509(
    spki: &SubjectPublicKeyInfoOwned,
    alg_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), X509SignatureError> {
    let algorithm = match x509_signature(alg_oid) {
        // The signature algorithm names RSA; a key of another kind fails to verify.
        Some((Family::Rsa, hash)) => asn1(KeyKind::Rsa, hash),
        Some((Family::Ec, hash)) => named_curve(spki)
            .and_then(|c| KeyKind::from_curve(&c))
            .and_then(|k| asn1(k, hash)),
        None => None,
    }
    .ok_or_else(|| X509SignatureError::Unsupported(alg_oid.to_string()))?;
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.raw_bytes())
        .verify(message, signature)
        .map_err(|_| X509SignatureError::DoesNotVerify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_pairs_each_curve_with_the_hashes_signet_accepts() {
        use Hash::*;
        use KeyKind::*;
        let accepted: Vec<_> = [Rsa, EcP256, EcP384, EcP521, Ed25519]
            .into_iter()
            .flat_map(|k| [Sha256, Sha384, Sha512].map(|h| (k, h)))
            .filter(|&(k, h)| asn1(k, h).is_some())
            .collect();
        assert_eq!(
            accepted,
            [
                (Rsa, Sha256),
                (Rsa, Sha384),
                (Rsa, Sha512),
                (EcP256, Sha256),
                (EcP256, Sha384),
                (EcP384, Sha256),
                (EcP384, Sha384),
                (EcP521, Sha512),
                (Ed25519, Sha256),
                (Ed25519, Sha384),
                (Ed25519, Sha512),
            ]
        );
        for k in [Rsa, EcP256, EcP384, EcP521, Ed25519] {
            assert!(asn1(k, k.natural_hash()).is_some(), "{k:?}");
        }
    }
}
