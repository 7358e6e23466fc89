//! Multi-arch images: a tag that names an index is verified at the index digest; with the
//! policy option `platformSignatures: accept`, an index whose every platform manifest is signed
//! is trusted too (semantics and risk: `policy::PlatformSignatures`, docs/registry.md).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::decision::{CacheConfig, Engine, ImageUse, Verdict};
use signet::metrics::Metrics;
use signet::registry::{HttpRegistry, RegistryConfig};

use crate::support::cosign::{self, CosignKey};
use crate::support::registry::TestRegistry;
use crate::support::signet::cosign_policy;

async fn decide(registry: &TestRegistry, policy: &str, image: &str) -> Verdict {
    let set = signet::policy::load_str(Path::new("policies.yaml"), policy).expect("policy loads");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![registry.addr()],
        ..RegistryConfig::default()
    };
    let client = HttpRegistry::new(config, metrics.clone()).expect("client");
    let engine = Engine::new(Arc::new(client), set, CacheConfig::default(), metrics);
    engine
        .decide(
            &[ImageUse {
                image: image.to_string(),
                containers: vec!["app".into()],
            }],
            None,
            Instant::now() + Duration::from_secs(10),
        )
        .await
}

fn policies(registry: &TestRegistry, key: &CosignKey) -> (String, String) {
    let plain = cosign_policy(
        "prod",
        &format!("{}/**", registry.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let accept = plain.replace(
        "  authorities:",
        "  platformSignatures: accept\n  authorities:",
    );
    assert_ne!(plain, accept);
    (plain, accept)
}

#[tokio::test]
async fn platform_signatures_stand_in_for_the_index_only_when_accepted_and_complete() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let (plain, accept) = policies(&registry, &key);
    let pusher = registry.pusher();

    // Every platform signed, the index not.
    let all = pusher.push_multiarch("team/app", "all", 1).await;
    for child in &all.children {
        cosign::sign_image(&registry, "team/app", child, &key).await;
    }
    let reference = all.reference_by_tag(&registry.addr());
    let v = decide(&registry, &plain, &reference).await;
    assert!(!v.allowed, "the index itself is unsigned: {v:#?}");
    let v = decide(&registry, &accept, &reference).await;
    assert!(v.allowed, "every platform is signed: {v:#?}");
    assert_eq!(
        v.images[0].digest.as_ref().map(|d| d.as_str().to_string()),
        Some(all.digest.clone()),
        "the verdict is bound to the index digest"
    );

    // One platform signed, the other not: denied even with accept.
    let half = pusher.push_multiarch("team/app", "half", 2).await;
    cosign::sign_image(&registry, "team/app", &half.children[0], &key).await;
    let v = decide(&registry, &accept, &half.reference_by_tag(&registry.addr())).await;
    assert!(!v.allowed, "an unsigned platform: {v:#?}");

    // The index signed: trusted under either policy, platforms unsigned or not.
    let index = pusher.push_multiarch("team/app", "index", 3).await;
    cosign::sign_image(&registry, "team/app", &index, &key).await;
    for p in [&plain, &accept] {
        let v = decide(&registry, p, &index.reference_by_tag(&registry.addr())).await;
        assert!(v.allowed, "{v:#?}");
    }

    // Platform signatures never stand in for a single-platform image's own.
    let single = pusher.push_image("team/app", "single", 4).await;
    let v = decide(
        &registry,
        &accept,
        &single.reference_by_tag(&registry.addr()),
    )
    .await;
    assert!(!v.allowed);
}
