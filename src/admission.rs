//! AdmissionReview in, AdmissionReview out: the only module that knows Kubernetes types.
//!
//! [`decode`] turns a request body into a [`Review`]: which images to check (Pod,
//! `pods/ephemeralcontainers`, and the seven workload kinds that carry a pod template; in each
//! pod spec the init, regular and ephemeral containers and the image volumes), or why the
//! request is allowed untouched ([`SkipReason`]), or why it cannot be evaluated. On UPDATE only
//! the references the object adds to its `oldObject` are checked, compared as written: every
//! pod still starts through a CREATE, which is checked whole, so an update that brings no new
//! reference cannot start anything unverified. [`respond`] turns a decision into the response
//! the API server expects: `uid` and `apiVersion` echoed; a denial with `code: 403` and
//! `reason: Forbidden`, which kubectl needs to print `Error from server (Forbidden)`.
//! [`log_admitted`] writes the audit trail of what an allowed review let in. Must not import
//! hyper or the registry.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::PodSpec;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind};
use serde::Deserialize;

pub mod manifest;
pub mod pin;

use crate::decision::{ImageReport, ImageStatus, ImageUse, PolicyVerdict, Verdict, Workload};
use crate::telemetry::Untrusted;
use crate::verify::Outcome;

/// The longest deny message sent; the API server passes 5,000 characters to kubectl whole.
const MAX_DENY_CHARS: usize = 4000;

/// Why a body is not an AdmissionReview at all (answered with HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is not a valid AdmissionReview: {0}")]
    Json(String),
    #[error(
        "expected kind AdmissionReview with apiVersion admission.k8s.io/v1, got kind {kind:?} apiVersion {api_version:?}"
    )]
    NotAReview { kind: String, api_version: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request has an empty uid")]
    EmptyUid,
}

/// What to do with a decoded review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Verify these images.
    Check(Vec<ImageUse>),
    /// Allow without verifying anything, for this reason (logged and counted).
    Skip(SkipReason),
    /// The request cannot be evaluated: deny with this message.
    Reject(String),
}

/// Why a review is allowed without verifying any image. A closed set: its
/// [`as_str`](SkipReason::as_str) is the `reason` label of `signet_admission_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// An UPDATE whose object holds no image reference that its old object lacks.
    NoNewImage,
    /// An UPDATE of an object being deleted (`metadata.deletionTimestamp` set, e.g. a
    /// finalizer removal) that introduces no image.
    Deleting,
    /// DELETE or CONNECT: nothing starts.
    Operation,
    /// A kind that holds no pod spec.
    Kind,
    /// A subresource other than `pods/ephemeralcontainers` (`status`, `scale`, ...).
    Subresource,
}

impl SkipReason {
    /// Every reason, for pre-registering the metric's label values.
    pub const ALL: [SkipReason; 5] = [
        SkipReason::NoNewImage,
        SkipReason::Deleting,
        SkipReason::Operation,
        SkipReason::Kind,
        SkipReason::Subresource,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoNewImage => "no_new_image",
            SkipReason::Deleting => "deleting",
            SkipReason::Operation => "operation",
            SkipReason::Kind => "kind",
            SkipReason::Subresource => "subresource",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::NoNewImage => {
                "UPDATE introduces no image reference that the old object lacks"
            }
            SkipReason::Deleting => {
                "UPDATE of an object being deleted introduces no image reference"
            }
            SkipReason::Operation => "operation not governed",
            SkipReason::Kind => "kind not governed",
            SkipReason::Subresource => "subresource not governed",
        })
    }
}

/// A decoded review: what the decision, the response and the log need from the request, and
/// what to do. The object itself is kept only by [`decode_with_object`] (the pinning route).
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    uid: String,
    /// Echoed in the response.
    api_version: String,
    kind: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    operation: Operation,
    dry_run: bool,
    /// `imagePullSecrets[].name` of the object's pod spec, as written (empty names kept).
    pull_secrets: Vec<String>,
    /// `serviceAccountName` of the object's pod spec.
    service_account: Option<String>,
    /// The object under review, for the pinning patch.
    object: Option<DynamicObject>,
    pub action: Action,
}

impl Review {
    /// The review without its object: what [`decode`] gives for the body [`decode_with_object`]
    /// read.
    pub fn without_object(mut self) -> Review {
        self.object = None;
        self
    }

    /// The JSONPatch that pins each image of `pins` (as written → verified digest) in the
    /// object's pod spec. Empty for an object with no pod spec, for a review decoded without
    /// its object ([`decode`] rather than [`decode_with_object`]), and, for a workload
    /// template, when `pins` was computed for templates without any policy asking (see
    /// [`Verdict::pins`]).
    pub fn pin_patch(
        &self,
        pins: &std::collections::BTreeMap<String, crate::image::Digest>,
    ) -> json_patch::Patch {
        let path = pod_spec_path(&self.kind.group, &self.kind.kind);
        match (&self.object, path) {
            (Some(object), Some(path)) => pin::patch(&object.data, path, pins),
            _ => json_patch::Patch(Vec::new()),
        }
    }

    /// Whether the object is a workload carrying a pod template rather than a Pod.
    pub fn is_template(&self) -> bool {
        self.kind.kind != "Pod"
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `group/version/Kind`, for logs.
    pub fn kind(&self) -> String {
        let k = &self.kind;
        if k.group.is_empty() {
            format!("{}/{}", k.version, k.kind)
        } else {
            format!("{}/{}/{}", k.group, k.version, k.kind)
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn operation(&self) -> &'static str {
        match self.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The names of the pod spec's `imagePullSecrets`, in order, as written. Empty when the
    /// review checks no image.
    pub fn pull_secret_names(&self) -> &[String] {
        &self.pull_secrets
    }

    /// The pod spec's `serviceAccountName` (or its deprecated alias `serviceAccount`), when the
    /// review checks images and one is set and not empty.
    pub fn service_account_name(&self) -> Option<&str> {
        self.service_account.as_deref()
    }

    /// The pod spec's `imagePullSecrets[].name`, in order; empty without a pod spec.
    pub fn pull_secrets(&self) -> Vec<String> {
        self.pull_identity().0
    }

    /// The pod spec's service account: `serviceAccountName` (or the deprecated
    /// `serviceAccount`), `default` when unset, as the API server defaults it.
    pub fn service_account(&self) -> String {
        self.pull_identity().1
    }

    /// Whose registry credentials the images are checked with: the request's namespace (never
    /// the object's), the pull secrets and the service account. `None` without a namespace.
    pub fn workload(&self) -> Option<Workload> {
        let namespace = self.namespace().filter(|n| !n.is_empty())?;
        let (pull_secrets, service_account) = self.pull_identity();
        Some(Workload {
            namespace: namespace.to_string(),
            pull_secrets,
            service_account,
        })
    }

    /// The pull secrets (empty names dropped) and the service account (`default` when unset,
    /// as the API server defaults it) of the object's pod spec, as the decoder read them.
    fn pull_identity(&self) -> (Vec<String>, String) {
        let secrets = self
            .pull_secrets
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        let account = self
            .service_account
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        (secrets, account)
    }

    /// The span every log line of this review is made in.
    /// Request text, escaped and bounded in both log formats (the JSON one does not cut).
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "review",
            uid = %Untrusted(self.uid()),
            namespace = %Untrusted(self.namespace().unwrap_or("")),
            kind = %Untrusted(&self.kind()),
            // Not `name`: the JSON log format writes the span's own name under that key.
            object = %Untrusted(self.name()),
            operation = self.operation(),
        )
    }
}

/// Where the pod spec sits in each governed kind.
fn pod_spec_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    Some(match (group, kind) {
        ("", "Pod") => &["spec"],
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => &["spec", "template", "spec"],
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// Decodes an AdmissionReview body for the validating route, reading only what a decision
/// needs (see [`fast`]); the object is not kept, so [`Review::pin_patch`] is empty.
///
/// Equivalent to [`decode_with_object`] except for the object: every error, and every
/// rejection, is [`decode_with_object`]'s own, since the fast reader hands any body it does not
/// answer itself (malformed, rejected, or spelled in a way it does not read) to it. The one
/// difference is what the fast reader does not look at: fields no decision reads (the object's
/// metadata other than `deletionTimestamp`, the pod spec's fields other than the container
/// lists, image volumes, `imagePullSecrets` and `serviceAccountName`) are checked to be JSON
/// but not to have their Kubernetes types, so a body whose only fault is there is answered
/// rather than refused. The API server sends objects it has already decoded into their types.
pub fn decode(body: &[u8]) -> Result<Review, DecodeError> {
    match fast::decode(body) {
        Some(review) => Ok(review),
        None => decode_with_object(body).map(Review::without_object),
    }
}

/// Decodes an AdmissionReview body completely: the whole request, the object kept for the
/// pinning patch, the pod specs read into their full Kubernetes types.
pub fn decode_with_object(body: &[u8]) -> Result<Review, DecodeError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let (kind, api_version) = (&review.types.kind, &review.types.api_version);
    if kind != "AdmissionReview" || !api_version.starts_with("admission.k8s.io/") {
        return Err(DecodeError::NotAReview {
            kind: kind.clone(),
            api_version: api_version.clone(),
        });
    }
    let mut request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| DecodeError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(DecodeError::EmptyUid);
    }
    let object = request.object.take();
    let old_object = request.old_object.take();
    let head = Head {
        operation: &request.operation,
        kind: &request.kind,
        sub_resource: request.sub_resource.as_deref(),
    };
    let read = |which: Which, path: &[&str]| {
        let o = match which {
            Which::Object => object.as_ref(),
            Which::OldObject => old_object.as_ref(),
        };
        Ok::<_, std::convert::Infallible>(o.map(|o| ObjectRead::of_dynamic(o, path)))
    };
    let (action, spec) = match classify(&head, read) {
        Ok(done) => done,
        Err(never) => match never {},
    };
    Ok(Review {
        uid: request.uid,
        api_version: request.types.api_version,
        kind: request.kind,
        name: request.name,
        namespace: request.namespace,
        operation: request.operation,
        dry_run: request.dry_run,
        pull_secrets: spec.pull_secrets,
        service_account: spec.service_account,
        object,
        action,
    })
}

/// The parts of a request [`classify`] judges by.
struct Head<'a> {
    operation: &'a Operation,
    kind: &'a GroupVersionKind,
    sub_resource: Option<&'a str>,
}

