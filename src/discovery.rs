//! Discovery: from a subject digest to the signature artifacts that refer to it.
//!
//! Cosign signatures come from the `sha256-<hex>.sig` tag; Notation signatures and Sigstore
//! bundles from the referrers of the digest (the OCI 1.1 API, or the referrers tag schema).
//! Only what the policy's authorities can use is looked at, and lazily: [`list`] names the
//! candidates (one request for the `.sig` manifest, one for the referrers), [`open`] reads a
//! candidate's manifest when it has one, and the caller fetches each signature's blob only when
//! it needs it, so verification can stop at the first signature that satisfies an authority.
//! Each referrer manifest must name the subject in its `subject` field: a referrers index is
//! only a hint, and a stale or planted entry is skipped. Counts are bounded
//! ([`MAX_SIGNATURE_ATTEMPTS`]), sizes by the registry's limits.
//!
//! Who is to blame for a failure matters: anyone who can push to the image's repository can
//! plant junk signature artifacts, so a defect in them (a manifest that does not parse, a
//! layer claiming to be huge, a blob that does not hash to its digest, too many referrers) is a
//! failed signature ([`Defect`]): decided, not trusted. Only the registry itself failing
//! ([`is_registry_failure`]) leaves the image undecided, for the policy's `onError`.

use bytes::Bytes;

use crate::image::{Digest, ImageRef};
use crate::reason::Reason;
use crate::registry::{Descriptor, Registry, RegistryError};
use crate::verify::{CosignSignature, Failure, NotationSignature, Subject};

/// Notary Project signature artifact type (and config media type of notation 1.0 manifests).
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Sigstore bundle artifact type (cosign v3).
pub const SIGSTORE_BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
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

/// The kinds of signature artifact; a defect in one kind fails only the authorities that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A layer of the Cosign `.sig` manifest.
    Cosign,
    /// A Notary Project signature referrer.
    Notation,
    /// A Sigstore bundle referrer (checked by Cosign authorities).
    Bundle,
}

/// A defect of the image's own signature artifacts: the artifacts of `kinds` failed with
/// `failure`. It counts as a failed signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defect {
    pub kinds: Vec<Kind>,
    pub failure: Failure,
}

/// A signature artifact named for the subject, not fetched yet.
#[derive(Clone, Debug)]
pub enum Candidate {
    /// A layer of the `.sig` manifest: its blob is the signed payload.
    CosignLayer(Descriptor),
    /// An entry of the referrers list that may be a Notation signature or a Sigstore bundle.
    Referrer(Descriptor),
}

/// The candidates of one subject, newest Cosign layers first, the defects met listing them,
/// and the referrers set aside by their hints (SBOMs, attestations, other kinds).
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub candidates: Vec<Candidate>,
    pub defects: Vec<Defect>,
    pub ignored: Vec<Ignored>,
}

/// An artifact of the subject that is no signature this policy uses, for the "no signature"
/// message: `what` says what it is in a few words (its type comes from the registry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub digest: Digest,
    pub what: String,
}

/// A candidate ready for its blob: which kind it is and which layer holds the signature.
#[derive(Clone, Debug)]
pub struct Opened {
    pub kind: Kind,
    pub layer: Descriptor,
    /// The referrer manifest's digest (Notation signatures name it in messages).
    pub manifest: Option<Digest>,
}

/// A signature artifact with its bytes, ready for the verifiers.
#[derive(Clone, Debug)]
pub enum Signature {
    Cosign(CosignSignature),
    Notation(NotationSignature),
    Bundle(Bytes),
}

/// Why a candidate gave no signature.
#[derive(Clone, Debug)]
pub enum NotOpened {
    /// Not a signature this policy uses, or a stale referrer: nothing to judge.
    Skipped(Ignored),
    /// The artifact is defective: a failed signature.
    Defect(Defect),
    /// The registry failed: undecided.
    Registry(RegistryError),
}

/// Whether a registry error is the registry failing (unreachable, broken connections, 5xx,
/// throttling, refused credentials, the deadline) rather than what the repository holds being
/// defective. Only these leave an image undecided.
pub fn is_registry_failure(e: &RegistryError) -> bool {
    matches!(
        e.reason,
        Reason::RegistryUnreachable
            | Reason::Throttled
            | Reason::Unauthorized
            | Reason::DeadlineExceeded
            | Reason::Internal
    )
}

/// Sorts a registry error met while reading signature artifacts of `kinds` (see
/// [`is_registry_failure`]).
pub fn classify(e: RegistryError, kinds: &[Kind], what: &str) -> NotOpened {
    if is_registry_failure(&e) {
        NotOpened::Registry(e)
    } else {
        NotOpened::Defect(Defect {
            kinds: kinds.to_vec(),
            failure: Failure::new(e.reason, format!("{what}: {}", e.detail)),
        })
    }
}

