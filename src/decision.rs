//! The decision engine: for each image of a review, which policies apply, what digest the tag
//! names, whether that digest is trusted under each policy, and what the admission answer is.
//!
//! Each image reference's parse and the policies that cover it are kept for the active policy
//! set (`prepared`), so a cache hit neither parses nor matches again. Verdicts are cached by
//! (digest, policy name, policy generation) in moka caches; concurrent misses for one key run
//! one verification (`try_get_with`). Only definitive verdicts are cached: a registry failure
//! or a deadline is never remembered. Every image is evaluated against the
//! review's deadline; what does not finish in time is undecided and follows `onError`. Each
//! review reaches the registry through its own `budget::ReviewBudget`, which bounds the
//! images, requests, concurrency and blob bytes one review may cost. Signatures are fetched and
//! checked one at a time until an authority is satisfied (`Tally`). A miss is verified, and a
//! cached entry renewed, on the verification runtime when the engine has one ([`crate::runtime`],
//! `Checks::elsewhere`), never on the threads that answer reviews. What to discover and how
//! to judge a signature is the formats' word, asked through `verify::format` only; this module
//! does the I/O (registry, revocation fetches), the caching, the budget and the tally. Must not
//! import hyper, Kubernetes types (the admission module translates), or the formats' modules
//! (`verify::cosign`, `verify::notation`).

mod budget;
mod message;
mod prepared;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use moka::Expiry;
use moka::future::Cache;
use tokio::sync::Semaphore;

use self::budget::{ReviewBudget, SignatureBytes};
use self::prepared::Prepared;
use crate::discovery::{self, Attempts, Defect, Kind, NotOpened, Wants};
use crate::image::{Digest, ImageRef};
use crate::metrics::Metrics;
use crate::policy::{
    NoMatch, OnError, PlatformSignatures, Policy, PolicyName, PolicySet, Verifier,
};
use crate::reason::Reason;
use crate::registry::{
    self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, OCI_INDEX, OCI_MANIFEST, Registry,
    RegistryError, Resolved, WorkloadCredentialSource,
};
use crate::verify::format::{self, Fetched, Plan, RevocationSource};
use crate::verify::{AuthorityOutcome, Context, Failure, Outcome, Subject, VerifierKind};

/// Whose registry credentials a review runs with (`--pull-secrets`): the namespace, the pod
/// spec's pull secrets and service account. Plain data; the admission module fills it in.
pub use crate::registry::Workload;

/// The most platform manifests `platformSignatures: accept` verifies in one index.
const MAX_PLATFORMS: usize = 16;

/// Whether a media type is a multi-platform index (OCI or Docker).
fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a runtime may pull an index entry as a platform image. containerd takes the first
/// entry whose platform matches the node, of an image manifest (or nested index) media type,
/// whatever its annotations say: buildx attestation manifests are skipped because their
/// platform is `unknown/unknown`, not because of their `vnd.docker.reference.type`
/// annotation, which whoever writes the index writes too.
fn runnable(entry: &Descriptor) -> bool {
    let pullable = entry.media_type == OCI_MANIFEST
        || entry.media_type == DOCKER_MANIFEST
        || is_index(&entry.media_type);
    let nowhere = entry
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    pullable && !nowhere
}

/// Cache sizes and lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    pub digest_ttl: Duration,
    pub trusted_ttl: Duration,
    pub untrusted_ttl: Duration,
    pub max_verdicts: u64,
    pub max_digests: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            digest_ttl: Duration::from_secs(30),
            trusted_ttl: Duration::from_secs(300),
            untrusted_ttl: Duration::from_secs(30),
            max_verdicts: 100_000,
            max_digests: 100_000,
        }
    }
}

/// One image as it appears in a workload, with the containers that use it (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    pub image: String,
    pub containers: Vec<String>,
}

/// The verdict of one policy for one image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(
    tag = "verdict",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum PolicyVerdict {
    /// At least one authority verified the image.
    Trusted { authorities: Vec<AuthorityOutcome> },
    /// Verification completed and no authority trusts the image.
    Untrusted {
        reason: Reason,
        authorities: Vec<AuthorityOutcome>,
    },
    /// Verification could not complete; `onError` decides.
    Undecided { reason: Reason, detail: String },
}

impl PolicyVerdict {
    pub fn reason(&self) -> Reason {
        match self {
            PolicyVerdict::Trusted { .. } => Reason::Trusted,
            PolicyVerdict::Untrusted { reason, .. } | PolicyVerdict::Undecided { reason, .. } => {
                *reason
            }
        }
    }
}

/// One policy's result for one image. Field names in camelCase, like the policy YAML.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult {
    pub policy: PolicyName,
    #[serde(serialize_with = "serialize_mode")]
    pub mode: crate::policy::Mode,
    #[serde(serialize_with = "serialize_on_error")]
    pub on_error: OnError,
    /// The policy's `pinTemplates`: pin this image in workload templates too, not only Pods.
    #[serde(skip)]
    pub pin_templates: bool,
    /// Shared with the verdict cache: a cache hit copies no verdict.
    #[serde(flatten)]
    pub verdict: Arc<PolicyVerdict>,
}

fn serialize_mode<S: serde::Serializer>(m: &crate::policy::Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn serialize_on_error<S: serde::Serializer>(m: &OnError, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match m {
        OnError::Deny => "deny",
        OnError::Allow => "allow",
    })
}

/// Everything signet concluded about one image.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// As written in the workload.
    pub image: String,
    /// Normalised, when it parses.
    pub reference: Option<String>,
    pub digest: Option<Digest>,
    pub containers: Vec<String>,
    #[serde(flatten)]
    pub status: ImageStatus,
}

/// How an image fared.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(
    tag = "status",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ImageStatus {
    InvalidReference { detail: String },
    NoPolicy { no_match: NoMatch },
    Checked { policies: Vec<PolicyResult> },
}

impl ImageReport {
    /// What the webhook answers for this image alone: denied, or admitted with its warnings
    /// and audit annotations (`signet verify` says it per image).
    pub fn admission(&self, no_match: NoMatch) -> Verdict {
        message::aggregate(vec![self.clone()], no_match)
    }

    /// Whether every policy that covers the image trusts it (and at least one covers it).
    pub fn trusted(&self) -> bool {
        match &self.status {
            ImageStatus::Checked { policies } => policies
                .iter()
                .all(|p| matches!(*p.verdict, PolicyVerdict::Trusted { .. })),
            _ => false,
        }
    }
}

impl Verdict {
    /// What the pinning route rewrites: each image (as written) that every covering policy
    /// trusts and that names no digest, mapped to the digest that was verified. For a workload
    /// template (`template`), only images a covering policy asks to pin there (`pinTemplates`):
    /// GitOps tools would otherwise see their manifests drift from what the cluster holds.
    pub fn pins(&self, template: bool) -> BTreeMap<String, Digest> {
        self.images
            .iter()
            .filter(|r| r.trusted())
            .filter_map(|r| {
                let ImageStatus::Checked { policies } = &r.status else {
                    return None;
                };
                if template && !policies.iter().any(|p| p.pin_templates) {
                    return None;
                }
                let named: ImageRef = r.image.parse().ok()?;
                if named.digest().is_some() {
                    return None;
                }
                Some((r.image.clone(), r.digest.clone()?))
            })
            .collect()
    }
}

/// The admission answer for a whole review.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// One line per failing image under an enforcing policy; joined into the deny message.
    pub denials: Vec<String>,
    /// One short line per failing image under a warning policy.
    pub warnings: Vec<String>,
    pub audit_annotations: BTreeMap<String, String>,
    pub images: Vec<ImageReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VerdictKey {
    /// `registry/repository`: signatures are discovered in the image's own repository, so the
    /// same digest elsewhere may have other signatures (or none).
    repository: String,
    digest: Digest,
    policy: PolicyName,
    generation: String,
}

/// A [`VerdictKey`] borrowed from a review, for a lookup that copies nothing: it hashes as the
/// key it stands for (the same fields in the same order, `&str` as `String`).
#[derive(Hash)]
struct VerdictKeyRef<'a> {
    repository: &'a str,
    digest: &'a Digest,
    policy: &'a PolicyName,
    generation: &'a str,
}

impl VerdictKeyRef<'_> {
    fn to_owned(&self) -> VerdictKey {
        VerdictKey {
            repository: self.repository.to_string(),
            digest: self.digest.clone(),
            policy: self.policy.clone(),
            generation: self.generation.to_string(),
        }
    }
}

impl moka::Equivalent<VerdictKey> for VerdictKeyRef<'_> {
    fn equivalent(&self, key: &VerdictKey) -> bool {
        self.repository == key.repository
            && *self.digest == key.digest
            && *self.policy == key.policy
            && self.generation == key.generation
    }
}

/// How long verdicts are cached: trusted ones at most `trusted` ([`trusted_for`]), the others
/// `untrusted`.
#[derive(Clone, Copy)]
struct VerdictLifetimes {
    trusted: Duration,
    untrusted: Duration,
}

impl VerdictLifetimes {
    /// `verdict` as a cache entry, with its lifetime.
    fn entry(&self, verdict: PolicyVerdict) -> Arc<CachedVerdict> {
        let lifetime = match &verdict {
            PolicyVerdict::Trusted { authorities } => {
                trusted_for(authorities, SystemTime::now(), self.trusted)
            }
            _ => self.untrusted,
        };
        Renewable::new(Arc::new(verdict), lifetime)
    }
}

