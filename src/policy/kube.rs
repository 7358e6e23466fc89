//! The Kubernetes policy source: `ClusterImagePolicy` and `ImagePolicy` resources, watched with
//! `kube::runtime` reflectors and combined with the policy directory if there is one
//! ([`Files`]), and the Secrets and ConfigMaps policies take keys from (`objects`: the kube
//! part of the material resolver, with the tenant rules).
//!
//! The reflectors keep an in-memory copy of every policy resource. [`KubeSource::load`] builds
//! the set from that copy and the directory: the directory's errors fail the whole load as
//! before (the last good set stays), while a bad resource affects only itself. Its error goes to
//! its status, and the last generation of it that loaded stays in force (a resource that never
//! loaded enforces nothing). A resource with the name of a file policy is not loaded: the file
//! wins, both sides are reported. Not ready until the first list of both kinds has synced; when
//! the API server goes away the copy is kept, so the last good set stays enforced (never "allow
//! all") and `signet_policy_source_stale_seconds` says for how long. A referenced Secret or
//! ConfigMap that disappears takes the authorities that used it out of trust at once.
//!
//! Status is written by one task per process with server-side apply, only when the object's
//! status differs from what this process computes, and at most once per object generation and
//! outcome, so replicas that agree converge after one write and replicas that disagree (during
//! a rollout) do not loop. Must not import `decision`, `registry`, `verify` or `server`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, mpsc};

use super::crd::{
    API_VERSION, ClusterImagePolicy, FIELD_MANAGER, Outcome, PolicySpec, PolicyStatus,
    desired_status, needs_write,
};
use super::keyvault::entry_for;
use super::load::{Metadata, PolicyDoc, build_policy, references};
use super::material::{Context, MaterialError, Reference, Resolver, Want};
use super::source::{Directory, Source};
use super::{LoadError, MissingMaterial, NoMatch, Policy, PolicyName, PolicySet};
use crate::metrics::Metrics;
use objects::{KubeObjects, TenantRules};

/// How the Kubernetes source is set up (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// signet's own namespace (`--namespace`, or `POD_NAMESPACE`).
    pub namespace: String,
    /// `--cluster-policy-namespace`: further namespaces whose Secrets and ConfigMaps
    /// cluster-wide policies may reference (`*`: any).
    pub cluster_policy_namespaces: Vec<String>,
    /// `--secrets-all-namespaces`: watch Secrets and ConfigMaps in every namespace, so that
    /// `ImagePolicy` resources can reference their own (else only signet's namespace is
    /// watched).
    pub secrets_all_namespaces: bool,
}

/// The kinds of policy resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ClusterImagePolicy,
    ImagePolicy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClusterImagePolicy => "ClusterImagePolicy",
            Kind::ImagePolicy => "ImagePolicy",
        }
    }

    fn api_resource(self) -> ApiResource {
        match self {
            Kind::ClusterImagePolicy => ApiResource::erase::<ClusterImagePolicy>(&()),
            Kind::ImagePolicy => ApiResource {
                group: super::crd::GROUP.to_string(),
                version: super::crd::VERSION.to_string(),
                api_version: API_VERSION.to_string(),
                kind: "ImagePolicy".to_string(),
                plural: "imagepolicies".to_string(),
            },
        }
    }

    fn watched(self) -> Watched {
        match self {
            Kind::ClusterImagePolicy => Watched::ClusterImagePolicies,
            Kind::ImagePolicy => Watched::ImagePolicies,
        }
    }
}

/// What is watched: the `source` label of `signet_policy_source_stale_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Watched {
    ClusterImagePolicies,
    ImagePolicies,
    Secrets,
    ConfigMaps,
}

const WATCHED: usize = 4;