/// Names the signature artifacts of `subject` in `image`'s repository: the `.sig` manifest's
/// layers (when `wants.cosign`) and the referrers (when `wants.notation` or `wants.bundles`).
/// Fails only when the registry fails; defects of the listings are in [`Listing::defects`].
pub async fn list(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    wants: Wants,
) -> Result<Listing, RegistryError> {
    let mut listing = Listing::default();
    if wants.cosign {
        let tag = format!("{}.sig", subject.digest.tag_form());
        match registry.manifest(image, &tag).await {
            Ok(Some(manifest)) => {
                // cosign appends each new signature as a layer: the newest are tried first, so
                // that signing again with a rotated key or identity is not crowded out by old
                // signatures.
                listing.candidates.extend(
                    manifest
                        .body
                        .layers
                        .into_iter()
                        .rev()
                        .filter(|l| l.media_type == COSIGN_LAYER)
                        .take(MAX_SIGNATURE_ATTEMPTS)
                        .map(Candidate::CosignLayer),
                );
            }
            Ok(None) => {}
            Err(e) => match classify(
                e,
                &[Kind::Cosign],
                &format!("the Cosign signature tag {tag}"),
            ) {
                NotOpened::Defect(d) => listing.defects.push(d),
                NotOpened::Registry(e) => return Err(e),
                NotOpened::Skipped(_) => {}
            },
        }
    }
    if wants.notation || wants.bundles {
        let kinds: Vec<Kind> = [
            (wants.notation, Kind::Notation),
            (wants.bundles, Kind::Bundle),
        ]
        .into_iter()
        .filter_map(|(w, k)| w.then_some(k))
        .collect();
        match registry.referrers(image, &subject.digest).await {
            Ok(entries) => {
                for e in entries {
                    if hinted_wanted(&e, wants) {
                        listing.candidates.push(Candidate::Referrer(e));
                    } else {
                        listing.ignored.push(Ignored {
                            what: describe(e.artifact_type.as_deref(), &e.annotations),
                            digest: e.digest,
                        });
                    }
                }
            }
            Err(e) => match classify(e, &kinds, "the referrers list") {
                NotOpened::Defect(d) => listing.defects.push(d),
                NotOpened::Registry(e) => return Err(e),
                NotOpened::Skipped(_) => {}
            },
        }
    }
    Ok(listing)
}

/// Whether a referrers-list entry may be a wanted signature, by its (unauthenticated) hints.
fn hinted_wanted(entry: &Descriptor, wants: Wants) -> bool {
    // The index entry's artifactType is a hint; the manifest is authoritative.
    let hinted = entry.artifact_type.as_deref();
    let maybe_notation = hinted.is_none_or(|t| t == NOTATION_ARTIFACT_TYPE);
    // cosign v3 attestations (SBOMs, provenance, scans) share the signature's artifactType and
    // accumulate; their predicate-type annotation tells them apart without a fetch, so they
    // cannot use up the attempts. Only a hint: what is fetched is still judged by its signed
    // statement, and a signature labelled as something else is not found (deny).
    let attestation = entry
        .annotations
        .get(BUNDLE_PREDICATE_ANNOTATION)
        .is_some_and(|p| p != crate::verify::cosign::bundle::SIGN_PREDICATE);
    let maybe_bundle = hinted.is_none_or(|t| t == SIGSTORE_BUNDLE_ARTIFACT_TYPE) && !attestation;
    (wants.notation && maybe_notation) || (wants.bundles && maybe_bundle)
}

/// A referrer in a few words, by its artifact type and annotations: "an SBOM
/// (application/spdx+json)". Types are the registry's words: clipped, never trusted.
fn describe(
    artifact_type: Option<&str>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> String {
    let clip = |t: &str| -> String {
        let mut c: String = t.chars().take(80).collect();
        if c.len() < t.len() {
            c.push('…');
        }
        c
    };
    let Some(t) = artifact_type.filter(|t| !t.is_empty()) else {
        return "an artifact with no artifact type".into();
    };
    if let Some(p) = annotations.get(BUNDLE_PREDICATE_ANNOTATION) {
        return format!("an attestation ({})", clip(p));
    }
    let kind = if t == NOTATION_ARTIFACT_TYPE {
        "a Notation signature"
    } else if t == SIGSTORE_BUNDLE_ARTIFACT_TYPE {
        "a Sigstore bundle"
    } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("syft") {
        "an SBOM"
    } else if t.contains("in-toto") || t.contains("attestation") || t.contains("provenance") {
        "an attestation"
    } else {
        "an artifact"
    };
    format!("{kind} ({})", clip(t))
}

/// Attempts used per kind, so a flood of candidates of one kind is bounded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempts {
    notation: usize,
    bundles: usize,
}

