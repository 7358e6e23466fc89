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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::PodSpec;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind};
use serde::Deserialize;

pub mod manifest;
pub mod pin;
mod reader;

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
    /// The object under review, for the pinning patch. Boxed: the validating route never
    /// keeps it, and a review is moved whole through the decode and the answer.
    object: Option<Box<DynamicObject>>,
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
/// needs (the private `fast` reader); the object is not kept, so [`Review::pin_patch`] is empty.
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
        // An old object only lends its images to the UPDATE comparison: read as the fast
        // reader reads it, so that a field no decision reads cannot make it "unreadable".
        let read_spec = match which {
            Which::Object => typed_spec,
            Which::OldObject => fast::spec_images,
        };
        Ok::<_, std::convert::Infallible>(o.map(|o| ObjectRead::of_dynamic(o, path, read_spec)))
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
        object: object.map(Box::new),
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
    /// The pod spec at `path` of `object`, read by `read_spec` (absent or null: missing).
    fn of_dynamic(
        object: &DynamicObject,
        path: &[&str],
        read_spec: fn(&serde_json::Value) -> Result<SpecImages, String>,
    ) -> ObjectRead {
        let mut spec = &object.data;
        for key in path {
            spec = &spec[*key];
        }
        let spec = if spec.is_null() {
            SpecRead::Missing
        } else {
            match read_spec(spec) {
                Ok(read) => SpecRead::Read(read),
                Err(e) => SpecRead::Unreadable(e),
            }
        };
        ObjectRead {
            deleting: object.metadata.deletion_timestamp.is_some(),
            spec,
        }
    }
}

