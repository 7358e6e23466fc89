//! Notary Project (Notation) signature verification, pure: envelope bytes, a resolved
//! [`NotationAuthority`] and a clock in; an [`Outcome`] out. No I/O, no panics on any input.
//!
//! Notation semantics: the signatures of an artifact are tried in turn (at most
//! [`MAX_SIGNATURES`]) and the artifact is trusted when one passes. Each signature goes through
//! the checks of the trust-policy spec, in notation-go's order: integrity (envelope, certificate
//! requirements, signature, payload descriptor), authenticity (trust store, trusted identity),
//! expiry, authentic timestamp, revocation. The level and its overrides decide for each check
//! whether a failure is fatal for the signature (*enforce*), only recorded (*log*, reported in
//! [`Evidence::logged`]) or not run (*skip*). Integrity and the payload descriptor are always
//! fatal.
//!
//! Revocation needs I/O, which stays outside. Through the format seam ([`Notation`]) a
//! signature is checked once: the check runs every step but revocation and returns, with what
//! it proved, the OCSP and CRL locations (and OCSP request bodies) of the signing and TSA
//! chains it trusts; the caller fetches the answers (a [`RevocationSource`],
//! [`fetch_revocation`]) and the verdict only judges them. [`verify`] judges a list of
//! signatures with no revocation answers (level skip, no signature at all).
//!
//! Decisions where signet is stricter than, or differs from, notation-go (each tested):
//! - Certificate requirements (leaf and CA key usage, EKU, basicConstraints, key sizes, chain
//!   order, self-signed root) are part of integrity, so they fail a signature at every level,
//!   as in notation-go.
//! - A leaf EKU, when present, must contain codeSigning (the spec says "MAY"); anyEKU,
//!   serverAuth, clientAuth, emailProtection, timeStamping and OCSPSigning are rejected.
//! - Chain signatures are checked with webpki, which also rejects unknown critical extensions
//!   (the spec says to ignore extensions other than basicConstraints, keyUsage and EKU).
//! - No signature fails at every level but skip (notation-go does the same; the spec reads as
//!   if audit would pass).
//! - A trust policy with level skip on the global scope `*` is a load error (spec), although
//!   notation-go accepts it.
//! - Revocation data is fetched only for chains that passed integrity and authenticity, even
//!   under audit (notation-go goes on to the revocation step after a logged authenticity
//!   failure, fetching URLs an untrusted signer chose).
//! - A revoked or undeterminable TSA chain fails authenticTimestamp, as in notation-go; it is
//!   checked unless revocation is skipped.

mod chain;
mod crl;
mod envelope;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod ocsp;
mod revocation_check;
mod revocation_plan;
mod revocation_urls;
mod timestamp;

use std::time::SystemTime;

use aws_lc_rs::signature::UnparsedPublicKey;

use super::format::{Artifact, Fetched, Format, Kind, Layers, Place, Plan, ReferrerSource, Source};
use super::{Context, Evidence, Expiry, Failure, Outcome, Subject};
use crate::policy::notation::{
    Action, Level, NotationAuthority, StoreType, TrustedIdentities, VerifyTimestamp,
};
use crate::reason::Reason;
use crate::verify::pkix::algorithms::{self, Hash, KeyKind};

pub use envelope::{MAX_CHAIN, MAX_ENVELOPE, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};
pub use revocation_plan::{
    Fetch, FetchError, MAX_CRLS, RevocationData, RevocationLocation, RevocationSource,
    fetch_revocation, fresh_until,
};

/// Signatures tried per artifact; the rest are ignored (and the failure says so).
pub const MAX_SIGNATURES: usize = 10;

/// The Notary Project signature artifact type (and config media type of notation 1.0
/// manifests).
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";

/// Where discovery finds Notation signatures: referrers of [`ARTIFACT_TYPE`] with exactly one
/// layer, the envelope, in the first round.
pub const REFERRER: Source = Source {
    stage: 0,
    place: Place::Referrers(ReferrerSource {
        artifact_types: &[ARTIFACT_TYPE],
        name: "a Notation signature",
        predicate: None,
        layers: Layers::One {
            what: "Notation signature",
        },
    }),
};

