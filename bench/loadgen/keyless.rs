//! The Cosign keyless setting of scenario (c): a registry of its own (a policy covers a whole
//! host, and the key-signed images' hosts have Cosign-key policies), the test Sigstore (Fulcio,
//! Rekor, CT log) whose `trusted_root.json` the two keyless policies trust, and the in-process
//! time of one keyless verification.

use std::path::PathBuf;

use anyhow::bail;

use crate::limits::{first_verifier, load_policies, trusted_verify_us};
use crate::notation::unpushed_image;
use crate::proxies::OwnRegistry;
use crate::reviews::eight_at_a_time;
use crate::support::cosign::{self, SIGNATURE_ANNOTATION, SignatureLayer};
use crate::support::oci::PushedImage;
use crate::support::sigstore::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, LeafSpec, LogEntry, Sigstore,
    default_identity, keyless_policy,
};

/// Scenario (c)'s keyless setting: each image signed as `cosign sign` without a key does it,
/// with a leaf certificate of its own (an ephemeral key, its SCT from the CT log) and a Rekor
/// entry whose signed entry timestamp rides in the `.sig` layer's bundle annotation. The
/// policies require the CT and transparency-log proofs and trust one identity.
pub struct KeylessWorld {
    pub own: OwnRegistry,
    pub sigstore: Sigstore,
    pub trust_root: PathBuf,
    /// Mean µs of `signet::verify::cosign::verify` of one keyless signature.
    pub verify_us: f64,
}

impl KeylessWorld {
    pub async fn start(verify_runs: u32) -> anyhow::Result<KeylessWorld> {
        let sigstore = Sigstore::new();
        let trust_root = sigstore.write_trusted_root();
        let mut world = KeylessWorld {
            own: OwnRegistry::start().await?,
            sigstore,
            trust_root,
            verify_us: 0.0,
        };
        world.verify_us = world.keyless_verify_us(verify_runs)?;
        Ok(world)
    }

    /// A policy `name` covering `host/**` with one keyless authority over the test Sigstore.
    pub fn policy(&self, name: &str, host: &str) -> String {
        keyless_policy(
            name,
            &format!("{host}/**"),
            &self.trust_root,
            &[&default_identity()],
        )
    }

    /// A `.sig` layer signing `digest` in `repo` with a new leaf.
    fn layer(&self, repo: &str, digest: &str) -> SignatureLayer {
        let leaf = self.sigstore.leaf(&LeafSpec::default());
        self.sigstore.keyless_layer(
            &leaf,
            &self.own.registry.repo_ref(repo),
            digest,
            LogEntry::default(),
        )
    }

    /// Pushes `repo:k{seed}` for each seed (8 at a time) and a keyless signature of each in its
    /// `.sig` tag.
    pub async fn push(&self, repo: &str, seeds: std::ops::Range<u64>) -> Vec<PushedImage> {
        let pusher = self.own.registry.pusher();
        eight_at_a_time(seeds, |s| {
            let pusher = &pusher;
            async move {
                let img = pusher.push_image(repo, &format!("k{s}"), s).await;
                let layer = self.layer(repo, &img.digest);
                cosign::push_signature_layers(pusher, repo, &img.digest, vec![layer], true).await;
                img
            }
        })
        .await
    }

    /// Mean µs of `signet::verify::cosign::verify` of one keyless signature under the keyless
    /// authority of this world's policy (no I/O: the floor of a keyless verification).
    fn keyless_verify_us(&self, n: u32) -> anyhow::Result<f64> {
        use signet::policy::Verifier;
        let set = load_policies(&self.policy("limit", "registry.example.com"))?;
        let Some(Verifier::Cosign(authority)) = first_verifier(&set) else {
            bail!("the keyless policy has no Cosign authority");
        };
        let image = unpushed_image();
        let digest = image
            .digest
            .parse()
            .map_err(|e| anyhow::anyhow!("digest: {e:?}"))?;
        let layer = self.layer(&image.repo, &image.digest);
        let signatures = [as_signet(&layer)];
        let ctx = signet::verify::Context {
            now: std::time::SystemTime::now(),
        };
        trusted_verify_us("keyless", n, || {
            signet::verify::cosign::verify(authority, &digest, &signatures, &[], &ctx)
        })
    }
}

/// A `.sig` layer as signet's discovery hands it to the verifier.
fn as_signet(layer: &SignatureLayer) -> signet::verify::cosign::CosignSignature {
    let annotation = |name: &str| layer.annotations.get(name).cloned();
    signet::verify::cosign::CosignSignature {
        payload: layer.payload.clone().into(),
        signature: annotation(SIGNATURE_ANNOTATION).unwrap_or_default(),
        certificate: annotation(CERTIFICATE_ANNOTATION),
        chain: annotation(CHAIN_ANNOTATION),
        bundle: annotation(BUNDLE_ANNOTATION),
    }
}
