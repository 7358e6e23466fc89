//! Cosign verification: key-based and keyless (Fulcio) signatures from the `sha256-<hex>.sig`
//! tag, and Sigstore bundles (cosign v3 referrers).
//!
//! A signature is trusted when (1) it verifies with one of the authority's keys, or with the
//! key of a Fulcio certificate that chains to the trust root and names a trusted identity, over
//! the exact payload bytes, and (2) that payload names the digest being admitted. Checking (2)
//! is what stops a valid signature of another image being replayed. Keyless signatures (and
//! key-based ones when `tlog.required`) also need a Rekor entry bound to the signature; see
//! [`keyless`], [`rekor`] and [`bundle`]. The only module that knows the `sigstore` crate; it
//! is used for the key-type-aware signature check only, because its keyless path skips checks.
//!
//! [`Cosign`] is the format seam (`verify::format`): `.sig`-tag layers ([`SIG_TAG`]) in the
//! first discovery round, bundle referrers ([`bundle::REFERRER`], of the one list of accepted
//! bundle media types) in the second; nothing to fetch, so the check is the verdict. Must not
//! import `registry`, `discovery`, `decision` or `verify::notation`.
//!
//! Hash choice: like cosign's CLI, ECDSA P-256 and P-384 signatures are checked over SHA-256 of
//! the payload, and additionally P-384 over SHA-384 and P-521 over SHA-512 (what other signers
//! pair with those curves); both are accepted for P-384 because both are sound and signers
//! differ. RSA signatures are PKCS#1 v1.5 with SHA-256 (and RSA-PSS with SHA-256, salt length
//! 32, checked with aws-lc-rs); Ed25519 is pure.

pub mod bundle;
pub mod certificate;
pub mod keyless;
pub mod rekor;
#[cfg(test)]
mod testkit;
pub mod timestamp;

use aws_lc_rs::signature as sig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::format::{self, Artifact, Fetched, Format, Kind, Place, Plan, Source, TagSource};
use super::{Context, Evidence, Failure, MostTelling, Outcome, Subject};
use crate::image::Digest;
use crate::policy::cosign::{CosignAuthority, KeyAlgorithm, PublicKey};
use crate::reason::Reason;
use crate::verify::pkix::algorithms::{self, Hash, KeyKind};

/// The media type of a Cosign simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation holding the PEM Fulcio certificate of a keyless signature.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding the PEM chain a keyless signer attached (not used for trust: only
/// the trust root's intermediates are).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The annotation holding the Rekor bundle (SET and entry) of a signature.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Where discovery finds `.sig`-tag signatures: the first round, since legacy `.sig`
/// signatures are still the common case and cost one request less than bundles.
pub const SIG_TAG: Source = Source {
    stage: 0,
    place: Place::Tag(TagSource {
        suffix: ".sig",
        layer_media_type: SIMPLE_SIGNING_MEDIA_TYPE,
        signature_annotation: SIGNATURE_ANNOTATION,
        title: "the Cosign signature tag",
        layer: "a Cosign layer",
    }),
};

/// A Cosign signature from the `sha256-<hex>.sig` tag: one layer of that manifest.
#[derive(Clone, Debug)]
pub struct CosignSignature {
    /// The simple-signing payload (the layer blob), digest-checked by discovery.
    pub payload: bytes::Bytes,
    /// `dev.cosignproject.cosign/signature`, base64.
    pub signature: String,
    /// `dev.sigstore.cosign/certificate` (PEM), for keyless signatures.
    pub certificate: Option<String>,
    /// `dev.sigstore.cosign/chain` (PEM), for keyless signatures.
    pub chain: Option<String>,
    /// `dev.sigstore.cosign/bundle` (JSON), the Rekor bundle of keyless signatures.
    pub bundle: Option<String>,
}

/// What a Cosign authority checks: a `.sig`-tag signature or a Sigstore bundle (raw bytes).
#[derive(Clone, Debug)]
pub enum CosignArtifact {
    Tag(CosignSignature),
    Bundle(bytes::Bytes),
}