/// A Notary Project signature found through the referrers of the subject.
#[derive(Clone, Debug)]
pub struct NotationSignature {
    /// The digest of the signature manifest (for messages).
    pub manifest_digest: crate::image::Digest,
    /// `application/jose+json` or `application/cose`.
    pub media_type: String,
    /// The envelope bytes, digest-checked by discovery.
    pub envelope: bytes::Bytes,
}

/// The Notation format. The check runs every step of the trust policy but revocation (so a
/// signature is verified once), and plans the revocation answers of the chains it trusts; the
/// verdict judges them.
#[derive(Debug)]
pub struct Notation;

/// What [`Notation`]'s check leaves for the verdict.
#[derive(Debug)]
pub enum NotationProved {
    /// Decided without fetched data (level `skip`).
    Done(Outcome),
    /// Everything but revocation checked.
    Pending(Box<Proved>),
}

impl Format for Notation {
    type Authority = NotationAuthority;
    type Signature = NotationSignature;
    type Proved = NotationProved;

    const KINDS: &'static [Kind] = &[Kind::Notation];

    fn no_signature(authority: &NotationAuthority, subject: &Subject, ctx: &Context) -> Outcome {
        verify(authority, subject, &[], ctx)
    }

    fn read(artifact: Artifact) -> NotationSignature {
        NotationSignature {
            manifest_digest: artifact.manifest.unwrap_or(artifact.layer_digest),
            media_type: artifact.media_type,
            envelope: artifact.bytes,
        }
    }

    fn check(
        authority: &NotationAuthority,
        subject: &Subject,
        signature: &NotationSignature,
        _: usize,
        ctx: &Context,
    ) -> (NotationProved, Plan) {
        if authority.level == Level::Skip {
            let outcome = verify(authority, subject, std::slice::from_ref(signature), ctx);
            return (NotationProved::Done(outcome), Plan::default());
        }
        let mut proved = prove(authority, subject, signature, ctx.now);
        let plan = Plan {
            revocation: std::mem::take(&mut proved.locations),
        };
        (NotationProved::Pending(Box::new(proved)), plan)
    }

    fn verdict(
        authority: &NotationAuthority,
        proved: NotationProved,
        fetched: &Fetched,
        ctx: &Context,
    ) -> Outcome {
        match proved {
            NotationProved::Done(outcome) => outcome,
            NotationProved::Pending(p) => {
                let Proved { name, state, .. } = *p;
                let result =
                    state.and_then(|s| complete(authority, s, &fetched.revocation, ctx.now));
                judged(authority, 1, std::iter::once((name, result)))
            }
        }
    }
}

/// Why one check of one signature failed. Each variant maps to one [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The envelope cannot be parsed or breaks the envelope rules.
    #[error("{0}")]
    Malformed(String),
    /// The cryptographic signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    /// The payload names another artifact.
    #[error("{0}")]
    PayloadMismatch(String),
    /// The certificate chain breaks the certificate requirements.
    #[error("{0}")]
    Certificate(String),
    /// No certificate of the chain is in a trust store of the right type.
    #[error("{0}")]
    Untrusted(String),
    /// The signer's subject is not a trusted identity.
    #[error("{0}")]
    Identity(String),
    /// The signature or a certificate is past its validity.
    #[error("{0}")]
    Expired(String),
    /// The timestamp is missing, invalid or untrusted.
    #[error("{0}")]
    Timestamp(String),
    /// A certificate is revoked.
    #[error("{0}")]
    Revocation(String),
    /// A certificate's revocation status cannot be determined.
    #[error("{0}")]
    RevocationUnknown(String),
}

impl CheckError {
    /// The metric and message reason.
    pub fn reason(&self) -> Reason {
        match self {
            CheckError::Malformed(_) => Reason::Malformed,
            CheckError::BadSignature(_) => Reason::SignatureInvalid,
            CheckError::PayloadMismatch(_) => Reason::PayloadMismatch,
            CheckError::Certificate(_) => Reason::CertificateInvalid,
            CheckError::Untrusted(_) => Reason::UntrustedSigner,
            CheckError::Identity(_) => Reason::IdentityMismatch,
            CheckError::Expired(_) => Reason::Expired,
            CheckError::Timestamp(_) => Reason::TimestampInvalid,
            CheckError::Revocation(_) => Reason::Revoked,
            CheckError::RevocationUnknown(_) => Reason::RevocationUnknown,
        }
    }
}

