//! The registry seam: resolve tags, fetch manifests, blobs and referrers.
//!
//! [`Registry`] is the trait the rest of signet uses (`&self`, `Send + Sync`, no global lock);
//! [`HttpRegistry`] implements it over the OCI distribution API. The registry is untrusted: an
//! image reference can name any host. So every body is size-capped while it streams, every
//! digest is recomputed from the bytes received, and credentials go only to the host they were
//! configured for. Must not import `policy` or `verify`.
//!
//! The transport is `reqwest` rather than `oci-client`'s client: oci-client re-probes `/v2/`
//! before requests on open registries (doubling round trips), caps no response sizes, sends no
//! credentials for referrers and has no referrers paging or filtering; each of those is a
//! requirement here (see the README's architecture section).

pub mod acr;
mod auth;
mod client;
pub mod pull_secrets;
pub mod ssrf;
mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use acr::Acr;
pub use auth::Credentials;
pub use client::{HttpRegistry, RegistryConfig};
pub use pull_secrets::{Workload, WorkloadCredentialSource, WorkloadCredentials};
pub use ssrf::{Cidr, CidrError, DenyList};

use crate::image::{Digest, ImageRef};
use crate::reason::Reason;

/// Why the registry client cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("not a docker config.json: {0}")]
    DockerConfig(#[source] serde_json::Error),
    #[error("auths[{host}].auth is not base64: {source}")]
    AuthNotBase64 {
        host: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("auths[{0}].auth is not UTF-8")]
    AuthNotUtf8(String),
    #[error("auths[{0}].auth is not user:password")]
    AuthNotUserPassword(String),
    #[error("registry CA bundle: {0}")]
    CaBundle(#[source] reqwest::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{what} {host:?}: {source}")]
    Host {
        what: &'static str,
        host: String,
        #[source]
        source: crate::image::ParseError,
    },
    #[error(
        "insecure registry {0:?}: port 443 is the HTTPS port; a plain-HTTP registry there is \
         not supported (without a port, plain HTTP means port 80)"
    )]
    InsecureOnHttpsPort(String),
}

/// Media types signet asks for when reading manifests. Debian's docker-registry answers 404 to
/// an OCI manifest unless `Accept` names the OCI types exactly.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

