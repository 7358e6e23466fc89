//! The seam between the engine and the signature formats: the one place that knows which
//! formats exist. Each format (`cosign`, `notation`) implements [`Format`] in its own folder:
//! the artifact kinds it wants discovered ([`Kind`], with a [`Source`] saying where discovery
//! finds them), a check of one signature that returns what it proved together with what must
//! be fetched to finish ([`Plan`]), and the verdict once that is fetched. The engine walks
//! down and back once per signature: [`check`] (pure), [`fetch`] (the only I/O, through a
//! [`RevocationSource`], skipped when the plan is empty), [`Checked::verdicts`] (pure).
//!
//! Adding a format: a folder `src/verify/<format>/` implementing [`Format`] (with its
//! [`Source`] constants), its artifact kinds in [`Kind`], one arm in each `match` on
//! [`Verifier`] below, and its authority in `policy::Verifier`. Discovery and the engine do
//! not change.
//!
//! Must not import `registry`, `discovery`, `decision` or hyper: what discovery found arrives
//! as an [`Artifact`], plain bytes and strings.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::cosign::{Cosign, CosignArtifact};
use super::notation::{Notation, RevocationData, RevocationLocation, fetch_revocation};
use super::{Context, Outcome, Subject, VerifierKind};
use crate::image::Digest;
use crate::policy::{Authority, Verifier};
use crate::reason::Reason;

pub use super::notation::{Fetch, RevocationSource};

/// One signature format: what its authorities want discovered, and how it judges what was
/// found. Implemented by a unit type in the format's own module; [`check`] and
/// [`Checked::verdicts`] dispatch to it.
pub trait Format {
    /// The format's authority settings, from the policy.
    type Authority;
    /// A signature as the format reads it from a discovered [`Artifact`].
    type Signature;
    /// What [`Format::check`] proved of one signature under one authority, for
    /// [`Format::verdict`] to finish.
    type Proved;

    /// The artifact kinds this format's authorities use.
    const KINDS: &'static [Kind];

    /// The outcome with no signature at all: "no signature", unless the authority trusts
    /// without one (a Notation authority at level `skip`).
    fn no_signature(authority: &Self::Authority, subject: &Subject, ctx: &Context) -> Outcome;

    /// Reads a discovered artifact of one of [`Format::KINDS`]. Never fails: content that is
    /// not a signature fails in [`Format::check`], with a message.
    fn read(artifact: Artifact) -> Self::Signature;

    /// Checks one signature as far as it can without fetched data, and says what to fetch to
    /// finish (revocation answers, say). `n` numbers the signature among those of its kind,
    /// for messages.
    ///
    /// Synchronous and CPU-bound (signature and certificate checks), no I/O: a caller may run
    /// it on a blocking pool.
    fn check(
        authority: &Self::Authority,
        subject: &Subject,
        signature: &Self::Signature,
        n: usize,
        ctx: &Context,
    ) -> (Self::Proved, Plan);

    /// The outcome of one signature under one authority: what [`Format::check`] proved,
    /// finished with what was fetched for its plan (empty when nothing was, or nothing could
    /// be). Synchronous and CPU-bound, no I/O, like [`Format::check`].
    fn verdict(
        authority: &Self::Authority,
        proved: Self::Proved,
        fetched: &Fetched,
        ctx: &Context,
    ) -> Outcome;
}

/// The kinds of signature artifact; each belongs to one format, and a defect in one kind
/// fails only the authorities that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A layer of the Cosign `.sig` manifest.
    Cosign,
    /// A Notary Project signature referrer.
    Notation,
    /// A Sigstore bundle referrer (checked by Cosign authorities).
    Bundle,
}

impl Kind {
    /// Every kind, in the order discovery considers them.
    pub const ALL: [Kind; 3] = [Kind::Cosign, Kind::Notation, Kind::Bundle];

