//! Image policies: the model, loading from YAML files, and scope matching.
//!
//! A [`PolicySet`] is immutable once loaded; reloading builds a new one. Every policy carries a
//! generation hash of everything that can change its verdicts (spec and referenced key files),
//! so cached verdicts of an edited policy are never reused. Must not import `registry`,
//! `verify` or `decision`: keys are parsed here into plain DER, verifiers build from that.

pub mod cosign;
pub mod crd;
mod glob;
pub mod keyvault;
pub mod kube;
mod load;
pub mod material;
pub mod notation;
pub mod source;

use std::fmt;
use std::sync::Arc;

pub use glob::{GlobError, ImageGlob};
pub use load::{LoadError, load_dir, load_dir_with, load_str};

use crate::image::ImageRef;

/// What a failing image does to the admission.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    #[default]
    Enforce,
    /// Allow, with a warning kubectl prints.
    Warn,
    /// Allow, with an audit annotation and a log line.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// What an image gets when verification cannot complete (registry down, deadline).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Treat it as untrusted: the policy's mode decides.
    #[default]
    Deny,
    /// Admit it, with a warning that it could not be verified.
    Allow,
}

/// What an image that no policy matches gets.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NoMatch {
    #[default]
    Deny,
    Warn,
    Allow,
}

impl std::str::FromStr for NoMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(NoMatch::Deny),
            "warn" => Ok(NoMatch::Warn),
            "allow" => Ok(NoMatch::Allow),
            _ => Err(format!("{s:?} is not one of deny, warn, allow")),
        }
    }
}

/// A policy's name; `namespace/name` for a namespaced `ImagePolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PolicyName(String);

impl PolicyName {
    /// A name as written (for tests; the loader builds names from metadata).
    #[cfg(test)]
    pub(crate) fn new(name: impl Into<String>) -> Self {
        PolicyName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether signatures on the platform manifests of a multi-arch index may stand in for a
/// signature on the index itself (`spec.platformSignatures`).
///
/// The runtime pulls the index the pod names and then one platform manifest from it, so the
/// index digest is what signet verifies (signers sign the index). Some pipelines sign
/// only the per-platform images. With `accept`, an index with no valid signature of its own is
/// trusted when **every** runnable entry it lists has a valid signature under the policy. Only
/// entries the runtime can never pull as a platform image are passed over (platform
/// `unknown/unknown`, as build attestations are, or a media type that is no image manifest); an
/// annotation, which anyone who pushes can write, exempts nothing.
/// The index bytes are still pinned by digest, so its list of children cannot change.
///
/// The risk: nobody vouched for the combination. Anyone who can push to the repository can
/// assemble a new index from individually signed manifests, for example an old, vulnerable
/// build for one platform next to a current one for another, and it will be admitted. Use it
/// only where every signed platform image is acceptable on its own.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PlatformSignatures {
    /// Only a signature on the digest the pod names counts (the default).
    #[default]
    Ignore,
    /// An index is also trusted when every platform manifest in it is.
    Accept,
}

/// One loaded, validated policy.
#[derive(Debug)]
pub struct Policy {
    pub name: PolicyName,
    /// `Some(ns)` for an `ImagePolicy`: it applies to requests in that namespace only.
    pub namespace: Option<String>,
    pub images: Vec<ImageGlob>,
    pub mode: Mode,
    pub on_error: OnError,
    pub platform_signatures: PlatformSignatures,
    /// `spec.requireDigest`: an image named by tag alone fails this policy, however it is
    /// signed. A validating webhook checks the digest a tag names now, and the kubelet pulls
    /// the tag later; whoever can push can move the tag in between. A digest closes that gap.
    pub require_digest: bool,
    /// `spec.pinTemplates`: the pinning route rewrites this policy's images to their verified
    /// digests in workload templates too. Pods are always pinned when the route is installed;
    /// templates are left as written unless asked, since GitOps tools would see drift.
    pub pin_templates: bool,
    pub authorities: Vec<Authority>,
    /// Hash of the spec and every file it references: part of every verdict cache key.
    pub generation: String,
    /// Where it came from, for messages: `file:line`.
    pub source: String,
    /// How the policy competes with others that match the same image.
    pub scope: Scope,
}

/// Policies written for signet all apply together (AND). Statements imported from a Notation
/// `trustpolicy.json` keep Notation's rule instead: a statement naming the repository exactly
/// wins over the `*` statement, which applies only to repositories no statement names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Glob,
    NotationExact,
    NotationGlobal,
}

impl Policy {
    /// Whether this policy covers `image` in a request from `namespace`.
    pub fn matches(&self, image: &ImageRef, namespace: Option<&str>) -> bool {
        if let Some(ns) = &self.namespace
            && namespace != Some(ns.as_str())
        {
            return false;
        }
        self.images.iter().any(|g| g.matches(image))
    }

    /// When the first trust-store certificate of its Notation authorities expires. Cosign keys
    /// carry no validity period.
    pub fn trust_expires(&self) -> Option<std::time::SystemTime> {
        self.authorities
            .iter()
            .filter_map(|a| match &a.verifier {
                Verifier::Notation(n) => Some(n),
                Verifier::Cosign(_) => None,
            })
            .flat_map(|n| &n.trust_stores)
            .flat_map(|s| &s.certificates)
            .map(|c| c.not_after)
            .min()
    }
}

/// One way an image can be trusted under a policy; any authority suffices.
#[derive(Debug)]
pub struct Authority {
    pub name: String,
    pub verifier: Verifier,
}

/// The verifier an authority configures.
#[derive(Debug)]
pub enum Verifier {
    Cosign(cosign::CosignAuthority),
    Notation(Box<notation::NotationAuthority>),
}

/// Every policy loaded from one source, with the global settings.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub policies: Vec<Arc<Policy>>,
    pub no_match: NoMatch,
    /// `SignetConfig.spec.expiryWarningDays`: see [`PolicySet::expiry_warning`].
    pub expiry_warning_days: Option<u32>,
    /// Secret and ConfigMap references of enforced policies whose object (or key) does not
    /// exist. Not a load error: the policy is enforced without the authorities that need the
    /// material (trusting no signature if that is all of them), so its images stay covered and
    /// fail closed, and every other policy loads as usual.
    pub missing: Vec<MissingMaterial>,
}

/// Trust material a loaded policy names that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMaterial {
    /// Where it is named: `policies/prod.yaml:14` for a file, `ClusterImagePolicy prod` for a
    /// resource.
    pub at: String,
    /// The field and the object: `spec.authorities[0].cosign.keys[0]: Secret
    /// signet-system/cosign-pub not found`.
    pub message: String,
}

impl fmt::Display for MissingMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// How long before an admitted image's trust lapses signet warns, unless configured.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 14;

impl PolicySet {
    /// How long before an admitted image's trust lapses (a signature's expiry, a certificate no
    /// timestamp pins) signet adds a warning and an audit annotation. Zero: never.
    pub fn expiry_warning(&self) -> std::time::Duration {
        let days = self
            .expiry_warning_days
            .unwrap_or(DEFAULT_EXPIRY_WARNING_DAYS);
        std::time::Duration::from_secs(u64::from(days) * 86_400)
    }

    /// The policies that cover `image` for a request in `namespace`. All of them must pass.
    pub fn matching<'a>(
        &'a self,
        image: &'a ImageRef,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Policy>> + 'a {
        let exact = self
            .policies
            .iter()
            .any(|p| p.scope == Scope::NotationExact && p.matches(image, namespace));
        self.policies.iter().filter(move |p| {
            !(exact && p.scope == Scope::NotationGlobal) && p.matches(image, namespace)
        })
    }
}