/// A cache entry that the first hit in the last quarter of its lifetime renews in the
/// background (tag resolutions and verdicts alike): when it was made, how long it may be
/// served, and whether its renewal was started (one per entry).
#[derive(Debug)]
struct Renewable<T> {
    value: T,
    at: Instant,
    lifetime: Duration,
    renewing: AtomicBool,
}

impl<T> Renewable<T> {
    fn new(value: T, lifetime: Duration) -> Arc<Self> {
        Arc::new(Renewable {
            value,
            at: Instant::now(),
            lifetime,
            renewing: AtomicBool::new(false),
        })
    }

    /// The rest of the entry's lifetime, when this hit is the one to start its renewal: the
    /// entry is in its last quarter, and no hit started one before.
    fn renewal_due(&self) -> Option<Duration> {
        let rest = self.lifetime.checked_sub(self.at.elapsed())?;
        (rest <= self.lifetime / 4 && !self.renewing.swap(true, Ordering::Relaxed)).then_some(rest)
    }
}

impl<T> std::ops::Deref for Renewable<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A verdict in the cache.
type CachedVerdict = Renewable<Arc<PolicyVerdict>>;

/// Each entry lives as long as it says, counted from when it was made: a renewed verdict
/// replaces its entry with a lifetime of its own.
struct VerdictExpiry;

impl Expiry<VerdictKey, Arc<CachedVerdict>> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _: &VerdictKey,
        value: &Arc<CachedVerdict>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }

    fn expire_after_update(
        &self,
        _: &VerdictKey,
        value: &Arc<CachedVerdict>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// How long a trusted verdict may be cached: `max`, but never past the evidence of the
/// authority that trusted the image (a signature expiring, a revocation answer due).
fn trusted_for(authorities: &[AuthorityOutcome], now: SystemTime, max: Duration) -> Duration {
    let until = authorities.iter().find_map(|a| match &a.result {
        Outcome::Trusted(e) => e.valid_until,
        Outcome::Failed(_) => None,
    });
    until.map_or(max, |t| {
        t.duration_since(now).unwrap_or(Duration::ZERO).min(max)
    })
}

/// A digest-cache key: the reference and the identity of the credentials it was resolved with.
type DigestKey = (String, Option<String>);

/// A [`DigestKey`] borrowed from a review; hashes as the key it stands for.
#[derive(Hash)]
struct DigestKeyRef<'a>(&'a str, Option<&'a str>);

impl moka::Equivalent<DigestKey> for DigestKeyRef<'_> {
    fn equivalent(&self, key: &DigestKey) -> bool {
        self.0 == key.0 && self.1 == key.1.as_deref()
    }
}

/// A tag's resolution in the digest cache.
type Resolution = Renewable<Resolved>;

