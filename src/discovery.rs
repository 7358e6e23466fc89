//! Discovery: from a subject digest to the signature artifacts that refer to it.
//!
//! What to look for, and where, is the formats' word ([`crate::verify::format`]): each
//! artifact [`Kind`] has a source, the layers of a tag named after the digest (Cosign's
//! `sha256-<hex>.sig`) or the referrers of the digest (the OCI 1.1 API, or the referrers tag
//! schema) with the artifact types the format accepts. This module knows neither format.
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
//!
//! Must not import the formats' modules (`verify::cosign`, `verify::notation`), `decision`
//! or hyper.

use bytes::Bytes;

use crate::image::{Digest, ImageRef};
use crate::reason::Reason;
use crate::registry::{Descriptor, Registry, RegistryError};
use crate::verify::format::{Artifact, Layers, Place, ReferrerSource, TagSource};
use crate::verify::{Failure, Subject};

pub use crate::verify::format::{Kind, Kinds};

/// At most this many signatures of each kind are fetched and tried per image.
pub const MAX_SIGNATURE_ATTEMPTS: usize = 10;

/// What to look for: the artifact kinds of one discovery round.
pub type Wants = Kinds;

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
    /// A layer of a signature tag's manifest (`.sig`): its blob is the signed payload.
    TagLayer(Kind, Descriptor),
    /// An entry of the referrers list that may be a signature of a wanted kind.
    Referrer(Descriptor),
}

/// The candidates of one subject, newest tag layers first, the defects met listing them,
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

fn tag_source(k: Kind) -> Option<&'static TagSource> {
    match &k.source().place {
        Place::Tag(t) => Some(t),
        Place::Referrers(_) => None,
    }
}

fn referrer_source(k: Kind) -> Option<&'static ReferrerSource> {
    match &k.source().place {
        Place::Referrers(r) => Some(r),
        Place::Tag(_) => None,
    }
}

