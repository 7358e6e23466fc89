//! Cosign verification: key-based signatures from the `sha256-<hex>.sig` tag.
//!
//! A signature is trusted when (1) it verifies with one of the authority's keys over the exact
//! payload bytes, and (2) that payload is a Cosign simple-signing document whose
//! `critical.image.docker-manifest-digest` is the digest being admitted. Checking (2) is what
//! stops a valid signature of another image being replayed. The only module that knows the
//! `sigstore` crate; it is used for the key-type-aware signature check.
//!
//! Hash choice: like cosign's CLI, ECDSA P-256 and P-384 signatures are checked over SHA-256 of
//! the payload, and additionally P-384 over SHA-384 and P-521 over SHA-512 (what other signers
//! pair with those curves). RSA signatures are PKCS#1 v1.5 with SHA-256; Ed25519 is pure.

use aws_lc_rs::signature as sig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::{CosignSignature, Evidence, Failure, Outcome};
use crate::image::Digest;
use crate::policy::cosign::{CosignAuthority, KeyAlgorithm, PublicKey};
use crate::reason::Reason;

/// The media type of a Cosign simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The parts of the simple-signing payload signet relies on. Unknown fields are allowed (the
/// format lets signers add `optional` claims); the `critical` section must be exact.
#[derive(serde::Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(serde::Deserialize)]
struct Critical {
    image: CriticalImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Checks the Cosign signatures of `digest` against the keys of one authority. Any one valid
/// signature suffices. The failure reported is the most specific one seen: a signature that
/// verifies but names another digest says so, rather than "no valid signature".
pub fn verify_with_keys(
    authority: &CosignAuthority,
    digest: &Digest,
    signatures: &[CosignSignature],
) -> Outcome {
    if signatures.is_empty() {
        return Outcome::Failed(Failure::new(
            Reason::NoSignature,
            "no Cosign signature (looked for the sha256-<hex>.sig tag)",
        ));
    }
    let mut best: Option<Failure> = None;
    let mut keep = |f: Failure| {
        let rank = |r: Reason| match r {
            Reason::PayloadMismatch => 3,
            Reason::Malformed => 2,
            Reason::UntrustedSigner => 1,
            _ => 0,
        };
        if best
            .as_ref()
            .is_none_or(|b| rank(f.reason) > rank(b.reason))
        {
            best = Some(f);
        }
    };
    for (i, s) in signatures.iter().enumerate() {
        let raw = match STANDARD.decode(s.signature.trim()) {
            Ok(raw) => raw,
            Err(e) => {
                keep(Failure::new(
                    Reason::Malformed,
                    format!("signature {i}: the signature annotation is not base64: {e}"),
                ));
                continue;
            }
        };
        let Some(key) = authority
            .keys
            .iter()
            .find(|k| key_verifies(k, &s.payload, &raw))
        else {
            keep(Failure::new(
                Reason::UntrustedSigner,
                format!(
                    "{} signature(s) found, none verifies with the trusted key(s) {}",
                    signatures.len(),
                    key_names(authority)
                ),
            ));
            continue;
        };
        match check_payload(&s.payload, digest) {
            Ok(()) => {
                return Outcome::Trusted(Evidence {
                    summary: format!(
                        "cosign signature verified with key {} ({})",
                        key.fingerprint.short(),
                        key.algorithm.as_str()
                    ),
                    logged: Vec::new(),
                });
            }
            Err(f) => keep(f),
        }
    }
    Outcome::Failed(
        best.unwrap_or_else(|| Failure::new(Reason::SignatureInvalid, "no valid signature")),
    )
}

fn key_names(authority: &CosignAuthority) -> String {
    authority
        .keys
        .iter()
        .map(|k| format!("{} ({})", k.fingerprint.short(), k.algorithm.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `raw` is a valid signature of `payload` by `key`.
pub fn key_verifies(key: &PublicKey, payload: &[u8], raw: &[u8]) -> bool {
    let via_sigstore = |k: Result<CosignVerificationKey, _>| {
        k.ok()
            .is_some_and(|k| k.verify_signature(Signature::Raw(raw), payload).is_ok())
    };
    match key.algorithm {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa | KeyAlgorithm::Ed25519 => {
            via_sigstore(CosignVerificationKey::try_from_der(&key.der))
        }
        // cosign signs P-384 keys over SHA-256 by default; other signers use SHA-384.
        KeyAlgorithm::EcdsaP384 => {
            ec_point(&key.der).is_some_and(|point| {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA256_ASN1, &point)
                    .verify(payload, raw)
                    .is_ok()
            }) || via_sigstore(CosignVerificationKey::try_from_der(&key.der))
        }
        KeyAlgorithm::EcdsaP521 => via_sigstore(CosignVerificationKey::try_from_der(&key.der)),
    }
}

/// The raw EC point of an SPKI, as aws-lc-rs wants it.
fn ec_point(spki_der: &[u8]) -> Option<Vec<u8>> {
    use der::Decode;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der).ok()?;
    spki.subject_public_key.as_bytes().map(|b| b.to_vec())
}

/// The payload must be a Cosign container-image signature naming exactly `digest`.
fn check_payload(payload: &[u8], digest: &Digest) -> Result<(), Failure> {
    let doc: SimpleSigning = serde_json::from_slice(payload).map_err(|e| {
        Failure::new(
            Reason::Malformed,
            format!("the signed payload is not a Cosign simple-signing document: {e}"),
        )
    })?;
    if doc.critical.kind != "cosign container image signature" {
        return Err(Failure::new(
            Reason::Malformed,
            format!(
                "the signed payload has type {:?}, not a container image signature",
                doc.critical.kind
            ),
        ));
    }
    if doc.critical.image.docker_manifest_digest != digest.as_str() {
        return Err(Failure::new(
            Reason::PayloadMismatch,
            format!(
                "a trusted key signed {}, not this image's digest",
                doc.critical.image.docker_manifest_digest
            ),
        ));
    }
    Ok(())
}

/// The simple-signing payload cosign writes for `digest` in `repository`: for test signers and
/// the benchmarks, which need byte-for-byte what cosign produces.
pub fn simple_signing_payload(repository: &str, digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repository}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    struct Signer(EcdsaKeyPair);

    impl Signer {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            Signer(
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                    .unwrap(),
            )
        }
        fn authority(&self) -> CosignAuthority {
            // SPKI for a P-256 point: fixed prefix + uncompressed point.
            let mut der =
                hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
            der.extend_from_slice(self.0.public_key().as_ref());
            CosignAuthority {
                keys: vec![PublicKey::from_der(&der).unwrap()],
            }
        }
        fn sign(&self, payload: &[u8]) -> CosignSignature {
            let s = self.0.sign(&SystemRandom::new(), payload).unwrap();
            CosignSignature {
                payload: payload.to_vec().into(),
                signature: STANDARD.encode(s.as_ref()),
                certificate: None,
                chain: None,
                bundle: None,
            }
        }
    }