/// The checks of the trust-policy spec, named as in `override`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Integrity,
    Authenticity,
    AuthenticTimestamp,
    Expiry,
    Revocation,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Integrity => "integrity",
            Check::Authenticity => "authenticity",
            Check::AuthenticTimestamp => "authenticTimestamp",
            Check::Expiry => "expiry",
            Check::Revocation => "revocation",
        }
    }
}

/// A fatal failure of one signature.
#[derive(Debug, Clone)]
struct SignatureFailure {
    check: Check,
    error: CheckError,
}

/// What passed: for the evidence summary.
struct Passed {
    signer: String,
    format: &'static str,
    scheme: &'static str,
    anchor: Option<String>,
    logged: Vec<String>,
    valid_until: Option<SystemTime>,
    expires: Option<Expiry>,
}

/// Verifies an artifact's Notation signatures against one authority, with no revocation
/// answers: chains that name OCSP or CRL locations get "revocation status unknown" (fatal
/// under strict unless `override: {revocation: log|skip}`). Signatures whose revocation is
/// checked go through the format seam ([`Notation`]) instead, which plans the fetch.
pub fn verify(
    authority: &NotationAuthority,
    subject: &Subject,
    signatures: &[NotationSignature],
    ctx: &Context,
) -> Outcome {
    if authority.level == Level::Skip {
        return Outcome::Trusted(Evidence {
            summary: "Notation verification level is skip: signatures are not checked".into(),
            logged: Vec::new(),
            valid_until: None,
            expires: None,
        });
    }
    if signatures.is_empty() {
        return Outcome::Failed(Failure::new(
            Reason::NoSignature,
            "no Notation signature refers to this artifact",
        ));
    }
    let none = RevocationData::default();
    // Lazily: the first signature that passes ends the walk.
    let results = signatures.iter().take(MAX_SIGNATURES).map(|sig| {
        let Proved { name, state, .. } = prove(authority, subject, sig, ctx.now);
        (
            name,
            state.and_then(|s| complete(authority, s, &none, ctx.now)),
        )
    });
    judged(authority, signatures.len(), results)
}

fn push_new(out: &mut Vec<RevocationLocation>, found: Vec<RevocationLocation>) {
    for l in found {
        if !out.contains(&l) {
            out.push(l);
        }
    }
}

/// The outcome of an artifact's signatures (`total` of them, the first [`MAX_SIGNATURES`]
/// judged in `results`): trusted by the first that passed, else the failures in a few words.
fn judged(
    authority: &NotationAuthority,
    total: usize,
    results: impl Iterator<Item = (String, Result<Passed, SignatureFailure>)>,
) -> Outcome {
    let mut failures: Vec<(String, SignatureFailure)> = Vec::new();
    for (name, result) in results {
        match result {
            Ok(p) => {
                let anchor = p
                    .anchor
                    .map(|a| format!(", chained to trusted certificate {a}"))
                    .unwrap_or_default();
                return Outcome::Trusted(Evidence {
                    summary: format!(
                        "Notation {} {name} ({}) by {}{anchor}, level {}",
                        p.format,
                        p.scheme,
                        p.signer,
                        authority.level.as_str()
                    ),
                    logged: p
                        .logged
                        .into_iter()
                        .map(|l| format!("{name}: {l}"))
                        .collect(),
                    valid_until: p.valid_until,
                    expires: p.expires,
                });
            }
            Err(f) => failures.push((name, f)),
        }
    }
    // Three failures say enough and keep deny messages and warnings short.
    let mut detail = failures
        .iter()
        .take(3)
        .map(|(name, f)| format!("{name}: {}: {}", f.check.as_str(), f.error))
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > 3 {
        detail.push_str(&format!(
            "; and {} more signatures failed",
            failures.len() - 3
        ));
    }
    if total > MAX_SIGNATURES {
        detail.push_str(&format!(
            " (only the first {MAX_SIGNATURES} of {total} signatures were tried)"
        ));
    }
    // The most telling reason; on a tie the first signature's.
    let reason = Reason::most_telling(failures.iter().map(|(_, f)| f.error.reason()), |r| *r)
        .unwrap_or(Reason::SignatureInvalid);
    Outcome::Failed(Failure::new(reason, detail))
}

