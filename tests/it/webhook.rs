//! The webhook end to end: real AdmissionReview bodies (images substituted) against the real
//! server over HTTPS, and signatures made by the test signer. The registry is the test kit's
//! in-process one (`support::memory`), which has the referrers API unless told otherwise:
//! these tests are about decisions, not about a registry's quirks, and need no process. The
//! one test that stops and restarts a registry uses a real docker-registry.

use serde_json::Value;

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::memory::MemoryRegistry;
use crate::support::oci::referrers_tag;
use crate::support::registry::TestRegistry;
use crate::support::review::{self, assert_allowed_clean, assert_denied, message};
use crate::support::signet::{Signet, cosign_policy, settings};

const POD: &str = "pod-create.json";
const POD_IMAGE: &str = "nginx:1.27";

fn pod_with(image: &str) -> Value {
    let mut review = load_review(POD);
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    review
}

/// Denied as kubectl needs it, with `words` in the message.
#[track_caller]
fn assert_denied_with(v: &Value, words: &str) {
    review::assert_denied_with(v, &[words]);
}

struct World {
    registry: MemoryRegistry,
    key: CosignKey,
}

async fn world() -> World {
    World {
        registry: MemoryRegistry::start(),
        key: CosignKey::p256(),
    }
}

impl World {
    /// Pushes an image and signs it with the trusted key.
    async fn push_signed(
        &self,
        repo: &str,
        tag: &str,
        seed: u64,
    ) -> crate::support::oci::PushedImage {
        let image = self.registry.pusher().push_image(repo, tag, seed).await;
        cosign::sign_image(&self.registry, repo, &image, &self.key).await;
        image
    }

    /// signet with one enforcing policy "prod" trusting the key for the whole registry.
    async fn enforcing_signet(&self) -> Signet {
        let glob = format!("{}/**", self.registry.addr());
        let policy = cosign_policy("prod", &glob, "enforce", "deny", &self.key.public_key_pem());
        Signet::start(&policy, &[&self.registry]).await
    }
}

/// An unsigned image with an SBOM, an attestation and more referrers: the deny message says
/// what was looked at and set aside, naming at most three and counting the rest. The same
/// through the referrers API and through the tag schema of a registry without it.
#[tokio::test]
async fn no_signature_denial_names_the_referrers_it_ignored() {
    for api in [true, false] {
        no_signature_denial_names_the_referrers_it_ignored_with(api).await;
    }
}

async fn no_signature_denial_names_the_referrers_it_ignored_with(api: bool) {
    let w = world().await;
    w.registry.set_referrers_api(api);
    let pusher = w.registry.pusher();
    let unsigned = pusher.push_image("team/app", "3.0", 3).await;
    let empty = "application/vnd.oci.empty.v1+json";
    fn layer(t: &str) -> Vec<(&str, Vec<u8>, crate::support::oci::Annotations)> {
        vec![(t, b"{}".to_vec(), crate::support::oci::annotations(&[]))]
    }
    pusher
        .push_referrer(
            "team/app",
            &unsigned,
            "application/spdx+json",
            empty,
            layer("application/spdx+json"),
            crate::support::oci::annotations(&[]),
        )
        .await;
    let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json";
    pusher
        .push_referrer(
            "team/app",
            &unsigned,
            bundle,
            empty,
            layer(bundle),
            crate::support::oci::annotations(&[(
                "dev.sigstore.bundle.predicateType",
                "https://slsa.dev/provenance/v1",
            )]),
        )
        .await;
    for n in 0..2 {
        pusher
            .push_referrer(
                "team/app",
                &unsigned,
                &format!("application/vnd.example.scan.v{n}+json"),
                empty,
                layer("application/json"),
                crate::support::oci::annotations(&[]),
            )
            .await;
    }
    let signet = w.enforcing_signet().await;

    let pushed = w.registry.requests().len();
    let denied = signet
        .review(&pod_with(&unsigned.reference_by_tag(&w.registry.addr())))
        .await;
    assert_denied(&denied);
    let msg = message(&denied);
    assert!(msg.contains("no signature found"), "{msg}");
    assert!(msg.contains("; ignored 4 artifacts: "), "{msg}");
    assert!(msg.contains(" and 1 more"), "{msg}");
    let named = [
        "an SBOM (application/spdx+json)",
        "an attestation (https://slsa.dev/provenance/v1)",
        "an artifact (application/vnd.example.scan.v",
    ];
    assert_eq!(
        named.iter().filter(|n| msg.contains(*n)).count(),
        3,
        "three of the four named: {msg}"
    );
    // Which path found them: the API's list, or its 404 and then the tag.
    let asked = w.registry.requests().split_off(pushed);
    let api_asked = format!("GET /v2/team/app/referrers/{}", unsigned.digest);
    let tag_read = format!(
        "GET /v2/team/app/manifests/{}",
        referrers_tag(&unsigned.digest)
    );
    assert!(asked.contains(&api_asked), "api {api}: {asked:#?}");
    assert_eq!(asked.contains(&tag_read), !api, "api {api}: {asked:#?}");
    signet.stop().await;
}

