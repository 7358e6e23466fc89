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