/// The engine; one per process, shared as `Arc`.
pub struct Engine {
    registry: Arc<dyn Registry>,
    /// The active policy set, with the image references its reviews use prepared.
    policies: RwLock<Arc<Prepared>>,
    /// Tag → digest, by (reference, identity of the workload's credentials for its host). A
    /// resolution was obtained with those credentials: a workload without them must ask the
    /// registry itself, which is what keeps the shared verdict cache safe (docs/registry.md).
    digests: Cache<DigestKey, Arc<Resolution>, ahash::RandomState>,
    /// How long a tag's resolution is served ([`CacheConfig::digest_ttl`]).
    digest_ttl: Duration,
    verdicts: Cache<VerdictKey, Arc<CachedVerdict>, ahash::RandomState>,
    lifetimes: VerdictLifetimes,
    metrics: Arc<Metrics>,
    checks: Checks,
    /// Signature blob bytes all reviews together may hold (`Limits::max_held_bytes`).
    held_bytes: Arc<Semaphore>,
    /// Where a workload's own registry credentials come from (`--pull-secrets`).
    pull_secrets: Option<Arc<dyn WorkloadCredentialSource>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        registry: Arc<dyn Registry>,
        policies: PolicySet,
        caches: CacheConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.policies(&policies);
        let held = registry.limits().max_held_bytes.min(u64::from(u32::MAX));
        Engine {
            held_bytes: Arc::new(Semaphore::new(usize::try_from(held).unwrap_or(usize::MAX))),
            checks: Checks {
                metrics: metrics.clone(),
                revocation: None,
                slots: Arc::new(Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
                )),
                runtime: None,
            },
            registry,
            policies: RwLock::new(Arc::new(Prepared::new(Arc::new(policies)))),
            digests: Cache::builder()
                .max_capacity(caches.max_digests)
                .time_to_live(caches.digest_ttl)
                .build_with_hasher(ahash::RandomState::new()),
            digest_ttl: caches.digest_ttl,
            verdicts: Cache::builder()
                .max_capacity(caches.max_verdicts)
                .expire_after(VerdictExpiry)
                .build_with_hasher(ahash::RandomState::new()),
            lifetimes: VerdictLifetimes {
                trusted: caches.trusted_ttl,
                untrusted: caches.untrusted_ttl,
            },
            metrics,
            pull_secrets: None,
        }
    }

    /// Looks up each workload's own registry credentials (its pull secrets) with `source`;
    /// they take precedence over the cluster-wide ones in [`Engine::decide_for`].
    pub fn with_pull_secrets(mut self, source: Arc<dyn WorkloadCredentialSource>) -> Self {
        self.pull_secrets = Some(source);
        self
    }

    /// Where Notation revocation checks fetch CRLs and OCSP answers. Without one, chains that
    /// name revocation locations have an unknown status (which the trust policy's level judges).
    pub fn with_revocation(mut self, source: Arc<dyn RevocationSource>) -> Self {
        self.checks.revocation = Some(source);
        self
    }

    /// Verifies cache misses and renews cached entries on `runtime` ([`crate::runtime`]): the
    /// registry exchanges and signature checks of new images then never run on the threads
    /// that answer reviews. Without it they run on the runtime of the review that needs them.
    pub fn with_verification_runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.checks.runtime = Some(runtime);
        self
    }

    /// The active policy set.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.active().set.clone()
    }

    fn active(&self) -> Arc<Prepared> {
        self.policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new policy set. Cached verdicts of changed policies become unreachable,
    /// since their generation is part of the key.
    pub fn replace_policies(&self, set: PolicySet) {
        self.metrics.policies(&set);
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Prepared::new(Arc::new(set)));
    }

    /// Decides a review: every image, under every policy that covers it, before `deadline`.
    ///
    /// A review that lists more distinct images than `Limits::review_max_images`, or needs
    /// more registry requests or blob bytes than its limits allow, is denied as a whole,
    /// whatever `onError` says: the pod spec asked for that much, the registry did not fail.
    pub async fn decide(
        &self,
        images: &[ImageUse],
        namespace: Option<&str>,
        deadline: Instant,
    ) -> Verdict {
        self.decide_for(images, namespace, None, deadline).await
    }

    /// Whether reviews' own registry credentials are used (`--pull-secrets`): without it the
    /// caller need not read who the workload is.
    pub fn uses_pull_secrets(&self) -> bool {
        self.pull_secrets.is_some()
    }

    /// Like [`Engine::decide`], with the registry credentials of `workload` (its pull secrets,
    /// then its service account's) ahead of the cluster-wide ones, when the engine has a
    /// source for them. What the caches share between workloads with different credentials is
    /// written at `resolve` and `verdict` below, and in docs/registry.md.
    pub async fn decide_for(
        &self,
        images: &[ImageUse],
        namespace: Option<&str>,
        workload: Option<&Workload>,
        deadline: Instant,
    ) -> Verdict {
        match (&self.pull_secrets, workload) {
            (Some(source), Some(w)) => {
                let creds = Arc::new(source.lookup(w, deadline).await);
                registry::with_credentials(creds, self.decide_images(images, namespace, deadline))
                    .await
            }
            _ => self.decide_images(images, namespace, deadline).await,
        }
    }

    async fn decide_images(
        &self,
        images: &[ImageUse],
        namespace: Option<&str>,
        deadline: Instant,
    ) -> Verdict {
        let limits = self.registry.limits();
        // Counted only when the list is long enough to matter: a cache hit skips the set.
        if images.len() > limits.review_max_images {
            let distinct = images
                .iter()
                .map(|u| u.image.as_str())
                .collect::<HashSet<_>>()
                .len();
            if distinct > limits.review_max_images {
                return denied(format!(
                    "the workload lists {distinct} distinct images, more than the {} one review \
                     may check (--review-max-images); none was checked",
                    limits.review_max_images
                ));
            }
        }
        let active = self.active();
        let set = &active.set;
        let budget = Arc::new(ReviewBudget::new(
            self.registry.clone(),
            self.held_bytes.clone(),
        ));
        let reports = futures_util::future::join_all(
            images
                .iter()
                .map(|u| self.evaluate(&active, &budget, u, namespace, deadline)),
        )
        .await;
        let mut verdict = message::aggregate(reports, set.no_match);
        let window = set.expiry_warning();
        if !window.is_zero() {
            message::expiry_notices(&mut verdict, SystemTime::now(), window);
        }
        message::bound_warnings(&mut verdict.warnings);
        if let Some(what) = budget.exhaustion() {
            verdict.allowed = false;
            verdict.denials.insert(
                0,
                format!(
                    "checking the workload's images needs {what}; images it could not check \
                     are denied whatever their policy's onError says"
                ),
            );
        }
        verdict
    }

    async fn evaluate(
        &self,
        active: &Prepared,
        budget: &Arc<ReviewBudget>,
        usage: &ImageUse,
        namespace: Option<&str>,
        deadline: Instant,
    ) -> ImageReport {
        let mut report = ImageReport {
            image: usage.image.clone(),
            reference: None,
            digest: None,
            containers: usage.containers.clone(),
            status: ImageStatus::NoPolicy {
                no_match: active.set.no_match,
            },
        };
        let prepared = match active.image(&usage.image) {
            Ok(i) => i,
            Err(e) => {
                report.status = ImageStatus::InvalidReference {
                    detail: e.to_string(),
                };
                return report;
            }
        };
        report.reference = Some(prepared.reference.clone());
        let policies = active.policies(&prepared, namespace);
        if policies.is_empty() {
            return report;
        }
        let resolved = self.resolve(budget, &prepared, deadline).await;
        let results = match resolved {
            Err(v) => {
                // Verification never started, but the failure still counts, with its reason.
                for p in policies.iter() {
                    self.record_undecided(p, v.reason());
                }
                policies.iter().map(|p| result(p, v.clone())).collect()
            }
            Ok(resolved) => {
                report.digest = Some(resolved.digest.clone());
                let by_tag = prepared.image.digest().is_none();
                let checks = policies.iter().map(|p| {
                    let (prepared, resolved) = (&prepared, &resolved);
                    async move {
                        if p.require_digest && by_tag {
                            self.metrics.verification(
                                verifier_kind_of(p).as_str(),
                                true,
                                Reason::DigestRequired,
                            );
                            let pinned =
                                prepared.image.clone().into_pinned(resolved.digest.clone());
                            return result(p, digest_required(&pinned));
                        }
                        result(
                            p,
                            self.verdict(budget, prepared, resolved, p, deadline).await,
                        )
                    }
                });
                futures_util::future::join_all(checks).await
            }
        };
        report.status = ImageStatus::Checked { policies: results };
        report
    }

    /// Counts an undecided verification for each authority of `policy`.
    fn record_undecided(&self, policy: &Policy, reason: Reason) {
        for a in &policy.authorities {
            self.metrics
                .verification(verifier_kind(&a.verifier).as_str(), false, reason);
        }
    }

    /// Tag (or digest) → manifest descriptor (`reference` is `image` written out), cached
    /// briefly since tags move, and only for the credentials it was resolved with: every
    /// workload passes the registry's access check with its own credentials before it can reach
    /// a shared verdict. A miss asks the registry before `deadline`; its failure is the
    /// image's undecided verdict.
    async fn resolve(
        &self,
        budget: &Arc<ReviewBudget>,
        prepared: &prepared::Image,
        deadline: Instant,
    ) -> Result<Arc<Resolution>, PolicyVerdict> {
        let image = &prepared.image;
        let identity = registry::credential_identity(image.registry());
        // A hit is looked up by a borrowed key (the owned one is built for a miss or a renewal
        // only), and needs neither the registry nor the deadline.
        let borrowed = DigestKeyRef(&prepared.reference, identity.as_deref());
        if let Some(hit) = self.digests.get(&borrowed).await {
            self.metrics.cache("digest", true);
            if let Some(rest) = hit.renewal_due() {
                self.refresh((prepared.reference.clone(), identity), image.clone(), rest);
            }
            return Ok(hit);
        }
        match by_deadline(deadline, self.resolve_missed(budget, prepared, identity)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(PolicyVerdict::Undecided {
                reason: e.reason,
                detail: with_credential_note(&e),
            }),
            Err(_) => Err(deadline_verdict()),
        }
    }

    /// [`Engine::resolve`] past the cache: the registry is asked, once for all the reviews
    /// that miss the same key at the same time.
    async fn resolve_missed(
        &self,
        budget: &Arc<ReviewBudget>,
        prepared: &prepared::Image,
        identity: Option<String>,
    ) -> Result<Arc<Resolution>, RegistryError> {
        let image = &prepared.image;
        let key = (prepared.reference.clone(), identity);
        let missed = AtomicBool::new(false);
        let run = || async {
            missed.store(true, Ordering::Relaxed);
            let (budget, image) = (budget.clone(), image.clone());
            self.checks
                .elsewhere(Box::pin(async move { budget.resolve(&image).await }))
                .await
                .unwrap_or_else(|| {
                    Err(RegistryError::new(
                        Reason::Internal,
                        "resolving the image did not finish",
                    ))
                })
                .map(|r| Resolution::new(r, self.digest_ttl))
        };
        // By reference: the key is copied into the cache on a miss only.
        let mut r = self.digests.try_get_with_by_ref(&key, run()).await;
        if r.is_err() && !missed.load(Ordering::Relaxed) {
            // Another review's failure, perhaps of its own budget or deadline: ask for this one.
            r = self.digests.try_get_with_by_ref(&key, run()).await;
        }
        self.metrics
            .cache("digest", !missed.load(Ordering::Relaxed));
        r.map_err(|e| (*e).clone())
    }

    /// Resolves `image` again for the digest cache without a review waiting on it: started by
    /// the first hit in the last quarter of an entry's lifetime (`within` is the rest of it), so
    /// that a tag in steady use is
    /// renewed before its entry expires, rather than every review of it waiting on the
    /// registry each time it does. Meanwhile the entry is served as before, never past its
    /// lifetime; a refresh that fails or does not finish within that lifetime changes nothing,
    /// and the next review after the expiry resolves the tag itself. It runs with the
    /// credentials of the review that started it, which the key names.
    fn refresh(&self, key: DigestKey, image: ImageRef, within: Duration) {
        let registry = self.registry.clone();
        let digests = self.digests.clone();
        let metrics = self.metrics.clone();
        let lifetime = self.digest_ttl;
        let renewal = in_background(within, async move { registry.resolve(&image).await });
        self.checks.spawn(async move {
            let ok = if let Some(Ok(r)) = renewal.await {
                digests.insert(key, Resolution::new(r, lifetime)).await;
                true
            } else {
                false
            };
            metrics
                .digest_refreshes
                .with_label_values(&[if ok { "ok" } else { "failed" }])
                .inc();
        });
    }

    /// The verdict of one policy for one digest, from the cache or by verifying.
    ///
    /// Concurrent reviews asking for one key share one verification, run under the budget,
    /// deadline and registry credentials of the review that started it. The key holds no
    /// credentials: a definitive verdict is about the digest's signatures in its repository,
    /// not about who may pull it, and a review only gets here after resolving the image with
    /// its own credentials ([`Engine::resolve`]). Undecided results are not cached, and a review
    /// that received one from another review's run verifies once more under its own, so that
    /// one review running out of requests or time cannot fail another's image. A verification
    /// not finished by `deadline` is undecided.
    async fn verdict(
        &self,
        budget: &Arc<ReviewBudget>,
        prepared: &prepared::Image,
        resolved: &Resolved,
        policy: &Arc<Policy>,
        deadline: Instant,
    ) -> Arc<PolicyVerdict> {
        let borrowed = VerdictKeyRef {
            repository: &prepared.repository,
            digest: &resolved.digest,
            policy: &policy.name,
            generation: &policy.generation,
        };
        let pinned = || prepared.image.clone().into_pinned(resolved.digest.clone());
        if let Some(hit) = self.verdicts.get(&borrowed).await {
            self.metrics.cache("verdict", true);
            if let Some(rest) = hit.renewal_due() {
                self.renew(
                    borrowed.to_owned(),
                    pinned(),
                    resolved.clone(),
                    policy.clone(),
                    rest,
                );
            }
            return hit.value.clone();
        }
        let missed = self.verdict_missed(budget, borrowed.to_owned(), pinned(), resolved, policy);
        match by_deadline(deadline, missed).await {
            Ok(v) => v,
            Err(_) => {
                self.record_undecided(policy, Reason::DeadlineExceeded);
                Arc::new(deadline_verdict())
            }
        }
    }

    /// [`Engine::verdict`] past the cache: `image` (pinned) verified, once for all the reviews
    /// that miss the same key at the same time.
    async fn verdict_missed(
        &self,
        budget: &Arc<ReviewBudget>,
        key: VerdictKey,
        image: ImageRef,
        resolved: &Resolved,
        policy: &Arc<Policy>,
    ) -> Arc<PolicyVerdict> {
        let missed = AtomicBool::new(false);
        let run = || async {
            missed.store(true, Ordering::Relaxed);
            let work = {
                let checks = self.checks.clone();
                let (budget, image) = (budget.clone(), image.clone());
                let (resolved, policy) = (resolved.clone(), policy.clone());
                Box::pin(async move { checks.verify(&budget, &image, &resolved, &policy).await })
            };
            let v = self.checks.elsewhere(work).await.unwrap_or_else(|| {
                self.record_undecided(policy, Reason::Internal);
                PolicyVerdict::Undecided {
                    reason: Reason::Internal,
                    detail: "verifying the image did not finish".into(),
                }
            });
            match v {
                PolicyVerdict::Undecided { .. } => Err(v),
                v => Ok(self.lifetimes.entry(v)),
            }
        };
        let mut r = self.verdicts.try_get_with_by_ref(&key, run()).await;
        if r.is_err() && !missed.load(Ordering::Relaxed) {
            r = self.verdicts.try_get_with_by_ref(&key, run()).await;
        }
        self.metrics
            .cache("verdict", !missed.load(Ordering::Relaxed));
        match r {
            Ok(v) => v.value.clone(),
            Err(e) => Arc::new((*e).clone()),
        }
    }

    /// Verifies `image` again for the verdict cache without a review waiting on it: started by
    /// the first hit in the last quarter of an entry's lifetime (`within` is the rest of it),
    /// so that an image in steady use is checked again before its verdict expires, rather than
    /// a review of it waiting on the registry and the signature checks each time it does. The
    /// entry is served meanwhile, never past its lifetime; a definitive verdict replaces it
    /// with a lifetime of its own (a signature revoked since is seen here, as it would have
    /// been at the expiry), and an undecided one (the registry failing, the time running out)
    /// changes nothing: the next review after the expiry verifies itself. It runs with its own
    /// budget and with the registry credentials of the review that started it.
    fn renew(
        &self,
        key: VerdictKey,
        image: ImageRef,
        resolved: Resolved,
        policy: Arc<Policy>,
        within: Duration,
    ) {
        let checks = self.checks.clone();
        let verdicts = self.verdicts.clone();
        let lifetimes = self.lifetimes;
        let budget = ReviewBudget::new(self.registry.clone(), self.held_bytes.clone());
        let verify = {
            let checks = checks.clone();
            async move { checks.verify(&budget, &image, &resolved, &policy).await }
        };
        let renewal = in_background(within, verify);
        self.checks.spawn(async move {
            let ok = match renewal.await {
                Some(v) if !matches!(v, PolicyVerdict::Undecided { .. }) => {
                    verdicts.insert(key, lifetimes.entry(v)).await;
                    true
                }
                _ => false,
            };
            checks
                .metrics
                .verdict_renewals
                .with_label_values(&[if ok { "ok" } else { "failed" }])
                .inc();
        });
    }
}