/// Which object of the request to read.
#[derive(Clone, Copy)]
enum Which {
    Object,
    OldObject,
}

/// One object, as much as a decision reads of it.
struct ObjectRead {
    /// `metadata.deletionTimestamp` is set.
    deleting: bool,
    spec: SpecRead,
}

/// The pod spec at the kind's path.
enum SpecRead {
    /// Absent or null.
    Missing,
    /// Present but not a pod spec: why.
    Unreadable(String),
    Read(SpecImages),
}

/// What a decision reads of a pod spec.
#[derive(Default)]
struct SpecImages {
    uses: Vec<ImageUse>,
    pull_secrets: Vec<String>,
    service_account: Option<String>,
}

impl ObjectRead {
    fn of_dynamic(object: &DynamicObject, path: &[&str]) -> ObjectRead {
        let mut spec = &object.data;
        for key in path {
            spec = &spec[*key];
        }
        let spec = if spec.is_null() {
            SpecRead::Missing
        } else {
            match PodSpec::deserialize(spec) {
                Ok(pod) => SpecRead::Read(SpecImages {
                    uses: images(&pod),
                    pull_secrets: pod
                        .image_pull_secrets
                        .iter()
                        .flatten()
                        .map(|s| s.name.clone())
                        .collect(),
                    service_account: [&pod.service_account_name, &pod.service_account]
                        .into_iter()
                        .flatten()
                        .find(|n| !n.is_empty())
                        .cloned(),
                }),
                Err(e) => SpecRead::Unreadable(e.to_string()),
            }
        };
        ObjectRead {
            deleting: object.metadata.deletion_timestamp.is_some(),
            spec,
        }
    }
}

/// What to do with a request, and the object's pod spec when it is checked. `read` gives an
/// object's pod spec at a path; its error stops the classification (the fast reader's way of
/// giving up).
fn classify<E>(
    head: &Head<'_>,
    mut read: impl FnMut(Which, &[&str]) -> Result<Option<ObjectRead>, E>,
) -> Result<(Action, SpecImages), E> {
    let skip = |why| Ok((Action::Skip(why), SpecImages::default()));
    if matches!(head.operation, Operation::Delete | Operation::Connect) {
        return skip(SkipReason::Operation);
    }
    let (group, kind) = (head.kind.group.as_str(), head.kind.kind.as_str());
    let Some(path) = pod_spec_path(group, kind) else {
        return skip(SkipReason::Kind);
    };
    match (kind, head.sub_resource) {
        (_, None) | ("Pod", Some("ephemeralcontainers")) => {}
        _ => return skip(SkipReason::Subresource),
    }
    let reject = |message| Ok((Action::Reject(message), SpecImages::default()));
    let Some(object) = read(Which::Object, path)? else {
        return reject(format!("the {kind} request has no object to check"));
    };
    let mut spec = match object.spec {
        SpecRead::Missing => {
            return reject(format!("the {kind} has no pod spec at {}", path.join(".")));
        }
        SpecRead::Unreadable(e) => {
            return reject(format!(
                "the pod spec at {} cannot be read: {e}",
                path.join(".")
            ));
        }
        SpecRead::Read(spec) => spec,
    };
    if *head.operation != Operation::Update {
        let uses = std::mem::take(&mut spec.uses);
        return Ok((Action::Check(uses), spec));
    }
    // UPDATE: judge only the references the old object does not hold. Without a readable old
    // pod spec there is nothing to compare with, so every image is checked.
    let old = match read(Which::OldObject, path)? {
        Some(ObjectRead {
            spec: SpecRead::Read(old),
            ..
        }) => old,
        _ => {
            let uses = std::mem::take(&mut spec.uses);
            return Ok((Action::Check(uses), spec));
        }
    };
    let old: HashSet<&str> = old.uses.iter().map(|u| u.image.as_str()).collect();
    let new: Vec<ImageUse> = std::mem::take(&mut spec.uses)
        .into_iter()
        .filter(|u| !old.contains(u.image.as_str()))
        .collect();
    if !new.is_empty() {
        Ok((Action::Check(new), spec))
    } else if object.deleting {
        skip(SkipReason::Deleting)
    } else {
        skip(SkipReason::NoNewImage)
    }
}

/// Every image of the pod spec, once each, with what uses it, in this order: init containers,
/// containers, ephemeral containers, image volumes (`volumes[].image.reference`). A missing
/// reference is the empty string, which the decision denies as invalid.
pub fn images(pod: &PodSpec) -> Vec<ImageUse> {
    let mut uses = Uses::default();
    for c in pod.init_containers.iter().flatten() {
        uses.add(c.image.as_deref(), "init container", &c.name);
    }
    for c in &pod.containers {
        uses.add(c.image.as_deref(), "container", &c.name);
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        uses.add(c.image.as_deref(), "ephemeral container", &c.name);
    }
    for v in pod.volumes.iter().flatten() {
        if let Some(source) = &v.image {
            uses.add(source.reference.as_deref(), "image volume", &v.name);
        }
    }
    uses.list
}

/// [`ImageUse`]s in the order their images first appear, each image once.
#[derive(Default)]
struct Uses {
    list: Vec<ImageUse>,
    /// image → its index in `list`, once the list is long enough for a linear search to cost.
    index: HashMap<String, usize>,
}

impl Uses {
    /// Entries searched linearly before the index is built.
    const LINEAR: usize = 8;

    fn add(&mut self, image: Option<&str>, what: &str, name: &str) {
        let image = image.unwrap_or_default();
        let container = format!("{what} {name:?}");
        let found = if self.list.len() <= Self::LINEAR {
            self.list.iter().position(|u| u.image == image)
        } else {
            if self.index.is_empty() {
                for (i, u) in self.list.iter().enumerate() {
                    self.index.entry(u.image.clone()).or_insert(i);
                }
            }
            self.index.get(image).copied()
        };
        match found {
            Some(i) => self.list[i].containers.push(container),
            None => {
                if !self.index.is_empty() {
                    self.index.insert(image.to_owned(), self.list.len());
                }
                self.list.push(ImageUse {
                    image: image.to_owned(),
                    containers: vec![container],
                });
            }
        }
    }
}