/// A signature whose integrity checks passed.
struct Intact {
    env: envelope::Envelope,
    chain: Vec<chain::ChainCert>,
}

/// Integrity: the envelope, the certificate requirements, the signature and the payload
/// descriptor. Always enforced.
fn integrity(subject: &Subject, sig: &NotationSignature) -> Result<Intact, SignatureFailure> {
    let fatal = |error: CheckError| SignatureFailure {
        check: Check::Integrity,
        error,
    };
    let env = envelope::parse(&sig.media_type, &sig.envelope).map_err(fatal)?;
    let chain = chain::parse(&env.chain).map_err(fatal)?;
    let key = chain::check_integrity(&chain).map_err(fatal)?;
    let expected = key.algorithm().map_err(fatal)?;
    if expected != env.algorithm {
        return Err(fatal(CheckError::BadSignature(format!(
            "the envelope says {} but the signing key requires {}",
            env.algorithm.as_str(),
            expected.as_str()
        ))));
    }
    verify_raw(
        env.algorithm,
        key.bytes(),
        &env.signed_bytes,
        &env.signature,
    )
    .map_err(fatal)?;
    if let Some(plugin) = &env.verification_plugin {
        return Err(fatal(CheckError::Malformed(format!(
            "the signature requires verification plugin {plugin:?}, which signet cannot run"
        ))));
    }
    check_payload(&env.payload, subject).map_err(fatal)?;
    Ok(Intact { env, chain })
}

/// Authenticity: a certificate of the chain is in a store of the scheme's type (returned),
/// and the leaf subject is a trusted identity.
fn authenticity<'a>(
    authority: &'a NotationAuthority,
    intact: &Intact,
) -> (
    Option<&'a crate::policy::notation::TrustedCertificate>,
    Result<(), CheckError>,
) {
    let Intact { env, chain } = intact;
    let store_kind = match env.signing_scheme {
        envelope::SigningScheme::X509 => StoreType::Ca,
        envelope::SigningScheme::SigningAuthority => StoreType::SigningAuthority,
    };
    let anchor = authority
        .certificates(store_kind)
        .find(|t| chain::contains_der(chain, &t.der).is_some());
    let result = match anchor {
        None => Err(CheckError::Untrusted(format!(
            "the signature's certificate chain does not contain any trusted certificate of a {} \
             trust store (signing scheme {}, signer {})",
            store_kind.as_str(),
            env.signing_scheme.as_str(),
            chain
                .first()
                .map(|c| c.subject.as_str())
                .unwrap_or_default()
        ))),
        // "*" accepts any subject, even one signet cannot compare (e.g. two OUs).
        Some(_) if matches!(authority.identities, TrustedIdentities::Any) => Ok(()),
        Some(_) => match chain::leaf_subject(chain) {
            Ok(dn) if authority.identities.allows(&dn) => Ok(()),
            Ok(dn) => Err(CheckError::Identity(format!(
                "the signing certificate subject {dn} is not one of the trusted identities"
            ))),
            Err(e) => Err(e),
        },
    };
    (anchor, result)
}

/// One signature under one authority, checked as far as it goes without revocation answers:
/// what `complete` finishes, and the revocation locations worth fetching for it.
pub struct Proved {
    /// `signature sha256:…`, for messages.
    name: String,
    state: Result<Partial, SignatureFailure>,
    /// The CRL and OCSP locations of the signing chain and of the verified timestamp's TSA
    /// chain, when the signature passed integrity and authenticity and the authority checks
    /// revocation.
    locations: Vec<RevocationLocation>,
}