/// The Cosign format: `.sig`-tag signatures and Sigstore bundle referrers. Nothing to fetch:
/// the check is the verdict.
#[derive(Debug)]
pub struct Cosign;

impl Format for Cosign {
    type Authority = CosignAuthority;
    type Signature = CosignArtifact;
    type Proved = Outcome;

    const KINDS: &'static [Kind] = &[Kind::Cosign, Kind::Bundle];

    fn no_signature(authority: &CosignAuthority, subject: &Subject, ctx: &Context) -> Outcome {
        verify(authority, &subject.digest, &[], &[], ctx)
    }

    fn read(artifact: Artifact) -> CosignArtifact {
        if artifact.kind == Kind::Bundle {
            return CosignArtifact::Bundle(artifact.bytes);
        }
        let annotation = |k: &str| artifact.annotations.get(k).cloned();
        CosignArtifact::Tag(CosignSignature {
            signature: annotation(SIGNATURE_ANNOTATION).unwrap_or_default(),
            certificate: annotation(CERTIFICATE_ANNOTATION),
            chain: annotation(CHAIN_ANNOTATION),
            bundle: annotation(BUNDLE_ANNOTATION),
            payload: artifact.bytes,
        })
    }

    fn check(
        authority: &CosignAuthority,
        subject: &Subject,
        signature: &CosignArtifact,
        n: usize,
        ctx: &Context,
    ) -> (Outcome, Plan) {
        let digest = &subject.digest;
        let outcome = match signature {
            CosignArtifact::Tag(s) => {
                verify_from(authority, digest, std::slice::from_ref(s), &[], n, ctx)
            }
            CosignArtifact::Bundle(b) => {
                verify_from(authority, digest, &[], std::slice::from_ref(b), n, ctx)
            }
        };
        (outcome, Plan::default())
    }

    fn verdict(_: &CosignAuthority, proved: Outcome, _: &Fetched, _: &Context) -> Outcome {
        proved
    }
}

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
    let mut best = MostTelling::default();
    let mut keep = |f: Failure| best.keep(f);
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
                    valid_until: None,
                    expires: None,
                });
            }
            Err(f) => keep(f),
        }
    }
    Outcome::Failed(
        best.into_inner()
            .unwrap_or_else(|| Failure::new(Reason::SignatureInvalid, "no valid signature")),
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
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Ed25519 => {
            via_sigstore(CosignVerificationKey::try_from_der(&key.der))
        }
        // PKCS#1 v1.5 is what cosign makes; RSA-PSS (salt length = hash length) is what other
        // signers make with the same key, and is as sound.
        KeyAlgorithm::Rsa => {
            via_sigstore(CosignVerificationKey::try_from_der(&key.der))
                || asn1_verifies(key, Some(algorithms::rsa_pss(Hash::Sha256)), payload, raw)
        }
        // cosign signs P-384 keys over SHA-256 by default; other signers use SHA-384.
        KeyAlgorithm::EcdsaP384 => {
            asn1_verifies(
                key,
                algorithms::asn1(KeyKind::EcP384, Hash::Sha256),
                payload,
                raw,
            ) || via_sigstore(CosignVerificationKey::try_from_der(&key.der))
        }
        KeyAlgorithm::EcdsaP521 => via_sigstore(CosignVerificationKey::try_from_der(&key.der)),
    }
}

/// Whether `raw` verifies over `message` with `key` and `algorithm` (from
/// [`algorithms`]; `None`, an algorithm signet does not support, never verifies).
pub(crate) fn asn1_verifies(
    key: &PublicKey,
    algorithm: Option<&'static dyn sig::VerificationAlgorithm>,
    message: &[u8],
    raw: &[u8],
) -> bool {
    algorithm.is_some_and(|alg| {
        spki_bits(&key.der).is_some_and(|bits| {
            sig::UnparsedPublicKey::new(alg, &bits)
                .verify(message, raw)
                .is_ok()
        })
    })
}

