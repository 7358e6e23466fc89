//! Unit tests of `admission`: decoding every governed kind, the actions, and the responses.

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
                }
                .into(),
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
            }
            .into(),
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

/// An answer that only allows is written without the serializer, byte for byte as the
/// serializer writes it, whatever the request's `uid` and `apiVersion` hold.
#[test]
fn a_plain_allow_is_written_as_the_serializer_writes_it() {
    let mut review = decode(&fixture("pod-create.json")).unwrap();
    let (uid, api_version) = (review.uid.clone(), review.api_version.clone());
    let odd = [
        "",
        "\"",
        "\\",
        "a\u{0}b\u{1f}\u{7f}",
        "é \u{2028} 😀",
        "</script>",
    ];
    let mut cases = vec![(uid.clone(), api_version.clone())];
    for text in odd {
        cases.push((text.to_string(), api_version.clone()));
        cases.push((uid.clone(), text.to_string()));
    }
    for (uid, api_version) in cases {
        (review.uid, review.api_version) = (uid, api_version);
        let allowed = Verdict {
            allowed: true,
            ..Verdict::default()
        };
        let serialized = serde_json::to_vec(&ResponseReview {
            api_version: &review.api_version,
            kind: "AdmissionReview",
            response: Response::allowed(&review),
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(respond(&review, &allowed)).unwrap(),
            String::from_utf8(serialized).unwrap()
        );
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

fn pod_spec_mut<'a>(review: &'a mut serde_json::Value, which: &str) -> &'a mut serde_json::Value {
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
    let sidecar = serde_json::json!({"name": "side", "image": "registry.example.com/team/side:1"});
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
    let old_image =
        review["request"]["oldObject"]["spec"]["template"]["spec"]["containers"][0]["image"]
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
    review["request"]["object"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
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

#[test]
fn audit_fields_are_cut_after_so_many_characters_not_bytes() {
    let max = MAX_AUDIT_FIELD_CHARS;
    for (text, cut) in [
        ("a".repeat(max), None),
        ("a".repeat(max + 1), Some(max)),
        // Two bytes a character: over the bound in bytes, within it in characters.
        ("é".repeat(max), None),
        ("é".repeat(max + 1), Some(2 * max)),
        (format!("{}é", "a".repeat(max - 1)), None),
        (format!("{}éa", "a".repeat(max - 1)), Some(max + 1)),
    ] {
        assert_eq!(cut_at(&text), cut, "{} bytes", text.len());
        let bounded_text = bounded(&text);
        assert_eq!(bounded_owned(text.clone()), bounded_text);
        match cut {
            None => assert_eq!(bounded_text, text),
            Some(end) => assert_eq!(bounded_text, format!("{}…", &text[..end])),
        }
        assert!(bounded_text.chars().count() <= max + 1);
    }
}

#[test]
fn container_labels_are_what_debug_formatting_writes() {
    let names = [
        "web",
        "",
        "with space",
        "quote\"d",
        "back\\slash",
        "tab\there",
        "new\nline",
        "ünïcode",
        "\u{7f}del",
        "zero\u{200b}width",
    ];
    for name in names {
        for what in ["container", "init container", "image volume"] {
            assert_eq!(container_label(what, name), format!("{what} {name:?}"));
        }
    }
}

proptest::proptest! {
    #[test]
    fn container_labels_agree_with_debug_formatting_on_any_name(name in ".{0,40}") {
        proptest::prop_assert_eq!(container_label("container", &name), format!("container {name:?}"));
    }
}
