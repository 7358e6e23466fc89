//! Discovery: from a subject digest to the signature artifacts that refer to it.
//!
//! Cosign signatures come from the `sha256-<hex>.sig` tag; Notation signatures and Sigstore
//! bundles from the referrers of the digest (the OCI 1.1 API, or the referrers tag schema).
//! Only what the policy's authorities can use is fetched. Each referrer manifest must name the
//! subject in its `subject` field: a referrers index is only a hint, and a stale or planted entry
//! is skipped. Counts are bounded (`MAX_SIGNATURE_ATTEMPTS`), sizes by the registry's limits.

use bytes::Bytes;

use crate::image::ImageRef;
use crate::reason::Reason;
use crate::registry::{Registry, RegistryError};
use crate::verify::{CosignSignature, NotationSignature, Subject};

/// Notary Project signature artifact type (and config media type of notation 1.0 manifests).
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Sigstore bundle artifact type (cosign v3).
pub const SIGSTORE_BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const JWS_MEDIA_TYPE: &str = "application/jose+json";
const COSE_MEDIA_TYPE: &str = "application/cose";
const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// At most this many signatures of each kind are fetched and tried per image.
pub const MAX_SIGNATURE_ATTEMPTS: usize = 10;
/// The annotation cosign v3 puts on each bundle referrer (and the referrers index copies): the
/// predicate type of the statement inside.
const BUNDLE_PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// What to look for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wants {
    pub cosign: bool,
    pub notation: bool,
    pub bundles: bool,
}

/// The signature artifacts found for one digest.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    pub cosign: Vec<CosignSignature>,
    pub notation: Vec<NotationSignature>,
    pub bundles: Vec<Bytes>,
    /// Artifacts found but not usable (wrong media type, stale referrer), for messages.
    pub skipped: Vec<String>,
}

/// Fetches the signature artifacts of `subject` in `image`'s repository.
pub async fn discover(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    wants: Wants,
) -> Result<Discovered, RegistryError> {
    let mut found = Discovered::default();
    if wants.cosign {
        cosign_tag(registry, image, subject, &mut found).await?;
    }
    if wants.notation || wants.bundles {
        referrers(registry, image, subject, wants, &mut found).await?;
    }
    Ok(found)
}

async fn cosign_tag(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    found: &mut Discovered,
) -> Result<(), RegistryError> {
    let tag = format!("{}.sig", subject.digest.tag_form());
    let Some(manifest) = registry.manifest(image, &tag).await? else {
        return Ok(());
    };
    // cosign appends each new signature as a layer: the newest are tried, so that signing again
    // with a rotated key or identity is not crowded out by old signatures.
    for layer in manifest
        .body
        .layers
        .iter()
        .rev()
        .filter(|l| l.media_type == COSIGN_LAYER)
        .take(MAX_SIGNATURE_ATTEMPTS)
    {
        let Some(signature) = layer.annotations.get("dev.cosignproject.cosign/signature") else {
            found.skipped.push(format!(
                "layer {} has no signature annotation",
                layer.digest.short()
            ));
            continue;
        };
        let payload = registry.blob(image, layer).await?;
        found.cosign.push(CosignSignature {
            payload,
            signature: signature.clone(),
            certificate: layer
                .annotations
                .get("dev.sigstore.cosign/certificate")
                .cloned(),
            chain: layer.annotations.get("dev.sigstore.cosign/chain").cloned(),
            bundle: layer.annotations.get("dev.sigstore.cosign/bundle").cloned(),
        });
    }
    Ok(())
}

async fn referrers(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    wants: Wants,
    found: &mut Discovered,
) -> Result<(), RegistryError> {
    let entries = registry.referrers(image, &subject.digest).await?;
    let (mut notation_tries, mut bundle_tries) = (0, 0);
    for entry in entries {
        // The index entry's artifactType is a hint; the manifest is authoritative.
        let hinted = entry.artifact_type.as_deref();
        let maybe_notation = hinted.is_none_or(|t| t == NOTATION_ARTIFACT_TYPE);
        // cosign v3 attestations (SBOMs, provenance, scans) share the signature's artifactType
        // and accumulate; their predicate-type annotation tells them apart without a fetch, so
        // they cannot use up the attempts. Only a hint: what is fetched is still judged by its
        // signed statement, and a signature labelled as something else is not found (deny).
        let attestation = entry
            .annotations
            .get(BUNDLE_PREDICATE_ANNOTATION)
            .is_some_and(|p| p != crate::verify::cosign::bundle::SIGN_PREDICATE);
        let maybe_bundle =
            hinted.is_none_or(|t| t == SIGSTORE_BUNDLE_ARTIFACT_TYPE) && !attestation;
        let wanted = (wants.notation && maybe_notation && notation_tries < MAX_SIGNATURE_ATTEMPTS)
            || (wants.bundles && maybe_bundle && bundle_tries < MAX_SIGNATURE_ATTEMPTS);
        if !wanted {
            continue;
        }
        let Some(m) = registry.manifest(image, entry.digest.as_str()).await? else {
            found.skipped.push(format!(
                "referrer {} is listed but missing",
                entry.digest.short()
            ));
            continue;
        };
        if m.body.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
            found.skipped.push(format!(
                "referrer {} does not name this image as its subject",
                m.digest.short()
            ));
            continue;
        }
        let artifact_type = m
            .body
            .artifact_type
            .clone()
            .or_else(|| m.body.config.as_ref().map(|c| c.media_type.clone()))
            .unwrap_or_default();
        if artifact_type == NOTATION_ARTIFACT_TYPE && wants.notation {
            notation_tries += 1;
            let Some(layer) = m.body.layers.first() else {
                found.skipped.push(format!(
                    "Notation signature {} has no envelope layer",
                    m.digest.short()
                ));
                continue;
            };
            if m.body.layers.len() != 1 {
                found.skipped.push(format!(
                    "Notation signature {} has {} layers, not 1",
                    m.digest.short(),
                    m.body.layers.len()
                ));
                continue;
            }
            let envelope = registry.blob(image, layer).await?;
            found.notation.push(NotationSignature {
                manifest_digest: m.digest.clone(),
                media_type: layer.media_type.clone(),
                envelope,
            });
        } else if artifact_type == SIGSTORE_BUNDLE_ARTIFACT_TYPE && wants.bundles {
            bundle_tries += 1;
            if let Some(layer) = m.body.layers.first() {
                found.bundles.push(registry.blob(image, layer).await?);
            }
        }
    }
    Ok(())
}

/// Whether a media type is a Notation envelope signet can parse.
pub fn is_notation_envelope(media_type: &str) -> bool {
    media_type == JWS_MEDIA_TYPE || media_type == COSE_MEDIA_TYPE
}

impl From<RegistryError> for crate::verify::Failure {
    fn from(e: RegistryError) -> Self {
        crate::verify::Failure::new(e.reason, e.detail)
    }
}

/// A registry error that means "decided: not trusted" rather than "could not decide": a
/// malformed signature manifest is the signer's problem, not the registry's.
pub fn is_decisive(e: &RegistryError) -> bool {
    e.reason == Reason::Malformed
}