#[tokio::test]
async fn signed_image_is_allowed_and_unsigned_is_denied_with_the_reason() {
    let w = world().await;
    let pusher = w.registry.pusher();
    let signed = w.push_signed("team/app", "1.0", 1).await;
    let unsigned = pusher.push_image("team/app", "2.0", 2).await;
    let glob = format!("{}/team/**", w.registry.addr());
    let signet = Signet::start(
        &cosign_policy("prod", &glob, "enforce", "deny", &w.key.public_key_pem()),
        &[&w.registry],
    )
    .await;

    let ok = signet
        .review(&pod_with(&signed.reference_by_tag(&w.registry.addr())))
        .await;
    assert_allowed_clean(&ok);

    let bad_ref = unsigned.reference_by_tag(&w.registry.addr());
    let denied = signet.review(&pod_with(&bad_ref)).await;
    assert_denied(&denied);
    let msg = message(&denied);
    assert!(msg.contains(&format!("image {bad_ref}")), "{msg}");
    assert!(
        msg.contains(&unsigned.digest[..19]),
        "names the digest: {msg}"
    );
    assert!(msg.contains("policy \"prod\""), "{msg}");
    assert!(msg.contains("no signature found"), "{msg}");
    // The uid is echoed.
    assert_eq!(
        denied["response"]["uid"],
        load_review(POD)["request"]["uid"]
    );
    signet.stop().await;
}

#[tokio::test]
async fn wrong_key_and_replayed_signature_are_denied() {
    let w = world().await;
    let pusher = w.registry.pusher();
    let other_key = CosignKey::generate(cosign::KeyKind::P256);
    let by_other = pusher.push_image("team/app", "other", 3).await;
    cosign::sign_image(&w.registry, "team/app", &by_other, &other_key).await;
    // A valid signature by the trusted key, but over another image's digest.
    let victim = pusher.push_image("team/app", "victim", 4).await;
    let donor = pusher.push_image("team/app", "donor", 5).await;
    let payload = cosign::simple_signing_payload(&w.registry.repo_ref("team/app"), &donor.digest);
    cosign::sign_payload(&w.registry, "team/app", &victim, &w.key, payload).await;

    let signet = w.enforcing_signet().await;
    let v = signet
        .review(&pod_with(&by_other.reference_by_tag(&w.registry.addr())))
        .await;
    assert_denied_with(&v, "not by a trusted key");
    let v = signet
        .review(&pod_with(&victim.reference_by_tag(&w.registry.addr())))
        .await;
    assert_denied_with(&v, "the signature is for another image");
    assert!(message(&v).contains(&donor.digest), "{}", message(&v));
    signet.stop().await;
}

