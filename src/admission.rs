//! AdmissionReview in, AdmissionReview out: the only module that knows Kubernetes types.
//!
//! [`decode`] turns a request body into a [`Review`]: which images to check (Pod,
//! `pods/ephemeralcontainers`, and the seven workload kinds that carry a pod template), or why
//! the request is allowed untouched (DELETE, CONNECT, kinds and subresources signet does not
//! govern), or why it cannot be evaluated. [`respond`] turns a decision into the response the
//! API server expects: `uid` and `apiVersion` echoed; a denial with `code: 403` and
//! `reason: Forbidden`, which kubectl needs to print `Error from server (Forbidden)`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;
use serde::Deserialize;

use crate::decision::{ImageUse, Verdict};

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
    /// Allow without looking further, for this reason (logged).
    Skip(&'static str),
    /// The request cannot be evaluated: deny with this message.
    Reject(String),
}

/// A decoded review: the request (without its objects) and what to do.
#[derive(Debug, Clone)]
pub struct Review {
    request: AdmissionRequest<DynamicObject>,
    pub action: Action,
}

impl Review {
    pub fn uid(&self) -> &str {
        &self.request.uid
    }

    pub fn namespace(&self) -> Option<&str> {
        self.request.namespace.as_deref()
    }

    /// `group/version/Kind`, for logs.
    pub fn kind(&self) -> String {
        let k = &self.request.kind;
        if k.group.is_empty() {
            format!("{}/{}", k.version, k.kind)
        } else {
            format!("{}/{}/{}", k.group, k.version, k.kind)
        }
    }

    pub fn name(&self) -> &str {
        &self.request.name
    }

    pub fn operation(&self) -> &'static str {
        match self.request.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    pub fn dry_run(&self) -> bool {
        self.request.dry_run
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

/// Decodes an AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<Review, DecodeError> {
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
    request.old_object = None;
    let action = classify(&request, object);
    Ok(Review { request, action })
}

fn classify(request: &AdmissionRequest<DynamicObject>, object: Option<DynamicObject>) -> Action {
    if matches!(request.operation, Operation::Delete | Operation::Connect) {
        return Action::Skip("operation not governed");
    }
    let group = request.kind.group.as_str();
    let kind = request.kind.kind.as_str();
    let Some(path) = pod_spec_path(group, kind) else {
        return Action::Skip("kind not governed");
    };
    match (kind, request.sub_resource.as_deref()) {
        (_, None) | ("Pod", Some("ephemeralcontainers")) => {}
        _ => return Action::Skip("subresource not governed"),
    }
    let Some(object) = object else {
        return Action::Reject(format!(
            "the {} request has no object to check",
            request_kind(request)
        ));
    };
    let mut spec = &object.data;
    for key in path {
        spec = &spec[*key];
    }
    if spec.is_null() {
        return Action::Reject(format!(
            "the {} has no pod spec at {}",
            request_kind(request),
            path.join(".")
        ));
    }
    match PodSpec::deserialize(spec) {
        Ok(pod) => Action::Check(images(&pod)),
        Err(e) => Action::Reject(format!(
            "the pod spec at {} cannot be read: {e}",
            path.join(".")
        )),
    }
}

fn request_kind(request: &AdmissionRequest<DynamicObject>) -> String {
    request.kind.kind.clone()
}

/// Every image of the pod spec, once each, with the containers that use it, in spec order.
pub fn images(pod: &PodSpec) -> Vec<ImageUse> {
    let mut order: Vec<String> = Vec::new();
    let mut uses: HashMap<String, Vec<String>> = HashMap::new();
    let mut add = |image: Option<&String>, container: String| {
        let image = image.cloned().unwrap_or_default();
        if !uses.contains_key(&image) {
            order.push(image.clone());
        }
        uses.entry(image).or_default().push(container);
    };
    for c in pod.init_containers.iter().flatten() {
        add(c.image.as_ref(), format!("init container {:?}", c.name));
    }
    for c in &pod.containers {
        add(container_image(c), format!("container {:?}", c.name));
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        add(
            ephemeral_image(c),
            format!("ephemeral container {:?}", c.name),
        );
    }
    order
        .into_iter()
        .map(|image| {
            let containers = uses.remove(&image).unwrap_or_default();
            ImageUse { image, containers }
        })
        .collect()
}

fn container_image(c: &Container) -> Option<&String> {
    c.image.as_ref()
}

fn ephemeral_image(c: &EphemeralContainer) -> Option<&String> {
    c.image.as_ref()
}

/// The response for a review allowed without checking, or rejected before checking.
pub fn respond_action(review: &Review) -> serde_json::Value {
    match &review.action {
        Action::Reject(message) => respond_with(
            review,
            false,
            std::slice::from_ref(message),
            &[],
            Default::default(),
        ),
        _ => respond_with(review, true, &[], &[], Default::default()),
    }
}

/// The response for a decided review.
pub fn respond(review: &Review, verdict: &Verdict) -> serde_json::Value {
    let audit = verdict
        .audit_annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    respond_with(
        review,
        verdict.allowed,
        &verdict.denials,
        &verdict.warnings,
        audit,
    )
}

fn respond_with(
    review: &Review,
    allowed: bool,
    denials: &[String],
    warnings: &[String],
    audit: HashMap<String, String>,
) -> serde_json::Value {
    let mut resp = AdmissionResponse::from(&review.request);
    if !allowed {
        resp = resp.deny(deny_message(denials));
        resp.result.code = 403;
        resp.result.reason = "Forbidden".into();
        resp.result.status = Some(StatusSummary::Failure);
    }
    if !warnings.is_empty() {
        resp.warnings = Some(warnings.to_vec());
    }
    resp.audit_annotations = audit;
    let out = resp.into_review();
    serde_json::to_value(&out).unwrap_or_else(|e| {
        // Serialising our own plain struct cannot fail; answer something valid regardless.
        serde_json::json!({"error": e.to_string()})
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

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn checked(name: &str) -> Vec<(String, Vec<String>)> {
        match decode(&fixture(name)).unwrap().action {
            Action::Check(images) => images
                .into_iter()
                .map(|u| (u.image, u.containers))
                .collect(),
            other => panic!("{name}: expected Check, got {other:?}"),
        }
    }

    fn images_of(name: &str) -> Vec<String> {
        checked(name).into_iter().map(|(i, _)| i).collect()
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
        let dup = checked("pod-duplicate-images.json");
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
            let resp = respond_action(&r);
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
        let resp = respond(&r, &verdict);
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
        let resp = respond_action(&r);
        assert_eq!(resp["response"]["allowed"], false);
        assert_eq!(resp["response"]["status"]["code"], 403);
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
