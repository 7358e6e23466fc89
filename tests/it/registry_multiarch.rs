//! Multi-arch images: a tag that names an index is verified at the index digest; with the
//! policy option `platformSignatures: accept`, an index whose every platform manifest is signed
//! is trusted too (semantics and risk: `policy::PlatformSignatures`, docs/registry.md).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::decision::{ImageUse, Verdict};
use signet::engine;
use signet::metrics::Metrics;
use signet::registry::RegistryConfig;

use crate::support::cosign::{self, CosignKey};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, test_options};

async fn decide(registry: &TestRegistry, policy: &str, image: &str) -> Verdict {
    let set = signet::policy::load_str(Path::new("policies.yaml"), policy).expect("policy loads");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![registry.addr()],
        ..RegistryConfig::default()
    };
    let engine = engine::build(config, set, metrics, test_options()).expect("engine");
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

/// An index entry: the image, its platform, its annotations.
type IndexEntry<'a> = (
    &'a crate::support::oci::PushedImage,
    serde_json::Value,
    &'a [(&'a str, &'a str)],
);

/// Pushes an index whose entries are `children` with the given platform and annotations, as
/// JSON written by hand (the pusher's `push_index` writes platforms from the children only).
async fn push_custom_index(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    entries: &[IndexEntry<'_>],
) -> String {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(child, platform, annotations)| {
            let mut d = child.descriptor();
            d.platform = Some(platform.clone());
            d.annotations = crate::support::oci::annotations(annotations);
            d.to_json()
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::support::oci::OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("index JSON");
    registry
        .pusher()
        .push_manifest(repo, tag, crate::support::oci::OCI_INDEX, &index)
        .await;
    format!("{}/{repo}:{tag}", registry.addr())
}

/// containerd pulls the first index entry that matches the node's platform, whatever its
/// annotations say: an unsigned `linux/amd64` manifest labelled as a buildx attestation, listed
/// before the signed one, is what a node would run. Only entries no runtime can pull (platform
/// `unknown/unknown`, or a media type that is no image manifest) are skipped.
#[tokio::test]
async fn an_attestation_annotation_does_not_exempt_a_runnable_platform_entry() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let (_, accept) = policies(&registry, &key);
    let pusher = registry.pusher();
    let amd64 = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let unknown = serde_json::json!({"os": "unknown", "architecture": "unknown"});
    let attestation = [
        ("vnd.docker.reference.type", "attestation-manifest"),
        (
            "vnd.docker.reference.digest",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
    ];

    let signed = pusher
        .push_platform_image("team/app", None, 10, "linux", "amd64")
        .await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher
        .push_platform_image("team/app", None, 11, "linux", "amd64")
        .await;

    // The unsigned runnable entry comes first and claims to be an attestation.
    let lying = push_custom_index(
        &registry,
        "team/app",
        "lying",
        &[
            (&unsigned, amd64.clone(), &attestation),
            (&signed, amd64.clone(), &[]),
        ],
    )
    .await;
    let v = decide(&registry, &accept, &lying).await;
    assert!(
        !v.allowed,
        "an unsigned linux/amd64 entry is runnable: {v:#?}"
    );

    // A real buildx attestation (unknown/unknown) beside the signed platform is skipped.
    let honest = push_custom_index(
        &registry,
        "team/app",
        "honest",
        &[
            (&signed, amd64.clone(), &[]),
            (&unsigned, unknown, &attestation),
        ],
    )
    .await;
    let v = decide(&registry, &accept, &honest).await;
    assert!(
        v.allowed,
        "an unknown/unknown entry is not runnable: {v:#?}"
    );
}