#[tokio::test]
async fn multi_arch_index_is_verified_at_the_index_digest() {
    let w = world().await;
    let pusher = w.registry.pusher();
    let index = pusher.push_multiarch("team/multi", "1.0", 7).await;
    cosign::sign_image(&w.registry, "team/multi", &index, &w.key).await;
    let signet = w.enforcing_signet().await;
    assert_allowed_clean(
        &signet
            .review(&pod_with(&index.reference_by_tag(&w.registry.addr())))
            .await,
    );
    assert_allowed_clean(
        &signet
            .review(&pod_with(&index.reference_by_digest(&w.registry.addr())))
            .await,
    );
    // A platform manifest by digest carries no signature of its own.
    let child = &index.children[0];
    let v = signet
        .review(&pod_with(&child.reference_by_digest(&w.registry.addr())))
        .await;
    assert_denied_with(&v, "no signature found");
    signet.stop().await;
}

#[tokio::test]
async fn warn_and_audit_modes_allow_with_a_warning_or_an_annotation() {
    let w = world().await;
    let unsigned = w.registry.pusher().push_image("team/app", "1.0", 8).await;
    let warn = cosign_policy(
        "soft",
        &format!("{}/team/**", w.registry.addr()),
        "warn",
        "deny",
        &w.key.public_key_pem(),
    );
    let audit = cosign_policy(
        "watch",
        &format!("{}/audit/**", w.registry.addr()),
        "audit",
        "deny",
        &w.key.public_key_pem(),
    );
    let audited = w.registry.pusher().push_image("audit/app", "1.0", 9).await;
    let signet = Signet::start(&format!("{warn}---\n{audit}"), &[&w.registry]).await;

    let v = signet
        .review(&pod_with(&unsigned.reference_by_tag(&w.registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true);
    let warnings = v["response"]["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    let w0 = warnings[0].as_str().unwrap();
    assert!(
        w0.contains("policy \"soft\"") && w0.contains("no signature found"),
        "{w0}"
    );
    assert!(!w0.contains('\n') && w0.len() <= 256);

    let v = signet
        .review(&pod_with(&audited.reference_by_tag(&w.registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("warnings").is_none());
    let ann = v["response"]["auditAnnotations"]["image-0"]
        .as_str()
        .expect("audit annotation");
    assert!(
        ann.contains("policy=watch") && ann.contains("reason=no_signature"),
        "{ann}"
    );
    signet.stop().await;
}

#[tokio::test]
async fn no_match_deny_warn_allow() {
    let w = world().await;
    let img = w
        .registry
        .pusher()
        .push_image("elsewhere/app", "1.0", 10)
        .await;
    let covered = format!("{}/team/**", w.registry.addr());
    let policy = cosign_policy("prod", &covered, "enforce", "deny", &w.key.public_key_pem());
    let reference = img.reference_by_tag(&w.registry.addr());
    for (no_match, allowed, warned) in [
        ("deny", false, false),
        ("warn", true, true),
        ("allow", true, false),
    ] {
        let signet = Signet::start(
            &format!("{}---\n{policy}", settings(no_match)),
            &[&w.registry],
        )
        .await;
        let v = signet.review(&pod_with(&reference)).await;
        assert_eq!(
            v["response"]["allowed"], allowed,
            "noMatch {no_match}: {v:#}"
        );
        assert_eq!(
            v["response"].get("warnings").is_some(),
            warned,
            "noMatch {no_match}: {v:#}"
        );
        if !allowed {
            assert!(
                message(&v).contains("not covered by any image policy"),
                "{}",
                message(&v)
            );
        }
        signet.stop().await;
    }
}

#[tokio::test]
async fn registry_down_follows_on_error() {
    // Stopped and restarted: a real registry process.
    let w = world().await;
    let mut registry = TestRegistry::start();
    let img = registry.pusher().push_image("team/app", "1.0", 11).await;
    let reference = img.reference_by_tag(&registry.addr());
    let glob = format!("{}/team/**", registry.addr());
    let deny = cosign_policy("strict", &glob, "enforce", "deny", &w.key.public_key_pem());
    registry.stop();
    let signet = Signet::start(&deny, &[&registry]).await;
    let v = signet.review(&pod_with(&reference)).await;
    assert_denied_with(&v, "could not be verified");
    assert!(
        message(&v).contains("registry is unreachable"),
        "{}",
        message(&v)
    );
    signet.stop().await;

    let allow = cosign_policy(
        "lenient",
        &glob,
        "enforce",
        "allow",
        &w.key.public_key_pem(),
    );
    let signet = Signet::start(&allow, &[&registry]).await;
    let v = signet.review(&pod_with(&reference)).await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    let warning = v["response"]["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("onError: allow"), "{warning}");
    // Errors are not cached: once the registry is back, the real verdict comes.
    registry.restart();
    let v = signet.review(&pod_with(&reference)).await;
    assert_denied_with(&v, "no signature found");
    signet.stop().await;
}

#[tokio::test]
async fn every_workload_kind_and_container_kind_is_checked() {
    let w = world().await;
    let pusher = w.registry.pusher();
    let signed = w.push_signed("team/app", "1.0", 12).await;
    let unsigned = pusher.push_image("team/app", "2.0", 13).await;
    let good = signed.reference_by_tag(&w.registry.addr());
    let bad = unsigned.reference_by_tag(&w.registry.addr());
    let glob = format!("{}/**", w.registry.addr());
    let signet = Signet::start(
        &format!(
            "{}---\n{}",
            settings("allow"),
            cosign_policy("prod", &glob, "enforce", "deny", &w.key.public_key_pem())
        ),
        &[&w.registry],
    )
    .await;
    let cases = [
        (
            "deployment-create.json",
            "registry.example.com/team/web:1.0",
        ),
        (
            "replicaset-create.json",
            "registry.example.com/team/rs-app:1.0",
        ),
        ("daemonset-create.json", "localhost:5000/infra/agent:2.3"),
        ("job-create.json", "registry.example.com/team/task:0.9"),
        (
            "cronjob-create.json",
            "registry.example.com/team/report:2024.1",
        ),
        (
            "replicationcontroller-create.json",
            "quay.io/example/legacy:3",
        ),
        ("statefulset-create.json", "registry.example.com/team/db:15"),
        (
            "pod-ephemeral-debug.json",
            "registry.example.com/debug/tools:1.0",
        ),
    ];
    for (fixture, original) in cases {
        let mut review = load_review(fixture);
        assert!(
            replace_image(&mut review, original, &good) >= 1,
            "{fixture}"
        );
        let v = signet.review(&review).await;
        assert_eq!(v["response"]["allowed"], true, "{fixture}: {v:#}");
        let mut review = load_review(fixture);
        replace_image(&mut review, original, &bad);
        let v = signet.review(&review).await;
        assert_denied(&v);
        assert!(message(&v).contains(&bad), "{fixture}: {}", message(&v));
    }
    // Init containers: the digest-pinned one is checked too.
    let mut review = load_review("pod-create-init-digest-tag.json");
    let init = "registry.example.com/team/init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    replace_image(
        &mut review,
        init,
        &unsigned.reference_by_digest(&w.registry.addr()),
    );
    let v = signet.review(&review).await;
    assert_denied_with(&v, &unsigned.digest);
    signet.stop().await;
}

#[tokio::test]
async fn ungoverned_requests_are_allowed_untouched() {
    let w = world().await;
    let signet = Signet::start(&settings("deny"), &[&w.registry]).await;
    for fixture in [
        "pod-delete.json",
        "pod-delete-2nd-call.json",
        "deployment-scale-subresource.json",
    ] {
        let v = signet.review(&load_review(fixture)).await;
        assert_allowed_clean(&v);
    }
    assert_eq!(signet.registry_requests(), 0.0);
    signet.stop().await;
}

#[tokio::test]
async fn bad_input_gets_400_or_a_reasoned_denial_and_the_server_keeps_serving() {
    let w = world().await;
    let signet = Signet::start(&settings("deny"), &[&w.registry]).await;
    let (status, body) = signet.post(b"{not json", "timeout=10s", false).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a valid AdmissionReview"), "{body}");
    let (status, body) = signet
        .post(br#"{"kind":"Pod","apiVersion":"v1"}"#, "", false)
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("expected kind AdmissionReview"), "{body}");
    let mut no_uid = load_review(POD);
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let (status, body) = signet
        .post(&serde_json::to_vec(&no_uid).unwrap(), "", false)
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("uid"), "{body}");
    // Reviews that cannot be evaluated are denied with the reason.
    for (image, expect) in [
        ("", "empty image reference"),
        ("Not A Valid::Image", "not a valid image reference"),
    ] {
        let v = signet.review(&pod_with(image)).await;
        assert_denied(&v);
        assert!(message(&v).contains(expect), "{image:?}: {}", message(&v));
    }
    let mut null_object = load_review(POD);
    null_object["request"]["object"] = Value::Null;
    let v = signet.review(&null_object).await;
    assert_denied_with(&v, "no object");
    // Oversized body.
    let huge = vec![b' '; signet::server::MAX_BODY_BYTES + 10];
    let (status, _) = signet.post(&huge, "", false).await;
    assert_eq!(status, 413);
    // Still serving.
    let (status, body) = signet.admin_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let v = signet.review(&load_review("pod-delete.json")).await;
    assert_allowed_clean(&v);
    signet.stop().await;
}

#[tokio::test]
async fn http2_and_http1_and_cache_hits_make_no_registry_requests() {
    let w = world().await;
    let signed = w.push_signed("team/app", "1.0", 14).await;
    let signet = w.enforcing_signet().await;
    let review = pod_with(&signed.reference_by_tag(&w.registry.addr()));
    assert_allowed_clean(&signet.review_with(&review, "timeout=10s", true).await);
    // HEAD (tag → digest), the .sig manifest, the signature payload blob.
    let cold = signet.registry_requests();
    assert_eq!(cold, 3.0, "cold verification took {cold} registry requests");
    for http2 in [false, true, false] {
        assert_allowed_clean(&signet.review_with(&review, "timeout=10s", http2).await);
    }
    assert_eq!(
        signet.registry_requests(),
        cold,
        "cache hits go to no registry"
    );
    assert!(signet.metric("signet_cache_requests_total{cache=\"verdict\",result=\"hit\"}") >= 3.0);
    let (status, metrics) = signet.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("signet_admission_reviews_total{decision=\"allowed\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("signet_verifications_total{reason=\"trusted\",result=\"trusted\",verifier=\"cosign\"} 1"), "{metrics}");
    let (status, _) = signet.admin_get("/readyz").await;
    assert_eq!(status, 200);
    signet.stop().await;
}

#[tokio::test]
async fn concurrent_reviews_of_one_new_image_verify_once() {
    let w = world().await;
    let signed = w.push_signed("team/app", "1.0", 15).await;
    let signet = w.enforcing_signet().await;
    let review = pod_with(&signed.reference_by_digest(&w.registry.addr()));
    let all = futures_util::future::join_all((0..50).map(|_| signet.review(&review))).await;
    for v in &all {
        assert_allowed_clean(v);
    }
    assert_eq!(
        signet.metric(
            "signet_verifications_total{reason=\"trusted\",result=\"trusted\",verifier=\"cosign\"}"
        ),
        1.0
    );
    signet.stop().await;
}

#[tokio::test]
async fn a_hanging_registry_is_answered_before_the_review_deadline() {
    // A registry that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten().take(64) {
            held.push(s);
        }
    });
    let w = world().await;
    let policy = cosign_policy(
        "prod",
        &format!("{addr}/**"),
        "enforce",
        "deny",
        &w.key.public_key_pem(),
    );
    let limits = signet::registry::Limits {
        request_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    };
    let signet = Signet::start_with(&policy, &[&w.registry], limits).await;
    // Not configured as insecure, so signet speaks TLS to it and the handshake hangs.
    let review = pod_with(&format!("{addr}/team/app:1.0"));
    let started = std::time::Instant::now();
    let v = signet.review_with(&review, "timeout=2s", false).await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "answered after {took:?}"
    );
    assert_denied(&v);
    let m = message(&v);
    assert!(
        m.contains("did not finish before the deadline") || m.contains("unreachable"),
        "{m}"
    );
    signet.stop().await;
}