/// The validating route's reader: straight from the bytes into borrowed structs holding only
/// what a decision reads, everything else skipped (`IgnoredAny`, `RawValue`). The request's own
/// small fields are read with their full types (so what they accept is exactly what
/// [`decode_with_object`] accepts); the object and old object are kept as raw JSON until the
/// kind says where their pod spec is, then read at that path only.
///
/// `None` hands the body to [`decode_with_object`]: any error, any rejection, and anything
/// read differently by the two (a repeated key, which the full decoder's JSON maps resolve to
/// the last and serde's structs refuse; a `\u` escape of a UTF-16 surrogate, which skipped
/// strings do not check).
mod fast {
    use std::borrow::Cow;

    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::core::admission::{AdmissionResponse, Operation};
    use kube::core::{GroupVersionKind, GroupVersionResource};
    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::{Action, Head, ObjectRead, Review, SpecImages, SpecRead, Uses, Which, classify};

    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(default, borrow)]
        request: Option<Map<Request<'a>>>,
        #[serde(default)]
        #[allow(dead_code)]
        response: Option<AdmissionResponse>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        #[serde(borrow)]
        uid: Cow<'a, str>,
        kind: GroupVersionKind,
        #[allow(dead_code)]
        resource: GroupVersionResource,
        #[serde(default, borrow)]
        sub_resource: Option<Cow<'a, str>>,
        #[serde(default)]
        #[allow(dead_code)]
        request_kind: Option<GroupVersionKind>,
        #[serde(default)]
        #[allow(dead_code)]
        request_resource: Option<GroupVersionResource>,
        #[serde(default, borrow)]
        #[allow(dead_code)]
        request_sub_resource: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        name: Cow<'a, str>,
        #[serde(default, borrow)]
        namespace: Option<Cow<'a, str>>,
        operation: Operation,
        #[allow(dead_code)]
        user_info: UserInfo,
        #[serde(borrow)]
        object: Option<&'a RawValue>,
        #[serde(borrow)]
        old_object: Option<&'a RawValue>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default, borrow)]
        #[allow(dead_code)]
        options: Option<&'a RawValue>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        #[serde(default)]
        deletion_timestamp: Option<Time>,
    }

    /// A Pod: the pod spec at `spec`.
    #[derive(Deserialize)]
    struct PodObject<'a> {
        #[serde(default)]
        metadata: Map<Metadata>,
        #[serde(default, borrow)]
        spec: Option<Map<PodSpec<'a>>>,
    }

    /// A workload: the pod spec at `spec.template.spec`.
    #[derive(Deserialize)]
    struct TemplateObject<'a> {
        #[serde(default)]
        metadata: Map<Metadata>,
        #[serde(default, borrow)]
        spec: Option<Map<WithTemplate<'a>>>,
    }

    /// A CronJob: the pod spec at `spec.jobTemplate.spec.template.spec`.
    #[derive(Deserialize)]
    struct CronJobObject<'a> {
        #[serde(default)]
        metadata: Map<Metadata>,
        #[serde(default, borrow)]
        spec: Option<Map<WithJobTemplate<'a>>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithJobTemplate<'a> {
        #[serde(default, borrow)]
        job_template: Option<Map<WithSpec<'a>>>,
    }

    #[derive(Deserialize)]
    struct WithSpec<'a> {
        #[serde(default, borrow)]
        spec: Option<Map<WithTemplate<'a>>>,
    }

    #[derive(Deserialize)]
    struct WithTemplate<'a> {
        #[serde(default, borrow)]
        template: Option<Map<Template<'a>>>,
    }

    #[derive(Deserialize)]
    struct Template<'a> {
        #[serde(default, borrow)]
        spec: Option<Map<PodSpec<'a>>>,
    }

    /// The fields of `io.k8s.api.core.v1.PodSpec` a decision reads, with the same types and
    /// the same defaults as k8s-openapi's (`null` is absent; a missing name is empty).
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PodSpec<'a> {
        #[serde(default, borrow)]
        init_containers: Option<Vec<Map<Container<'a>>>>,
        #[serde(default, borrow)]
        containers: Option<Vec<Map<Container<'a>>>>,
        #[serde(default, borrow)]
        ephemeral_containers: Option<Vec<Map<Container<'a>>>>,
        #[serde(default, borrow)]
        volumes: Option<Vec<Map<Volume<'a>>>>,
        #[serde(default, borrow)]
        image_pull_secrets: Option<Vec<Map<Named<'a>>>>,
        #[serde(default, borrow)]
        service_account_name: Option<Cow<'a, str>>,
        /// The deprecated alias of `serviceAccountName`.
        #[serde(default, borrow)]
        service_account: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct Container<'a> {
        #[serde(default, borrow)]
        name: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        image: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct Volume<'a> {
        #[serde(default, borrow)]
        name: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        image: Option<Map<ImageSource<'a>>>,
    }

    #[derive(Deserialize)]
    struct ImageSource<'a> {
        #[serde(default, borrow)]
        reference: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(default, borrow)]
        name: Option<Cow<'a, str>>,
    }

    /// `T` from a JSON object only. serde's derived structs also take an array (the fields by
    /// position), which k8s-openapi's types, and the JSON maps the full decoder indexes, do not.
    #[derive(Default)]
    struct Map<T>(T);

    impl<T> std::ops::Deref for Map<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Map<T> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Object<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
                type Value = T;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                    T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                }
            }
            d.deserialize_map(Object(std::marker::PhantomData)).map(Map)
        }
    }

    /// An optional string field as k8s-openapi reads it: absent or `null` is empty.
    fn text<'b>(s: &'b Option<Cow<'_, str>>) -> &'b str {
        s.as_deref().unwrap_or_default()
    }

    /// Whether the body holds a `\u` escape of a UTF-16 surrogate (`\uD800`–`\uDFFF`).
    fn has_surrogate_escape(body: &[u8]) -> bool {
        body.windows(3)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && matches!(w[2], b'd' | b'D'))
    }

    pub(super) fn decode(body: &[u8]) -> Option<Review> {
        if has_surrogate_escape(body) {
            return None;
        }
        // Checked whole: skipped strings are not checked for UTF-8, parsed ones are.
        let json = std::str::from_utf8(body).ok()?;
        let Map(wire): Map<Body<'_>> = serde_json::from_str(json).ok()?;
        if wire.kind != "AdmissionReview" || !wire.api_version.starts_with("admission.k8s.io/") {
            return None;
        }
        let Map(request) = wire.request?;
        if request.uid.is_empty() {
            return None;
        }
        // Objects are JSON objects, also where no decision reads them.
        let objects = [request.object, request.old_object];
        if objects.iter().flatten().any(|o| !o.get().starts_with('{')) {
            return None;
        }
        let head = Head {
            operation: &request.operation,
            kind: &request.kind,
            sub_resource: request.sub_resource.as_deref(),
        };
        let read = |which: Which, path: &[&str]| {
            let raw = match which {
                Which::Object => request.object,
                Which::OldObject => request.old_object,
            };
            raw.map(|raw| read_object(raw, path.len())).transpose()
        };
        let (action, spec) = classify(&head, read).ok()?;
        if matches!(action, Action::Reject(_)) {
            return None;
        }
        Some(Review {
            uid: request.uid.into_owned(),
            api_version: wire.api_version.into_owned(),
            name: request.name.into_owned(),
            namespace: request.namespace.map(Cow::into_owned),
            operation: request.operation,
            dry_run: request.dry_run,
            pull_secrets: spec.pull_secrets,
            service_account: spec.service_account,
            kind: request.kind,
            object: None,
            action,
        })
    }

    /// Reads an object's pod spec at a path of `depth` keys (1: Pod, 3: a workload's
    /// template, 5: a CronJob's); `Err` when it cannot (the full decoder then decides).
    fn read_object(raw: &RawValue, depth: usize) -> Result<ObjectRead, ()> {
        let json = raw.get();
        let (metadata, spec) = match depth {
            1 => {
                let o: PodObject<'_> = serde_json::from_str(json).map_err(|_| ())?;
                (o.metadata, o.spec.map(|Map(s)| s))
            }
            3 => {
                let o: TemplateObject<'_> = serde_json::from_str(json).map_err(|_| ())?;
                let template = o.spec.and_then(|Map(s)| s.template);
                (
                    o.metadata,
                    template.and_then(|Map(t)| t.spec.map(|Map(s)| s)),
                )
            }
            5 => {
                let o: CronJobObject<'_> = serde_json::from_str(json).map_err(|_| ())?;
                let job = o.spec.and_then(|Map(s)| s.job_template);
                let template = job.and_then(|Map(j)| j.spec).and_then(|Map(s)| s.template);
                (
                    o.metadata,
                    template.and_then(|Map(t)| t.spec.map(|Map(s)| s)),
                )
            }
            _ => return Err(()),
        };
        Ok(ObjectRead {
            deleting: metadata.deletion_timestamp.is_some(),
            spec: match spec {
                None => SpecRead::Missing,
                Some(spec) => SpecRead::Read(images(spec)),
            },
        })
    }

    /// The same list, in the same order, as [`super::images`] gives for the full pod spec.
    fn images(spec: PodSpec<'_>) -> SpecImages {
        let mut uses = Uses::default();
        for c in spec.init_containers.iter().flatten() {
            uses.add(c.image.as_deref(), "init container", text(&c.name));
        }
        for c in spec.containers.iter().flatten() {
            uses.add(c.image.as_deref(), "container", text(&c.name));
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            uses.add(c.image.as_deref(), "ephemeral container", text(&c.name));
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(source) = &v.image {
                uses.add(source.reference.as_deref(), "image volume", text(&v.name));
            }
        }
        SpecImages {
            uses: uses.list,
            pull_secrets: spec
                .image_pull_secrets
                .iter()
                .flatten()
                .map(|s| text(&s.name).to_owned())
                .collect(),
            service_account: [spec.service_account_name, spec.service_account]
                .into_iter()
                .flatten()
                .find(|n| !n.is_empty())
                .map(Cow::into_owned),
        }
    }
}

/// The longest value of one field of an "image admitted" line.
const MAX_AUDIT_FIELD_CHARS: usize = 256;
/// The most policies named on one "image admitted" line.
const MAX_AUDIT_POLICIES: usize = 8;