/// The wanted kinds found as referrers, in [`Kind::ALL`] order.
fn referrer_kinds(wants: Wants) -> Vec<Kind> {
    wants
        .iter()
        .filter(|k| referrer_source(*k).is_some())
        .collect()
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

/// Names the signature artifacts of `subject` in `image`'s repository: the layers of the
/// signature tags of the wanted kinds, and the referrers (when a wanted kind is found there).
/// Fails only when the registry fails; defects of the listings are in [`Listing::defects`].
pub async fn list(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    wants: Wants,
) -> Result<Listing, RegistryError> {
    let mut listing = Listing::default();
    for kind in wants.iter() {
        let Some(source) = tag_source(kind) else {
            continue;
        };
        let tag = format!("{}{}", subject.digest.tag_form(), source.suffix);
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
                        .filter(|l| l.media_type == source.layer_media_type)
                        .take(MAX_SIGNATURE_ATTEMPTS)
                        .map(|l| Candidate::TagLayer(kind, l)),
                );
            }
            Ok(None) => {}
            Err(e) => match classify(e, &[kind], &format!("{} {tag}", source.title)) {
                NotOpened::Defect(d) => listing.defects.push(d),
                NotOpened::Registry(e) => return Err(e),
                NotOpened::Skipped(_) => {}
            },
        }
    }
    let kinds = referrer_kinds(wants);
    if !kinds.is_empty() {
        match registry.referrers(image, &subject.digest).await {
            Ok(entries) => {
                for e in entries {
                    if hinted_wanted(&e, &kinds) {
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

/// Whether a referrers-list entry may be a signature of one of `kinds`, by its
/// (unauthenticated) hints: the index entry's artifactType (the manifest is authoritative), and
/// a predicate annotation that names an attestation. Only hints: what is fetched is still
/// judged by its signed content, and a signature labelled as something else is not found
/// (deny).
fn hinted_wanted(entry: &Descriptor, kinds: &[Kind]) -> bool {
    let hinted = entry.artifact_type.as_deref();
    kinds.iter().filter_map(|k| referrer_source(*k)).any(|r| {
        let typed = hinted.is_none_or(|t| r.artifact_types.contains(&t));
        let attestation = r.predicate.as_ref().is_some_and(|p| {
            entry
                .annotations
                .get(p.annotation)
                .is_some_and(|v| v != p.signature)
        });
        typed && !attestation
    })
}

/// A referrer set aside unopened, in a few words, by its artifact type and annotations: "an
/// SBOM (application/spdx+json)"; a signature of a kind this round does not look for says so
/// (had an authority of the policy checked that kind, a later round would have used it). Types
/// are the registry's words: clipped, never trusted.
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
    let sources = || Kind::ALL.into_iter().filter_map(referrer_source);
    // A predicate annotation naming the signature predicate marks a signature, not an
    // attestation.
    if let Some(p) = sources()
        .filter_map(|r| r.predicate.as_ref())
        .find_map(|p| annotations.get(p.annotation).filter(|v| *v != p.signature))
    {
        return format!("an attestation ({})", clip(p));
    }
    if let Some(r) = sources().find(|r| r.artifact_types.contains(&t)) {
        return format!(
            "{} ({}), a kind of signature no authority of the policy checks",
            r.name,
            clip(t)
        );
    }
    let kind = if t.contains("spdx") || t.contains("cyclonedx") || t.contains("syft") {
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
pub struct Attempts([usize; Kind::ALL.len()]);

impl Attempts {
    fn left(&self, k: Kind) -> bool {
        self.0[k.index()] < MAX_SIGNATURE_ATTEMPTS
    }
}

/// Opens a candidate: a tag layer as it is (if it carries the signature annotation); a
/// referrer by fetching its manifest, which must name the subject and be a wanted kind with
/// its signature layer.
pub async fn open(
    registry: &dyn Registry,
    image: &ImageRef,
    subject: &Subject,
    candidate: &Candidate,
    wants: Wants,
    attempts: &mut Attempts,
) -> Result<Opened, NotOpened> {
    let entry = match candidate {
        Candidate::TagLayer(kind, layer) => {
            let annotated = tag_source(*kind)
                .is_some_and(|s| layer.annotations.contains_key(s.signature_annotation));
            if !annotated {
                return Err(NotOpened::Skipped(Ignored {
                    digest: layer.digest.clone(),
                    what: format!(
                        "{} with no signature annotation ({})",
                        tag_source(*kind).map_or("a layer", |s| s.layer),
                        layer.digest.short()
                    ),
                }));
            }
            return Ok(Opened {
                kind: *kind,
                layer: layer.clone(),
                manifest: None,
            });
        }
        Candidate::Referrer(entry) => entry,
    };
    let hinted = referrer_kinds(wants);
    let short = entry.digest.short();
    let what = format!("referrer {short}");
    let skipped = |what: String| {
        NotOpened::Skipped(Ignored {
            digest: entry.digest.clone(),
            what,
        })
    };
    if !hinted.iter().any(|k| attempts.left(*k)) {
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
    let Some((kind, source)) = hinted.iter().find_map(|k| {
        let r = referrer_source(*k)?;
        (r.artifact_types.contains(&artifact_type.as_str()) && attempts.left(*k)).then_some((*k, r))
    }) else {
        // A signature of a kind looked for, once that kind's attempts are used up.
        if let Some(r) = hinted
            .iter()
            .filter_map(|k| referrer_source(*k))
            .find(|r| r.artifact_types.contains(&artifact_type.as_str()))
        {
            return Err(skipped(format!(
                "{} not tried, enough signatures of its kind tried ({short})",
                r.name
            )));
        }
        return Err(skipped(describe(Some(&artifact_type), &m.body.annotations)));
    };
    attempts.0[kind.index()] += 1;
    let defect = |detail: String| {
        NotOpened::Defect(Defect {
            kinds: vec![kind],
            failure: Failure::new(Reason::Malformed, detail),
        })
    };
    let layer = match (&source.layers, m.body.layers.as_slice()) {
        (_, [one]) => one.clone(),
        (Layers::First, [first, ..]) => first.clone(),
        (_, []) => {
            return Err(defect(format!(
                "signature {} has no layer",
                m.digest.short()
            )));
        }
        (Layers::One { what }, many) => {
            return Err(defect(format!(
                "{what} {} has {} layers, not 1",
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

/// The artifact of an opened candidate, with the bytes of its layer, for the formats to read.
pub fn assemble(opened: &Opened, bytes: Bytes) -> Artifact {
    Artifact {
        kind: opened.kind,
        manifest: opened.manifest.clone(),
        layer_digest: opened.layer.digest.clone(),
        media_type: opened.layer.media_type.clone(),
        annotations: opened.layer.annotations.clone(),
        bytes,
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

    fn referrer(artifact_type: &str, annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::sha256_of(artifact_type.as_bytes()),
            size: 1,
            artifact_type: Some(artifact_type.into()),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform: None,
        }
    }

    #[test]
    fn every_bundle_version_the_verifier_accepts_is_discovered_as_a_bundle() {
        // The referrer's artifactType is the bundle's media type: one list decides both.
        for t in [
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "application/vnd.dev.sigstore.bundle+json;version=0.2",
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
        ] {
            assert!(hinted_wanted(&referrer(t, &[]), &[Kind::Bundle]), "{t}");
            assert!(!hinted_wanted(&referrer(t, &[]), &[Kind::Notation]), "{t}");
            assert!(describe(Some(t), &Default::default()).starts_with("a Sigstore bundle ("));
        }
        let sbom = [(
            "dev.sigstore.bundle.predicateType",
            "https://spdx.dev/Document",
        )];
        let t = "application/vnd.dev.sigstore.bundle+json;version=0.2";
        assert!(!hinted_wanted(&referrer(t, &sbom), &[Kind::Bundle]));
        let notation = "application/vnd.cncf.notary.signature";
        assert!(hinted_wanted(&referrer(notation, &[]), &[Kind::Notation]));
        assert!(!hinted_wanted(&referrer(notation, &[]), &[Kind::Bundle]));
    }

    /// A registry whose only content is one referrers list and the manifest every digest
    /// names.
    struct Referrers(Vec<Descriptor>, Option<crate::registry::Manifest>);

    #[async_trait::async_trait]
    impl Registry for Referrers {
        async fn resolve(&self, _: &ImageRef) -> Result<crate::registry::Resolved, RegistryError> {
            Err(RegistryError::new(Reason::NotFound, "none"))
        }
        async fn manifest(
            &self,
            _: &ImageRef,
            _: &str,
        ) -> Result<Option<crate::registry::Manifest>, RegistryError> {
            Ok(self.1.clone())
        }
        async fn blob(&self, _: &ImageRef, _: &Descriptor) -> Result<Bytes, RegistryError> {
            Err(RegistryError::new(Reason::NotFound, "none"))
        }
        async fn referrers(
            &self,
            _: &ImageRef,
            _: &Digest,
        ) -> Result<Vec<Descriptor>, RegistryError> {
            Ok(self.0.clone())
        }
        fn limits(&self) -> crate::registry::Limits {
            crate::registry::Limits::default()
        }
    }

    /// A cosign signature bundle (predicate type `…/cosign/sign/v1`) that a Notation-only
    /// policy sets aside is named as the signature bundle it is, with why it was not opened:
    /// not as an attestation.
    #[tokio::test]
    async fn a_set_aside_signature_bundle_is_named_a_signature_not_an_attestation() {
        let t = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let signature = [(
            "dev.sigstore.bundle.predicateType",
            "https://sigstore.dev/cosign/sign/v1",
        )];
        let registry = Referrers(vec![referrer(t, &signature)], None);
        let (image, subject) = image_and_subject();
        let wants = Kinds::default().with(Kind::Notation);
        let listing = list(&registry, &image, &subject, wants).await.unwrap();
        assert!(listing.candidates.is_empty());
        let what: Vec<&str> = listing.ignored.iter().map(|i| i.what.as_str()).collect();
        assert_eq!(
            what,
            [format!(
                "a Sigstore bundle ({t}), a kind of signature no authority of the policy checks"
            )]
        );
        // An attestation in a bundle is still called one.
        let sbom = [(
            "dev.sigstore.bundle.predicateType",
            "https://spdx.dev/Document",
        )];
        assert_eq!(
            describe(
                Some(t),
                &sbom
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            ),
            "an attestation (https://spdx.dev/Document)"
        );
    }

    fn image_and_subject() -> (ImageRef, Subject) {
        let image: ImageRef = "registry.example/app:1".parse().unwrap();
        let subject = Subject {
            digest: Digest::sha256_of(b"image"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1,
        };
        (image, subject)
    }

    /// A bundle referrer met once the bundles' attempts are used up (Notation signatures may
    /// still be tried) is named as a bundle not tried, and why.
    #[tokio::test]
    async fn a_bundle_past_the_attempts_is_named_as_not_tried() {
        let t = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let (image, subject) = image_and_subject();
        let body = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": t,
            "layers": [],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest.as_str(), "size": 1},
            "annotations": {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let manifest = crate::registry::Manifest {
            digest: Digest::sha256_of(&bytes),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: serde_json::from_value(body).unwrap(),
            bytes: bytes.into(),
        };
        let entry = referrer(t, &[]);
        let registry = Referrers(vec![entry.clone()], Some(manifest));
        let wants = Kinds::default().with(Kind::Notation).with(Kind::Bundle);
        let mut attempts = Attempts::default();
        attempts.0[Kind::Bundle.index()] = MAX_SIGNATURE_ATTEMPTS;
        let candidate = Candidate::Referrer(entry.clone());
        match open(
            &registry,
            &image,
            &subject,
            &candidate,
            wants,
            &mut attempts,
        )
        .await
        {
            Err(NotOpened::Skipped(i)) => assert_eq!(
                i.what,
                format!(
                    "a Sigstore bundle not tried, enough signatures of its kind tried ({})",
                    entry.digest.short()
                )
            ),
            other => panic!("{other:?}"),
        }
    }

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
