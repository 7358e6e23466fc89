//! A Cosign-style signer for tests, independent of signet's verifier: it writes what
//! `cosign sign --key` (v2, tag storage) writes, so signet can be tested against it, and its
//! output is cross-checked with `openssl` (tests/it/harness.rs) so the two cannot share a bug.
//!
//! Keys are generated at test time with aws-lc-rs. RSA generation takes seconds, so the two
//! RSA keys are made once per test binary (`OnceLock`). `KeyKind::P384Sha256` (what cosign's
//! CLI produces with a P-384 key) is signed with the `openssl` CLI, because aws-lc-rs pairs
//! P-384 only with SHA-384.
//!
//! What cosign stores: tag `sha256-<hex>.sig` in the image's repository, an OCI manifest with
//! one layer per signature (media type [`SIMPLESIGNING`], annotation [`SIGNATURE_ANNOTATION`]
//! = base64 of the signature over the layer blob) and a small OCI config blob.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::oci::{Annotations, OCI_CONFIG, OCI_MANIFEST, PushedImage, Pusher, sha256_digest};
use crate::registry::Endpoint;
use crate::sigstore::pem;

/// Media type of a Cosign simple-signing payload layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Key algorithm and the hash the signature uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256, SHA-256, ASN.1 signature (cosign's default key type).
    P256,
    /// ECDSA P-384, SHA-384, ASN.1 signature (what non-cosign signers pair with P-384).
    P384,
    /// ECDSA P-384, SHA-256, ASN.1 signature (what `cosign sign --key` does with P-384).
    P384Sha256,
    /// Ed25519 over the payload itself.
    Ed25519,
    /// RSA 2048, PKCS#1 v1.5, SHA-256.
    Rsa2048,
}

impl KeyKind {
    /// The `openssl dgst` flag for the hash this kind signs with (`None` for Ed25519, which
    /// openssl verifies with `pkeyutl -rawin`).
    pub fn openssl_digest(self) -> Option<&'static str> {
        match self {
            KeyKind::P256 | KeyKind::P384Sha256 | KeyKind::Rsa2048 => Some("-sha256"),
            KeyKind::P384 => Some("-sha384"),
            KeyKind::Ed25519 => None,
        }
    }
}

/// A signing key pair made at test time.
#[derive(Clone)]
pub struct CosignKey {
    kind: KeyKind,
    /// PKCS#8 v1 DER of the private key.
    pkcs8: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    spki: Vec<u8>,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// RSA keys are slow to make: two per test binary (a signer and a "wrong key").
static RSA_KEYS: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];