impl Watched {
    const ALL: [Watched; WATCHED] = [
        Watched::ClusterImagePolicies,
        Watched::ImagePolicies,
        Watched::Secrets,
        Watched::ConfigMaps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Watched::ClusterImagePolicies => "clusterimagepolicies",
            Watched::ImagePolicies => "imagepolicies",
            Watched::Secrets => "secrets",
            Watched::ConfigMaps => "configmaps",
        }
    }

    fn index(self) -> usize {
        match self {
            Watched::ClusterImagePolicies => 0,
            Watched::ImagePolicies => 1,
            Watched::Secrets => 2,
            Watched::ConfigMaps => 3,
        }
    }

    /// Whether its objects are trust material (else policies).
    fn material(self) -> bool {
        matches!(self, Watched::Secrets | Watched::ConfigMaps)
    }
}

/// One policy resource as the reconciliation sees it: identity, generation, spec (unparsed, so
/// that one bad object cannot break the watch of all) and current status.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub namespace: Option<String>,
    pub uid: String,
    pub generation: Option<i64>,
    pub spec: serde_json::Value,
    pub status: Option<PolicyStatus>,
}

impl Object {
    /// The reconciliation's view of a watched object; `None` for one without name or uid.
    pub fn from_dynamic(kind: Kind, o: &DynamicObject) -> Option<Self> {
        Some(Object {
            kind,
            name: o.metadata.name.clone()?,
            namespace: o.metadata.namespace.clone(),
            uid: o.metadata.uid.clone()?,
            generation: o.metadata.generation,
            spec: o.data.get("spec").cloned().unwrap_or_default(),
            status: o
                .data
                .get("status")
                .and_then(|s| serde_json::from_value(s.clone()).ok()),
        })
    }

    /// `ClusterImagePolicy baseline`, `ImagePolicy team-a/apps`: for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.as_str(), self.name),
            None => format!("{} {}", self.kind.as_str(), self.name),
        }
    }

    fn policy_name(&self) -> PolicyName {
        match (&self.kind, &self.namespace) {
            (Kind::ImagePolicy, Some(ns)) => PolicyName(format!("{ns}/{}", self.name)),
            _ => PolicyName(self.name.clone()),
        }
    }
}

/// The last generation of each object that loaded, by uid: enforced while a later generation
/// is broken.
pub type LastGood = HashMap<String, (Option<i64>, Arc<Policy>)>;

/// The result of reconciling the watched objects against the file policies.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// The policies to enforce from custom resources.
    pub policies: Vec<Arc<Policy>>,
    /// Each object's outcome, for its status.
    pub outcomes: Vec<(Object, Outcome)>,
}