/// An object's pod spec with all of its Kubernetes types (what the pinning patch is made from).
fn typed_spec(spec: &serde_json::Value) -> Result<SpecImages, String> {
    let pod = PodSpec::deserialize(spec).map_err(|e| e.to_string())?;
    Ok(SpecImages {
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
    })
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

/// `container "web"`: what uses an image and its name as `{:?}` writes it. A name `{:?}` would
/// not change (every name the API server admits) is written as it is.
fn container_label(what: &str, name: &str) -> String {
    let mut label = String::with_capacity(what.len() + name.len() + 3);
    label.push_str(what);
    label.push(' ');
    if crate::telemetry::debug_quotes_as_is(name) {
        label.push('"');
        label.push_str(name);
        label.push('"');
    } else {
        let _ = write!(label, "{name:?}");
    }
    label
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
        let container = container_label(what, name);
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
/// [`decode_with_object`] accepts); the object and old object are read in the same single pass,
/// at every place a governed kind keeps its pod spec (the kind may follow them in the body),
/// and the kind then picks its own. A type error at a place the kind does not use only hands
/// the body to the full decoder.
///
/// `None` hands the body to [`decode_with_object`]: any error, any rejection, and anything
/// read differently by the two (a repeated key, which the full decoder's JSON maps resolve to
/// the last and serde's structs refuse; a `\u` escape of a UTF-16 surrogate, which serde_json
/// pairs where it reads and does not check where it skips).
///
/// What this reader skips is checked to be JSON, not to have its Kubernetes type: where such
/// a field of the object has the wrong type, the full decoder refuses the object (the review
/// is rejected) while this reader answers. An UPDATE's old object only lends its images to the
/// comparison, and the full decoder reads it the way this reader does (`spec_images`), so
/// the two agree on it. The API server sends objects its own validation typed, so only a
/// forged body can carry such a field.
mod fast {
    use std::borrow::Cow;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::core::GroupVersionKind;
    use kube::core::admission::{AdmissionResponse, Operation};
    use serde::Deserialize;
    use serde::de::IgnoredAny;

    use super::{Action, Head, ObjectRead, Review, SpecImages, SpecRead, Uses, Which, classify};

    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        // Boxed: the request, and the objects in it, are large, and each layer of serde's
        // visitors would otherwise copy them on the way out.
        #[serde(default, borrow)]
        request: Option<Box<Map<Request<'a>>>>,
        #[serde(default)]
        #[allow(dead_code)]
        response: Option<Box<AdmissionResponse>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        #[serde(borrow)]
        uid: Cow<'a, str>,
        kind: GroupVersionKind,
        #[allow(dead_code)]
        resource: Map<Resource<'a>>,
        #[serde(default, borrow)]
        sub_resource: Option<Str<'a>>,
        #[serde(default, borrow)]
        #[allow(dead_code)]
        request_kind: Option<Map<Kind<'a>>>,
        #[serde(default, borrow)]
        #[allow(dead_code)]
        request_resource: Option<Map<Resource<'a>>>,
        #[serde(default, borrow)]
        #[allow(dead_code)]
        request_sub_resource: Option<Str<'a>>,
        #[serde(default, borrow)]
        name: Cow<'a, str>,
        #[serde(default, borrow)]
        namespace: Option<Str<'a>>,
        operation: Operation,
        #[allow(dead_code)]
        user_info: Map<UserInfo>,
        #[serde(default, borrow)]
        object: Option<Box<Map<PodObject<'a>>>>,
        #[serde(default, borrow)]
        old_object: Option<Box<Map<PodObject<'a>>>>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        #[allow(dead_code)]
        options: Option<IgnoredAny>,
    }

    // The request's fields no decision reads, checked to have their Kubernetes types (as
    // kube's and k8s-openapi's types read them) without being copied out of the body.

    /// `GroupVersionKind`: three strings, none optional.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Kind<'a> {
        #[serde(borrow)]
        group: Cow<'a, str>,
        #[serde(borrow)]
        version: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
    }

    /// `GroupVersionResource`: three strings, and an optional `api_version`.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Resource<'a> {
        #[serde(borrow)]
        group: Cow<'a, str>,
        #[serde(borrow)]
        version: Cow<'a, str>,
        #[serde(borrow)]
        resource: Cow<'a, str>,
        #[serde(default, borrow)]
        api_version: Cow<'a, str>,
    }

    /// `io.k8s.api.authentication.v1.UserInfo`: every field optional, `null` as absent.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct UserInfo {
        #[serde(default)]
        username: Option<Text>,
        #[serde(default)]
        uid: Option<Text>,
        #[serde(default)]
        groups: Option<Texts>,
        #[serde(default)]
        extra: Option<Extra>,
    }

    /// A JSON string, checked and not kept.
    struct Text;

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl serde::de::Visitor<'_> for Visit {
                type Value = Text;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Text, E> {
                    Ok(Text)
                }
            }
            d.deserialize_str(Visit)
        }
    }

    /// A JSON array of strings, checked and not kept.
    struct Texts;

    impl<'de> Deserialize<'de> for Texts {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Texts;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a list of strings")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut s: A,
                ) -> Result<Texts, A::Error> {
                    while s.next_element::<Text>()?.is_some() {}
                    Ok(Texts)
                }
            }
            d.deserialize_seq(Visit)
        }
    }

    /// `UserInfo.extra`: a JSON object of lists of strings, checked and not kept.
    struct Extra;

    impl<'de> Deserialize<'de> for Extra {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Extra;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map of lists of strings")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Extra, A::Error> {
                    while m.next_entry::<Text, Texts>()?.is_some() {}
                    Ok(Extra)
                }
            }
            d.deserialize_map(Visit)
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        #[serde(default)]
        deletion_timestamp: Option<Time>,
    }

    /// The object of any governed kind, read in the same pass as the rest of the review: the
    /// kind may come after it in the body, so `spec` holds every place a governed kind keeps
    /// its pod spec (a Pod's `spec`, a workload's `spec.template.spec`, a CronJob's
    /// `spec.jobTemplate.spec.template.spec`) and [`read_object`] picks the kind's own.
    #[derive(Deserialize)]
    struct PodObject<'a> {
        #[serde(default)]
        metadata: Map<Metadata>,
        #[serde(default, borrow)]
        spec: Option<Map<PodSpec<'a>>>,
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
        service_account_name: Option<Str<'a>>,
        /// The deprecated alias of `serviceAccountName`.
        #[serde(default, borrow)]
        service_account: Option<Str<'a>>,
        /// At an object's `spec` only: a workload's pod template.
        #[serde(default, borrow)]
        template: Option<Box<Map<Template<'a>>>>,
        /// At an object's `spec` only: a CronJob's job template.
        #[serde(default, borrow)]
        job_template: Option<Box<Map<WithSpec<'a>>>>,
    }

    #[derive(Deserialize)]
    struct Container<'a> {
        #[serde(default, borrow)]
        name: Option<Str<'a>>,
        #[serde(default, borrow)]
        image: Option<Str<'a>>,
    }

    #[derive(Deserialize)]
    struct Volume<'a> {
        #[serde(default, borrow)]
        name: Option<Str<'a>>,
        #[serde(default, borrow)]
        image: Option<Map<ImageSource<'a>>>,
    }

    #[derive(Deserialize)]
    struct ImageSource<'a> {
        #[serde(default, borrow)]
        reference: Option<Str<'a>>,
    }

    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(default, borrow)]
        name: Option<Str<'a>>,
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

    /// A string, borrowed from the body unless it has escapes. (serde borrows a `Cow` field,
    /// but never an optional one.)
    struct Str<'a>(Cow<'a, str>);

    impl std::ops::Deref for Str<'_> {
        type Target = str;
        fn deref(&self) -> &str {
            &self.0
        }
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Str<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: serde::de::Error>(
                    self,
                    s: &'de str,
                ) -> Result<Str<'de>, E> {
                    Ok(Str(Cow::Borrowed(s)))
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Str<'de>, E> {
                    Ok(Str(Cow::Owned(s.to_owned())))
                }
            }
            d.deserialize_str(Visit)
        }
    }

    /// An optional string field as k8s-openapi reads it: absent or `null` is empty.
    fn text<'b>(s: &'b Option<Str<'_>>) -> &'b str {
        s.as_deref().unwrap_or_default()
    }

    pub(super) fn decode(body: &[u8]) -> Option<Review> {
        // Checked whole, once: the reader reads and skips strings as the bytes they are. Where
        // the body is not UTF-8 the full decoder says why.
        let json = simdutf8::basic::from_utf8(body).ok()?;
        let Map(wire): Map<Body<'_>> = super::reader::from_str(json)?;
        if wire.kind != "AdmissionReview" || !wire.api_version.starts_with("admission.k8s.io/") {
            return None;
        }
        let Map(request) = *wire.request?;
        if request.uid.is_empty() {
            return None;
        }
        // Objects are JSON objects (`Map`), also where no decision reads them.
        let mut objects = [request.object, request.old_object];
        let head = Head {
            operation: &request.operation,
            kind: &request.kind,
            sub_resource: request.sub_resource.as_deref(),
        };
        let read = |which: Which, path: &[&str]| {
            let object = match which {
                Which::Object => objects[0].take(),
                Which::OldObject => objects[1].take(),
            };
            object.map(|o| read_object(o.0, path.len())).transpose()
        };
        let (action, spec) = classify(&head, read).ok()?;
        if matches!(action, Action::Reject(_)) {
            return None;
        }
        Some(Review {
            uid: request.uid.into_owned(),
            api_version: wire.api_version.into_owned(),
            name: request.name.into_owned(),
            namespace: request.namespace.map(|n| n.0.into_owned()),
            operation: request.operation,
            dry_run: request.dry_run,
            pull_secrets: spec.pull_secrets,
            service_account: spec.service_account,
            kind: request.kind,
            object: None,
            action,
        })
    }

    /// Picks an object's pod spec at a path of `depth` keys (1: Pod, 3: a workload's
    /// template, 5: a CronJob's); `Err` for another depth (the full decoder then decides).
    fn read_object(o: PodObject<'_>, depth: usize) -> Result<ObjectRead, ()> {
        fn in_template(t: Option<Map<Template<'_>>>) -> Option<PodSpec<'_>> {
            t.and_then(|Map(t)| t.spec).map(|Map(s)| s)
        }
        let top = o.spec.map(|Map(s)| s);
        let spec = match depth {
            1 => top,
            3 => in_template(top.and_then(|s| s.template.map(|b| *b))),
            5 => {
                let job = top.and_then(|s| s.job_template.map(|b| *b));
                in_template(job.and_then(|Map(j)| j.spec).and_then(|Map(s)| s.template))
            }
            _ => return Err(()),
        };
        Ok(ObjectRead {
            deleting: o.metadata.deletion_timestamp.is_some(),
            spec: match spec {
                None => SpecRead::Missing,
                Some(spec) => SpecRead::Read(images(spec)),
            },
        })
    }

    /// A pod spec as this reader reads it, from the full decoder's JSON: how the full decoder
    /// reads an old object (only its images are compared), so the two agree on old objects.
    pub(super) fn spec_images(spec: &serde_json::Value) -> Result<SpecImages, String> {
        let Map(spec) = Map::<PodSpec<'_>>::deserialize(spec).map_err(|e| e.to_string())?;
        Ok(images(spec))
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
                .map(|n| n.0.into_owned()),
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

/// The fields of one "image admitted" line, borrowed from the report where no bound cut them.
struct AuditLine<'a> {
    image: Cow<'a, str>,
    digest: &'a str,
    trust: &'static str,
    policy: String,
    authority: String,
    evidence: String,
}

impl<'a> AuditLine<'a> {
    fn of(report: &'a ImageReport) -> AuditLine<'a> {
        let image = bounded(report.reference.as_deref().unwrap_or(&report.image));
        let digest = report.digest.as_ref().map_or("unknown", |d| d.as_str());
        let (trust, policies) = match &report.status {
            ImageStatus::InvalidReference { .. } => ("invalid_reference", &[][..]),
            ImageStatus::NoPolicy { .. } => ("no_policy", &[][..]),
            ImageStatus::Checked { policies } => {
                let trust = if report.trusted() {
                    "trusted"
                } else if policies
                    .iter()
                    .any(|p| matches!(*p.verdict, PolicyVerdict::Undecided { .. }))
                {
                    "undecided"
                } else {
                    "untrusted"
                };
                (trust, policies.as_slice())
            }
        };
        // Joined as they are written: `, ` between policies and authorities, `; ` between
        // evidence.
        let (mut names, mut authorities, mut evidence) =
            (String::new(), String::new(), String::new());
        for (i, p) in policies.iter().take(MAX_AUDIT_POLICIES).enumerate() {
            if i > 0 {
                names.push_str(", ");
                authorities.push_str(", ");
                evidence.push_str("; ");
            }
            names.push_str(p.policy.as_str());
            let verified = match &*p.verdict {
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
                    for piece in [&a.authority, " (", a.verifier.as_str(), ")"] {
                        authorities.push_str(piece);
                    }
                    evidence.push_str(&e.summary);
                }
                None => {
                    authorities.push('-');
                    evidence.push_str(p.verdict.reason().as_str());
                }
            }
        }
        if policies.len() > MAX_AUDIT_POLICIES {
            let more = format!("and {} more", policies.len() - MAX_AUDIT_POLICIES);
            for (field, sep) in [
                (&mut names, ", "),
                (&mut authorities, ", "),
                (&mut evidence, "; "),
            ] {
                field.push_str(sep);
                field.push_str(&more);
            }
        }
        AuditLine {
            image,
            digest,
            trust,
            policy: bounded_owned(names),
            authority: bounded_owned(authorities),
            evidence: bounded_owned(evidence),
        }
    }
}

/// `s` cut to [`MAX_AUDIT_FIELD_CHARS`] characters, with `…` when cut.
fn bounded(s: &str) -> Cow<'_, str> {
    match cut_at(s) {
        Some(end) => Cow::Owned(format!("{}…", &s[..end])),
        None => Cow::Borrowed(s),
    }
}