impl std::fmt::Debug for Proved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proved")
            .field("name", &self.name)
            .field("passed", &self.state.is_ok())
            .field("locations", &self.locations)
            .finish_non_exhaustive()
    }
}

/// A signature that passed every check up to revocation (or whose failures were only logged).
struct Partial {
    intact: Intact,
    anchor: Option<String>,
    logged: Vec<String>,
    valid_until: Option<SystemTime>,
    expires: Option<Expiry>,
    /// The authentic-timestamp check without the TSA chain's revocation status; `None` when
    /// the check is skipped.
    time: Option<Result<TrustedTime, CheckError>>,
}

/// Applies an action to a check result: enforce stops, log records, skip never ran.
fn apply(
    logged: &mut Vec<String>,
    check: Check,
    action: Action,
    result: Result<(), CheckError>,
) -> Result<(), SignatureFailure> {
    match (result, action) {
        (Ok(()), _) | (_, Action::Skip) => Ok(()),
        (Err(error), Action::Enforce) => Err(SignatureFailure { check, error }),
        (Err(error), Action::Log) => {
            logged.push(format!("{} (logged): {error}", check.as_str()));
            Ok(())
        }
    }
}

/// Integrity, authenticity, expiry and the authentic timestamp (but not the TSA chain's
/// revocation status) of one signature, and the revocation locations to fetch for it.
fn prove(
    authority: &NotationAuthority,
    subject: &Subject,
    sig: &NotationSignature,
    now: SystemTime,
) -> Proved {
    let name = format!("signature {}", short(sig.manifest_digest.as_str()));
    let intact = match integrity(subject, sig) {
        Ok(i) => i,
        Err(f) => {
            return Proved {
                name,
                state: Err(f),
                locations: Vec::new(),
            };
        }
    };
    let (anchor, authentic) = authenticity(authority, &intact);
    let timestamped = authority.actions.authentic_timestamp != Action::Skip;
    let mut time = None;
    let mut locations = Vec::new();
    // Only chains that passed authenticity are asked about: an untrusted signer chose the URLs
    // of its own chain.
    if authority.checks_revocation() && authentic.is_ok() {
        push_new(
            &mut locations,
            revocation_plan::chain_locations(&intact.chain),
        );
        if timestamped {
            let t = authentic_time(authority, &intact.env, &intact.chain, now);
            if let Ok(TrustedTime {
                tsa_chain: Some(tsa),
                ..
            }) = &t
            {
                push_new(&mut locations, revocation_plan::chain_locations(tsa));
            }
            time = Some(t);
        }
    }
    let state = partial(authority, intact, anchor, authentic, time, now);
    Proved {
        name,
        state,
        locations,
    }
}

/// The checks of [`prove`] after integrity, under the authority's actions.
fn partial(
    authority: &NotationAuthority,
    intact: Intact,
    anchor: Option<&crate::policy::notation::TrustedCertificate>,
    authentic: Result<(), CheckError>,
    time: Option<Result<TrustedTime, CheckError>>,
    now: SystemTime,
) -> Result<Partial, SignatureFailure> {
    let mut logged = Vec::new();
    apply(
        &mut logged,
        Check::Authenticity,
        authority.actions.authenticity,
        authentic,
    )?;
    let env = &intact.env;
    // How long a pass holds: until the signature expires, the chain expires (when no trusted
    // time pins it), or a revocation answer it relied on is due for renewal.
    let valid_until = env.expiry;
    // What lapses unless rotated or re-signed (revocation answers renew themselves).
    let expires = env.expiry.map(|at| Expiry {
        at,
        what: "the signature's expiry".into(),
    });

    // Expiry of the signature itself.
    let expiry = match env.expiry {
        Some(at) if now >= at => Err(CheckError::Expired(format!(
            "the digital signature has expired on {}",
            fmt_time(at)
        ))),
        _ => Ok(()),
    };
    apply(&mut logged, Check::Expiry, authority.actions.expiry, expiry)?;
    let time = match time {
        Some(t) => Some(t),
        None if authority.actions.authentic_timestamp != Action::Skip => {
            Some(authentic_time(authority, env, &intact.chain, now))
        }
        None => None,
    };
    Ok(Partial {
        anchor: anchor.map(|a| a.subject.clone()),
        intact,
        logged,
        valid_until,
        expires,
        time,
    })
}