/// Builds the enforced policies of `objects`: each one that loads, in place of each one that
/// does not its last good generation (`last_good`, updated here), and none whose name a file
/// policy already has (`files`: name → where it is defined). Pure: the heart of the source.
pub fn reconcile(
    files: &BTreeMap<PolicyName, String>,
    objects: Vec<Object>,
    last_good: &mut LastGood,
    resolver: &Resolver,
) -> Reconciled {
    let mut out = Reconciled::default();
    let present: std::collections::HashSet<String> =
        objects.iter().map(|o| o.uid.clone()).collect();
    last_good.retain(|uid, _| present.contains(uid));
    for object in objects {
        let name = object.policy_name();
        if let Some(other) = files.get(&name) {
            last_good.remove(&object.uid);
            tracing::error!(
                policy = %name,
                file = %other,
                resource = %object.describe(),
                "a policy file and a policy resource have the same name; the file's policy is enforced"
            );
            out.outcomes.push((
                object,
                Outcome::DuplicateName {
                    other: other.clone(),
                },
            ));
            continue;
        }
        let kept = last_good.get(&object.uid).and_then(|(g, _)| *g);
        match load_object(&object, resolver) {
            Ok(policy) => {
                let policy = Arc::new(policy);
                last_good.insert(object.uid.clone(), (object.generation, policy.clone()));
                out.policies.push(policy);
                out.outcomes.push((object, Outcome::Loaded));
            }
            Err(ObjectError::Withdrawn { message, policy }) => {
                let policy: Arc<Policy> = Arc::from(policy);
                last_good.insert(object.uid.clone(), (object.generation, policy.clone()));
                tracing::warn!(resource = %object.describe(), material = %message, "policy resource names Key Vault material that is trusted no more");
                out.policies.push(policy);
                out.outcomes
                    .push((object, Outcome::MaterialWithdrawn { message }));
            }
            Err(ObjectError::Missing { message, degraded }) => {
                // The degraded policy replaces the last good one: a later broken generation
                // then keeps covering the images without trusting the material now gone.
                let degraded: Arc<Policy> = Arc::from(degraded);
                last_good.insert(object.uid.clone(), (object.generation, degraded.clone()));
                out.policies.push(degraded);
                out.outcomes
                    .push((object, Outcome::ReferenceNotFound { message }));
            }
            Err(e) => {
                let (message, outcome) = match e {
                    ObjectError::NotAllowed(m) => {
                        (m.clone(), Outcome::ReferenceNotAllowed { message: m, kept })
                    }
                    ObjectError::KeyVaultUnavailable(m) => {
                        (m.clone(), Outcome::KeyVaultUnavailable { message: m, kept })
                    }
                    ObjectError::Invalid(m)
                    | ObjectError::Missing { message: m, .. }
                    | ObjectError::Withdrawn { message: m, .. } => {
                        (m.clone(), Outcome::Invalid { message: m, kept })
                    }
                };
                tracing::warn!(resource = %object.describe(), error = %message, "policy resource rejected");
                if let Some((_, p)) = last_good.get(&object.uid) {
                    out.policies.push(p.clone());
                }
                out.outcomes.push((object, outcome));
            }
        }
    }
    out.policies.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Why an object's policy is not (wholly) enforced.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The spec is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A Secret or ConfigMap reference breaks the tenant rules.
    #[error("{0}")]
    NotAllowed(String),
    /// Referenced material does not exist. `degraded` is the policy without the authorities
    /// that need it (trusting nothing if that is all of them): enforced in its place, so a
    /// deleted key stops being trusted while the policy still covers its images.
    #[error("{message}")]
    Missing {
        message: String,
        degraded: Box<Policy>,
    },
    /// Key Vault material named is withdrawn (disabled, deleted, or stale past `staleAfter`).
    /// `policy` loaded without it, trusting nothing through it, and is enforced.
    #[error("{message}")]
    Withdrawn {
        message: String,
        policy: Box<Policy>,
    },
    /// Key Vault material named could not be read (never fetched, or every fetch failed).
    #[error("{0}")]
    KeyVaultUnavailable(String),
}