    /// Where discovery finds artifacts of this kind: the owning format's constant.
    pub fn source(self) -> &'static Source {
        match self {
            Kind::Cosign => &super::cosign::SIG_TAG,
            Kind::Notation => &super::notation::REFERRER,
            Kind::Bundle => &super::cosign::bundle::REFERRER,
        }
    }

    /// A small index, for counting per kind.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of [`Kind`]s: what one round of discovery looks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub fn with(self, k: Kind) -> Self {
        Kinds(self.0 | 1 << k.index())
    }

    pub fn contains(self, k: Kind) -> bool {
        self.0 & 1 << k.index() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds of the set, in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<Kind> for Kinds {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        iter.into_iter().fold(Kinds::default(), Kinds::with)
    }
}

/// Where discovery finds the artifacts of one kind, and in which round.
#[derive(Debug)]
pub struct Source {
    /// Discovery rounds run in order, a later one only while no authority is satisfied, so a
    /// kind that is rarely needed costs no request when an earlier kind already decided.
    pub stage: u8,
    pub place: Place,
}

/// The two places signatures live in a registry.
#[derive(Debug)]
pub enum Place {
    Tag(TagSource),
    Referrers(ReferrerSource),
}

/// Signatures stored as the layers of a manifest tagged after the subject digest
/// (`sha256-<hex>.sig`).
#[derive(Debug)]
pub struct TagSource {
    /// Appended to the digest's tag form.
    pub suffix: &'static str,
    /// Only layers of this media type are signatures.
    pub layer_media_type: &'static str,
    /// A layer without this annotation is set aside.
    pub signature_annotation: &'static str,
    /// The tag in messages: "the Cosign signature tag".
    pub title: &'static str,
    /// A layer in messages: "a Cosign layer".
    pub layer: &'static str,
}

/// Signatures stored as referrers of the subject (OCI 1.1).
#[derive(Debug)]
pub struct ReferrerSource {
    /// The artifact types (or config media types) of the referrer manifest.
    pub artifact_types: &'static [&'static str],
    /// In messages: "a Notation signature".
    pub name: &'static str,
    /// An annotation of referrers-index entries that tells attestations from signatures
    /// without a fetch.
    pub predicate: Option<Predicate>,
    pub layers: Layers,
}

/// An annotation naming the predicate type of what a referrer holds: only `signature` is a
/// signature; other values are attestations and are set aside unopened (a hint only: what is
/// opened is still judged by its signed content).
#[derive(Debug)]
pub struct Predicate {
    pub annotation: &'static str,
    pub signature: &'static str,
}

/// Which layer of a referrer manifest holds the signature.
#[derive(Debug)]
pub enum Layers {
    /// Exactly one layer; more is a defect. `what` names the artifact in that message.
    One { what: &'static str },
    /// The first layer.
    First,
}

/// A discovered signature artifact with its bytes, digest-checked by discovery: what the
/// formats read ([`Format::read`]).
#[derive(Clone, Debug)]
pub struct Artifact {
    pub kind: Kind,
    /// The referrer manifest's digest, for artifacts found as referrers.
    pub manifest: Option<Digest>,
    /// The layer holding the signature.
    pub layer_digest: Digest,
    pub media_type: String,
    pub annotations: BTreeMap<String, String>,
    pub bytes: Bytes,
}

/// What a check needs fetched before the verdict: today, the CRLs and OCSP answers of
/// Notation chains that passed integrity and authenticity.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub revocation: Vec<RevocationLocation>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.revocation.is_empty()
    }

    fn merge(&mut self, other: Plan) {
        for l in other.revocation {
            if !self.revocation.contains(&l) {
                self.revocation.push(l);
            }
        }
    }
}

/// What was fetched for a [`Plan`]. Missing answers are simply absent: the verdict then says
/// the status is unknown.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    pub revocation: RevocationData,
}

/// Fetches what `plan` names through `source`, each request bounded by the source's own time
/// limits; failures are left out.
pub async fn fetch(source: &dyn RevocationSource, plan: &Plan) -> Fetched {
    if plan.is_empty() {
        return Fetched::default();
    }
    Fetched {
        revocation: fetch_revocation(source, &plan.revocation).await,
    }
}

/// The artifact kinds an authority uses.
pub fn kinds(verifier: &Verifier) -> &'static [Kind] {
    match verifier {
        Verifier::Cosign(_) => Cosign::KINDS,
        Verifier::Notation(_) => Notation::KINDS,
    }
}