impl From<KeyAlgorithm> for KeyKind {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::EcdsaP256 => KeyKind::EcP256,
            KeyAlgorithm::EcdsaP384 => KeyKind::EcP384,
            KeyAlgorithm::EcdsaP521 => KeyKind::EcP521,
            KeyAlgorithm::Rsa => KeyKind::Rsa,
            KeyAlgorithm::Ed25519 => KeyKind::Ed25519,
        }
    }
}

/// The subject-public-key bits of an SPKI, as aws-lc-rs wants them: the EC point, the PKCS#1
/// RSAPublicKey, or the raw Ed25519 key.
pub(crate) fn spki_bits(spki_der: &[u8]) -> Option<Vec<u8>> {
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

/// Decodes the base64 signature annotation.
pub(crate) fn decode_signature(b64: &str) -> Result<Vec<u8>, Failure> {
    STANDARD.decode(b64.trim()).map_err(|e| {
        Failure::new(
            Reason::Malformed,
            format!("the signature annotation is not base64: {e}"),
        )
    })
}

/// Whether `raw` is a transparency log's (Rekor, CT) signature of `message` with `key`: the
/// hash is the curve's own (SHA-256 for P-256, SHA-384 for P-384), RSA is PKCS#1 v1.5.
pub(crate) fn log_signature_verifies(key: &PublicKey, message: &[u8], raw: &[u8]) -> bool {
    let kind = KeyKind::from(key.algorithm);
    asn1_verifies(
        key,
        algorithms::asn1(kind, kind.natural_hash()),
        message,
        raw,
    )
}

/// Keyless verification of `.sig`-tag signatures only (the authority's keys are not tried):
/// any one signature whose certificate satisfies the authority's keyless settings suffices.
pub fn verify_keyless(
    authority: &CosignAuthority,
    digest: &Digest,
    signatures: &[CosignSignature],
    ctx: &Context,
) -> Outcome {
    let Some(keyless) = authority.keyless.as_ref() else {
        return Outcome::Failed(Failure::new(
            Reason::UntrustedSigner,
            "this authority has no keyless identities",
        ));
    };
    let mut best = MostTelling::default();
    for (i, s) in signatures.iter().enumerate() {
        match keyless::verify_signature(authority, keyless, digest, s, ctx) {
            Ok(e) => return Outcome::Trusted(e),
            Err(f) => best.keep(Failure::new(
                f.reason,
                format!("signature {i}: {}", f.detail),
            )),
        }
    }
    Outcome::Failed(best.into_inner().unwrap_or_else(|| {
        Failure::new(
            Reason::NoSignature,
            "no Cosign signature (looked for the sha256-<hex>.sig tag)",
        )
    }))
}

/// Verifies an image under one Cosign authority with everything discovery found: `.sig`-tag
/// signatures (checked with the keys and, for those with a certificate, keyless) and Sigstore
/// bundle referrers (raw bundle bytes). Any one valid signature suffices.
pub fn verify(
    authority: &CosignAuthority,
    digest: &Digest,
    signatures: &[CosignSignature],
    bundles: &[bytes::Bytes],
    ctx: &Context,
) -> Outcome {
    verify_from(authority, digest, signatures, bundles, 0, ctx)
}

/// [`verify`], numbering the signatures and the bundles in messages from `first`.
fn verify_from(
    authority: &CosignAuthority,
    digest: &Digest,
    signatures: &[CosignSignature],
    bundles: &[bytes::Bytes],
    first: usize,
    ctx: &Context,
) -> Outcome {
    let mut best = MostTelling::default();
    let mut skipped = Vec::new();
    for (i, s) in (first..).zip(signatures) {
        match verify_one(authority, digest, s, ctx) {
            Ok(e) => return Outcome::Trusted(e),
            Err(f) => best.keep(Failure::new(
                f.reason,
                format!("signature {i}: {}", f.detail),
            )),
        }
    }
    for (i, b) in (first..).zip(bundles) {
        match bundle::verify_bundle(authority, digest, b, ctx) {
            Ok(e) => return Outcome::Trusted(e),
            Err(bundle::Skip::NotASignature(d)) => skipped.push(format!("bundle {i}: {d}")),
            Err(bundle::Skip::Failed(f)) => {
                best.keep(Failure::new(f.reason, format!("bundle {i}: {}", f.detail)))
            }
        }
    }
    Outcome::Failed(best.into_inner().unwrap_or_else(|| {
        let mut detail = String::from(
            "no Cosign signature (looked for the sha256-<hex>.sig tag and Sigstore bundle referrers)",
        );
        if !skipped.is_empty() {
            detail.push_str(&format!("{}{}", format::IGNORED, skipped.join("; ")));
        }
        Failure::new(Reason::NoSignature, detail)
    }))
}

/// One `.sig` layer: keys first, then keyless when it carries a certificate.
fn verify_one(
    authority: &CosignAuthority,
    digest: &Digest,
    s: &CosignSignature,
    ctx: &Context,
) -> Result<Evidence, Failure> {
    let raw = decode_signature(&s.signature)?;
    if let Some(key) = authority
        .keys
        .iter()
        .find(|k| key_verifies(k, &s.payload, &raw))
    {
        check_payload(&s.payload, digest)?;
        let mut summary = format!(
            "cosign signature verified with key {} ({})",
            key.fingerprint.short(),
            key.algorithm.as_str()
        );
        if authority.tlog_required {
            summary.push_str(&key_tlog(authority, key, s, &raw, ctx)?);
        }
        return Ok(Evidence {
            summary,
            logged: Vec::new(),
            valid_until: None,
            expires: None,
        });
    }
    match (&authority.keyless, &s.certificate) {
        (Some(keyless), Some(_)) => keyless::verify_signature(authority, keyless, digest, s, ctx),
        _ if authority.keys.is_empty() => Err(Failure::new(
            Reason::UntrustedSigner,
            "the signature has no certificate, and the authority trusts no keys",
        )),
        _ => Err(Failure::new(
            Reason::UntrustedSigner,
            format!(
                "the signature verifies with none of the trusted key(s) {}",
                key_names(authority)
            ),
        )),
    }
}

/// The Rekor entry of a key-based signature: SET, then the body must record this signature,
/// this key and this payload.
fn key_tlog(
    authority: &CosignAuthority,
    key: &PublicKey,
    s: &CosignSignature,
    raw: &[u8],
    ctx: &Context,
) -> Result<String, Failure> {
    let root = authority
        .trust_root
        .as_deref()
        .ok_or_else(|| Failure::new(Reason::Internal, "tlog required without a trust root"))?;
    let bundle = s.bundle.as_deref().ok_or_else(|| {
        Failure::new(
            Reason::TransparencyLog,
            "the policy requires a Rekor entry, and the signature has no bundle annotation",
        )
    })?;
    let entry = rekor::Entry::from_legacy_bundle(bundle)?;
    entry.verify_set(root, ctx.now)?;
    rekor::check_hashedrekord(
        &entry.body()?,
        raw,
        &s.payload,
        &rekor::Signer::Key(&key.der),
    )?;
    Ok(format!(
        ", Rekor entry {} at {}",
        entry.log_index, entry.integrated_time
    ))
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
            CosignAuthority::from_keys(vec![PublicKey::from_der(&der).unwrap()])
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

    fn one(key: &PublicKey, payload: &[u8], raw: &[u8]) -> Reason {
        let d1: Digest = D1.parse().unwrap();
        let s = CosignSignature {
            payload: payload.to_vec().into(),
            signature: STANDARD.encode(raw),
            certificate: None,
            chain: None,
            bundle: None,
        };
        reason(verify_with_keys(
            &CosignAuthority::from_keys(vec![key.clone()]),
            &d1,
            &[s],
        ))
    }

    fn pem_key(kp: &rcgen::KeyPair) -> PublicKey {
        PublicKey::from_pem(&kp.public_key_pem()).unwrap()
    }

    #[test]
    fn p384_accepts_sha256_and_sha384_only() {
        use rcgen::SigningKey;
        let d1: Digest = D1.parse().unwrap();
        let payload = simple_signing_payload("r.io/a", &d1);
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = pem_key(&kp);
        // rcgen signs P-384 over SHA-384 (what most signers do).
        assert_eq!(
            one(&key, &payload, &kp.sign(&payload).unwrap()),
            Reason::Trusted
        );
        // cosign's CLI signs P-384 keys over SHA-256 (aws-lc-rs has no such signer: the
        // openssl test below covers it, and that SHA-512 is refused).
        let mut raw = kp.sign(&payload).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(one(&key, &payload, &raw), Reason::UntrustedSigner);
    }

    #[test]
    fn rsa_pkcs1_and_pss_and_ed25519_keys_verify() {
        use rcgen::SigningKey;
        let d1: Digest = D1.parse().unwrap();
        let payload = simple_signing_payload("r.io/a", &d1);
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let key = pem_key(&rsa);
        assert_eq!(key.algorithm, KeyAlgorithm::Rsa);
        // PKCS#1 v1.5 with SHA-256, what cosign makes.
        assert_eq!(
            one(&key, &payload, &rsa.sign(&payload).unwrap()),
            Reason::Trusted
        );
        // RSA-PSS with SHA-256.
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&rsa.serialize_der()).unwrap();
        let mut pss = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &sig::RSA_PSS_SHA256,
            &SystemRandom::new(),
            &payload,
            &mut pss,
        )
        .unwrap();
        assert_eq!(one(&key, &payload, &pss), Reason::Trusted);
        // PKCS#1 over SHA-512 is not accepted.
        let mut sha512 = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &sig::RSA_PKCS1_SHA512,
            &SystemRandom::new(),
            &payload,
            &mut sha512,
        )
        .unwrap();
        assert_eq!(one(&key, &payload, &sha512), Reason::UntrustedSigner);

        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = pem_key(&ed);
        assert_eq!(
            one(&key, &payload, &ed.sign(&payload).unwrap()),
            Reason::Trusted
        );
        let mut raw = ed.sign(&payload).unwrap();
        raw[0] ^= 1;
        assert_eq!(one(&key, &payload, &raw), Reason::UntrustedSigner);
    }

    #[test]
    fn any_of_several_keys_verifies() {
        let d1: Digest = D1.parse().unwrap();
        let a = Signer::new();
        let b = Signer::new();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut keys = a.authority().keys;
        keys.push(pem_key(&ed));
        keys.extend(b.authority().keys);
        let auth = CosignAuthority::from_keys(keys);
        let good = b.sign(&simple_signing_payload("r.io/a", &d1));
        match verify_with_keys(&auth, &d1, std::slice::from_ref(&good)) {
            Outcome::Trusted(e) => assert!(
                e.summary
                    .contains(b.authority().keys[0].fingerprint.short()),
                "{}",
                e.summary
            ),
            o => panic!("{o:?}"),
        }
        let ctx = Context {
            now: std::time::SystemTime::now(),
        };
        assert_eq!(
            reason(verify(&auth, &d1, &[good], &[], &ctx)),
            Reason::Trusted
        );
    }

    /// The `openssl` CLI signs (and checks our signatures), so that signer and verifier share
    /// no code. Skipped with a message where openssl is absent.
    #[test]
    fn openssl_made_signatures_verify_and_ours_verify_with_openssl() {
        use std::process::Command;
        let Ok(v) = Command::new("openssl").arg("version").output() else {
            eprintln!("skipping: no openssl CLI");
            return;
        };
        assert!(v.status.success());
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let d1: Digest = D1.parse().unwrap();
        let payload = simple_signing_payload("r.io/a", &d1);
        std::fs::write(p("payload"), &payload).unwrap();
        let p384: &[&str] = &[
            "ecparam",
            "-genkey",
            "-name",
            "secp384r1",
            "-noout",
            "-out",
            "p384.key",
        ];
        let cases: [(&str, &[&str], &[&str]); 5] = [
            (
                "p256",
                &[
                    "ecparam",
                    "-genkey",
                    "-name",
                    "prime256v1",
                    "-noout",
                    "-out",
                    "p256.key",
                ],
                &["-sha256"],
            ),
            ("p384", p384, &["-sha384"]),
            ("p384", &["version"], &["-sha256"]),
            (
                "rsa",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    "rsa.key",
                ],
                &["-sha256"],
            ),
            (
                "pss",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    "pss.key",
                ],
                &[
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:32",
                ],
            ),
        ];
        for (name, genkey, dgst) in cases {
            run(genkey);
            let (k, pubf, sigf) = (
                format!("{name}.key"),
                format!("{name}.pub"),
                format!("{name}.sig"),
            );
            run(&["pkey", "-in", &k, "-pubout", "-out", &pubf]);
            let mut args = vec!["dgst"];
            args.extend_from_slice(dgst);
            args.extend_from_slice(&["-sign", &k, "-out", &sigf, "payload"]);
            run(&args);
            // cosign.pub as openssl writes it, loaded as a policy would.
            let key = PublicKey::from_pem(&std::fs::read_to_string(p(&pubf)).unwrap()).unwrap();
            let raw = std::fs::read(p(&sigf)).unwrap();
            assert_eq!(one(&key, &payload, &raw), Reason::Trusted, "{name}");
            let mut bad = payload.clone();
            bad[10] ^= 1;
            assert_ne!(one(&key, &bad, &raw), Reason::Trusted, "{name}");
        }
        // P-384 over SHA-512: a valid signature, but not a hash signet accepts for P-384.
        run(&[
            "dgst",
            "-sha512",
            "-sign",
            "p384.key",
            "-out",
            "p384-512.sig",
            "payload",
        ]);
        let key = PublicKey::from_pem(&std::fs::read_to_string(p("p384.pub")).unwrap()).unwrap();
        let raw = std::fs::read(p("p384-512.sig")).unwrap();
        assert_eq!(one(&key, &payload, &raw), Reason::UntrustedSigner);
        // The other direction: our P-256 signer, openssl's verifier.
        let signer = Signer::new();
        let s = signer.sign(&payload);
        std::fs::write(p("ours.sig"), STANDARD.decode(&s.signature).unwrap()).unwrap();
        let spki = &signer.authority().keys[0].der;
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(spki)
        );
        std::fs::write(p("ours.pub"), pem).unwrap();
        run(&[
            "dgst",
            "-sha256",
            "-verify",
            "ours.pub",
            "-signature",
            "ours.sig",
            "payload",
        ]);
    }

    /// Key-based signatures with `tlog.required`: the Rekor entry must carry a valid SET and
    /// record this signature, this key and this payload.
    #[test]
    fn key_signature_with_required_tlog_needs_a_bound_rekor_entry() {
        use super::testkit::{T0, World, at};
        let w = World::new();
        let d1: Digest = D1.parse().unwrap();
        let signer = Signer::new();
        let mut auth = signer.authority();
        auth.tlog_required = true;
        auth.trust_root = Some(std::sync::Arc::new(w.trust_root()));
        let ctx = Context { now: at(T0 + 3600) };
        let key_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&auth.keys[0].der)
        );
        let mut s = signer.sign(&simple_signing_payload("r.io/a", &d1));
        let raw = STANDARD.decode(&s.signature).unwrap();
        let run =
            |s: &CosignSignature| reason(verify(&auth, &d1, std::slice::from_ref(s), &[], &ctx));

        assert_eq!(run(&s), Reason::TransparencyLog, "no bundle");
        let body = World::hashedrekord(&raw, &s.payload, &key_pem);
        s.bundle = Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 9));
        assert_eq!(run(&s), Reason::Trusted);

        // The entry of another key's signature over the same payload.
        let other = Signer::new();
        let o = other.sign(&s.payload);
        let other_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&other.authority().keys[0].der)
        );
        let body = World::hashedrekord(
            &STANDARD.decode(&o.signature).unwrap(),
            &s.payload,
            &other_pem,
        );
        let mut grafted = s.clone();
        grafted.bundle = Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 10));
        assert_eq!(run(&grafted), Reason::TransparencyLog);

        // Without the requirement, the same signature passes with no bundle at all.
        auth.tlog_required = false;
        let mut bare = s.clone();
        bare.bundle = None;
        assert_eq!(
            reason(verify(&auth, &d1, &[bare], &[], &ctx)),
            Reason::Trusted
        );
    }
}