/// Parses and builds one object's policy; errors name the field (`spec.images[1]: ...`).
pub fn load_object(object: &Object, resolver: &Resolver) -> Result<Policy, ObjectError> {
    let spec: PolicySpec = serde_path_to_error::deserialize(&object.spec).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ObjectError::Invalid(if path == "." {
            format!("spec: {inner}")
        } else {
            format!("spec.{path}: {inner}")
        })
    })?;
    let namespace = match object.kind {
        Kind::ImagePolicy => object.namespace.clone(),
        Kind::ClusterImagePolicy => None,
    };
    let cx = Context {
        base: None,
        namespace: namespace.as_deref(),
    };
    // Every Secret and ConfigMap named, checked before loading so that each one that is
    // missing or not allowed is reported, not only the first.
    let mut not_allowed = Vec::new();
    let mut missing = Vec::new();
    let mut unusable = std::collections::BTreeSet::new();
    // Key Vault material: withdrawn (the loaders skip it) or not readable (loading fails).
    let mut withdrawn = Vec::new();
    let mut unavailable = Vec::new();
    for (index, path, want, m) in references(&spec) {
        match m.reference() {
            Ok(Reference::Object(..)) => match resolver.resolve(m, Want::TrustRoot, &cx) {
                Err(MaterialError::NotAllowed(e)) => not_allowed.push(format!("{path}.{e}")),
                Err(MaterialError::NotFound(e)) => {
                    unusable.insert(index);
                    missing.push(format!("{path}: {e}"));
                }
                _ => {}
            },
            // The same `want` as the loader's: the store keeps one entry per (object, kind).
            // A reference malformed or out of place is a spec error, which loading reports.
            Ok(Reference::KeyVault(kv)) if entry_for(kv, want).is_ok() => {
                match resolver.resolve(m, want, &cx) {
                    Ok(found) if found.withdrawn => {
                        withdrawn.push(format!("{path}.keyVault: {}", found.shown));
                    }
                    Err(e @ MaterialError::KeyVault { .. }) => {
                        unavailable.push(format!("{path}.keyVault: {e}"));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !not_allowed.is_empty() {
        return Err(ObjectError::NotAllowed(not_allowed.join("; ")));
    }
    if !unavailable.is_empty() {
        return Err(ObjectError::KeyVaultUnavailable(unavailable.join("; ")));
    }
    let doc = |spec: PolicySpec| PolicyDoc {
        api_version: API_VERSION.to_string(),
        kind: object.kind.as_str().to_string(),
        metadata: Metadata {
            name: object.name.clone(),
            namespace: namespace.clone(),
        },
        spec,
    };
    // No base directory: a resource, which tenants may write, cannot name signet's files.
    let build = |spec: PolicySpec| {
        build_policy(&doc(spec), None, resolver, object.describe())
            .map_err(|e| ObjectError::Invalid(e.with_field_path()))
    };
    if missing.is_empty() {
        let policy = build(spec)?;
        if withdrawn.is_empty() {
            return Ok(policy);
        }
        return Err(ObjectError::Withdrawn {
            message: withdrawn.join("; "),
            policy: Box::new(policy),
        });
    }
    missing.extend(withdrawn);
    let degraded = Box::new(
        match super::load::without_authorities(&spec, |i| unusable.contains(&i)) {
            Some(usable) => build(usable)?,
            None => trusting_nothing(object, &doc(spec))?,
        },
    );
    Err(ObjectError::Missing {
        message: missing.join("; "),
        degraded,
    })
}

/// The object's policy with no authority: it still covers its images, and trusts nothing.
fn trusting_nothing(object: &Object, doc: &PolicyDoc) -> Result<Policy, ObjectError> {
    super::load::trusting_nothing(doc, object.describe())
        .map_err(|e| ObjectError::Invalid(e.with_field_path()))
}

/// No cluster could be found or reached.
#[derive(Debug, thiserror::Error)]
#[error(
    "--kubernetes: no usable cluster configuration (KUBECONFIG or the in-cluster config of a pod): {0}"
)]
pub struct ConnectError(#[source] kube::Error);

/// What the watch tasks share with the source.
struct Shared {
    /// Woken on every change of a watched object, so a change is loaded at once.
    wake: Arc<Notify>,
    /// The first list of each watched resource has arrived.
    synced: [AtomicBool; WATCHED],
    /// Per watched resource: since when its watch has been failing (`None`: current).
    failing: [Mutex<Option<Instant>>; WATCHED],
    /// Bumped on every change of a watched Secret or ConfigMap (the resolver's version).
    material: Arc<AtomicU64>,
    /// When the oldest change not yet loaded arrived: how long a change takes to apply is
    /// logged with each load.
    changed_at: Mutex<Option<Instant>>,
}

impl Shared {
    fn contact(&self, w: Watched) {
        if let Ok(mut f) = self.failing[w.index()].lock() {
            *f = None;
        }
    }

    fn failed(&self, w: Watched) {
        if let Ok(mut f) = self.failing[w.index()].lock() {
            f.get_or_insert_with(Instant::now);
        }
    }

    fn failing_since(&self, w: Watched) -> Option<Instant> {
        self.failing[w.index()].lock().ok().and_then(|f| *f)
    }

    fn synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }
}

/// A status the writer should make an object have.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub object: Object,
    pub outcome: Outcome,
}

/// The policy files a [`KubeSource`] combines with the resources.
pub enum Files {
    /// A policy directory (`--policies`): its policies and `SignetConfig`, with the command
    /// line's `--no-match` over it.
    Directory(Directory),
    /// No policy files: every policy is a resource. `noMatch` is the command line's
    /// (`--no-match`), else deny; `resolver` reads the resources' trust material.
    None {
        no_match: Option<NoMatch>,
        resolver: Resolver,
    },
}

impl From<Directory> for Files {
    fn from(d: Directory) -> Self {
        Files::Directory(d)
    }
}

impl Files {
    fn resolver(&self) -> &Resolver {
        match self {
            Files::Directory(d) => d.resolver(),
            Files::None { resolver, .. } => resolver,
        }
    }

    fn with_resolver(self, resolver: Resolver) -> Self {
        match self {
            Files::Directory(d) => Files::Directory(d.with_resolver(resolver)),
            Files::None { no_match, .. } => Files::None { no_match, resolver },
        }
    }

    fn describe(&self) -> String {
        match self {
            Files::Directory(d) => format!("{} and the Kubernetes API", d.describe()),
            Files::None { .. } => "the Kubernetes API (no policy directory)".to_string(),
        }
    }

    /// The directory's fingerprint, or without one the resolver's version: a changed Secret
    /// or ConfigMap must cause a load either way.
    fn fingerprint(&self) -> Vec<u8> {
        match self {
            Files::Directory(d) => d.fingerprint(),
            Files::None { resolver, .. } => resolver.version().to_be_bytes().to_vec(),
        }
    }

    fn load(&self) -> Result<PolicySet, Vec<LoadError>> {
        match self {
            Files::Directory(d) => d.load(),
            Files::None { no_match, .. } => Ok(PolicySet {
                no_match: no_match.unwrap_or_default(),
                ..PolicySet::default()
            }),
        }
    }
}

/// Policy resources and the policy directory (if any), as one [`Source`].
pub struct KubeSource {
    files: Files,
    resolver: Resolver,
    stores: [(Kind, Store<DynamicObject>); 2],
    shared: Arc<Shared>,
    last_good: Mutex<LastGood>,
    status: mpsc::UnboundedSender<Vec<StatusUpdate>>,
    /// Whether a load has succeeded since the stores synced; until then every fingerprint
    /// differs (`polls` counts up), so the watcher loads as soon as the stores are ready
    /// whatever it saw before.
    loaded: AtomicBool,
    polls: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeSource {
    /// Starts watching both kinds, and the Secrets and ConfigMaps policies may reference,
    /// through `client`, and the status writer. File policies may reference them too.
    pub fn start(
        client: kube::Client,
        files: impl Into<Files>,
        options: KubeOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::start_with(client, files.into(), options, metrics, true)
    }

    /// As [`KubeSource::start`], without the status writer: for checking what a server would
    /// load (`signet policy check --kubernetes`), which must change nothing in the cluster.
    pub fn start_read_only(
        client: kube::Client,
        files: impl Into<Files>,
        options: KubeOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::start_with(client, files.into(), options, metrics, false)
    }

    fn start_with(
        client: kube::Client,
        files: Files,
        options: KubeOptions,
        metrics: Arc<Metrics>,
        write_status: bool,
    ) -> Self {
        let shared = Arc::new(Shared {
            wake: Arc::new(Notify::new()),
            synced: std::array::from_fn(|_| AtomicBool::new(false)),
            failing: std::array::from_fn(|_| Mutex::new(None)),
            material: Arc::new(AtomicU64::new(0)),
            changed_at: Mutex::new(None),
        });
        let mut tasks = Vec::new();
        let mut stores = Vec::new();
        for kind in [Kind::ClusterImagePolicy, Kind::ImagePolicy] {
            let ar = kind.api_resource();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let writer = reflector::store::Writer::new(ar);
            stores.push((kind, writer.as_reader()));
            tasks.push(tokio::spawn(drive(
                api,
                writer,
                kind.watched(),
                shared.clone(),
            )));
        }
        let probes = Probes::new(&client, &options);
        let (secrets, secrets_writer) = reflector::store::<Secret>();
        tasks.push(tokio::spawn(drive(
            probes.secrets.clone(),
            secrets_writer,
            Watched::Secrets,
            shared.clone(),
        )));
        let (config_maps, config_maps_writer) = reflector::store::<ConfigMap>();
        tasks.push(tokio::spawn(drive(
            probes.config_maps.clone(),
            config_maps_writer,
            Watched::ConfigMaps,
            shared.clone(),
        )));
        let objects = KubeObjects {
            secrets,
            config_maps,
            rules: TenantRules {
                own: options.namespace.clone(),
                cluster_extra: options.cluster_policy_namespaces.clone(),
                all_namespaces: options.secrets_all_namespaces,
            },
            version: shared.material.clone(),
        };
        let resolver = files.resolver().clone().with_objects(Arc::new(objects));
        tasks.push(tokio::spawn(staleness(
            probes,
            shared.clone(),
            metrics.clone(),
        )));
        // Without a writer the receiver is dropped, and each load's statuses go nowhere.
        let (tx, rx) = mpsc::unbounded_channel();
        if write_status {
            tasks.push(tokio::spawn(StatusWriter::new(client, metrics).run(rx)));
        }
        let [a, b]: [(Kind, Store<DynamicObject>); 2] = match stores.try_into() {
            Ok(s) => s,
            Err(_) => unreachable!("two kinds, two stores"),
        };
        KubeSource {
            files: files.with_resolver(resolver.clone()),
            resolver,
            stores: [a, b],
            shared,
            last_good: Mutex::new(HashMap::new()),
            status: tx,
            loaded: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            tasks,
        }
    }

    /// Finds the cluster (`KUBECONFIG`, else the in-cluster config of a pod) and starts.
    pub async fn connect(
        files: Files,
        options: KubeOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConnectError> {
        let client = kube::Client::try_default().await.map_err(ConnectError)?;
        Ok(Self::start(client, files, options, metrics))
    }

    /// Waits until the first list of both kinds has arrived, or `timeout` passes; whether it
    /// has.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.shared.synced() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn objects(&self) -> Vec<Object> {
        let mut out = Vec::new();
        for (kind, store) in &self.stores {
            for o in store.state() {
                if let Some(obj) = Object::from_dynamic(*kind, &o) {
                    out.push(obj);
                }
            }
        }
        out.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        out
    }
}

impl Source for KubeSource {
    fn describe(&self) -> String {
        format!(
            "{} (clusterimagepolicies, imagepolicies, secrets, configmaps)",
            self.files.describe()
        )
    }

    fn fingerprint(&self) -> Vec<u8> {
        if !self.shared.synced() {
            return b"unsynced".to_vec();
        }
        let mut out = self.files.fingerprint();
        // Until a load succeeds each call counts up, so the watcher loads whatever it saw
        // before; the count then stays where that load left it.
        let n = if self.loaded.load(Ordering::Acquire) {
            self.polls.load(Ordering::Acquire)
        } else {
            self.polls.fetch_add(1, Ordering::AcqRel) + 1
        };
        out.extend_from_slice(&n.to_le_bytes());
        // Generation, not resourceVersion: a status write changes only the latter and must not
        // cause a reload.
        for o in self.objects() {
            out.extend_from_slice(o.uid.as_bytes());
            out.extend_from_slice(&o.generation.unwrap_or(0).to_le_bytes());
        }
        out
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.shared.wake.clone())
    }

    fn load(&self) -> Result<PolicySet, Vec<LoadError>> {
        if !self.shared.synced() {
            let waiting: Vec<&str> = Watched::ALL
                .iter()
                .filter(|w| !self.shared.synced[w.index()].load(Ordering::Acquire))
                .map(|w| w.as_str())
                .collect();
            return Err(vec![LoadError {
                file: PathBuf::from("kubernetes"),
                line: None,
                message: format!(
                    "waiting for the first list of {} from the API server",
                    waiting.join(", ")
                ),
            }]);
        }
        let mut set = self.files.load()?;
        let files: BTreeMap<PolicyName, String> = set
            .policies
            .iter()
            .map(|p| (p.name.clone(), p.source.clone()))
            .collect();
        let reconciled = match self.last_good.lock() {
            Ok(mut last_good) => reconcile(&files, self.objects(), &mut last_good, &self.resolver),
            Err(_) => unreachable!("no code panics while holding the last-good lock"),
        };
        set.policies.extend(reconciled.policies);
        set.policies.sort_by(|a, b| a.name.cmp(&b.name));
        for (object, outcome) in &reconciled.outcomes {
            if let Outcome::ReferenceNotFound { message } = outcome {
                set.missing.push(MissingMaterial {
                    at: object.describe(),
                    message: message.clone(),
                });
            }
        }
        let updates = reconciled
            .outcomes
            .into_iter()
            .map(|(object, outcome)| StatusUpdate { object, outcome })
            .collect();
        let _ = self.status.send(updates);
        self.loaded.store(true, Ordering::Release);
        if let Some(at) = self
            .shared
            .changed_at
            .lock()
            .ok()
            .and_then(|mut a| a.take())
        {
            tracing::info!(
                since_event_ms = at.elapsed().as_secs_f64() * 1000.0,
                policies = set.policies.len(),
                "policy resources loaded"
            );
        }
        Ok(set)
    }
}

/// Runs one reflector: keeps `writer`'s store current, marks the resource synced after its
/// first list and current or failing, and wakes the source on every change.
async fn drive<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    which: Watched,
    shared: Arc<Shared>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    // Managed fields are large and never read: dropped before they are stored.
    let events =
        watcher(api, watcher::Config::default()).modify(|o| o.meta_mut().managed_fields = None);
    let mut stream = reflector::reflector(writer, events)
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                shared.contact(which);
                let changed = match event {
                    watcher::Event::InitDone => {
                        shared.synced[which.index()].store(true, Ordering::Release);
                        true
                    }
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) => true,
                    watcher::Event::Init | watcher::Event::InitApply(_) => false,
                };
                if changed {
                    if which.material() {
                        shared.material.fetch_add(1, Ordering::AcqRel);
                    }
                    if let Ok(mut at) = shared.changed_at.lock() {
                        at.get_or_insert_with(Instant::now);
                    }
                    tracing::debug!(resource = which.as_str(), "watched objects changed");
                    shared.wake.notify_one();
                }
            }
            Err(error) => {
                shared.failed(which);
                tracing::warn!(resource = which.as_str(), %error, "watch failed; retrying, the last policies stay in force");
            }
        }
    }
}