/// `work` as the renewal of a cache entry: under a deadline `within` from now (the registry
/// client's, and a timeout's) and with the registry credentials of the review whose hit
/// started it, taken here, in that review's task. `None` when the deadline passed first.
fn in_background<T>(
    within: Duration,
    work: impl Future<Output = T>,
) -> impl Future<Output = Option<T>> {
    let deadline = Instant::now() + within;
    let scope = registry::Scope::current().until(deadline);
    async move {
        scope
            .run(tokio::time::timeout_at(deadline.into(), work))
            .await
            .ok()
    }
}

/// What verifying needs besides the review's budget: cheap to clone, so that a verdict can be
/// renewed by a task of its own ([`Engine::renew`]).
#[derive(Clone)]
struct Checks {
    metrics: Arc<Metrics>,
    revocation: Option<Arc<dyn RevocationSource>>,
    /// Signature checks running on the blocking pool at once: half the cores (at least one),
    /// so that a storm of cold images leaves cores to the async workers' cache hits.
    slots: Arc<Semaphore>,
    /// The verification runtime ([`Engine::with_verification_runtime`]); `None`: the current one.
    runtime: Option<tokio::runtime::Handle>,
}

impl Checks {
    /// Starts `work` as a task of its own on the verification runtime.
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(work)),
            None => drop(tokio::spawn(work)),
        }
    }

    /// Runs `work` (a miss's registry exchanges and signature checks) on the verification
    /// runtime, with the registry deadline and credentials of the task that asks, and waits for
    /// it; dropping the wait (the review's deadline, a closed connection) stops it. Without a
    /// verification runtime, runs it here. `None` only when it could not finish (it panicked,
    /// or the runtime is shutting down).
    ///
    /// Only misses get here (a hit returns before its miss's future, boxed by [`by_deadline`],
    /// is built). The work still comes boxed:
    /// held by value, it would be held and moved by each layer of the cache's own future
    /// (unboxed, a verdict miss's future grew from 2 KB to 13 KB).
    async fn elsewhere<T: Send + 'static>(&self, work: BoxFuture<'static, T>) -> Option<T> {
        let Some(runtime) = &self.runtime else {
            return Some(work.await);
        };
        let task = runtime.spawn(registry::Scope::current().run(work));
        match tokio_util::task::AbortOnDropHandle::new(task).await {
            Ok(out) => Some(out),
            Err(e) => {
                tracing::error!(error = %e, "a verification did not finish");
                None
            }
        }
    }

    /// Finds the signatures the policy can use and checks each authority; any suffices.
    ///
    /// Discovery runs in the rounds the formats ask for (`format::stages`), a later round only
    /// while no authority is satisfied, to keep registry round trips low.
    async fn verify(
        &self,
        budget: &ReviewBudget,
        image: &ImageRef,
        resolved: &Resolved,
        policy: &Arc<Policy>,
    ) -> PolicyVerdict {
        let subject = Subject {
            digest: resolved.digest.clone(),
            media_type: resolved.media_type.clone(),
            size: resolved.size,
        };
        let verdict = self.verify_subject(budget, image, subject, policy).await;
        if !matches!(verdict, PolicyVerdict::Untrusted { .. })
            || policy.platform_signatures != PlatformSignatures::Accept
            || !is_index(&resolved.media_type)
        {
            return verdict;
        }
        self.verify_platforms(budget, image, resolved, policy)
            .await
            .unwrap_or(verdict)
    }

    /// `platformSignatures: accept` (see [`PlatformSignatures`] for the semantics and the
    /// risk): the index is trusted when every entry a runtime could pull ([`runnable`]) is.
    /// `None` keeps the index's own verdict (some platform is untrusted, or the index is not
    /// usable).
    async fn verify_platforms(
        &self,
        budget: &ReviewBudget,
        image: &ImageRef,
        resolved: &Resolved,
        policy: &Arc<Policy>,
    ) -> Option<PolicyVerdict> {
        let index = match budget.manifest(image, resolved.digest.as_str()).await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => return Some(self.undecided(policy, e)),
        };
        let platforms: Vec<_> = index
            .body
            .manifests
            .iter()
            .filter(|d| runnable(d))
            .collect();
        if platforms.is_empty() || platforms.len() > MAX_PLATFORMS {
            return None;
        }
        let mut last = None;
        for d in platforms {
            let child = Subject {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
            };
            let pinned = image.with_digest(d.digest.clone());
            match self.verify_subject(budget, &pinned, child, policy).await {
                v @ PolicyVerdict::Trusted { .. } => last = Some(v),
                v @ PolicyVerdict::Undecided { .. } => return Some(v),
                PolicyVerdict::Untrusted { .. } => return None,
            }
        }
        last
    }

    /// Checks the signatures of one subject, one at a time, until an authority is satisfied.
    /// Undecided only when no authority is satisfied and the registry failed on the way.
    async fn verify_subject(
        &self,
        budget: &ReviewBudget,
        image: &ImageRef,
        subject: Subject,
        policy: &Arc<Policy>,
    ) -> PolicyVerdict {
        let ctx = Context {
            now: SystemTime::now(),
        };
        let mut tally = Tally::new(policy, &subject, &ctx);
        let mut bytes = SignatureBytes::new(budget);
        let mut failed = None;
        for (round, wants) in format::stages(&policy.authorities).into_iter().enumerate() {
            if round > 0 && tally.trusted() {
                break;
            }
            let more = self
                .judge(budget, &mut bytes, &mut tally, image, wants)
                .await;
            failed = failed.or(more);
        }
        drop(bytes);
        if !tally.trusted()
            && let Some(e) = failed
        {
            // Signatures may be missing from the judgement: not a decision.
            return self.undecided(policy, e);
        }
        let outcomes = tally.finish();
        for o in &outcomes {
            let reason = match &o.result {
                Outcome::Trusted(e) => {
                    // Checks the trust policy level only logs (Notation audit/permissive).
                    for check in &e.logged {
                        tracing::warn!(
                            image = %image,
                            policy = %policy.name,
                            authority = %o.authority,
                            %check,
                            "signature accepted with a failed check that the verification level only logs"
                        );
                    }
                    Reason::Trusted
                }
                Outcome::Failed(f) => f.reason,
            };
            self.metrics.verification(o.verifier.as_str(), true, reason);
        }
        if outcomes.iter().any(trusted) {
            PolicyVerdict::Trusted {
                authorities: outcomes,
            }
        } else {
            PolicyVerdict::Untrusted {
                reason: most_specific(&outcomes),
                authorities: outcomes,
            }
        }
    }

    /// Lists the signature candidates `wants` names and checks them one by one, fetching each
    /// blob only when its turn comes, until an authority is satisfied. Returns the first
    /// registry failure met (the candidates after it are still tried).
    async fn judge(
        &self,
        budget: &ReviewBudget,
        bytes: &mut SignatureBytes<'_>,
        tally: &mut Tally<'_>,
        image: &ImageRef,
        wants: Wants,
    ) -> Option<RegistryError> {
        let subject = tally.subject;
        let listing = match discovery::list(budget, image, subject, wants).await {
            Ok(l) => l,
            Err(e) => return Some(e),
        };
        for d in listing.defects {
            tally.defect(&d);
        }
        tally.ignored.extend(listing.ignored);
        let mut failed = None;
        let mut attempts = Attempts::default();
        for candidate in &listing.candidates {
            if tally.trusted() {
                break;
            }
            let opened =
                discovery::open(budget, image, subject, candidate, wants, &mut attempts).await;
            if let discovery::Candidate::Referrer(d) = candidate
                && !matches!(opened, Err(NotOpened::Skipped(_)))
            {
                tally.used.push(d.digest.clone());
            }
            let artifact = match opened {
                Ok(o) => match bytes.fetch(image, &o.layer, o.kind).await {
                    Ok(b) => discovery::assemble(&o, b),
                    Err(n) => {
                        tally.not_opened(n, &mut failed);
                        continue;
                    }
                },
                Err(n) => {
                    tally.not_opened(n, &mut failed);
                    continue;
                }
            };
            // Down (check, pure), the fetches its plan names, and back (verdicts, pure): once.
            let n = tally.number(artifact.kind);
            let (policy, ctx) = (tally.policy, tally.ctx);
            let checked = {
                let (policy, subject) = (policy.clone(), subject.clone());
                self.off_workers(move || {
                    format::check(&policy.authorities, &subject, artifact, n, &ctx)
                })
                .await
            };
            let Some(checked) = checked else {
                continue;
            };
            let fetched = self.fetch(checked.plan()).await;
            let verdicts = {
                let policy = policy.clone();
                self.off_workers(move || checked.verdicts(&policy.authorities, &fetched, &ctx))
                    .await
            };
            for (i, outcome) in verdicts.into_iter().flatten() {
                tally.keep(i, outcome);
            }
        }
        failed
    }

    /// What a signature's check asked to fetch (revocation answers), when the engine has a
    /// fetcher; without one the verdict finds the answers missing.
    async fn fetch(&self, plan: &Plan) -> Fetched {
        match &self.revocation {
            Some(source) if !plan.is_empty() => format::fetch(source.as_ref(), plan).await,
            _ => Fetched::default(),
        }
    }

    /// Runs `work` on the blocking pool, at most [`slots`](Checks) at a time: signature
    /// checks and chain validations take tens to hundreds of microseconds of CPU each, and on
    /// the async workers a storm of cold images would hold back every cache hit. `None` only
    /// when the work could not finish (the runtime is shutting down, or the work panicked):
    /// the signature then counts for nothing, which can only deny.
    async fn off_workers<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _slot = self.slots.acquire().await.ok();
        match tokio::task::spawn_blocking(work).await {
            Ok(out) => Some(out),
            Err(e) => {
                tracing::error!(error = %e, "a signature check did not finish");
                None
            }
        }
    }

    fn undecided(&self, policy: &Policy, e: RegistryError) -> PolicyVerdict {
        for a in &policy.authorities {
            self.metrics
                .verification(verifier_kind(&a.verifier).as_str(), false, e.reason);
        }
        PolicyVerdict::Undecided {
            reason: e.reason,
            detail: with_credential_note(&e),
        }
    }
}