impl CosignKey {
    /// A fresh key of this kind (RSA: the binary's first cached key).
    pub fn generate(kind: KeyKind) -> CosignKey {
        match kind {
            KeyKind::P256 => Self::ecdsa(kind, &signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            KeyKind::P384 | KeyKind::P384Sha256 => {
                Self::ecdsa(kind, &signature::ECDSA_P384_SHA384_ASN1_SIGNING)
            }
            KeyKind::Ed25519 => {
                let pair = signature::Ed25519KeyPair::generate().expect("generate Ed25519");
                let pkcs8 = pair.to_pkcs8v1().expect("Ed25519 PKCS#8");
                let spki = pair.public_key().as_der().expect("Ed25519 SPKI");
                CosignKey {
                    kind,
                    pkcs8: pkcs8.as_ref().to_vec(),
                    spki: spki.as_ref().to_vec(),
                }
            }
            KeyKind::Rsa2048 => Self::rsa_cached(0),
        }
    }

    /// ECDSA P-256 (cosign's default).
    pub fn p256() -> CosignKey {
        Self::generate(KeyKind::P256)
    }

    /// The binary's first RSA 2048 key (cached).
    pub fn rsa() -> CosignKey {
        Self::rsa_cached(0)
    }

    /// The binary's second RSA 2048 key, distinct from [`CosignKey::rsa`] (cached).
    pub fn rsa_other() -> CosignKey {
        Self::rsa_cached(1)
    }

    fn ecdsa(kind: KeyKind, alg: &'static signature::EcdsaSigningAlgorithm) -> CosignKey {
        let pair = signature::EcdsaKeyPair::generate(alg).expect("generate ECDSA key");
        let pkcs8 = pair.to_pkcs8v1().expect("ECDSA PKCS#8");
        let spki = pair.public_key().as_der().expect("ECDSA SPKI");
        CosignKey {
            kind,
            pkcs8: pkcs8.as_ref().to_vec(),
            spki: spki.as_ref().to_vec(),
        }
    }

    fn rsa_cached(slot: usize) -> CosignKey {
        let pkcs8 = RSA_KEYS[slot].get_or_init(|| {
            let pair = signature::RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA");
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().expect("RSA PKCS#8");
            der.as_ref().to_vec()
        });
        let pair = signature::RsaKeyPair::from_pkcs8(pkcs8).expect("parse RSA PKCS#8");
        let spki = pair.public_key().as_der().expect("RSA SPKI");
        CosignKey {
            kind: KeyKind::Rsa2048,
            pkcs8: pkcs8.clone(),
            spki: spki.as_ref().to_vec(),
        }
    }

    /// Reads an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`, what
    /// [`CosignKey::private_key_pem`] writes): ECDSA P-256, ECDSA P-384 (signed with SHA-256,
    /// as `cosign sign --key` does), Ed25519 or RSA (PKCS#1 v1.5, SHA-256).
    pub fn from_private_key_pem(pem: &str) -> Result<CosignKey, String> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|err| format!("not a PKCS#8 private key PEM (BEGIN PRIVATE KEY): {err}"))?;
        let pkcs8 = pkcs8.secret_pkcs8_der().to_vec();
        let ecdsa = |kind, alg| {
            let pair = signature::EcdsaKeyPair::from_pkcs8(alg, &pkcs8).ok()?;
            let spki = pair.public_key().as_der().ok()?.as_ref().to_vec();
            Some(CosignKey {
                kind,
                pkcs8: pkcs8.clone(),
                spki,
            })
        };
        if let Some(key) = ecdsa(KeyKind::P256, &signature::ECDSA_P256_SHA256_ASN1_SIGNING) {
            return Ok(key);
        }
        if let Some(key) = ecdsa(
            KeyKind::P384Sha256,
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        ) {
            return Ok(key);
        }
        if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8) {
            let spki = pair.public_key().as_der().map_err(|err| err.to_string())?;
            return Ok(CosignKey {
                kind: KeyKind::Ed25519,
                spki: spki.as_ref().to_vec(),
                pkcs8,
            });
        }
        if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(&pkcs8) {
            let spki = pair.public_key().as_der().map_err(|err| err.to_string())?;
            return Ok(CosignKey {
                kind: KeyKind::Rsa2048,
                spki: spki.as_ref().to_vec(),
                pkcs8,
            });
        }
        Err("the key is neither ECDSA P-256/P-384, Ed25519 nor RSA".to_owned())
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key as `-----BEGIN PUBLIC KEY-----` (SPKI) PEM, as `cosign.pub` holds it.
    pub fn public_key_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    /// The public key as SPKI DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn private_key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// Signs `message`: ASN.1 DER for ECDSA, raw for Ed25519 and RSA (PKCS#1 v1.5).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self.kind {
            KeyKind::P256 => {
                let pair = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &self.pkcs8,
                )
                .expect("parse P-256 key");
                pair.sign(&rng, message).expect("sign").as_ref().to_vec()
            }
            KeyKind::P384 => {
                let pair = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    &self.pkcs8,
                )
                .expect("parse P-384 key");
                pair.sign(&rng, message).expect("sign").as_ref().to_vec()
            }
            KeyKind::P384Sha256 => self.sign_with_openssl("-sha256", message),
            KeyKind::Ed25519 => {
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .expect("parse Ed25519 key");
                pair.sign(message).as_ref().to_vec()
            }
            KeyKind::Rsa2048 => {
                let pair = signature::RsaKeyPair::from_pkcs8(&self.pkcs8).expect("parse RSA key");
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .expect("sign");
                out
            }
        }
    }

    fn sign_with_openssl(&self, digest_flag: &str, message: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("key.pem");
        let payload = dir.path().join("payload");
        let sig = dir.path().join("sig.der");
        std::fs::write(&key, self.private_key_pem()).expect("write key");
        std::fs::write(&payload, message).expect("write payload");
        let output = std::process::Command::new("openssl")
            .args(["dgst", digest_flag, "-sign"])
            .arg(&key)
            .arg("-out")
            .arg(&sig)
            .arg(&payload)
            .output()
            .expect("run openssl (scripts/install-test-deps.sh installs it)");
        assert!(
            output.status.success(),
            "openssl dgst -sign: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(&sig).expect("read signature")
    }
}

/// The simple-signing payload byte for byte as cosign writes it (Go's `json.Marshal` order,
/// no spaces, `"optional":null`).
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).expect("JSON string");
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":{}}},\"type\":\"cosign container image signature\"}},\"optional\":null}}",
        quote(docker_reference),
        quote(manifest_digest)
    )
    .into_bytes()
}

/// One layer of a `.sig` manifest. Build forged ones by hand (wrong media type, bad base64,
/// missing annotation) or a correct one with [`SignatureLayer::signed`].
#[derive(Clone, Debug)]
pub struct SignatureLayer {
    pub media_type: String,
    /// The layer blob (the signed payload).
    pub payload: Vec<u8>,
    pub annotations: Annotations,
}