/// Opens a candidate: a `.sig` layer as it is; a referrer by fetching its manifest, which must
/// name the subject and be a wanted kind with one signature layer.
pub async fn open(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    candidate: &Candidate,
    wants: Wants,
    attempts: &mut Attempts,
) -> Result<Opened, NotOpened> {
    let entry = match candidate {
        Candidate::CosignLayer(layer) => {
            if !layer.annotations.contains_key(COSIGN_SIGNATURE_ANNOTATION) {
                return Err(NotOpened::Skipped(Ignored {
                    digest: layer.digest.clone(),
                    what: format!(
                        "a Cosign layer with no signature annotation ({})",
                        layer.digest.short()
                    ),
                }));
            }
            return Ok(Opened {
                kind: Kind::Cosign,
                layer: layer.clone(),
                manifest: None,
            });
        }
        Candidate::Referrer(entry) => entry,
    };
    let hinted: Vec<Kind> = [
        (wants.notation, Kind::Notation),
        (wants.bundles, Kind::Bundle),
    ]
    .into_iter()
    .filter_map(|(w, k)| w.then_some(k))
    .collect();
    let short = entry.digest.short();
    let what = format!("referrer {short}");
    let skipped = |what: String| {
        NotOpened::Skipped(Ignored {
            digest: entry.digest.clone(),
            what,
        })
    };
    if (!wants.notation || attempts.notation >= MAX_SIGNATURE_ATTEMPTS)
        && (!wants.bundles || attempts.bundles >= MAX_SIGNATURE_ATTEMPTS)
    {
        return Err(skipped(format!(
            "a referrer not opened, enough signatures tried ({short})"
        )));
    }
    let m = match registry.manifest(image, entry.digest.as_str()).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(skipped(format!("a referrer listed but missing ({short})"))),
        Err(e) => return Err(classify(e, &hinted, &what)),
    };
    if m.body.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
        return Err(skipped(format!(
            "a referrer that names another subject ({short})"
        )));
    }
    let artifact_type = m
        .body
        .artifact_type
        .clone()
        .or_else(|| m.body.config.as_ref().map(|c| c.media_type.clone()))
        .unwrap_or_default();
    let kind = if artifact_type == NOTATION_ARTIFACT_TYPE
        && wants.notation
        && attempts.notation < MAX_SIGNATURE_ATTEMPTS
    {
        attempts.notation += 1;
        Kind::Notation
    } else if artifact_type == SIGSTORE_BUNDLE_ARTIFACT_TYPE
        && wants.bundles
        && attempts.bundles < MAX_SIGNATURE_ATTEMPTS
    {
        attempts.bundles += 1;
        Kind::Bundle
    } else {
        return Err(skipped(describe(Some(&artifact_type), &m.body.annotations)));
    };
    let defect = |detail: String| {
        NotOpened::Defect(Defect {
            kinds: vec![kind],
            failure: Failure::new(Reason::Malformed, detail),
        })
    };
    let layer = match (kind, m.body.layers.as_slice()) {
        (_, [one]) => one.clone(),
        (Kind::Bundle, [first, ..]) => first.clone(),
        (_, []) => {
            return Err(defect(format!(
                "signature {} has no layer",
                m.digest.short()
            )));
        }
        (_, many) => {
            return Err(defect(format!(
                "Notation signature {} has {} layers, not 1",
                m.digest.short(),
                many.len()
            )));
        }
    };
    Ok(Opened {
        kind,
        layer,
        manifest: Some(m.digest),
    })
}

/// The signature of an opened candidate, with the bytes of its layer.
pub fn assemble(opened: &Opened, bytes: Bytes) -> Signature {
    let annotation = |k: &str| opened.layer.annotations.get(k).cloned();
    match opened.kind {
        Kind::Cosign => Signature::Cosign(CosignSignature {
            payload: bytes,
            signature: annotation(COSIGN_SIGNATURE_ANNOTATION).unwrap_or_default(),
            certificate: annotation("dev.sigstore.cosign/certificate"),
            chain: annotation("dev.sigstore.cosign/chain"),
            bundle: annotation("dev.sigstore.cosign/bundle"),
        }),
        Kind::Notation => Signature::Notation(NotationSignature {
            manifest_digest: opened
                .manifest
                .clone()
                .unwrap_or_else(|| opened.layer.digest.clone()),
            media_type: opened.layer.media_type.clone(),
            envelope: bytes,
        }),
        Kind::Bundle => Signature::Bundle(bytes),
    }
}

impl From<RegistryError> for crate::verify::Failure {
    fn from(e: RegistryError) -> Self {
        crate::verify::Failure::new(e.reason, e.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registry_failing_is_undecided() {
        for r in [
            Reason::RegistryUnreachable,
            Reason::Throttled,
            Reason::Unauthorized,
            Reason::DeadlineExceeded,
            Reason::Internal,
        ] {
            let e = RegistryError::new(r, "x");
            assert!(is_registry_failure(&e), "{r}");
            assert!(matches!(
                classify(e, &[Kind::Cosign], "it"),
                NotOpened::Registry(_)
            ));
        }
        for r in [
            Reason::Malformed,
            Reason::TooLarge,
            Reason::DigestMismatch,
            Reason::NotFound,
            Reason::TooManyReferrers,
        ] {
            let e = RegistryError::new(r, "bad");
            assert!(!is_registry_failure(&e), "{r}");
            match classify(e, &[Kind::Notation], "the thing") {
                NotOpened::Defect(d) => {
                    assert_eq!(d.kinds, vec![Kind::Notation]);
                    assert_eq!(d.failure.reason, r);
                    assert_eq!(d.failure.detail, "the thing: bad");
                }
                other => panic!("{r}: {other:?}"),
            }
        }
    }
}
