//! A Key Vault key's JSON Web Key (RFC 7517/7518) as the DER `SubjectPublicKeyInfo` that
//! Cosign public keys are written in: EC keys on P-256, P-384 and P-521 (`kty` `EC` or
//! `EC-HSM`) and RSA keys of 2048 bits or more (`RSA`, `RSA-HSM`). Private members, if a JWK
//! ever held them, are never read.
//!
//! Pure: must not import anything with I/O (reqwest, tokio), nor `policy` or `verify`.

use base64::Engine;
use der::Encode;
use der::asn1::{BitString, ObjectIdentifier, UintRef};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits.
const MAX_RSA_BITS: usize = 16384;

/// The public members of a JSON Web Key, as Key Vault returns them in `key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// Why a JWK is not a usable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("key type {0:?} is not supported (EC or RSA)")]
    KeyType(String),
    #[error("curve {0:?} is not supported (P-256, P-384 or P-521)")]
    Curve(String),
    #[error("member {0} is missing")]
    Missing(&'static str),
    #[error("member {0} is not base64url")]
    Encoding(&'static str),
    #[error("member {member} is {len} bytes, more than the curve's {max}")]
    Coordinate {
        member: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the RSA modulus has {0} bits; between {MIN_RSA_BITS} and {MAX_RSA_BITS} are accepted")]
    RsaSize(usize),
    #[error("the RSA public exponent is not an odd number above 1")]
    RsaExponent,
    #[error("cannot encode the key: {0}")]
    Encode(#[source] der::Error),
}

impl Jwk {
    /// The DER `SubjectPublicKeyInfo` of this key.
    pub fn spki_der(&self) -> Result<Vec<u8>, JwkError> {
        let spki = match self.kty.as_str() {
            "EC" | "EC-HSM" => self.ec()?,
            "RSA" | "RSA-HSM" => self.rsa()?,
            other => return Err(JwkError::KeyType(other.to_string())),
        };
        spki.to_der().map_err(JwkError::Encode)
    }

    /// The key as a `PUBLIC KEY` PEM block, as Cosign writes public keys.
    pub fn spki_pem(&self) -> Result<String, JwkError> {
        Ok(pem("PUBLIC KEY", &self.spki_der()?))
    }

    fn ec(&self) -> Result<SubjectPublicKeyInfoOwned, JwkError> {
        let crv = self.crv.as_deref().ok_or(JwkError::Missing("crv"))?;
        let (curve, size) = match crv {
            "P-256" => (SECP256R1, 32),
            "P-384" => (SECP384R1, 48),
            "P-521" => (SECP521R1, 66),
            other => return Err(JwkError::Curve(other.to_string())),
        };
        let mut point = vec![0x04];
        for (member, value) in [("x", &self.x), ("y", &self.y)] {
            let bytes = decode(member, value.as_deref())?;
            if bytes.len() > size {
                return Err(JwkError::Coordinate {
                    member,
                    len: bytes.len(),
                    max: size,
                });
            }
            // RFC 7518 wants full-length coordinates; pad a short one rather than refuse it.
            point.extend(std::iter::repeat_n(0, size - bytes.len()));
            point.extend_from_slice(&bytes);
        }
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(der::Any::encode_from(&curve).map_err(JwkError::Encode)?),
            },
            subject_public_key: BitString::from_bytes(&point).map_err(JwkError::Encode)?,
        })
    }

    fn rsa(&self) -> Result<SubjectPublicKeyInfoOwned, JwkError> {
        let n = decode("n", self.n.as_deref())?;
        let e = decode("e", self.e.as_deref())?;
        let n = strip_zeros(&n);
        let e = strip_zeros(&e);
        let bits = n
            .first()
            .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(JwkError::RsaSize(bits));
        }
        if e.is_empty() || e.last().is_some_and(|b| b & 1 == 0) || e == [1] {
            return Err(JwkError::RsaExponent);
        }
        #[derive(der::Sequence)]
        struct RsaPublicKey<'a> {
            modulus: UintRef<'a>,
            public_exponent: UintRef<'a>,
        }
        let key = RsaPublicKey {
            modulus: UintRef::new(n).map_err(JwkError::Encode)?,
            public_exponent: UintRef::new(e).map_err(JwkError::Encode)?,
        }
        .to_der()
        .map_err(JwkError::Encode)?;
        Ok(SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(der::Any::from(der::asn1::Null)),
            },
            subject_public_key: BitString::from_bytes(&key).map_err(JwkError::Encode)?,
        })
    }
}