/// Finishes a signature with the revocation answers fetched for it: the TSA chain's status
/// (part of the authentic-timestamp check, as notation-go does: a revoked TSA cannot vouch for
/// a time), then the signing chain's.
fn complete(
    authority: &NotationAuthority,
    partial: Partial,
    revocation_data: &RevocationData,
    now: SystemTime,
) -> Result<Passed, SignatureFailure> {
    let Partial {
        intact,
        anchor,
        mut logged,
        mut valid_until,
        mut expires,
        time,
    } = partial;
    let Intact { env, chain } = &intact;
    let mut holds_until = |t: Option<SystemTime>| {
        valid_until = valid_until.into_iter().chain(t).min();
    };

    let mut signed_at = None;
    if let Some(time) = time {
        let result = time.and_then(|t| {
            if let Some(tsa) = &t.tsa_chain
                && authority.actions.revocation != Action::Skip
            {
                let tsa_status = revocation_check::check(tsa, revocation_data, now, None);
                holds_until(tsa_status.map_err(|e| match e {
                    CheckError::Revocation(m) => {
                        CheckError::Revocation(format!("the timestamp's TSA chain: {m}"))
                    }
                    other => {
                        CheckError::RevocationUnknown(format!("the timestamp's TSA chain: {other}"))
                    }
                })?);
            }
            if t.at.is_none() {
                // Valid now, and only until the first certificate expires.
                holds_until(chain.iter().map(|c| c.not_after).min());
                let first = chain.iter().min_by_key(|c| c.not_after).map(|c| Expiry {
                    at: c.not_after,
                    what: format!("certificate {}", c.subject),
                });
                expires = Expiry::earliest(expires.take(), first);
            }
            signed_at = t.at;
            Ok(())
        });
        apply(
            &mut logged,
            Check::AuthenticTimestamp,
            authority.actions.authentic_timestamp,
            result,
        )?;
    }

    // Revocation of the signing chain.
    if authority.actions.revocation != Action::Skip {
        let result =
            revocation_check::check(chain, revocation_data, now, signed_at).map(holds_until);
        apply(
            &mut logged,
            Check::Revocation,
            authority.actions.revocation,
            result,
        )?;
    }

    Ok(Passed {
        signer: chain.first().map(|c| c.subject.clone()).unwrap_or_default(),
        format: env.format,
        scheme: env.signing_scheme.as_str(),
        anchor,
        logged,
        valid_until,
        expires,
    })
}

/// The signature over the signed bytes with the leaf key.
fn verify_raw(
    alg: envelope::Algorithm,
    key: &[u8],
    message: &[u8],
    sig: &[u8],
) -> Result<(), CheckError> {
    use envelope::Algorithm as A;
    let algorithm = match alg {
        A::Ps256 => Some(algorithms::rsa_pss(Hash::Sha256)),
        A::Ps384 => Some(algorithms::rsa_pss(Hash::Sha384)),
        A::Ps512 => Some(algorithms::rsa_pss(Hash::Sha512)),
        A::Es256 => algorithms::fixed(KeyKind::EcP256),
        A::Es384 => algorithms::fixed(KeyKind::EcP384),
        A::Es512 => algorithms::fixed(KeyKind::EcP521),
    };
    let verifies =
        algorithm.is_some_and(|a| UnparsedPublicKey::new(a, key).verify(message, sig).is_ok());
    if verifies {
        return Ok(());
    }
    Err(CheckError::BadSignature(format!(
        "the {} signature does not verify with the signing certificate's key",
        alg.as_str()
    )))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// The payload's `targetArtifact` must be the subject: digest, media type and size.
fn check_payload(payload: &[u8], subject: &Subject) -> Result<(), CheckError> {
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| CheckError::Malformed(format!("the signed payload is not valid: {e}")))?;
    let t = p.target_artifact;
    if t.digest != subject.digest.as_str() {
        return Err(CheckError::PayloadMismatch(format!(
            "the signature is for {}, not for this artifact {}",
            t.digest, subject.digest
        )));
    }
    if t.media_type != subject.media_type || t.size != subject.size {
        return Err(CheckError::PayloadMismatch(format!(
            "the signed descriptor ({}, {} bytes) differs from the artifact's ({}, {} bytes)",
            t.media_type, t.size, subject.media_type, subject.size
        )));
    }
    Ok(())
}