impl SignatureLayer {
    /// `payload` signed with `key`, annotation = base64 of the signature.
    pub fn signed(payload: Vec<u8>, key: &CosignKey) -> SignatureLayer {
        let signature = key.sign(&payload);
        let mut annotations = Annotations::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode(&signature));
        SignatureLayer {
            media_type: SIMPLESIGNING.to_owned(),
            payload,
            annotations,
        }
    }

    /// The raw signature bytes decoded from the annotation, if present and valid base64.
    pub fn signature(&self) -> Option<Vec<u8>> {
        BASE64
            .decode(self.annotations.get(SIGNATURE_ANNOTATION)?)
            .ok()
    }
}

/// The `.sig` manifest as pushed.
#[derive(Clone, Debug)]
pub struct SignatureManifest {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    pub digest: String,
    pub manifest: Vec<u8>,
    /// All layers, earlier signatures first.
    pub layers: Vec<SignatureLayer>,
}

/// One signature made by [`sign_image`] / [`sign_payload`].
#[derive(Clone, Debug)]
pub struct CosignSignature {
    /// The signed layer blob.
    pub payload: Vec<u8>,
    /// The raw signature (ASN.1 DER for ECDSA).
    pub signature: Vec<u8>,
    /// The `.sig` manifest after this signature was added.
    pub manifest: SignatureManifest,
}

/// Signs `image` like `cosign sign --key`: payload naming `HOST/REPO` (REPO = `repo`) and the
/// image digest, appended to the `sha256-<hex>.sig` manifest in `repo` (created if absent).
pub async fn sign_image(
    registry: &impl Endpoint,
    repo: &str,
    image: &PushedImage,
    key: &CosignKey,
) -> CosignSignature {
    let payload = simple_signing_payload(&registry.repo_ref(repo), &image.digest);
    sign_payload(registry, repo, image, key, payload).await
}

/// Like [`sign_image`] with an arbitrary payload (e.g. one naming another digest or another
/// repository), stored under `image`'s `.sig` tag.
pub async fn sign_payload(
    registry: &impl Endpoint,
    repo: &str,
    image: &PushedImage,
    key: &CosignKey,
    payload: Vec<u8>,
) -> CosignSignature {
    let layer = SignatureLayer::signed(payload.clone(), key);
    let signature = layer.signature().expect("just signed");
    let manifest =
        push_signature_layers(&registry.pusher(), repo, &image.digest, vec![layer], true).await;
    CosignSignature {
        payload,
        signature,
        manifest,
    }
}

/// Writes `sha256-<hex>.sig` for `subject_digest` in `repo` with `layers`; with `append` the
/// layers of an existing `.sig` manifest are kept first (what cosign does when signing again).
pub async fn push_signature_layers(
    pusher: &Pusher,
    repo: &str,
    subject_digest: &str,
    layers: Vec<SignatureLayer>,
    append: bool,
) -> SignatureManifest {
    let tag = format!("{}.sig", crate::oci::referrers_tag(subject_digest));
    let mut all_layers = Vec::new();
    if append && let Some(existing) = pusher.get_manifest(repo, &tag).await {
        for layer in existing.json()["layers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let digest = layer["digest"].as_str().expect("layer digest");
            let payload = pusher
                .get_blob(repo, digest)
                .await
                .expect("existing signature blob");
            all_layers.push(SignatureLayer {
                media_type: layer["mediaType"].as_str().unwrap_or_default().to_owned(),
                payload,
                annotations: layer
                    .get("annotations")
                    .map(|a| serde_json::from_value(a.clone()).expect("string annotations"))
                    .unwrap_or_default(),
            });
        }
    }
    all_layers.extend(layers);

    let mut layer_json = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in &all_layers {
        let mut descriptor = pusher.push_blob(repo, &layer.payload).await;
        descriptor.media_type = layer.media_type.clone();
        descriptor.annotations = layer.annotations.clone();
        diff_ids.push(descriptor.digest.clone());
        layer_json.push(descriptor.to_json());
    }
    // The config go-containerregistry writes for cosign's signature image.
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("config JSON");
    let mut config = pusher.push_blob(repo, &config_bytes).await;
    config.media_type = OCI_CONFIG.to_owned();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": layer_json,
    }))
    .expect("manifest JSON");
    let digest = pusher
        .push_manifest(repo, &tag, OCI_MANIFEST, &manifest)
        .await;
    debug_assert_eq!(digest, sha256_digest(&manifest));
    SignatureManifest {
        tag,
        digest,
        manifest,
        layers: all_layers,
    }
}

#[cfg(test)]
mod tests {
    use super::{CosignKey, KeyKind};

    #[test]
    fn private_key_pem_reads_back_as_the_same_key() {
        for kind in [KeyKind::P256, KeyKind::P384Sha256, KeyKind::Ed25519] {
            let key = CosignKey::generate(kind);
            let read = CosignKey::from_private_key_pem(&key.private_key_pem()).unwrap();
            assert_eq!(read.kind(), kind);
            assert_eq!(read.public_key_der(), key.public_key_der());
        }
        let public = CosignKey::p256().public_key_pem();
        assert!(CosignKey::from_private_key_pem(&public).is_err());
        assert!(CosignKey::from_private_key_pem("not a key").is_err());
    }
}