/// The detail of a registry failure, with what the workload's pull secrets could not give when
/// the registry refused access (or hid the repository): the missing or unreadable secret is
/// then the likely cause.
fn with_credential_note(e: &RegistryError) -> String {
    match (e.reason, registry::credential_note()) {
        (Reason::Unauthorized | Reason::NotFound, Some(note)) => format!("{}; {note}", e.detail),
        _ => e.detail.clone(),
    }
}

/// Each authority's best outcome so far, as signatures are checked one at a time: trusted, or
/// the failure that says most (`format::keep`; on a tie the first, i.e. the newest
/// signature's).
struct Tally<'a> {
    policy: &'a Arc<Policy>,
    subject: &'a Subject,
    ctx: Context,
    outcomes: Vec<Outcome>,
    /// Signatures checked so far, per kind, to number them in messages.
    seen: [usize; Kind::ALL.len()],
    /// Artifacts of the subject set aside as no signature this policy uses (a referrer may be
    /// set aside by one listing and used by the next: `used` wins).
    ignored: Vec<discovery::Ignored>,
    used: Vec<Digest>,
}

impl<'a> Tally<'a> {
    /// Every authority's outcome with no signature at all: "no signature", except what needs
    /// none (a Notation authority at level `skip`).
    fn new(policy: &'a Arc<Policy>, subject: &'a Subject, ctx: &Context) -> Self {
        let outcomes = policy
            .authorities
            .iter()
            .map(|a| format::no_signature(&a.verifier, subject, ctx))
            .collect();
        Tally {
            policy,
            subject,
            ctx: *ctx,
            outcomes,
            seen: [0; Kind::ALL.len()],
            ignored: Vec::new(),
            used: Vec::new(),
        }
    }

    fn trusted(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Trusted(_)))
    }

    /// The number of the next signature of `kind`, counted from 0, for messages.
    fn number(&mut self, kind: Kind) -> usize {
        let n = self.seen[kind.index()];
        self.seen[kind.index()] += 1;
        n
    }

    /// A defective signature artifact: a failed signature for the authorities of its kinds.
    fn defect(&mut self, d: &Defect) {
        for i in 0..self.policy.authorities.len() {
            let uses = format::kinds(&self.policy.authorities[i].verifier)
                .iter()
                .any(|k| d.kinds.contains(k));
            if uses {
                self.keep(i, Outcome::Failed(d.failure.clone()));
            }
        }
    }

    /// A candidate that gave no signature: skipped (logged), defective (a failed signature),
    /// or the registry failed (kept in `failed`, the first one only).
    fn not_opened(&mut self, n: NotOpened, failed: &mut Option<RegistryError>) {
        match n {
            NotOpened::Skipped(i) => {
                tracing::debug!(why = %i.what, "signature candidate skipped");
                self.ignored.push(i);
            }
            NotOpened::Defect(d) => self.defect(&d),
            NotOpened::Registry(e) => {
                failed.get_or_insert(e);
            }
        }
    }

    fn keep(&mut self, i: usize, new: Outcome) {
        format::keep(&mut self.outcomes[i], new);
    }

    /// The outcomes for the verdict: the authorities up to the first that trusts, or all. The
    /// last "no signature" failure also names the artifacts that were set aside.
    fn finish(mut self) -> Vec<AuthorityOutcome> {
        let note = ignored_note(&self.ignored, &self.used);
        if let Some(Outcome::Failed(f)) = self
            .outcomes
            .iter_mut()
            .rev()
            .find(|o| matches!(o, Outcome::Failed(f) if f.reason == Reason::NoSignature))
            && !note.is_empty()
        {
            f.detail.push_str(&note);
        }
        let mut out = Vec::with_capacity(self.outcomes.len());
        for (a, result) in self.policy.authorities.iter().zip(self.outcomes) {
            let done = matches!(result, Outcome::Trusted(_));
            out.push(AuthorityOutcome {
                authority: a.name.clone(),
                verifier: verifier_kind(&a.verifier),
                result,
            });
            if done {
                break;
            }
        }
        out
    }
}

/// Artifacts named in a "no signature" message at most; the rest are counted.
const IGNORED_SHOWN: usize = 3;

/// "; ignored 2 artifacts: an SBOM (application/spdx+json), an attestation (…)": what was set
/// aside and never used, once per digest, the first [`IGNORED_SHOWN`] named. Empty if none.
fn ignored_note(ignored: &[discovery::Ignored], used: &[Digest]) -> String {
    let mut seen: Vec<&Digest> = Vec::new();
    let mut named = Vec::new();
    for i in ignored {
        if used.contains(&i.digest) || seen.contains(&&i.digest) {
            continue;
        }
        seen.push(&i.digest);
        if named.len() < IGNORED_SHOWN {
            named.push(i.what.as_str());
        }
    }
    let n = seen.len();
    if n == 0 {
        return String::new();
    }
    let more = if n > named.len() {
        format!(" and {} more", n - named.len())
    } else {
        String::new()
    };
    format!(
        "; ignored {n} artifact{}: {}{more}",
        if n == 1 { "" } else { "s" },
        named.join(", ")
    )
}

fn trusted(o: &AuthorityOutcome) -> bool {
    matches!(o.result, Outcome::Trusted(_))
}

fn verifier_kind(v: &Verifier) -> VerifierKind {
    format::verifier_kind(v)
}

fn result(policy: &Policy, verdict: impl Into<Arc<PolicyVerdict>>) -> PolicyResult {
    PolicyResult {
        policy: policy.name.clone(),
        mode: policy.mode,
        on_error: policy.on_error,
        pin_templates: policy.pin_templates,
        verdict: verdict.into(),
    }
}

/// The verdict of a `requireDigest` policy for an image named by tag alone: untrusted, with
/// the exact reference to write instead (the tag kept for readers, the digest for the runtime).
fn digest_required(pinned: &ImageRef) -> PolicyVerdict {
    PolicyVerdict::Untrusted {
        reason: Reason::DigestRequired,
        authorities: vec![AuthorityOutcome {
            authority: "requireDigest".into(),
            verifier: VerifierKind::Cosign,
            result: Outcome::Failed(Failure::new(
                Reason::DigestRequired,
                format!("use {pinned}"),
            )),
        }],
    }
}