fn decode(member: &'static str, value: Option<&str>) -> Result<Vec<u8>, JwkError> {
    let value = value.ok_or(JwkError::Missing(member))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| JwkError::Encoding(member))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// A PEM block of `der`, lines of 64 characters.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// The SPKI built from a JWK is byte for byte the one aws-lc-rs writes for the same key.
    #[test]
    fn ec_keys_on_every_curve_match_an_independent_encoder() {
        for (alg, crv, size) in [
            (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, "P-256", 32),
            (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, "P-384", 48),
            (&signature::ECDSA_P521_SHA512_ASN1_SIGNING, "P-521", 66),
        ] {
            let pair = EcdsaKeyPair::generate(alg).unwrap();
            let point = pair.public_key().as_ref();
            assert_eq!(point.len(), 1 + 2 * size);
            let jwk = Jwk {
                kty: "EC".into(),
                crv: Some(crv.into()),
                x: Some(b64(&point[1..=size])),
                y: Some(b64(&point[1 + size..])),
                ..Jwk::default()
            };
            let expected = pair.public_key().as_der().unwrap();
            assert_eq!(jwk.spki_der().unwrap(), expected.as_ref(), "{crv}");
            let hsm = Jwk {
                kty: "EC-HSM".into(),
                ..jwk.clone()
            };
            assert_eq!(hsm.spki_der().unwrap(), expected.as_ref(), "{crv} HSM");
            assert!(
                jwk.spki_pem()
                    .unwrap()
                    .starts_with("-----BEGIN PUBLIC KEY-----\n")
            );
        }
    }

    #[test]
    fn rsa_keys_match_an_independent_encoder() {
        let pair = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(public);
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some(b64(&parts.n)),
            e: Some(b64(&parts.e)),
            ..Jwk::default()
        };
        assert_eq!(jwk.spki_der().unwrap(), public.as_der().unwrap().as_ref());
        // A leading zero byte on the modulus (as some encoders write) changes nothing.
        let mut padded = vec![0];
        padded.extend_from_slice(&parts.n);
        let jwk0 = Jwk {
            kty: "RSA-HSM".into(),
            n: Some(b64(&padded)),
            ..jwk.clone()
        };
        assert_eq!(jwk0.spki_der().unwrap(), public.as_der().unwrap().as_ref());
    }

    #[test]
    fn unusable_keys_are_refused_with_the_reason() {
        let ec = |crv: &str, x: Option<&str>| Jwk {
            kty: "EC".into(),
            crv: Some(crv.into()),
            x: x.map(str::to_string),
            y: Some(b64(&[1; 32])),
            ..Jwk::default()
        };
        assert_eq!(
            ec("P-256K", Some("AA")).spki_der(),
            Err(JwkError::Curve("P-256K".into()))
        );
        assert_eq!(ec("P-256", None).spki_der(), Err(JwkError::Missing("x")));
        assert_eq!(
            ec("P-256", Some("!!")).spki_der(),
            Err(JwkError::Encoding("x"))
        );
        assert!(matches!(
            ec("P-256", Some(&b64(&[1; 33]))).spki_der(),
            Err(JwkError::Coordinate { member: "x", .. })
        ));
        let oct = Jwk {
            kty: "oct".into(),
            ..Jwk::default()
        };
        assert_eq!(oct.spki_der(), Err(JwkError::KeyType("oct".into())));
        let small = Jwk {
            kty: "RSA".into(),
            n: Some(b64(&[0xff; 128])),
            e: Some("AQAB".into()),
            ..Jwk::default()
        };
        assert_eq!(small.spki_der(), Err(JwkError::RsaSize(1024)));
        let even = Jwk {
            n: Some(b64(&[0xff; 256])),
            e: Some(b64(&[2])),
            ..small.clone()
        };
        assert_eq!(even.spki_der(), Err(JwkError::RsaExponent));
    }
}
