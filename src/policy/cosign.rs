//! The `cosign` authority: which public keys are trusted.
//!
//! Keys are parsed at load time so that a bad key is a load error naming the file and line, not
//! a failure at admission time. What is kept is the DER `SubjectPublicKeyInfo` and its algorithm;
//! `verify::cosign` builds verifiers from that.

use std::path::Path;

use der::Decode;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::image::Digest;

/// The YAML form: `cosign: {keys: [{inline: PEM} | {file: path}]}`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CosignSpec {
    pub keys: Vec<KeySource>,
}

/// Where a public key comes from: `inline` PEM or a PEM `file` (relative to the policy file).
/// Exactly one of the two.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A trusted Cosign key, parsed.
#[derive(Debug, Clone)]
pub struct CosignAuthority {
    pub keys: Vec<PublicKey>,
}

/// Public-key algorithms signet verifies Cosign signatures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::EcdsaP521 => "ecdsa-p521",
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// One trusted public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// DER `SubjectPublicKeyInfo`.
    pub der: Vec<u8>,
    pub algorithm: KeyAlgorithm,
    /// SHA-256 of the DER, to name the key in messages without printing it.
    pub fingerprint: Digest,
}

impl PublicKey {
    /// Parses one PEM `PUBLIC KEY`. Private keys and certificates are rejected by name, since
    /// pasting the wrong file is the common mistake.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let label = pem
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"));
        match label {
            None => return Err("not a PEM block (expected -----BEGIN PUBLIC KEY-----)".into()),
            Some("PUBLIC KEY") => {}
            Some(l) if l.contains("PRIVATE KEY") => {
                return Err(format!(
                    "this is a private key ({l}); the policy needs the public key (cosign.pub)"
                ));
            }
            Some("CERTIFICATE") => {
                return Err("this is a certificate; the policy needs a PEM PUBLIC KEY".into());
            }
            Some(l) => return Err(format!("PEM block {l:?} is not a PUBLIC KEY")),
        }
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("cannot read the PEM public key: {e}"))?;
        Self::from_der(der.as_ref())
    }

    /// Parses a DER `SubjectPublicKeyInfo`.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| format!("not a valid SubjectPublicKeyInfo: {e}"))?;
        let oid = spki.algorithm.oid.to_string();
        let algorithm = match oid.as_str() {
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .ok_or("EC key without a named curve")?;
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => KeyAlgorithm::EcdsaP256,
                    "1.3.132.0.34" => KeyAlgorithm::EcdsaP384,
                    "1.3.132.0.35" => KeyAlgorithm::EcdsaP521,
                    c => {
                        return Err(format!(
                            "EC curve {c} is not supported (P-256, P-384, P-521 are)"
                        ));
                    }
                }
            }
            "1.2.840.113549.1.1.1" => KeyAlgorithm::Rsa,
            "1.3.101.112" => KeyAlgorithm::Ed25519,
            o => return Err(format!("key algorithm {o} is not supported")),
        };
        Ok(PublicKey {
            der: der.to_vec(),
            algorithm,
            fingerprint: Digest::sha256_of(der),
        })
    }
}

impl CosignAuthority {
    /// Resolves a spec, reading key files relative to `base`.
    pub fn load(spec: &CosignSpec, base: &Path) -> Result<(Self, Vec<u8>), String> {
        if spec.keys.is_empty() {
            return Err("cosign.keys is empty: list at least one public key".into());
        }
        let mut keys = Vec::with_capacity(spec.keys.len());
        let mut material = Vec::new();
        for (i, source) in spec.keys.iter().enumerate() {
            let pem = match (&source.inline, &source.file) {
                (Some(pem), None) => pem.clone(),
                (None, Some(f)) => {
                    let path = base.join(f);
                    std::fs::read_to_string(&path).map_err(|e| {
                        format!("cosign.keys[{i}]: cannot read {}: {e}", path.display())
                    })?
                }
                _ => {
                    return Err(format!(
                        "cosign.keys[{i}]: give exactly one of inline or file"
                    ));
                }
            };
            let key = PublicKey::from_pem(&pem).map_err(|e| format!("cosign.keys[{i}]: {e}"))?;
            material.extend_from_slice(&key.der);
            keys.push(key);
        }
        Ok((CosignAuthority { keys }, material))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generated_keys_and_rejects_wrong_pem() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = PublicKey::from_pem(&kp.public_key_pem()).unwrap();
        assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP256);
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            PublicKey::from_pem(&kp.public_key_pem()).unwrap().algorithm,
            KeyAlgorithm::EcdsaP384
        );
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            PublicKey::from_pem(&kp.public_key_pem()).unwrap().algorithm,
            KeyAlgorithm::Ed25519
        );

        let err = PublicKey::from_pem(&kp.serialize_pem()).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let err = PublicKey::from_pem("hello").unwrap_err();
        assert!(err.contains("not a PEM block"), "{err}");
        let err =
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(err.contains("SubjectPublicKeyInfo"), "{err}");
    }
}