/// The verifier label for a policy-level check that runs before any authority: the policy's
/// first authority's kind.
fn verifier_kind_of(policy: &Policy) -> VerifierKind {
    policy
        .authorities
        .first()
        .map_or(VerifierKind::Cosign, |a| verifier_kind(&a.verifier))
}

/// A cache miss's work under the review's `deadline`: the registry client has it in scope (a
/// retry or a wait that would not fit fails at once with its real reason) and the wait for the
/// work ends at it. Boxed: held inline, the miss's future would make every review's future that
/// much larger, and a cache hit moves what its future holds.
fn by_deadline<F: std::future::Future>(
    deadline: Instant,
    miss: F,
) -> impl std::future::Future<Output = Result<F::Output, tokio::time::error::Elapsed>> {
    Box::pin(tokio::time::timeout_at(
        deadline.into(),
        registry::with_deadline(deadline, miss),
    ))
}

fn deadline_verdict() -> PolicyVerdict {
    PolicyVerdict::Undecided {
        reason: Reason::DeadlineExceeded,
        detail: "the time the API server allows this review (its ?timeout=, less a safety margin) ran out".into(),
    }
}

/// The reason that says most about why no authority trusted the image ([`Reason::most_telling`]:
/// a signature that was found but failed says more than "no signature" from another authority;
/// on a tie the first authority's).
fn most_specific(outcomes: &[AuthorityOutcome]) -> Reason {
    let failed = outcomes.iter().filter_map(|o| match &o.result {
        Outcome::Failed(Failure { reason, .. }) => Some(*reason),
        Outcome::Trusted(_) => None,
    });
    // No outcome means no authority at all (the trust material they name is missing): nothing
    // can trust the signer.
    Reason::most_telling(failed, |r| *r).unwrap_or(Reason::UntrustedSigner)
}