/// The verifier label of an authority (metrics, reports).
pub fn verifier_kind(verifier: &Verifier) -> VerifierKind {
    match verifier {
        Verifier::Cosign(_) => VerifierKind::Cosign,
        Verifier::Notation(_) => VerifierKind::Notation,
    }
}

/// What discovery looks for on behalf of `authorities`, one set per round ([`Source::stage`]),
/// in order; empty rounds are left out.
pub fn stages(authorities: &[Authority]) -> Vec<Kinds> {
    let mut rounds: BTreeMap<u8, Kinds> = BTreeMap::new();
    for a in authorities {
        for k in kinds(&a.verifier) {
            let round = rounds.entry(k.source().stage).or_default();
            *round = round.with(*k);
        }
    }
    rounds.into_values().filter(|k| !k.is_empty()).collect()
}

/// An authority's outcome before any signature was checked.
pub fn no_signature(verifier: &Verifier, subject: &Subject, ctx: &Context) -> Outcome {
    match verifier {
        Verifier::Cosign(c) => Cosign::no_signature(c, subject, ctx),
        Verifier::Notation(n) => Notation::no_signature(n, subject, ctx),
    }
}

/// One signature checked under every authority that uses its kind, as far as possible
/// without fetched data; [`Checked::plan`] says what to fetch, [`Checked::verdicts`] finishes.
/// Owns what it holds (no borrow of the policy), so it can cross to and from a blocking pool.
pub struct Checked {
    pending: Vec<(usize, Pending)>,
    plan: Plan,
}

enum Pending {
    Cosign(<Cosign as Format>::Proved),
    Notation(<Notation as Format>::Proved),
}

/// Checks `artifact` (the `n`th of its kind) with each of `authorities` that uses its kind.
///
/// Synchronous and CPU-bound (every signature and certificate check happens here), no I/O: a
/// caller may run it on a blocking pool.
pub fn check(
    authorities: &[Authority],
    subject: &Subject,
    artifact: Artifact,
    n: usize,
    ctx: &Context,
) -> Checked {
    let mut out = Checked {
        pending: Vec::new(),
        plan: Plan::default(),
    };
    // Each format reads the artifact once, whatever the number of its authorities.
    let mut cosign: Option<CosignArtifact> = None;
    let mut notation = None;
    for (i, a) in authorities.iter().enumerate() {
        if !kinds(&a.verifier).contains(&artifact.kind) {
            continue;
        }
        let (pending, plan) = match &a.verifier {
            Verifier::Cosign(c) => {
                let s = cosign.get_or_insert_with(|| Cosign::read(artifact.clone()));
                let (p, plan) = Cosign::check(c, subject, s, n, ctx);
                (Pending::Cosign(p), plan)
            }
            Verifier::Notation(x) => {
                let s = notation.get_or_insert_with(|| Notation::read(artifact.clone()));
                let (p, plan) = Notation::check(x, subject, s, n, ctx);
                (Pending::Notation(p), plan)
            }
        };
        out.plan.merge(plan);
        out.pending.push((i, pending));
    }
    out
}

impl Checked {
    /// What to fetch before [`Checked::verdicts`]; may be empty.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Each checked authority's outcome (by its index in `authorities`, which must be those
    /// given to [`check`]), finished with what was fetched for the plan. Synchronous and
    /// CPU-bound (revocation answers are judged here), no I/O.
    pub fn verdicts(
        self,
        authorities: &[Authority],
        fetched: &Fetched,
        ctx: &Context,
    ) -> Vec<(usize, Outcome)> {
        self.pending
            .into_iter()
            .filter_map(|(i, p)| {
                let outcome = match (p, &authorities.get(i)?.verifier) {
                    (Pending::Cosign(p), Verifier::Cosign(a)) => {
                        Cosign::verdict(a, p, fetched, ctx)
                    }
                    (Pending::Notation(p), Verifier::Notation(a)) => {
                        Notation::verdict(a, p, fetched, ctx)
                    }
                    // Other authorities than those checked: nothing to finish.
                    _ => return None,
                };
                Some((i, outcome))
            })
            .collect()
    }
}

