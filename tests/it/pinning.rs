//! Digest pinning: `requireDigest` policies deny (or warn about) images named by tag alone,
//! and say which `image@sha256:…` reference to write instead.

use serde_json::Value;

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, cosign_policy};

fn pod_with(image: &str) -> Value {
    let mut review = load_review("pod-create.json");
    assert_eq!(replace_image(&mut review, "nginx:1.27", image), 1);
    review
}

fn requiring_digest(policy: String) -> String {
    policy.replace("  mode: ", "  requireDigest: true\n  mode: ")
}

#[tokio::test]
async fn require_digest_denies_a_signed_tag_and_names_the_reference_to_use() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let image = registry.pusher().push_image("team/app", "1.0", 41).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let glob = format!("{}/team/**", registry.addr());
    let policy = requiring_digest(cosign_policy(
        "pinned",
        &glob,
        "enforce",
        "deny",
        &key.public_key_pem(),
    ));
    let signet = Signet::start(&policy, &[&registry]).await;

    let by_tag = image.reference_by_tag(&registry.addr());
    let v = signet.review(&pod_with(&by_tag)).await;
    assert_eq!(v["response"]["allowed"], false, "{v:#}");
    assert_eq!(v["response"]["status"]["code"], 403);
    let msg = v["response"]["status"]["message"].as_str().unwrap();
    let pinned = format!("{by_tag}@{}", image.digest);
    assert!(
        msg.contains("requires the image by digest") && msg.contains(&format!("use {pinned}")),
        "{msg}"
    );

    // The same image by digest, and by tag and digest, is verified and allowed.
    for reference in [image.reference_by_digest(&registry.addr()), pinned] {
        let v = signet.review(&pod_with(&reference)).await;
        assert_eq!(v["response"]["allowed"], true, "{reference}: {v:#}");
        assert!(v["response"].get("warnings").is_none(), "{v:#}");
    }
    signet.stop().await;
}

#[tokio::test]
async fn require_digest_under_warn_admits_with_a_warning_that_names_the_digest() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let image = registry.pusher().push_image("team/app", "2.0", 42).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let glob = format!("{}/team/**", registry.addr());
    let policy = requiring_digest(cosign_policy(
        "pinned",
        &glob,
        "warn",
        "deny",
        &key.public_key_pem(),
    ));
    let signet = Signet::start(&policy, &[&registry]).await;
    let v = signet
        .review(&pod_with(&image.reference_by_tag(&registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    let warning = v["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains(&image.digest), "{warning}");
    signet.stop().await;
}

/// The object of `review` with the pinning route's patch applied (the API server's part),
/// after checking the patch is sent the way the API server accepts it.
fn apply_patch(review: &Value, answer: &Value) -> Value {
    use base64::Engine as _;
    let r = &answer["response"];
    assert_eq!(
        r["allowed"], true,
        "the pinning route never denies: {answer:#}"
    );
    assert_eq!(r["uid"], review["request"]["uid"]);
    assert_eq!(r["patchType"], "JSONPatch", "{answer:#}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().expect("a base64 patch"))
        .expect("standard base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON Patch");
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies");
    object
}

fn with_object(mut review: Value, object: Value) -> Value {
    review["request"]["object"] = object;
    review
}

#[tokio::test]
async fn pinning_rewrites_a_verified_tag_to_its_digest_and_the_pod_keeps_it_when_the_tag_moves() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "1.0", 61).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let glob = format!("{}/team/**", registry.addr());
    let policy = cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem());
    let signet = Signet::start(&policy, &[&registry]).await;

    let by_tag = signed.reference_by_tag(&registry.addr());
    let review = pod_with(&by_tag);
    let answer = signet.mutate(&review).await;
    let pinned = apply_patch(&review, &answer);
    assert_eq!(
        pinned["spec"]["containers"][0]["image"],
        format!("{by_tag}@{}", signed.digest)
    );
    // Nothing else changed.
    let mut unpinned = pinned.clone();
    unpinned["spec"]["containers"][0]["image"] = Value::String(by_tag.clone());
    assert_eq!(unpinned, review["request"]["object"]);

    // Someone moves the tag to an unsigned image after admission: the pinned pod still names
    // the verified digest, which the validating route admits; the tag alone is now denied.
    let moved = pusher.push_image("team/app", "1.0", 62).await;
    assert_ne!(moved.digest, signed.digest);
    let v = signet.review(&with_object(review.clone(), pinned)).await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    signet.stop().await;
    let fresh = Signet::start(&policy, &[&registry]).await;
    let v = fresh.review(&review).await;
    assert_eq!(
        v["response"]["allowed"], false,
        "the moved tag is unsigned: {v:#}"
    );
    fresh.stop().await;
}

#[tokio::test]
async fn pinning_leaves_untrusted_images_and_unasked_templates_alone() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "2.0", 63).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher.push_image("team/app", "3.0", 64).await;
    let glob = format!("{}/team/**", registry.addr());
    let plain = cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem());
    let signet = Signet::start(&plain, &[&registry]).await;

    // An untrusted image is not pinned: no patch at all.
    let answer = signet
        .mutate(&pod_with(&unsigned.reference_by_tag(&registry.addr())))
        .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer:#}");
    assert!(answer["response"].get("patch").is_none(), "{answer:#}");

    // A Deployment's template is left as written unless a policy asks (GitOps drift).
    let mut deployment = load_review("deployment-create.json");
    let by_tag = signed.reference_by_tag(&registry.addr());
    assert_eq!(
        replace_image(
            &mut deployment,
            "registry.example.com/team/web:1.0",
            &by_tag
        ),
        1
    );
    let answer = signet.mutate(&deployment).await;
    assert!(answer["response"].get("patch").is_none(), "{answer:#}");
    signet.stop().await;

    let asking = plain.replace("  mode: ", "  pinTemplates: true\n  mode: ");
    let signet = Signet::start(&asking, &[&registry]).await;
    let answer = signet.mutate(&deployment).await;
    let pinned = apply_patch(&deployment, &answer);
    assert_eq!(
        pinned["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{by_tag}@{}", signed.digest)
    );
    signet.stop().await;
}