/// The audit trail of an allowed review: one line per image it verified, at info, with the
/// image, its digest, whether it is trusted, and per policy the authority that verified it and
/// that authority's evidence (or, for an image admitted untrusted under `warn`, `audit`,
/// `onError: allow` or `noMatch`, the reason). Each field is bounded. A denied review admitted
/// nothing and logs nothing here.
pub fn log_admitted(verdict: &Verdict) {
    if !verdict.allowed {
        return;
    }
    for report in &verdict.images {
        let line = AuditLine::of(report);
        tracing::info!(
            image = %line.image,
            digest = %line.digest,
            trust = line.trust,
            policy = %line.policy,
            authority = %line.authority,
            evidence = %line.evidence,
            "image admitted"
        );
    }
}

/// The fields of one "image admitted" line.
struct AuditLine {
    image: String,
    digest: String,
    trust: &'static str,
    policy: String,
    authority: String,
    evidence: String,
}

impl AuditLine {
    fn of(report: &ImageReport) -> AuditLine {
        let image = bounded(report.reference.as_deref().unwrap_or(&report.image));
        let digest = report
            .digest
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |d| d.as_str().to_string());
        let (trust, policies) = match &report.status {
            ImageStatus::InvalidReference { .. } => ("invalid_reference", &[][..]),
            ImageStatus::NoPolicy { .. } => ("no_policy", &[][..]),
            ImageStatus::Checked { policies } => {
                let trust = if report.trusted() {
                    "trusted"
                } else if policies
                    .iter()
                    .any(|p| matches!(p.verdict, PolicyVerdict::Undecided { .. }))
                {
                    "undecided"
                } else {
                    "untrusted"
                };
                (trust, policies.as_slice())
            }
        };
        let (mut names, mut authorities, mut evidence) = (Vec::new(), Vec::new(), Vec::new());
        for p in policies.iter().take(MAX_AUDIT_POLICIES) {
            names.push(p.policy.to_string());
            let verified = match &p.verdict {
                PolicyVerdict::Trusted { authorities } => {
                    authorities.iter().find_map(|a| match &a.result {
                        Outcome::Trusted(e) => Some((a, e)),
                        Outcome::Failed(_) => None,
                    })
                }
                _ => None,
            };
            match verified {
                Some((a, e)) => {
                    authorities.push(format!("{} ({})", a.authority, a.verifier.as_str()));
                    evidence.push(e.summary.clone());
                }
                None => {
                    authorities.push("-".to_string());
                    evidence.push(p.verdict.reason().as_str().to_string());
                }
            }
        }
        if policies.len() > MAX_AUDIT_POLICIES {
            let more = format!("and {} more", policies.len() - MAX_AUDIT_POLICIES);
            names.push(more.clone());
            authorities.push(more.clone());
            evidence.push(more);
        }
        AuditLine {
            image,
            digest,
            trust,
            policy: bounded(&names.join(", ")),
            authority: bounded(&authorities.join(", ")),
            evidence: bounded(&evidence.join("; ")),
        }
    }
}

/// `s` cut to [`MAX_AUDIT_FIELD_CHARS`] characters, with `…` when cut.
fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_AUDIT_FIELD_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The response for a review allowed without checking, or rejected before checking: the
/// response AdmissionReview's JSON.
pub fn respond_action(review: &Review) -> Vec<u8> {
    match &review.action {
        Action::Reject(message) => {
            respond_with(review, false, std::slice::from_ref(message), &[], &NO_AUDIT)
        }
        _ => respond_with(review, true, &[], &[], &NO_AUDIT),
    }
}

static NO_AUDIT: BTreeMap<String, String> = BTreeMap::new();

/// The response of the pinning route: always allowed (the validating route decides), with the
/// patch when it has operations.
pub fn respond_patch(review: &Review, patch: json_patch::Patch) -> Vec<u8> {
    let mut response = Response::allowed(review);
    if !patch.0.is_empty() {
        match serde_json::to_vec(&patch) {
            // The API server's wire form for bytes (Go's []byte) is standard base64.
            Ok(bytes) => {
                use base64::Engine as _;
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                response.patch_type = Some("JSONPatch");
            }
            Err(error) => {
                // Our own operations always serialise; answer unpatched regardless.
                tracing::warn!(%error, "the pinning patch could not be encoded; answering without it");
            }
        }
    }
    encode(review, response)
}

/// The response for a decided review.
pub fn respond(review: &Review, verdict: &Verdict) -> Vec<u8> {
    respond_with(
        review,
        verdict.allowed,
        &verdict.denials,
        &verdict.warnings,
        &verdict.audit_annotations,
    )
}

fn respond_with(
    review: &Review,
    allowed: bool,
    denials: &[String],
    warnings: &[String],
    audit: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut response = Response::allowed(review);
    if !allowed {
        response.allowed = false;
        response.status = Status {
            status: Some("Failure"),
            code: 403,
            message: deny_message(denials),
            reason: "Forbidden",
        };
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response.audit_annotations = audit;
    encode(review, response)
}

/// The response AdmissionReview, written straight from borrowed fields: the `apiVersion` of
/// the request echoed, kind `AdmissionReview`.
#[derive(serde::Serialize)]
struct ResponseReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'static str,
    response: Response<'a>,
}

/// `admission.k8s.io/v1` `AdmissionResponse`, the fields signet sets.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

impl<'a> Response<'a> {
    fn allowed(review: &'a Review) -> Self {
        Response {
            uid: &review.uid,
            allowed: true,
            status: Status::default(),
            patch: None,
            patch_type: None,
            audit_annotations: &NO_AUDIT,
            warnings: None,
        }
    }
}

/// `meta/v1` `Status`; empty (`{}`) when allowed.
#[derive(serde::Serialize, Default)]
struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