/// How a verifier introduces, in a "no signature" failure, the artifacts it set aside as no
/// signature (an attestation, a blob signature): [`keep`] gathers them across signatures.
pub const IGNORED: &str = "; ignored: ";

/// Keeps, for one authority, the better of its outcome so far and a new one: trusted, or the
/// failure that says most ([`Reason::outranks`]; on a tie the first). Two "no signature"
/// failures keep every note of what was set aside.
pub fn keep(current: &mut Outcome, new: Outcome) {
    let replace = match (&mut *current, &new) {
        (Outcome::Trusted(_), _) => false,
        (_, Outcome::Trusted(_)) => true,
        (Outcome::Failed(old), Outcome::Failed(f))
            if old.reason == Reason::NoSignature && f.reason == Reason::NoSignature =>
        {
            if let Some((_, ignored)) = f.detail.split_once(IGNORED) {
                if old.detail.contains(IGNORED) {
                    old.detail = format!("{}; {ignored}", old.detail);
                } else {
                    old.detail = f.detail.clone();
                }
            }
            false
        }
        (Outcome::Failed(old), Outcome::Failed(f)) => f.reason.outranks(old.reason),
    };
    if replace {
        *current = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cosign::CosignAuthority;
    use crate::policy::notation::{NotationAuthority, NotationSpec};

    fn cosign() -> Authority {
        Authority {
            name: "c".into(),
            verifier: Verifier::Cosign(CosignAuthority::from_keys(Vec::new())),
        }
    }

    fn notation() -> Authority {
        let spec: NotationSpec =
            serde_yaml::from_str("signatureVerification: {level: skip}").unwrap();
        let (n, _) = NotationAuthority::load(
            &spec,
            &crate::policy::material::Resolver::files(),
            &crate::policy::material::Context::file(std::path::Path::new(".")),
        )
        .unwrap();
        Authority {
            name: "n".into(),
            verifier: Verifier::Notation(Box::new(n)),
        }
    }

    fn set(kinds: &[Kind]) -> Kinds {
        kinds.iter().copied().collect()
    }

    #[test]
    fn bundles_are_looked_for_in_a_later_round_than_the_sig_tag_and_notation() {
        use Kind::*;
        assert_eq!(stages(&[]), Vec::<Kinds>::new());
        assert_eq!(stages(&[cosign()]), vec![set(&[Cosign]), set(&[Bundle])]);
        assert_eq!(stages(&[notation()]), vec![set(&[Notation])]);
        assert_eq!(
            stages(&[notation(), cosign(), cosign()]),
            vec![set(&[Cosign, Notation]), set(&[Bundle])]
        );
        assert_eq!(
            set(&[Bundle, Cosign]).iter().collect::<Vec<_>>(),
            [Cosign, Bundle]
        );
    }

    #[test]
    fn what_a_check_returns_can_move_to_a_blocking_pool_and_back() {
        fn movable<T: Send + 'static>() {}
        movable::<Checked>();
        movable::<Artifact>();
        movable::<Fetched>();
    }

    #[test]
    fn a_signature_is_checked_only_by_the_authorities_of_its_kind() {
        let authorities = [cosign(), notation(), cosign()];
        let subject = Subject {
            digest: Digest::sha256_of(b"image"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1,
        };
        let ctx = Context {
            now: std::time::SystemTime::now(),
        };
        let artifact = Artifact {
            kind: Kind::Bundle,
            manifest: None,
            layer_digest: Digest::sha256_of(b"{}"),
            media_type: "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
            annotations: BTreeMap::new(),
            bytes: Bytes::from_static(b"{}"),
        };
        let checked = check(&authorities, &subject, artifact, 3, &ctx);
        assert!(checked.plan().is_empty());
        let verdicts = checked.verdicts(&authorities, &Fetched::default(), &ctx);
        let checked: Vec<usize> = verdicts.iter().map(|(i, _)| *i).collect();
        assert_eq!(checked, [0, 2]);
        for (_, o) in verdicts {
            // Numbered as the fourth bundle seen.
            assert!(
                matches!(&o, Outcome::Failed(f) if f.detail.starts_with("bundle 3: ")),
                "{o:?}"
            );
        }
    }
}