#[tokio::test]
async fn policies_reload_on_change_and_a_bad_reload_keeps_the_last_good_set() {
    let w = world().await;
    let img = w.registry.pusher().push_image("team/app", "1.0", 16).await;
    let review = pod_with(&img.reference_by_tag(&w.registry.addr()));
    let signet = Signet::start(&settings("deny"), &[&w.registry]).await;
    assert_denied(&signet.review(&review).await);
    // The start-up load counts as a success, as it does in `signet serve`.
    let loads = signet.metric("signet_policy_reloads_total{result=\"success\"}");
    assert_eq!(loads, 1.0);

    let file = signet.policy_dir.join("policies.yaml");
    std::fs::write(&file, settings("allow")).unwrap();
    let mut allowed = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if signet.review(&review).await["response"]["allowed"] == true {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the new policy set was not picked up");
    assert_eq!(
        signet.metric("signet_policy_reloads_total{result=\"success\"}"),
        loads + 1.0
    );

    std::fs::write(
        &file,
        "apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  noMatch: maybe\n",
    )
    .unwrap();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if signet.metric("signet_policy_reloads_total{result=\"failure\"}") >= 1.0 {
            break;
        }
    }
    assert_eq!(
        signet.metric("signet_policy_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert_eq!(
        signet.review(&review).await["response"]["allowed"],
        true,
        "the last good set stays"
    );
    let (status, _) = signet.admin_get("/readyz").await;
    assert_eq!(status, 200);
    signet.stop().await;
}

/// Regression: verdicts were cached by digest alone, so the same digest in another repository
/// inherited a verdict made from signatures it does not have.
#[tokio::test]
async fn a_verdict_for_one_repository_is_not_reused_for_the_same_digest_in_another() {
    let w = world().await;
    let signed = w.push_signed("signed/app", "1.0", 30).await;
    let copy = w.registry.pusher().push_image("copy/app", "1.0", 30).await;
    assert_eq!(signed.digest, copy.digest, "same content, same digest");
    let signet = w.enforcing_signet().await;
    assert_allowed_clean(
        &signet
            .review(&pod_with(&signed.reference_by_tag(&w.registry.addr())))
            .await,
    );
    let v = signet
        .review(&pod_with(&copy.reference_by_tag(&w.registry.addr())))
        .await;
    assert_denied_with(&v, "no signature found");
    signet.stop().await;
}

/// Only ten `.sig` layers are tried; they are the newest, so re-signing with the trusted key
/// after many old signatures still admits the image.
#[tokio::test]
async fn a_new_signature_after_ten_old_ones_is_found() {
    let w = world().await;
    let img = w.registry.pusher().push_image("team/app", "1.0", 31).await;
    let retired = CosignKey::generate(cosign::KeyKind::P256);
    for _ in 0..10 {
        cosign::sign_image(&w.registry, "team/app", &img, &retired).await;
    }
    cosign::sign_image(&w.registry, "team/app", &img, &w.key).await;
    let signet = w.enforcing_signet().await;
    assert_allowed_clean(
        &signet
            .review(&pod_with(&img.reference_by_tag(&w.registry.addr())))
            .await,
    );
    signet.stop().await;
}