fn encode(review: &Review, response: Response<'_>) -> Vec<u8> {
    let out = ResponseReview {
        api_version: &review.api_version,
        kind: "AdmissionReview",
        response,
    };
    // Strings, booleans and string maps: serialising cannot fail. Answer something valid
    // regardless.
    serde_json::to_vec(&out).unwrap_or_else(|e| {
        serde_json::to_vec(&serde_json::json!({"error": e.to_string()})).unwrap_or_default()
    })
}
/// The denials joined with `; `, at most [`MAX_DENY_CHARS`] characters (plus the count of
/// the images left out). The first reason is always shown, cut with `…` when it alone is over
/// the limit: a message that only says "and 1 more image(s)" tells the user nothing.
fn deny_message(denials: &[String]) -> String {
    let more = |n: usize| format!("; and {n} more image(s) not trusted");
    let mut msg = String::new();
    let mut len = 0;
    for (i, d) in denials.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let d_len = d.chars().count();
        if len + sep.len() + d_len > MAX_DENY_CHARS {
            let rest = denials.len() - i;
            if i == 0 {
                let tail = if rest > 1 {
                    more(rest - 1)
                } else {
                    String::new()
                };
                let room = MAX_DENY_CHARS.saturating_sub(tail.chars().count() + 1);
                msg.extend(d.chars().take(room));
                msg.push('…');
                msg.push_str(&tail);
            } else {
                msg.push_str(&more(rest));
            }
            break;
        }
        msg.push_str(sep);
        msg.push_str(d);
        len += sep.len() + d_len;
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::PolicyResult;
    use crate::policy::{Mode, NoMatch, OnError, PolicyName};
    use crate::reason::Reason;
    use crate::verify::{AuthorityOutcome, Evidence, Failure, VerifierKind};
    use std::sync::{Arc, Mutex};

    /// A log buffer the JSON subscriber of `signet serve --log-format json` writes to.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` under the JSON log format and returns the lines it logged, parsed.
    fn json_logs(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Captured::default();
        let writer = buf.clone();
        let subscriber = crate::telemetry::subscriber(
            crate::cli::LogFormat::Json,
            tracing_subscriber::EnvFilter::new("info"),
            move || writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn json_logs_keep_the_span_name_and_the_object_name() {
        let review = decode(&fixture("pod-update-label.json")).unwrap();
        let lines = json_logs(|| {
            let span = review.span();
            let _entered = span.enter();
            tracing::info!(decision = "allowed", "admission review");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let span = &lines[0]["span"];
        assert_eq!(span["name"], "review", "{span}");
        assert_eq!(span["object"], "web", "{span}");
        assert_eq!(span["namespace"], "default", "{span}");
        assert_eq!(
            span["uid"], "37361796-d14d-418b-be2c-c7afa96eae65",
            "{span}"
        );
        assert_eq!(span["operation"], "UPDATE", "{span}");
    }

    fn trusted_report(image: &str, summary: &str) -> ImageReport {
        ImageReport {
            image: image.into(),
            reference: Some(format!("docker.io/library/{image}")),
            digest: Some(crate::image::Digest::sha256_of(image.as_bytes())),
            containers: vec!["container \"web\"".into()],
            status: ImageStatus::Checked {
                policies: vec![PolicyResult {
                    policy: PolicyName::new("prod"),
                    mode: Mode::Enforce,
                    on_error: OnError::Deny,
                    pin_templates: false,
                    verdict: PolicyVerdict::Trusted {
                        authorities: vec![
                            AuthorityOutcome {
                                authority: "old".into(),
                                verifier: VerifierKind::Notation,
                                result: Outcome::Failed(Failure::new(Reason::NoSignature, "none")),
                            },
                            AuthorityOutcome {
                                authority: "ci".into(),
                                verifier: VerifierKind::Cosign,
                                result: Outcome::Trusted(Evidence {
                                    summary: summary.into(),
                                    logged: Vec::new(),
                                    valid_until: None,
                                    expires: None,
                                }),
                            },
                        ],
                    },
                }],
            },
        }
    }

    #[test]
    fn allowed_reviews_log_one_audit_line_per_image() {
        let verdict = Verdict {
            allowed: true,
            images: vec![
                trusted_report("nginx:1.28", "cosign key sha256:abcd"),
                ImageReport {
                    image: "busybox".into(),
                    reference: Some("docker.io/library/busybox:latest".into()),
                    digest: None,
                    containers: vec![],
                    status: ImageStatus::NoPolicy {
                        no_match: NoMatch::Allow,
                    },
                },
                trusted_report("huge:1", &"x".repeat(10_000)),
            ],
            ..Verdict::default()
        };
        let lines = json_logs(|| log_admitted(&verdict));
        assert_eq!(lines.len(), 3, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["message"], "image admitted");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["image"], "docker.io/library/nginx:1.28");
        assert_eq!(
            first["digest"],
            crate::image::Digest::sha256_of(b"nginx:1.28").as_str()
        );
        assert_eq!(first["trust"], "trusted");
        assert_eq!(first["policy"], "prod");
        assert_eq!(first["authority"], "ci (cosign)");
        assert_eq!(first["evidence"], "cosign key sha256:abcd");
        let second = &lines[1];
        assert_eq!(second["trust"], "no_policy");
        assert_eq!(second["digest"], "unknown");
        assert_eq!(second["policy"], "");
        let third = serde_json::to_string(&lines[2]).unwrap();
        assert!(third.len() < 1000, "bounded: {} bytes", third.len());
        // A denied review admitted nothing.
        let denied = Verdict {
            allowed: false,
            ..verdict
        };
        assert!(json_logs(|| log_admitted(&denied)).is_empty());
    }

    #[test]
    fn admitted_but_untrusted_images_say_why() {
        let mut report = trusted_report("nginx:1.28", "unused");
        report.status = ImageStatus::Checked {
            policies: vec![PolicyResult {
                policy: PolicyName::new("soft"),
                mode: Mode::Warn,
                on_error: OnError::Deny,
                pin_templates: false,
                verdict: PolicyVerdict::Untrusted {
                    reason: Reason::NoSignature,
                    authorities: vec![],
                },
            }],
        };
        let verdict = Verdict {
            allowed: true,
            images: vec![report],
            ..Verdict::default()
        };
        let lines = json_logs(|| log_admitted(&verdict));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["trust"], "untrusted");
        assert_eq!(lines[0]["policy"], "soft");
        assert_eq!(lines[0]["authority"], "-");
        assert_eq!(lines[0]["evidence"], "no_signature");
    }

    fn parsed(response: Vec<u8>) -> serde_json::Value {
        serde_json::from_slice(&response).unwrap()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn checked_fixture(name: &str) -> Vec<(String, Vec<String>)> {
        checked(&load(name))
    }

    fn checked(review: &serde_json::Value) -> Vec<(String, Vec<String>)> {
        let name = &review["request"]["uid"];
        match action_of(review) {
            Action::Check(images) => images
                .into_iter()
                .map(|u| (u.image, u.containers))
                .collect(),
            other => panic!("{name}: expected Check, got {other:?}"),
        }
    }

    fn images_of(name: &str) -> Vec<String> {
        checked_fixture(name).into_iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn every_governed_kind_yields_its_images() {
        assert_eq!(images_of("pod-create.json"), ["nginx:1.27"]);
        assert_eq!(
            images_of("deployment-create.json"),
            ["registry.example.com/team/web:1.0"]
        );
        assert_eq!(
            images_of("replicaset-create.json"),
            ["registry.example.com/team/rs-app:1.0"]
        );
        assert_eq!(
            images_of("statefulset-create.json"),
            [
                "registry.example.com/team/sts-init@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "registry.example.com/team/db:15"
            ]
        );
        assert_eq!(
            images_of("daemonset-create.json"),
            ["localhost:5000/infra/agent:2.3"]
        );
        assert_eq!(
            images_of("job-create.json"),
            ["registry.example.com/team/task:0.9"]
        );
        assert_eq!(
            images_of("cronjob-create.json"),
            ["registry.example.com/team/report:2024.1"]
        );
        assert_eq!(
            images_of("replicationcontroller-create.json"),
            ["quay.io/example/legacy:3"]
        );
        assert_eq!(
            images_of("deployment-update-image.json"),
            ["registry.example.com/team/web:1.1"]
        );
    }

    #[test]
    fn init_ephemeral_and_duplicates() {
        let init = images_of("pod-create-init-digest-tag.json");
        assert_eq!(init.len(), 5, "{init:?}");
        assert!(init[0].starts_with("registry.example.com/team/init@sha256:"));
        assert_eq!(init[1], "localhost:5000/x/y:1");
        let dup = checked_fixture("pod-duplicate-images.json");
        assert_eq!(dup.len(), 2, "{dup:?}");
        assert_eq!(dup[0].1, ["container \"a\"", "container \"b\""]);
        let eph = images_of("pod-ephemeral-debug.json");
        assert!(
            eph.iter()
                .any(|i| i == "registry.example.com/debug/tools:1.0"),
            "{eph:?}"
        );
    }

    #[test]
    fn ungoverned_requests_are_skipped() {
        for name in [
            "pod-delete.json",
            "pod-delete-2nd-call.json",
            "deployment-scale-subresource.json",
        ] {
            let r = decode(&fixture(name)).unwrap();
            assert!(
                matches!(r.action, Action::Skip(_)),
                "{name}: {:?}",
                r.action
            );
            let resp = parsed(respond_action(&r));
            assert_eq!(resp["response"]["allowed"], true);
        }
    }

    #[test]
    fn response_echoes_uid_and_api_version_and_denies_with_403() {
        let body = fixture("pod-create.json");
        let r = decode(&body).unwrap();
        let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let verdict = Verdict {
            allowed: false,
            denials: vec!["image x is not trusted".into()],
            ..Verdict::default()
        };
        let resp = parsed(respond(&r, &verdict));
        assert_eq!(resp["apiVersion"], req["apiVersion"]);
        assert_eq!(resp["kind"], "AdmissionReview");
        assert_eq!(resp["response"]["uid"], req["request"]["uid"]);
        assert_eq!(resp["response"]["allowed"], false);
        assert_eq!(resp["response"]["status"]["code"], 403);
        assert_eq!(resp["response"]["status"]["reason"], "Forbidden");
        assert_eq!(
            resp["response"]["status"]["message"],
            "image x is not trusted"
        );
    }

    #[test]
    fn malformed_bodies_are_precise_errors() {
        assert!(matches!(decode(b"{"), Err(DecodeError::Json(_))));
        assert!(matches!(decode(b"[]"), Err(DecodeError::Json(_))));
        let wrong = br#"{"apiVersion":"v1","kind":"Pod"}"#;
        assert!(matches!(decode(wrong), Err(DecodeError::NotAReview { .. })));
        let no_req = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert_eq!(decode(no_req).unwrap_err(), DecodeError::NoRequest);
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("pod-create.json")).unwrap();
        v["request"].as_object_mut().unwrap().remove("uid");
        let err = decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("uid"), "{err}");
    }

    #[test]
    fn null_object_and_bad_spec_are_rejected_not_panics() {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("pod-create.json")).unwrap();
        v["request"]["object"] = serde_json::Value::Null;
        let r = decode(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(
            matches!(r.action, Action::Reject(ref m) if m.contains("no object")),
            "{:?}",
            r.action
        );
        let mut v: serde_json::Value = serde_json::from_slice(&fixture("pod-create.json")).unwrap();
        v["request"]["object"]["spec"]["containers"] = serde_json::json!("nope");
        let r = decode(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(
            matches!(r.action, Action::Reject(ref m) if m.contains("cannot be read")),
            "{:?}",
            r.action
        );
        let resp = parsed(respond_action(&r));
        assert_eq!(resp["response"]["allowed"], false);
        assert_eq!(resp["response"]["status"]["code"], 403);
    }

    fn load(name: &str) -> serde_json::Value {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    fn action_of(review: &serde_json::Value) -> Action {
        decode(&serde_json::to_vec(review).unwrap()).unwrap().action
    }

    fn checked_images(review: &serde_json::Value) -> Vec<String> {
        match action_of(review) {
            Action::Check(images) => images.into_iter().map(|u| u.image).collect(),
            other => panic!("expected Check, got {other:?}"),
        }
    }

    /// Adds an image volume to the pod spec of `request.<which>`.
    fn add_image_volume(review: &mut serde_json::Value, which: &str, name: &str, image: &str) {
        let spec = pod_spec_mut(review, which);
        let volume = serde_json::json!({"name": name, "image": {"reference": image, "pullPolicy": "IfNotPresent"}});
        match spec.get_mut("volumes").and_then(|v| v.as_array_mut()) {
            Some(volumes) => volumes.push(volume),
            None => spec["volumes"] = serde_json::json!([volume]),
        }
    }

    fn pod_spec_mut<'a>(
        review: &'a mut serde_json::Value,
        which: &str,
    ) -> &'a mut serde_json::Value {
        let object = &mut review["request"][which];
        if object["spec"]["template"].is_object() {
            &mut object["spec"]["template"]["spec"]
        } else {
            &mut object["spec"]
        }
    }

    #[test]
    fn label_update_introduces_no_image_and_is_not_checked() {
        let review = load("pod-update-label.json");
        assert_eq!(review["request"]["operation"], "UPDATE");
        assert_eq!(
            review["request"]["object"]["spec"], review["request"]["oldObject"]["spec"],
            "the fixture changes labels only"
        );
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
    }

    #[test]
    fn deployment_replicas_patch_is_not_checked() {
        // `kubectl patch deployment --type=merge -p '{"spec":{"replicas":4}}'`: a full UPDATE
        // of the Deployment (not the scale subresource) with the same template.
        let review = load("deployment-scale.json");
        assert_eq!(review["request"]["object"]["spec"]["replicas"], 4);
        assert_eq!(review["request"]["oldObject"]["spec"]["replicas"], 3);
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
    }

    #[test]
    fn replicaset_scaled_to_zero_by_the_deployment_controller_is_not_checked() {
        // What the deployment controller sends when a rollout retires the old ReplicaSet: a
        // full UPDATE of the ReplicaSet with `spec.replicas` lowered, same template.
        let mut review = load("replicaset-create.json");
        let mut old = review["request"]["object"].clone();
        old["spec"]["replicas"] = serde_json::json!(1);
        review["request"]["operation"] = "UPDATE".into();
        review["request"]["oldObject"] = old;
        review["request"]["object"]["spec"]["replicas"] = serde_json::json!(0);
        review["request"]["userInfo"]["username"] =
            "system:serviceaccount:kube-system:deployment-controller".into();
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
    }

    #[test]
    fn rollout_to_a_new_image_checks_the_new_image_only() {
        let review = load("deployment-update-image.json");
        assert_eq!(
            checked_images(&review),
            ["registry.example.com/team/web:1.1"]
        );
        // A second container whose image was already in the old template is not re-checked.
        let mut review = load("deployment-update-image.json");
        let sidecar =
            serde_json::json!({"name": "side", "image": "registry.example.com/team/side:1"});
        for which in ["object", "oldObject"] {
            pod_spec_mut(&mut review, which)["containers"]
                .as_array_mut()
                .unwrap()
                .push(sidecar.clone());
        }
        assert_eq!(
            checked_images(&review),
            ["registry.example.com/team/web:1.1"]
        );
    }

    #[test]
    fn comparison_is_by_the_reference_string_as_written() {
        // pod-update-image: nginx:1.27 -> nginx:1.28 is a new image.
        assert_eq!(
            checked_images(&load("pod-update-image.json")),
            ["nginx:1.28"]
        );
        // The same image spelled differently is a new reference and is checked.
        let mut review = load("pod-update-label.json");
        review["request"]["object"]["spec"]["containers"][0]["image"] =
            "docker.io/library/nginx:1.28".into();
        assert_eq!(checked_images(&review), ["docker.io/library/nginx:1.28"]);
        // A renamed container keeping its image brings no new image.
        let mut review = load("pod-update-label.json");
        review["request"]["object"]["spec"]["containers"][0]["name"] = "renamed".into();
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
        // An image moved from a container to an init container is not new either.
        let mut review = load("deployment-update-image.json");
        let old_image = review["request"]["oldObject"]["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .clone();
        let init = serde_json::json!([{"name": "init", "image": old_image}]);
        review["request"]["object"]["spec"]["template"]["spec"]["initContainers"] = init;
        assert_eq!(
            checked_images(&review),
            ["registry.example.com/team/web:1.1"]
        );
    }

    #[test]
    fn finalizer_removal_on_a_deleting_pod_is_not_checked() {
        let mut review = load("pod-update-label.json");
        let stamp = serde_json::json!("2026-01-01T00:00:00Z");
        for which in ["object", "oldObject"] {
            review["request"][which]["metadata"]["deletionTimestamp"] = stamp.clone();
            review["request"][which]["metadata"]["deletionGracePeriodSeconds"] = 0.into();
        }
        review["request"]["oldObject"]["metadata"]["finalizers"] =
            serde_json::json!(["example.com/cleanup"]);
        assert_eq!(action_of(&review), Action::Skip(SkipReason::Deleting));
        // Deleting does not exempt an image that the same UPDATE introduces.
        review["request"]["object"]["spec"]["containers"][0]["image"] = "evil.example/x:1".into();
        assert_eq!(checked_images(&review), ["evil.example/x:1"]);
    }

    #[test]
    fn update_without_old_object_checks_every_image() {
        let mut review = load("pod-update-label.json");
        review["request"]
            .as_object_mut()
            .unwrap()
            .remove("oldObject");
        assert_eq!(checked_images(&review), ["nginx:1.28"]);
        let mut review = load("pod-update-label.json");
        review["request"]["oldObject"] = serde_json::Value::Null;
        assert_eq!(checked_images(&review), ["nginx:1.28"]);
        // An old object whose pod spec cannot be read is no evidence either.
        let mut review = load("pod-update-label.json");
        review["request"]["oldObject"]["spec"]["containers"] = serde_json::json!("nope");
        assert_eq!(checked_images(&review), ["nginx:1.28"]);
    }

    #[test]
    fn kubectl_debug_checks_only_the_new_ephemeral_image() {
        let review = load("pod-ephemeral-debug.json");
        assert_eq!(review["request"]["subResource"], "ephemeralcontainers");
        assert_eq!(
            checked_images(&review),
            ["registry.example.com/debug/tools:1.0"]
        );
        match action_of(&review) {
            Action::Check(images) => {
                assert_eq!(images[0].containers, ["ephemeral container \"debugger\""])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn creates_still_check_every_image() {
        // Pods made by controllers arrive as CREATEs, whatever the state of their owner.
        let mut review = load("pod-create.json");
        review["request"]["object"]["metadata"]["deletionTimestamp"] =
            "2026-01-01T00:00:00Z".into();
        assert_eq!(checked_images(&review), ["nginx:1.27"]);
    }

    #[test]
    fn image_volumes_are_checked_in_pods_and_templates() {
        let mut review = load("pod-create.json");
        add_image_volume(
            &mut review,
            "object",
            "data",
            "registry.example.com/data/model:1",
        );
        let images = checked(&review);
        assert_eq!(
            images,
            [
                (
                    "nginx:1.27".to_string(),
                    vec!["container \"web\"".to_string()]
                ),
                (
                    "registry.example.com/data/model:1".to_string(),
                    vec!["image volume \"data\"".to_string()]
                ),
            ]
        );
        for name in [
            "deployment-create.json",
            "replicaset-create.json",
            "statefulset-create.json",
            "daemonset-create.json",
            "job-create.json",
            "replicationcontroller-create.json",
        ] {
            let mut review = load(name);
            add_image_volume(&mut review, "object", "data", "evil.example/vol:1");
            assert!(
                checked_images(&review).contains(&"evil.example/vol:1".to_string()),
                "{name}"
            );
        }
        let mut review = load("cronjob-create.json");
        review["request"]["object"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"] =
            serde_json::json!([{"name": "data", "image": {"reference": "evil.example/vol:1"}}]);
        assert!(checked_images(&review).contains(&"evil.example/vol:1".to_string()));
        // An image volume with no reference is checked as the empty reference (and denied).
        let mut review = load("pod-create.json");
        review["request"]["object"]["spec"]["volumes"] =
            serde_json::json!([{"name": "data", "image": {}}]);
        assert!(checked_images(&review).contains(&String::new()));
    }

    #[test]
    fn image_volumes_take_part_in_the_update_comparison() {
        // An UPDATE that adds an image volume to a template checks that image.
        let mut review = load("deployment-scale.json");
        add_image_volume(&mut review, "object", "data", "evil.example/vol:1");
        assert_eq!(checked_images(&review), ["evil.example/vol:1"]);
        // One that keeps it does not.
        add_image_volume(&mut review, "oldObject", "data", "evil.example/vol:1");
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
        // A container switching to the image of an old volume brings no new image.
        pod_spec_mut(&mut review, "object")["containers"][0]["image"] = "evil.example/vol:1".into();
        assert_eq!(action_of(&review), Action::Skip(SkipReason::NoNewImage));
    }

    #[test]
    fn skip_reasons_are_the_metric_labels() {
        let labels: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, crate::metrics::SKIP_REASONS);
    }

    #[test]
    fn deny_message_is_bounded() {
        let many: Vec<String> = (0..100)
            .map(|i| format!("image {i} {}", "x".repeat(100)))
            .collect();
        let m = deny_message(&many);
        assert!(m.len() < MAX_DENY_CHARS + 100);
        assert!(m.ends_with("more image(s) not trusted"));
    }

    /// The pinning response for every captured review, as the API server receives it:
    /// allowed, `patchType: JSONPatch`, the patch in standard base64, applying to the object.
    #[test]
    fn pinning_responses_are_base64_json_patches_that_apply_to_every_fixture() {
        use base64::Engine as _;
        let dir = format!("{}/tests/fixtures/admission", env!("CARGO_MANIFEST_DIR"));
        let digest: crate::image::Digest =
            "sha256:2222222222222222222222222222222222222222222222222222222222222222"
                .parse()
                .unwrap();
        let mut patched = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".json") {
                continue;
            }
            let body = fixture(&name);
            let review = decode_with_object(&body).unwrap();
            let Action::Check(uses) = &review.action else {
                continue;
            };
            let pins = uses
                .iter()
                .filter(|u| !u.image.contains('@'))
                .map(|u| (u.image.clone(), digest.clone()))
                .collect();
            let patch = review.pin_patch(&pins);
            let want = patch.0.len();
            let out = parsed(respond_patch(&review, patch));
            let r = &out["response"];
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(r["allowed"], true, "{name}");
            assert_eq!(r["uid"], sent["request"]["uid"], "{name}");
            assert_eq!(out["apiVersion"], sent["apiVersion"], "{name}");
            if want == 0 {
                assert!(r.get("patch").is_none(), "{name}: {out}");
                continue;
            }
            assert_eq!(r["patchType"], "JSONPatch", "{name}");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(r["patch"].as_str().unwrap())
                .unwrap();
            let ops: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(ops.0.len(), want, "{name}");
            let mut object = sent["request"]["object"].clone();
            json_patch::patch(&mut object, &ops).unwrap_or_else(|e| panic!("{name}: {e}"));
            patched += 1;
        }
        assert!(patched >= 8, "only {patched} fixtures produced a patch");
    }

    #[test]
    fn deny_message_shows_the_first_reason_even_when_it_is_over_the_limit() {
        let first = format!(
            "image a.io/x is not trusted: {}",
            "y".repeat(2 * MAX_DENY_CHARS)
        );
        let m = deny_message(&[first.clone(), "image b.io/z is not trusted".into()]);
        assert!(m.starts_with("image a.io/x is not trusted: yyy"), "{m:.80}");
        assert!(m.contains('…'), "a cut reason is marked");
        assert!(m.ends_with("; and 1 more image(s) not trusted"), "{m}");
        assert!(m.chars().count() <= MAX_DENY_CHARS + 100);
        let alone = deny_message(&[first]);
        assert!(alone.starts_with("image a.io/x") && alone.ends_with('…'));
        assert!(alone.chars().count() <= MAX_DENY_CHARS);
    }
}

/// The validating route's fast reader against the full decoder: the same review, the same
/// action, the same errors, on every captured body and on bodies derived from them.
#[cfg(test)]
mod equivalence {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let dir = format!("{}/tests/fixtures/admission", env!("CARGO_MANIFEST_DIR"));
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        assert!(out.len() >= 20, "{} fixtures", out.len());
        out
    }

    /// The property: whatever the fast reader answers is what the full decoder answers (the
    /// object aside), and [`decode`] fails exactly as the full decoder does.
    fn agree(body: &[u8]) -> Result<Option<Review>, String> {
        agree_unless_unread(body, false)
    }

    /// [`agree`], except that with `unread_may_be_malformed` the full decoder may refuse a body
    /// the fast reader answers (the bytes were changed where no decision reads them).
    fn agree_unless_unread(
        body: &[u8],
        unread_may_be_malformed: bool,
    ) -> Result<Option<Review>, String> {
        let full = decode_with_object(body).map(Review::without_object);
        let fast = super::fast::decode(body);
        if let Some(fast) = &fast {
            match &full {
                Ok(full) if full == fast => {}
                Err(_) if unread_may_be_malformed => return Ok(Some(fast.clone())),
                other => return Err(format!("fast {fast:?}\nfull {other:?}")),
            }
        }
        let decoded = decode(body);
        if decoded != full {
            return Err(format!("decode {decoded:?}\nfull {full:?}"));
        }
        Ok(fast)
    }

    #[test]
    fn the_fast_reader_answers_every_captured_review_as_the_full_decoder_does() {
        for (name, body) in fixtures() {
            let fast = agree(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Not by handing every body over: the fast reader decides each one itself.
            let fast = fast.unwrap_or_else(|| panic!("{name}: the fast reader gave up"));
            assert!(fast.object.is_none(), "{name}");
            // Pretty-printed as captured, and compact as a Go client writes it.
            let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap());
            let compact = compact.unwrap();
            assert!(agree(&compact).unwrap().is_some(), "{name} (compact)");
        }
    }

    /// What kube's own `AdmissionResponse` serialises for the same answer: the response is
    /// written without it now, and must not change.
    fn kube_response(body: &[u8], allowed: bool, message: &str, verdict: &Verdict) -> Value {
        use kube::core::admission::AdmissionResponse;
        let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).unwrap();
        let request: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        let mut resp = AdmissionResponse::from(&request);
        if !allowed {
            resp = resp.deny(message);
            resp.result.code = 403;
            resp.result.reason = "Forbidden".into();
            resp.result.status = Some(kube::core::response::StatusSummary::Failure);
        }
        if !verdict.warnings.is_empty() {
            resp.warnings = Some(verdict.warnings.clone());
        }
        resp.audit_annotations = verdict
            .audit_annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::to_value(resp.into_review()).unwrap()
    }

    #[test]
    fn responses_are_what_kube_serialises() {
        let verdicts = [
            Verdict {
                allowed: true,
                ..Verdict::default()
            },
            Verdict {
                allowed: true,
                warnings: vec!["w \"1\"".into(), "w2 é".into()],
                audit_annotations: [("signet.dev/x".to_string(), "y".to_string())].into(),
                ..Verdict::default()
            },
            Verdict {
                allowed: false,
                denials: vec!["image a is not trusted".into(), "image b\nis not".into()],
                ..Verdict::default()
            },
        ];
        for (name, body) in fixtures() {
            let review = decode(&body).unwrap();
            for v in &verdicts {
                let message = deny_message(&v.denials);
                let ours: Value = serde_json::from_slice(&respond(&review, v)).unwrap();
                assert_eq!(ours, kube_response(&body, v.allowed, &message, v), "{name}");
            }
            let ours: Value = serde_json::from_slice(&respond_action(&review)).unwrap();
            let (allowed, message) = match &review.action {
                Action::Reject(m) => (false, deny_message(std::slice::from_ref(m))),
                _ => (true, String::new()),
            };
            let none = Verdict::default();
            assert_eq!(
                ours,
                kube_response(&body, allowed, &message, &none),
                "{name}"
            );
        }
    }

    #[test]
    fn pull_secrets_and_service_account_are_read_by_both() {
        let mut v: Value = serde_json::from_slice(&fixture("deployment-create.json")).unwrap();
        let spec = &mut v["request"]["object"]["spec"]["template"]["spec"];
        spec["imagePullSecrets"] = json!([{"name": "regcred"}, {}, {"name": "other"}]);
        spec["serviceAccountName"] = json!("builder");
        let body = serde_json::to_vec(&v).unwrap();
        let fast = agree(&body).unwrap().expect("fast");
        assert_eq!(fast.pull_secret_names(), ["regcred", "", "other"]);
        assert_eq!(fast.service_account_name(), Some("builder"));
        // A review that checks nothing has none.
        let skipped = decode(&fixture("deployment-scale.json")).unwrap();
        assert!(skipped.pull_secret_names().is_empty());
    }

    #[test]
    fn escapes_repeated_keys_and_surrogates_read_the_same() {
        let body = String::from_utf8(fixture("pod-create.json")).unwrap();
        // An escaped image reference is read unescaped by both.
        let escaped = body.replacen("\"nginx:1.27\"", "\"\\u006eginx:1.27\\n\"", 1);
        let review = agree(escaped.as_bytes()).unwrap().expect("fast");
        assert_eq!(
            review.action,
            Action::Check(vec![ImageUse {
                image: "nginx:1.27\n".into(),
                containers: vec!["container \"web\"".into()],
            }])
        );
        // A repeated key: JSON maps keep the last, serde's structs refuse; the full decoder
        // decides, and the image checked is the last one written.
        let twice = body.replacen(
            "\"image\": \"nginx:1.27\"",
            "\"image\": \"a:1\", \"image\": \"nginx:1.27\"",
            1,
        );
        assert_ne!(twice, body);
        assert!(agree(twice.as_bytes()).unwrap().is_none());
        assert!(
            matches!(decode(twice.as_bytes()).unwrap().action, Action::Check(ref u) if u[0].image == "nginx:1.27")
        );
        // A lone surrogate anywhere is refused by the full decoder, also where only skipped.
        let lone = body.replacen("\"run\": \"web\"", "\"run\": \"\\ud800\"", 1);
        assert_ne!(lone, body);
        assert!(agree(lone.as_bytes()).unwrap().is_none());
        assert!(matches!(decode(lone.as_bytes()), Err(DecodeError::Json(_))));
        // Invalid UTF-8 in a field nobody reads, likewise.
        let mut bad = body
            .replacen("\"run\": \"web\"", "\"run\": \"w?b\"", 1)
            .into_bytes();
        let at = bad.windows(3).position(|w| w == b"w?b").unwrap() + 1;
        bad[at] = 0xff;
        assert!(agree(&bad).unwrap().is_none());
        assert!(matches!(decode(&bad), Err(DecodeError::Json(_))));
    }

    /// serde_json skips a value without recursing, so nesting in a field no decision reads
    /// cannot exhaust the stack however deep (the body limit allows millions of levels): the
    /// fast reader answers such a body, as the full decoder does for a key it ignores too
    /// (it refuses one it reads into a type, like `labels`, at 128 levels).
    #[test]
    fn deep_nesting_where_no_decision_reads_is_skipped_without_recursion() {
        let body = String::from_utf8(fixture("pod-create.json")).unwrap();
        let deep = format!("{}1{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        for at in ["\"run\": \"web\"", "\"dryRun\": false"] {
            let nested = body.replacen(at, &format!("{at}, \"x\": {deep}"), 1);
            assert_ne!(nested, body, "{at}");
            assert!(matches!(
                decode(nested.as_bytes()).unwrap().action,
                Action::Check(_)
            ));
            agree_unless_unread(nested.as_bytes(), true).unwrap();
        }
        // Where a decision reads, the limit holds: an image nested 200 deep is a 400.
        let nested = body.replacen(
            "\"nginx:1.27\"",
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            1,
        );
        assert!(matches!(
            decode(nested.as_bytes()),
            Err(DecodeError::Json(_))
        ));
    }

    /// What the fast reader does not check, and the full decoder does: the types of fields no
    /// decision reads. The fast reader answers from what it read; the full decoder refuses.
    #[test]
    fn malformed_fields_no_decision_reads_are_not_checked() {
        let mut v: Value = serde_json::from_slice(&fixture("pod-create.json")).unwrap();
        v["request"]["object"]["metadata"]["labels"] = json!(5);
        v["request"]["object"]["spec"]["containers"][0]["ports"] = json!("eighty");
        let body = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            decode_with_object(&body),
            Err(DecodeError::Json(_))
        ));
        let fast = decode(&body).unwrap();
        assert_eq!(
            fast.action,
            Action::Check(vec![ImageUse {
                image: "nginx:1.27".into(),
                containers: vec!["container \"web\"".into()],
            }])
        );
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A JSON value of any shape a field could be given.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z:./@0-9]{0,12}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
            Just(json!([])),
            Just(json!({})),
            Just(json!([{"name": "x", "image": "y:1"}])),
        ]
    }

    /// Where in a review an edit lands: the request's own fields, and every field a decision
    /// reads in the object and the old object.
    fn any_pointer() -> impl Strategy<Value = String> {
        let request = prop::sample::select(vec![
            "",
            "/kind",
            "/apiVersion",
            "/request",
            "/request/uid",
            "/request/kind",
            "/request/kind/kind",
            "/request/kind/group",
            "/request/resource",
            "/request/subResource",
            "/request/name",
            "/request/namespace",
            "/request/operation",
            "/request/userInfo",
            "/request/dryRun",
            "/request/options",
            "/request/object",
            "/request/oldObject",
        ]);
        let object = prop::sample::select(vec!["object", "oldObject"]);
        let spec = prop::sample::select(vec![
            "/spec",
            "/spec/template",
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
            "/metadata",
            "/metadata/deletionTimestamp",
        ]);
        let field = prop::sample::select(vec![
            "",
            "/containers",
            "/containers/0",
            "/containers/0/image",
            "/containers/0/name",
            "/containers/1",
            "/initContainers",
            "/initContainers/0/image",
            "/ephemeralContainers",
            "/ephemeralContainers/0/image",
            "/volumes",
            "/volumes/0/image",
            "/volumes/0/image/reference",
            "/volumes/0/name",
            "/imagePullSecrets",
            "/imagePullSecrets/0/name",
            "/serviceAccountName",
        ]);
        prop_oneof![
            request.prop_map(str::to_owned),
            (object, spec, field).prop_map(|(o, s, f)| format!("/request/{o}{s}{f}")),
        ]
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Set(String, Value),
        Remove(String),
        Operation(&'static str),
        Kind(&'static str, &'static str),
        SubResource(Option<&'static str>),
        DeletionTimestamp(&'static str),
    }

    fn any_edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any_pointer(), any_value()).prop_map(|(p, v)| Edit::Set(p, v)),
            any_pointer().prop_map(Edit::Remove),
            prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"])
                .prop_map(Edit::Operation),
            prop::sample::select(vec![
                ("", "Pod"),
                ("apps", "Deployment"),
                ("batch", "CronJob"),
                ("batch", "Job"),
                ("", "ReplicationController"),
                ("apps", "Pod"),
                ("", "ConfigMap"),
            ])
            .prop_map(|(g, k)| Edit::Kind(g, k)),
            prop::option::of(prop::sample::select(vec![
                "ephemeralcontainers",
                "status",
                ""
            ]))
            .prop_map(Edit::SubResource),
            prop::sample::select(vec!["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+01:00"])
                .prop_map(Edit::DeletionTimestamp),
        ]
    }

    /// Sets (creating objects on the way when the parent is an object) or removes at `pointer`.
    fn apply(review: &mut Value, edit: &Edit) {
        match edit {
            Edit::Set(pointer, value) => {
                // Metadata only gets a valid deletionTimestamp: the rest is not read.
                if pointer.is_empty() || pointer.contains("/metadata") {
                    return;
                }
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                match review.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.insert(key.to_owned(), value.clone());
                    }
                    Some(Value::Array(items)) => {
                        if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i))
                        {
                            *slot = value.clone();
                        }
                    }
                    _ => {}
                }
            }
            Edit::Remove(pointer) => {
                let Some((parent, key)) = pointer.rsplit_once('/') else {
                    return;
                };
                match review.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(key);
                    }
                    Some(Value::Array(items)) => {
                        if let Some(i) = key.parse::<usize>().ok().filter(|i| *i < items.len()) {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Edit::Operation(op) => insert(review, "/request", "operation", json!(op)),
            Edit::Kind(group, kind) => {
                let gvk = json!({"group": group, "version": "v1", "kind": kind});
                insert(review, "/request", "kind", gvk)
            }
            Edit::SubResource(Some(sub)) => insert(review, "/request", "subResource", json!(sub)),
            Edit::SubResource(None) => apply(review, &Edit::Remove("/request/subResource".into())),
            Edit::DeletionTimestamp(t) => insert(
                review,
                "/request/object/metadata",
                "deletionTimestamp",
                json!(t),
            ),
        }
    }

    /// Sets `key` in the object at `parent`, if there is one.
    fn insert(review: &mut Value, parent: &str, key: &str, value: Value) {
        if let Some(Value::Object(map)) = review.pointer_mut(parent) {
            map.insert(key.to_owned(), value);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_fast_reader_agrees_with_the_full_decoder_on_edited_reviews(
            which in 0usize..64,
            edits in prop::collection::vec(any_edit(), 0..6),
            pretty in any::<bool>(),
        ) {
            let all = fixtures();
            let (name, body) = &all[which % all.len()];
            let mut review: Value = serde_json::from_slice(body).unwrap();
            for e in &edits {
                apply(&mut review, e);
            }
            let body = if pretty {
                serde_json::to_vec_pretty(&review).unwrap()
            } else {
                serde_json::to_vec(&review).unwrap()
            };
            if let Err(e) = agree(&body) {
                panic!("{name} with {edits:?}:\n{e}");
            }
        }

        #[test]
        fn the_fast_reader_agrees_with_the_full_decoder_on_cut_and_spliced_bytes(
            which in 0usize..64,
            cut in any::<prop::sample::Index>(),
            len in 0usize..8,
            insert in prop::sample::select(vec!["", "\"", "{", "}", "[", ",", "null", "\\", "\\u0041", "1e999"]),
        ) {
            let all = fixtures();
            let (name, body) = &all[which % all.len()];
            let at = cut.index(body.len());
            let end = (at + len).min(body.len());
            let mut spliced = body[..at].to_vec();
            spliced.extend_from_slice(insert.as_bytes());
            spliced.extend_from_slice(&body[end..]);
            if let Err(e) = agree_unless_unread(&spliced, true) {
                panic!("{name} at {at}..{end} with {insert:?}:\n{e}");
            }
        }
    }
}