    fn reason(o: Outcome) -> Reason {
        match o {
            Outcome::Trusted(_) => Reason::Trusted,
            Outcome::Failed(f) => f.reason,
        }
    }

    #[test]
    fn verdicts() {
        let signer = Signer::new();
        let other = Signer::new();
        let d1: Digest = D1.parse().unwrap();
        let good = signer.sign(&simple_signing_payload("r.io/a", &d1));
        let auth = signer.authority();
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, std::slice::from_ref(&good))),
            Reason::Trusted
        );
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, &[])),
            Reason::NoSignature
        );
        // A trusted signature of another digest is a replay.
        let d2: Digest = D2.parse().unwrap();
        assert_eq!(
            reason(verify_with_keys(&auth, &d2, std::slice::from_ref(&good))),
            Reason::PayloadMismatch
        );
        // Signed by someone else.
        assert_eq!(
            reason(verify_with_keys(
                &other.authority(),
                &d1,
                std::slice::from_ref(&good)
            )),
            Reason::UntrustedSigner
        );
        // Tampered payload.
        let mut tampered = good.clone();
        tampered.payload = simple_signing_payload("r.io/b", &d1).into();
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, &[tampered])),
            Reason::UntrustedSigner
        );
        // Garbage signature annotation and garbage payload.
        let mut garbage = good.clone();
        garbage.signature = "%%%".into();
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, &[garbage])),
            Reason::Malformed
        );
        let junk = signer.sign(b"not json");
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, &[junk])),
            Reason::Malformed
        );
        // One good among bad ones is enough.
        let bad = other.sign(&simple_signing_payload("r.io/a", &d1));
        assert_eq!(
            reason(verify_with_keys(&auth, &d1, &[bad, good])),
            Reason::Trusted
        );
    }
}