/// The APIs of the watched resources, for the cheap lists that confirm a failed watch is
/// current again.
struct Probes {
    cluster: Api<DynamicObject>,
    namespaced: Api<DynamicObject>,
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
}

impl Probes {
    fn new(client: &kube::Client, options: &KubeOptions) -> Self {
        let (secrets, config_maps) = if options.secrets_all_namespaces {
            (Api::all(client.clone()), Api::all(client.clone()))
        } else {
            (
                Api::namespaced(client.clone(), &options.namespace),
                Api::namespaced(client.clone(), &options.namespace),
            )
        };
        Probes {
            cluster: Api::all_with(client.clone(), &Kind::ClusterImagePolicy.api_resource()),
            namespaced: Api::all_with(client.clone(), &Kind::ImagePolicy.api_resource()),
            secrets,
            config_maps,
        }
    }

    async fn reachable(&self, w: Watched) -> bool {
        let one = ListParams::default().limit(1);
        match w {
            Watched::ClusterImagePolicies => self.cluster.list_metadata(&one).await.is_ok(),
            Watched::ImagePolicies => self.namespaced.list_metadata(&one).await.is_ok(),
            Watched::Secrets => self.secrets.list_metadata(&one).await.is_ok(),
            Watched::ConfigMaps => self.config_maps.list_metadata(&one).await.is_ok(),
        }
    }
}

