//! Signature verification: pure functions of the fetched bytes, the policy and a clock.
//!
//! [`format`](mod@format) is the seam the engine and discovery use, and the only module that names the
//! formats: `cosign` checks Cosign signatures (keys, keyless, bundles), `notation` checks Notary
//! Project signatures, each behind [`format::Format`], each owning its artifact types and the
//! media types it accepts. `pkix` is what both need of X.509 and RFC 3161. Every check reports,
//! per authority, an [`Outcome`]: trusted with [`Evidence`], or a [`Failure`] with a closed
//! [`Reason`]. This module must not import `registry`, `discovery`, `decision` or hyper:
//! everything it needs arrives as bytes.

pub mod cosign;
pub mod format;
pub mod notation;
pub mod pkix;

use std::time::SystemTime;

use crate::image::Digest;
use crate::reason::Reason;

/// The signed image as the registry described it: what a signature must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// The verifier an authority uses; a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    Cosign,
    Notation,
}

impl VerifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifierKind::Cosign => "cosign",
            VerifierKind::Notation => "notation",
        }
    }
}

/// What made an image trusted under one authority. Field names in camelCase, like the policy
/// YAML (`signet verify -o json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Which key, certificate or identity verified, in plain words.
    pub summary: String,
    /// Checks that failed but that the verification level only logs (Notation audit/permissive).
    pub logged: Vec<String>,
    /// When the evidence stops holding, if sooner than the cache's own limit: the signature's
    /// expiry, the chain's notAfter when no timestamp pins the signing time, the nextUpdate of
    /// a revocation answer relied on. A cached verdict never outlives it.
    #[serde(serialize_with = "rfc3339_opt")]
    pub valid_until: Option<std::time::SystemTime>,
    /// The first thing the trust rests on that lapses unless someone rotates or re-signs: the
    /// signature's own expiry, or a certificate of the chain when no timestamp pins the signing
    /// time. Renewable answers (OCSP, CRLs) are not in it: they renew themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
}

/// A point in time after which an image's trust stops holding, and what lapses then.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expiry {
    #[serde(serialize_with = "rfc3339")]
    pub at: std::time::SystemTime,
    /// In plain words, e.g. `signing certificate CN=release`.
    pub what: String,
}

impl Expiry {
    /// The earlier of two.
    pub fn earliest(a: Option<Expiry>, b: Option<Expiry>) -> Option<Expiry> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

fn rfc3339_opt<S: serde::Serializer>(
    t: &Option<std::time::SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(*t)),
        None => s.serialize_none(),
    }
}

fn rfc3339<S: serde::Serializer>(t: &std::time::SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

/// `2026-12-09T10:00:00Z`, for messages and JSON.
pub fn format_time(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "an unrepresentable time".into())
}

/// Why an image is not trusted under one authority.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub reason: Reason,
    /// Plain words: what was expected and what was found.
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// The most telling of the failures met ([`Reason::outranks`], the one ranking; on a tie the
/// first kept).
#[derive(Debug, Default)]
pub struct MostTelling(Option<Failure>);

impl MostTelling {
    pub fn keep(&mut self, f: Failure) {
        if self.0.as_ref().is_none_or(|b| f.reason.outranks(b.reason)) {
            self.0 = Some(f);
        }
    }

    pub fn into_inner(self) -> Option<Failure> {
        self.0
    }
}

/// The result of one authority's check of one image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityOutcome {
    pub authority: String,
    pub verifier: VerifierKind,
    #[serde(flatten)]
    pub result: Outcome,
}

/// Trusted with evidence, or not trusted with a reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    Trusted(Evidence),
    Failed(Failure),
}

/// What every verifier gets besides the artifacts: the time to check validity at.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: SystemTime,
}