/// [`bounded`], cutting `s` in place.
fn bounded_owned(mut s: String) -> String {
    if let Some(end) = cut_at(&s) {
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Where `s` is cut to [`MAX_AUDIT_FIELD_CHARS`] characters, if it is longer. Text of at most
/// that many bytes has at most that many characters and is not walked.
fn cut_at(s: &str) -> Option<usize> {
    if s.len() <= MAX_AUDIT_FIELD_CHARS {
        return None;
    }
    s.char_indices()
        .nth(MAX_AUDIT_FIELD_CHARS)
        .map(|(end, _)| end)
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

impl Status {
    /// Whether it serialises as `{}`.
    fn is_empty(&self) -> bool {
        self.status.is_none() && self.code == 0 && self.message.is_empty() && self.reason.is_empty()
    }
}

fn encode(review: &Review, response: Response<'_>) -> Vec<u8> {
    if response.allowed
        && response.status.is_empty()
        && response.patch.is_none()
        && response.audit_annotations.is_empty()
        && response.warnings.is_none()
    {
        return encode_allowed(review);
    }
    let out = ResponseReview {
        api_version: &review.api_version,
        kind: "AdmissionReview",
        response,
    };
    // Room for a typical answer (a few hundred bytes with its audit annotations) from the
    // start, rather than growing from 128 bytes in three copies.
    let mut body = Vec::with_capacity(1024);
    // Strings, booleans and string maps: serialising cannot fail. Answer something valid
    // regardless.
    match serde_json::to_writer(&mut body, &out) {
        Ok(()) => body,
        Err(e) => {
            serde_json::to_vec(&serde_json::json!({"error": e.to_string()})).unwrap_or_default()
        }
    }
}

/// What [`encode`] writes for an answer that allows and has nothing else to say (most
/// answers), written without the serializer's walk over the structs: only the two strings
/// from the request are escaped.
fn encode_allowed(review: &Review) -> Vec<u8> {
    let mut body = Vec::with_capacity(128 + review.api_version.len() + review.uid.len());
    body.extend_from_slice(b"{\"apiVersion\":");
    json_string(&mut body, &review.api_version);
    body.extend_from_slice(b",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    json_string(&mut body, &review.uid);
    body.extend_from_slice(b",\"allowed\":true,\"status\":{}}}");
    body
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Into a Vec, a string cannot fail to serialise.
    let _ = serde_json::to_writer(&mut *out, s);
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
mod tests;

/// The validating route's fast reader against the full decoder: the same review, the same
/// action, the same errors, on every captured body and on bodies derived from them.
#[cfg(test)]
mod equivalence;