/// A review denied as a whole, before any image was checked.
fn denied(message: String) -> Verdict {
    Verdict {
        allowed: false,
        denials: vec![message],
        ..Verdict::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Evidence;

    /// The verdict's reason is the most telling of the authorities' failures and, among
    /// equally telling ones, the first authority's: the same rule as everywhere else.
    /// A borrowed key finds the entry of the owned key it stands for, and no other: it must
    /// hash as that key does, or every lookup of a hit would miss.
    #[tokio::test]
    async fn borrowed_keys_find_the_entries_of_the_keys_they_stand_for() {
        let digests: Cache<DigestKey, u8, ahash::RandomState> =
            Cache::builder().build_with_hasher(ahash::RandomState::new());
        digests.insert(("r.io/a:1".into(), None), 1).await;
        digests
            .insert(("r.io/a:1".into(), Some("pull".into())), 2)
            .await;
        assert_eq!(digests.get(&DigestKeyRef("r.io/a:1", None)).await, Some(1));
        assert_eq!(
            digests.get(&DigestKeyRef("r.io/a:1", Some("pull"))).await,
            Some(2)
        );
        assert_eq!(
            digests.get(&DigestKeyRef("r.io/a:1", Some("other"))).await,
            None
        );
        assert_eq!(digests.get(&DigestKeyRef("r.io/a:2", None)).await, None);

        let verdicts: Cache<VerdictKey, u8, ahash::RandomState> =
            Cache::builder().build_with_hasher(ahash::RandomState::new());
        let (digest, other) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let (prod, dev) = (PolicyName::new("prod"), PolicyName::new("dev"));
        let key = |digest, policy, generation| VerdictKeyRef {
            repository: "r.io/a",
            digest,
            policy,
            generation,
        };
        verdicts
            .insert(key(&digest, &prod, "g1").to_owned(), 1)
            .await;
        assert_eq!(verdicts.get(&key(&digest, &prod, "g1")).await, Some(1));
        for (d, p, g) in [
            (&other, &prod, "g1"),
            (&digest, &dev, "g1"),
            (&digest, &prod, "g2"),
        ] {
            assert_eq!(verdicts.get(&key(d, p, g)).await, None, "{d} {p} {g}");
        }
        let elsewhere = VerdictKeyRef {
            repository: "r.io/b",
            ..key(&digest, &prod, "g1")
        };
        assert_eq!(verdicts.get(&elsewhere).await, None);
    }

    #[test]
    fn the_verdict_reason_is_the_most_telling_and_the_first_on_a_tie() {
        let failed = |reason| AuthorityOutcome {
            authority: "a".into(),
            verifier: crate::verify::VerifierKind::Cosign,
            result: Outcome::Failed(Failure::new(reason, "x")),
        };
        let outcomes = [
            failed(Reason::NoSignature),
            failed(Reason::UntrustedSigner),
            failed(Reason::IdentityMismatch),
        ];
        assert_eq!(most_specific(&outcomes), Reason::UntrustedSigner);
        assert_eq!(most_specific(&outcomes[..1]), Reason::NoSignature);
        assert_eq!(most_specific(&[]), Reason::UntrustedSigner);
    }

    #[test]
    fn the_ignored_note_names_three_once_each_and_never_what_was_used() {
        let d = |n: u8| Digest::sha256_of(&[n]);
        let i = |n: u8, what: &str| discovery::Ignored {
            digest: d(n),
            what: what.into(),
        };
        assert_eq!(ignored_note(&[], &[]), "");
        // Set aside by one listing, used by the next: not ignored.
        assert_eq!(ignored_note(&[i(1, "a Sigstore bundle (x)")], &[d(1)]), "");
        assert_eq!(
            ignored_note(&[i(1, "an SBOM (s)"), i(1, "an SBOM (s)")], &[]),
            "; ignored 1 artifact: an SBOM (s)"
        );
        let many: Vec<_> = (1..=5)
            .map(|n| i(n, &format!("an artifact ({n})")))
            .collect();
        assert_eq!(
            ignored_note(&many, &[d(2)]),
            "; ignored 4 artifacts: an artifact (1), an artifact (3), an artifact (4) and 1 more"
        );
    }

    fn trusted(valid_until: Option<SystemTime>) -> AuthorityOutcome {
        AuthorityOutcome {
            authority: "a".into(),
            verifier: VerifierKind::Notation,
            result: Outcome::Trusted(Evidence {
                summary: String::new(),
                logged: Vec::new(),
                valid_until,
                expires: None,
            }),
        }
    }

    /// A registry with nothing in it.
    struct Empty;

    #[async_trait::async_trait]
    impl Registry for Empty {
        async fn resolve(&self, _: &ImageRef) -> Result<Resolved, RegistryError> {
            Err(RegistryError::new(Reason::NotFound, "none"))
        }
        async fn manifest(
            &self,
            _: &ImageRef,
            _: &str,
        ) -> Result<Option<registry::Manifest>, RegistryError> {
            Ok(None)
        }
        async fn blob(&self, _: &ImageRef, _: &Descriptor) -> Result<bytes::Bytes, RegistryError> {
            Err(RegistryError::new(Reason::NotFound, "none"))
        }
        async fn referrers(
            &self,
            _: &ImageRef,
            _: &Digest,
        ) -> Result<Vec<Descriptor>, RegistryError> {
            Ok(Vec::new())
        }
        fn limits(&self) -> registry::Limits {
            registry::Limits::default()
        }
    }

    /// A registry whose tag moves at every resolution (digest `sha256_of([n])` for the n-th);
    /// every resolution after the first waits for a permit of `gate`, and fails if `fail_later`.
    struct Moving {
        resolves: std::sync::atomic::AtomicUsize,
        gate: Semaphore,
        fail_later: bool,
    }

    impl Moving {
        fn new(fail_later: bool) -> Arc<Moving> {
            Arc::new(Moving {
                resolves: Default::default(),
                gate: Semaphore::new(0),
                fail_later,
            })
        }

        fn resolves(&self) -> usize {
            self.resolves.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Registry for Moving {
        async fn resolve(&self, _: &ImageRef) -> Result<Resolved, RegistryError> {
            let n = self.resolves.fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                self.gate.acquire().await.expect("gate open").forget();
                if self.fail_later {
                    return Err(RegistryError::new(Reason::RegistryUnreachable, "down"));
                }
            }
            Ok(Resolved {
                digest: Digest::sha256_of(&[n as u8]),
                media_type: OCI_MANIFEST.into(),
                size: 1,
            })
        }
        async fn manifest(
            &self,
            i: &ImageRef,
            r: &str,
        ) -> Result<Option<registry::Manifest>, RegistryError> {
            Empty.manifest(i, r).await
        }
        async fn blob(&self, i: &ImageRef, d: &Descriptor) -> Result<bytes::Bytes, RegistryError> {
            Empty.blob(i, d).await
        }
        async fn referrers(
            &self,
            i: &ImageRef,
            d: &Digest,
        ) -> Result<Vec<Descriptor>, RegistryError> {
            Empty.referrers(i, d).await
        }
        fn limits(&self) -> registry::Limits {
            registry::Limits::default()
        }
    }

    /// An engine over `registry` whose digest cache keeps entries 2 s (renewed after 1.5).
    fn short_lived(registry: Arc<Moving>) -> (Engine, Arc<ReviewBudget>, ImageRef) {
        let caches = CacheConfig {
            digest_ttl: Duration::from_secs(2),
            ..CacheConfig::default()
        };
        let engine = Engine::new(
            registry.clone(),
            PolicySet::default(),
            caches,
            Arc::new(Metrics::new()),
        );
        let budget = Arc::new(ReviewBudget::new(registry, engine.held_bytes.clone()));
        (
            engine,
            budget,
            "registry.example.com/app:1".parse().expect("image"),
        )
    }

    /// A review deadline no test reaches.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn prepared(engine: &Engine, image: &ImageRef) -> Arc<prepared::Image> {
        engine.active().image(&image.to_string()).expect("valid")
    }

    async fn digest_of(engine: &Engine, budget: &Arc<ReviewBudget>, image: &ImageRef) -> Digest {
        // A bound on a hang, not a speed assertion: a hit must not wait for the gate.
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            engine.resolve(budget, &prepared(engine, image), far()),
        )
        .await
        .expect("a review waited on the registry");
        r.expect("resolved").digest.clone()
    }

    /// Into an entry's last quarter, with a margin either side for a busy machine.
    const INTO_LAST_QUARTER: Duration = Duration::from_millis(1_700);

    /// `probe` until `done` says yes (at most 2 s), and its last answer.
    async fn polled<T, F: std::future::Future<Output = T>>(
        mut probe: impl FnMut() -> F,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let mut last = probe().await;
        for _ in 0..400 {
            if done(&last) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            last = probe().await;
        }
        last
    }

    fn refreshes(engine: &Engine, result: &str) -> u64 {
        engine
            .metrics
            .digest_refreshes
            .with_label_values(&[result])
            .get()
    }

    /// A tag in steady use is resolved again in the background in the last quarter of its
    /// entry's lifetime: the reviews meanwhile get the cached digest without waiting, one
    /// refresh runs however many reviews come, and the moved tag's new digest replaces the
    /// entry without a review ever missing the cache.
    #[tokio::test]
    async fn a_hot_tag_is_renewed_before_it_expires_and_no_review_waits_for_it() {
        let registry = Moving::new(false);
        let (engine, budget, image) = short_lived(registry.clone());
        let first = Digest::sha256_of(&[0]);
        assert_eq!(digest_of(&engine, &budget, &image).await, first);
        assert_eq!(digest_of(&engine, &budget, &image).await, first);
        assert_eq!(registry.resolves(), 1, "a young entry is not renewed");
        tokio::time::sleep(INTO_LAST_QUARTER).await;
        // The refresh starts and waits at the gate; these reviews are answered meanwhile.
        for _ in 0..3 {
            assert_eq!(digest_of(&engine, &budget, &image).await, first);
        }
        let started = polled(|| async { registry.resolves() }, |n| *n >= 2).await;
        assert_eq!(started, 2, "one refresh for all the reviews");
        registry.gate.add_permits(1);
        let moved = Digest::sha256_of(&[1]);
        let seen = polled(|| digest_of(&engine, &budget, &image), |d| *d == moved).await;
        assert_eq!(seen, moved, "the refreshed resolution replaced the entry");
        assert_eq!(registry.resolves(), 2, "no review missed the cache");
        assert_eq!(
            (refreshes(&engine, "ok"), refreshes(&engine, "failed")),
            (1, 0)
        );
    }

    /// A refresh that fails changes nothing: the entry is served to the end of its lifetime,
    /// then a review resolves the tag itself (and sees the registry's failure).
    #[tokio::test]
    async fn a_failed_refresh_leaves_the_entry_to_expire_as_before() {
        let registry = Moving::new(true);
        let (engine, budget, image) = short_lived(registry.clone());
        let first = Digest::sha256_of(&[0]);
        assert_eq!(digest_of(&engine, &budget, &image).await, first);
        tokio::time::sleep(INTO_LAST_QUARTER).await;
        assert_eq!(digest_of(&engine, &budget, &image).await, first);
        registry.gate.add_permits(2);
        let failed = polled(|| async { refreshes(&engine, "failed") }, |n| *n == 1).await;
        assert_eq!(failed, 1);
        assert_eq!(
            digest_of(&engine, &budget, &image).await,
            first,
            "still cached"
        );
        assert_eq!(
            registry.resolves(),
            2,
            "a failed refresh is not retried per review"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let expired = tokio::time::timeout(
            Duration::from_secs(10),
            engine.resolve(&budget, &prepared(&engine, &image), far()),
        )
        .await
        .expect("the registry answers");
        let e = expired.expect_err("the expired entry is resolved again, and that fails");
        assert_eq!(e.reason(), Reason::RegistryUnreachable);
        assert_eq!(registry.resolves(), 3);
    }

    /// A registry holding one image without signatures: every signature lookup (manifest or
    /// referrers) is counted, with what it [`Saw`]; while `hold` is set each waits for a permit
    /// of `gate` (`abandoned` counts those dropped while waiting), while `fail` is set each
    /// fails, and while `panic` is set each panics.
    struct Unsigned {
        lookups: std::sync::atomic::AtomicUsize,
        hold: AtomicBool,
        fail: AtomicBool,
        panic: AtomicBool,
        gate: Semaphore,
        abandoned: std::sync::atomic::AtomicUsize,
        saw: std::sync::Mutex<Vec<Saw>>,
    }

    /// What a lookup saw of the task that made it.
    #[derive(Clone, Debug, PartialEq)]
    struct Saw {
        thread: Option<String>,
        /// The note of the workload credentials in scope.
        credentials: Option<String>,
        deadline: bool,
    }

    impl Saw {
        /// A lookup on a verification thread, under a deadline, with credentials noting `note`.
        fn verifying_for(note: Option<String>) -> Saw {
            Saw {
                thread: Some("signet-verify".into()),
                credentials: note,
                deadline: true,
            }
        }
    }

    /// Counts a lookup dropped while it waits at the gate.
    struct Waiting<'a> {
        abandoned: &'a std::sync::atomic::AtomicUsize,
        through: bool,
    }

    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            if !self.through {
                self.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    impl Unsigned {
        fn new() -> Arc<Unsigned> {
            Arc::new(Unsigned {
                lookups: Default::default(),
                hold: AtomicBool::new(false),
                fail: AtomicBool::new(false),
                panic: AtomicBool::new(false),
                gate: Semaphore::new(0),
                abandoned: Default::default(),
                saw: Default::default(),
            })
        }

        fn lookups(&self) -> usize {
            self.lookups.load(Ordering::SeqCst)
        }

        fn saw(&self) -> Vec<Saw> {
            self.saw.lock().expect("lock").clone()
        }

        async fn lookup(&self) -> Result<(), RegistryError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.saw.lock().expect("lock").push(Saw {
                thread: std::thread::current().name().map(str::to_owned),
                credentials: registry::credential_note(),
                deadline: registry::remaining().is_some(),
            });
            if self.hold.load(Ordering::SeqCst) {
                let mut waiting = Waiting {
                    abandoned: &self.abandoned,
                    through: false,
                };
                self.gate.acquire().await.expect("gate open").forget();
                waiting.through = true;
            }
            assert!(
                !self.panic.load(Ordering::SeqCst),
                "the test registry panics"
            );
            if self.fail.load(Ordering::SeqCst) {
                return Err(RegistryError::new(Reason::RegistryUnreachable, "down"));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl Registry for Unsigned {
        async fn resolve(&self, _: &ImageRef) -> Result<Resolved, RegistryError> {
            Ok(Resolved {
                digest: Digest::sha256_of(b"app"),
                media_type: OCI_MANIFEST.into(),
                size: 1,
            })
        }
        async fn manifest(
            &self,
            i: &ImageRef,
            r: &str,
        ) -> Result<Option<registry::Manifest>, RegistryError> {
            self.lookup().await?;
            Empty.manifest(i, r).await
        }
        async fn blob(&self, i: &ImageRef, d: &Descriptor) -> Result<bytes::Bytes, RegistryError> {
            Empty.blob(i, d).await
        }
        async fn referrers(
            &self,
            i: &ImageRef,
            d: &Digest,
        ) -> Result<Vec<Descriptor>, RegistryError> {
            self.lookup().await?;
            Empty.referrers(i, d).await
        }
        fn limits(&self) -> registry::Limits {
            registry::Limits::default()
        }
    }

    /// What a review asks the verdict cache for one image under one Cosign key policy.
    struct Ask {
        engine: Engine,
        budget: Arc<ReviewBudget>,
        image: Arc<prepared::Image>,
        resolved: Resolved,
        policy: Arc<Policy>,
    }

    impl Ask {
        /// An engine over `registry` whose untrusted verdicts live 2 s (renewed after 1.5).
        fn new(registry: Arc<Unsigned>) -> Ask {
            Ask::on(registry, None)
        }

        /// The same, verifying on `runtime`.
        fn on(registry: Arc<Unsigned>, runtime: Option<tokio::runtime::Handle>) -> Ask {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .expect("key")
                .public_key_pem();
            let yaml = signet_testkit::policy::cosign_policy(
                "prod",
                "registry.example.com/**",
                "enforce",
                "deny",
                &key,
            );
            let set = crate::policy::load_str(std::path::Path::new("p.yaml"), &yaml)
                .unwrap_or_else(|e| panic!("{e:?}"));
            let policy = set.policies[0].clone();
            let caches = CacheConfig {
                untrusted_ttl: Duration::from_secs(2),
                ..CacheConfig::default()
            };
            let mut engine = Engine::new(registry.clone(), set, caches, Arc::new(Metrics::new()));
            if let Some(runtime) = runtime {
                engine = engine.with_verification_runtime(runtime);
            }
            let budget = Arc::new(ReviewBudget::new(registry, engine.held_bytes.clone()));
            let image = engine
                .active()
                .image("registry.example.com/app:1")
                .expect("image");
            Ask {
                engine,
                budget,
                image,
                resolved: Resolved {
                    digest: Digest::sha256_of(b"app"),
                    media_type: OCI_MANIFEST.into(),
                    size: 1,
                },
                policy,
            }
        }

        async fn verdict(&self) -> Arc<PolicyVerdict> {
            // A bound on a hang, not a speed assertion: a hit must not wait for the gate.
            tokio::time::timeout(
                Duration::from_secs(10),
                self.engine.verdict(
                    &self.budget,
                    &self.image,
                    &self.resolved,
                    &self.policy,
                    far(),
                ),
            )
            .await
            .expect("a review waited on the registry")
        }

        fn renewals(&self, result: &str) -> u64 {
            self.engine
                .metrics
                .verdict_renewals
                .with_label_values(&[result])
                .get()
        }
    }

    /// An image in steady use is verified again in the background in the last quarter of its
    /// verdict's lifetime: reviews meanwhile get the cached verdict without waiting, one
    /// renewal runs however many reviews come, and the renewed verdict outlives the first
    /// one's expiry without a review ever verifying.
    #[tokio::test]
    async fn a_hot_verdict_is_renewed_before_it_expires_and_no_review_waits_for_it() {
        let registry = Unsigned::new();
        let ask = Ask::new(registry.clone());
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        let per_check = registry.lookups();
        assert!(per_check > 0, "verifying looked for signatures");
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        assert_eq!(
            registry.lookups(),
            per_check,
            "a young verdict is not renewed"
        );
        tokio::time::sleep(INTO_LAST_QUARTER).await;
        registry.hold.store(true, Ordering::SeqCst);
        // The renewal starts and waits at the gate; these reviews are answered meanwhile.
        for _ in 0..3 {
            assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        }
        let started = polled(|| async { registry.lookups() }, |n| *n > per_check).await;
        assert_eq!(started, per_check + 1, "one renewal for all the reviews");
        registry.gate.add_permits(1_000);
        let ok = polled(|| async { ask.renewals("ok") }, |n| *n == 1).await;
        assert_eq!((ok, ask.renewals("failed")), (1, 0));
        assert_eq!(registry.lookups(), 2 * per_check);
        // Past the first verdict's expiry (2 s), the renewed one is served.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        assert_eq!(
            registry.lookups(),
            2 * per_check,
            "no review verified again"
        );
    }

    /// A renewal that fails changes nothing: the verdict is served to the end of its lifetime,
    /// then a review verifies itself (and sees the registry's failure).
    #[tokio::test]
    async fn a_failed_renewal_leaves_the_verdict_to_expire_as_before() {
        let registry = Unsigned::new();
        let ask = Ask::new(registry.clone());
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        assert!(registry.lookups() > 0, "verifying looked for signatures");
        tokio::time::sleep(INTO_LAST_QUARTER).await;
        registry.fail.store(true, Ordering::SeqCst);
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
        let failed = polled(|| async { ask.renewals("failed") }, |n| *n == 1).await;
        assert_eq!((ask.renewals("ok"), failed), (0, 1));
        let after_renewal = registry.lookups();
        assert_eq!(
            ask.verdict().await.reason(),
            Reason::NoSignature,
            "still cached"
        );
        assert_eq!(
            registry.lookups(),
            after_renewal,
            "a failed renewal is not retried per review"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let expired = ask.verdict().await;
        assert!(
            matches!(*expired, PolicyVerdict::Undecided { .. }),
            "the expired verdict is verified again, and that fails: {expired:?}"
        );
        assert_eq!(expired.reason(), Reason::RegistryUnreachable);
        assert!(registry.lookups() > after_renewal);
    }

    /// Workload credentials whose note (what their secrets could not give) names `secret`.
    fn credentials_noting(secret: &str) -> Arc<registry::WorkloadCredentials> {
        let mut credentials = registry::WorkloadCredentials::default();
        credentials.add_problem(format!("pull secret \"{secret}\" was not found"));
        Arc::new(credentials)
    }

    /// With a verification runtime, a miss's registry exchanges run on its threads, under the
    /// deadline and with the workload credentials of the review that asked.
    #[tokio::test]
    async fn misses_are_verified_on_the_verification_runtime_in_the_reviews_scope() {
        let verification = crate::runtime::verification().expect("runtime");
        let registry = Unsigned::new();
        let ask = Ask::on(registry.clone(), verification.handle());
        let credentials = credentials_noting("regcred");
        let note = credentials.note();
        // The deadline is the one the review passes: the engine puts it in the miss's scope.
        let verdict = registry::with_credentials(credentials, ask.verdict()).await;
        assert_eq!(verdict.reason(), Reason::NoSignature);
        let saw = registry.saw();
        assert!(!saw.is_empty(), "verifying looked for signatures");
        let expected = Saw::verifying_for(note);
        assert!(saw.iter().all(|s| *s == expected), "{saw:?}");
    }

    /// A review that stops waiting (its deadline, a closed connection) stops its verification
    /// on the verification runtime: nothing goes on running for nobody.
    #[tokio::test]
    async fn a_verification_nobody_waits_for_is_stopped() {
        let verification = crate::runtime::verification().expect("runtime");
        let registry = Unsigned::new();
        registry.hold.store(true, Ordering::SeqCst);
        let ask = Ask::on(registry.clone(), verification.handle());
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            ask.engine
                .verdict(&ask.budget, &ask.image, &ask.resolved, &ask.policy, far()),
        )
        .await;
        assert!(waited.is_err(), "the lookup is held at the gate");
        let abandoned = polled(
            || async { registry.abandoned.load(Ordering::SeqCst) },
            |n| *n == 1,
        )
        .await;
        assert_eq!(abandoned, 1, "the held lookup was not dropped");
    }

    /// A verification that panics on the verification runtime is an undecided verdict for the
    /// review (its policy's `onError` decides), not a panic in the task answering it; and it is
    /// not cached: the next review verifies again.
    #[tokio::test]
    async fn a_verification_that_panics_is_undecided_and_not_cached() {
        let verification = crate::runtime::verification().expect("runtime");
        let registry = Unsigned::new();
        registry.panic.store(true, Ordering::SeqCst);
        let ask = Ask::on(registry.clone(), verification.handle());
        let verdict = ask.verdict().await;
        assert!(
            matches!(*verdict, PolicyVerdict::Undecided { .. }),
            "{verdict:?}"
        );
        assert_eq!(verdict.reason(), Reason::Internal);
        registry.panic.store(false, Ordering::SeqCst);
        assert_eq!(ask.verdict().await.reason(), Reason::NoSignature);
    }

    /// A renewal runs with the registry credentials of the review whose hit started it, as
    /// that review's own verification would have.
    #[tokio::test]
    async fn a_renewal_runs_with_the_credentials_of_the_review_that_started_it() {
        let verification = crate::runtime::verification().expect("runtime");
        let registry = Unsigned::new();
        let ask = Ask::on(registry.clone(), verification.handle());
        let credentials = credentials_noting("regcred");
        let note = credentials.note();
        let first = registry::with_credentials(credentials.clone(), ask.verdict()).await;
        assert_eq!(first.reason(), Reason::NoSignature);
        let per_check = registry.lookups();
        tokio::time::sleep(INTO_LAST_QUARTER).await;
        registry::with_credentials(credentials, ask.verdict()).await;
        let ok = polled(|| async { ask.renewals("ok") }, |n| *n == 1).await;
        assert_eq!(ok, 1, "the verdict was renewed");
        let renewal = &registry.saw()[per_check..];
        assert_eq!(renewal.len(), per_check, "{renewal:?}");
        let expected = Saw::verifying_for(note);
        assert!(renewal.iter().all(|s| *s == expected), "{renewal:?}");
    }

    /// Signature checks run on the blocking pool, not on the thread that serves reviews: on a
    /// single-threaded runtime (the async worker is the test's thread), they run elsewhere.
    #[tokio::test]
    async fn signature_checks_run_off_the_async_workers() {
        let engine = Engine::new(
            Arc::new(Empty),
            PolicySet::default(),
            CacheConfig::default(),
            Arc::new(Metrics::new()),
        );
        let here = std::thread::current().id();
        let there = engine
            .checks
            .off_workers(|| std::thread::current().id())
            .await
            .expect("the work finishes");
        assert_ne!(there, here, "the check ran on the async worker");
    }

    #[test]
    fn trusted_verdicts_are_cached_no_longer_than_their_evidence_holds() {
        let now = SystemTime::now();
        let max = Duration::from_secs(300);
        let minute = Duration::from_secs(60);
        assert_eq!(trusted_for(&[trusted(None)], now, max), max);
        assert_eq!(
            trusted_for(&[trusted(Some(now + minute))], now, max),
            minute
        );
        assert_eq!(trusted_for(&[trusted(Some(now + 10 * max))], now, max), max);
        assert_eq!(
            trusted_for(&[trusted(Some(now - minute))], now, max),
            Duration::ZERO
        );
    }
}