/// Keeps `signet_policy_source_stale_seconds` current. A watch that failed is confirmed current
/// again by its next event or by a cheap list (a quiet watch sends no events to tell).
async fn staleness(probes: Probes, shared: Arc<Shared>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut probe = 0u32;
    loop {
        tick.tick().await;
        probe = probe.wrapping_add(1);
        for w in Watched::ALL {
            let since = shared.failing_since(w);
            let secs = since.map_or(0.0, |s| s.elapsed().as_secs_f64());
            metrics
                .policy_source_stale
                .with_label_values(&[w.as_str()])
                .set(secs);
            if since.is_some() && probe.is_multiple_of(5) && probes.reachable(w).await {
                shared.contact(w);
            }
        }
    }
}

/// Writes policy statuses: one per process, fed by every load.
pub struct StatusWriter {
    client: kube::Client,
    metrics: Arc<Metrics>,
    /// What this process last wrote (or found already there), per uid: the generation and the
    /// status without its transition time. Never written twice for the same pair.
    written: HashMap<String, (Option<i64>, PolicyStatus)>,
    /// Updates whose write failed, retried on a timer.
    pending: HashMap<String, StatusUpdate>,
}

/// How often failed status writes are retried.
const STATUS_RETRY: Duration = Duration::from_secs(10);