tokio::task_local! {
    /// The review deadline of the registry calls running in this task (see [`with_deadline`]).
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as the review deadline of every registry call inside it.
///
/// The engine also cancels work at the deadline (`timeout_at`), so nothing outlives it; this
/// lets the client do better than being cancelled: each attempt's timeout is cut to the time
/// left, and a retry or a `Retry-After` wait that would not fit fails at once with its real
/// reason (`throttled`, `registry unreachable`) instead of sleeping into `deadline exceeded`.
/// A task-local rather than a parameter so the [`Registry`] trait stays as it is.
///
/// A plain function returning the scope's future, not an `async fn`: that would hold `f` twice
/// (as its argument and as the future it awaits), and every cache hit moves what it holds.
pub fn with_deadline<F: Future>(deadline: Instant, f: F) -> impl Future<Output = F::Output> {
    DEADLINE.scope(deadline, f)
}

tokio::task_local! {
    /// The workload's own registry credentials for the registry calls in this task (see
    /// [`with_credentials`]).
    static WORKLOAD: Arc<WorkloadCredentials>;
}

/// Runs `f` with `credentials` (a workload's pull secrets) taking precedence over the
/// cluster-wide credentials for every registry call inside it ([`pull_secrets::choose`]).
///
/// A task-local, and a plain function, for the same reasons as [`with_deadline`]: the
/// [`Registry`] trait stays as it is. The decision engine keys its tag-resolution cache by
/// [`credential_identity`], read from the same scope, so the cache key and the credentials
/// actually sent cannot disagree.
pub fn with_credentials<F: Future>(
    credentials: Arc<WorkloadCredentials>,
    f: F,
) -> impl Future<Output = F::Output> {
    WORKLOAD.scope(credentials, f)
}

/// The workload credentials in scope, if any.
pub(crate) fn workload_credentials() -> Option<Arc<WorkloadCredentials>> {
    WORKLOAD.try_with(Arc::clone).ok()
}

/// The identity of the workload credentials in scope for `host` (`None` when the workload has
/// none for it: the cluster-wide credentials, a constant of the process, apply).
pub fn credential_identity(host: &str) -> Option<String> {
    WORKLOAD.try_with(|w| w.identity(host)).ok().flatten()
}

/// What the workload credentials in scope could not read (missing or unreadable pull
/// secrets), for a message about a refused registry request.
pub fn credential_note() -> Option<String> {
    WORKLOAD.try_with(|w| w.note()).ok().flatten()
}

/// What [`with_deadline`] and [`with_credentials`] put in scope, taken from one task to be put
/// in scope again around work that runs as a task of its own (a task-local does not follow a
/// spawn).
#[derive(Clone)]
pub(crate) struct Scope {
    deadline: Option<Instant>,
    credentials: Option<Arc<WorkloadCredentials>>,
}

impl Scope {
    /// The running task's.
    pub(crate) fn current() -> Self {
        Scope {
            deadline: DEADLINE.try_with(|d| *d).ok(),
            credentials: workload_credentials(),
        }
    }

    /// The same credentials, under `deadline` instead.
    pub(crate) fn until(self, deadline: Instant) -> Self {
        Scope {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Runs `f` in this scope.
    pub(crate) async fn run<F: Future>(self, f: F) -> F::Output {
        let f = async move {
            match self.credentials {
                Some(c) => WORKLOAD.scope(c, f).await,
                None => f.await,
            }
        };
        match self.deadline {
            Some(d) => DEADLINE.scope(d, f).await,
            None => f.await,
        }
    }
}

/// Time left before the current review deadline; `None` outside [`with_deadline`].
pub(crate) fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|d| d.saturating_duration_since(Instant::now()))
        .ok()
}

/// Size, count and work limits. Sizes are enforced while data streams in; the `review_*` and
/// `max_held_bytes` limits bound what one admission review may cost (the decision engine
/// enforces them, through a per-review view of the registry).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    pub max_blob_bytes: u64,
    pub max_referrers: usize,
    pub request_timeout: Duration,
    /// Registry requests in flight to one host, for all reviews together.
    pub max_concurrent_per_host: usize,
    /// Distinct images one review may list; a review with more is denied outright.
    pub review_max_images: usize,
    /// Registry requests of one review in flight at once (across hosts). Below
    /// `max_concurrent_per_host`, so other reviews keep a share of every host.
    pub review_max_concurrent: usize,
    /// Registry operations one review may start in total; a review that needs more is denied.
    pub review_max_requests: usize,
    /// Bytes of signature blobs one review may hold (in flight or being checked) at once.
    pub review_max_bytes: u64,
    /// Bytes of blobs one review may fetch in total; a review that needs more is denied.
    pub review_max_fetched_bytes: u64,
    /// Bytes of signature blobs all reviews together may hold at once.
    pub max_held_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 4 << 20,
            max_referrers: 50,
            request_timeout: Duration::from_secs(3),
            max_concurrent_per_host: 32,
            review_max_images: 100,
            review_max_concurrent: 16,
            review_max_requests: 1000,
            review_max_bytes: 16 << 20,
            review_max_fetched_bytes: 64 << 20,
            max_held_bytes: 64 << 20,
        }
    }
}

/// A registry failure: a [`Reason`] (closed, for metrics and `onError`) and plain-word detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct RegistryError {
    pub reason: Reason,
    pub detail: String,
}

impl RegistryError {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        RegistryError {
            reason,
            detail: detail.into(),
        }
    }
}

/// A content descriptor, as in OCI manifests and indexes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an index entry is for, as runtimes match it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
}

/// A manifest or index, as fetched: the verified bytes and the fields signet reads.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    pub body: ManifestBody,
}

/// The fields of an image manifest or index that discovery needs.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBody {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What a tag or digest resolves to: the descriptor of the manifest the runtime will pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// The operations signet needs from a registry.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Resolves the image's tag (or digest) to the manifest descriptor.
    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError>;

    /// Fetches a manifest by tag or digest in the image's repository; `Ok(None)` when absent.
    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError>;

    /// Fetches a blob of the image's repository, capped at `limits.max_blob_bytes` and checked
    /// against the descriptor's digest.
    async fn blob(&self, image: &ImageRef, descriptor: &Descriptor)
    -> Result<Bytes, RegistryError>;

    /// The manifests that refer to `digest` (OCI 1.1 referrers API, or the referrers tag schema
    /// where the registry has no API), at most `limits.max_referrers`.
    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError>;

    /// The limits this registry client enforces.
    fn limits(&self) -> Limits;
}