/// What the authentic-timestamp check established.
struct TrustedTime {
    /// The trusted signing time (the timestamp's upper limit, or the authentic signing time),
    /// if there is one: the invalidity-date exception of revocation compares against it.
    at: Option<SystemTime>,
    /// The verified TSA chain (TSA certificate first), when a timestamp was verified.
    tsa_chain: Option<Vec<chain::ChainCert>>,
}

/// The authentic-timestamp check, per signing scheme (trust-policy spec and notation-go),
/// without the TSA chain's revocation status.
fn authentic_time(
    authority: &NotationAuthority,
    env: &envelope::Envelope,
    chain: &[chain::ChainCert],
    now: SystemTime,
) -> Result<TrustedTime, CheckError> {
    match env.signing_scheme {
        envelope::SigningScheme::SigningAuthority => {
            // The signing authority vouches for this time, so the chain must cover it.
            let at = env.authentic_signing_time.ok_or_else(|| {
                CheckError::Timestamp("the authentic signing time is missing".into())
            })?;
            match chain::invalid_at(chain, at) {
                None => Ok(TrustedTime {
                    at: Some(at),
                    tsa_chain: None,
                }),
                Some((what, _)) => Err(CheckError::Timestamp(format!(
                    "at the authentic signing time {}, {what}",
                    fmt_time(at)
                ))),
            }
        }
        envelope::SigningScheme::X509 => {
            let expired_now = chain::invalid_at(chain, now);
            let use_tsa = authority.has_store(StoreType::Tsa)
                && (authority.verify_timestamp == VerifyTimestamp::Always
                    || expired_now.as_ref().is_some_and(|(_, expired)| *expired));
            if !use_tsa {
                // No timestamp to rely on: the chain must be valid now.
                return match expired_now {
                    None => Ok(TrustedTime {
                        at: None,
                        tsa_chain: None,
                    }),
                    Some((what, true)) => Err(CheckError::Expired(what)),
                    Some((what, false)) => Err(CheckError::Timestamp(what)),
                };
            }
            let token = env.timestamp.as_deref().ok_or_else(|| {
                CheckError::Timestamp(
                    "no timestamp countersignature was found in the signature envelope, and \
                     the policy has a tsa trust store"
                        .into(),
                )
            })?;
            let tsa_certs: Vec<&[u8]> = authority
                .certificates(StoreType::Tsa)
                .map(|c| c.der.as_slice())
                .collect();
            let stamp = timestamp::verify(token, &env.signature, &tsa_certs)?;
            for c in chain {
                if stamp.earliest < c.not_before || stamp.latest > c.not_after {
                    return Err(CheckError::Timestamp(format!(
                        "the timestamp ({} to {}) is outside the validity of certificate {} \
                         ({} to {})",
                        fmt_time(stamp.earliest),
                        fmt_time(stamp.latest),
                        c.subject,
                        fmt_time(c.not_before),
                        fmt_time(c.not_after)
                    )));
                }
            }
            let tsa_chain = chain::parse(&stamp.chain).map_err(|e| {
                CheckError::Timestamp(format!("the timestamp's TSA chain is unreadable: {e}"))
            })?;
            Ok(TrustedTime {
                at: Some(stamp.latest),
                tsa_chain: Some(tsa_chain),
            })
        }
    }
}

/// RFC 3339 UTC, for messages.
/// Never panics: `OffsetDateTime::from(SystemTime)` would for times past year 9999, which a
/// hostile COSE envelope can carry.
pub(crate) fn fmt_time(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} seconds after 1970"))
}

fn short(digest: &str) -> &str {
    let end = digest
        .char_indices()
        .nth(19)
        .map(|(i, _)| i)
        .unwrap_or(digest.len());
    &digest[..end]
}

#[cfg(test)]
mod tests;