impl StatusWriter {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        StatusWriter {
            client,
            metrics,
            written: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Vec<StatusUpdate>>) {
        let mut retry = tokio::time::interval(STATUS_RETRY);
        retry.tick().await;
        loop {
            tokio::select! {
                batch = rx.recv() => {
                    let Some(batch) = batch else { return };
                    let present: std::collections::HashSet<&str> =
                        batch.iter().map(|u| u.object.uid.as_str()).collect();
                    self.written.retain(|uid, _| present.contains(uid.as_str()));
                    self.pending.retain(|uid, _| present.contains(uid.as_str()));
                    for u in batch {
                        self.pending.remove(&u.object.uid);
                        self.apply(u, &now()).await;
                    }
                }
                _ = retry.tick() => {
                    let pending: Vec<StatusUpdate> = self.pending.drain().map(|(_, u)| u).collect();
                    for u in pending {
                        self.apply(u, &now()).await;
                    }
                }
            }
        }
    }

    /// Writes `update` if [`plan`] says so; records the outcome.
    pub async fn apply(&mut self, update: StatusUpdate, now: &str) -> bool {
        let Some(desired) = plan(&mut self.written, &update, now) else {
            return false;
        };
        match patch_status(&self.client, &update.object, &desired).await {
            Ok(()) => {
                self.metrics
                    .policy_status_writes
                    .with_label_values(&["written"])
                    .inc();
                self.written.insert(
                    update.object.uid.clone(),
                    (update.object.generation, comparable(&desired)),
                );
                true
            }
            Err(error) => {
                self.metrics
                    .policy_status_writes
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(resource = %update.object.describe(), %error, "cannot write the policy's status; will retry");
                self.pending.insert(update.object.uid.clone(), update);
                false
            }
        }
    }
}

/// The status to write for `update`, or `None` when the object already says it or this process
/// already wrote it for this generation (so disagreeing replicas write once each, not forever).
/// `written` is updated when nothing needs writing, so a later identical update is skipped too.
pub fn plan(
    written: &mut HashMap<String, (Option<i64>, PolicyStatus)>,
    update: &StatusUpdate,
    now: &str,
) -> Option<PolicyStatus> {
    let object = &update.object;
    let desired = desired_status(
        object.generation,
        &update.outcome,
        object.status.as_ref(),
        now,
    );
    let mine = (object.generation, comparable(&desired));
    if !needs_write(object.status.as_ref(), &desired) {
        written.insert(object.uid.clone(), mine);
        return None;
    }
    if written.get(&object.uid) == Some(&mine) {
        return None;
    }
    Some(desired)
}

fn comparable(s: &PolicyStatus) -> PolicyStatus {
    let mut s = s.clone();
    for c in &mut s.conditions {
        c.last_transition_time.clear();
    }
    s
}

/// Server-side apply of `status` on the object's status subresource, as field manager `signet`.
async fn patch_status(
    client: &kube::Client,
    object: &Object,
    status: &PolicyStatus,
) -> Result<(), kube::Error> {
    let ar = object.kind.api_resource();
    let api: Api<DynamicObject> = match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut metadata = serde_json::json!({ "name": object.name });
    if let Some(ns) = &object.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    let body = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": object.kind.as_str(),
        "metadata": metadata,
        "status": status,
    });
    api.patch_status(
        &object.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map(|_| ())
}

/// The current time as RFC 3339 (seconds), as Kubernetes writes timestamps.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc().replace_nanosecond(0);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

mod objects;
#[cfg(test)]
mod tests;
